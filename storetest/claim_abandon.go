package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// testClaimAbandonedOnEventsError: when the events function of a claim
// fails or panics (the Manager's other auditors, host code, record inside
// it), the whole claim is abandoned — nothing claimed, no event stored, no
// hook task, no request expired — and a later claim takes the same items
// with their events. Runs ClaimTransitions for both transitions, and
// ClaimExpirations and ClaimExpiredRequests on stores that have them.
func testClaimAbandonedOnEventsError(t *testing.T, ns NewStore) {
	for _, panics := range []bool{false, true} {
		name := "error"
		if panics {
			name = "panic"
		}
		t.Run(name, func(t *testing.T) { testClaimAbandoned(t, ns, panics) })
	}
}

// testClaimAbandoned is testClaimAbandonedOnEventsError with an events
// function that fails or, with panics, panics.
func testClaimAbandoned(t *testing.T, ns NewStore, panics bool) {
	h := newHarness(t, ns)
	a := h.grant(sa.GrantInput{Duration: time.Hour})
	b := h.grant(sa.GrantInput{Duration: time.Hour, TenantID: "globex"})
	at := h.clock.Now().Add(2 * time.Hour)
	boom := errors.New("auditor down")
	// fail is the failing call of an events function.
	fail := func() error {
		if panics {
			panic(boom)
		}
		return boom
	}
	// fails requires claim to fail with boom, or to panic with it.
	fails := func(claim func() error) {
		t.Helper()
		if panics {
			require.PanicsWithValue(t, boom, func() { _ = claim() })
			return
		}
		require.ErrorIs(t, claim(), boom)
	}
	// failing returns an events function that fails on its second call,
	// and ok one that returns an event of type typ per grant.
	failing := func() func(g sa.Grant) ([]sa.Event, error) {
		calls := 0
		return func(g sa.Grant) ([]sa.Event, error) {
			if calls++; calls == 2 {
				return nil, fail()
			}
			return []sa.Event{{ID: uuid.New(), Time: h.clock.Now(), Type: sa.EventGrantExpired, TenantID: g.TenantID, GrantID: g.ID, Actor: sa.SystemActor}}, nil
		}
	}
	ok := func(typ sa.EventType) func(g sa.Grant) ([]sa.Event, error) {
		return func(g sa.Grant) ([]sa.Event, error) {
			return []sa.Event{{ID: uuid.New(), Time: h.clock.Now(), Type: typ, TenantID: g.TenantID, GrantID: g.ID, Actor: sa.SystemActor}}, nil
		}
	}
	count := func(typ sa.EventType) int {
		evs, isLog := h.eventsOf(typ)
		if !isLog {
			return 0
		}
		return len(evs)
	}
	want := []uuid.UUID{a.ID, b.ID}

	fails(func() error {
		_, err := h.store.ClaimTransitions(h.ctx, sa.TransitionStarted, at, 10, failing())
		return err
	})
	gs, err := h.store.ClaimTransitions(h.ctx, sa.TransitionStarted, at, 10, ok(sa.EventGrantStarted))
	require.NoError(t, err)
	require.ElementsMatch(t, want, grantIDs(gs), "an abandoned claim claims nothing")

	hs, hooked := h.store.(sa.HookStore)
	if hooked {
		fails(func() error {
			_, err := hs.ClaimExpirations(h.ctx, at, 10, sa.Lease{Token: "claimer", Until: at.Add(time.Minute)}, failing())
			return err
		})
		tasks, err := hs.ClaimHookTasks(h.ctx, at, 10, sa.Lease{Token: "other", Until: at.Add(time.Minute)})
		require.NoError(t, err)
		require.Empty(t, tasks, "no hook task of an abandoned claim")
	}
	fails(func() error {
		_, err := h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, at, 10, failing())
		return err
	})
	require.Zero(t, count(sa.EventGrantExpired), "no event of an abandoned claim")
	gs, err = h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, at, 10, ok(sa.EventGrantExpired))
	require.NoError(t, err)
	require.ElementsMatch(t, want, grantIDs(gs))
	if _, isLog := h.store.(sa.AuditLog); isLog {
		require.Equal(t, 2, count(sa.EventGrantStarted))
		require.Equal(t, 2, count(sa.EventGrantExpired))
	}

	rs, ok2 := h.store.(sa.RequestStore)
	if !ok2 {
		return
	}
	r, err := h.m.RequestAccess(h.ctx, sa.RequestInput{TenantID: "acme", By: Engineer, Reason: "ticket"})
	require.NoError(t, err)
	r2, err := h.m.RequestAccess(h.ctx, sa.RequestInput{TenantID: "globex", By: Engineer, Reason: "ticket"})
	require.NoError(t, err)
	calls := 0
	fails(func() error {
		_, err := rs.ClaimExpiredRequests(h.ctx, r.ExpiresAt, 10, func(sa.AccessRequest) ([]sa.Event, error) {
			if calls++; calls == 2 {
				return nil, fail()
			}
			return nil, nil
		})
		return err
	})
	for _, id := range []uuid.UUID{r.ID, r2.ID} {
		got, err := rs.GetRequest(h.ctx, id)
		require.NoError(t, err)
		require.Equal(t, sa.RequestPending, got.Status, "an abandoned claim expires no request")
	}
	rr, err := rs.ClaimExpiredRequests(h.ctx, r.ExpiresAt, 10, func(sa.AccessRequest) ([]sa.Event, error) { return nil, nil })
	require.NoError(t, err)
	require.Len(t, rr, 2)
}
