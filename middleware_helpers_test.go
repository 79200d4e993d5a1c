package supportaccess_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Helpers of the middleware tests (prefix mw: the package's other tests
// have their own).

var (
	mwCustomer = sa.Actor{Kind: sa.ActorCustomer, ID: "admin@acme.example"}
	mwGeneric  = "support+acme@vendor.example"
	mwEve      = "eve@vendor.example"
	errMWBoom  = errors.New("boom: dsn=postgres://secret@db")
)

// mwClock is the Manager's clock in the middleware tests: real time plus an
// offset the test moves. Grant ends computed with it arrive in real time,
// so the middleware's real expiry timer can be tested within milliseconds:
// create a grant, then move the clock to just before its end.
type mwClock struct{ off atomic.Int64 }

func (c *mwClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *mwClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// setUntil moves the clock so that t is d away.
func (c *mwClock) setUntil(t time.Time, d time.Duration) {
	c.off.Store(int64(time.Until(t) - d))
}

// mwStore is a memstore whose check or audit can be made to fail, or its
// check to hang until its context ends (a dead peer, an exhausted pool),
// with the hooks the review tests set while a request runs.
//
// Checks. The watcher's Checks (their context has a deadline) are counted
// (watchReads, those of read), wait slowWatch first, giving up when their
// context ends, and those of deafScope get no answer until it ends. The
// next Check without a deadline (admission, RequireScope) runs
// beforeAdmit first; the next Check of any caller runs before just
// before it reads the store and after right after (each hook runs once).
// Checks of failScope fail with errMWBoom (a store error, not a denial).
//
// Records. A support.request or support.scope Record takes the first gate
// queued for its type (see gate); support.request Records panic while
// panicReq is not zero (above zero it counts down: the next n panic).
type mwStore struct {
	*memstore.Store
	failFind   atomic.Bool
	hangFind   atomic.Bool
	slowFind   atomic.Int64 // a delay (time.Duration) before answering
	failRecord atomic.Bool
	finds      atomic.Int64

	before, after, beforeAdmit atomic.Pointer[func()]
	slowWatch                  atomic.Int64 // time.Duration
	deafScope                  atomic.Pointer[sa.Scope]
	watchReads                 atomic.Int64
	failScope                  atomic.Pointer[sa.Scope]
	panicReq                   atomic.Int64
	gatesMu                    sync.Mutex
	gates                      []*mwGate
}

// mwGate holds one Record of its type: the Record closes entered, waits
// for release, then fails (with errMWBoom) if fail is set, else goes on.
type mwGate struct {
	typ              sa.EventType
	entered, release chan struct{}
	fail             bool
}

// gate queues a gate for the next Record of typ that finds none before it.
func (s *mwStore) gate(typ sa.EventType, fail bool) *mwGate {
	g := &mwGate{typ: typ, entered: make(chan struct{}), release: make(chan struct{}), fail: fail}
	s.gatesMu.Lock()
	defer s.gatesMu.Unlock()
	s.gates = append(s.gates, g)
	return g
}

// takeGate removes and returns the first gate queued for typ, or nil.
func (s *mwStore) takeGate(typ sa.EventType) *mwGate {
	s.gatesMu.Lock()
	defer s.gatesMu.Unlock()
	for i, g := range s.gates {
		if g.typ == typ {
			s.gates = append(s.gates[:i], s.gates[i+1:]...)
			return g
		}
	}
	return nil
}

// runOnce runs and clears the hook in p, if any.
func runOnce(p *atomic.Pointer[func()]) {
	if f := p.Swap(nil); f != nil {
		(*f)()
	}
}

// mwSleep waits d (nothing if d <= 0) or until ctx ends.
func mwSleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (s *mwStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if _, watcher := ctx.Deadline(); watcher {
		if scope == sa.ScopeRead {
			s.watchReads.Add(1)
		}
		if err := mwSleep(ctx, time.Duration(s.slowWatch.Load())); err != nil {
			return sa.Grant{}, err
		}
		if deaf := s.deafScope.Load(); deaf != nil && *deaf == scope {
			<-ctx.Done()
			return sa.Grant{}, ctx.Err()
		}
	} else {
		runOnce(&s.beforeAdmit)
	}
	s.finds.Add(1)
	if fs := s.failScope.Load(); s.failFind.Load() || fs != nil && *fs == scope {
		return sa.Grant{}, errMWBoom
	}
	if s.hangFind.Load() {
		<-ctx.Done()
		return sa.Grant{}, ctx.Err()
	}
	if err := mwSleep(ctx, time.Duration(s.slowFind.Load())); err != nil {
		return sa.Grant{}, err
	}
	runOnce(&s.before)
	g, err := s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
	runOnce(&s.after)
	return g, err
}

func (s *mwStore) Record(ctx context.Context, e sa.Event) error {
	if g := s.takeGate(e.Type); g != nil {
		close(g.entered)
		<-g.release
		if g.fail {
			return errMWBoom
		}
	}
	if e.Type == sa.EventSupportRequest {
		for n := s.panicReq.Load(); n != 0; n = s.panicReq.Load() {
			if n < 0 || s.panicReq.CompareAndSwap(n, n-1) {
				panic("auditor: nil map")
			}
		}
	}
	if s.failRecord.Load() {
		return errMWBoom
	}
	return s.Store.Record(ctx, e)
}

// failChecks makes the store's Checks of scope fail (errMWBoom) until the
// returned function is called.
func (s *mwStore) failChecks(scope sa.Scope) (stop func()) {
	s.failScope.Store(&scope)
	return func() { s.failScope.Store(nil) }
}

// boomReported reports whether errs holds the store's error.
func boomReported(errs []error) bool {
	for _, err := range errs {
		if errors.Is(err, errMWBoom) {
			return true
		}
	}
	return false
}

// mwStreams serves event streams through the middleware: each writes one
// event (so its support.request is recorded) and runs until its context
// ends or stop is called.
type mwStreams struct {
	t         *testing.T
	h         http.Handler
	streaming chan *http.Request
	finish    chan struct{}
	once      sync.Once
	wg        sync.WaitGroup
}

// streams returns e's stream server, its middleware built with opts.
func (e *mwEnv) streams(opts ...sa.MiddlewareOption) *mwStreams {
	s := &mwStreams{t: e.t, streaming: make(chan *http.Request, 1), finish: make(chan struct{})}
	s.h = e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := w.Write([]byte("event: one\n\n")); err != nil { // the support.request event
			return
		}
		s.streaming <- r
		select {
		case <-r.Context().Done():
		case <-s.finish:
		}
	}), opts...)
	return s
}

// serve starts a stream of the session with token and returns its request
// once the stream has started.
func (s *mwStreams) serve(token string) *http.Request {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		mwDo(s.h, mwReq(http.MethodGet, "/events", token))
	}()
	select {
	case r := <-s.streaming:
		return r
	case <-time.After(5 * time.Second):
		s.t.Fatalf("stream %s did not start", token)
	}
	return nil
}

// stop ends every stream and waits for them to return.
func (s *mwStreams) stop() {
	s.once.Do(func() { close(s.finish) })
	s.wg.Wait()
}

// mwRecordChange runs RecordChange(what, before, after) in a PUT of the
// generic support session, on a grant that allows write, and returns the
// support.change events recorded and RecordChange's error.
func mwRecordChange(t *testing.T, what string, before, after any) ([]sa.Event, error) {
	t.Helper()
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var changeErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		changeErr = sa.RecordChange(r.Context(), what, before, after)
		w.WriteHeader(http.StatusNoContent)
	}))
	mwDo(h, mwReq(http.MethodPut, "/settings", "generic"))
	return e.events(sa.EventSupportChange), changeErr
}

// mwRequireChangeRefused requires RecordChange to refuse before → after
// with ErrInvalidInput and record nothing; when it recorded them, it first
// says whether the trail still tells the two values apart.
func mwRequireChangeRefused(t *testing.T, what string, before, after any) {
	t.Helper()
	evs, changeErr := mwRecordChange(t, what, before, after)
	if changeErr == nil {
		require.Len(t, evs, 1)
		require.NotEqual(t, string(evs[0].Before), string(evs[0].After),
			"a real change is recorded as no change: before %s, after %s", evs[0].Before, evs[0].After)
	}
	require.ErrorIs(t, changeErr, sa.ErrInvalidInput)
	require.Empty(t, evs)
}

// mwWaitEnd waits (real time: keep d under a second) until r's context
// ends or d has passed, and returns its cause (nil if it did not end).
func mwWaitEnd(r *http.Request, d time.Duration) error {
	select {
	case <-r.Context().Done():
	case <-time.After(d):
	}
	return context.Cause(r.Context())
}

// mwErrs collects the errors handed to the error handler.
type mwErrs struct {
	mu   sync.Mutex
	errs []error
}

func (e *mwErrs) handle(_ context.Context, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err)
}

func (e *mwErrs) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

// mwEnded records OnSessionEnded calls.
type mwEnded struct {
	mu    sync.Mutex
	calls []string // "session-id:reason"
}

func (e *mwEnded) handle(s sa.Session, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, s.SessionID+":"+reason)
}

func (e *mwEnded) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

// mwSessions is the host's session table: tokens (cookie "sid" or bearer
// token) to support sessions.
type mwSessions struct {
	mu sync.Mutex
	m  map[string]sa.Session
}

func (s *mwSessions) add(token string, sess sa.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]sa.Session)
	}
	s.m[token] = sess
}

// resolve is the resolver: a session cookie, or else a bearer token.
func (s *mwSessions) resolve(r *http.Request) (sa.Session, bool) {
	var tok string
	if c, err := r.Cookie("sid"); err == nil {
		tok = c.Value
	} else if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		tok = strings.TrimPrefix(h, "Bearer ")
	}
	if tok == "" {
		return sa.Session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[tok]
	return sess, ok
}

// mwEnv is a Manager on a (fault-injectable) memstore with the offset
// clock, a session table and recorders for errors and session ends.
type mwEnv struct {
	t        *testing.T
	store    *mwStore
	clock    *mwClock
	m        *sa.Manager
	sessions *mwSessions
	errs     *mwErrs
	ended    *mwEnded
}

func newMWEnv(t *testing.T, opts ...sa.Option) *mwEnv {
	t.Helper()
	e := &mwEnv{t: t, store: &mwStore{Store: memstore.New()}, clock: &mwClock{}, sessions: &mwSessions{}, errs: &mwErrs{}, ended: &mwEnded{}}
	m, err := sa.NewManager(e.store, append([]sa.Option{sa.WithNow(e.clock.Now), sa.WithErrorHandler(e.errs.handle)}, opts...)...)
	require.NoError(t, err)
	e.m = m
	// The usual sessions: the generic support user and a named engineer
	// (with and without MFA) in acme, and the generic user in globex.
	e.sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SubjectUserID: "u-42", SessionID: "s-generic"})
	e.sessions.add("eve", sa.Session{TenantID: "acme", Principal: mwEve, SubjectUserID: "u-42", SessionID: "s-eve"})
	e.sessions.add("eve-mfa", sa.Session{TenantID: "acme", Principal: mwEve, SubjectUserID: "u-42", SessionID: "s-eve-mfa", MFA: true})
	e.sessions.add("bob", sa.Session{TenantID: "acme", Principal: "bob@vendor.example", SessionID: "s-bob"})
	e.sessions.add("globex", sa.Session{TenantID: "globex", Principal: "support+globex@vendor.example", SessionID: "s-globex"})
	return e
}

// grant creates a grant for acme (defaults: open to any principal, read).
func (e *mwEnv) grant(in sa.GrantInput) sa.Grant {
	e.t.Helper()
	return mustGrant(e.t, e.m, in, mwCustomer)
}

// wrap wraps h in the middleware with the env's error and end recorders.
func (e *mwEnv) wrap(h http.Handler, opts ...sa.MiddlewareOption) http.Handler {
	base := []sa.MiddlewareOption{sa.WithMiddlewareErrorHandler(e.errs.handle), sa.OnSessionEnded(e.ended.handle)}
	return e.m.Middleware(e.sessions.resolve, append(base, opts...)...)(h)
}

// events returns the stored events of the given types.
func (e *mwEnv) events(types ...sa.EventType) []sa.Event {
	e.t.Helper()
	evs, err := e.store.Events(context.Background(), sa.AuditFilter{Types: types})
	require.NoError(e.t, err)
	return evs
}

// mwReq builds a request with the session cookie token (none when empty)
// and extra header pairs.
func mwReq(method, target, token string, header ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	if token != "" {
		r.AddCookie(&http.Cookie{Name: "sid", Value: token})
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

// mwDo serves r and returns the recorder. An aborted response (see
// mwServe) is left as it was when the abort came, as net/http's server
// leaves it.
func mwDo(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec, _ := mwServe(h, r)
	return rec
}

// mwServe serves r and returns the recorder and whether the handler
// aborted the response with http.ErrAbortHandler (recovered here, as
// net/http's server does; any other panic propagates).
func mwServe(h http.Handler, r *http.Request) (rec *httptest.ResponseRecorder, aborted bool) {
	return mwServeTo(h, httptest.NewRecorder(), r)
}

// mwServeTo is mwServe writing to rec.
func mwServeTo(h http.Handler, rec *httptest.ResponseRecorder, r *http.Request) (out *httptest.ResponseRecorder, aborted bool) {
	out = rec
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			aborted = true
		}
	}()
	h.ServeHTTP(rec, r)
	return rec, false
}

// mwOK is a handler that writes "ok" and counts its calls.
type mwOK struct{ calls atomic.Int64 }

func (h *mwOK) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.calls.Add(1)
	_, _ = w.Write([]byte("ok"))
}

// mwJSON encodes v for "contains" checks over whole events.
func mwJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
