// Tests written by review 109 (mutation testing of the root package's
// security decisions): each kills a mutant the suite let pass.

package supportaccess_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestReview109GrantSelector holds the exported GrantSelector, which every
// SQL store's Check relies on, to its documented rules from the root
// package: only an active grant that covers the principal counts; a
// covering grant without the scope gives ErrScopeNotGranted, none
// ErrNoActiveGrant; among several, unlimited first, then the latest end,
// then the earliest creation, then the smallest ID.
func TestReview109GrantSelector(t *testing.T) {
	now := storetest.Epoch.Truncate(time.Microsecond)
	mk := func(id byte, ends time.Duration, scopes ...sa.Scope) *sa.Grant {
		g := &sa.Grant{ID: uuid.UUID{id}, TenantID: "acme", Scopes: scopes,
			CreatedAt: now.Add(-time.Hour), StartsAt: now.Add(-time.Hour)}
		if ends != 0 {
			g.ExpiresAt = now.Add(ends)
		}
		return g
	}
	pick := func(p string, s sa.Scope, gs ...*sa.Grant) (*sa.Grant, error) {
		sel := sa.GrantSelector{Principal: p, Scope: s, Now: now}
		for _, g := range gs {
			sel.Offer(g)
		}
		return sel.Result()
	}

	t.Run("denials", func(t *testing.T) {
		revoked := mk(1, 9*time.Hour, sa.ScopeWrite)
		revoked.RevokedAt = now.Add(-time.Minute)
		expired := mk(2, 0, sa.ScopeWrite)
		expired.ExpiresAt = now // half-open window: ended at now
		scheduled := mk(3, 9*time.Hour, sa.ScopeWrite)
		scheduled.StartsAt = now.Add(time.Microsecond)
		other := mk(4, 9*time.Hour, sa.ScopeWrite)
		other.Grantees = []string{"bob@vendor.example"}
		for name, g := range map[string]*sa.Grant{"revoked": revoked, "expired": expired, "scheduled": scheduled, "other principal": other} {
			got, err := pick(mwEve, sa.ScopeRead, g)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, name)
			require.Nil(t, got, name)
		}
		// A covering grant without the scope: ErrScopeNotGranted, not a
		// missing grant (the middleware does not end the session then).
		_, err := pick(mwEve, sa.ScopeWrite, revoked, mk(5, time.Hour, sa.ScopeRead))
		require.ErrorIs(t, err, sa.ErrScopeNotGranted)
		require.NotErrorIs(t, err, sa.ErrNoActiveGrant)
		_, err = pick(mwEve, "messages:read", mk(5, time.Hour, sa.ScopeWrite))
		require.ErrorIs(t, err, sa.ErrScopeNotGranted, "write implies read only, not a host scope")
		// An inactive grant that would win is skipped for an active one.
		active := mk(6, time.Hour, sa.ScopeRead)
		for _, g := range []*sa.Grant{revoked, scheduled} {
			got, err := pick(mwEve, sa.ScopeRead, g, active)
			require.NoError(t, err)
			require.Equal(t, active.ID, got.ID)
		}
	})

	t.Run("choice", func(t *testing.T) {
		short, long := mk(1, time.Hour, sa.ScopeRead), mk(2, 2*time.Hour, sa.ScopeRead)
		unlimited := mk(3, 0, sa.ScopeRead)
		for _, order := range [][]*sa.Grant{{short, long}, {long, short}} {
			got, err := pick(mwEve, sa.ScopeRead, order...)
			require.NoError(t, err)
			require.Equal(t, long.ID, got.ID, "the grant that expires last")
		}
		for _, order := range [][]*sa.Grant{{long, unlimited}, {unlimited, long}} {
			got, err := pick(mwEve, sa.ScopeRead, order...)
			require.NoError(t, err)
			require.Equal(t, unlimited.ID, got.ID, "unlimited first")
		}
		older, newer := mk(5, time.Hour, sa.ScopeRead), mk(4, time.Hour, sa.ScopeRead)
		older.CreatedAt = newer.CreatedAt.Add(-time.Minute)
		for _, order := range [][]*sa.Grant{{older, newer}, {newer, older}} {
			got, err := pick(mwEve, sa.ScopeRead, order...)
			require.NoError(t, err)
			require.Equal(t, older.ID, got.ID, "same end: the earliest created")
		}
		a, b := mk(7, time.Hour, sa.ScopeRead), mk(8, time.Hour, sa.ScopeRead)
		for _, order := range [][]*sa.Grant{{a, b}, {b, a}} {
			got, err := pick(mwEve, sa.ScopeRead, order...)
			require.NoError(t, err)
			require.Equal(t, a.ID, got.ID, "then the smallest ID")
		}
	})
}

// errAndGrantStore is a store whose FindActiveGrant fails but hands back
// an active, covering grant alongside the error (a driver that scanned the
// row before the error, say).
type errAndGrantStore struct {
	*memstore.Store
	answer sa.Grant
}

func (s *errAndGrantStore) FindActiveGrant(context.Context, string, string, sa.Scope, time.Time) (sa.Grant, error) {
	return s.answer, errBoom
}

// TestReview109CheckStoreErrorReturnsNoGrant: when the store fails, Check
// fails closed — the error, and the zero Grant, even when the store
// handed back a grant that would cover the request, so that a caller who
// looks at the grant (its ID, its end) cannot take it for an admission.
func TestReview109CheckStoreErrorReturnsNoGrant(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	st := &errAndGrantStore{Store: e.store, answer: g}
	m, err := sa.NewManager(st, sa.WithNow(e.clock.Now))
	require.NoError(t, err)
	for _, scope := range []sa.Scope{sa.ScopeRead, sa.ScopeWrite} {
		got, err := m.Check(ctx, "acme", support.ID, scope)
		require.ErrorIs(t, err, errBoom)
		require.Zero(t, got, "a failed Check returns no grant")
	}
}

// TestReview109CoversIsExactMatch: a grant covers the principals it names
// exactly, nothing that merely begins like one. Grant.Covers is what the
// Check's defence against a store, Revoke's and RevokeTenant's "support
// gives back only its own access" rules rely on.
func TestReview109CoversIsExactMatch(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Grantees: []string{"eve@vendor.example.org"}})
	prefix := sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example"}

	require.True(t, g.Covers("eve@vendor.example.org"))
	for _, p := range []string{prefix.ID, "eve", "eve@vendor.example.or", "Eve@vendor.example.org"} {
		require.False(t, g.Covers(p), p)
	}

	// Check does not take a store's grant for a principal it only begins with.
	ls := &lyingStore{Store: e.store, answer: g}
	m, err := sa.NewManager(ls, sa.WithNow(e.clock.Now))
	require.NoError(t, err)
	_, err = m.Check(ctx, "acme", prefix.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)

	// Nor may that principal revoke the grant, alone or tenant-wide.
	_, err = e.m.Revoke(ctx, g.ID, prefix, "done")
	require.ErrorIs(t, err, sa.ErrForbidden)
	out, err := e.m.RevokeTenant(ctx, "acme", prefix, "done")
	require.NoError(t, err)
	require.Empty(t, out)
	got, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, sa.StatusActive, got.Status(e.now()))
}

// TestReview109DurationLimitsAreExact: Policy.MaxDuration is the longest
// window Grant gives — not a nanosecond or microsecond more — and, when
// presets are set, only they (and 0 for the default) are accepted, even
// a duration equal to MaxDuration that no preset offers. Each refusal is
// ErrInvalidInput and creates nothing.
func TestReview109DurationLimitsAreExact(t *testing.T) {
	t.Run("maximum", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.MaxDuration = 10 * sa.Day
		e := newEnv(t, sa.WithPolicy(p))
		for _, d := range []time.Duration{p.MaxDuration + time.Nanosecond, p.MaxDuration + time.Microsecond} {
			before := e.snapshot()
			_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: d})
			require.ErrorIs(t, err, sa.ErrInvalidInput, d)
			require.Equal(t, before, e.snapshot())
		}
		g := e.grant(sa.GrantInput{Duration: p.MaxDuration})
		require.Equal(t, g.StartsAt.Add(p.MaxDuration), g.ExpiresAt)
	})
	t.Run("presets only", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.MaxDuration = 30 * sa.Day
		p.Presets = []sa.Preset{{"1 day", sa.Day}, {"1 week", 7 * sa.Day}}
		require.NoError(t, p.Validate())
		e := newEnv(t, sa.WithPolicy(p))
		for _, d := range []time.Duration{p.MaxDuration, 2 * sa.Day} {
			before := e.snapshot()
			_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: d})
			require.ErrorIs(t, err, sa.ErrInvalidInput, d)
			require.Equal(t, before, e.snapshot())
		}
		g := e.grant(sa.GrantInput{Duration: sa.Day})
		require.Equal(t, g.StartsAt.Add(sa.Day), g.ExpiresAt)
	})
}

// TestReview109ScheduleAheadIsExact: a grant may start at most
// Policy.MaxScheduleAhead ahead; a microsecond more is ErrInvalidInput and
// creates nothing.
func TestReview109ScheduleAheadIsExact(t *testing.T) {
	p := sa.DefaultPolicy()
	p.MaxScheduleAhead = 2 * sa.Day
	e := newEnv(t, sa.WithPolicy(p))
	before := e.snapshot()
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: e.now().Add(p.MaxScheduleAhead + time.Microsecond)})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Equal(t, before, e.snapshot())
	s := e.grant(sa.GrantInput{StartsAt: e.now().Add(p.MaxScheduleAhead)})
	require.Equal(t, sa.StatusScheduled, s.Status(e.now()))
}

// TestReview109ImpersonatedCallNeedsSupportKindNotJustID: inside an
// impersonated request, a call is let through only when by is the
// session's support principal as a support actor. A customer (or system)
// actor carrying the support principal's ID — an admin UI that builds
// the actor from the logged-in user's e-mail while support impersonates
// — still acts in the customer's name and is refused (ErrForbidden,
// audited with the support principal as actor), creating nothing.
func TestReview109ImpersonatedCallNeedsSupportKindNotJustID(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var errs []error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c := req.Context()
		for _, kind := range []sa.ActorKind{sa.ActorCustomer, sa.ActorSystem} {
			by := sa.Actor{Kind: kind, ID: mwGeneric}
			_, err := e.m.Grant(c, sa.GrantInput{TenantID: "acme", By: by, Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
			errs = append(errs, err)
			_, err = e.m.Extend(c, g.ID, e.clock.Now().Add(100*sa.Day), by)
			errs = append(errs, err)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := mwDo(h, mwReq(http.MethodPost, "/admin/support-access", "generic"))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Len(t, errs, 4)
	for i, err := range errs {
		require.ErrorIs(t, err, sa.ErrForbidden, "call %d", i)
	}
	require.Len(t, e.events(sa.EventGrantCreated), 1, "only the test's own grant")
	require.Empty(t, e.events(sa.EventGrantExtended))
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, len(errs))
	for _, ev := range refused {
		require.Equal(t, sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}, ev.Actor)
		require.Contains(t, ev.Reason, "impersonated support session")
	}
}

// TestReview109OnlySupportRequestsWhateverTheAuthorizer: RequestAccess is
// support's way in; a customer or system actor is refused with
// ErrForbidden (audited as action.refused, nothing stored) even when the
// host's Authorizer allows every action.
func TestReview109OnlySupportRequestsWhateverTheAuthorizer(t *testing.T) {
	allowAll := func(context.Context, sa.Action, sa.Actor, string) error { return nil }
	e := newEnv(t, sa.WithAuthorizer(allowAll))
	for _, by := range []sa.Actor{customer, system} {
		before := e.snapshotWithout(sa.EventActionRefused)
		_, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: by, Reason: "r"})
		require.ErrorIs(t, err, sa.ErrForbidden, by.Kind)
		require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused))
		require.Empty(t, e.requests())
	}
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 2)
	require.Equal(t, customer, refused[0].Actor)
	require.Equal(t, string(sa.ActionRequest), refused[0].Attrs[sa.AttrAction])
	e.request(sa.RequestInput{}) // support may
}
