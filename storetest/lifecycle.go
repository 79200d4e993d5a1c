package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// lifecycleCases are the conformance cases of access requests, delegation
// and expiry hooks. Request cases run on stores that implement
// supportaccess.RequestStore, hook cases on stores that implement
// supportaccess.HookStore; the others skip them.
var lifecycleCases = []testCase{
	{"RequestsCreateGet", testRequestsCreateGet},
	{"RequestsList", testRequestsList},
	{"RequestsUpdate", testRequestsUpdate},
	{"ApproveAtomic", testApproveAtomic},
	{"ApproveConcurrentOneWins", testApproveConcurrent},
	{"ApprovedGrantTransitionsPending", testApprovedGrantTransitionsPending},
	{"RequestsExpireOnce", testRequestsExpireOnce},
	{"DelegatePersists", testDelegatePersists},
	{"HookTasksLeased", testHookTasksLeased},
	{"HookTasksConcurrentClaims", testHookTasksConcurrent},
	{"HookRetryAfterFailure", testHookRetry},
	{"HookErrorTextAnyBytes", testHookErrorText},
	{"ExpiryHooksOnceAcrossReplicas", testHooksOnceAcrossReplicas},
	{"ClaimAbandonedOnEventsError", testClaimAbandonedOnEventsError},
	{"HooksRunAtTheEndOfYear9999", testHooksAtEndOfYear9999},
}

// newLifecycleHarness is newHarness for a store that has the optional
// interfaces need asks for (RequestStore, HookStore); it skips the test
// otherwise.
func newLifecycleHarness(t *testing.T, ns NewStore, needRequests, needHooks bool, opts ...sa.Option) *harness {
	t.Helper()
	s := ns(t)
	if _, ok := s.(sa.RequestStore); needRequests && !ok {
		t.Skip("store does not implement RequestStore")
	}
	if _, ok := s.(sa.HookStore); needHooks && !ok {
		t.Skip("store does not implement HookStore")
	}
	h := &harness{t: t, ctx: t.Context(), store: s, clock: NewClock(Epoch)}
	m, err := sa.NewManager(h.store, append([]sa.Option{sa.WithNow(h.clock.Now)}, opts...)...)
	require.NoError(t, err)
	h.m = m
	return h
}

func (h *harness) requests() sa.RequestStore { return h.store.(sa.RequestStore) }

func (h *harness) hooks() sa.HookStore { return h.store.(sa.HookStore) }

// request asks for access as Engineer (tenant acme unless in says
// otherwise).
func (h *harness) request(in sa.RequestInput) sa.AccessRequest {
	h.t.Helper()
	if in.By.IsZero() {
		in.By = Engineer
	}
	if in.TenantID == "" {
		in.TenantID = "acme"
	}
	r, err := h.m.RequestAccess(h.ctx, in)
	require.NoError(h.t, err)
	return r
}

// eventsOf returns the events of the given types when the store is an
// AuditLog, else nil and false.
func (h *harness) eventsOf(types ...sa.EventType) ([]sa.Event, bool) {
	h.t.Helper()
	l, ok := h.store.(sa.AuditLog)
	if !ok {
		return nil, false
	}
	evs, err := l.Events(h.ctx, sa.AuditFilter{Types: types})
	require.NoError(h.t, err)
	return evs, true
}
