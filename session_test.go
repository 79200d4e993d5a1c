package supportaccess_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
)

// mwStream is a streaming handler: it sends a first event, then waits for
// its context to end (at most 5 s), then tries to send more.
type mwStream struct {
	started  chan struct{}
	done     chan struct{}
	cause    error
	writeErr error
	endedAt  time.Time
	aborted  atomic.Bool // the middleware aborted the response (http.ErrAbortHandler)
}

func newMWStream() *mwStream {
	return &mwStream{started: make(chan struct{}), done: make(chan struct{})}
}

func (s *mwStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer close(s.done)
	_, _ = w.Write([]byte("event: hello\n\n"))
	_ = http.NewResponseController(w).Flush()
	close(s.started)
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
	}
	s.endedAt = time.Now()
	s.cause = context.Cause(r.Context())
	_, s.writeErr = w.Write([]byte("more data"))
}

// serve runs h in the background and waits until the stream started.
func (s *mwStream) serve(t *testing.T, h http.Handler, r *http.Request) (*httptest.ResponseRecorder, chan struct{}) {
	t.Helper()
	rec := httptest.NewRecorder()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, aborted := mwServeTo(h, rec, r)
		s.aborted.Store(aborted)
	}()
	select {
	case <-s.started:
	case <-time.After(2 * time.Second):
		t.Fatal("stream did not start")
	}
	return rec, finished
}

// waitEnd waits for the stream to end and returns how long after since.
func (s *mwStream) waitEnd(t *testing.T, finished chan struct{}, since time.Time) time.Duration {
	t.Helper()
	select {
	case <-finished:
	case <-time.After(6 * time.Second):
		t.Fatal("request did not finish")
	}
	return s.endedAt.Sub(since)
}

// ended reports whether the stream's context ended (without waiting).
func (s *mwStream) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func requireStreamCut(t *testing.T, s *mwStream, rec *httptest.ResponseRecorder, reason string) {
	t.Helper()
	require.ErrorIs(t, s.cause, sa.ErrSessionEnded)
	require.Contains(t, s.cause.Error(), reason)
	require.ErrorIs(t, s.writeErr, sa.ErrSessionEnded, "writes fail after the end")
	require.Equal(t, "event: hello\n\n", rec.Body.String(), "nothing is sent after the end")
	require.True(t, s.aborted.Load(), "the cut response is aborted, not ended as if complete")
}

func TestSessionEndRevokeMidStreamCancelsAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	s := newMWStream()
	rec, finished := s.serve(t, e.wrap(s), mwReq(http.MethodGet, "/events", "generic"))
	revokedAt := time.Now()
	_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
	require.NoError(t, err)
	took := s.waitEnd(t, finished, revokedAt)
	require.Less(t, took, time.Second)
	t.Logf("revoke to cancellation: %s", took)
	requireStreamCut(t, s, rec, "revoked")
	require.Equal(t, []string{"s-generic:" + sa.SessionEndRevoked}, e.ended.all())
	ev := e.events(sa.EventSupportRequest)
	require.Len(t, ev, 1)
	require.Equal(t, "200", ev[0].Attrs[sa.AttrStatus], "recorded when the stream started")
	// The next request is refused and tells the host again.
	require.Equal(t, http.StatusForbidden, mwDo(e.wrap(&mwOK{}), mwReq(http.MethodGet, "/", "generic")).Code)
	require.Equal(t, "s-generic:"+sa.SessionEndNoGrant, e.ended.all()[1])
}

func TestSessionEndExpiryMidStreamCancels(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	// The grant ends 80 ms from now by the Manager's clock.
	e.clock.setUntil(g.ExpiresAt, 80*time.Millisecond)
	start := time.Now()
	s := newMWStream()
	rec, finished := s.serve(t, e.wrap(s), mwReq(http.MethodGet, "/events", "generic"))
	took := s.waitEnd(t, finished, start)
	require.GreaterOrEqual(t, took, 70*time.Millisecond, "not before ExpiresAt")
	require.Less(t, took, time.Second)
	t.Logf("start to cancellation (grant ends after 80 ms): %s", took)
	requireStreamCut(t, s, rec, "expired")
	require.Equal(t, []string{"s-generic:" + sa.SessionEndExpired}, e.ended.all())
}

func TestSessionEndSweepBySameManagerCancels(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	s := newMWStream()
	rec, finished := s.serve(t, e.wrap(s, sa.WithPollInterval(time.Hour)), mwReq(http.MethodGet, "/events", "generic"))
	// The clock jumps past the end (the real timer is an hour away); the
	// Manager's expiry sweep tells the middleware.
	e.clock.setUntil(g.ExpiresAt, -time.Second)
	at := time.Now()
	n, err := e.m.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Less(t, s.waitEnd(t, finished, at), time.Second)
	requireStreamCut(t, s, rec, "expired")
}

func TestSessionEndOtherReplicaRevokeIsPolled(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	// Another replica: its own Manager on the same store.
	replica, err := sa.NewManager(e.store)
	require.NoError(t, err)
	const interval = 100 * time.Millisecond
	s := newMWStream()
	rec, finished := s.serve(t, e.wrap(s, sa.WithPollInterval(interval)), mwReq(http.MethodGet, "/events", "generic"))
	time.Sleep(30 * time.Millisecond) // revoke in the middle of a poll period
	at := time.Now()
	_, err = replica.Revoke(context.Background(), g.ID, mwCustomer, "")
	require.NoError(t, err)
	took := s.waitEnd(t, finished, at)
	require.Less(t, took, interval+100*time.Millisecond, "noticed within the poll interval")
	t.Logf("other replica's revoke to cancellation (interval %s): %s", interval, took)
	requireStreamCut(t, s, rec, "revoked")
	require.Equal(t, []string{"s-generic:" + sa.SessionEndRevoked}, e.ended.all())
}

func TestSessionEndAnotherGrantKeepsRequest(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	short := e.grant(sa.GrantInput{Duration: sa.Day, TicketRef: "T-1"})
	long := e.grant(sa.GrantInput{Duration: 7 * sa.Day, TicketRef: "T-2"})
	s := newMWStream()
	rec, finished := s.serve(t, e.wrap(s, sa.WithPollInterval(50*time.Millisecond)), mwReq(http.MethodGet, "/events", "generic"))
	_, err := e.m.Revoke(context.Background(), long.ID, mwCustomer, "ticket closed")
	require.NoError(t, err)
	time.Sleep(150 * time.Millisecond)
	require.False(t, s.ended(), "the other active grant still covers the session")
	_, err = e.m.Revoke(context.Background(), short.ID, mwCustomer, "")
	require.NoError(t, err)
	s.waitEnd(t, finished, time.Now())
	requireStreamCut(t, s, rec, "revoked")
}

func TestSessionEndExtendedGrantKeepsRequest(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.setUntil(g.ExpiresAt, 60*time.Millisecond)
	s := newMWStream()
	rec, finished := s.serve(t, e.wrap(s), mwReq(http.MethodGet, "/events", "generic"))
	_, err := e.m.Extend(context.Background(), g.ID, g.ExpiresAt.Add(sa.Day), mwCustomer)
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond) // past the old end
	require.False(t, s.ended(), "extended: the request goes on")
	_, err = e.m.Revoke(context.Background(), g.ID, mwCustomer, "")
	require.NoError(t, err)
	s.waitEnd(t, finished, time.Now())
	requireStreamCut(t, s, rec, "revoked")
}

func TestSessionEndBeforeResponseDenies(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	started := make(chan struct{})
	var writeErr, changeErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
		w.Header().Set("Content-Type", "text/html")
		_, writeErr = w.Write([]byte("customer data fetched before the revoke"))
	}))
	rec := httptest.NewRecorder()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		h.ServeHTTP(rec, mwReq(http.MethodGet, "/settings", "generic", "Accept", "application/json"))
	}()
	<-started
	_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "")
	require.NoError(t, err)
	<-finished
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.JSONEq(t, `{"error":"session_ended","message":"Support access has ended."}`, rec.Body.String())
	require.ErrorIs(t, writeErr, sa.ErrSessionEnded)
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded, "no change after the end")
	require.Empty(t, e.events(sa.EventSupportChange))
	ev := e.events(sa.EventSupportRequest)
	require.Len(t, ev, 1)
	require.Equal(t, "403", ev[0].Attrs[sa.AttrStatus])
	require.Equal(t, "session ended: revoked", ev[0].Reason)
}

func TestSessionEndStoreFailureDuringPollCancels(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	s := newMWStream()
	rec, finished := s.serve(t, e.wrap(s, sa.WithPollInterval(40*time.Millisecond)), mwReq(http.MethodGet, "/events", "generic"))
	e.store.failFind.Store(true)
	require.Less(t, s.waitEnd(t, finished, time.Now()), time.Second)
	requireStreamCut(t, s, rec, "check failed")
	require.Empty(t, e.ended.all(), "an outage does not end the session")
	require.NotEmpty(t, e.errs.all())
}

// TestSessionStorePanicDuringPollCancels: a store (or telemetry provider)
// that panics in a re-check, which runs in a goroutine of the
// middleware's own, does not crash the process: the request ends as on a
// store failure, and the error handler hears of the panic (review 137's
// note).
func TestSessionStorePanicDuringPollCancels(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	s := newMWStream()
	rec, finished := s.serve(t, e.wrap(s, sa.WithPollInterval(40*time.Millisecond)), mwReq(http.MethodGet, "/events", "generic"))
	boom := func() { panic("driver: connection to the database lost") }
	e.store.before.Store(&boom)
	require.Less(t, s.waitEnd(t, finished, time.Now()), time.Second)
	requireStreamCut(t, s, rec, "check failed")
	require.Empty(t, e.ended.all(), "an outage does not end the session")
	var panicked bool
	for _, err := range e.errs.all() {
		panicked = panicked || strings.Contains(err.Error(), "the check panicked: driver: connection to the database lost")
	}
	require.True(t, panicked, "the error handler hears of the panic: %v", e.errs.all())
}

func TestSessionConcurrentRequestsShareOnePoller(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Grantees: []string{mwEve, mwGeneric}})
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var causes []error
	ready := make(chan struct{}, n)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("x"))
		ready <- struct{}{}
		<-r.Context().Done()
		mu.Lock()
		causes = append(causes, context.Cause(r.Context()))
		mu.Unlock()
	}), sa.WithPollInterval(20*time.Millisecond))
	for i := range n {
		tok := "generic"
		if i%2 == 1 {
			tok = "eve"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mwDo(h, mwReq(http.MethodGet, "/events", tok))
		}()
	}
	for range n {
		<-ready
	}
	// Each request's own first re-check, half an interval (10 ms) after it
	// started, wakes the watcher on its own; let those pass, then count
	// the steady state.
	time.Sleep(40 * time.Millisecond)
	finds := e.store.finds.Load()
	start := time.Now()
	time.Sleep(100 * time.Millisecond) // about 5 poll periods
	polls := e.store.finds.Load() - finds
	// The watcher ticks every half interval (10 ms): about 10 ticks in
	// 100 ms, more when a loaded machine oversleeps, so the bound follows
	// the time that really passed. 2 sessions: one check each per tick,
	// where one check per request would be 10 times as many.
	ticks := int64(time.Since(start)/(10*time.Millisecond)) + 3
	require.LessOrEqual(t, polls, 2*ticks, "one check per session and tick, not per request")
	_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "")
	require.NoError(t, err)
	wg.Wait()
	require.Len(t, causes, n)
	for _, c := range causes {
		require.ErrorIs(t, c, sa.ErrSessionEnded)
	}
	require.Len(t, e.events(sa.EventSupportRequest), n)
}

func TestRecordChange(t *testing.T) {
	type sso struct {
		Enforced bool `json:"enforced"`
	}
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var errs []error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errs = append(errs,
			sa.RecordChange(r.Context(), "sso", sso{false}, sso{true}),
			sa.RecordChange(r.Context(), "webhook.created", nil, json.RawMessage(`{"url":"https://example.com/hook"}`)),
			sa.RecordChange(r.Context(), "", 1, 2),
			sa.RecordChange(r.Context(), "bad", make(chan int), 2),
		)
		e.store.failRecord.Store(true)
		errs = append(errs, sa.RecordChange(r.Context(), "sso", sso{true}, sso{false}))
		e.store.failRecord.Store(false)
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := mwDo(h, mwReq(http.MethodPut, "/settings/sso?csrf=abc", "generic"))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.ErrorIs(t, errs[2], sa.ErrInvalidInput)
	require.ErrorIs(t, errs[3], sa.ErrInvalidInput)
	require.ErrorIs(t, errs[4], errMWBoom, "the handler learns the change may not be made")

	evs := e.events(sa.EventSupportChange)
	require.Len(t, evs, 2)
	ev := evs[0]
	require.Equal(t, "acme", ev.TenantID)
	require.Equal(t, g.ID, ev.GrantID)
	require.Equal(t, sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}, ev.Actor)
	require.JSONEq(t, `{"enforced":false}`, string(ev.Before))
	require.JSONEq(t, `{"enforced":true}`, string(ev.After))
	require.Equal(t, map[string]string{
		sa.AttrWhat: "sso", sa.AttrMethod: "PUT", sa.AttrPath: "/settings/sso", sa.AttrScope: "write",
		sa.AttrSessionID: "s-generic", sa.AttrSubjectUserID: "u-42",
	}, ev.Attrs)
	require.Nil(t, evs[1].Before)
	require.JSONEq(t, `{"url":"https://example.com/hook"}`, string(evs[1].After))
	require.NotContains(t, mwJSON(t, evs), "csrf")
}

func TestSessionEndRealServerStreamAndHijack(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	mux := http.NewServeMux()
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: hello\n\n"))
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nhi\n")
		_ = brw.Flush()
		<-r.Context().Done() // the handler owns the connection: it ends it on cancellation
	})
	srv := httptest.NewServer(e.wrap(mux))
	defer srv.Close()
	get := func(path string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		return resp
	}

	sse := get("/events")
	defer sse.Body.Close()
	require.Equal(t, http.StatusOK, sse.StatusCode)
	line := make([]byte, len("data: hello\n\n"))
	_, err := io.ReadFull(sse.Body, line)
	require.NoError(t, err)

	ws := get("/ws")
	defer ws.Body.Close()
	require.Equal(t, http.StatusSwitchingProtocols, ws.StatusCode)

	at := time.Now()
	_, err = e.m.Revoke(context.Background(), g.ID, mwCustomer, "")
	require.NoError(t, err)
	_, err = io.ReadAll(sse.Body) // ends when the handler returns: aborted, the stream was cut
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, _ = io.ReadAll(ws.Body) // ends when the handler closes the connection
	require.Less(t, time.Since(at), time.Second)

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 2)
	statuses := []string{evs[0].Attrs[sa.AttrStatus], evs[1].Attrs[sa.AttrStatus]}
	require.ElementsMatch(t, []string{"200", "101"}, statuses)
}

// TestSessionEndAbortsResponseUnderWay: a response under way when the
// session ends is aborted when the handler returns, whether the handler
// stopped at its context's end or at a refused write or hijack; one
// replaced by a denial (the end came first) or a hijacked connection is
// not, and neither is a response of a request served inside another
// (its own recorder): the enclosing request's response is the one sent.
func TestSessionEndAbortsResponseUnderWay(t *testing.T) {
	e := newMWEnv(t)
	serve := func(h func(w http.ResponseWriter, r *http.Request, revoke func())) (*httptest.ResponseRecorder, bool) {
		t.Helper()
		g := e.grant(sa.GrantInput{})
		revoke := func() {
			_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
			require.NoError(t, err)
		}
		return mwServe(e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(w, r, revoke) })),
			mwReq(http.MethodGet, "/report", "generic"))
	}

	rec, aborted := serve(func(w http.ResponseWriter, r *http.Request, revoke func()) {
		_, _ = w.Write([]byte("part"))
		revoke()
		<-r.Context().Done() // a handler that stops at its context's end
	})
	require.True(t, aborted, "stopped at the context's end")
	require.Equal(t, "part", rec.Body.String())

	rec, aborted = serve(func(w http.ResponseWriter, r *http.Request, revoke func()) {
		_, _ = w.Write([]byte("part"))
		revoke()
		<-r.Context().Done() // the end is known (the re-check after the revocation ran)
		_, err := w.Write([]byte(" more"))
		require.ErrorIs(t, err, sa.ErrSessionEnded)
	})
	require.True(t, aborted, "stopped at a refused write")
	require.Equal(t, "part", rec.Body.String())

	rec, aborted = serve(func(w http.ResponseWriter, r *http.Request, revoke func()) {
		_, _ = w.Write([]byte("part"))
		revoke()
		<-r.Context().Done()
		_, _, err := http.NewResponseController(w).Hijack()
		require.ErrorIs(t, err, sa.ErrSessionEnded)
	})
	require.True(t, aborted, "a refused hijack")
	require.Equal(t, "part", rec.Body.String())

	rec, aborted = serve(func(w http.ResponseWriter, r *http.Request, revoke func()) {
		revoke()
		<-r.Context().Done()
		_, err := w.Write([]byte("secret"))
		require.ErrorIs(t, err, sa.ErrSessionEnded)
	})
	require.False(t, aborted, "the end came first: the response is a complete denial")
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.NotContains(t, rec.Body.String(), "secret")

	// A request served inside another, into a recorder of its own, whose
	// session ends while it writes: the inner request does not abort; the
	// outer response, not yet started, is replaced by the denial.
	g := e.grant(sa.GrantInput{})
	inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("panel"))
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
		require.NoError(t, err)
		<-r.Context().Done()
	}))
	outer := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub := r.Clone(r.Context())
		sub.URL.Path = "/panel"
		inner.ServeHTTP(httptest.NewRecorder(), sub)
		<-r.Context().Done()
		_, _ = w.Write([]byte("page"))
	}))
	rec, aborted = mwServe(outer, mwReq(http.MethodGet, "/page", "generic"))
	require.False(t, aborted)
	require.Equal(t, http.StatusForbidden, rec.Code)
	statuses := map[string][]string{}
	for _, ev := range e.events(sa.EventSupportRequest) {
		statuses[ev.Attrs[sa.AttrPath]] = append(statuses[ev.Attrs[sa.AttrPath]], ev.Attrs[sa.AttrStatus])
	}
	require.Equal(t, []string{"403"}, statuses["/page"], "the outer request: refused, not a panic (500)")
	require.Equal(t, []string{"200"}, statuses["/panel"], "the inner request's own response")
}
