package supportaccess_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview104H2SwitchingProtocolsAuditedAs101ButServed200 — the
// middleware's doc: the support.request event records the status "when
// the response is committed (the first WriteHeader …)", and supportWriter
// treats 101 as a final status (it commits and records it), as net/http's
// HTTP/1 server does. Over HTTP/2, though, net/http sends 101 as an
// informational response (a HEADERS frame with every header field the
// handler set), which commits nothing: the handler's next Write goes out as
// a 200 with the body. The trail says 101 (an upgraded connection, no
// response body); support received a 200 page.
func TestReview104H2SwitchingProtocolsAuditedAs101ButServed200(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Tenant-Secret", "s3cr3t")
		w.WriteHeader(http.StatusSwitchingProtocols) // a naive upgrade
		_, _ = io.WriteString(w, "customer data the trail does not show")
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	var mu sync.Mutex
	var infos []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, code)
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, srv.URL+"/reports", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 2, resp.ProtoMajor)

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, strconv.Itoa(resp.StatusCode), evs[0].Attrs[sa.AttrStatus],
		"support received status %d with body %q (after 1xx %v), but the trail records status %s",
		resp.StatusCode, strings.TrimSpace(string(body)), infos, evs[0].Attrs[sa.AttrStatus])
}

// TestReview104StripPrefixAuditsPathSupportDidNotRequest — the middleware
// audits "path without the query string" (DESIGN: every request support
// made, "method, path"), from r.URL as the handler sees it. Mounted the
// usual net/http way, m.Middleware(resolve)(app) under http.StripPrefix
// (a sub-application at /admin/ and another at /shop/), it records the
// path after the prefix is cut: support's DELETE of /admin/users/42 is
// audited as /users/42, the same as a DELETE of /shop/users/42. The
// request line the client sent (r.RequestURI, which StripPrefix keeps) is
// not what the trail shows, and the auditor cannot tell which application
// support acted in.
func TestReview104StripPrefixAuditsPathSupportDidNotRequest(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeWrite}})
	app := func(name string) http.Handler {
		inner := http.NewServeMux()
		inner.HandleFunc("DELETE /users/{id}", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, name+" user "+r.PathValue("id")+" deleted")
		})
		return e.wrap(inner)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", app("admin")))
	mux.Handle("/shop/", http.StripPrefix("/shop", app("shop")))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, err := http.NewRequest(http.MethodDelete, srv.URL+"/admin/users/42", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "admin user 42 deleted", string(body))

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "/users/42", evs[0].Attrs[sa.AttrPath], "the path the handler served")
	require.Equal(t, "/admin/users/42", evs[0].Attrs[sa.AttrRequestTarget],
		"support requested DELETE /admin/users/42 but the trail records only path %q", evs[0].Attrs[sa.AttrPath])
}

// TestReview104OverrideAuditNamesOnlyFirstHeader — the middleware's doc:
// the event records "method_override when a method-override header named
// one", and the scope accounts for every one of the three headers it
// knows (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override): it
// cannot know which one the host honours. The audit, though, names only
// the first non-empty one. A POST carrying X-HTTP-Method-Override: PATCH
// and X-HTTP-Method: DELETE, served by a host that honours X-HTTP-Method
// (OData-style APIs do), deletes the user while the trail reads
// "POST /users/u-7, method_override PATCH": support chooses what the
// auditor sees, and the DELETE performed appears nowhere.
func TestReview104OverrideAuditNamesOnlyFirstHeader(t *testing.T) {
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
	req.Header.Set("X-HTTP-Method-Override", "PATCH")
	req.Header.Set("X-HTTP-Method", "DELETE")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, http.MethodDelete, served, "the host served a DELETE")

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	mentioned := false
	for _, v := range evs[0].Attrs {
		if strings.Contains(v, http.MethodDelete) {
			mentioned = true
		}
	}
	require.True(t, mentioned,
		"the host deleted /users/u-7 on X-HTTP-Method: DELETE, but the support.request event records only %v", evs[0].Attrs)
}

// TestReview104ConnectAuditsNoTarget — DESIGN: the trail records "every
// request made by support while impersonating (method, path, …)"; the
// middleware audits r.URL's escaped path. A CONNECT request (a tunnel or
// port-forward handler of the host, HTTP/1 or HTTP/2) has no path: its
// request target is the authority, db.internal:5432, in r.URL.Host and
// r.RequestURI. The support.request event records method CONNECT and an
// empty path: the trail says support opened a tunnel, not to where.
func TestReview104ConnectAuditsNoTarget(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeWrite}})
	var target string
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target = r.RequestURI
		w.WriteHeader(http.StatusOK) // tunnel established
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\nCookie: sid=generic\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "db.internal:5432", target)

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, http.MethodConnect, evs[0].Attrs[sa.AttrMethod])
	require.Equal(t, "db.internal:5432", evs[0].Attrs[sa.AttrRequestTarget],
		"support opened a tunnel to db.internal:5432 but the trail records path %q and no target", evs[0].Attrs[sa.AttrPath])
}

// TestReview104RevokeDuringBlockedWriteKeepsStreaming — the middleware's
// doc: when support access ends while the request runs, "writes to the
// response fail with that error, so a stream ends even if the handler
// ignores its context", and a response under way is aborted. That holds
// only between writes. A handler that sends an export in one Write (or
// io.Copy with large buffers) to a client that reads slowly is blocked in
// the server's write when the grant is revoked: nothing unblocks it (the
// middleware sets no write deadline through the ResponseController and
// closes nothing), so the client keeps receiving the export — here the
// remaining tens of megabytes — after Revoke returned to the customer and
// after the request's context ended; the abort comes only once it has all
// been delivered.
func TestReview104RevokeDuringBlockedWriteKeepsStreaming(t *testing.T) {
	const size = 64 << 20
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{})
			ended := make(chan struct{})
			export := bytes.Repeat([]byte("x"), size)
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				go func() { <-r.Context().Done(); close(ended) }()
				_, _ = w.Write(export) // one write; the handler ignores its context
			}))
			srv := httptest.NewUnstartedServer(h)
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			defer srv.Close()
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/export.csv", nil)
			require.NoError(t, err)
			req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			_, err = io.ReadFull(resp.Body, make([]byte, 1<<20))
			require.NoError(t, err)

			_, err = e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
			require.NoError(t, err)
			<-ended // the request's support access has ended
			after, _ := io.Copy(io.Discard, resp.Body)
			require.Less(t, after, int64(16<<20),
				"after the grant was revoked and the request ended, support still received %d more bytes of the %d-byte export", after, size)
		})
	}
}

// TestReview104RequestTargetNoiseAndCredentials: a target that names the
// handler's path escaped otherwise records no request_target, and an
// absolute-form target's credentials are never recorded.
func TestReview104RequestTargetNoiseAndCredentials(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, target := range []string{"/a|b/caf\u00e9", "http://sam:hunter2@acme.example/users/42?x=1"} {
		req := mwReq(http.MethodGet, "/", "generic")
		u, err := url.ParseRequestURI(target)
		require.NoError(t, err)
		req.URL, req.RequestURI = u, target
		require.Equal(t, http.StatusOK, mwDo(h, req).Code)
	}
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 2)
	require.NotContains(t, evs[0].Attrs, sa.AttrRequestTarget, "the same path: %v", evs[0].Attrs)
	require.Equal(t, "http://acme.example/users/42", evs[1].Attrs[sa.AttrRequestTarget])
	for _, ev := range evs {
		for k, v := range ev.Attrs {
			require.NotContains(t, v, "hunter2", "attribute %s", k)
		}
	}
}
