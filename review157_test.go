package supportaccess_test

// Review 157: attacks on the last fixes of the session (d946125..HEAD):
// Cache-Control: no-store on every impersonated response, endedAs in a
// goroutine of its own and skipped for grants this Manager ended, the
// hook failure stored before it is reported, refusals at a broken clock,
// and the denied handler's writer (FlushError, Flush, Hijack). Each test
// names the promise it attacks; a passing test is an attack that failed.

import (
	"context"
	"errors"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// ---------------------------------------------------------------------
// (b) middleware_watch.go: endReason skips the read for a grant this
// Manager "ended".

// TestReview157SweepExpiryOfGrantShortenedElsewhereIsExpired attacks
// endedAs's "a grant shortened on another replica to an end that passed
// before this one looked again is refused as any revoked one is, but it
// expired" and endReason's "This Manager ended it: a revocation, or an
// expiry its Sweep recorded (past the end the request knows) — no read
// needed". Another replica shortens the grant (this Manager's watcher
// does not hear of the move); the end passes and THIS Manager's Sweep
// records the expiry. The Sweep's expiry is past the store's end, not
// past the end the request knows, so denialReason says "revoked" — and
// endReason's shortcut did not read the grant to tell (found by review
// 157; the shortcut is gone, the read says "expired").
func TestReview157SweepExpiryOfGrantShortenedElsewhereIsExpired(t *testing.T) {
	e := newMWEnv(t)
	a := e.grant(sa.GrantInput{Grantees: []string{mwGeneric}, Duration: time.Hour})
	other, err := sa.NewManager(e.store.Store, sa.WithNow(e.clock.Now))
	require.NoError(t, err)
	// A poll interval long enough that only the Sweep's end notice
	// triggers the re-check.
	streams := e.streams(sa.WithPollInterval(time.Hour))
	defer streams.stop()
	r := streams.serve("generic")
	_, err = other.Extend(context.Background(), a.ID, e.clock.Now().Add(time.Minute), mwCustomer)
	require.NoError(t, err)
	e.clock.Advance(2 * time.Minute) // past the new end, well before the one the request knows
	n, err := e.m.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n, "this Manager's Sweep recorded the expiry")
	require.ErrorIs(t, mwWaitEnd(r, 3*time.Second), sa.ErrSessionEnded)
	require.Eventually(t, func() bool { return len(e.ended.all()) == 1 }, 3*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"s-generic:" + sa.SessionEndExpired}, e.ended.all(),
		"the grant expired (shortened elsewhere, expired by this Manager's Sweep), it was not revoked")
}

// TestReview157RevokedHereStaysRevoked: a grant revoked by this Manager
// ends its request as revoked. (Review 157 pinned it with no read of the
// grant, through endReason's shortcut for grants this Manager ended; the
// shortcut also served Sweep expiries of grants shortened elsewhere, as
// revoked — see the test above — and was dropped: one bounded read of the
// grant per poll, counted on the store.)
func TestReview157RevokedHereStaysRevoked(t *testing.T) {
	inner := &mwStore{Store: memstore.New()}
	st := &r157CountGet{mwStore: inner}
	e := r155MWEnvOn(t, inner, st)
	g := e.grant(sa.GrantInput{Grantees: []string{mwGeneric}, Duration: time.Hour})
	streams := e.streams(sa.WithPollInterval(time.Hour))
	defer streams.stop()
	r := streams.serve("generic")
	before := st.deadlineGets.Load()
	_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
	require.NoError(t, err)
	require.ErrorIs(t, mwWaitEnd(r, 3*time.Second), sa.ErrSessionEnded)
	require.Eventually(t, func() bool { return len(e.ended.all()) == 1 }, 3*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"s-generic:" + sa.SessionEndRevoked}, e.ended.all())
	require.LessOrEqual(t, st.deadlineGets.Load()-before, int64(1), "at most one bounded read of the grant")
}

// r157CountGet counts GetGrant calls with a deadline (endedAs's read)
// and, when panics is set, panics in them (host code: the store).
type r157CountGet struct {
	*mwStore
	deadlineGets atomic.Int64
	panics       atomic.Bool
}

func (s *r157CountGet) GetGrant(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
	if _, ok := ctx.Deadline(); ok {
		s.deadlineGets.Add(1)
		if s.panics.Load() {
			panic("r157: store panics in GetGrant")
		}
	}
	return s.mwStore.GetGrant(ctx, id)
}

// TestReview157PanickingGrantReadKeepsRevoked attacks endedAs's "No
// answer in time, a failed read or a panic keeps 'revoked'" with the read
// in a goroutine of its own (a panic there would kill the process): the
// grant is revoked on another replica (the watcher's poll finds it) and
// the store's GetGrant panics. Two streams on the grant: both end, as
// revoked, with one read (the memo), and the watcher goroutine and the
// reads are gone once the requests returned.
func TestReview157PanickingGrantReadKeepsRevoked(t *testing.T) {
	inner := &mwStore{Store: memstore.New()}
	st := &r157CountGet{mwStore: inner}
	e := r155MWEnvOn(t, inner, st)
	g := e.grant(sa.GrantInput{Grantees: []string{mwGeneric}, Duration: time.Hour})
	other, err := sa.NewManager(inner.Store, sa.WithNow(e.clock.Now))
	require.NoError(t, err)
	ignore := goleak.IgnoreCurrent()
	streams := e.streams(sa.WithPollInterval(100 * time.Millisecond))
	r1 := streams.serve("generic")
	r2 := streams.serve("generic")
	st.panics.Store(true)
	_, err = other.Revoke(context.Background(), g.ID, mwCustomer, "done elsewhere")
	require.NoError(t, err)
	require.ErrorIs(t, mwWaitEnd(r1, 3*time.Second), sa.ErrSessionEnded)
	require.ErrorIs(t, mwWaitEnd(r2, 3*time.Second), sa.ErrSessionEnded)
	streams.stop()
	require.Eventually(t, func() bool { return len(e.ended.all()) == 2 }, 3*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"s-generic:" + sa.SessionEndRevoked, "s-generic:" + sa.SessionEndRevoked}, e.ended.all())
	t.Logf("bounded grant reads: %d", st.deadlineGets.Load())
	require.GreaterOrEqual(t, st.deadlineGets.Load(), int64(1), "the grant was read (and the read panicked)")
	require.LessOrEqual(t, st.deadlineGets.Load(), int64(2), "one read per grant and poll (the memo)")
	goleak.VerifyNone(t, ignore)
}

// ---------------------------------------------------------------------
// (a) middleware_writer.go: Cache-Control: no-store.

// r157Server serves h over a real HTTP/1 server and returns a function
// doing method path with header pairs as the generic session.
func r157Server(t *testing.T, h http.Handler) func(method, path, token string, header ...string) *http.Response {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return func(method, path, token string, header ...string) *http.Response {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.AddCookie(&http.Cookie{Name: "sid", Value: token})
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
}

// r157NoStore requires the response's Cache-Control directives to include
// no-store and no directive that lets a cache keep it.
func r157NoStore(t *testing.T, h http.Header, what string) {
	t.Helper()
	var dirs []string
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			dirs = append(dirs, strings.ToLower(strings.TrimSpace(d)))
		}
	}
	require.Contains(t, dirs, "no-store", "%s: Cache-Control %q", what, h.Values("Cache-Control"))
}

// TestReview157NoStoreEveryImpersonatedResponse attacks Middleware's "An
// impersonated response goes out with Cache-Control: no-store, replacing
// what the handler set" over a real server: a 200 with public caching, a
// HEAD, a 304 of http.ServeContent revalidating an ETag, a handler that
// writes nothing (committed by the middleware), one that sets
// Cache-Control after WriteHeader, one that sets it as a trailer (both
// ways), one that writes the field under a non-canonical key, a redirect;
// and the customer's own (not impersonated) request keeps the handler's
// Cache-Control untouched.
func TestReview157NoStoreEveryImpersonatedResponse(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour})
	mod := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/public", "/head":
			w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
			_, _ = w.Write([]byte("tenant secret"))
		case "/content":
			w.Header().Set("Cache-Control", "private, max-age=3600")
			w.Header().Set("ETag", `"v1"`)
			http.ServeContent(w, r, "x.txt", mod, strings.NewReader("tenant secret"))
		case "/nothing":
			w.Header().Set("Cache-Control", "max-age=3600")
		case "/after":
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Cache-Control", "public, max-age=86400")
			_, _ = w.Write([]byte("tenant secret"))
		case "/trailer":
			w.Header().Set("Trailer", "Cache-Control")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("tenant secret"))
			w.Header().Set("Cache-Control", "public, max-age=86400")
			w.Header().Set(http.TrailerPrefix+"Cache-Control", "public, max-age=86400")
		case "/lower":
			w.Header()["cache-control"] = []string{"public, max-age=86400"}
			_, _ = w.Write([]byte("tenant secret"))
		case "/redirect":
			w.Header().Set("Cache-Control", "max-age=86400")
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
		}
	}))
	do := r157Server(t, h)
	for _, c := range []struct {
		method, path string
		header       []string
		status       int
	}{
		{http.MethodGet, "/public", nil, http.StatusOK},
		{http.MethodHead, "/head", nil, http.StatusOK},
		{http.MethodGet, "/content", nil, http.StatusOK},
		{http.MethodGet, "/content", []string{"If-None-Match", `"v1"`}, http.StatusNotModified},
		{http.MethodGet, "/content", []string{"Range", "bytes=0-3"}, http.StatusPartialContent},
		{http.MethodGet, "/nothing", nil, http.StatusOK},
		{http.MethodGet, "/after", nil, http.StatusOK},
		{http.MethodGet, "/trailer", nil, http.StatusOK},
		{http.MethodGet, "/lower", nil, http.StatusOK},
		{http.MethodGet, "/redirect", nil, http.StatusMovedPermanently},
	} {
		resp := do(c.method, c.path, "generic", c.header...)
		require.Equal(t, c.status, resp.StatusCode, "%s %s", c.method, c.path)
		r157NoStore(t, resp.Header, c.method+" "+c.path)
		if c.path == "/public" || c.path == "/after" || c.path == "/redirect" || c.path == "/nothing" {
			require.Equal(t, []string{"no-store"}, resp.Header.Values("Cache-Control"), "%s: replaced, not added to", c.path)
		}
		if c.path == "/trailer" {
			_, _ = resp.Body.Read(make([]byte, 64))
			for _, v := range resp.Trailer.Values("Cache-Control") {
				t.Logf("trailer Cache-Control: %q (clients ignore trailers for caching)", v)
			}
		}
	}
	// The customer's own request: untouched.
	resp := do(http.MethodGet, "/public", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, []string{"public, max-age=86400, immutable"}, resp.Header.Values("Cache-Control"))
	resp = do(http.MethodGet, "/content", "", "If-None-Match", `"v1"`)
	require.Equal(t, http.StatusNotModified, resp.StatusCode, "the customer's revalidation still works")
	require.Equal(t, []string{"private, max-age=3600"}, resp.Header.Values("Cache-Control"))
}

// TestReview157NoStoreNestedAndRecorder: a request served again through
// the middleware (applied twice: serveNested writes through the outer
// writer), and one rendered by the handler into a recorder of its own
// through the middleware (audited as a request of its own): the response
// sent carries no-store either way, and the recorder's copy too (a
// handler that copies a recorded response's header to its own keeps the
// directive).
func TestReview157NoStoreNestedAndRecorder(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour})
	leaf := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		_, _ = w.Write([]byte("part"))
	})
	inner := e.wrap(leaf)
	twice := e.wrap(inner)
	var recorded http.Header
	viaRecorder := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		recorded = rec.Result().Header
		for k, v := range recorded {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	for name, h := range map[string]http.Handler{"twice": twice, "recorder": viaRecorder} {
		rec := mwDo(h, mwReq(http.MethodGet, "/page", "generic"))
		require.Equal(t, http.StatusOK, rec.Code, name)
		require.Equal(t, []string{"no-store"}, rec.Result().Header.Values("Cache-Control"), name)
	}
	require.Equal(t, []string{"no-store"}, recorded.Values("Cache-Control"), "the recorded part")
}

// TestReview157DenialsNoStore: a denial that replaces an admitted
// request's response (the session ended before the header went out) and
// one at admission, with the default denied handler, go out with
// no-store and none of the handler's fields.
func TestReview157DenialsNoStore(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop")
		require.NoError(t, err)
		require.ErrorIs(t, mwWaitEnd(r, 3*time.Second), sa.ErrSessionEnded)
		_, _ = w.Write([]byte("tenant secret"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/page", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, []string{"no-store"}, rec.Result().Header.Values("Cache-Control"))
	require.NotContains(t, rec.Body.String(), "secret")
	rec = mwDo(h, mwReq(http.MethodGet, "/page", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, []string{"no-store"}, rec.Result().Header.Values("Cache-Control"))
}

// ---------------------------------------------------------------------
// (e) middleware_options.go: the denied handler's writer.

// TestReview157DeniedHandlerVariants attacks WithDeniedHandler's "it
// should write d.Status or a redirect … If f writes nothing (no status,
// no body), the middleware writes d.Status" with the deniedWriter's new
// Flush: a handler that calls DefaultDeniedHandler (then flushes), one
// that redirects (then flushes), one serving a page with
// http.ServeContent, one that flushes through the old http.Flusher
// interface only, one that sends 103 and flushes, one that hijacks and
// writes its own response. Each keeps the status it chose (or d.Status),
// and no second WriteHeader reaches net/http (a "superfluous" call is
// logged by the server: counted through its ErrorLog).
func TestReview157DeniedHandlerVariants(t *testing.T) {
	e := newMWEnv(t) // no grant: every impersonated request is denied (403)
	var mode atomic.Int32
	h := e.wrap(&mwOK{}, sa.WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d sa.Denial) {
		switch mode.Load() {
		case 0:
			sa.DefaultDeniedHandler(w, r, d)
			_ = http.NewResponseController(w).Flush()
		case 1:
			http.Redirect(w, r, "/support-ended", http.StatusSeeOther)
			_ = http.NewResponseController(w).Flush()
		case 2:
			w.Header().Set("Cache-Control", "no-store")
			http.ServeContent(w, r, "ended.html", time.Time{}, strings.NewReader("<p>ended</p>"))
		case 3:
			w.Header().Set("X-Ended", "1")
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte("ended"))
		case 4:
			w.Header().Set("Link", "</s.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.(http.Flusher).Flush()
		case 5:
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			_ = brw.Flush()
		}
	}))
	var logged r157Log
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = logged.logger()
	srv.Start()
	defer srv.Close()
	want := []int{http.StatusForbidden, http.StatusSeeOther, http.StatusOK, http.StatusForbidden, http.StatusForbidden, http.StatusTeapot}
	for i, status := range want {
		mode.Store(int32(i))
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/secret", nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		require.NoError(t, err, "mode %d", i)
		_ = resp.Body.Close()
		require.Equal(t, status, resp.StatusCode, "mode %d", i)
	}
	require.Empty(t, logged.lines(), "the server logged a misuse")
	// The denials were audited with d.Status whatever the handler sent.
	evs := e.events(sa.EventAccessDenied)
	require.Len(t, evs, len(want))
	for _, ev := range evs {
		require.Equal(t, "403", ev.Attrs[sa.AttrStatus])
	}
}

// ---------------------------------------------------------------------
// (d) authz.go: refusals at a broken clock.

// TestReview157ImpersonatedChangeAtBrokenClockRefused attacks
// refuseImpersonated ("such a call is refused") now that refuseAs returns
// checkClock's error instead of ErrForbidden: from inside an impersonated
// request, at a clock outside the years a record may hold, a Revoke in
// the customer's name still changes nothing (the grant stays active when
// the clock is back), whatever error it returns; so does RequestAccess by
// a customer and AddGrantee by support that the grant does not name.
func TestReview157ImpersonatedChangeAtBrokenClockRefused(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour, Grantees: []string{mwGeneric}})
	off := e.clock.off.Load()
	var errs []error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.clock.off.Store(int64(-time.Since(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)))) // year 1
		defer e.clock.off.Store(off)
		_, err := e.m.Revoke(r.Context(), g.ID, mwCustomer, "in the customer's name")
		errs = append(errs, err)
		_, err = e.m.RequestAccess(r.Context(), sa.RequestInput{TenantID: "acme", By: mwCustomer, Duration: time.Hour, Reason: "x"})
		errs = append(errs, err)
		_, err = e.m.AddGrantee(r.Context(), g.ID, "mallory@vendor.example", sa.Actor{Kind: sa.ActorSupport, ID: "bob@vendor.example"})
		errs = append(errs, err)
		w.WriteHeader(http.StatusNoContent)
	}))
	mwDo(h, mwReq(http.MethodGet, "/admin/revoke", "generic"))
	require.Len(t, errs, 3)
	for i, err := range errs {
		require.Error(t, err, "call %d", i)
		require.True(t, errors.Is(err, sa.ErrInvalidInput) || errors.Is(err, sa.ErrForbidden), "call %d: %v", i, err)
	}
	cur, err := e.m.Check(context.Background(), "acme", mwGeneric, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, g.ID, cur.ID, "the grant is still active")
	cg, err := e.store.GetGrant(context.Background(), g.ID)
	require.NoError(t, err)
	require.Equal(t, []string{mwGeneric}, cg.Grantees)
	for _, ev := range e.events(sa.EventActionRefused) {
		require.Greater(t, ev.Time.Year(), 1000, "a refusal stamped at the broken clock reached the store")
	}
}

// ---------------------------------------------------------------------
// (c) hooks.go: the failure of an exiting hook is reported after finish.

// r157PanicFinish is a memstore whose FinishHookTasks panics once it
// stored the outcome (host code: a store wrapper's bug).
type r157PanicFinish struct{ *memstore.Store }

func (s r157PanicFinish) FinishHookTasks(ctx context.Context, token string, tasks []sa.HookTask, events []sa.Event) (int, error) {
	_, _ = s.Store.FinishHookTasks(ctx, token, tasks, events)
	panic("r157: FinishHookTasks panics")
}

// TestReview157ExitingHookReportedWhenFinishPanics attacks runTasks' "the
// outcome is stored, then the failure and what went wrong storing it are
// reported": a hook calls runtime.Goexit and the store's
// FinishHookTasks panics. The report came after finish, and a panic of
// finish skipped it (found by review 157; the report is now deferred).
// The error handler must still hear that the hook exited.
func TestReview157ExitingHookReportedWhenFinishPanics(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := r157PanicFinish{memstore.New()}
	var mu sync.Mutex
	var reported []string
	m, err := sa.NewManager(st, sa.WithNow(clock.Now),
		sa.WithErrorHandler(func(_ context.Context, err error) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, err.Error())
		}),
		sa.OnExpire(func(context.Context, sa.Grant) error { runtime.Goexit(); return nil }))
	require.NoError(t, err)
	g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Set(g.ExpiresAt)
	done := make(chan struct{})
	var panicked any
	go func() {
		defer close(done)
		defer func() { panicked = recover() }()
		_, _ = m.Sweep(context.Background())
	}()
	r155Wait(t, done, "Sweep's goroutine to end")
	t.Logf("Sweep's goroutine: panic %v", panicked)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("reported: %q", reported)
	require.True(t, slices.ContainsFunc(reported, func(s string) bool { return strings.Contains(s, "did not return") }),
		"the hook's exit was reported: %q", reported)
}

// r157Log collects what an http.Server logs.
type r157Log struct {
	mu  sync.Mutex
	buf []string
}

func (l *r157Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, string(p))
	return len(p), nil
}

func (l *r157Log) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.buf...)
}

func (l *r157Log) logger() *log.Logger { return log.New(l, "", 0) }

// TestReview157NoStoreReplacesEveryCachingField: review 157 found that a
// handler writing the map with a lowercase "cache-control" key, or a
// CDN-Cache-Control or Surrogate-Control (which a CDN obeys before
// Cache-Control), kept its caching fields beside the middleware's
// no-store; they are now removed.
func TestReview157NoStoreReplacesEveryCachingField(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["cache-control"] = []string{"public, max-age=600"}
		w.Header().Set("CDN-Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Control", "max-age=600")
		w.Header().Set("X-Kept", "1")
		_, _ = w.Write([]byte("tenant data"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/x", "generic"))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, http.Header{"Cache-Control": {"no-store"}, "X-Kept": {"1"}}, rec.Header().Clone(), "only no-store is said about caching")
}
