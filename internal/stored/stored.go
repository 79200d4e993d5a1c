// Package stored holds what memstore and sqlstore share about the grants
// and access requests they keep: the canonical form of their times
// (canon.Time: UTC, microseconds), so that a write returns what a read
// does, and the rules a write must meet, so that both refuse alike.
package stored

import (
	"fmt"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/canon"
)

// Grant brings g's times to the canonical form, in place.
func Grant(g *sa.Grant) { canon.Times(&g.CreatedAt, &g.StartsAt, &g.ExpiresAt, &g.RevokedAt) }

// Request brings r's times to the canonical form, in place.
func Request(r *sa.AccessRequest) { canon.Times(&r.StartsAt, &r.CreatedAt, &r.ExpiresAt, &r.DecidedAt) }

// CheckGrant refuses, with sa.ErrInvalidInput, a grant without the times
// every grant has: CreatedAt and StartsAt (the Manager always sets them;
// an SQL store's columns are NOT NULL).
func CheckGrant(g *sa.Grant) error {
	return required("grant", g.ID.String(), "CreatedAt", g.CreatedAt.IsZero(), "StartsAt", g.StartsAt.IsZero())
}

// CheckRequest refuses, with sa.ErrInvalidInput, a request without the
// times every request has: CreatedAt and ExpiresAt.
func CheckRequest(r *sa.AccessRequest) error {
	return required("request", r.ID.String(), "CreatedAt", r.CreatedAt.IsZero(), "ExpiresAt", r.ExpiresAt.IsZero())
}

// CheckGrantUpdate refuses, with sa.ErrInvalidInput, a change from cur to
// g that Store.UpdateGrant forbids: another ID, TenantID or CreatedAt, or
// a revocation undone (a revoked grant stays revoked: no store brings its
// pending transitions back, and no one may give back access the trail
// says was ended); then the checks of CheckGrant.
func CheckGrantUpdate(cur, g *sa.Grant) error {
	if g.ID != cur.ID || g.TenantID != cur.TenantID || !g.CreatedAt.Equal(cur.CreatedAt) {
		return fmt.Errorf("%w: grant %s: change may not alter ID, TenantID or CreatedAt", sa.ErrInvalidInput, cur.ID)
	}
	if !cur.RevokedAt.IsZero() && g.RevokedAt.IsZero() {
		return fmt.Errorf("%w: grant %s: a revocation cannot be undone", sa.ErrInvalidInput, cur.ID)
	}
	return CheckGrant(g)
}

// CheckRequestUpdate refuses, with sa.ErrInvalidInput, a change from cur
// to r that RequestStore.UpdateRequest forbids (another ID, TenantID or
// CreatedAt); then the checks of CheckRequest.
func CheckRequestUpdate(cur, r *sa.AccessRequest) error {
	if r.ID != cur.ID || r.TenantID != cur.TenantID || !r.CreatedAt.Equal(cur.CreatedAt) {
		return fmt.Errorf("%w: request %s: change may not alter ID, TenantID or CreatedAt", sa.ErrInvalidInput, cur.ID)
	}
	return CheckRequest(r)
}

// DistinctEventIDs refuses, with sa.ErrInvalidInput, events of one write
// of which two share an ID (an ID the store holds already is the store's
// to refuse, with sa.ErrConflict).
func DistinctEventIDs(events []sa.Event) error {
	if len(events) < 2 {
		return nil
	}
	seen := make(map[uuid.UUID]struct{}, len(events))
	for i := range events {
		if _, twice := seen[events[i].ID]; twice {
			return fmt.Errorf("%w: event %s appears twice in one write", sa.ErrInvalidInput, events[i].ID)
		}
		seen[events[i].ID] = struct{}{}
	}
	return nil
}

// required refuses the first of the named times that is missing.
func required(what, id, name1 string, missing1 bool, name2 string, missing2 bool) error {
	switch {
	case missing1:
		return fmt.Errorf("%w: %s %s has no %s", sa.ErrInvalidInput, what, id, name1)
	case missing2:
		return fmt.Errorf("%w: %s %s has no %s", sa.ErrInvalidInput, what, id, name2)
	}
	return nil
}
