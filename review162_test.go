package supportaccess_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// Review 162: audit completeness — can support act and leave no trace?
//
// DESIGN.md: "every request made by support while impersonating (method,
// path, status, labelled "support") and every configuration change made
// by support (before and after values) is recorded". Each test below is
// an attack on that promise from the point of view of an auditor who must
// reconstruct what a support engineer did; a passing test is a failed
// attack. Every test also verifies the tenant's hash chain.

// rv162Verify requires acme's audit chain to verify on m.
func rv162Verify(t *testing.T, m *sa.Manager) {
	t.Helper()
	rep, err := m.VerifyAudit(context.Background(), "acme")
	require.NoError(t, err)
	require.True(t, rep.OK(), "acme's chain verifies: %+v", rep.Break)
}

// rv162ByPath returns the events of type typ whose path attribute is p.
func rv162ByPath(evs []sa.Event, typ sa.EventType, p string) []sa.Event {
	var out []sa.Event
	for _, e := range evs {
		if e.Type == typ && e.Attrs[sa.AttrPath] == p {
			out = append(out, e)
		}
	}
	return out
}

// rv162RequireIdentity requires ev to name the generic session of
// newMWEnv and grant g.
func rv162RequireIdentity(t *testing.T, ev sa.Event, g sa.Grant) {
	t.Helper()
	require.Equal(t, sa.ActorSupport, ev.Actor.Kind)
	require.Equal(t, mwGeneric, ev.Actor.ID)
	require.Equal(t, "acme", ev.TenantID)
	require.Equal(t, g.ID, ev.GrantID)
	require.Equal(t, "s-generic", ev.Attrs[sa.AttrSessionID])
	require.Equal(t, "u-42", ev.Attrs[sa.AttrSubjectUserID])
}

// rv162Raw sends one raw HTTP/1.1 request (line and header fields, the
// generic session's cookie added, Connection: close) to addr and returns
// the response status (0 when the connection closed without one).
func rv162Raw(t *testing.T, addr, method, target string, body string, header ...string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nCookie: sid=generic\r\nConnection: close\r\n", method, target, addr)
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", header[i], header[i+1])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	_, err = io.WriteString(c, b.String())
	require.NoError(t, err)
	req := &http.Request{Method: method}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestReview162EveryMethodOnTheWire — Manager.Middleware: "each admitted
// request records one support.request event (... Attrs: method, ...,
// path without the query string, status, ...)" and AttrMethod: "the
// request's method as received ..., cut to 32 bytes". Attack: every
// method a real HTTP/1.1 server accepts (standard, WebDAV, CONNECT,
// TRACE, lower case, a method longer than the cut) reaches the handler
// through net/http; each one that does must have exactly one event with
// its method, path, status and identities, and the cut must show.
func TestReview162EveryMethodOnTheWire(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var mu sync.Mutex
	served := map[string]string{} // method -> path the handler saw
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served[r.Method] = r.URL.Path
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	long := "X" + strings.Repeat("LONGMETHOD", 5) // 51 bytes: over the 32 kept
	methods := []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE",
		"PROPFIND", "MKCOL", "PURGE", "delete", long}
	for i, m := range methods {
		st := rv162Raw(t, addr, m, fmt.Sprintf("/m/%d?token=s3cr3t-%d", i, i), "")
		require.Equal(t, http.StatusAccepted, st, m)
	}
	// CONNECT: authority form, no path.
	require.Equal(t, http.StatusAccepted, rv162Raw(t, addr, "CONNECT", "db.internal.example:5432", ""))

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, len(methods)+1, "one support.request per request that reached the handler")
	mu.Lock()
	require.Len(t, served, len(methods)+1)
	mu.Unlock()
	for i, m := range methods {
		got := rv162ByPath(evs, sa.EventSupportRequest, fmt.Sprintf("/m/%d", i))
		require.Len(t, got, 1, m)
		ev := got[0]
		rv162RequireIdentity(t, ev, g)
		require.Equal(t, "202", ev.Attrs[sa.AttrStatus], m)
		if m == long {
			require.LessOrEqual(t, len(ev.Attrs[sa.AttrMethod]), 32)
			require.True(t, strings.HasSuffix(ev.Attrs[sa.AttrMethod], "..."), "the cut method is marked: %q", ev.Attrs[sa.AttrMethod])
			require.True(t, strings.HasPrefix(long, strings.TrimSuffix(ev.Attrs[sa.AttrMethod], "...")))
		} else {
			require.Equal(t, m, ev.Attrs[sa.AttrMethod], "recorded as received")
		}
		wantScope := "write"
		if m == "GET" || m == "HEAD" || m == "OPTIONS" {
			wantScope = "read"
		}
		require.Equal(t, wantScope, ev.Attrs[sa.AttrScope], m)
		require.NotContains(t, mwJSON(t, ev), "s3cr3t", "the query string is never recorded")
	}
	var connect []sa.Event
	for _, ev := range evs {
		if ev.Attrs[sa.AttrMethod] == "CONNECT" {
			connect = append(connect, ev)
		}
	}
	require.Len(t, connect, 1)
	require.Equal(t, "db.internal.example:5432", connect[0].Attrs[sa.AttrRequestTarget], "a CONNECT's host and port are recorded")
	require.Equal(t, "write", connect[0].Attrs[sa.AttrScope])
	rv162Verify(t, e.m)
}

// TestReview162PathsAsRequested — AttrPath: "the request's escaped path,
// never its query string, cut in its middle to 1 024 bytes ("..." marks
// the cut)". Attack: paths whose meaning depends on their escaping (an
// encoded slash, encoded dots, "..") and a path long enough to be cut,
// served by a real server and http.ServeMux (which redirects unclean
// paths): each event must record the path as sent, two requests for
// different resources must not read as one, and a cut must be visible.
func TestReview162PathsAsRequested(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	mux := http.NewServeMux()
	var patterns sync.Map
	mux.HandleFunc("GET /files/{name...}", func(w http.ResponseWriter, r *http.Request) {
		patterns.Store(r.URL.EscapedPath(), r.Pattern)
		_, _ = io.WriteString(w, r.PathValue("name"))
	})
	srv := httptest.NewServer(e.wrap(mux))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	long := "/files/" + strings.Repeat("a", 700) + "/MIDDLE-SECRET-ACTION/" + strings.Repeat("b", 700) + "/end"
	cases := []struct{ target, path string }{
		{"/files/a%2Fb", "/files/a%2Fb"},           // one file "a/b"
		{"/files/a/b", "/files/a/b"},               // another: the trail tells them apart
		{"/files/%2e%2e/etc", "/files/%2e%2e/etc"}, // ServeMux cleans and redirects
		{"/files/x/../../admin", "/files/x/../../admin"},
		{"/files/caf%C3%A9", "/files/caf%C3%A9"},
		{long, ""},
	}
	for _, c := range cases {
		rv162Raw(t, addr, "GET", c.target+"?q=1", "")
	}
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, len(cases))
	for i, c := range cases[:len(cases)-1] {
		got := rv162ByPath(evs, sa.EventSupportRequest, c.path)
		require.Len(t, got, 1, "case %d %s: %s", i, c.target, mwJSON(t, evs))
	}
	// ServeMux redirects the unclean path: recorded with the redirect.
	// (It serves the escaped dots as they are: the handler's name is
	// "../etc", the trail's path what was sent.)
	require.Equal(t, "307", rv162ByPath(evs, sa.EventSupportRequest, "/files/x/../../admin")[0].Attrs[sa.AttrStatus])
	require.Equal(t, "200", rv162ByPath(evs, sa.EventSupportRequest, "/files/%2e%2e/etc")[0].Attrs[sa.AttrStatus])
	var cut []sa.Event
	for _, ev := range evs {
		if strings.HasPrefix(ev.Attrs[sa.AttrPath], "/files/aaa") {
			cut = append(cut, ev)
		}
	}
	require.Len(t, cut, 1)
	p := cut[0].Attrs[sa.AttrPath]
	require.LessOrEqual(t, len(p), 1024)
	require.Contains(t, p, "...", "the cut is marked")
	require.True(t, strings.HasSuffix(p, "/end"))
	require.Equal(t, "200", cut[0].Attrs[sa.AttrStatus])
	rv162Verify(t, e.m)
}

// rv162MethodOverride is gorilla/handlers.HTTPMethodOverrideHandler: a
// POST is served as the PUT, PATCH or DELETE its "_method" form value
// (query string or urlencoded body) names, else as the one its
// X-HTTP-Method-Override header names — "Form method takes precedence
// over header method".
func rv162MethodOverride(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			om := r.FormValue("_method")
			if om == "" {
				om = r.Header.Get("X-HTTP-Method-Override")
			}
			if om == http.MethodPut || om == http.MethodPatch || om == http.MethodDelete {
				r.Method = om
			}
		}
		next.ServeHTTP(w, r)
	})
}

// TestReview162FormMethodOverrideNotRecorded — AttrMethodOverride: "the
// method a framework that honours the header served, while AttrMethod is
// the method on the wire", and auditOverride's comment: "support, who
// chooses the headers, must not choose what the trail says was served by
// putting a decoy first". Review 80 took gorilla's
// HTTPMethodOverrideHandler, installed inside the middleware, as the
// usual override middleware; it honours the "_method" form value first
// (query string or body), the header only when there is none.
//
// Attack: support sends POST /users/u-7?_method=DELETE (or the same in a
// form body). The route served, and its effect, is DELETE; the trail
// says "POST /users/u-7" (an update) with no method_override, and the
// query string is never recorded. With a decoy header
// X-HTTP-Method-Override: PATCH beside the form's _method=DELETE, the
// trail says the framework served PATCH while it served DELETE. Found by
// review 162 (the trail recorded the request line as admitted); now the
// method the chain set on the request in place comes first in
// method_override.
func TestReview162FormMethodOverrideNotRecorded(t *testing.T) {
	for _, c := range []struct {
		name, target, body string
		header             []string
	}{
		{name: "query", target: "/users/u-7?_method=DELETE"},
		{name: "form_body", target: "/users/u-7", body: "_method=DELETE"},
		{name: "form_body_with_decoy_header", target: "/users/u-7", body: "_method=DELETE", header: []string{"X-HTTP-Method-Override", "PATCH"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newMWEnv(t)
			e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
			var deleted, updated atomic.Bool
			mux := http.NewServeMux()
			mux.HandleFunc("DELETE /users/{id}", func(w http.ResponseWriter, r *http.Request) {
				deleted.Store(true)
				w.WriteHeader(http.StatusNoContent)
			})
			mux.HandleFunc("PATCH /users/{id}", func(w http.ResponseWriter, r *http.Request) {
				updated.Store(true)
				w.WriteHeader(http.StatusNoContent)
			})
			mux.HandleFunc("POST /users/{id}", func(w http.ResponseWriter, r *http.Request) {
				updated.Store(true)
				w.WriteHeader(http.StatusNoContent)
			})
			h := e.wrap(rv162MethodOverride(mux))
			r := httptest.NewRequest(http.MethodPost, c.target, strings.NewReader(c.body))
			r.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
			if c.body != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			for i := 0; i+1 < len(c.header); i += 2 {
				r.Header.Set(c.header[i], c.header[i+1])
			}
			rec := mwDo(h, r)
			require.Equal(t, http.StatusNoContent, rec.Code)
			require.True(t, deleted.Load(), "the framework served DELETE: the user is gone")
			require.False(t, updated.Load())

			evs := e.events(sa.EventSupportRequest)
			require.Len(t, evs, 1)
			ev := evs[0]
			t.Logf("recorded: method=%q method_override=%q path=%q status=%s",
				ev.Attrs[sa.AttrMethod], ev.Attrs[sa.AttrMethodOverride], ev.Attrs[sa.AttrPath], ev.Attrs[sa.AttrStatus])
			served := ev.Attrs[sa.AttrMethod] + "," + ev.Attrs[sa.AttrMethodOverride]
			require.Contains(t, served, http.MethodDelete,
				"support's request was served as DELETE /users/u-7, but the trail names only %q", served)
			require.Equal(t, http.MethodPost, ev.Attrs[sa.AttrMethod], "the wire's method")
			require.True(t, strings.HasPrefix(ev.Attrs[sa.AttrMethodOverride], http.MethodDelete),
				"the method served comes first: %q", ev.Attrs[sa.AttrMethodOverride])
			rv162Verify(t, e.m)
		})
	}
}

// TestReview162PanicsAndGoexit — Manager.Middleware: "A handler that
// panics before committing is recorded with status 500", and a response
// committed before the panic was recorded when it was committed. Attack:
// handlers reached over a real HTTP/1.1 server that panic with a value,
// with http.ErrAbortHandler (which net/http does not even log), before
// and after writing, and one that calls runtime.Goexit (t.FailNow in a
// test double): each must leave one event.
func TestReview162PanicsAndGoexit(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var ran atomic.Int64
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		switch r.URL.Path {
		case "/panic-before":
			panic("handler bug")
		case "/abort-before":
			panic(http.ErrAbortHandler)
		case "/abort-after":
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "partial")
			panic(http.ErrAbortHandler)
		case "/goexit-before":
			runtime.Goexit()
		}
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the panics are the test's
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, p := range []string{"/panic-before", "/abort-before", "/abort-after", "/goexit-before"} {
		rv162Raw(t, addr, "DELETE", p, "")
	}
	require.EqualValues(t, 4, ran.Load())
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 4)
	want := map[string]string{"/panic-before": "500", "/abort-before": "500", "/abort-after": "201", "/goexit-before": "500"}
	for p, st := range want {
		got := rv162ByPath(evs, sa.EventSupportRequest, p)
		require.Len(t, got, 1, p)
		require.Equal(t, st, got[0].Attrs[sa.AttrStatus], p)
		require.Equal(t, "DELETE", got[0].Attrs[sa.AttrMethod])
		rv162RequireIdentity(t, got[0], g)
	}
	rv162Verify(t, e.m)
}

// TestReview162TimeoutHandlerInside — Manager.Middleware: the event is
// recorded "when the response is committed", and RecordChange: "Call it
// before committing the change". Attack: http.TimeoutHandler between the
// middleware and the handler answers 503 on its own at the timeout while
// the handler goes on in its goroutine and changes configuration after
// the request's response (and the middleware) are done. The 503 must be
// recorded as what support got, and the late change must be recorded —
// or refused once the grant is revoked.
func TestReview162TimeoutHandlerInside(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	release := make(chan struct{})
	done := make(chan error, 2)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // the middleware has returned by now
		done <- sa.RecordChange(r.Context(), "sso.enforced", false, true)
		<-release
		done <- sa.RecordChange(r.Context(), "sso.enforced", true, false)
	})
	// A real timer: the deadline under test is http.TimeoutHandler's.
	h := e.wrap(http.TimeoutHandler(slow, 20*time.Millisecond, "too slow"))
	rec := mwDo(h, mwReq(http.MethodPut, "/settings/sso", "generic"))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "503", evs[0].Attrs[sa.AttrStatus], "what support got")

	release <- struct{}{}
	require.NoError(t, <-done, "a change after the response is still recorded")
	ch := e.events(sa.EventSupportChange)
	require.Len(t, ch, 1)
	rv162RequireIdentity(t, ch[0], g)
	require.Equal(t, "PUT", ch[0].Attrs[sa.AttrMethod])
	require.Equal(t, "/settings/sso", ch[0].Attrs[sa.AttrPath])
	require.JSONEq(t, "false", string(ch[0].Before))
	require.JSONEq(t, "true", string(ch[0].After))

	_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
	require.NoError(t, err)
	release <- struct{}{}
	err = <-done
	require.Error(t, err, "no change after the revocation, however late the handler runs")
	require.Len(t, e.events(sa.EventSupportChange), 1)
	rv162Verify(t, e.m)
}

// TestReview162MaxBytesAndDisconnect — a request whose body is refused by
// http.MaxBytesHandler (413 from the handler) and one whose client went
// away before the handler answered ("a client that goes away is audited
// all the same") over a real server: both reached the handler, both are
// recorded.
func TestReview162MaxBytesAndDisconnect(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	entered, answered := make(chan struct{}), make(chan struct{})
	h := e.wrap(http.MaxBytesHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone" {
			close(entered)
			<-r.Context().Done() // the client hung up
			w.WriteHeader(http.StatusNoContent)
			close(answered)
			return
		}
		if _, err := io.ReadAll(r.Body); err != nil {
			var mbe *http.MaxBytesError
			require.ErrorAs(t, err, &mbe)
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusOK)
	}), 16))
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	require.Equal(t, http.StatusRequestEntityTooLarge, rv162Raw(t, addr, "POST", "/upload", strings.Repeat("x", 64)))

	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = io.WriteString(c, "DELETE /gone HTTP/1.1\r\nHost: x\r\nCookie: sid=generic\r\n\r\n")
	require.NoError(t, err)
	<-entered // admitted, in the handler: hang up
	require.NoError(t, c.Close())
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not see the client go")
	}
	require.Eventually(t, func() bool { return len(e.events(sa.EventSupportRequest)) == 2 }, 5*time.Second, time.Millisecond)
	evs := e.events(sa.EventSupportRequest)
	require.Equal(t, "413", rv162ByPath(evs, sa.EventSupportRequest, "/upload")[0].Attrs[sa.AttrStatus])
	require.Equal(t, "204", rv162ByPath(evs, sa.EventSupportRequest, "/gone")[0].Attrs[sa.AttrStatus])
	rv162Verify(t, e.m)
}

// TestReview162HTTP2EarlyHintsAndMethods — over HTTP/2: "Informational
// responses (1xx other than 101, such as 103 Early Hints) of impersonated
// requests are not sent", and every request is recorded with its final
// status. Attack: a handler that sends 103 with a Link to a secret before
// its answer, and a write method, over a TLS HTTP/2 server.
func TestReview162HTTP2EarlyHintsAndMethods(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</exports/payroll.csv>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		if r.Method == http.MethodPatch {
			w.WriteHeader(http.StatusAccepted)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	var hints atomic.Int64
	for _, m := range []string{http.MethodGet, http.MethodPatch} {
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			hints.Add(1)
			return nil
		}}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), m, srv.URL+"/h2/"+strings.ToLower(m), nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, 2, resp.ProtoMajor)
	}
	require.Zero(t, hints.Load(), "no 103 reached support")
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 2)
	require.Equal(t, "200", rv162ByPath(evs, sa.EventSupportRequest, "/h2/get")[0].Attrs[sa.AttrStatus])
	patch := rv162ByPath(evs, sa.EventSupportRequest, "/h2/patch")[0]
	require.Equal(t, "202", patch.Attrs[sa.AttrStatus])
	require.Equal(t, "PATCH", patch.Attrs[sa.AttrMethod])
	rv162RequireIdentity(t, patch, g)
	rv162Verify(t, e.m)
}

// TestReview162AuditDownHandlerRuns — Manager.Middleware: "If the event
// cannot be recorded the handler's response is replaced by a 503 ...
// support is never sent a response that is not in the audit trail", and
// "Side effects the handler made before committing its response are not
// undone; a handler that changes configuration calls RecordChange before
// it commits the change, which fails closed." Pins the documented limit:
// with the auditor down the handler does run; RecordChange refuses, so a
// handler that follows the rule makes no change; support gets the 503.
func TestReview162AuditDownHandlerRuns(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var ran, changed atomic.Bool
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Store(true)
		if err := sa.RecordChange(r.Context(), "sso.enforced", true, false); err != nil {
			http.Error(w, "not saved", http.StatusInternalServerError)
			return
		}
		changed.Store(true)
		_, _ = io.WriteString(w, "saved")
	}))
	e.store.failRecord.Store(true)
	rec := mwDo(h, mwReq(http.MethodPut, "/settings/sso", "generic"))
	e.store.failRecord.Store(false)
	require.True(t, ran.Load(), "the handler runs: the audit is written at the commit")
	require.False(t, changed.Load(), "RecordChange failed closed: no change")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.NotContains(t, rec.Body.String(), "not saved")
	require.Empty(t, e.events(sa.EventSupportRequest, sa.EventSupportChange))
	require.True(t, boomReported(e.errs.all()))
	rv162Verify(t, e.m)
}

// rv162Cycle is a value encoding/json cannot encode.
type rv162Cycle struct{ Next *rv162Cycle }

// rv162Panicky panics when encoded: a host type's broken MarshalJSON.
type rv162Panicky struct{}

func (rv162Panicky) MarshalJSON() ([]byte, error) { panic("MarshalJSON bug") }

// TestReview162RecordChangeUnencodable — RecordChange: "ErrInvalidInput
// when ... a value cannot be encoded ... Errors, and then nothing is
// recorded". Attack: values encoding/json refuses (a func, a channel,
// NaN, ±Inf, a cycle) and one whose MarshalJSON panics: each must be
// refused, record nothing, and leave the request's own event intact (a
// panic in RecordChange is the handler's panic: recorded as 500).
func TestReview162RecordChangeUnencodable(t *testing.T) {
	cyc := &rv162Cycle{}
	cyc.Next = cyc
	for name, v := range map[string]any{
		"func": func() {}, "chan": make(chan int), "nan": math.NaN(), "inf": math.Inf(-1),
		"cycle": cyc, "map_func": map[string]any{"f": func() {}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, before := range []bool{true, false} {
				var b, a any = v, "x"
				if !before {
					b, a = "x", v
				}
				evs, err := mwRecordChange(t, "setting", b, a)
				require.ErrorIs(t, err, sa.ErrInvalidInput)
				require.Empty(t, evs)
			}
		})
	}
	t.Run("marshaler_panics", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = sa.RecordChange(r.Context(), "setting", nil, rv162Panicky{})
			t.Error("RecordChange returned")
		}))
		require.Panics(t, func() { mwDo(h, mwReq(http.MethodPut, "/settings", "generic")) })
		require.Empty(t, e.events(sa.EventSupportChange))
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, 1)
		require.Equal(t, "500", evs[0].Attrs[sa.AttrStatus])
		rv162Verify(t, e.m)
	})
}

// TestReview162RecordChangeAfterResponseAndInNested — RecordChange "records
// a support.change event for a configuration change that support makes
// in the impersonated request ctx belongs to". Attacks: (1) a change made
// after the response was written and flushed (a streaming page's form)
// and (2) a change made by a request a handler dispatches again into a
// recorder of its own (a batch endpoint) must each be recorded with the
// method and path of the request that made it.
func TestReview162RecordChangeAfterResponseAndInNested(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var inner http.Handler
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			_, _ = io.WriteString(w, "started\n")
			http.NewResponseController(w).Flush()
			require.NoError(t, sa.RecordChange(r.Context(), "retention.days", 30, 7))
		case "/batch":
			sub := httptest.NewRequest(http.MethodDelete, "/users/u-9", nil).WithContext(r.Context())
			sub.Header = r.Header.Clone()
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, sub)
			w.WriteHeader(rec.Code)
		case "/users/u-9":
			require.NoError(t, sa.RecordChange(r.Context(), "user.u-9", map[string]string{"id": "u-9"}, nil))
			w.WriteHeader(http.StatusNoContent)
		}
	})
	inner = e.wrap(outer)
	mwDo(inner, mwReq(http.MethodPost, "/stream", "generic"))
	mwDo(inner, mwReq(http.MethodPost, "/batch", "generic"))

	ch := e.events(sa.EventSupportChange)
	require.Len(t, ch, 2)
	st := rv162ByPath(ch, sa.EventSupportChange, "/stream")
	require.Len(t, st, 1)
	require.Equal(t, "POST", st[0].Attrs[sa.AttrMethod])
	rv162RequireIdentity(t, st[0], g)
	del := rv162ByPath(ch, sa.EventSupportChange, "/users/u-9")
	require.Len(t, del, 1, "the dispatched request's change names its own method and path: %s", mwJSON(t, ch))
	require.Equal(t, "DELETE", del[0].Attrs[sa.AttrMethod])
	req := e.events(sa.EventSupportRequest)
	require.Len(t, rv162ByPath(req, sa.EventSupportRequest, "/users/u-9"), 1, "the dispatched request is recorded too")
	require.Equal(t, "204", rv162ByPath(req, sa.EventSupportRequest, "/users/u-9")[0].Attrs[sa.AttrStatus])
	require.Len(t, rv162ByPath(req, sa.EventSupportRequest, "/batch"), 1)
	rv162Verify(t, e.m)
}

// TestReview162NestedSameWriterHidesInnerRequest — Manager.Middleware,
// Nesting: "When the inner request writes to the outer one's writer ...,
// the outer support.request event covers the response, listing the
// scopes added". Pins what that means for an auditor: a DELETE a GET's
// handler dispatches into its own response is in the trail only as the
// GET's event with scope "read,write"; the DELETE's method and path are
// nowhere (documented: "one check, one audit event").
func TestReview162NestedSameWriterHidesInnerRequest(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var deleted atomic.Bool
	var h http.Handler
	h = e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			deleted.Store(true)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		sub := httptest.NewRequest(http.MethodDelete, "/users/u-9", nil).WithContext(r.Context())
		sub.Header = r.Header.Clone()
		h.ServeHTTP(w, sub)
	}))
	mwDo(h, mwReq(http.MethodGet, "/dashboard", "generic"))
	require.True(t, deleted.Load())
	evs := e.events()
	var reqs []sa.Event
	for _, ev := range evs {
		if ev.Type == sa.EventSupportRequest {
			reqs = append(reqs, ev)
		}
	}
	require.Len(t, reqs, 1)
	require.Equal(t, "GET", reqs[0].Attrs[sa.AttrMethod])
	require.Equal(t, "read,write", reqs[0].Attrs[sa.AttrScope], "the write the inner DELETE used shows as a scope")
	require.NotContains(t, mwJSON(t, evs), "u-9", "the inner request's path is in no event (documented)")
	rv162Verify(t, e.m)
}

// TestReview162AuditJustBeforeDeadlineLeavesNoEvent — Manager.Middleware:
// "Audit writes ignore the cancellation of the request context ... but
// not its deadline: an auditor that hangs fails the write at the
// deadline. A write that begins after the deadline (a handler that
// answered late, its effect done) is given 5 s, so that the request is
// audited all the same." (Review 80's fix.)
//
// Attack: the same DELETE, answered a few milliseconds *before* the
// request's deadline, with an auditor that does not hang but needs a few
// milliseconds more than are left (a database write under load). The
// write fails at the deadline; the response is replaced by a 503; the
// trail holds nothing for a request whose effect is done. One
// millisecond later the same request would have had 5 s and been
// recorded: the cliff was at the deadline, not at a hanging auditor.
// Found by review 162; now every audit write gets at least the 5 s.
func TestReview162AuditJustBeforeDeadlineLeavesNoEvent(t *testing.T) {
	rv162DeadlineCase(t, -5*time.Millisecond)
}

// TestReview162AuditJustAfterDeadlineRecorded pins review 80's fix, the
// other side of the cliff: the write begins just after the deadline and
// the same auditor records it.
func TestReview162AuditJustAfterDeadlineRecorded(t *testing.T) {
	rv162DeadlineCase(t, 5*time.Millisecond)
}

// rv162DeadlineCase serves a DELETE under a 100 ms per-request timeout
// whose handler answers at the deadline plus at (negative: before it);
// the auditor takes until 5 ms after the deadline, or 5 ms when that is
// past already. It requires the request to be in the trail.
func rv162DeadlineCase(t *testing.T, at time.Duration) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var deleted atomic.Bool
	var deadline atomic.Pointer[time.Time]
	gate := e.store.gate(sa.EventSupportRequest, false)
	inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deleted.Store(true) // the effect
		d, ok := r.Context().Deadline()
		require.True(t, ok)
		deadline.Store(&d)
		// A real timer: the deadline under test is the request's.
		time.Sleep(time.Until(d.Add(at)))
		w.WriteHeader(http.StatusNoContent)
	}))
	go func() {
		<-gate.entered
		// The database takes until 5 ms after the deadline (at least 5 ms).
		d := *deadline.Load()
		wait := max(time.Until(d.Add(5*time.Millisecond)), 5*time.Millisecond)
		time.Sleep(wait)
		close(gate.release)
	}()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
		defer cancel()
		inner.ServeHTTP(w, r.WithContext(ctx))
	})
	rec := mwDo(h, mwReq(http.MethodDelete, "/users/u-7", "generic"))
	require.True(t, deleted.Load(), "the handler ran and deleted the user")
	t.Logf("client got %d; errors reported: %v", rec.Code, e.errs.all())
	evs := e.events(sa.EventSupportRequest, sa.EventAccessDenied)
	require.NotEmpty(t, evs,
		"support's DELETE /users/u-7 reached the handler and took effect, but the audit trail holds no event for it")
	rv162Verify(t, e.m)
}

// TestReview162SQLiteTrail runs a write method, a panic and a change over
// the SQL store on SQLite (and PostgreSQL and MariaDB when their DSNs are
// set): the events are those of memstore, in one verifiable chain.
func TestReview162SQLiteTrail(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			store := sqltest.NewStore(t, d)
			m, err := sa.NewManager(store)
			require.NoError(t, err)
			defer m.Close()
			g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Scopes: []sa.Scope{sa.ScopeWrite}})
			require.NoError(t, err)
			sessions := &mwSessions{}
			sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SubjectUserID: "u-42", SessionID: "s-generic"})
			h := m.Middleware(sessions.resolve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/panic":
					panic(http.ErrAbortHandler)
				case "/settings":
					require.NoError(t, sa.RecordChange(r.Context(), "theme", json.RawMessage(`{"c":"<b>"}`), "dark"))
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			addr := srv.Listener.Addr().String()
			rv162Raw(t, addr, "PROPFIND", "/dav/x?tok=1", "")
			rv162Raw(t, addr, "POST", "/panic", "")
			rv162Raw(t, addr, "PUT", "/settings", "")
			evs, err := m.Events(context.Background(), sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventSupportRequest, sa.EventSupportChange}})
			require.NoError(t, err)
			require.Len(t, evs, 4, mwJSON(t, evs))
			dav := rv162ByPath(evs, sa.EventSupportRequest, "/dav/x")
			require.Len(t, dav, 1)
			require.Equal(t, "PROPFIND", dav[0].Attrs[sa.AttrMethod])
			require.Equal(t, "204", dav[0].Attrs[sa.AttrStatus])
			rv162RequireIdentity(t, dav[0], g)
			require.Equal(t, "500", rv162ByPath(evs, sa.EventSupportRequest, "/panic")[0].Attrs[sa.AttrStatus])
			ch := rv162ByPath(evs, sa.EventSupportChange, "/settings")
			require.Len(t, ch, 1)
			require.JSONEq(t, `{"c":"\u003cb\u003e"}`, string(ch[0].Before))
			require.Equal(t, `"dark"`, string(ch[0].After))
			rv162Verify(t, m)
		})
	}
}

// TestReview162TimeoutHandlerOutside — AttrStatus: "On support.request,
// the status the response's header went out with". Attack: the host's
// http.TimeoutHandler *outside* the middleware answers 503 at its timeout
// and drops what the handler writes later. The request is recorded all
// the same (the write begins after the deadline: review 80's grace), but
// with the status the handler gave the middleware's writer, which never
// went out: the middleware cannot see past a buffering writer above it.
// Pinned as documented-by-omission (see the report).
func TestReview162TimeoutHandlerOutside(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	done := make(chan struct{})
	inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		<-r.Context().Done() // the timeout
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "late")
	}))
	// A real timer: the deadline under test is http.TimeoutHandler's.
	h := http.TimeoutHandler(inner, 20*time.Millisecond, "timed out")
	rec := mwDo(h, mwReq(http.MethodDelete, "/users/u-7", "generic"))
	<-done
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "support got the timeout")
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1, "the request is in the trail")
	require.Equal(t, "200", evs[0].Attrs[sa.AttrStatus], "the status the handler wrote, not the 503 sent")
	rv162Verify(t, e.m)
}
