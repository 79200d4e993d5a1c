package supportaccess_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview80HijackFailureRecordedAs101 — Manager.Middleware's doc: the
// support.request event records the status, "recorded when the response is
// committed (the first WriteHeader, Write or Flush, a Hijack, ...)", and
// supportWriter.Hijack: "The support.request event is recorded first, with
// status 101". Auditors read the status as what support received.
//
// Observed: Hijack records status 101 before it knows whether the hijack
// works. Over HTTP/2 (or under any outer writer without Hijack, such as
// http.TimeoutHandler's) it fails; the WebSocket library then answers with
// http.Error(w, …, 500), which goes to the client, since the response
// counts as committed already. The trail says "101" (an upgraded
// connection); the client got a 500 with a body.
func TestReview80HijackFailureRecordedAs101(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	var hijackErr atomic.Value
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What gorilla/websocket and coder/websocket do when the
		// connection cannot be taken over.
		if _, _, err := http.NewResponseController(w).Hijack(); err != nil {
			hijackErr.Store(err)
			http.Error(w, "websocket: upgrade failed", http.StatusInternalServerError)
			return
		}
		t.Error("HTTP/2 connection hijacked")
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/console/ws", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 2, resp.ProtoMajor)
	require.NotNil(t, hijackErr.Load(), "the hijack failed (HTTP/2)")
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode, "the client got the handler's 500")
	require.Contains(t, string(body), "upgrade failed")

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "500", evs[0].Attrs[sa.AttrStatus],
		"support received a 500 (%q) but the trail records status %s, a connection upgrade that never happened",
		strings.TrimSpace(string(body)), evs[0].Attrs[sa.AttrStatus])
}

// TestReview80DeadlinePassedLeavesNoEvent — Manager.Middleware's doc:
// "Audit: each admitted request records one support.request event", and
// "Audit writes ignore the cancellation of the request context (a client
// that goes away is audited all the same) but not its deadline: an auditor
// that hangs fails the write at the deadline."
//
// Observed: with a request deadline (an outer http.TimeoutHandler, or a
// host's per-request timeout) the admitted request's handler runs — here a
// DELETE that removes a user — and commits its response after the
// deadline. The auditor does not hang: the audit context is dead on
// arrival (its deadline has passed), so the write fails at once. The
// response is replaced by a 503 nobody reads, and the trail holds nothing
// for the request: no support.request, no access.denied. Support's DELETE,
// which reached the host handler and took effect, is not in the audit
// trail at all. (A client that went away is audited; one whose request
// timed out is not.)
func TestReview80DeadlinePassedLeavesNoEvent(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var deleted atomic.Bool
	inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deleted.Store(true) // the effect: the user is gone
		// The database's commit is slow; the handler is past the
		// request's deadline when it answers.
		<-r.Context().Done()
		w.WriteHeader(http.StatusNoContent)
	}))
	// The host's per-request timeout (as chi's middleware.Timeout or
	// http.TimeoutHandler set it), outside the middleware. A real timer,
	// 50 ms: the deadline under test is the request's, not a grant's.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 50*time.Millisecond)
		defer cancel()
		inner.ServeHTTP(w, r.WithContext(ctx))
	})
	rec := mwDo(h, mwReq(http.MethodDelete, "/users/u-7", "generic"))
	require.True(t, deleted.Load(), "the handler ran and deleted the user")
	t.Logf("client got %d; errors reported: %v", rec.Code, e.errs.all())

	evs := e.events(sa.EventSupportRequest, sa.EventAccessDenied)
	require.NotEmpty(t, evs,
		"support's DELETE /users/u-7 reached the handler and took effect, but the audit trail holds no event for it")
}

// methodOverride is the usual method-override middleware (as gorilla's
// handlers.HTTPMethodOverrideHandler): a POST whose X-HTTP-Method-Override
// names PUT, PATCH or DELETE is served as that method.
func methodOverride(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch m := r.Header.Get("X-HTTP-Method-Override"); m {
			case http.MethodPut, http.MethodPatch, http.MethodDelete:
				r.Method = m
			}
		}
		next.ServeHTTP(w, r)
	})
}

// TestReview80MethodOverrideRecordedAsPost — Manager.Middleware's doc
// knows that frameworks honour method-override headers
// (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override) and says each
// admitted request records "method" in its support.request event.
//
// Observed: a POST carrying X-HTTP-Method-Override: DELETE, served by a
// host that honours the header, deletes the resource, and the trail says
// "POST /users/u-7" and nothing else: no attribute names the DELETE the
// handler performed. An auditor reading the trail sees a creation or a
// form post where a deletion happened.
func TestReview80MethodOverrideRecordedAsPost(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var served string
	h := e.wrap(methodOverride(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served = r.Method
		w.WriteHeader(http.StatusNoContent)
	})))
	rec := mwDo(h, mwReq(http.MethodPost, "/users/u-7", "generic", "X-HTTP-Method-Override", "DELETE"))
	require.Equal(t, http.StatusNoContent, rec.Code)
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
		"the host deleted /users/u-7 but the support.request event records only %v", evs[0].Attrs)
	require.Equal(t, http.MethodPost, evs[0].Attrs[sa.AttrMethod], "the method on the wire")
	require.Equal(t, http.MethodDelete, evs[0].Attrs[sa.AttrMethodOverride], "the method the host served")
}

// TestHijackUnauditedClosesConnection: the support.request event of a
// hijacked connection is recorded before the handler gets the connection;
// when it cannot be, Hijack fails, the connection is closed (the server
// can send no denial on it any more) and the client gets no 101.
func TestHijackUnauditedClosesConnection(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	hijacked := make(chan error, 1)
	srv := httptest.NewServer(e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		hijacked <- err
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
	})))
	defer srv.Close()
	e.store.failRecord.Store(true)
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/ws", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	resp, err := srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		require.NotEqual(t, http.StatusSwitchingProtocols, resp.StatusCode, "no upgrade without its event")
	}
	require.Error(t, <-hijacked, "Hijack fails when its event cannot be recorded")
	require.Empty(t, e.events(sa.EventSupportRequest))
}
