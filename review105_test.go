package supportaccess_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// r105HeldStore holds the watcher's re-checks (a Check with a deadline) of
// tenant acme while armed: the first one closes entered and waits for
// release.
type r105HeldStore struct {
	sa.Store
	armed            atomic.Bool
	once             sync.Once
	entered, release chan struct{}
}

func (s *r105HeldStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if _, watcher := ctx.Deadline(); watcher && tenantID == "acme" && s.armed.Load() {
		s.once.Do(func() {
			close(s.entered)
			<-s.release
		})
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

// r105DeadlineConn records the past write deadlines set on a connection.
type r105DeadlineConn struct {
	net.Conn
	past *atomic.Int64
}

func (c *r105DeadlineConn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		c.past.Add(1)
	}
	return c.Conn.SetWriteDeadline(t)
}

type r105Listener struct {
	net.Listener
	past atomic.Int64
}

func (l *r105Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &r105DeadlineConn{Conn: c, past: &l.past}, nil
}

// TestReview105EndAfterQuietResponseBreaksKeptAliveConnection — the end of
// support access sets a past write deadline on the response writer while
// the response is "streaming", and reqState.end's comment promises that
// "the deadline never outlives the response on a connection kept alive":
// serveSupport clears streaming when the handler returns. But a handler
// that returns without writing (an empty 200: a POST that only acts, a
// ping) is committed afterwards, by finish, which sets streaming again,
// and nothing clears it. A re-check of the watcher that was under way when
// the request left (the grant was revoked by another replica) then ends
// the request after its response went out: the past deadline lands on the
// HTTP/1 connection, kept alive, and the next request on it — any request,
// impersonated or not — gets no response. (Over HTTP/2 the same call
// reaches the stream's writer after its handler finished, whose state is
// gone: a nil pointer dereference in the watcher goroutine.)
func TestReview105EndAfterQuietResponseBreaksKeptAliveConnection(t *testing.T) {
	mem := memstore.New()
	store := &r105HeldStore{Store: mem, entered: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(store.release) }) }
	defer release()
	m, err := sa.NewManager(store, sa.WithAuditor(mem))
	require.NoError(t, err)
	replica, err := sa.NewManager(mem) // another replica on the same store
	require.NoError(t, err)
	ctx := context.Background()
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: mwCustomer})
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: sa.Actor{Kind: sa.ActorCustomer, ID: "admin@globex.example"}})
	require.NoError(t, err)

	sessions := &mwSessions{}
	sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-generic"})
	sessions.add("globex", sa.Session{TenantID: "globex", Principal: "support+globex@vendor.example", SessionID: "s-globex"})

	aIn, aGo := make(chan struct{}), make(chan struct{})
	bIn, bDone := make(chan struct{}), make(chan struct{})
	var bOnce sync.Once
	finishB := func() { bOnce.Do(func() { close(bDone) }) }
	defer finishB()
	mux := http.NewServeMux()
	mux.HandleFunc("/long", func(w http.ResponseWriter, r *http.Request) { // another session's long request
		close(bIn)
		<-bDone
	})
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { // writes nothing (an empty 200)
		close(aIn)
		<-aGo
	})
	mux.HandleFunc("/public", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "public page")
	})
	h := m.Middleware(sessions.resolve, sa.WithPollInterval(40*time.Millisecond),
		sa.WithMiddlewareErrorHandler(func(context.Context, error) {}))(mux)
	srv := httptest.NewUnstartedServer(h)
	ln := &r105Listener{Listener: srv.Listener}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	defer finishB()

	// B: a long request of globex keeps the watcher running.
	go func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/long", nil)
		req.AddCookie(&http.Cookie{Name: "sid", Value: "globex"})
		if resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-bIn

	// A: one kept-alive connection of acme's support session.
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	_, err = io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: app\r\nCookie: sid=generic\r\n\r\n")
	require.NoError(t, err)
	<-aIn

	// The grant is revoked on another replica; this Manager's watcher
	// re-checks the request at its next poll (held in the store).
	store.armed.Store(true)
	_, err = replica.Revoke(ctx, g.ID, mwCustomer, "done")
	require.NoError(t, err)
	select {
	case <-store.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no re-check of the request")
	}
	// Meanwhile the handler returns; its empty 200 goes out complete.
	close(aGo)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, resp.Close, "the connection is kept alive")
	// The re-check answers (revoked) after the request left.
	release()
	for i := 0; i < 50 && ln.past.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond) // the re-check's end, if it comes
	}

	// The next request on the kept-alive connection: a public page.
	_, err = io.WriteString(c, "GET /public HTTP/1.1\r\nHost: app\r\n\r\n")
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp2, err := http.ReadResponse(br, nil)
	require.NoError(t, err,
		"the next request on the connection got no response: support access ended after the previous response completed, and %d past write deadline(s) were set on the kept-alive connection", ln.past.Load())
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	require.Equal(t, "public page", string(body))
}

// TestReview105HookReturningCloseCauseRecordedAsFailure — since 87ac375 an
// expiry hook's failure while Close stops the loop is dropped (no attempt
// counted, nothing audited) only when it "is the cancellation itself",
// judged by errors.Is(err, context.Canceled). But Close cancels the
// Sweep's context with the cause ErrClosed, and a hook that stops the
// idiomatic way, returning context.Cause(ctx), returns exactly that
// cancellation: ErrClosed, which does not wrap context.Canceled. Every
// shutdown (every deploy) then records a grant.expire_hook_failed event
// naming "manager closed", counts an attempt and pushes the retry back by
// the retry delay, for a hook that did nothing wrong.
func TestReview105HookReturningCloseCauseRecordedAsFailure(t *testing.T) {
	entered := make(chan struct{})
	var once sync.Once
	e := newEnvOn(t, memstore.New(),
		sa.OnExpire(func(hctx context.Context, g sa.Grant) error {
			once.Do(func() { close(entered) })
			<-hctx.Done() // Close is stopping the loop
			return context.Cause(hctx)
		}),
		sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt.Add(time.Minute))

	done := make(chan error, 1)
	go func() { done <- e.m.RunExpiry(context.Background(), time.Hour) }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the hook was not called")
	}
	require.NoError(t, e.m.Close())
	require.ErrorIs(t, <-done, sa.ErrClosed)

	failed := e.events(sa.EventExpireHookFailed)
	var errs []string
	for _, ev := range failed {
		errs = append(errs, ev.Attrs[sa.AttrError])
	}
	require.Empty(t, failed,
		"the hook returned context.Cause of its context, the cancellation Close made (ErrClosed), yet it was audited as a failed attempt: %q", errs)
}

// TestReview105FourDecoyOverridesHideServedMethod — 29b6d43 makes
// method_override list every method the override headers name, because
// "support, who chooses the headers, must not choose what the trail says
// was served by putting a decoy first". The list stops after four methods,
// counted over every value of every header: four decoy lines of
// X-HTTP-Method-Override (GET, HEAD, OPTIONS, TRACE) fill it, and the
// X-HTTP-Method: DELETE that an OData-style host honours (Header.Get, the
// first value) is only "...". The same decoy attack works with four
// decoys instead of one: the trail names four methods that were not
// served and not the DELETE that was.
func TestReview105FourDecoyOverridesHideServedMethod(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeWrite}})
	var served string
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := r.Header.Get("X-HTTP-Method"); r.Method == http.MethodPost && m != "" {
			r.Method = strings.ToUpper(m) // the host's override, on X-HTTP-Method
		}
		served = r.Method
		w.WriteHeader(http.StatusNoContent)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/users/u-7", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	for _, decoy := range []string{"GET", "HEAD", "OPTIONS", "TRACE"} {
		req.Header.Add("X-HTTP-Method-Override", decoy)
	}
	req.Header.Set("X-HTTP-Method", "DELETE")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, http.MethodDelete, served, "the host served a DELETE")

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Contains(t, evs[0].Attrs[sa.AttrMethodOverride], http.MethodDelete,
		"the host deleted /users/u-7 on X-HTTP-Method: DELETE, but four decoy override values fill the event's list: %v", evs[0].Attrs)
}

// r105TamperedLog is purgingLog whose stored event of grant victim has
// had its Reason rewritten behind the library's back (a database write).
type r105TamperedLog struct {
	*purgingLog
	victim uuid.UUID
}

func (p *r105TamperedLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	evs, err := p.purgingLog.Events(ctx, f)
	for i := range evs {
		if evs[i].GrantID == p.victim && evs[i].Type == sa.EventGrantCreated {
			evs[i].Reason = "nothing to see here"
		}
	}
	return evs, err
}

// TestReview105VerifyConflictHidesTamperingPastPurges — since 43917fb
// VerifyAudit answers ErrConflict ("no tampering is known of, and none may
// be reported") whenever the checkpoint moved during each of its three
// walks and each walk met some break — wherever that break is. Here the
// latest grant.created event of the trail, far past anything the purges
// delete, was rewritten; purges (a retention job, or whoever may purge or
// write the checkpoint) keep overtaking the walks. Every walk sees the
// same break at the same event, one no purge can explain (its predecessor
// is intact and still stored), yet the answer is ErrConflict, not
// ErrTampered: tampering is hidden behind "verify again" for as long as
// the purges keep coming. Before, the last walk's ChainBreak was reported.
func TestReview105VerifyConflictHidesTamperingPastPurges(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	p := &purgingLog{Store: memstore.New()}
	tl := &r105TamperedLog{purgingLog: p}
	m, err := sa.NewManager(tl, sa.WithNow(clock.Now))
	require.NoError(t, err)
	p.m = m
	var last sa.Grant
	for range 8 {
		last, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour, Reason: "ticket 1"})
		require.NoError(t, err)
		clock.Advance(time.Minute)
		p.times = append(p.times, last.CreatedAt.Add(time.Microsecond))
	}
	tl.victim = last.ID
	_, err = m.VerifyAudit(ctx, "acme")
	require.ErrorIs(t, err, sa.ErrTampered, "sanity: without purges the rewrite is found")

	p.disturb = 3
	_, err = m.VerifyAudit(ctx, "acme")
	require.ErrorIs(t, err, sa.ErrTampered,
		"the latest grant.created event was rewritten (nowhere near what the purges deleted), but VerifyAudit answered %v", err)
}

// TestReview105HijackedAfter101GetsPastWriteDeadline — Hijack's doc: "the
// handler owns the connection afterwards and must end it when the request
// context is cancelled", and a cut is never judged on a hijacked
// connection. A handler that upgrades the way coder/websocket (nhooyr)
// does — WriteHeader(101), then Hijack — leaves the response "streaming",
// so the end of support access sets a past write deadline on the
// connection it owns: the close message it sends when its context ends
// (a WebSocket close frame "session ended") fails with a timeout, and the
// client sees an abnormal closure. A connection hijacked without the
// WriteHeader(101) first gets no deadline.
func TestReview105HijackedAfter101GetsPastWriteDeadline(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	upgraded := make(chan struct{})
	byeErr := make(chan error, 1)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			byeErr <- err
			return
		}
		defer c.Close()
		close(upgraded)
		<-r.Context().Done() // support access ended: say goodbye and close
		_, err = io.WriteString(c, "bye: session ended\n")
		byeErr <- err
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app\r\nCookie: sid=generic\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	select {
	case <-upgraded:
	case err := <-byeErr:
		t.Fatalf("hijack: %v", err)
	}
	_, err = e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
	require.NoError(t, err)
	select {
	case err = <-byeErr:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not see the end")
	}
	require.NoError(t, err, "the handler owns the hijacked connection, but its goodbye failed: the middleware set a past write deadline on it")
}
