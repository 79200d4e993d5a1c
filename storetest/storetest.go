// Package storetest is the conformance suite every supportaccess.Store must
// pass. A backend's test calls Run with a function that returns a fresh,
// empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) supportaccess.Store { return memstore.New() })
//	}
//
// The suite goes through the public API (a Manager with an injected clock,
// and the Store methods directly where the contract is about the store) and
// checks errors by kind with errors.Is, never by message. Stores that also
// implement Auditor and AuditLog get the audit cases.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// NewStore returns a fresh, empty store for one subtest. It registers its
// own clean-up with t.Cleanup.
type NewStore func(t *testing.T) sa.Store

// Clock is a manual clock for tests, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Epoch is the start time of every suite clock: a time with microseconds
// (and nanoseconds, which the Manager truncates).
var Epoch = time.Date(2026, 3, 14, 15, 9, 26, 535897_932, time.UTC)

// Customer, Support and Engineer (a second support principal) are the
// actors the suite uses.
var (
	Customer = sa.Actor{Kind: sa.ActorCustomer, ID: "admin@acme.example", Name: "Ada Admin"}
	Support  = sa.Actor{Kind: sa.ActorSupport, ID: "support+acme@vendor.example"}
	Engineer = sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example"}
)

// harness is one subtest's world.
type harness struct {
	t     *testing.T
	ctx   context.Context
	store sa.Store
	clock *Clock
	m     *sa.Manager
}

func newHarness(t *testing.T, newStore NewStore, opts ...sa.Option) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), store: newStore(t), clock: NewClock(Epoch)}
	m, err := sa.NewManager(h.store, append([]sa.Option{sa.WithNow(h.clock.Now)}, opts...)...)
	require.NoError(t, err)
	h.m = m
	return h
}

func (h *harness) grant(in sa.GrantInput) sa.Grant {
	h.t.Helper()
	if in.By.IsZero() {
		in.By = Customer
	}
	if in.TenantID == "" {
		in.TenantID = "acme"
	}
	g, err := h.m.Grant(h.ctx, in)
	require.NoError(h.t, err)
	return g
}

// auditor is the store as an Auditor; it skips the test when the store is
// none.
func (h *harness) auditor() sa.Auditor {
	h.t.Helper()
	a, ok := h.store.(sa.Auditor)
	if !ok {
		h.t.Skip("store does not implement Auditor")
	}
	return a
}

func (h *harness) auditLog() sa.AuditLog {
	h.t.Helper()
	l, ok := h.store.(sa.AuditLog)
	if !ok {
		h.t.Skip("store does not implement AuditLog")
	}
	return l
}

// testCase is one named conformance case.
type testCase struct {
	name string
	fn   func(t *testing.T, newStore NewStore)
}

// Run runs the conformance suite against the stores newStore returns.
func Run(t *testing.T, newStore NewStore) {
	t.Helper()
	cases := []testCase{
		{"CreateAndGet", testCreateAndGet},
		{"GetNotFound", testGetNotFound},
		{"UpdateNotFound", testUpdateNotFound},
		{"DuplicateCreateConflicts", testDuplicateCreate},
		{"MicrosecondRoundTrip", testMicrosecondRoundTrip},
		{"GrantTimesOutsideYearsRefused", testGrantTimesOutsideYearsRefused},
		{"ReturnedValuesAreCopies", testCopies},
		{"ListByTenantStatusTicket", testList},
		{"ListOrderAndLimit", testListOrder},
		{"CheckWindowBoundaries", testCheckBoundaries},
		{"CheckScheduled", testCheckScheduled},
		{"CheckPrefersLatestExpiry", testCheckPrefers},
		{"CheckNamedGrantees", testCheckGrantees},
		{"CheckScopes", testCheckScopes},
		{"CheckRevoked", testCheckRevoked},
		{"TenantIsolation", testTenantIsolation},
		{"UpdateErrorWritesNothing", testUpdateErrorWritesNothing},
		{"ConcurrentRevokeOneWins", testConcurrentRevoke},
		{"ConcurrentExtendSerialised", testConcurrentExtend},
		{"ExtendPersists", testExtendPersists},
		{"ClaimTransitionsOnce", testClaimOnce},
		{"ClaimTransitionsConcurrent", testClaimConcurrent},
		{"ClaimSkipsRevoked", testClaimSkipsRevoked},
		{"ClaimFollowsChangedTimes", testClaimFollowsChangedTimes},
		{"ClaimAfterTimeReturns", testClaimAfterTimeReturns},
		{"UpdateRefusedOnceExpiryRecorded", testUpdateRefusedOnceExpiryRecorded},
		{"InjectionShapedValues", testInjectionShaped},
		{"CanceledContext", testCanceledContext},
	}
	cases = append(cases, auditCases...)
	cases = append(cases, lifecycleCases...)
	cases = append(cases, directCases...)
	cases = append(cases, contractCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore) })
	}
}

func testCreateAndGet(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Duration: 24 * time.Hour, Reason: "ticket 42", TicketRef: "T-42",
		Grantees: []string{"b@vendor.example", "a@vendor.example"}, Scopes: []sa.Scope{"messages:read", sa.ScopeWrite}})
	got, err := h.store.GetGrant(h.ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got)
	require.Equal(t, []string{"a@vendor.example", "b@vendor.example"}, got.Grantees)
	require.Equal(t, []sa.Scope{"messages:read", sa.ScopeWrite}, got.Scopes)
	require.Equal(t, Customer, got.GrantedBy)
	require.Equal(t, "T-42", got.TicketRef)
	require.Equal(t, h.clock.Now().Truncate(time.Microsecond).Add(24*time.Hour), got.ExpiresAt)

	// An any-principal grant round-trips with nil Grantees.
	g2 := h.grant(sa.GrantInput{})
	got2, err := h.m.Get(h.ctx, g2.ID)
	require.NoError(t, err)
	require.Nil(t, got2.Grantees)
	require.Equal(t, g2, got2)
}

func testGetNotFound(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	_, err := h.store.GetGrant(h.ctx, uuid.New())
	require.ErrorIs(t, err, sa.ErrNotFound)
	_, err = h.m.Revoke(h.ctx, uuid.New(), Customer, "")
	require.ErrorIs(t, err, sa.ErrNotFound)
}

func testUpdateNotFound(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	called := false
	_, err := h.store.UpdateGrant(h.ctx, uuid.New(), func(*sa.Grant) ([]sa.Event, error) {
		called = true
		return nil, nil
	})
	require.ErrorIs(t, err, sa.ErrNotFound)
	require.False(t, called, "change must not be called for a missing grant")
}

func testDuplicateCreate(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{})
	err := h.store.CreateGrant(h.ctx, g, nil)
	require.ErrorIs(t, err, sa.ErrConflict)
}

func testMicrosecondRoundTrip(t *testing.T, ns NewStore) {
	h := newHarness(t, ns, sa.WithPolicy(unlimitedPolicy()))
	// A clock in another zone with nanoseconds: stored UTC, microseconds.
	h.clock.Set(time.Date(2026, 7, 1, 23, 59, 59, 999_999_999, time.FixedZone("X", 5*3600+1800)))
	g := h.grant(sa.GrantInput{Duration: time.Hour + 7*time.Microsecond, StartsAt: h.clock.Now().Add(time.Minute + 3*time.Microsecond)})
	got, err := h.store.GetGrant(h.ctx, g.ID)
	require.NoError(t, err)
	for _, ts := range []time.Time{got.CreatedAt, got.StartsAt, got.ExpiresAt} {
		require.Equal(t, time.UTC, ts.Location())
		require.Zero(t, ts.Nanosecond()%1000)
	}
	require.True(t, got.CreatedAt.Equal(h.clock.Now().Truncate(time.Microsecond)))
	require.Equal(t, g.StartsAt.Add(time.Hour+7*time.Microsecond), got.ExpiresAt)
	require.Equal(t, g, got)

	u := h.grant(sa.GrantInput{Duration: sa.Unlimited})
	gotU, err := h.store.GetGrant(h.ctx, u.ID)
	require.NoError(t, err)
	require.True(t, gotU.ExpiresAt.IsZero())
	require.True(t, gotU.RevokedAt.IsZero())
	require.Equal(t, u, gotU)

	// A Duration with a nanosecond part: the grant returned, the grant
	// stored and the event agree on a whole-microsecond end.
	n := h.grant(sa.GrantInput{Duration: time.Hour + 1500*time.Nanosecond})
	require.Zero(t, n.ExpiresAt.Nanosecond()%1000, "returned ExpiresAt")
	gotN, err := h.store.GetGrant(h.ctx, n.ID)
	require.NoError(t, err)
	require.Equal(t, n, gotN)
	require.Equal(t, n.StartsAt.Add(time.Hour+time.Microsecond), gotN.ExpiresAt, "truncated, never rounded up")
}

// testGrantTimesOutsideYearsRefused: a grant written straight to the
// store with a time outside years 1000 to 9999 (which the Manager never
// passes) is refused with ErrInvalidInput and nothing is stored or
// changed — by every store alike (memstore kept a start in year 999,
// active there and nowhere else; review99) — and never wrapped around into
// an active grant, as a Unix-microsecond int64 overflow would make it.
func testGrantTimesOutsideYearsRefused(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	now := h.clock.Now()
	// now + 2^64 µs + 1 s (year 586 000 or so), which as int64 Unix
	// microseconds wraps around to now + 1 s: 2^64 µs is 18 446 744 073 709 s
	// and 551 616 µs.
	far := time.Unix(now.Unix()+18_446_744_073_709+1, int64(now.Nanosecond())+551_616_000).UTC()
	year999 := time.Date(999, 6, 1, 0, 0, 0, 0, time.UTC)
	year10000 := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	grant := func(created, starts, expires time.Time) sa.Grant {
		return sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: Customer,
			CreatedAt: created, StartsAt: starts, ExpiresAt: expires}
	}
	for name, g := range map[string]sa.Grant{
		"StartsAt far ahead":      grant(now, far, far.Add(time.Hour)),
		"StartsAt in year 999":    grant(now, year999, time.Time{}),
		"CreatedAt in year 999":   grant(year999, now, time.Time{}),
		"ExpiresAt in year 10000": grant(now, now, year10000),
	} {
		require.ErrorIs(t, h.store.CreateGrant(h.ctx, g, nil), sa.ErrInvalidInput, "CreateGrant: %s", name)
		_, err := h.store.GetGrant(h.ctx, g.ID)
		require.ErrorIs(t, err, sa.ErrNotFound, "%s: nothing stored", name)
	}
	for _, at := range []time.Time{now, now.Add(2 * time.Second), now.Add(24 * time.Hour)} {
		_, err := h.store.FindActiveGrant(h.ctx, "acme", Support.ID, sa.ScopeRead, at)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "at %s", at)
	}
	g := h.grant(sa.GrantInput{Duration: time.Hour})
	for name, change := range map[string]func(*sa.Grant){
		"ExpiresAt in year 10000": func(g *sa.Grant) { g.ExpiresAt = year10000 },
		"RevokedAt in year 999":   func(g *sa.Grant) { g.RevokedAt, g.RevokedBy = year999, Customer },
	} {
		_, err := h.store.UpdateGrant(h.ctx, g.ID, func(g *sa.Grant) ([]sa.Event, error) {
			change(g)
			return nil, nil
		})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "UpdateGrant: %s", name)
		got, err := h.store.GetGrant(h.ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got, "%s: unchanged", name)
	}
	claimed, err := h.store.ClaimTransitions(h.ctx, sa.TransitionStarted, now.Add(24*time.Hour), 10, nil)
	require.NoError(t, err)
	require.Len(t, claimed, 1, "only the grant stored above starts")
	require.Equal(t, g.ID, claimed[0].ID)
}

func testCopies(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Grantees: []string{"a@vendor.example"}, Scopes: []sa.Scope{sa.ScopeRead}})
	got, err := h.store.GetGrant(h.ctx, g.ID)
	require.NoError(t, err)
	got.Grantees[0] = "mallory@evil.example"
	got.Scopes[0] = sa.ScopeWrite
	c, err := h.m.Check(h.ctx, "acme", "a@vendor.example", sa.ScopeRead)
	require.NoError(t, err)
	c.Scopes[0] = "admin"
	f, err := h.store.FindActiveGrant(h.ctx, "acme", "a@vendor.example", sa.ScopeRead, h.clock.Now())
	require.NoError(t, err)
	f.Grantees[0] = "mallory@evil.example"
	f.Scopes[0] = sa.ScopeWrite
	again, err := h.store.GetGrant(h.ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, again)
	_, err = h.m.Check(h.ctx, "acme", "mallory@evil.example", sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
}

func testList(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	active := h.grant(sa.GrantInput{TicketRef: "T-1", Duration: time.Hour})
	scheduled := h.grant(sa.GrantInput{TicketRef: "T-2", StartsAt: h.clock.Now().Add(time.Hour)})
	revoked := h.grant(sa.GrantInput{TicketRef: "T-1"})
	_, err := h.m.Revoke(h.ctx, revoked.ID, Customer, "done")
	require.NoError(t, err)
	other := h.grant(sa.GrantInput{TenantID: "globex", TicketRef: "T-1"})
	h.clock.Advance(30 * time.Minute)
	short := h.grant(sa.GrantInput{Duration: time.Minute})
	h.clock.Advance(time.Hour) // active and short expired, scheduled active

	ids := func(gs []sa.Grant) []uuid.UUID {
		var out []uuid.UUID
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}
	all, err := h.m.List(h.ctx, sa.ListFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{active.ID, scheduled.ID, revoked.ID, short.ID}, ids(all))

	exp, err := h.m.List(h.ctx, sa.ListFilter{TenantID: "acme", Statuses: []sa.Status{sa.StatusExpired}})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{active.ID, short.ID}, ids(exp))

	act, err := h.m.List(h.ctx, sa.ListFilter{TenantID: "acme", Statuses: []sa.Status{sa.StatusActive, sa.StatusRevoked}})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{scheduled.ID, revoked.ID}, ids(act))

	h.clock.Set(Epoch)
	sch, err := h.m.List(h.ctx, sa.ListFilter{Statuses: []sa.Status{sa.StatusScheduled}})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{scheduled.ID, short.ID}, ids(sch), "status is evaluated at now")

	t1, err := h.m.List(h.ctx, sa.ListFilter{TenantID: "acme", TicketRef: "T-1"})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{active.ID, revoked.ID}, ids(t1))

	anyTenant, err := h.m.List(h.ctx, sa.ListFilter{TicketRef: "T-1"})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{active.ID, revoked.ID, other.ID}, ids(anyTenant))

	none, err := h.m.List(h.ctx, sa.ListFilter{TenantID: "nobody"})
	require.NoError(t, err)
	require.Empty(t, none)
}

func testListOrder(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	var want []uuid.UUID
	for i := 0; i < 5; i++ {
		g := h.grant(sa.GrantInput{})
		want = append([]uuid.UUID{g.ID}, want...)
		h.clock.Advance(time.Microsecond)
	}
	got, err := h.m.List(h.ctx, sa.ListFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, got, 5)
	for i, g := range got {
		require.Equal(t, want[i], g.ID, "newest first")
	}
	lim, err := h.m.List(h.ctx, sa.ListFilter{TenantID: "acme", Limit: 2})
	require.NoError(t, err)
	require.Len(t, lim, 2)
	require.Equal(t, want[0], lim[0].ID)
	require.Equal(t, want[1], lim[1].ID)
}

func testCheckBoundaries(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Duration: time.Hour})
	got, err := h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err, "active at StartsAt")
	require.Equal(t, g.ID, got.ID)

	h.clock.Set(g.ExpiresAt.Add(-time.Microsecond))
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err, "active at ExpiresAt-1µs")

	h.clock.Set(g.ExpiresAt)
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "expired at ExpiresAt")

	h.clock.Set(g.ExpiresAt.Add(999 * time.Nanosecond)) // truncated to ExpiresAt
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
}

func testCheckScheduled(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	starts := h.clock.Now().Add(2 * time.Hour)
	g := h.grant(sa.GrantInput{StartsAt: starts, Duration: time.Hour})
	require.Equal(t, sa.StatusScheduled, g.Status(h.clock.Now()))
	_, err := h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "scheduled, not yet started")
	h.clock.Set(g.StartsAt.Add(-time.Microsecond))
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "1µs before start")
	h.clock.Set(g.StartsAt)
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err, "at start")
	require.Equal(t, starts.Truncate(time.Microsecond).Add(time.Hour), g.ExpiresAt, "duration counts from the start")
}

func testCheckPrefers(t *testing.T, ns NewStore) {
	h := newHarness(t, ns, sa.WithPolicy(unlimitedPolicy()))
	h.grant(sa.GrantInput{Duration: time.Hour})
	long := h.grant(sa.GrantInput{Duration: 3 * time.Hour})
	h.grant(sa.GrantInput{Duration: 2 * time.Hour})
	got, err := h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, long.ID, got.ID, "the grant expiring last")
	unl := h.grant(sa.GrantInput{Duration: sa.Unlimited})
	got, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, unl.ID, got.ID, "unlimited first")
	_, err = h.m.Revoke(h.ctx, unl.ID, Customer, "")
	require.NoError(t, err)
	got, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, long.ID, got.ID, "access holds while any grant is active")
}

func testCheckGrantees(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Grantees: []string{Engineer.ID}})
	got, err := h.m.Check(h.ctx, "acme", Engineer.ID, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, g.ID, got.ID)
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "wrong principal")
	_, err = h.m.Check(h.ctx, "acme", "EVE@vendor.example", sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "principals compare exactly")
	open := h.grant(sa.GrantInput{Duration: time.Hour})
	got, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err, "an any-principal grant covers everyone")
	require.Equal(t, open.ID, got.ID)
}

func testCheckScopes(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	read := h.grant(sa.GrantInput{})
	_, err := h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted, "read grant, write asked")
	_, err = h.m.Check(h.ctx, "acme", Support.ID, "messages:read")
	require.ErrorIs(t, err, sa.ErrScopeNotGranted, "elevated scope not implied")
	got, err := h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, read.ID, got.ID)

	write := h.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}, Duration: time.Hour})
	got, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeWrite)
	require.NoError(t, err)
	require.Equal(t, write.ID, got.ID)
	got, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err, "write implies read")
	require.Equal(t, read.ID, got.ID, "the read grant expires last")
	_, err = h.m.Check(h.ctx, "acme", Support.ID, "messages:read")
	require.ErrorIs(t, err, sa.ErrScopeNotGranted, "write does not imply elevated scopes")

	msg := h.grant(sa.GrantInput{Scopes: []sa.Scope{"messages:read"}, Duration: time.Hour})
	got, err = h.m.Check(h.ctx, "acme", Support.ID, "messages:read")
	require.NoError(t, err)
	require.Equal(t, msg.ID, got.ID)
	_, err = h.m.Check(h.ctx, "acme", Support.ID, "messages:write")
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)

	// Scope missing on the only grant covering a named principal.
	named := h.grant(sa.GrantInput{TenantID: "globex", Grantees: []string{Engineer.ID}})
	_, err = h.m.Check(h.ctx, "globex", Engineer.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = h.m.Check(h.ctx, "globex", Support.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "not covered at all: no grant, not a scope problem")
	_ = named
}

func testCheckRevoked(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{})
	_, err := h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err)
	r, err := h.m.Revoke(h.ctx, g.ID, Customer, "case closed")
	require.NoError(t, err)
	require.Equal(t, sa.StatusRevoked, r.Status(h.clock.Now()))
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	got, err := h.m.Get(h.ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, r, got)
	require.Equal(t, Customer, got.RevokedBy)
	require.Equal(t, "case closed", got.RevokeReason)
	require.True(t, got.RevokedAt.Equal(h.clock.Now().Truncate(time.Microsecond)))
}

func testTenantIsolation(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	h.grant(sa.GrantInput{TenantID: "acme", Scopes: []sa.Scope{sa.ScopeWrite}})
	_, err := h.m.Check(h.ctx, "globex", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "other tenant")
	_, err = h.m.Check(h.ctx, "acm", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "prefix of tenant")
	_, err = h.m.Check(h.ctx, "ACME", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "tenant ids compare exactly")
	_, err = h.m.Check(h.ctx, "acme%", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "no pattern matching")
	gs, err := h.m.List(h.ctx, sa.ListFilter{TenantID: "globex"})
	require.NoError(t, err)
	require.Empty(t, gs)
}

func testUpdateErrorWritesNothing(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{})
	before := countEvents(h)
	boom := fmt.Errorf("boom")
	_, err := h.store.UpdateGrant(h.ctx, g.ID, func(x *sa.Grant) ([]sa.Event, error) {
		x.RevokedAt = h.clock.Now()
		return []sa.Event{{ID: uuid.New(), Time: h.clock.Now(), Type: sa.EventGrantRevoked, TenantID: "acme"}}, boom
	})
	require.ErrorIs(t, err, boom)
	got, err := h.store.GetGrant(h.ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got)
	require.Equal(t, before, countEvents(h))
}

func countEvents(h *harness) int {
	l, ok := h.store.(sa.AuditLog)
	if !ok {
		return -1
	}
	evs, err := l.Events(h.ctx, sa.AuditFilter{})
	require.NoError(h.t, err)
	return len(evs)
}

func testConcurrentRevoke(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	// A second Manager on the same store plays the other replica.
	m2, err := sa.NewManager(h.store, sa.WithNow(h.clock.Now))
	require.NoError(t, err)
	for round := 0; round < 5; round++ {
		g := h.grant(sa.GrantInput{})
		var ok, invalid atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			m := h.m
			if i%2 == 1 {
				m = m2
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := m.Revoke(h.ctx, g.ID, Customer, fmt.Sprint("by ", i))
				switch {
				case err == nil:
					ok.Add(1)
				case isInvalidOrConflict(err):
					invalid.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, 1, ok.Load(), "exactly one revoke wins")
		require.EqualValues(t, 7, invalid.Load())
		if _, isLog := h.store.(sa.AuditLog); isLog {
			evs, err := h.m.Events(h.ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventGrantRevoked}})
			require.NoError(t, err)
			require.Len(t, evs, 1, "one grant.revoked event")
		}
	}
}

func isInvalidOrConflict(err error) bool {
	return errorsIs(err, sa.ErrInvalidInput) || errorsIs(err, sa.ErrConflict)
}

func testConcurrentExtend(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Duration: time.Hour})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 1; i <= 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.m.Extend(h.ctx, g.ID, g.ExpiresAt.Add(time.Duration(i)*time.Minute), Customer)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	if _, isLog := h.store.(sa.AuditLog); !isLog {
		return
	}
	evs, err := h.m.Events(h.ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventGrantExtended}})
	require.NoError(t, err)
	require.Len(t, evs, 10)
	// Serialised: each event's Before is some earlier event's After, and the
	// stored grant equals the last event's After.
	got, err := h.m.Get(h.ctx, g.ID)
	require.NoError(t, err)
	afters := map[string]bool{string(mustJSON(t, g)): true}
	for _, e := range evs {
		afters[string(e.After)] = true
	}
	for _, e := range evs {
		require.True(t, afters[string(e.Before)], "Before of an extension is the state some change left")
	}
	found := false
	for _, e := range evs {
		if string(e.After) == string(mustJSON(t, got)) {
			found = true
		}
	}
	require.True(t, found, "stored grant is one extension's After")
}

func testExtendPersists(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Duration: time.Hour})
	to := g.ExpiresAt.Add(90*time.Minute + 11*time.Microsecond)
	e, err := h.m.Extend(h.ctx, g.ID, to, Customer)
	require.NoError(t, err)
	require.Equal(t, to, e.ExpiresAt)
	got, err := h.m.Get(h.ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, e, got)
	h.clock.Set(g.ExpiresAt.Add(time.Minute))
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.NoError(t, err, "extended grant still active after its old end")
	h.clock.Set(to)
	_, err = h.m.Check(h.ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
}

func testClaimOnce(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	a := h.grant(sa.GrantInput{Duration: time.Hour})
	b := h.grant(sa.GrantInput{Duration: 2 * time.Hour})
	c := h.grant(sa.GrantInput{StartsAt: h.clock.Now().Add(30 * time.Minute), Duration: 3 * time.Hour})
	ev := func(sa.Grant) ([]sa.Event, error) { return nil, nil }

	started, err := h.store.ClaimTransitions(h.ctx, sa.TransitionStarted, h.clock.Now(), 10, ev)
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{a.ID, b.ID}, grantIDs(started), "grants that began (created active)")
	again, err := h.store.ClaimTransitions(h.ctx, sa.TransitionStarted, h.clock.Now(), 10, ev)
	require.NoError(t, err)
	require.Empty(t, again)

	h.clock.Advance(time.Hour)
	started, err = h.store.ClaimTransitions(h.ctx, sa.TransitionStarted, h.clock.Now(), 10, ev)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{c.ID}, grantIDs(started))

	exp, err := h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, a.ExpiresAt.Add(-time.Microsecond), 10, ev)
	require.NoError(t, err)
	require.Empty(t, exp, "not due 1µs before ExpiresAt")
	exp, err = h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, a.ExpiresAt, 10, ev)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{a.ID}, grantIDs(exp), "due at ExpiresAt")

	h.clock.Advance(10 * time.Hour)
	exp, err = h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, h.clock.Now(), 1, ev)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{b.ID}, grantIDs(exp), "limit, in order of expiry")
	exp, err = h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, h.clock.Now(), 10, ev)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{c.ID}, grantIDs(exp))

	// Through the Manager: Sweep counts expiries and records them once.
	d := h.grant(sa.GrantInput{Duration: time.Minute})
	h.clock.Advance(time.Minute)
	n, err := h.m.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = h.m.Sweep(h.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	if _, ok := h.store.(sa.AuditLog); ok {
		evs, err := h.m.Events(h.ctx, sa.AuditFilter{GrantID: d.ID, Types: []sa.EventType{sa.EventGrantExpired, sa.EventGrantStarted}})
		require.NoError(t, err)
		require.Len(t, evs, 2)
		require.Equal(t, sa.EventGrantStarted, evs[0].Type)
		require.Equal(t, sa.EventGrantExpired, evs[1].Type)
		require.Equal(t, sa.ActorSystem, evs[1].Actor.Kind)
	}
}

// grantIDs returns the IDs of gs in order.
func grantIDs(gs []sa.Grant) []uuid.UUID {
	return idsOf(gs, func(g *sa.Grant) uuid.UUID { return g.ID })
}

// idsOf returns the IDs of xs in order (never nil), id reading one.
func idsOf[T any](xs []T, id func(*T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(xs))
	for i := range xs {
		out = append(out, id(&xs[i]))
	}
	return out
}

func testClaimConcurrent(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	const n = 60
	for i := 0; i < n; i++ {
		h.grant(sa.GrantInput{Duration: time.Duration(i+1) * time.Second})
	}
	h.clock.Advance(time.Hour)
	h.claimStarts(h.clock.Now())
	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				gs, err := h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, h.clock.Now(), 7, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				mu.Lock()
				for _, g := range gs {
					seen[g.ID]++
				}
				mu.Unlock()
				if len(gs) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, n)
	for id, c := range seen {
		require.Equal(t, 1, c, "grant %s claimed %d times", id, c)
	}
}

func testClaimSkipsRevoked(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Duration: time.Hour})
	s := h.grant(sa.GrantInput{StartsAt: h.clock.Now().Add(time.Minute)})
	_, err := h.m.Revoke(h.ctx, g.ID, Customer, "")
	require.NoError(t, err)
	_, err = h.m.Revoke(h.ctx, s.ID, Customer, "")
	require.NoError(t, err)
	h.clock.Advance(2 * time.Hour)
	for _, tr := range []sa.Transition{sa.TransitionStarted, sa.TransitionExpired} {
		gs, err := h.store.ClaimTransitions(h.ctx, tr, h.clock.Now(), 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
		require.NoError(t, err)
		require.Empty(t, gs, "revoked grants neither start nor expire (%s)", tr)
	}
}

// claimIDs claims up to 10 transitions tr due at at, without events, and
// returns the claimed grants' IDs.
func (h *harness) claimIDs(tr sa.Transition, at time.Time) []uuid.UUID {
	h.t.Helper()
	gs, err := h.store.ClaimTransitions(h.ctx, tr, at, 10, nil)
	require.NoError(h.t, err)
	return grantIDs(gs)
}

// setGrant changes grant id with f through UpdateGrant, without events.
func (h *harness) setGrant(id uuid.UUID, f func(g *sa.Grant)) {
	h.t.Helper()
	_, err := h.store.UpdateGrant(h.ctx, id, func(g *sa.Grant) ([]sa.Event, error) {
		f(g)
		return nil, nil
	})
	require.NoError(h.t, err)
}

// testClaimFollowsChangedTimes: a transition is due at the grant's current
// StartsAt or ExpiresAt, however UpdateGrant moved them, and is claimed
// once: a transition already claimed does not come back when the time
// moves again.
func testClaimFollowsChangedTimes(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	claim, set := h.claimIDs, h.setGrant
	now := h.clock.Now()
	extended := h.grant(sa.GrantInput{Duration: time.Hour})
	shortened := h.grant(sa.GrantInput{Duration: 3 * time.Hour})
	later := h.grant(sa.GrantInput{StartsAt: now.Add(time.Hour), Duration: time.Hour})
	limited := h.grant(sa.GrantInput{Duration: time.Hour})
	unlimited := h.grant(sa.GrantInput{Duration: time.Hour})
	require.ElementsMatch(t, []uuid.UUID{extended.ID, shortened.ID, limited.ID, unlimited.ID}, claim(sa.TransitionStarted, now))

	set(extended.ID, func(g *sa.Grant) { g.ExpiresAt = now.Add(4 * time.Hour) })
	set(shortened.ID, func(g *sa.Grant) { g.ExpiresAt = now.Add(30 * time.Minute) })
	set(later.ID, func(g *sa.Grant) { g.StartsAt, g.ExpiresAt = now.Add(2*time.Hour), now.Add(5*time.Hour) })
	set(limited.ID, func(g *sa.Grant) { g.ExpiresAt = time.Time{} })            // unlimited first,
	set(limited.ID, func(g *sa.Grant) { g.ExpiresAt = now.Add(2 * time.Hour) }) // then limited again
	set(unlimited.ID, func(g *sa.Grant) { g.ExpiresAt = time.Time{} })

	require.Equal(t, []uuid.UUID{shortened.ID}, claim(sa.TransitionExpired, now.Add(90*time.Minute)), "only the shortened grant is due")
	require.Empty(t, claim(sa.TransitionStarted, now.Add(90*time.Minute)), "the start moved to 2 h")
	require.Equal(t, []uuid.UUID{later.ID}, claim(sa.TransitionStarted, now.Add(2*time.Hour)))
	require.Equal(t, []uuid.UUID{limited.ID}, claim(sa.TransitionExpired, now.Add(2*time.Hour)), "a grant made unlimited, then given an expiry")

	// Claimed already: moving the start again brings nothing back; a grant
	// whose expiry is recorded cannot be changed at all
	// (UpdateRefusedOnceExpiryRecorded).
	set(later.ID, func(g *sa.Grant) { g.StartsAt = now.Add(150 * time.Minute) })
	_, err := h.store.UpdateGrant(h.ctx, shortened.ID, func(g *sa.Grant) ([]sa.Event, error) {
		g.ExpiresAt = time.Time{}
		return nil, nil
	})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Empty(t, claim(sa.TransitionStarted, now.Add(10*time.Hour)))
	require.Equal(t, []uuid.UUID{extended.ID, later.ID}, claim(sa.TransitionExpired, now.Add(10*time.Hour)),
		"the extended grant at 4 h, the moved one at 5 h; the unlimited one never")
}

// testClaimAfterTimeReturns: a transition that was due, then not (the
// expiry made unlimited, the start moved later) while a claim ran past its
// old time, is claimed once its time comes back to that old time.
func testClaimAfterTimeReturns(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	now := h.clock.Now()
	g := h.grant(sa.GrantInput{Duration: time.Hour})
	s := h.grant(sa.GrantInput{StartsAt: now.Add(time.Hour), Duration: time.Hour})
	claim, set := h.claimIDs, h.setGrant
	require.Equal(t, []uuid.UUID{g.ID}, claim(sa.TransitionStarted, now))
	set(g.ID, func(x *sa.Grant) { x.ExpiresAt = time.Time{} })
	set(s.ID, func(x *sa.Grant) { x.StartsAt = now.Add(3 * time.Hour); x.ExpiresAt = now.Add(4 * time.Hour) })
	require.Empty(t, claim(sa.TransitionExpired, now.Add(2*time.Hour)), "unlimited now")
	require.Empty(t, claim(sa.TransitionStarted, now.Add(2*time.Hour)), "starts later now")
	set(g.ID, func(x *sa.Grant) { x.ExpiresAt = g.ExpiresAt })
	set(s.ID, func(x *sa.Grant) { x.StartsAt = s.StartsAt })
	require.Equal(t, []uuid.UUID{g.ID}, claim(sa.TransitionExpired, now.Add(2*time.Hour)), "the old end is back")
	require.Equal(t, []uuid.UUID{s.ID}, claim(sa.TransitionStarted, now.Add(2*time.Hour)), "the old start is back")
}

// testUpdateRefusedOnceExpiryRecorded: once ClaimTransitions recorded a
// grant's expiry, UpdateGrant refuses the grant (ErrInvalidInput, change
// not called, nothing written), whatever the caller's clock says — a
// replica whose clock lags the sweeper's cannot extend, revoke or delegate
// a grant the trail already says expired. Its start being recorded does
// not stop changes.
func testUpdateRefusedOnceExpiryRecorded(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{Duration: time.Hour, Grantees: []string{Engineer.ID}})
	other := h.grant(sa.GrantInput{Duration: 2 * time.Hour})
	started, err := h.store.ClaimTransitions(h.ctx, sa.TransitionStarted, h.clock.Now(), 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
	require.NoError(t, err)
	require.Len(t, started, 2)
	_, err = h.m.Extend(h.ctx, g.ID, g.ExpiresAt.Add(time.Minute), Customer)
	require.NoError(t, err, "a recorded start does not freeze the grant")
	g, err = h.m.Get(h.ctx, g.ID)
	require.NoError(t, err)

	claimed, err := h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, g.ExpiresAt, 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{g.ID}, grantIDs(claimed))
	events := countEvents(h)

	// The store refuses before calling change.
	called := false
	_, err = h.store.UpdateGrant(h.ctx, g.ID, func(*sa.Grant) ([]sa.Event, error) {
		called = true
		return nil, nil
	})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.False(t, called, "change must not be called for a grant whose expiry is recorded")

	// A Manager whose clock lags behind the sweeper's still sees the grant
	// active, and is refused all the same.
	h.clock.Set(g.ExpiresAt.Add(-time.Second))
	_, err = h.m.Extend(h.ctx, g.ID, g.ExpiresAt.Add(time.Hour), Customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "extend")
	_, err = h.m.Revoke(h.ctx, g.ID, Customer, "late")
	require.ErrorIs(t, err, sa.ErrInvalidInput, "revoke")
	_, err = h.m.AddGrantee(h.ctx, g.ID, Support.ID, Customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "add grantee")

	got, err := h.m.Get(h.ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got, "the grant is unchanged")
	require.Equal(t, events, countEvents(h), "no event was written")
	empty, err := h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, g.ExpiresAt.Add(2*time.Hour), 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{other.ID}, grantIDs(empty), "the expiry is not claimed again")
}

func testInjectionShaped(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	weird := []string{`'; DROP TABLE supportaccess_grants; --`, `" OR 1=1 --`, `back\slash\\`, `ünï©ødé 🚀`, `%_*?[]`, `$1 :name @p`}
	for _, w := range weird {
		g := h.grant(sa.GrantInput{TenantID: w, Reason: w, TicketRef: w, Grantees: []string{w}})
		got, err := h.m.Get(h.ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got)
		c, err := h.m.Check(h.ctx, w, w, sa.ScopeRead)
		require.NoError(t, err)
		require.Equal(t, g.ID, c.ID)
		gs, err := h.m.List(h.ctx, sa.ListFilter{TenantID: w, TicketRef: w})
		require.NoError(t, err)
		require.Len(t, gs, 1)
	}
	all, err := h.m.List(h.ctx, sa.ListFilter{})
	require.NoError(t, err)
	require.Len(t, all, len(weird))
}

func testCanceledContext(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	g := h.grant(sa.GrantInput{})
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	_, err := h.m.Check(ctx, "acme", Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, context.Canceled, "a canceled check denies")
	_, err = h.m.Revoke(ctx, g.ID, Customer, "")
	require.Error(t, err)
	_, err = h.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: Customer})
	require.Error(t, err)
	got, err := h.m.Get(h.ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got, "nothing changed")
	gs, err := h.m.List(h.ctx, sa.ListFilter{})
	require.NoError(t, err)
	require.Len(t, gs, 1)
}

func unlimitedPolicy() sa.Policy {
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	return p
}

// ClaimStarts claims every start of s due at now, without events, and
// returns how many it claimed: a store claims a grant's expiry only once
// its start is claimed, so a test of expiry claims that does not follow
// the Manager's Sweep calls it first.
func ClaimStarts(ctx context.Context, s sa.Store, now time.Time) (int, error) {
	n := 0
	for {
		gs, err := s.ClaimTransitions(ctx, sa.TransitionStarted, now, 1000, nil)
		if err != nil || len(gs) == 0 {
			return n, err
		}
		n += len(gs)
	}
}

// claimStarts is ClaimStarts failing t on an error.
func (h *harness) claimStarts(now time.Time) {
	h.t.Helper()
	_, err := ClaimStarts(h.ctx, h.store, now)
	require.NoError(h.t, err)
}
