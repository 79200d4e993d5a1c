package supportaccess_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Manager.PurgeAudit: "PurgeAudit deletes tenantID's audit events older
// than before (retention)"; AuditPurger: "every event up to (not
// including) the first one whose Time is not before before".
//
// The Manager truncates before to the microsecond (down) before handing it
// to the store, so an event whose Time lies in [trunc(before), before) —
// older than before — is kept, "Nothing is deleted", and Events with
// Until: before (which the Manager passes on unrounded, "as
// AuditFilter.Match does") still lists it. A cutoff computed as
// time.Now().Add(-retention) has nanoseconds, so this is the ordinary case.
func TestReview71PurgeAuditKeepsEventOlderThanBefore(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{})
	evs := e.events()
	require.Len(t, evs, 1)
	cutoff := evs[0].Time.Add(500 * time.Nanosecond) // the event is older than this

	older, err := e.m.Events(ctx, sa.AuditFilter{TenantID: "acme", Until: cutoff})
	require.NoError(t, err)
	require.Len(t, older, 1, "Events agrees that the event is older than the cutoff")

	res, err := e.m.PurgeAudit(ctx, "acme", cutoff)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Deleted, "the event older than before must be deleted")
}

// Sentinel errors: "Every error returned by the Manager wraps at most one
// of these (plus context naming the operation and, for ErrInvalidInput,
// the field); compare with errors.Is".
//
// An Authorizer refusal whose error wraps another sentinel (for example
// ErrNotFound from a membership lookup done through the Manager) comes
// back wrapping both ErrForbidden and that sentinel, so a host mapping
// errors.Is(err, ErrNotFound) to 404 before ErrForbidden to 403 (or
// ErrInvalidInput to 400) misreports a refusal.
func TestReview71AuthorizerRefusalWrapsTwoSentinels(t *testing.T) {
	e := newEnv(t, sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error {
		return fmt.Errorf("admin membership: %w", sa.ErrNotFound)
	}))
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorIs(t, err, sa.ErrForbidden)
	n := 0
	for _, s := range []error{sa.ErrNoActiveGrant, sa.ErrNotFound, sa.ErrForbidden, sa.ErrInvalidInput, sa.ErrScopeNotGranted, sa.ErrConflict} {
		if errors.Is(err, s) {
			n++
		}
	}
	require.LessOrEqual(t, n, 1, "the error wraps %d sentinels: %v", n, err)
	require.ErrorContains(t, err, "admin membership", "the host's reason is kept in the message")

	// The host's own errors stay reachable, through errors.Is and errors.As.
	errNotAdmin := errors.New("not an admin")
	e = newEnv(t, sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error {
		return &review71AuthzError{err: fmt.Errorf("%w: %w", errNotAdmin, sa.ErrInvalidInput)}
	}))
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.ErrorIs(t, err, errNotAdmin)
	require.NotErrorIs(t, err, sa.ErrInvalidInput)
	var ae *review71AuthzError
	require.ErrorAs(t, err, &ae)

	// An Authorizer's ErrForbidden is the refusal itself, its text unprefixed.
	e = newEnv(t, sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error {
		return fmt.Errorf("%w: %w", sa.ErrForbidden, sa.ErrNotFound)
	}))
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.NotErrorIs(t, err, sa.ErrNotFound)
	require.Equal(t, "grant: supportaccess: forbidden: supportaccess: not found", err.Error())
}

type review71AuthzError struct{ err error }

func (e *review71AuthzError) Error() string { return "authz: " + e.err.Error() }
func (e *review71AuthzError) Unwrap() error { return e.err }

// NewManager: "Errors: ErrInvalidInput when store is nil, ...: a Manager
// never runs without an audit trail."
//
// A nil *memstore.Store (or *sqlstore.Store, as sqlstore.New returns on an
// error the README's sketch discards) passes the check: NewManager returns
// a Manager whose first call panics. WithTracerProvider and
// WithMeterProvider already treat "a nil pointer" as nil.
func TestReview71NewManagerAcceptsNilPointerStore(t *testing.T) {
	var s *memstore.Store
	m, err := sa.NewManager(s)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a nil store pointer must be refused")
	require.Nil(t, m)
}
