package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// contractCases are the conformance cases that hold a store to its
// interfaces' documented contracts when it is called directly: the other
// cases often go through the Manager, whose checks of what a store
// returns (it filters and caps List again, checks again the grant Check
// returns) would hide a store's bug. Each was written (contract) to fail
// for a plausible bug in memstore that the rest of the suite let pass.
var contractCases = []testCase{
	{"FindActiveGrantWindow", testContractFindActiveGrantWindow},
	{"ListGrantsStatusAtNow", testContractListGrantsStatusAtNow},
	{"ListGrantsFiltersAndLimit", testContractListGrantsFiltersAndLimit},
	{"ListGrantsTieBreakByID", testContractListGrantsTieBreakByID},
	{"UpdateGrantKeepsTenantAndCreatedAt", testContractUpdateGrantKeepsTenantAndCreatedAt},
	{"UpdateRequestKeepsTenantAndCreatedAt", testContractUpdateRequestKeepsTenantAndCreatedAt},
	{"ListRequestsTieBreakByID", testContractListRequestsTieBreakByID},
	{"ClaimExpiredRequestsOrderAndLimit", testContractClaimExpiredRequestsOrderAndLimit},
	{"ClaimExpiredRequestsTiesInIDOrder", testContractClaimExpiredRequestsTiesInIDOrder},
	{"ClaimHookTasksOrder", testContractClaimHookTasksOrder},
	{"FinishHookTasksStoresEventsWhateverCount", testContractFinishHookTasksStoresEventsWhateverCount},
	{"FinishHookTasksRefusesBadEvents", testContractFinishHookTasksRefusesBadEvents},
	{"ApproveRequestRefusedEventsWriteNothing", testContractApproveRequestRefusedEventsWriteNothing},
	{"ClaimTransitionsGrantsAreStoredCopies", testContractClaimTransitionsGrantsAreStoredCopies},
	{"ClaimedBatchAsStored", testContractClaimedBatchAsStored},
	{"AuditAndHookReadsAreCopies", testContractAuditAndHookReadsAreCopies},
	{"StoreKeepsCopiesOfItsInputs", testContractStoreKeepsCopiesOfItsInputs},
	{"WriteResultsAreCopies", testContractWriteResultsAreCopies},
	{"ClaimLimitZeroRefused", testContractClaimLimitZeroRefused},
	{"CanceledDuringChangeWritesNothing", testContractCanceledDuringChangeWritesNothing},
	{"ClaimWithRefusedEventsClaimsNothing", testContractClaimWithRefusedEventsClaimsNothing},
	{"EmptyPurgeLeavesZeroChain", testContractEmptyPurgeLeavesZeroChain},
	{"RevokedGrantsDoNotCrowdOutClaims", testContractRevokedGrantsDoNotCrowdOutClaims},
	{"ListResultsAreCopies", testContractListResultsAreCopies},
	{"FailedChangeEditsNothing", testContractFailedChangeEditsNothing},
	{"ConcurrentDecisionsOneWins", testContractConcurrentDecisionsOneWins},
	{"TenantAndPrincipalCompareExactly", testContractTenantAndPrincipalCompareExactly},
	{"LimitAppliesAfterFilters", testContractLimitAppliesAfterFilters},
	{"RequestTimesKeptOnUpdate", testContractRequestTimesKeptOnUpdate},
	{"ClaimExpiredRequestsConcurrentOnce", testContractClaimExpiredRequestsConcurrentOnce},
}

var (
	contractNow      = time.Date(2026, 3, 14, 15, 9, 26, 535897_000, time.UTC)
	contractCustomer = sa.Actor{Kind: sa.ActorCustomer, ID: "admin@acme.example", Name: "Ada Admin"}
	contractSupport  = sa.Actor{Kind: sa.ActorSupport, ID: "support+acme@vendor.example"}
)

// contractGrant is a read grant of tenant from now for an hour, open to
// any principal.
func contractGrant(tenant string) sa.Grant {
	return sa.Grant{ID: uuid.New(), TenantID: tenant, Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: contractCustomer,
		CreatedAt: contractNow, StartsAt: contractNow, ExpiresAt: contractNow.Add(time.Hour)}
}

// contractRequest is a pending request of tenant expiring in 72 hours.
func contractRequest(tenant string) sa.AccessRequest {
	return sa.AccessRequest{ID: uuid.New(), TenantID: tenant, RequestedBy: contractSupport, Duration: time.Hour,
		Scopes: []sa.Scope{sa.ScopeRead}, Status: sa.RequestPending, CreatedAt: contractNow, ExpiresAt: contractNow.Add(72 * time.Hour)}
}

// contractRequestStore returns ns(t) as a RequestStore, or skips the test
// when the store is none.
func contractRequestStore(t *testing.T, ns NewStore) sa.RequestStore {
	t.Helper()
	rs, ok := ns(t).(sa.RequestStore)
	if !ok {
		t.Skip("store does not implement RequestStore")
	}
	return rs
}

// contractRequestsWithIDs creates, in the order given, one contractRequest
// of tenant acme per byte of bs, with an ID starting with that byte (see
// contractID) and, unless expires is zero, that ExpiresAt; it returns
// their IDs in that order.
func contractRequestsWithIDs(t *testing.T, rs sa.RequestStore, expires time.Time, bs ...byte) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for _, b := range bs {
		r := contractRequest("acme")
		r.ID = contractID(b)
		if !expires.IsZero() {
			r.ExpiresAt = expires
		}
		require.NoError(t, rs.CreateRequest(context.Background(), r, nil))
		ids = append(ids, r.ID)
	}
	return ids
}

// contractEvent is an event of tenant at time at.
func contractEvent(tenant string, at time.Time) sa.Event {
	return sa.Event{ID: uuid.New(), Time: at, Type: sa.EventSupportRequest, TenantID: tenant, Actor: contractSupport,
		Attrs: map[string]string{sa.AttrMethod: "GET"}, Before: []byte(`{"a":1}`), After: []byte(`{"a":2}`)}
}

// contractID returns a UUID whose first byte is b (the rest random), so a
// test knows the byte order of the IDs it makes.
func contractID(b byte) uuid.UUID {
	id := uuid.New()
	id[0] = b
	return id
}

// contractEvents returns the events of tenant, or nil and false when the
// store is no AuditLog.
func contractEvents(t *testing.T, s sa.Store, tenant string) ([]sa.Event, bool) {
	t.Helper()
	l, ok := s.(sa.AuditLog)
	if !ok {
		return nil, false
	}
	evs, err := l.Events(context.Background(), sa.AuditFilter{TenantID: tenant})
	require.NoError(t, err)
	return evs, true
}

// testContractFindActiveGrantWindow: FindActiveGrant itself (not Check,
// which re-checks the grant returned) finds a grant active from StartsAt
// up to, not including, ExpiresAt. Kills: the window's end compared with
// <= (active at ExpiresAt). Contract: store.go:57-59 ("active at now (not
// revoked, StartsAt <= now, ExpiresAt zero or after now)").
func testContractFindActiveGrantWindow(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	g := contractGrant("acme")
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	for _, c := range []struct {
		at     time.Time
		active bool
	}{
		{g.StartsAt.Add(-time.Microsecond), false},
		{g.StartsAt, true},
		{g.ExpiresAt.Add(-time.Microsecond), true},
		{g.ExpiresAt, false},
		{g.ExpiresAt.Add(time.Microsecond), false},
	} {
		got, err := s.FindActiveGrant(ctx, "acme", contractSupport.ID, sa.ScopeRead, c.at)
		if c.active {
			require.NoError(t, err, "at %s", c.at)
			require.Equal(t, g.ID, got.ID)
		} else {
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, "at %s", c.at)
		}
	}
}

// testContractListGrantsStatusAtNow: ListGrants evaluates f.Statuses at
// now exactly, also at a window's edges. Kills: the status evaluated a
// microsecond off now. Contract: store.go:51-52 ("evaluating f.Statuses at
// now") with the window of store.go:57-59.
func testContractListGrantsStatusAtNow(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	g := contractGrant("acme")
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	list := func(now time.Time, st sa.Status) []uuid.UUID {
		t.Helper()
		gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: "acme", Statuses: []sa.Status{st}}, now)
		require.NoError(t, err)
		return grantIDs(gs)
	}
	for _, c := range []struct {
		at time.Time
		st sa.Status
	}{
		{g.StartsAt.Add(-time.Microsecond), sa.StatusScheduled},
		{g.StartsAt, sa.StatusActive},
		{g.ExpiresAt.Add(-time.Microsecond), sa.StatusActive},
		{g.ExpiresAt, sa.StatusExpired},
	} {
		for _, st := range []sa.Status{sa.StatusScheduled, sa.StatusActive, sa.StatusExpired} {
			if st == c.st {
				require.Equal(t, []uuid.UUID{g.ID}, list(c.at, st), "%s at %s", st, c.at)
			} else {
				require.Empty(t, list(c.at, st), "%s at %s", st, c.at)
			}
		}
	}
}

// testContractListGrantsFiltersAndLimit: ListGrants itself applies the
// tenant and ticket of f and its Limit (the Manager's List re-applies
// them, so the suite's List cases pass whatever the store returns). Kills:
// TenantID ignored, TicketRef ignored, Limit ignored. Contract:
// store.go:51-54 ("returns the grants matching f, ... at most f.Limit
// (all when 0)").
func testContractListGrantsFiltersAndLimit(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	var acme []uuid.UUID // newest first
	for i, ticket := range []string{"T-1", "T-2", "T-1"} {
		g := contractGrant("acme")
		g.TicketRef = ticket
		g.CreatedAt = contractNow.Add(time.Duration(i) * time.Second)
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		acme = append([]uuid.UUID{g.ID}, acme...)
	}
	other := contractGrant("globex")
	other.TicketRef = "T-1"
	require.NoError(t, s.CreateGrant(ctx, other, nil))
	now := contractNow.Add(time.Minute)
	list := func(f sa.ListFilter) []uuid.UUID {
		t.Helper()
		gs, err := s.ListGrants(ctx, f, now)
		require.NoError(t, err)
		return grantIDs(gs)
	}
	require.Equal(t, acme, list(sa.ListFilter{TenantID: "acme"}), "the tenant's grants only, newest first")
	require.Equal(t, []uuid.UUID{other.ID}, list(sa.ListFilter{TenantID: "globex"}))
	require.Empty(t, list(sa.ListFilter{TenantID: "acm"}))
	require.Equal(t, []uuid.UUID{acme[0], acme[2]}, list(sa.ListFilter{TenantID: "acme", TicketRef: "T-1"}))
	require.Equal(t, []uuid.UUID{acme[1]}, list(sa.ListFilter{TicketRef: "T-2"}))
	require.Equal(t, acme[:2], list(sa.ListFilter{TenantID: "acme", Limit: 2}))
	require.Equal(t, acme[:1], list(sa.ListFilter{TenantID: "acme", Limit: 1}))
	require.Len(t, list(sa.ListFilter{}), 4)
}

// testContractListGrantsTieBreakByID: grants created in the same
// microsecond are listed by ID descending (the suite's order case gives
// every grant its own CreatedAt). Kills: the ID tie-break reversed.
// Contract: store.go:52 ("ordered by CreatedAt descending then ID
// descending").
func testContractListGrantsTieBreakByID(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	var want []uuid.UUID
	for _, b := range []byte{0x20, 0xf0, 0x01, 0x80} {
		g := contractGrant("acme")
		g.ID = contractID(b)
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		want = append(want, g.ID)
	}
	slices.SortFunc(want, func(a, b uuid.UUID) int { return -slices.Compare(a[:], b[:]) })
	gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, contractNow)
	require.NoError(t, err)
	require.Equal(t, want, grantIDs(gs))
	gs, err = s.ListGrants(ctx, sa.ListFilter{TenantID: "acme", Limit: 2}, contractNow)
	require.NoError(t, err)
	require.Equal(t, want[:2], grantIDs(gs), "the limit keeps the first in that order")
}

// testContractUpdateGrantKeepsTenantAndCreatedAt: a change that moves a
// grant to another tenant, or changes its CreatedAt, is refused with
// ErrInvalidInput and writes nothing (the suite checks only a cleared
// StartsAt and an undone revocation). Kills: TenantID, CreatedAt not
// compared. Contract: store.go:75-78 ("change must not alter ID, TenantID
// or CreatedAt ...: UpdateGrant refuses that with ErrInvalidInput and
// writes nothing").
func testContractUpdateGrantKeepsTenantAndCreatedAt(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	_, auditor := s.(sa.Auditor)
	g := contractGrant("acme")
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	for name, change := range map[string]func(*sa.Grant){
		"TenantID":  func(x *sa.Grant) { x.TenantID = "globex" },
		"CreatedAt": func(x *sa.Grant) { x.CreatedAt = x.CreatedAt.Add(-time.Hour) },
		"ID":        func(x *sa.Grant) { x.ID = uuid.New() },
	} {
		_, err := s.UpdateGrant(ctx, g.ID, func(x *sa.Grant) ([]sa.Event, error) {
			change(x)
			if !auditor {
				return nil, nil
			}
			return []sa.Event{contractEvent(x.TenantID, contractNow)}, nil
		})
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		got, err := s.GetGrant(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got, "%s: nothing written", name)
		_, err = s.FindActiveGrant(ctx, "globex", contractSupport.ID, sa.ScopeRead, contractNow)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "%s: not in the other tenant", name)
		for _, tenant := range []string{"acme", "globex"} {
			if evs, ok := contractEvents(t, s, tenant); ok {
				require.Empty(t, evs, "%s: no event written", name)
			}
		}
	}
}

// testContractUpdateRequestKeepsTenantAndCreatedAt: the same for
// requests. Kills: TenantID not compared in UpdateRequest. Contract:
// lifecycle_store.go:42-44 ("change must not alter ID, TenantID or
// CreatedAt, or clear ExpiresAt (ErrInvalidInput, nothing written)").
func testContractUpdateRequestKeepsTenantAndCreatedAt(t *testing.T, ns NewStore) {
	ctx := context.Background()
	rs := contractRequestStore(t, ns)
	r := contractRequest("acme")
	require.NoError(t, rs.CreateRequest(ctx, r, nil))
	for name, change := range map[string]func(*sa.AccessRequest){
		"TenantID":  func(x *sa.AccessRequest) { x.TenantID = "globex" },
		"CreatedAt": func(x *sa.AccessRequest) { x.CreatedAt = x.CreatedAt.Add(time.Second) },
		"ID":        func(x *sa.AccessRequest) { x.ID = uuid.New() },
	} {
		_, err := rs.UpdateRequest(ctx, r.ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
			change(x)
			return nil, nil
		})
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		got, err := rs.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, r, got, "%s: nothing written", name)
		listed, err := rs.ListRequests(ctx, sa.RequestFilter{TenantID: "globex"}, contractNow)
		require.NoError(t, err)
		require.Empty(t, listed, "%s: not in the other tenant", name)
	}
}

// testContractListRequestsTieBreakByID: requests created in the same
// microsecond are listed by ID descending. Kills: the ID tie-break
// reversed. Contract: lifecycle_store.go:29-31 ("ordered by CreatedAt
// descending then ID descending").
func testContractListRequestsTieBreakByID(t *testing.T, ns NewStore) {
	ctx := context.Background()
	rs := contractRequestStore(t, ns)
	want := contractRequestsWithIDs(t, rs, time.Time{}, 0x20, 0xf0, 0x01, 0x80)
	slices.SortFunc(want, func(a, b uuid.UUID) int { return -slices.Compare(a[:], b[:]) })
	rr, err := rs.ListRequests(ctx, sa.RequestFilter{TenantID: "acme"}, contractNow)
	require.NoError(t, err)
	var got []uuid.UUID
	for _, r := range rr {
		got = append(got, r.ID)
	}
	require.Equal(t, want, got)
}

// testContractClaimExpiredRequestsOrderAndLimit: of the due requests,
// ClaimExpiredRequests claims at most limit, the earliest ExpiresAt first.
// Kills: limit ignored, order by ExpiresAt reversed. Contract:
// lifecycle_store.go:56-57 ("finds up to limit requests whose stored
// Status is RequestPending and whose ExpiresAt <= now, in order of
// ExpiresAt").
func testContractClaimExpiredRequestsOrderAndLimit(t *testing.T, ns NewStore) {
	ctx := context.Background()
	rs := contractRequestStore(t, ns)
	// Expiring in the order 2, 0, 1 of creation, with IDs in yet another
	// order, so that neither creation nor ID order passes for ExpiresAt's.
	ids := make([]uuid.UUID, 3)
	for i, c := range []struct {
		b   byte
		exp time.Duration
	}{{0x80, 2 * time.Hour}, {0x10, 3 * time.Hour}, {0xf0, time.Hour}} {
		r := contractRequest("acme")
		r.ID = contractID(c.b)
		r.ExpiresAt = contractNow.Add(c.exp)
		require.NoError(t, rs.CreateRequest(ctx, r, nil))
		ids[i] = r.ID
	}
	now := contractNow.Add(4 * time.Hour)
	for _, want := range []uuid.UUID{ids[2], ids[0], ids[1]} {
		got, err := rs.ClaimExpiredRequests(ctx, now, 1, nil)
		require.NoError(t, err)
		require.Len(t, got, 1, "at most limit")
		require.Equal(t, want, got[0].ID, "the earliest ExpiresAt first")
		require.Equal(t, sa.RequestExpired, got[0].Status)
	}
	got, err := rs.ClaimExpiredRequests(ctx, now, 1, nil)
	require.NoError(t, err)
	require.Empty(t, got)
}

// testContractClaimExpiredRequestsTiesInIDOrder: requests expiring at one
// time are claimed in byte order of their IDs, whatever order they were
// created in. Kills: no tie-break (map or insertion order), the ID order
// reversed. Contract: lifecycle_store.go ("requests expiring at one time
// in byte order of their IDs").
func testContractClaimExpiredRequestsTiesInIDOrder(t *testing.T, ns NewStore) {
	ctx := context.Background()
	rs := contractRequestStore(t, ns)
	// Created in neither ascending nor descending ID order.
	want := contractRequestsWithIDs(t, rs, contractNow.Add(time.Hour), 0x80, 0x10, 0xf0, 0x40)
	slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	now := contractNow.Add(2 * time.Hour)
	var got []uuid.UUID
	for range want {
		rr, err := rs.ClaimExpiredRequests(ctx, now, 1, nil)
		require.NoError(t, err)
		require.Len(t, rr, 1)
		got = append(got, rr[0].ID)
	}
	require.Equal(t, want, got, "ties claimed in byte order of their IDs")
	rr, err := rs.ClaimExpiredRequests(ctx, now, 10, nil)
	require.NoError(t, err)
	require.Empty(t, rr)
}

// contractExpiredTasks creates n grants of tenant acme expiring at
// contractNow+1h with IDs whose first bytes are bs, claims their starts
// and their expiries with ClaimExpirations (lease token "a" for a
// minute), and returns the hook store and the IDs in byte order.
func contractExpiredTasks(t *testing.T, s sa.Store, bs ...byte) (sa.HookStore, []uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	hs, ok := s.(sa.HookStore)
	if !ok {
		t.Skip("store does not implement HookStore")
	}
	var ids []uuid.UUID
	for _, b := range bs {
		g := contractGrant("acme")
		g.ID = contractID(b)
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		ids = append(ids, g.ID)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	started, err := s.ClaimTransitions(ctx, sa.TransitionStarted, contractNow, len(bs), nil)
	require.NoError(t, err)
	require.Len(t, started, len(bs))
	end := contractNow.Add(time.Hour)
	expired, err := hs.ClaimExpirations(ctx, end, len(bs), sa.Lease{Token: "a", Until: end.Add(time.Minute)}, nil)
	require.NoError(t, err)
	require.Len(t, expired, len(bs))
	return hs, ids
}

// testContractClaimHookTasksOrder: ClaimHookTasks leases the due tasks
// in order of NextAt, then grant ID. Kills: the grant-ID tie-break
// reversed, NextAt ignored in the order. Contract: lifecycle_store.go:85-87
// ("leases up to limit tasks with NextAt <= now whose lease is free ...,
// in order of NextAt then grant ID").
func testContractClaimHookTasksOrder(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	hs, ids := contractExpiredTasks(t, s, 0x10, 0x80, 0xf0)
	end := contractNow.Add(time.Hour)
	// The smallest ID is due last; the other two at one time.
	n, err := hs.FinishHookTasks(ctx, "a", []sa.HookTask{
		{Grant: sa.Grant{ID: ids[0]}, Attempts: 1, NextAt: end.Add(3 * time.Hour), LastError: "x"},
		{Grant: sa.Grant{ID: ids[1]}, Attempts: 1, NextAt: end.Add(2 * time.Hour), LastError: "x"},
		{Grant: sa.Grant{ID: ids[2]}, Attempts: 1, NextAt: end.Add(2 * time.Hour), LastError: "x"},
	}, nil)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	now := end.Add(4 * time.Hour)
	for i, want := range []uuid.UUID{ids[1], ids[2], ids[0]} {
		tasks, err := hs.ClaimHookTasks(ctx, now, 1, sa.Lease{Token: "b", Until: now.Add(time.Hour)})
		require.NoError(t, err)
		require.Len(t, tasks, 1)
		require.Equal(t, want, tasks[0].Grant.ID, "claim %d: NextAt, then grant ID", i)
	}
}

// testContractFinishHookTasksStoresEventsWhateverCount: events handed to
// FinishHookTasks are stored also when it finishes no task (the token no
// longer holds them). Kills: events stored only when a task was finished.
// Contract: lifecycle_store.go:96-97 ("It returns how many tasks it
// finished. events are stored whatever that number.").
func testContractFinishHookTasksStoresEventsWhateverCount(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	if _, ok := s.(sa.Auditor); !ok {
		t.Skip("store is not an Auditor: its writes receive no events")
	}
	hs, ids := contractExpiredTasks(t, s, 0x10)
	before, ok := contractEvents(t, s, "acme")
	if !ok {
		t.Skip("store does not implement AuditLog")
	}
	ev := contractEvent("acme", contractNow.Add(time.Hour))
	n, err := hs.FinishHookTasks(ctx, "not-the-lease", []sa.HookTask{{Grant: sa.Grant{ID: ids[0]}, Complete: true}}, []sa.Event{ev})
	require.NoError(t, err)
	require.Zero(t, n, "the task is leased to another token")
	after, _ := contractEvents(t, s, "acme")
	require.Len(t, after, len(before)+1, "the event is stored")
	require.Equal(t, ev.ID, after[len(after)-1].ID)
}

// testContractFinishHookTasksRefusesBadEvents: FinishHookTasks refuses
// an event without a Time (ErrInvalidInput) and one whose ID the trail
// holds (ErrConflict) like every other write, and then finishes nothing.
// Kills: FinishHookTasks not checking its events. Contract: audit.go:155-156
// ("the bundled stores refuse an event without a Time (ErrInvalidInput)
// and one whose ID they hold already (ErrConflict)"), with
// lifecycle_store.go:91-92 (tasks and events "in one transaction").
func testContractFinishHookTasksRefusesBadEvents(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	a, ok := s.(sa.Auditor)
	if !ok {
		t.Skip("store is not an Auditor: its writes receive no events")
	}
	hs, ids := contractExpiredTasks(t, s, 0x10)
	held := contractEvent("acme", contractNow)
	require.NoError(t, a.Record(ctx, held))
	noTime := contractEvent("acme", time.Time{})
	done := []sa.HookTask{{Grant: sa.Grant{ID: ids[0]}, Complete: true}}
	_, err := hs.FinishHookTasks(ctx, "a", done, []sa.Event{noTime})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "an event without a Time")
	_, err = hs.FinishHookTasks(ctx, "a", done, []sa.Event{held})
	require.ErrorIs(t, err, sa.ErrConflict, "an event the trail holds")
	if evs, ok := contractEvents(t, s, "acme"); ok {
		require.Len(t, evs, 1, "only the event recorded first")
	}
	n, err := hs.FinishHookTasks(ctx, "a", done, nil)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the refused calls left the task leased to a")
}

// testContractApproveRequestRefusedEventsWriteNothing: an approval whose
// events the store refuses creates no grant and leaves the request as it
// was. Kills: the grant created before the events are checked. Contract:
// lifecycle_store.go:49-51 ("the store then saves the request, creates the
// grant and stores the events in one transaction, or does nothing at
// all").
func testContractApproveRequestRefusedEventsWriteNothing(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	rs, ok := s.(sa.RequestStore)
	if !ok {
		t.Skip("store does not implement RequestStore")
	}
	if _, ok := s.(sa.Auditor); !ok {
		t.Skip("store is not an Auditor: its writes receive no events")
	}
	r := contractRequest("acme")
	require.NoError(t, rs.CreateRequest(ctx, r, nil))
	g := contractGrant("acme")
	_, _, err := rs.ApproveRequest(ctx, r.ID, func(x *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
		x.Status, x.DecidedAt, x.DecidedBy, x.GrantID = sa.RequestApproved, contractNow, contractCustomer, g.ID
		return g, []sa.Event{contractEvent("acme", contractNow), contractEvent("acme", time.Time{})}, nil
	})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = s.GetGrant(ctx, g.ID)
	require.ErrorIs(t, err, sa.ErrNotFound, "no grant created")
	_, err = s.FindActiveGrant(ctx, "acme", contractSupport.ID, sa.ScopeRead, contractNow)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "no grant active")
	got, err := rs.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got, "the request unchanged")
	if evs, ok := contractEvents(t, s, "acme"); ok {
		require.Empty(t, evs)
	}
}

// testContractClaimTransitionsGrantsAreStoredCopies: ClaimTransitions
// returns the grants as stored, and neither they nor the grant its events
// function receives share state with the store. Kills: a claimed grant
// returned with a field missing, the events function handed the stored
// grant's slices. Contract: store.go:89-90 ("It returns the grants it
// claimed") and store.go:14-15 ("return copies (callers may not be able
// to change stored state through a returned value)").
func testContractClaimTransitionsGrantsAreStoredCopies(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	g := contractGrant("acme")
	g.Grantees = []string{contractSupport.ID}
	g.Scopes = []sa.Scope{sa.ScopeRead, "messages:read"}
	g.TicketRef, g.Reason = "T-1", "ticket"
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	claimed, err := s.ClaimTransitions(ctx, sa.TransitionStarted, contractNow, 10, func(x sa.Grant) ([]sa.Event, error) {
		require.Equal(t, g, x, "events receives the grant")
		x.Grantees[0] = "mallory@evil.example"
		x.Scopes[0] = sa.ScopeWrite
		return nil, nil
	})
	require.NoError(t, err)
	require.Equal(t, []sa.Grant{g}, claimed, "the claimed grant as stored")
	claimed[0].Scopes[1] = "admin"
	got, err := s.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got, "the store's grant unchanged")
	_, err = s.FindActiveGrant(ctx, "acme", "mallory@evil.example", sa.ScopeRead, contractNow)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	_, err = s.FindActiveGrant(ctx, "acme", contractSupport.ID, sa.ScopeWrite, contractNow)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = s.FindActiveGrant(ctx, "acme", contractSupport.ID, "messages:read", contractNow)
	require.NoError(t, err)
}

// testContractClaimedBatchAsStored pins that every grant of a claimed
// batch is returned (and given to events) exactly as stored, also when
// grants with and without a request ID and named grantees alternate in
// one batch. Kills (sqlstore, grants.go selectGrants): the per-row reset
// of the scan destination dropped (a grant whose request_id or grantees
// column is NULL took the previous row's values, so an any-principal grant
// was reported with another grant's grantees and request).
func testContractClaimedBatchAsStored(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	var want []sa.Grant
	for i := range 6 {
		g := contractGrant("acme")
		g.StartsAt = contractNow.Add(time.Duration(i) * time.Second)
		if i%2 == 0 {
			g.Grantees = []string{contractSupport.ID}
			g.Scopes = []sa.Scope{sa.ScopeRead, "messages:read"}
			g.RequestID = uuid.New()
			g.TicketRef = "T-1"
		}
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		want = append(want, g)
	}
	var given []sa.Grant
	claimed, err := s.ClaimTransitions(ctx, sa.TransitionStarted, contractNow.Add(time.Minute), 10, func(g sa.Grant) ([]sa.Event, error) {
		given = append(given, g)
		return nil, nil
	})
	require.NoError(t, err)
	require.Equal(t, want, claimed, "the claimed grants as stored, in due order")
	require.Equal(t, want, given, "events receives each grant as stored")
}

// testContractAuditAndHookReadsAreCopies: Events, AuditChain and
// ClaimHookTasks return values that share no state with the store (the
// suite checks this for grants and requests only). Kills: Events returning
// the stored events' Attrs, Before, After and Hash; AuditChain returning
// the stored hashes; ClaimHookTasks returning the stored grant's slices.
// Contract: store.go:14-15 ("return copies (callers may not be able to
// change stored state through a returned value)"), lifecycle_store.go:17
// ("returned values are copies").
func testContractAuditAndHookReadsAreCopies(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	t.Run("Events", func(t *testing.T) {
		a, ok := s.(sa.Auditor)
		if !ok {
			t.Skip("store is not an Auditor")
		}
		require.NoError(t, a.Record(ctx, contractEvent("copies", contractNow)))
		evs, ok := contractEvents(t, s, "copies")
		if !ok {
			t.Skip("store does not implement AuditLog")
		}
		require.Len(t, evs, 1)
		want := evs[0]
		want.Attrs = map[string]string{sa.AttrMethod: "GET"}
		want.Before, want.After = []byte(`{"a":1}`), []byte(`{"a":2}`)
		want.Hash = slices.Clone(evs[0].Hash)
		evs[0].Attrs[sa.AttrMethod] = "DELETE"
		evs[0].Attrs["forged"] = "yes"
		evs[0].Before[1], evs[0].After[1] = 'X', 'X'
		evs[0].Hash[0]++
		again, _ := contractEvents(t, s, "copies")
		require.Equal(t, []sa.Event{want}, again)
	})
	t.Run("AuditChain", func(t *testing.T) {
		cr, ok := s.(sa.AuditChainReader)
		a, isAuditor := s.(sa.Auditor)
		if !ok || !isAuditor {
			t.Skip("store is not an Auditor and AuditChainReader")
		}
		for i := range 3 {
			require.NoError(t, a.Record(ctx, contractEvent("chain", contractNow.Add(time.Duration(i)*time.Second))))
		}
		if p, ok := s.(sa.AuditPurger); ok {
			_, err := p.PurgeAudit(ctx, "chain", contractNow.Add(time.Second), func(sa.AuditPurge) (sa.Event, error) {
				ev := contractEvent("chain", contractNow.Add(time.Minute))
				ev.Type = sa.EventAuditPurged
				return ev, nil
			})
			require.NoError(t, err)
		}
		st, err := cr.AuditChain(ctx, "chain")
		require.NoError(t, err)
		require.NotEmpty(t, st.Head.Hash)
		want := sa.AuditChainState{Checkpoint: st.Checkpoint, Head: st.Head}
		want.Head.Hash = slices.Clone(st.Head.Hash)
		want.Checkpoint.Hash = slices.Clone(st.Checkpoint.Hash)
		st.Head.Hash[0]++
		if len(st.Checkpoint.Hash) > 0 {
			st.Checkpoint.Hash[0]++
		}
		again, err := cr.AuditChain(ctx, "chain")
		require.NoError(t, err)
		require.Equal(t, want, again)
	})
	t.Run("ClaimHookTasks", func(t *testing.T) {
		hs, ids := contractExpiredTasks(t, s, 0x10)
		g, err := s.GetGrant(ctx, ids[0])
		require.NoError(t, err)
		now := contractNow.Add(2 * time.Hour) // the first lease has ended
		tasks, err := hs.ClaimHookTasks(ctx, now, 10, sa.Lease{Token: "b", Until: now.Add(time.Minute)})
		require.NoError(t, err)
		require.Len(t, tasks, 1)
		require.Equal(t, g, tasks[0].Grant)
		tasks[0].Grant.Scopes[0] = sa.ScopeWrite
		got, err := s.GetGrant(ctx, ids[0])
		require.NoError(t, err)
		require.Equal(t, g, got)
	})
}
