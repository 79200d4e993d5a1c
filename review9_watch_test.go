package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Regression tests of the ninth review round: commits 4cf8250, 23fb8ad and
// 9a7cb27 to the middleware's watcher and establish (prefix TestReview9).

// TestReview9LossOfWriteWithReadLeftIsNotSessionEnd: a POST was admitted by
// grant a (write); grant b of the same tenant allows read only. The customer
// revokes a. The request must end (it uses write), but since 9a7cb27 a
// denial of needs[0] is never a lost scope: the re-check's
// ErrScopeNotGranted for write is reported as SessionEndRevoked and
// OnSessionEnded(revoked) is called — documented as "no other active grant
// covers the session" (and endReasonScopeLost's comment names exactly this
// case: "a grant carrying an elevated scope, or write, ended"). The host
// logs support out although b still admits every GET of the session
// (admission itself does not call OnSessionEnded for a missing write).
func TestReview9LossOfWriteWithReadLeftIsNotSessionEnd(t *testing.T) {
	lossOfWriteWithReadLeft(t, false)
}

// lossOfWriteWithReadLeft: a POST admitted by grant a (write) while grant
// b allows read only; the customer revokes a on this Manager. The request
// ends (it used write), and b still admits the session's GETs: the host
// is not told the session ended as revoked. With failRead the watcher's
// Check of read fails (a store error): that is reported to the error
// handler, and still no revoked session end.
func lossOfWriteWithReadLeft(t *testing.T, failRead bool) {
	e := newMWEnv(t)
	a := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
	e.grant(sa.GrantInput{Duration: 2 * sa.Day}) // b: read only
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			_, _ = w.Write([]byte("ok"))
			return
		}
		if failRead {
			defer e.store.failChecks(sa.ScopeRead)()
		}
		_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "no more changes")
		require.NoError(t, err)
		cause = mwWaitEnd(r, 500*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodPost, "/settings", "generic"))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request used write: it ends")
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/home", "generic")).Code, "grant b still admits the session")
	require.NotContains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked,
		"OnSessionEnded(revoked) although grant b still covers the session (cause: %v)", cause)
	if failRead {
		require.True(t, boomReported(e.errs.all()), "the read Check's store failure was reported to no error handler: %v", e.errs.all())
	}
}

// rw9DeafOnceStore is a memstore whose first Check from the watcher (its
// context has a deadline) of scope, once armed, ignores its context and
// blocks until release is closed — one call stuck on a dead pooled
// connection. Every other call answers at once.
type rw9DeafOnceStore struct {
	*mwStore
	scope   sa.Scope
	armed   atomic.Bool
	hung    chan struct{}
	release chan struct{}
	// later (if not nil) is closed at the first watcher call of scope
	// after the hung one: a later poll asked the store again.
	later     chan struct{}
	laterOnce sync.Once
}

func (s *rw9DeafOnceStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if _, watcher := ctx.Deadline(); watcher && scope == s.scope {
		if s.armed.CompareAndSwap(true, false) {
			close(s.hung)
			<-s.release
		} else if s.later != nil {
			select {
			case <-s.hung:
				s.laterOnce.Do(func() { close(s.later) })
			default:
			}
		}
	}
	return s.mwStore.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

// TestReview9PendingCheckEndsRequestKeptByOtherGrant: grants a and b of the
// tenant both cover the session; a admitted the request. One re-check
// Check of the session's read scope hangs (ignoring its context); the
// store answers every other call at once. The customer then revokes a on
// this Manager. Before 9a7cb27 the re-check of the request asked the
// store again (100 ms) and found b: the request went on. Now boundedCheck
// sees the earlier call still pending and reports "timed out" without
// asking: unanswered ends the request as revoked and OnSessionEnded tells
// the host to log support out — while b still covers the session. (The
// same pending entry makes every re-check of that session and scope
// "unanswered" for as long as the one call hangs, so all its long
// requests also end with "check failed" after max(3 intervals, 5 s).)
func TestReview9PendingCheckEndsRequestKeptByOtherGrant(t *testing.T) {
	e := newMWEnv(t)
	store := &rw9DeafOnceStore{mwStore: &mwStore{Store: e.store.Store}, scope: sa.ScopeRead, hung: make(chan struct{}), release: make(chan struct{}),
		later: make(chan struct{})}
	m, err := sa.NewManager(store, sa.WithNow(e.clock.Now), sa.WithErrorHandler(e.errs.handle))
	require.NoError(t, err)
	e.m = m
	a := e.grant(sa.GrantInput{Duration: 2 * sa.Day}) // ends last: admits the request
	e.grant(sa.GrantInput{Duration: sa.Day})          // b: keeps the session
	timedOut := make(chan struct{})
	var once sync.Once
	onError := func(ctx context.Context, err error) {
		e.errs.handle(ctx, err)
		if strings.Contains(err.Error(), "got no answer") {
			once.Do(func() { close(timedOut) })
		}
	}
	var cause error
	h := e.m.Middleware(e.sessions.resolve, sa.OnSessionEnded(e.ended.handle), sa.WithMiddlewareErrorHandler(onError),
		sa.WithPollInterval(100*time.Millisecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(store.release) // the stuck call returns before the request leaves
		store.armed.Store(true)
		select { // the first poll's Check hangs, and times out at 250 ms
		case <-timedOut:
		case <-time.After(900 * time.Millisecond):
			t.Error("no re-check timed out")
			return
		}
		// A later poll asks again while the first call still hangs (not
		// the poll whose time the hung call used up: a revocation in its
		// last 100 ms may end the request by design, see WithPollInterval).
		select {
		case <-store.later:
		case <-time.After(900 * time.Millisecond):
		}
		_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "wrong ticket")
		require.NoError(t, err)
		cause = mwWaitEnd(r, 400*time.Millisecond)
	}))
	mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
	require.NoError(t, cause, "grant b keeps the session and the store answers at once: the request was ended")
	require.Empty(t, e.ended.all(), "OnSessionEnded while grant b still covers the session")
}

// TestReview9RequireScopeRunsAfterEndDuringItsCheck: establish refuses a
// request that ended only before its Check. Here RequireScope(msgs)'s
// Check finds grant x (messages:read) and, while it answers, the grant
// that admitted the request — its only read grant — is revoked; the
// watcher ends the request (revoked: its context is cancelled). establish
// then records {msgs, x} and lets the route run: a route (with its side
// effects) runs for a request whose access ended, the case 4cf8250's
// ended test was added for. The window is the whole Check (a store round
// trip), not two adjacent statements.
func TestReview9RequireScopeRunsAfterEndDuringItsCheck(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	a := e.grant(sa.GrantInput{Duration: sa.Day}) // read: admits the request
	e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	route := &mwOK{}
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after := func() { // inside RequireScope's Check, after the store read x
			_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "support is done")
			require.NoError(t, err)
			select { // the watcher re-checks at once and ends the request
			case <-r.Context().Done():
			case <-time.After(900 * time.Millisecond):
			}
			cause = context.Cause(r.Context())
		}
		store.after.Store(&after)
		sa.RequireScope(msgs)(route).ServeHTTP(httptest.NewRecorder(), r)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the watcher ended the request during the Check")
	require.Zero(t, route.calls.Load(), "RequireScope ran its route after the request's access ended (%v)", cause)
}

// rw9RevokeFoundStore is a memstore that, for the next n Checks of scope,
// revokes the grant it found right after reading it (before the Check
// returns): a RevokeTenant/RevokeTicket under way while RequireScope asks.
type rw9RevokeFoundStore struct {
	*mwStore
	m       *sa.Manager
	scope   sa.Scope
	n       atomic.Int64
	revoked atomic.Int64
}

func (s *rw9RevokeFoundStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	g, err := s.mwStore.FindActiveGrant(ctx, tenantID, principal, scope, now)
	if err == nil && scope == s.scope && s.n.Add(-1) >= 0 {
		if _, rerr := s.m.Revoke(context.Background(), g.ID, mwCustomer, "ticket closed"); rerr != nil {
			panic(rerr)
		}
		s.revoked.Add(1)
	}
	return g, err
}

// TestReview9RequireScopeRunsOnGrantKnownRevoked: each of RequireScope's
// Checks finds a grant of messages:read that this Manager revokes while
// the answer comes back (the tenant's grants are being revoked one by
// one). After the third stale answer establish stops asking — and lets
// the route run on that grant although the end log says it ended: it
// only marks the grant ended and pokes the watcher, which then ends the
// request (no grant allows msgs). The route has run by then. A refusal
// (503, "try again") would fail closed.
func TestReview9RequireScopeRunsOnGrantKnownRevoked(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := &rw9RevokeFoundStore{mwStore: &mwStore{Store: e.store.Store}, scope: msgs}
	m, err := sa.NewManager(store, sa.WithNow(e.clock.Now), sa.WithErrorHandler(e.errs.handle))
	require.NoError(t, err)
	e.m, store.m = m, m
	e.grant(sa.GrantInput{Duration: 4 * sa.Day}) // read: admits the request
	for i := 1; i <= 3; i++ {
		e.grant(sa.GrantInput{Duration: time.Duration(i) * sa.Day, Scopes: []sa.Scope{msgs}})
	}
	route := &mwOK{}
	var code int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store.n.Store(3)
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(route).ServeHTTP(rec, r)
		code = rec.Code
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(3), store.revoked.Load(), "three Checks found a grant that was then revoked")
	require.Zero(t, route.calls.Load(), "the route ran on a grant establish knew had been revoked (status %d)", code)
}

// (TestReview9EndedRefusalLosesItsBody, the same scenario as
// TestReview8EndedRefusalCarriesHandlerHeaders, is now one more assertion
// there: the session-ended refusal goes out with its body.)
