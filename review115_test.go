package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Review 115: mutation testing of the middleware's watcher
// (middleware_watch.go) and its end and move logs (middleware_ends.go).
// Each test kills a mutant the existing tests let survive (prefix
// TestReview115).

// TestReview115UrgentRecheckPastPendingCap: review 10's scenario with the
// pending cap full. Grants a and b both cover the session; a admitted the
// request. Four re-check Checks of the session's read scope hang on dead
// connections (maxPendingChecks of them, one per poll); the store answers
// every other call at once. The customer then revokes a on this Manager:
// the re-check is urgent, so it is made past the cap (boundedCheck: "calls
// stuck on dead connections do not keep a healthy store from being
// asked"), finds b, and the request runs on. Kills the mutant that applies
// the cap to urgent re-checks too: the re-check is then not made, and
// unanswered ends the request as revoked while b covers the session.
//
// Each poll's Checks get 150 ms here (250 ms outside tests), so that the
// test stays under a second; a saturated machine can miss the urgent
// re-check (failing closed): up to three attempts.
func TestReview115UrgentRecheckPastPendingCap(t *testing.T) {
	t.Cleanup(sa.SetMinRecheckTimeoutForTest(150 * time.Millisecond))
	var failure string
	for range 3 {
		if failure = review10HungChecks(t, 4, 250*time.Millisecond); failure == "" {
			return
		}
		t.Logf("attempt failed (retrying): %s", failure)
	}
	t.Fatal(failure)
}

// TestReview115DeafStoreChecksCappedAtFour: review 8's scenario run long
// enough to reach the cap. With a store that ignores its context and
// hangs, each poll's Check of the session's read scope stays out after
// its deadline (100 ms here, 250 ms outside tests); once maxPendingChecks
// (four) are out, no other is started (boundedCheck). The test waits
// until four hang, then for two more poll deadlines, and requires that no
// fifth was started. Kills the off-by-one mutant of the cap (> for >=),
// which lets five out.
func TestReview115DeafStoreChecksCappedAtFour(t *testing.T) {
	t.Cleanup(sa.SetMinRecheckTimeoutForTest(100 * time.Millisecond))
	clock := &mwClock{}
	store := &rw8DeafStore{Store: memstore.New(), release: make(chan struct{})}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: sa.Day})
	require.NoError(t, err)
	var reached bool
	var peak int64
	h := m.Middleware(rw7Session, sa.WithPollInterval(50*time.Millisecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(store.release) // lets the Checks return (and the request leave)
		_, _ = w.Write([]byte("row 1\n"))
		store.deaf.Store(true) // the database stops answering, deaf to contexts
		// Four hang after about 400 ms (a 100 ms deadline each).
		reached = review115WaitFor(func() bool { return store.peak.Load() >= 4 }, 2*time.Second)
		if !reached || mwWaitEnd(r, 250*time.Millisecond) != nil { // two more poll deadlines
			return
		}
		peak = store.peak.Load()
	}))
	mwDo(h, mwReq(http.MethodGet, "/events", ""))
	require.True(t, reached, "four re-check Checks never hung at once (peak %d)", store.peak.Load())
	require.Equal(t, int64(4), peak, "store calls of one session's re-checks hanging at once")
}

// review115WaitFor polls cond (every 5 ms) until it holds or d has passed, and
// reports whether it held.
func review115WaitFor(cond func() bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// TestReview115RequireScopeAtExactEnd: a grant's end is exclusive (pastEnd:
// it has come when now is not before it). With the Manager's clock frozen
// at exactly the end of the grant that admitted the request, a
// RequireScope of the request's own scope must not rely on the grant
// without a Check (usesScope, admittedEnd); the store then finds no
// active grant and the route does not run. Kills the mutant of pastEnd
// that takes the end instant itself as still within the grant.
func TestReview115RequireScopeAtExactEnd(t *testing.T) {
	var now atomic.Int64 // the Manager's clock, frozen, moved by the test
	now.Store(time.Now().UTC().Truncate(time.Microsecond).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	m, err := sa.NewManager(memstore.New(), sa.WithNow(clock), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: time.Hour})
	require.NoError(t, err)
	route := &mwOK{}
	code := 0
	h := m.Middleware(rw7Session, sa.WithPollInterval(time.Minute))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now.Store(g.ExpiresAt.UnixNano()) // the grant's end, to the nanosecond
		rec := httptest.NewRecorder()
		sa.RequireScope(sa.ScopeRead)(route).ServeHTTP(rec, r)
		code = rec.Code
	}))
	mwDo(h, mwReq(http.MethodGet, "/inbox", ""))
	require.Equal(t, http.StatusForbidden, code, "RequireScope at the exact end of the only grant")
	require.Zero(t, route.calls.Load(), "the route ran on a grant whose end had come")
}

// TestReview115UnansweredLossOfElevatedGrantIsScopeLost: the request runs
// on read (grant a, which admitted it) and messages:read (grant h, through
// RequireScope). The customer revokes h on this Manager while the store
// gives the watcher no answer for messages:read: unanswered ends the
// request (the Manager knows h ended) — but as a lost scope, since the
// grant of the request's own scope (a) did not end: the request's context
// ends with ErrScopeNotGranted and OnSessionEnded is not called. Kills
// the mutant that takes any ended grant of the request as the session's
// revocation (grantGone without grantWasEnded(needs[0])).
func TestReview115UnansweredLossOfElevatedGrantIsScopeLost(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: sa.Day}) // a: read, admits the request
	hg := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	var cause error
	panel := &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(panel).ServeHTTP(httptest.NewRecorder(), r)
		deaf := msgs
		e.store.deafScope.Store(&deaf) // the watcher's Checks of messages:read get no answer
		_, err := e.m.Revoke(context.Background(), hg.ID, mwCustomer, "panel done")
		require.NoError(t, err)
		cause = mwWaitEnd(r, 800*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), panel.calls.Load())
	require.ErrorIs(t, cause, sa.ErrScopeNotGranted, "h was revoked on this Manager and the store does not answer: the request ends, read is left")
	require.Empty(t, e.ended.all(), "OnSessionEnded although grant a still covers the session")
}

// TestReview115BothGrantsRevokedDuringRecheckIsSessionEnd: the request
// runs on read (grant a) and messages:read (grant h). A poll's re-check
// finds a for read; right after the store answered, the customer revokes
// a and h. The Check of messages:read then finds no grant at all
// (ErrNoActiveGrant, not ErrScopeNotGranted): that is the end of the
// session, not a lost scope (denialReason), so OnSessionEnded is called
// with "revoked". Kills the mutant of denialReason that takes any denial
// after read was found allowed as a lost scope.
func TestReview115BothGrantsRevokedDuringRecheckIsSessionEnd(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	a := e.grant(sa.GrantInput{Duration: sa.Day}) // read: admits the request
	hg := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(&mwOK{}).ServeHTTP(httptest.NewRecorder(), r)
		revoke := func() { // right after the first poll's Check of read found a
			for _, id := range []uuid.UUID{a.ID, hg.ID} {
				_, err := e.m.Revoke(context.Background(), id, mwCustomer, "support is done")
				require.NoError(t, err)
			}
		}
		e.store.after.Store(&revoke)
		cause = mwWaitEnd(r, 800*time.Millisecond)
	}), sa.WithPollInterval(100*time.Millisecond))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Nil(t, e.store.after.Load(), "the re-check made no Check")
	require.ErrorIs(t, cause, sa.ErrSessionEnded)
	require.NotErrorIs(t, cause, sa.ErrScopeNotGranted, "no grant covers the session any more: not a lost scope")
	require.Contains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked)
}

// TestReview115LatestOfTwoMovesHoldsOverInFlightRecheck: while a
// re-check has read the admitting grant's old end (a day away) and waits,
// an Extend on this Manager lengthens the grant and a second one shortens
// it to 100 ms from now. The re-check's answer must not bring back an end
// later than the latest move (moveLog keeps each grant's latest move): the
// request ends at the new end. Kills the mutant of moveLog.add that keeps
// the first move of a grant instead of the latest (the request then runs
// on for 30 minutes past its end). The scenario is
// TestShortenedEndNotLostToInFlightRecheck's (inFlightRecheckMoves) with
// two moves.
func TestReview115LatestOfTwoMovesHoldsOverInFlightRecheck(t *testing.T) {
	ended, _ := inFlightRecheckMoves(t, func(m *sa.Manager, g sa.Grant, now time.Time) {
		_, err := m.Extend(context.Background(), g.ID, now.Add(30*time.Minute), mwCustomer)
		require.NoError(t, err)
		_, err = m.Extend(context.Background(), g.ID, now.Add(100*time.Millisecond), mwCustomer)
		require.NoError(t, err)
	})
	require.True(t, ended, "the request runs on past the grant's latest end (100 ms)")
}
