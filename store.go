package supportaccess

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Store persists grants. It holds no policy: the Manager validates,
// authorises and builds events; a Store keeps what it is given and answers
// queries exactly. Implementations must be safe for concurrent use, keep
// copies of what they are given and return copies (callers may not be able
// to change stored state through a value they passed in or got back), keep
// times to the microsecond in UTC, and pass the conformance suite in
// package storetest. A claim's limit must be positive: 0 or less is
// ErrInvalidInput (every Claim method). A context that ends while a write
// method's change function runs makes it write nothing and return the
// context's error (storetest's case CanceledDuringChangeWritesNothing).
//
// Events handed to a write method are the audit events of that change: a
// Store that also implements Auditor persists them in the same transaction
// as the change (assigning Seq and Hash as the audit chain requires, see
// Event.ChainHash), so that neither exists without the other. A Store that
// is not an Auditor receives nil.
//
// Every bundled store keeps values up to these widths, and refuses a wider
// one with ErrInvalidInput before it changes anything (storetest's case
// WiderThanStoresKeepRefused): tenant IDs and ticket references 512
// bytes, an actor's Kind 32 bytes, ID 1280 bytes and Name 1000
// characters, an event's Type 255 bytes and session ID 1280 bytes,
// reasons 65535 bytes. The Manager's own limits (MaxTenantIDLen and the
// others) are narrower; only a direct call of a store reaches these. So
// is the now of a list or claim: the bundled stores keep no time before
// year 1000 and refuse a now before it (the zero time included) with
// ErrInvalidInput (storetest's case NowBeforeYear1000); FindActiveGrant
// finds no grant active then (ErrNoActiveGrant). They refuse alike, with
// ErrInvalidInput, a grant's, request's, hook task's or lease's time, or
// an event's Time, outside years 1000 to 9999 (storetest's cases
// GrantTimesOutsideYearsRefused, RequestTimesRefused and
// HookTaskTimesRefused): MySQL's DATETIME holds no other, and an export
// could not write it in RFC 3339.
type Store interface {
	// CreateGrant stores the new grant g (its ID is fresh) together with
	// events. A duplicate ID is an error wrapping ErrConflict; a grant
	// without CreatedAt or StartsAt is ErrInvalidInput.
	CreateGrant(ctx context.Context, g Grant, events []Event) error

	// GetGrant returns the grant with the given ID, or an error wrapping
	// ErrNotFound.
	GetGrant(ctx context.Context, id uuid.UUID) (Grant, error)

	// ListGrants returns the grants matching f, evaluating f.Statuses at
	// now, ordered by CreatedAt descending then ID descending, at most
	// f.Limit (all when 0 or negative). No match is an empty result, not
	// an error; a status in f.Statuses that is not Valid is
	// ErrInvalidInput.
	ListGrants(ctx context.Context, f ListFilter, now time.Time) ([]Grant, error)

	// FindActiveGrant answers Check: among the grants of tenantID that are
	// active at now (not revoked, StartsAt <= now, ExpiresAt zero or after
	// now) it returns the one a GrantSelector picks for principal and scope,
	// or the selector's ErrNoActiveGrant / ErrScopeNotGranted. It must not
	// look at other tenants' grants and should be a single indexed query.
	FindActiveGrant(ctx context.Context, tenantID, principal string, scope Scope, now time.Time) (Grant, error)

	// UpdateGrant changes one grant atomically: it reads the current grant
	// with the given ID under a lock (or in a serialisable transaction),
	// calls change with a copy, and, if change returns no error, stores the
	// changed grant and the returned events in one transaction. Concurrent
	// UpdateGrant calls for one grant are serialised: the second sees the
	// first's result. An error from change is returned unchanged and
	// nothing is written. A missing grant is ErrNotFound (change is not
	// called). A grant whose expiry ClaimTransitions recorded is final:
	// UpdateGrant returns an error wrapping ErrInvalidInput without calling
	// change, deciding on the claim as of the lock, so that no replica can
	// extend, revoke or otherwise change a grant the trail says expired —
	// whatever its clock says. change must not alter ID, TenantID or
	// CreatedAt, clear CreatedAt or StartsAt, or undo a revocation (clear
	// RevokedAt): UpdateGrant refuses that with ErrInvalidInput and writes
	// nothing.
	UpdateGrant(ctx context.Context, id uuid.UUID, change func(g *Grant) ([]Event, error)) (Grant, error)

	// ClaimTransitions records lifecycle transitions exactly once across
	// any number of concurrent callers (replicas). It finds up to limit
	// grants for which transition t is due at now and not yet claimed —
	// TransitionStarted: not revoked and StartsAt <= now;
	// TransitionExpired: not revoked, ExpiresAt not zero and <= now, and
	// the start claimed (an expiry is never claimed before its start;
	// storetest.ClaimStarts claims them for tests of expiries) — in order
	// of the due time, grants due at one time in byte order of their IDs,
	// marks each as claimed for t, and stores the events events(g)
	// returns, all in one transaction. It returns the grants it claimed,
	// in that order; grants claimed by a concurrent caller are skipped,
	// never returned twice. Grants created after the transition time (for
	// example a grant created active) are claimed too, so each grant gets
	// each transition once. events may be nil (no events). If events
	// returns an error the claim is abandoned — nothing is claimed or
	// stored, the grants stay due — and ClaimTransitions returns that
	// error: the Manager's other auditors record inside it, and a
	// transition is never recorded without its event. If events panics,
	// the claim is abandoned alike and the panic goes on to the caller.
	ClaimTransitions(ctx context.Context, t Transition, now time.Time, limit int, events func(Grant) ([]Event, error)) ([]Grant, error)
}

// Transition is a lifecycle step recorded once per grant by the sweeper.
type Transition int

// Transitions recorded by Sweep.
const (
	TransitionStarted Transition = iota + 1
	TransitionExpired
)

// String returns "started" or "expired".
func (t Transition) String() string {
	switch t {
	case TransitionStarted:
		return "started"
	case TransitionExpired:
		return "expired"
	}
	return fmt.Sprintf("Transition(%d)", int(t))
}

// GrantSelector picks the grant Check returns. Stores feed it every active
// grant of the tenant (in any order) with Offer and ask Result; every
// backend thereby applies the same rules: the grant must cover the
// principal (named, or open to any principal) and allow the scope; among
// several, the one expiring last wins (unlimited first), then the
// earliest-created, then the smallest ID, so the choice is deterministic.
type GrantSelector struct {
	Principal string
	Scope     Scope
	Now       time.Time

	best    *Grant
	covered bool
}

// Offer considers g. The selector keeps the pointer; g must stay unchanged
// until Result.
func (s *GrantSelector) Offer(g *Grant) {
	if g.status(s.Now) != StatusActive || !g.covers(s.Principal) {
		return
	}
	s.covered = true
	if !hasScope(g.Scopes, s.Scope) {
		return
	}
	if s.best == nil || better(g, s.best) {
		s.best = g
	}
}

// Result returns the chosen grant (not copied) or ErrScopeNotGranted when a
// covering grant lacks the scope, else ErrNoActiveGrant.
func (s *GrantSelector) Result() (*Grant, error) {
	switch {
	case s.best != nil:
		return s.best, nil
	case s.covered:
		return nil, ErrScopeNotGranted
	default:
		return nil, ErrNoActiveGrant
	}
}

// better reports whether a should be preferred over b.
func better(a, b *Grant) bool {
	switch {
	case a.ExpiresAt.IsZero() != b.ExpiresAt.IsZero():
		return a.ExpiresAt.IsZero()
	case !a.ExpiresAt.Equal(b.ExpiresAt):
		return a.ExpiresAt.After(b.ExpiresAt)
	case !a.CreatedAt.Equal(b.CreatedAt):
		return a.CreatedAt.Before(b.CreatedAt)
	default:
		return bytes.Compare(a.ID[:], b.ID[:]) < 0
	}
}
