// Package stored holds what memstore and sqlstore share about the grants
// and access requests they keep: the canonical form of their times
// (canon.Time: UTC, microseconds), so that a write returns what a read
// does, and the rules a write must meet, so that both refuse alike.
package stored

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/canon"
)

// Grant brings g's times to the canonical form, in place.
func Grant(g *sa.Grant) { canon.Times(&g.CreatedAt, &g.StartsAt, &g.ExpiresAt, &g.RevokedAt) }

// Request brings r's times to the canonical form, in place.
func Request(r *sa.AccessRequest) { canon.Times(&r.StartsAt, &r.CreatedAt, &r.ExpiresAt, &r.DecidedAt) }

// The widths every bundled store keeps (MySQL's columns hold no more, and
// PostgreSQL's indexes little more), so that each refuses a wider value
// alike, with sa.ErrInvalidInput, before it changes anything. The
// Manager's own limits (supportaccess.MaxTenantIDLen and the others) are
// narrower: only a direct store call can reach these.
const (
	MaxTenantID   = 512   // bytes: tenant IDs
	MaxTicketRef  = 512   // bytes: ticket references
	MaxActorKind  = 32    // bytes: an actor's Kind
	MaxActorID    = 1280  // bytes: an actor's ID, and an event's session ID
	MaxActorName  = 1000  // characters: an actor's Name
	MaxEventType  = 255   // bytes: an event's Type
	MaxText       = 65535 // bytes: reasons
	MaxLeaseToken = 255   // bytes: a hook lease's token
)

// MinTime and MaxTime bound the times the stores keep: the first instant
// of year 1000 and the last microsecond of year 9999, the range of MySQL's
// DATETIME. MinTime is also the earliest now a store's query or claim
// accepts, so that a query's answer is never that of another instant, and
// an event's Time lies between them.
var (
	MinTime = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)
)

// CheckTime refuses, with sa.ErrInvalidInput, a time t outside [MinTime,
// MaxTime] (the zero time, none, passes), which a store could not keep as
// given: MySQL refuses it, PostgreSQL's driver and SQLite's Unix
// microseconds would wrap around, and an SQL store's query bounds are
// clamped to the range. name names t in the error.
func CheckTime(name string, t time.Time) error {
	if t.IsZero() || !t.Before(MinTime) && !t.After(MaxTime) {
		return nil
	}
	return fmt.Errorf("%w: %s %s is outside years 1000 to 9999", sa.ErrInvalidInput, name, t.UTC().Format(time.RFC3339Nano))
}

// checkTimes refuses, as CheckTime, the first of times ts (named by
// names) of record what with ID id.
func checkTimes(what, id string, names [4]string, ts [4]time.Time) error {
	for i, t := range ts {
		if err := CheckTime(names[i], t); err != nil {
			return fmt.Errorf("%s %s: %w", what, id, err)
		}
	}
	return nil
}

// CheckNow refuses, with sa.ErrInvalidInput, a query's or claim's now that
// is zero or before MinTime: an SQL store would compare the stored times
// with MinTime (or NULL) instead, and answer as of another instant (a start
// at MinTime due in year 999).
func CheckNow(now time.Time) error {
	if now.Before(MinTime) {
		return fmt.Errorf("%w: now %s is before year 1000", sa.ErrInvalidInput, now.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// MaxHookCount is the largest Done or Attempts of a hook task a store keeps
// (the SQL stores' columns are 32-bit).
const MaxHookCount = math.MaxInt32

// CheckHookTask refuses, with sa.ErrInvalidInput, a task FinishHookTasks
// is to keep (not Complete) without a NextAt, with a Done or Attempts
// below 0 or above MaxHookCount, or with a NextAt CheckTime refuses.
func CheckHookTask(t *sa.HookTask) error {
	if t.Complete {
		return nil
	}
	switch {
	case t.NextAt.IsZero():
		return fmt.Errorf("%w: hook task of grant %s has no NextAt", sa.ErrInvalidInput, t.Grant.ID)
	case t.Done < 0 || t.Done > MaxHookCount || t.Attempts < 0 || t.Attempts > MaxHookCount:
		return fmt.Errorf("%w: hook task of grant %s: Done %d or Attempts %d is outside [0, %d]", sa.ErrInvalidInput, t.Grant.ID, t.Done, t.Attempts, MaxHookCount)
	}
	if err := CheckTime("NextAt", t.NextAt); err != nil {
		return fmt.Errorf("hook task of grant %s: %w", t.Grant.ID, err)
	}
	return nil
}

// CheckLease refuses, with sa.ErrInvalidInput, a lease without a Token or
// an end, with a Token wider than MaxLeaseToken, or with an end CheckTime
// refuses.
func CheckLease(l sa.Lease) error {
	switch {
	case l.Token == "":
		return fmt.Errorf("%w: lease has no Token", sa.ErrInvalidInput)
	case len(l.Token) > MaxLeaseToken:
		return fmt.Errorf("%w: lease Token is longer than the %d bytes a store keeps", sa.ErrInvalidInput, MaxLeaseToken)
	case l.Until.IsZero():
		return fmt.Errorf("%w: lease has no Until", sa.ErrInvalidInput)
	}
	return CheckTime("lease Until", l.Until)
}

// CheckFilterTypes refuses, as AuditFilter.Validate does, a filter with
// more than sa.MaxFilterTypes event types: a SQL store binds one
// parameter per type, and a driver's limit would fail the query with an
// error of its own (a store called directly gets no Validate first).
func CheckFilterTypes(f sa.AuditFilter) error {
	if len(f.Types) > sa.MaxFilterTypes {
		return fmt.Errorf("%w: Types has %d entries, more than %d", sa.ErrInvalidInput, len(f.Types), sa.MaxFilterTypes)
	}
	return nil
}

// widths checks the fields of one record against the widths its stores
// keep, remembering the first too wide (names are joined only then, so
// that a record that fits costs no allocation).
type widths struct {
	what string
	id   uuid.UUID
	err  error
}

// check refuses v, field name (prefix, if any, then name), when it is
// longer than max bytes, or characters when chars is set.
func (w *widths) check(prefix, name, v string, max int, chars bool) {
	if w.err != nil || len(v) <= max {
		return
	}
	unit := "bytes"
	if chars {
		if utf8.RuneCountInString(v) <= max {
			return
		}
		unit = "characters"
	}
	w.err = fmt.Errorf("%w: %s %s: %s%s is longer than the %d %s a store keeps", sa.ErrInvalidInput, w.what, w.id, prefix, name, max, unit)
}

// actor checks the fields of actor a, named after prefix.
func (w *widths) actor(prefix string, a sa.Actor) {
	w.check(prefix, ".Kind", string(a.Kind), MaxActorKind, false)
	w.check(prefix, ".ID", a.ID, MaxActorID, false)
	w.check(prefix, ".Name", a.Name, MaxActorName, true)
}

// CheckGrant refuses, with sa.ErrInvalidInput, a grant without the times
// every grant has: CreatedAt and StartsAt (the Manager always sets them;
// an SQL store's columns are NOT NULL), with a time CheckTime refuses, or
// with a field wider than the stores keep (see MaxTenantID).
func CheckGrant(g *sa.Grant) error {
	id := g.ID.String()
	if err := required("grant", id, "CreatedAt", g.CreatedAt.IsZero(), "StartsAt", g.StartsAt.IsZero()); err != nil {
		return err
	}
	if err := checkTimes("grant", id, [4]string{"CreatedAt", "StartsAt", "ExpiresAt", "RevokedAt"},
		[4]time.Time{g.CreatedAt, g.StartsAt, g.ExpiresAt, g.RevokedAt}); err != nil {
		return err
	}
	w := widths{what: "grant", id: g.ID}
	w.check("", "TenantID", g.TenantID, MaxTenantID, false)
	w.check("", "TicketRef", g.TicketRef, MaxTicketRef, false)
	w.check("", "Reason", g.Reason, MaxText, false)
	w.check("", "RevokeReason", g.RevokeReason, MaxText, false)
	w.actor("GrantedBy", g.GrantedBy)
	w.actor("RevokedBy", g.RevokedBy)
	return w.err
}

// CheckRequest refuses, with sa.ErrInvalidInput, a request without the
// times every request has, CreatedAt and ExpiresAt, with a time CheckTime
// refuses, with a Status that is not Valid, or with a field wider than the
// stores keep (see MaxTenantID).
func CheckRequest(r *sa.AccessRequest) error {
	id := r.ID.String()
	if err := required("request", id, "CreatedAt", r.CreatedAt.IsZero(), "ExpiresAt", r.ExpiresAt.IsZero()); err != nil {
		return err
	}
	if err := checkTimes("request", id, [4]string{"CreatedAt", "StartsAt", "ExpiresAt", "DecidedAt"},
		[4]time.Time{r.CreatedAt, r.StartsAt, r.ExpiresAt, r.DecidedAt}); err != nil {
		return err
	}
	if !r.Status.Valid() {
		return fmt.Errorf("%w: request %s: unknown Status %q", sa.ErrInvalidInput, id, string(r.Status))
	}
	w := widths{what: "request", id: r.ID}
	w.check("", "TenantID", r.TenantID, MaxTenantID, false)
	w.check("", "TicketRef", r.TicketRef, MaxTicketRef, false)
	w.check("", "Reason", r.Reason, MaxText, false)
	w.check("", "DecisionReason", r.DecisionReason, MaxText, false)
	w.actor("RequestedBy", r.RequestedBy)
	w.actor("DecidedBy", r.DecidedBy)
	return w.err
}

// CheckEvent refuses, with sa.ErrInvalidInput, an event without a Time or
// with one outside years 1000 to 9999 (an SQL store would keep a clamped
// time the event's hash does not cover, and VerifyAudit would report the
// genuine event as tampered), or with a field wider than the stores keep
// (see MaxTenantID).
func CheckEvent(e *sa.Event) error {
	if e.Time.IsZero() {
		return fmt.Errorf("%w: event %s has no Time", sa.ErrInvalidInput, e.ID)
	}
	if err := CheckTime("Time", e.Time); err != nil {
		// Outside RFC 3339's four-digit years an export could not write
		// it as its format says, nor VerifyJSONL read it back.
		return fmt.Errorf("event %s: %w", e.ID, err)
	}
	w := widths{what: "event", id: e.ID}
	w.check("", "TenantID", e.TenantID, MaxTenantID, false)
	w.check("", "Type", string(e.Type), MaxEventType, false)
	w.check("", "Reason", e.Reason, MaxText, false)
	w.check("Attrs", "["+sa.AttrSessionID+"]", e.Attrs[sa.AttrSessionID], MaxActorID, false)
	w.actor("Actor", e.Actor)
	return w.err
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
