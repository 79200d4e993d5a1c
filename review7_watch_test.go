package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Regression tests of the seventh review round: the middleware's handling
// of in-flight requests when access ends (prefix TestReview7Watch).

// rw7Session is the resolver of the tests that build their own Manager.
func rw7Session(*http.Request) (sa.Session, bool) {
	return sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s"}, true
}

// TestReview7WatchRequireScopeAfterEndElsewhere: the watcher ended the
// request because another replica revoked its only grant (the request's
// context is cancelled with ErrSessionEnded). A RequireScope(write) the
// handler reaches afterwards must not let the route run: the admitting
// grant allows write and "still holds" by admittedHolds (this Manager did
// not end it, needs[0] still names it, its end has not passed), so
// establish returns true without asking the store.
func TestReview7WatchRequireScopeAfterEndElsewhere(t *testing.T) {
	clock := &mwClock{}
	mem := memstore.New()
	m1, err := sa.NewManager(mem, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	m2, err := sa.NewManager(mem, sa.WithNow(clock.Now)) // another replica
	require.NoError(t, err)
	g, err := m1.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
	require.NoError(t, err)
	refund := &mwOK{} // a route that needs write (a side effect)
	var cause error
	h := m1.Middleware(rw7Session, sa.WithPollInterval(100*time.Millisecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := m2.Revoke(context.Background(), g.ID, mwCustomer, "stop now")
		require.NoError(t, err)
		select { // the watcher's poll finds the revocation
		case <-r.Context().Done():
		case <-time.After(900 * time.Millisecond):
		}
		cause = context.Cause(r.Context())
		sa.RequireScope(sa.ScopeWrite)(refund).ServeHTTP(httptest.NewRecorder(), r)
	}))
	mwDo(h, mwReq(http.MethodGet, "/orders", ""))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the watcher ended the request")
	require.Zero(t, refund.calls.Load(), "RequireScope(write) let a route run after the request's access ended (grant revoked)")
}

// TestReview7WatchRequireScopeAfterStoreFailure: the watcher ended the
// request, fail closed, because the store failed its re-check. A
// RequireScope(write) reached afterwards lets the route run without any
// store access (fail open), while the store still fails.
func TestReview7WatchRequireScopeAfterStoreFailure(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
	refund := &mwOK{}
	var cause error
	var findsBefore int64
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.store.failFind.Store(true) // the database fails from now on
		cause = mwWaitEnd(r, 900*time.Millisecond)
		findsBefore = e.store.finds.Load()
		sa.RequireScope(sa.ScopeWrite)(refund).ServeHTTP(httptest.NewRecorder(), r)
	}), sa.WithPollInterval(100*time.Millisecond))
	mwDo(h, mwReq(http.MethodGet, "/orders", "generic"))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the failed re-check ended the request")
	require.Zero(t, refund.calls.Load(), "RequireScope(write) let a route run after a store failure ended the request (no check: %d store reads)", e.store.finds.Load()-findsBefore)
}

// TestReview7WatchExtendDuringRequireScopeCheck: RequireScope(msgs) finds
// grant h; while its Check answers (after the store read h's old end),
// the customer shortens h to 150 ms from now on this Manager. establish
// adds the need with h's old end and never looks at the moved end (the
// admission has a moves check, establish none): the request keeps using
// msgs past h's new end — its context is not cancelled and a second
// RequireScope(msgs) passes without a Check — until a poll (here a
// minute away; Extend's doc: requests "end at its new end").
func TestReview7WatchExtendDuringRequireScopeCheck(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: sa.Day}) // read: admits the request
	hg := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	first, second := &mwOK{}, &mwOK{}
	var cause error
	var newEnd time.Time
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shorten := func() {
			newEnd = time.Now().Add(150 * time.Millisecond)
			_, err := e.m.Extend(context.Background(), hg.ID, e.clock.Now().Add(150*time.Millisecond), mwCustomer)
			require.NoError(t, err)
		}
		store.after.Store(&shorten) // runs inside RequireScope's Check, after the read
		sa.RequireScope(msgs)(first).ServeHTTP(httptest.NewRecorder(), r)
		require.Nil(t, store.after.Load(), "the Extend ran")
		cause = mwWaitEnd(r, time.Until(newEnd)+400*time.Millisecond)
		sa.RequireScope(msgs)(second).ServeHTTP(httptest.NewRecorder(), r)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), first.calls.Load())
	require.Zero(t, second.calls.Load(), "RequireScope(%s) 400 ms after its only grant's new end", msgs)
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request using %s ends at its grant's new end", msgs)
}

// TestReview7WatchShortenNotDelayedByNotifier: Extend tells the Notifier
// (an e-mail, a webhook: a round trip of any length) before it tells the
// middleware's listener, unlike Revoke. A grant shortened to 150 ms from
// now on this Manager does not end the in-flight request at its new end
// while the Notifier is still busy.
func TestReview7WatchShortenNotDelayedByNotifier(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	notifier := sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
		if n.Type == sa.EventGrantExtended {
			close(entered)
			<-release
		}
		return nil
	})
	e := newMWEnv(t, sa.WithNotifier(notifier))
	g := e.grant(sa.GrantInput{Duration: sa.Day})
	in, probe := make(chan struct{}), make(chan struct{})
	var cause, werr error
	var newEnd time.Time
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("row 1\n"))
		close(in)
		<-probe
		cause = mwWaitEnd(r, time.Until(newEnd)+400*time.Millisecond)
		_, werr = w.Write([]byte("row 2\n"))
	}), sa.WithPollInterval(time.Minute))
	done := make(chan struct{})
	var rec *httptest.ResponseRecorder
	go func() { defer close(done); rec = mwDo(h, mwReq(http.MethodGet, "/events", "generic")) }()
	<-in
	extendDone := make(chan struct{})
	newEnd = time.Now().Add(150 * time.Millisecond)
	go func() {
		defer close(extendDone)
		_, err := e.m.Extend(context.Background(), g.ID, e.clock.Now().Add(150*time.Millisecond), mwCustomer)
		require.NoError(t, err)
	}()
	<-entered // committed; the customer is being told
	close(probe)
	<-done
	close(release)
	<-extendDone
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "ended at the grant's new end, not after the Notifier")
	require.ErrorIs(t, werr, sa.ErrSessionEnded)
	require.NotContains(t, rec.Body.String(), "row 2")
}

// TestReview7WatchDeafStoreDoesNotHoldExpiredRequest: the grant reaches
// its end while the store has stopped answering and ignores its context.
// WithPollInterval promises that the re-check "waits at most 100 ms for
// the store before the request ends"; but the watcher goroutine waits
// for the Check itself, so the request (and every other request of the
// middleware, whatever its tenant) runs on past ExpiresAt for as long as
// the store call hangs.
func TestReview7WatchDeafStoreDoesNotHoldExpiredRequest(t *testing.T) {
	clock := &mwClock{}
	store := &rw8DeafStore{Store: memstore.New(), release: make(chan struct{})}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: time.Hour})
	require.NoError(t, err)
	clock.setUntil(g.ExpiresAt, 150*time.Millisecond) // the grant ends in 150 ms
	end := time.Now().Add(150 * time.Millisecond)
	var cause, werr error
	var late time.Duration
	h := m.Middleware(rw7Session, sa.WithPollInterval(time.Minute))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("row 1\n"))
		store.deaf.Store(true) // the database stops answering
		select {
		case <-r.Context().Done():
		case <-time.After(time.Until(end) + 500*time.Millisecond):
		}
		late = time.Since(end)
		cause = context.Cause(r.Context())
		_, werr = w.Write([]byte("row 2 after the grant's end\n"))
		close(store.release) // lets the watcher's Check return (and the request leave)
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/events", ""))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "not ended %s after the grant's end", late)
	require.ErrorIs(t, werr, sa.ErrSessionEnded)
	require.NotContains(t, rec.Body.String(), "row 2")
}

// TestReview7WatchMiddlewareNotRetainedByManager: every Middleware call
// whose handler served one impersonated request registers a listener with
// the Manager that is never removed: the Manager keeps the watcher (its
// end log, its error handler and whatever that references) for ever, and
// every Revoke and Extend calls all of them. A host that builds the
// middleware per request or per route lazily grows without bound.
func TestReview7WatchMiddlewareNotRetainedByManager(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: sa.Day})
	const n = 20
	var collected atomic.Int64
	for range n {
		marker := new([1 << 10]byte) // something the middleware's error handler uses
		runtime.SetFinalizer(marker, func(*[1 << 10]byte) { collected.Add(1) })
		onErr := func(context.Context, error) { marker[0]++ }
		h := e.m.Middleware(e.sessions.resolve, sa.WithMiddlewareErrorHandler(onErr))(&mwOK{})
		rec := mwDo(h, mwReq(http.MethodGet, "/page", "generic"))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	for i := 0; i < 50 && collected.Load() < n; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // finalizers run on their own goroutine
	}
	require.Equal(t, int64(n), collected.Load(), "middlewares no longer used are still referenced by the Manager")
	runtime.KeepAlive(e.m)
}

// TestReview7WatchEarlyHintsNotSentUnaudited: WriteHeader(103) passes
// through before the response is committed, and net/http sends every
// header the handler has set with it. When the support.request event then
// cannot be recorded, the response is replaced by a 503 and nothing is in
// the audit trail — but support has already received the handler's
// headers (here a customer file name) in the 103.
func TestReview7WatchEarlyHintsNotSentUnaudited(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: sa.Day})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.Header().Set("X-Export-File", "acme-payroll-2025.csv")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = w.Write([]byte("name,salary\n"))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	e.store.failRecord.Store(true) // the audit trail cannot be written

	var mu sync.Mutex
	var hints []textproto.MIMEHeader
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		hints = append(hints, hdr)
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL+"/export", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the audit failed: the response is refused")
	e.store.failRecord.Store(false)
	require.Empty(t, e.events(sa.EventSupportRequest), "nothing audited")
	mu.Lock()
	defer mu.Unlock()
	for _, hdr := range hints {
		require.Empty(t, hdr.Get("X-Export-File"), "a header of the unaudited response reached support in a 1xx")
	}
}

// TestReview7WatchLossOfElevatedScopeDoesNotEndSession: the request took
// messages:read from grant b (RequireScope); the customer revokes b while
// grant a, which admitted the request, still covers the session. The
// request ends (it uses the scope), but OnSessionEnded is called with
// SessionEndRevoked — documented as "no other active grant covers the
// session" — so the host logs support out of a tenant where a grant still
// lets it in (the next request of the session is admitted).
func TestReview7WatchLossOfElevatedScopeDoesNotEndSession(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: sa.Day}) // a: read, admits the session
	b := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	inbox := &mwOK{}
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/inbox" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		sa.RequireScope(msgs)(inbox).ServeHTTP(w, r)
		_, err := e.m.Revoke(context.Background(), b.ID, mwCustomer, "no more messages")
		require.NoError(t, err)
		cause = mwWaitEnd(r, 500*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), inbox.calls.Load())
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request used %s: it ends", msgs)
	require.ErrorIs(t, cause, sa.ErrScopeNotGranted, "the cause says a scope was lost, not the session")
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/home", "generic")).Code, "grant a still admits the session")
	require.NotContains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked, "OnSessionEnded(revoked) while grant a still covers the session")
}

// TestReview7WatchRevokeTenantNotDelayedByNotifier: RevokeTenant revokes
// the tenant's grants one after the other, each followed by its
// Notifier round trip (revokeMatching calls revoke, which notifies). An
// in-flight request kept by the tenant's second grant therefore runs on
// — and new requests are admitted — for as long as the Notifier takes
// with the first: the fix Revoke got (listeners before the Notifier) does
// not hold for RevokeTenant as a whole.
func TestReview7WatchRevokeTenantNotDelayedByNotifier(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	notifier := sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
		if n.Type == sa.EventGrantRevoked {
			first := false
			once.Do(func() { first = true })
			if first {
				close(entered)
				<-release // a webhook that takes its time
			}
		}
		return nil
	})
	e := newMWEnv(t, sa.WithNotifier(notifier))
	e.grant(sa.GrantInput{Duration: sa.Day})     // ticket 1
	e.grant(sa.GrantInput{Duration: 2 * sa.Day}) // ticket 2: admits the request
	in, probe := make(chan struct{}), make(chan struct{})
	var cause, werr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		_, _ = w.Write([]byte("row 1\n"))
		close(in)
		<-probe
		cause = mwWaitEnd(r, 400*time.Millisecond)
		_, werr = w.Write([]byte("row 2\n"))
	}), sa.WithPollInterval(time.Minute))
	done := make(chan struct{})
	go func() { defer close(done); mwDo(h, mwReq(http.MethodGet, "/events", "generic")) }()
	<-in
	revokeDone := make(chan struct{})
	go func() {
		defer close(revokeDone)
		_, err := e.m.RevokeTenant(context.Background(), "acme", mwCustomer, "all support access ends now")
		require.NoError(t, err)
	}()
	<-entered // the first grant is revoked; the customer is being told
	close(probe)
	<-done
	newReq := mwDo(h, mwReq(http.MethodGet, "/home", "generic")).Code
	close(release)
	<-revokeDone
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the in-flight request outlives RevokeTenant while the Notifier is busy")
	require.ErrorIs(t, werr, sa.ErrSessionEnded)
	require.Equal(t, http.StatusForbidden, newReq, "a new request is admitted during RevokeTenant's Notifier round trip")
}
