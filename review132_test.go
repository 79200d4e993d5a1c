package supportaccess_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// Review 132: the HTTP middleware against hostile HTTP.

// rv132RawRequest sends raw, a request written by hand, to srv over a
// fresh TCP connection and returns the response (nil and the error when
// the server closed the connection without one).
func rv132RawRequest(t *testing.T, srv *httptest.Server, raw string) (*http.Response, error) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	return resp, err
}

// rv132RequireCleanAttrs requires every attribute of ev to be valid UTF-8
// without control characters and not to contain any of secrets.
func rv132RequireCleanAttrs(t *testing.T, ev sa.Event, secrets ...string) {
	t.Helper()
	for k, v := range ev.Attrs {
		require.True(t, utf8.ValidString(v), "attribute %s is not valid UTF-8: %q", k, v)
		require.False(t, strings.ContainsFunc(v, unicode.IsControl), "attribute %s holds a control character: %q", k, v)
		for _, s := range secrets {
			require.NotContains(t, v, s, "attribute %s", k)
		}
	}
}

// TestReview132HostlessAbsoluteTargetKeepsNoCredentials attacks the promise
// of auditLine (middleware_audit.go: "An absolute-form target with
// credentials: never recorded") and SECURITY.md's "Query strings never
// reach the audit trail" spirit: support (or a proxy it configures) sends
// an absolute-form request target whose authority holds user info but no
// host, "http://sam:hunter2@/users/42", with a Host header. net/http
// accepts it (r.URL.User set, r.URL.Host empty, r.Host from the header).
// auditLine redacts credentials only when r.URL.Host is not empty, so the
// password lands in the request_target attribute of the support.request
// event (and of access.denied for a refused one). A CONNECT to
// "sam:hunter2@" leaked the same way. (Found by review 132 and fixed: the
// target is recorded without its user info whether or not it names a
// host; a CONNECT's authority form as its host and port.)
func TestReview132HostlessAbsoluteTargetKeepsNoCredentials(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read only
	inner := &mwOK{}
	srv := httptest.NewServer(e.wrap(inner))
	defer srv.Close()

	resp, err := rv132RawRequest(t, srv, "GET http://sam:hunter2@/users/42?x=1 HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "net/http serves the request")
	resp, err = rv132RawRequest(t, srv, "POST http://sam:hunter2@/users/42 HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "read-only grant")
	resp, err = rv132RawRequest(t, srv, "CONNECT sam:hunter2@ HTTP/1.1\r\nCookie: sid=generic\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "CONNECT needs write")
	resp, err = rv132RawRequest(t, srv, "CONNECT sam:hunter2@db.internal:443 HTTP/1.1\r\nCookie: sid=generic\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "CONNECT needs write")

	evs := e.events(sa.EventSupportRequest, sa.EventAccessDenied)
	require.Len(t, evs, 4)
	for _, ev := range evs {
		rv132RequireCleanAttrs(t, ev, "hunter2")
		require.NotContains(t, ev.Attrs[sa.AttrRequestTarget], "sam", "%s %v", ev.Type, ev.Attrs)
	}
	require.Equal(t, "http:///users/42", evs[0].Attrs[sa.AttrRequestTarget], "the GET's target without user info or query")
	require.Equal(t, "http:///users/42", evs[1].Attrs[sa.AttrRequestTarget], "the refused POST's")
	require.Equal(t, "db.internal:443", evs[3].Attrs[sa.AttrRequestTarget], "a CONNECT's host and port, without user info")
}

// TestReview132UnusualMethodsNeedWrite attacks "ScopeRead for GET, HEAD
// and OPTIONS and ScopeWrite for every other method": under a read-only
// grant, TRACE, PROPFIND, MKCOL, PURGE, REPORT, an unknown method and a
// CONNECT (sent over a real server, as a client would) are refused with
// 403 before the handler runs, and audited as access.denied with scope
// write and the method as sent.
func TestReview132UnusualMethodsNeedWrite(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read only
	inner := &mwOK{}
	srv := httptest.NewServer(e.wrap(inner))
	defer srv.Close()
	methods := []string{"TRACE", "PROPFIND", "MKCOL", "PURGE", "REPORT", "M-SEARCH", "FROBNICATE"}
	for _, m := range methods {
		resp, err := rv132RawRequest(t, srv, m+" /settings HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nConnection: close\r\n\r\n")
		require.NoError(t, err, m)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, m)
	}
	resp, err := rv132RawRequest(t, srv, "CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\nCookie: sid=generic\r\n\r\n")
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "CONNECT")
	require.Zero(t, inner.calls.Load(), "the handler never runs")
	require.Empty(t, e.events(sa.EventSupportRequest))
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, len(methods)+1)
	got := map[string]bool{}
	for _, ev := range denied {
		require.Equal(t, string(sa.ScopeWrite), ev.Attrs[sa.AttrScope])
		require.Equal(t, "403", ev.Attrs[sa.AttrStatus])
		got[ev.Attrs[sa.AttrMethod]] = true
	}
	for _, m := range append(methods, "CONNECT") {
		require.True(t, got[m], "method %s audited", m)
	}
}

// TestReview132OverrideSpellingsRaiseScope attacks "method-override
// headers can never lower the scope; on a safe method they raise it":
// spellings a framework may normalise (lower case, padding, a tab, a
// second value after a decoy GET, the header name in lower case on the
// wire) all make a GET or HEAD need write, so a read-only grant refuses
// them and the handler never runs.
func TestReview132OverrideSpellingsRaiseScope(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read only
	inner := &mwOK{}
	srv := httptest.NewServer(e.wrap(inner))
	defer srv.Close()
	for _, c := range []struct{ method, header string }{
		{"GET", "x-http-method-override: delete\r\n"},
		{"GET", "X-HTTP-Method: \t PUT \t\r\n"},
		{"HEAD", "X-Method-Override: Patch\r\n"},
		{"GET", "X-HTTP-Method-Override: GET\r\nX-HTTP-Method-Override: DELETE\r\n"},
		{"OPTIONS", "X-HTTP-Method-Override: get\r\nX-Method-Override: POST\r\n"},
	} {
		resp, err := rv132RawRequest(t, srv, c.method+" /settings HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\n"+c.header+"Connection: close\r\n\r\n")
		require.NoError(t, err, c.header)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, c.header)
	}
	require.Zero(t, inner.calls.Load())
	for _, ev := range e.events(sa.EventAccessDenied) {
		require.Equal(t, string(sa.ScopeWrite), ev.Attrs[sa.AttrScope])
		require.NotEmpty(t, ev.Attrs[sa.AttrMethodOverride])
		rv132RequireCleanAttrs(t, ev)
	}
	// A plain HEAD with an override naming a safe method stays a read.
	resp, err := rv132RawRequest(t, srv, "HEAD /settings HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nX-HTTP-Method-Override: options\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestReview132AuditAttrsBoundedAndClean attacks the audit trail with
// request lines support controls: percent-encoded CR/LF, NUL and invalid
// UTF-8, a 64 KiB path, a query holding a token, and requests a handler
// builds and dispatches again (raw control bytes and invalid UTF-8 in
// Path and RequestURI, a 10 000-byte method with line breaks). Each must
// be audited (the request is served, not refused by the store's own
// validation), every attribute valid one-line UTF-8, the path cut to
// 1024 bytes, and the query never recorded. The events go through
// sqlstore over SQLite so that the database itself accepts them.
func TestReview132AuditAttrsBoundedAndClean(t *testing.T) {
	store := sqltest.NewStoreOn(t, sqltest.OpenSQLite(t, t.TempDir()+"/rv132.db"), sqlstore.SQLite, sqlstore.WithTablePrefix(sqltest.NewPrefix()))
	m, err := sa.NewManager(store)
	require.NoError(t, err)
	_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Scopes: []sa.Scope{sa.ScopeWrite}})
	require.NoError(t, err)
	sessions := &mwSessions{}
	sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1"})
	errs := &mwErrs{}
	var served atomic.Int64
	h := m.Middleware(sessions.resolve, sa.WithMiddlewareErrorHandler(errs.handle))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	long := "/" + strings.Repeat("a", 64<<10) + "/delete"
	wire := []string{
		"/users/42%0D%0AX-Injected:%20yes%00/x%FF%FE?token=hunter2",
		long + "?token=hunter2",
		"/caf%C3%A9/%E2%80%AE/rtl?token=hunter2",
	}
	for _, target := range wire {
		resp, err := rv132RawRequest(t, srv, "GET "+target+" HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nConnection: close\r\n\r\n")
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, resp.StatusCode, "%.60s", target)
	}
	// Requests a handler builds (a batch endpoint): net/http validated
	// nothing of these.
	built := []func(r *http.Request){
		func(r *http.Request) { r.URL.Path, r.RequestURI = "/a\nb\x00c\xff", "/a\nb\x00c\xff?token=hunter2" },
		func(r *http.Request) { r.URL.RawPath = "/a%2Fb\r\n" },
		func(r *http.Request) { r.Method = "PUT\r\nX: " + strings.Repeat("\xff", 10000) },
		func(r *http.Request) { r.URL.Path, r.RequestURI = "/\u202eevil", "" },
	}
	for _, b := range built {
		r := mwReq(http.MethodPut, "/settings?token=hunter2", "generic")
		b(r)
		rec := mwDo(h, r)
		require.Equal(t, http.StatusNoContent, rec.Code)
	}
	require.Equal(t, int64(len(wire)+len(built)), served.Load())
	require.Empty(t, errs.all())

	evs, err := m.Events(context.Background(), sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventSupportRequest}})
	require.NoError(t, err)
	require.Len(t, evs, len(wire)+len(built), "every request is audited")
	for _, ev := range evs {
		rv132RequireCleanAttrs(t, ev, "hunter2", "\u202e")
		require.LessOrEqual(t, len(ev.Attrs[sa.AttrPath]), 1024)
		require.LessOrEqual(t, len(ev.Attrs[sa.AttrRequestTarget]), 1024)
		require.LessOrEqual(t, len(ev.Attrs[sa.AttrMethod]), 32)
	}
	var sawLong bool
	for _, ev := range evs {
		if p := ev.Attrs[sa.AttrPath]; strings.HasPrefix(p, "/aaaa") {
			sawLong = true
			require.True(t, strings.HasSuffix(p, "/delete"), "the end of a long path, which names the action, is kept: %.40s…", p)
			require.Contains(t, p, "...")
		}
	}
	require.True(t, sawLong)
	report, err := m.VerifyAudit(context.Background(), "acme")
	require.NoError(t, err)
	require.True(t, report.OK(), "the chain holds: %+v", report)
}

// TestReview132MalformedSessionFieldsDenied attacks "Tenant and principal
// IDs compare byte for byte" and the input hygiene of identifiers: a
// resolver that copies a client-chosen value (a header, a cookie) into the
// Session must not let support in through a look-alike or an injected
// line. A tenant or principal with a trailing space, a zero-width space,
// a line break or invalid UTF-8, and session or subject IDs with control
// bytes are refused (403, handler not run); a refusal with a valid tenant
// and principal is audited in that tenant without the malformed IDs; one
// with a malformed tenant or principal is not audited and goes to the
// error handler.
func TestReview132MalformedSessionFieldsDenied(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // any principal, read
	inner := &mwOK{}
	h := e.wrap(inner)
	good := sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1", SubjectUserID: "u-1"}
	badTenantOrPrincipal := []sa.Session{
		{TenantID: "acme ", Principal: mwGeneric},
		{TenantID: "ac\u200bme", Principal: mwGeneric},
		{TenantID: "acme\n", Principal: mwGeneric},
		{TenantID: "acme", Principal: mwGeneric + "\u200b"},
		{TenantID: "acme", Principal: "support+acme@vendor.example\r\nX: y"},
		{TenantID: "acme", Principal: "\xffsupport"},
		{TenantID: "acme", Principal: ""},
		{TenantID: "", Principal: mwGeneric},
	}
	badIDs := []sa.Session{
		{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1\nforged=1", SubjectUserID: "u-1"},
		{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1", SubjectUserID: "u-1\x00"},
		{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1\u2066", SubjectUserID: "u-1"},
		{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1", SubjectUserID: strings.Repeat("u", 100000)},
	}
	for i, s := range append(badTenantOrPrincipal, badIDs...) {
		tok := "bad" + string(rune('a'+i))
		e.sessions.add(tok, s)
		rec := mwDo(h, mwReq(http.MethodGet, "/settings", tok))
		require.Equal(t, http.StatusForbidden, rec.Code, "%+q", s)
		require.NotContains(t, rec.Body.String(), "acme")
	}
	require.Zero(t, inner.calls.Load(), "no malformed session reaches the handler")
	require.Empty(t, e.events(sa.EventSupportRequest))
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, len(badIDs), "refusals with a valid tenant and principal are audited")
	for _, ev := range denied {
		require.Equal(t, "acme", ev.TenantID)
		require.Equal(t, sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}, ev.Actor)
		if v, ok := ev.Attrs[sa.AttrSessionID]; ok {
			require.Equal(t, good.SessionID, v)
		}
		if v, ok := ev.Attrs[sa.AttrSubjectUserID]; ok {
			require.Equal(t, good.SubjectUserID, v)
		}
		rv132RequireCleanAttrs(t, ev)
	}
	require.GreaterOrEqual(t, len(e.errs.all()), len(badTenantOrPrincipal), "unauditable refusals reach the error handler")
	// The well-formed session still works.
	e.sessions.add("good", good)
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/settings", "good")).Code)
}

// TestReview132HandlerPanicAudited attacks "A handler that panics before
// committing is recorded with status 500" and net/http's contract for
// http.ErrAbortHandler: a handler that aborts (panic(http.ErrAbortHandler),
// as httputil.ReverseProxy does) or panics otherwise leaves one
// support.request event (500 before the response, the committed status
// after), and the panic value reaches the server unchanged, so that
// net/http still recognises ErrAbortHandler and does not log it. The
// request's context is cancelled once the handler is gone.
func TestReview132HandlerPanicAudited(t *testing.T) {
	type boom struct{ s string }
	for _, c := range []struct {
		name   string
		write  bool
		value  any
		status string
	}{
		{"abort before commit", false, http.ErrAbortHandler, "500"},
		{"abort after commit", true, http.ErrAbortHandler, "202"},
		{"panic before commit", false, boom{"x"}, "500"},
		{"panic after commit", true, boom{"y"}, "202"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newMWEnv(t)
			e.grant(sa.GrantInput{})
			var reqCtx context.Context
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqCtx = r.Context()
				w.Header().Set("Set-Cookie", "secret=1")
				if c.write {
					w.WriteHeader(http.StatusAccepted)
				}
				panic(c.value)
			}))
			var got any
			func() {
				defer func() { got = recover() }()
				h.ServeHTTP(httptest.NewRecorder(), mwReq(http.MethodGet, "/x", "generic"))
			}()
			require.Equal(t, c.value, got, "the panic value reaches the server unchanged")
			evs := e.events(sa.EventSupportRequest)
			require.Len(t, evs, 1)
			require.Equal(t, c.status, evs[0].Attrs[sa.AttrStatus])
			require.Error(t, reqCtx.Err(), "the request's context is cancelled")
		})
	}
}

// TestReview132PanicWithAuditorDown: the handler panics and the auditor
// fails. The failure must reach the error handler (the request went
// unaudited: the host must know) and the panic must still propagate; a
// panic of the auditor itself must not replace the handler's panic by a
// success.
func TestReview132PanicWithAuditorDown(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("handler bug") }))
	e.store.failRecord.Store(true)
	var got any
	rec := httptest.NewRecorder()
	func() {
		defer func() { got = recover() }()
		h.ServeHTTP(rec, mwReq(http.MethodGet, "/x", "generic"))
	}()
	require.Equal(t, "handler bug", got)
	require.True(t, boomReported(e.errs.all()), "the lost audit event is reported: %v", e.errs.all())
	require.False(t, rec.Flushed)
	require.Empty(t, rec.Body.String(), "nothing is sent")
	e.store.failRecord.Store(false)
	require.Empty(t, e.events(sa.EventSupportRequest))
}

// TestReview132H2RevokeMidStreamResets attacks "A response under way when
// its request ends gets nothing more, and is aborted … so the client sees
// it cut, not complete" over HTTP/2 with TLS: a stream that flushed its
// first event and announced a trailer is revoked; the handler ignores its
// context's end, keeps trying to write and then sets the trailer. The
// client must see the stream fail (a reset, not a clean EOF), get no
// byte written after the revocation, and no trailer.
func TestReview132H2RevokeMidStreamResets(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	flushed := make(chan struct{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = w.Write([]byte("event: one\n\n"))
		w.(http.Flusher).Flush()
		close(flushed)
		<-r.Context().Done()
		for range 5 {
			_, _ = w.Write([]byte("event: after-revoke\n\n"))
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Checksum", "complete")
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/events", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 2, resp.ProtoMajor)
	<-flushed
	first := make([]byte, len("event: one\n\n"))
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)

	_, err = e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
	require.NoError(t, err)
	rest, err := io.ReadAll(resp.Body)
	require.Error(t, err, "the stream is reset, not ended")
	require.NotContains(t, string(rest), "after-revoke")
	require.Empty(t, resp.Trailer.Get("X-Checksum"))
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "200", evs[0].Attrs[sa.AttrStatus])
}

// TestReview132WebSocketHijackAuditedFirstAndEnded attacks "Wrap every
// route … including websockets" and Hijack's doc: the support.request
// event (status 101) is in the trail before the handler owns the
// connection, and a revocation cancels the hijacked request's context so
// that the handler closes the socket.
func TestReview132WebSocketHijackAuditedFirstAndEnded(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	var atHijack []sa.Event
	done := make(chan error, 1)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			done <- err
			return
		}
		atHijack = e.events(sa.EventSupportRequest)
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		select {
		case <-r.Context().Done():
			done <- context.Cause(r.Context())
		case <-time.After(5 * time.Second):
			done <- errors.New("the hijacked request was not ended")
		}
		_ = c.Close()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Len(t, atHijack, 1, "audited before the handler owned the connection")
	require.Equal(t, "101", atHijack[0].Attrs[sa.AttrStatus])

	_, err = e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
	require.NoError(t, err)
	require.ErrorIs(t, <-done, sa.ErrSessionEnded)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the handler closed the socket")
}

// TestReview132DenialRevealsNothing attacks "Denial codes … name no grant,
// tenant or internal error": support probing with a POST under a
// read-only grant, with JSON or plain Accept, or while the store is down,
// learns nothing of the grant (its ID, reason, ticket, expiry, scopes,
// grantees) or of the store's error from the body or the header.
func TestReview132DenialRevealsNothing(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Reason: "payroll-export-secret", TicketRef: "TICKET-7781", Duration: 72 * time.Hour})
	h := e.wrap(&mwOK{})
	leaks := []string{g.ID.String(), "payroll", "TICKET-7781", g.ExpiresAt.Format("2006-01-02"), "read", "scope", "acme", mwGeneric, "secret@db", "boom"}
	check := func(rec *httptest.ResponseRecorder, status int) {
		t.Helper()
		require.Equal(t, status, rec.Code)
		all := rec.Body.String()
		for k, vs := range rec.Header() {
			all += k + ":" + strings.Join(vs, ",")
		}
		for _, l := range leaks {
			require.NotContains(t, all, l)
		}
	}
	check(mwDo(h, mwReq(http.MethodPost, "/x", "generic", "Accept", "application/json")), http.StatusForbidden)
	check(mwDo(h, mwReq(http.MethodDelete, "/x", "generic")), http.StatusForbidden)
	check(mwDo(h, mwReq(http.MethodGet, "/x", "globex", "Accept", "application/problem+json")), http.StatusForbidden)
	e.store.failFind.Store(true)
	rec := mwDo(h, mwReq(http.MethodGet, "/x", "generic", "Accept", "application/json"))
	check(rec, http.StatusServiceUnavailable)
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	e.store.failFind.Store(false)
	e.store.failRecord.Store(true)
	rec = mwDo(h, mwReq(http.MethodGet, "/x", "generic"))
	check(rec, http.StatusServiceUnavailable)
	require.NotContains(t, rec.Body.String(), "ok", "the handler's response is not sent unaudited")
}

// rv132Clock is a clock that stands still where the test puts it.
type rv132Clock struct{ t atomic.Pointer[time.Time] }

func (c *rv132Clock) Now() time.Time      { return *c.t.Load() }
func (c *rv132Clock) Set(t time.Time)     { c.t.Store(&t) }
func (c *rv132Clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// TestReview132WindowBoundariesToTheMicrosecond attacks "allow a request
// only when a stored grant … is active at that microsecond (StartsAt <=
// now < ExpiresAt)" through the middleware with an injected clock: one
// microsecond before a scheduled grant starts, support is refused; at
// StartsAt it is let in; one microsecond before ExpiresAt it is let in; at
// ExpiresAt it is refused.
func TestReview132WindowBoundariesToTheMicrosecond(t *testing.T) {
	clock := &rv132Clock{}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock.Set(t0)
	m, err := sa.NewManager(memstore.New(), sa.WithNow(clock.Now))
	require.NoError(t, err)
	g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, StartsAt: t0.Add(time.Hour), Duration: 2 * time.Hour})
	require.NoError(t, err)
	sessions := &mwSessions{}
	sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric})
	inner := &mwOK{}
	h := m.Middleware(sessions.resolve)(inner)
	for _, c := range []struct {
		at   time.Time
		want int
	}{
		{g.StartsAt.Add(-time.Microsecond), http.StatusForbidden},
		{g.StartsAt, http.StatusOK},
		{g.ExpiresAt.Add(-time.Microsecond), http.StatusOK},
		{g.ExpiresAt, http.StatusForbidden},
		{g.ExpiresAt.Add(time.Microsecond), http.StatusForbidden},
	} {
		clock.Set(c.at)
		require.Equal(t, c.want, mwDo(h, mwReq(http.MethodGet, "/x", "generic")).Code, "at %s", c.at.Format(time.RFC3339Nano))
	}
	require.Equal(t, int64(2), inner.calls.Load())
}

// TestReview132ExpiryDuringRequestCutsResponse: the grant reaches
// ExpiresAt (injected clock moved past it; no sleep for the expiry) while
// the handler runs, before it writes. Its response must be replaced by a
// 403 session_ended, its writes fail with ErrSessionEnded, and the trail
// records the 403, not the handler's 200.
func TestReview132ExpiryDuringRequestCutsResponse(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	var writeErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "data=secret")
		e.clock.setUntil(g.ExpiresAt, -time.Millisecond) // 1 ms past the end
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		_, writeErr = w.Write([]byte("customer data"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/x", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.NotContains(t, rec.Body.String(), "customer data")
	require.Empty(t, rec.Header().Values("Set-Cookie"))
	require.ErrorIs(t, writeErr, sa.ErrSessionEnded)
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "403", evs[0].Attrs[sa.AttrStatus])
}

// TestReview132HTTP2HostileHeadersOverTLS: over HTTP/2 (pseudo-headers,
// lower-case field names), a GET carrying an override header in lower
// case and a path with encoded control bytes is still judged by write
// and audited cleanly; with a grant that allows write it is served and
// its query never recorded.
func TestReview132HTTP2HostileHeadersOverTLS(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read only
	inner := &mwOK{}
	srv := httptest.NewUnstartedServer(e.wrap(inner))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"h2"}
	do := func() *http.Response {
		u, err := url.Parse(srv.URL + "/a%0Ab%00c?token=hunter2")
		require.NoError(t, err)
		req := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
		req.Header["x-http-method-override"] = []string{"delete"}
		req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, 2, resp.ProtoMajor)
		return resp
	}
	require.Equal(t, http.StatusForbidden, do().StatusCode)
	require.Zero(t, inner.calls.Load())
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	require.Equal(t, http.StatusOK, do().StatusCode)
	for _, ev := range e.events(sa.EventAccessDenied, sa.EventSupportRequest) {
		require.Equal(t, "DELETE", ev.Attrs[sa.AttrMethodOverride])
		require.Equal(t, string(sa.ScopeWrite), ev.Attrs[sa.AttrScope])
		rv132RequireCleanAttrs(t, ev, "hunter2")
	}
}

// TestReview132BareRequestAndInvalidStatus: a handler that builds a bare
// request (no URL, no header, no RequestURI) and passes it through the
// middleware again, under a resolver that admits it, must not panic the
// middleware. Under a read-only grant the GET is served and audited,
// while POST and the empty method (GET to net/http's client, but not a
// method the middleware knows as safe) need write and are refused: fail
// closed.
// A handler that calls WriteHeader with an invalid code panics before
// its response is recorded and is audited as a handler that panicked
// (status 500), not as the code it tried.
func TestReview132BareRequestAndInvalidStatus(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	sess := sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-bare"}
	inner := &mwOK{}
	h := e.m.Middleware(func(*http.Request) (sa.Session, bool) { return sess, true })(inner)
	for _, r := range []*http.Request{{Method: http.MethodGet}, {Method: "POST"}, {}} {
		require.NotPanics(t, func() { mwDo(h, r) }, "%q", r.Method)
	}
	evs := e.events(sa.EventSupportRequest, sa.EventAccessDenied)
	require.Len(t, evs, 3)
	for _, ev := range evs {
		rv132RequireCleanAttrs(t, ev)
		if ev.Attrs[sa.AttrMethod] == http.MethodGet {
			require.Equal(t, sa.EventSupportRequest, ev.Type)
		} else {
			require.Equal(t, sa.EventAccessDenied, ev.Type, "method %q", ev.Attrs[sa.AttrMethod])
		}
	}

	bad := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(1000) }))
	var got any
	func() {
		defer func() { got = recover() }()
		bad.ServeHTTP(httptest.NewRecorder(), mwReq(http.MethodGet, "/x", "generic"))
	}()
	require.NotNil(t, got)
	reqs := e.events(sa.EventSupportRequest)
	last := reqs[len(reqs)-1]
	require.Equal(t, "500", last.Attrs[sa.AttrStatus])
	require.Equal(t, "s-generic", last.Attrs[sa.AttrSessionID])
}
