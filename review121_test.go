package supportaccess_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Review 121: mutants of the grant lifecycle (grant.go, revoke.go,
// expiry.go) that the suite let survive.

// An unlimited grant has no end to check against year 9999, so StartsAt
// must be checked on its own: a grant scheduled to start after the end of
// year 9999 is malformed input and writes nothing (GrantInput.StartsAt).
func TestReview121UnlimitedGrantStartingAfterYear9999IsRefused(t *testing.T) {
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	e := newEnv(t, sa.WithPolicy(p))
	before := e.snapshot()
	for _, starts := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC).Add(time.Microsecond),
	} {
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: starts, Duration: sa.Unlimited})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "unlimited grant starting %s", starts)
		require.Contains(t, err.Error(), "StartsAt")
	}
	require.Equal(t, before, e.snapshot(), "nothing written")

	// The last microsecond of year 9999 is a valid start.
	last := time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)
	g := e.grant(sa.GrantInput{StartsAt: last, Duration: sa.Unlimited})
	require.Equal(t, last, g.StartsAt)
	require.True(t, g.Unlimited())
}

// A grant records who granted it as they are: a system actor the host's
// Authorizer lets grant is the GrantedBy of the grant and the actor of
// grant.created, not a customer of the same ID.
func TestReview121GrantedByIsTheActorAsGiven(t *testing.T) {
	allow := sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error { return nil })
	e := newEnv(t, allow)
	g := e.grant(sa.GrantInput{By: system})
	require.Equal(t, system, g.GrantedBy)
	stored, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, system, stored.GrantedBy)
	created := e.events(sa.EventGrantCreated)
	require.Len(t, created, 1)
	require.Equal(t, system, created[0].Actor)
}

// RevokeTenant and RevokeTicket ask the Authorizer about the tenant
// before anything else: an actor it refuses gets ErrForbidden (audited)
// also when the tenant has no grant to revoke — the per-grant check alone
// would answer "nothing revoked" and let the actor probe the tenant.
func TestReview121BulkRevokeRefusedActorIsForbiddenEvenWithNothingToRevoke(t *testing.T) {
	rule := func(_ context.Context, _ sa.Action, by sa.Actor, _ string) error {
		if by == customer {
			return nil
		}
		return errors.New("not an admin of this tenant")
	}
	intruder := sa.Actor{Kind: sa.ActorCustomer, ID: "intruder@globex.example"}
	e := newEnv(t, sa.WithAuthorizer(rule))
	before := e.snapshot()

	out, err := e.m.RevokeTenant(ctx, "acme", intruder, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Empty(t, out)
	out, err = e.m.RevokeTicket(ctx, "acme", "T-1", intruder, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Empty(t, out)

	require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused), "nothing else written")
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 2, "each refusal is audited")
	for _, ev := range refused {
		require.Equal(t, intruder, ev.Actor)
		require.Equal(t, "acme", ev.TenantID)
		require.Equal(t, "revoke", ev.Attrs[sa.AttrAction])
	}
}

// grant.expired, recorded by a Sweep that may run long after the grant's
// end, keeps that end in Attrs["expires_at"] (RFC 3339, microseconds,
// UTC; see EventGrantExpired), and is recorded by the system.
func TestReview121GrantExpiredEventKeepsExpiresAt(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Duration: sa.Day})
	e.clock.Set(g.ExpiresAt.Add(5 * time.Hour))
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	evs := e.events(sa.EventGrantExpired)
	require.Len(t, evs, 1)
	require.Equal(t, g.ID, evs[0].GrantID)
	require.Equal(t, sa.SystemActor, evs[0].Actor)
	require.Equal(t, e.now(), evs[0].Time, "recorded when the sweep ran")
	require.Equal(t, g.ExpiresAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), evs[0].Attrs[sa.AttrExpiresAt])
}
