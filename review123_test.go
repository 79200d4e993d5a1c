package supportaccess_test

// Review 123: mutation testing of the response writer of an impersonated
// request, its denials and its per-request state (middleware_writer.go,
// middleware_deny.go, middleware_state.go). Each test names the mutant it
// kills; each passes on the code as it is.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview123FlusherFlushIsAudited pins that Flush through http.Flusher commits through the audit, as FlushError does.
//
// A handler that flushes with w.(http.Flusher).Flush() before it writes
// (an event stream announcing itself) commits the response: when its
// support.request event cannot be recorded, the response is the 503 with
// none of the handler's header fields, not a flushed 200.
//
// Kills: middleware_writer.go Flush calling the underlying writer's Flush
// directly instead of FlushError (no ready: no audit, no refusal).
func TestReview123FlusherFlushIsAudited(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Export-File", "acme-payroll-2025.csv")
		e.store.failRecord.Store(true) // the audit trail cannot be written
		w.(http.Flusher).Flush()
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
	e.store.failRecord.Store(false)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "an unaudited response went out")
	require.False(t, rec.Flushed)
	require.Empty(t, rec.Header().Get("X-Export-File"))
	require.Empty(t, e.events(sa.EventSupportRequest))
}

// TestReview123ContinueIsNotTheRecordedStatus pins that WriteHeader(100) commits nothing: the status recorded is the final one.
//
// Kills: middleware_writer.go WriteHeader, `code >= 100 && code < 200`
// with `code > 100` (100 Continue recorded as the response's status while
// the handler's later status goes out).
func TestReview123ContinueIsNotTheRecordedStatus(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusContinue)
		w.WriteHeader(http.StatusAccepted)
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/jobs", "generic"))
	require.Equal(t, http.StatusAccepted, rec.Code)
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "202", evs[0].Attrs[sa.AttrStatus])
}

// TestReview123StatusUpTo999IsValid pins that a status net/http accepts (600–999) is recorded, not turned into a panic.
//
// Kills: middleware_writer.go WriteHeader, `code > 999` with `code > 599`.
func TestReview123StatusUpTo999IsValid(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(999)
	}))
	var rec *httptest.ResponseRecorder
	require.NotPanics(t, func() { rec = mwDo(h, mwReq(http.MethodGet, "/", "generic")) })
	require.Equal(t, 999, rec.Code)
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "999", evs[0].Attrs[sa.AttrStatus])
	require.PanicsWithValue(t, "invalid WriteHeader code 1000", func() {
		mwDo(e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(1000) })), mwReq(http.MethodGet, "/", "generic"))
	})
}

// r123PipeClosed reports whether the peer of client closed the pipe: a
// read returns at once with an error other than its deadline's.
func r123PipeClosed(t *testing.T, client net.Conn) bool {
	t.Helper()
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second)) // fails once the peer closed: the read then says so
	_, err := client.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestReview123HijackUnauditedClosesConnection pins that a Hijack whose support.request cannot be recorded closes the connection it took.
//
// Kills: middleware_writer.go auditHijacked, fail without `_ = c.Close()`
// (the connection stays open to support, with nothing recorded).
func TestReview123HijackUnauditedClosesConnection(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	server, client := net.Pipe()
	defer client.Close()
	var hijackErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.store.failRecord.Store(true)
		var c net.Conn
		c, _, hijackErr = http.NewResponseController(w).Hijack()
		require.Nil(t, c)
	}))
	rec := &r113HijackRecorder{ResponseRecorder: httptest.NewRecorder(), conn: server}
	h.ServeHTTP(rec, mwReq(http.MethodGet, "/ws", "generic"))
	e.store.failRecord.Store(false)
	require.ErrorIs(t, hijackErr, sa.ErrSessionEnded)
	require.True(t, r123PipeClosed(t, client), "the unaudited connection is still open")
	require.Empty(t, e.events(sa.EventSupportRequest))
}

// TestReview123HijackAuditPanicEndsRequestAndClosesConnection pins that an auditor panic in Hijack ends the request and closes the connection before it propagates.
//
// A handler (or a wrapper of the host) that recovers the panic holds no
// connection, its context is cancelled with ErrSessionEnded, and its
// writes fail.
//
// Kills: middleware_writer.go auditHijacked, the deferred recover
// re-panicking without fail().
func TestReview123HijackAuditPanicEndsRequestAndClosesConnection(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	server, client := net.Pipe()
	defer client.Close()
	var recovered any
	var cause, writeErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.store.panicReq.Store(1)
		func() {
			defer func() { recovered = recover() }()
			_, _, _ = http.NewResponseController(w).Hijack()
		}()
		cause = context.Cause(r.Context())
		_, writeErr = w.Write([]byte("customer data"))
	}))
	rec := &r113HijackRecorder{ResponseRecorder: httptest.NewRecorder(), conn: server}
	h.ServeHTTP(rec, mwReq(http.MethodGet, "/ws", "generic"))
	require.Equal(t, "auditor: nil map", recovered)
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request goes on after the auditor panicked")
	require.ErrorIs(t, writeErr, sa.ErrSessionEnded)
	require.True(t, r123PipeClosed(t, client), "the unaudited connection is still open")
	require.Empty(t, e.events(sa.EventSupportRequest))
}

// TestReview123AnnouncedTrailersDroppedAfterEnd pins that every trailer announced in the Trailer field (a list, with spaces) is dropped once access ended.
//
// Over net/http's server the cut response is aborted, which hides the
// trailers anyway (TestNoTrailersAfterSessionEnded); a writer that is not
// torn down by the abort (a recorder, as a nested request's own response
// is) shows what dropTrailers leaves.
//
// Kills: middleware_writer.go dropTrailers without the loop over the
// Trailer field's names, and with `h.Del(k)` instead of
// `h.Del(strings.TrimSpace(k))` (" X-Rows" is not a field name).
func TestReview123AnnouncedTrailersDroppedAfterEnd(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	var werr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum, X-Rows")
		_, _ = w.Write([]byte("row 1\n"))
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop")
		require.NoError(t, err)
		<-r.Context().Done()
		_, werr = w.Write([]byte("row 2 ceo@acme.example\n"))
		w.Header().Set("X-Checksum", "row 2 ceo@acme.example")
		w.Header().Set("X-Rows", "row 2 ceo@acme.example")
	}))
	rec, aborted := mwServe(h, mwReq(http.MethodGet, "/export", "generic"))
	require.True(t, aborted)
	require.ErrorIs(t, werr, sa.ErrSessionEnded)
	require.Equal(t, "row 1\n", rec.Body.String())
	tr := rec.Result().Trailer
	require.Empty(t, tr.Get("X-Checksum"), "an announced trailer set after the end is sent")
	require.Empty(t, tr.Get("X-Rows"), "the second announced trailer set after the end is sent")
}

// TestReview123DenialIsNosniff pins X-Content-Type-Options: nosniff on the default denial, beside Cache-Control: no-store.
//
// Kills: middleware_deny.go DefaultDeniedHandler without
// `h.Set("X-Content-Type-Options", "nosniff")`.
func TestReview123DenialIsNosniff(t *testing.T) {
	e := newMWEnv(t)
	rec := mwDo(e.wrap(&mwOK{}), mwReq(http.MethodGet, "/settings", "generic")) // no grant
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
}

// TestReview123LateScopeTakenOnceIsReused pins that a scope taken after the response started is recorded once and then reused without another Check or support.scope event.
//
// Kills: middleware_state.go establish's take without
// st.confirmNeed(mine) (the need stays pending: every later RequireScope
// of the scope asks the store again and records it again).
func TestReview123LateScopeTakenOnceIsReused(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read: admits the request
	b := e.grant(sa.GrantInput{Scopes: []sa.Scope{msgs}})
	inbox := &mwOK{}
	var finds [2]int64
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<h1>page</h1>")) // the support.request event: without msgs
		sa.RequireScope(msgs)(inbox).ServeHTTP(w, r)
		finds[0] = e.store.finds.Load()
		sa.RequireScope(msgs)(inbox).ServeHTTP(w, r)
		finds[1] = e.store.finds.Load()
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, int64(2), inbox.calls.Load())
	require.Equal(t, finds[0], finds[1], "the scope taken is asked for again")
	scopes := e.events(sa.EventSupportScope)
	require.Len(t, scopes, 1, "the scope taken is recorded again")
	require.Equal(t, b.ID, scopes[0].GrantID)
}
