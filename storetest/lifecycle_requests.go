package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func testRequestsCreateGet(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, true, false, sa.WithPolicy(unlimitedPolicy()))
	rs := h.requests()
	r := h.request(sa.RequestInput{Duration: 36*time.Hour + 7*time.Microsecond, Scopes: []sa.Scope{"messages:read", sa.ScopeWrite},
		Reason: "línea 1\n'; DROP TABLE x; --", TicketRef: "T-42", StartsAt: h.clock.Now().Add(time.Hour + 3*time.Microsecond)})
	got, err := rs.GetRequest(h.ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got, "every field round-trips")
	require.Equal(t, time.UTC, got.CreatedAt.Location())
	require.Zero(t, got.StartsAt.Nanosecond()%1000)
	require.True(t, got.DecidedAt.IsZero())
	require.Equal(t, uuid.Nil, got.GrantID)

	u := h.request(sa.RequestInput{Duration: sa.Unlimited})
	got, err = rs.GetRequest(h.ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, sa.Unlimited, got.Duration)
	require.True(t, got.StartsAt.IsZero())
	require.Equal(t, u, got)

	got.Scopes[0] = "admin"
	again, err := rs.GetRequest(h.ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, u, again, "returned values are copies")

	_, err = rs.GetRequest(h.ctx, uuid.New())
	require.ErrorIs(t, err, sa.ErrNotFound)
	err = rs.CreateRequest(h.ctx, r, nil)
	require.ErrorIs(t, err, sa.ErrConflict)

	if evs, ok := h.eventsOf(sa.EventRequestCreated); ok {
		require.Len(t, evs, 2)
		require.Equal(t, r.ID.String(), evs[0].Attrs[sa.AttrRequestID])
		var after sa.AccessRequest
		require.NoError(t, jsonUnmarshal(evs[0].After, &after))
		require.Equal(t, r, after)
	}
}

func testRequestsList(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, true, false)
	a := h.request(sa.RequestInput{TicketRef: "T-1"})
	h.clock.Advance(time.Microsecond)
	b := h.request(sa.RequestInput{TenantID: "globex", By: Support, TicketRef: "T-1"})
	h.clock.Advance(time.Microsecond)
	c := h.request(sa.RequestInput{TicketRef: "T-2"})
	_, err := h.m.Deny(h.ctx, c.ID, Customer, "no")
	require.NoError(t, err)
	h.clock.Advance(time.Microsecond)
	d := h.request(sa.RequestInput{})
	_, err = h.m.Approve(h.ctx, d.ID, Customer, sa.ApproveInput{})
	require.NoError(t, err)

	q := func(f sa.RequestFilter, now time.Time) []uuid.UUID {
		t.Helper()
		rs, err := h.requests().ListRequests(h.ctx, f, now)
		require.NoError(t, err)
		out := []uuid.UUID{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	now := h.clock.Now()
	require.Equal(t, []uuid.UUID{d.ID, c.ID, b.ID, a.ID}, q(sa.RequestFilter{}, now), "newest first")
	require.Equal(t, []uuid.UUID{d.ID, c.ID}, q(sa.RequestFilter{Limit: 2}, now))
	require.Equal(t, []uuid.UUID{d.ID, c.ID, a.ID}, q(sa.RequestFilter{TenantID: "acme"}, now))
	require.Equal(t, []uuid.UUID{b.ID}, q(sa.RequestFilter{RequestedBy: Support.ID}, now))
	require.Equal(t, []uuid.UUID{b.ID, a.ID}, q(sa.RequestFilter{TicketRef: "T-1"}, now))
	require.Equal(t, []uuid.UUID{a.ID}, q(sa.RequestFilter{TicketRef: "T-1", TenantID: "acme"}, now))
	require.Equal(t, []uuid.UUID{b.ID, a.ID}, q(sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestPending}}, now))
	require.Equal(t, []uuid.UUID{d.ID}, q(sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestApproved}}, now))
	require.Equal(t, []uuid.UUID{d.ID, c.ID}, q(sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestDenied, sa.RequestApproved}}, now))
	require.Equal(t, []uuid.UUID{}, q(sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestExpired}}, now))
	require.Equal(t, []uuid.UUID{}, q(sa.RequestFilter{TenantID: "initech"}, now))
	require.Equal(t, []uuid.UUID{}, q(sa.RequestFilter{TenantID: "acm"}, now), "tenant ids compare exactly")

	// Statuses are evaluated at now: a pending request past ExpiresAt is
	// expired, a decided one keeps its decision.
	exp, pend, den := []sa.RequestStatus{sa.RequestExpired}, []sa.RequestStatus{sa.RequestPending}, []sa.RequestStatus{sa.RequestDenied}
	require.Equal(t, []uuid.UUID{a.ID}, q(sa.RequestFilter{Statuses: exp}, a.ExpiresAt))
	require.Equal(t, []uuid.UUID{b.ID}, q(sa.RequestFilter{Statuses: pend}, a.ExpiresAt), "b is 1µs younger")
	require.Equal(t, []uuid.UUID{b.ID, a.ID}, q(sa.RequestFilter{Statuses: exp}, b.ExpiresAt))
	require.Equal(t, []uuid.UUID{}, q(sa.RequestFilter{Statuses: pend}, b.ExpiresAt))
	require.Equal(t, []uuid.UUID{c.ID}, q(sa.RequestFilter{Statuses: den}, b.ExpiresAt))
}

func testRequestsUpdate(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, true, false)
	rs := h.requests()
	r := h.request(sa.RequestInput{})
	called := false
	_, err := rs.UpdateRequest(h.ctx, uuid.New(), func(*sa.AccessRequest) ([]sa.Event, error) {
		called = true
		return nil, nil
	})
	require.ErrorIs(t, err, sa.ErrNotFound)
	require.False(t, called, "change is not called for a missing request")

	before := countEvents(h)
	boom := errors.New("boom")
	_, err = rs.UpdateRequest(h.ctx, r.ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
		x.Status = sa.RequestDenied
		return []sa.Event{{ID: uuid.New(), Time: h.clock.Now(), Type: sa.EventRequestDenied, TenantID: "acme"}}, boom
	})
	require.ErrorIs(t, err, boom)
	got, err := rs.GetRequest(h.ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got, "nothing written")
	require.Equal(t, before, countEvents(h))

	d, err := h.m.Deny(h.ctx, r.ID, Customer, "not now")
	require.NoError(t, err)
	got, err = rs.GetRequest(h.ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, d, got)
	require.Equal(t, sa.RequestDenied, got.Status)
	require.Equal(t, Customer, got.DecidedBy)
	require.Equal(t, "not now", got.DecisionReason)
	if evs, ok := h.eventsOf(sa.EventRequestDenied); ok {
		require.Len(t, evs, 1)
	}
}

func testApproveAtomic(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, true, false)
	rs := h.requests()
	r := h.request(sa.RequestInput{})
	existing := h.grant(sa.GrantInput{})
	before := countEvents(h)

	// A grant that cannot be created (duplicate ID): nothing is written.
	_, _, err := rs.ApproveRequest(h.ctx, r.ID, func(x *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
		x.Status, x.GrantID = sa.RequestApproved, existing.ID
		g := existing
		g.RequestID = x.ID
		return g, []sa.Event{{ID: uuid.New(), Time: h.clock.Now(), Type: sa.EventRequestApproved, TenantID: "acme"}}, nil
	})
	require.ErrorIs(t, err, sa.ErrConflict)
	got, err := rs.GetRequest(h.ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got, "the request is unchanged")
	require.Equal(t, before, countEvents(h), "no event")
	g, err := h.store.GetGrant(h.ctx, existing.ID)
	require.NoError(t, err)
	require.Equal(t, existing, g)

	// An error from approve: nothing is written.
	boom := errors.New("boom")
	_, _, err = rs.ApproveRequest(h.ctx, r.ID, func(x *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
		x.Status = sa.RequestApproved
		return sa.Grant{ID: uuid.New(), TenantID: "acme"}, nil, boom
	})
	require.ErrorIs(t, err, boom)
	_, _, err = rs.ApproveRequest(h.ctx, uuid.New(), func(x *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
		t.Error("approve called for a missing request")
		return sa.Grant{}, nil, nil
	})
	require.ErrorIs(t, err, sa.ErrNotFound)
	gs, err := h.m.List(h.ctx, sa.ListFilter{})
	require.NoError(t, err)
	require.Len(t, gs, 1)

	// Through the Manager: request, grant and both events together.
	h.clock.Advance(time.Hour)
	ng, err := h.m.Approve(h.ctx, r.ID, Customer, sa.ApproveInput{})
	require.NoError(t, err)
	stored, err := h.store.GetGrant(h.ctx, ng.ID)
	require.NoError(t, err)
	require.Equal(t, ng, stored)
	require.Equal(t, r.ID, stored.RequestID)
	got, err = rs.GetRequest(h.ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestApproved, got.Status)
	require.Equal(t, ng.ID, got.GrantID)
	require.True(t, got.DecidedAt.Equal(h.clock.Now().Truncate(time.Microsecond)))
	c, err := h.m.Check(h.ctx, "acme", Engineer.ID, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, ng.ID, c.ID, "the approved grant expires last")
	if evs, ok := h.eventsOf(sa.EventRequestApproved, sa.EventGrantCreated); ok {
		var approval []sa.Event
		for _, e := range evs {
			if e.GrantID == ng.ID {
				approval = append(approval, e)
			}
		}
		require.Len(t, approval, 2)
		require.Equal(t, sa.EventRequestApproved, approval[0].Type)
		require.Equal(t, sa.EventGrantCreated, approval[1].Type)
	}
}

// testApprovedGrantTransitionsPending pins that a grant made
// by ApproveRequest has its start and expiry pending like a created one:
// it can be revoked and extended, and ClaimTransitions claims its start and
// then its expiry. Kills (sqlstore, requests.go changeRequest): the
// insertDue of the approved grant dropped (SQLite: no grant_due rows, so
// the grant counted as expired-recorded — Revoke refused with
// ErrInvalidInput — and its transitions were never claimed).
func testApprovedGrantTransitionsPending(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, true, false)
	revoked, err := h.m.Approve(h.ctx, h.request(sa.RequestInput{}).ID, Customer, sa.ApproveInput{})
	require.NoError(t, err)
	_, err = h.m.Revoke(h.ctx, revoked.ID, Customer, "done")
	require.NoError(t, err, "an approved grant can be revoked")

	g, err := h.m.Approve(h.ctx, h.request(sa.RequestInput{}).ID, Customer, sa.ApproveInput{})
	require.NoError(t, err)
	g, err = h.m.Extend(h.ctx, g.ID, g.ExpiresAt.Add(time.Hour), Customer)
	require.NoError(t, err, "an approved grant can be extended")

	claim := func(tr sa.Transition, at time.Time) []uuid.UUID {
		t.Helper()
		gs, err := h.store.ClaimTransitions(h.ctx, tr, at, 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
		require.NoError(t, err)
		return grantIDs(gs)
	}
	require.Equal(t, []uuid.UUID{g.ID}, claim(sa.TransitionStarted, g.StartsAt), "the approved grant's start is claimed, the revoked one's is not")
	require.Empty(t, claim(sa.TransitionExpired, g.ExpiresAt.Add(-time.Microsecond)), "not expired yet")
	require.Equal(t, []uuid.UUID{g.ID}, claim(sa.TransitionExpired, g.ExpiresAt), "the approved grant's expiry is claimed")
	require.Empty(t, claim(sa.TransitionExpired, g.ExpiresAt.Add(time.Hour)), "once")
}

func testApproveConcurrent(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, true, false)
	m2, err := sa.NewManager(h.store, sa.WithNow(h.clock.Now))
	require.NoError(t, err)
	for round := 0; round < 3; round++ {
		r := h.request(sa.RequestInput{})
		var ok, lost atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			m := h.m
			if i%2 == 1 {
				m = m2
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if i == 5 {
					_, err = m.Deny(h.ctx, r.ID, Customer, "")
				} else {
					_, err = m.Approve(h.ctx, r.ID, Customer, sa.ApproveInput{})
				}
				switch {
				case err == nil:
					ok.Add(1)
				case isInvalidOrConflict(err):
					lost.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 1, ok.Load(), "exactly one decision wins")
		require.EqualValues(t, 7, lost.Load())
		got, err := h.m.GetRequest(h.ctx, r.ID)
		require.NoError(t, err)
		gs, err := h.m.List(h.ctx, sa.ListFilter{})
		require.NoError(t, err)
		linked := 0
		for _, g := range gs {
			if g.RequestID == r.ID {
				linked++
				require.Equal(t, got.GrantID, g.ID)
			}
		}
		if got.Status == sa.RequestApproved {
			require.Equal(t, 1, linked, "one grant")
		} else {
			require.Equal(t, sa.RequestDenied, got.Status)
			require.Zero(t, linked)
		}
		if l, isLog := h.store.(sa.AuditLog); isLog {
			evs, err := l.Events(h.ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventRequestApproved, sa.EventRequestDenied}})
			require.NoError(t, err)
			n := 0
			for _, e := range evs {
				if e.Attrs[sa.AttrRequestID] == r.ID.String() {
					n++
				}
			}
			require.Equal(t, 1, n, "one decision event")
		}
	}
}

func testRequestsExpireOnce(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, true, false)
	rs := h.requests()
	a := h.request(sa.RequestInput{})
	h.clock.Advance(time.Second)
	b := h.request(sa.RequestInput{})
	c := h.request(sa.RequestInput{})
	d := h.request(sa.RequestInput{})
	_, err := h.m.Approve(h.ctx, c.ID, Customer, sa.ApproveInput{})
	require.NoError(t, err)
	_, err = h.m.Deny(h.ctx, d.ID, Customer, "")
	require.NoError(t, err)
	none := func(sa.AccessRequest) ([]sa.Event, error) { return nil, nil }

	got, err := rs.ClaimExpiredRequests(h.ctx, a.ExpiresAt.Add(-time.Microsecond), 10, none)
	require.NoError(t, err)
	require.Empty(t, got, "not due 1µs before ExpiresAt")
	got, err = rs.ClaimExpiredRequests(h.ctx, a.ExpiresAt, 10, none)
	require.NoError(t, err)
	require.Len(t, got, 1, "due at ExpiresAt")
	require.Equal(t, a.ID, got[0].ID)
	require.Equal(t, sa.RequestExpired, got[0].Status)
	stored, err := rs.GetRequest(h.ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestExpired, stored.Status, "stored")
	got, err = rs.ClaimExpiredRequests(h.ctx, a.ExpiresAt, 10, none)
	require.NoError(t, err)
	require.Empty(t, got, "once")

	// Through the Manager, by concurrent sweeps: b expires once; decided
	// requests never expire.
	h.clock.Set(b.ExpiresAt.Add(time.Hour))
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.m.Sweep(h.ctx); err != nil {
				t.Errorf("sweep: %v", err)
			}
		}()
	}
	wg.Wait()
	for id, want := range map[uuid.UUID]sa.RequestStatus{b.ID: sa.RequestExpired, c.ID: sa.RequestApproved, d.ID: sa.RequestDenied} {
		r, err := rs.GetRequest(h.ctx, id)
		require.NoError(t, err)
		require.Equal(t, want, r.Status)
	}
	if evs, ok := h.eventsOf(sa.EventRequestExpired); ok {
		require.Len(t, evs, 1, "only b, once (a was claimed without events)")
		require.Equal(t, b.ID.String(), evs[0].Attrs[sa.AttrRequestID])
		require.Equal(t, sa.ActorSystem, evs[0].Actor.Kind)
	}
	_, err = h.m.Approve(h.ctx, b.ID, Customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

func testDelegatePersists(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Grantees: []string{Engineer.ID}, Duration: time.Hour})
	_, err := h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	d, err := h.m.AddGrantee(h.ctx, g.ID, Support.ID, Engineer)
	require.NoError(t, err)
	got, err := h.store.GetGrant(h.ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, d, got)
	require.Equal(t, []string{Engineer.ID, Support.ID}, got.Grantees)
	c, err := h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err, "the colleague is in")
	require.Equal(t, g.ID, c.ID)
	_, err = h.m.Check(h.ctx, "acme", Engineer.ID, sa.ScopeRead)
	require.NoError(t, err, "the delegating principal keeps access")
	_, err = h.m.AddGrantee(h.ctx, g.ID, "x@vendor.example", Customer)
	require.NoError(t, err)
	if evs, ok := h.eventsOf(sa.EventGrantDelegated); ok {
		require.Len(t, evs, 2)
		require.Equal(t, Support.ID, evs[0].Attrs[sa.AttrPrincipal])
		require.Equal(t, Engineer, evs[0].Actor)
	}
	open := h.grant(sa.GrantInput{})
	_, err = h.m.AddGrantee(h.ctx, open.ID, Support.ID, Customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}
