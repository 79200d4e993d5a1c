package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Regression tests of the eighteenth review round: commit 67ce881 (pending
// late needs confirmed by value, earlier moved ends, the auditor's panic
// while the response is recorded) — prefix TestReview18.

// TestReview18FailedPendingNeedRemovesTwinNeedRouteRunsUnwatched: since
// 67ce881 a need set after the response's record is pending, so a second
// RequireScope of the same scope no longer takes usesScope's shortcut: it
// Checks and calls setNeed itself — with a need equal, field by field, to
// the first one's (same scope, grant, end, pending). Panel A's support.scope
// Record then fails: restoreNeed compares by value, finds "its" need (in
// fact panel B's) and removes it. Panel B's Record succeeds, confirmNeed
// finds nothing, and B's route runs on grant m with messages:read while
// the request's needs no longer hold that scope: the watcher does not
// cover it. When this Manager revokes m, the request is not ended (the
// listener sees no need using m) — RequireScope's doc: "the request's
// background re-checks and expiry timer cover s from then on".
func TestReview18FailedPendingNeedRemovesTwinNeedRouteRunsUnwatched(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	gateA, gateB := store.gate(sa.EventSupportScope, true), store.gate(sa.EventSupportScope, false)
	panelA, panelB := &mwOK{}, &mwOK{}
	var codeA, codeB int
	var stillRunning bool
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<page>")) // support.request recorded
		doneA, doneB := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(doneA)
			rec := httptest.NewRecorder()
			sa.RequireScope(msgs)(panelA).ServeHTTP(rec, r)
			codeA = rec.Code
		}()
		<-gateA.entered // A's need is set, pending; its support.scope is under way
		go func() {
			defer close(doneB)
			rec := httptest.NewRecorder()
			sa.RequireScope(msgs)(panelB).ServeHTTP(rec, r)
			codeB = rec.Code
		}()
		<-gateB.entered // B Checked and set the same need; its support.scope is under way
		close(gateA.release)
		<-doneA // A refused: restoreNeed
		close(gateB.release)
		<-doneB // B allowed: its route ran on m
		// This Manager revokes m: a request using messages:read on m ends.
		_, err := e.m.Revoke(context.Background(), m.ID, mwCustomer, "done")
		require.NoError(t, err)
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
			stillRunning = true
		}
	}), sa.WithPollInterval(100*time.Millisecond))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Zero(t, panelA.calls.Load(), "A's support.scope failed: refused")
	require.Equal(t, http.StatusServiceUnavailable, codeA)
	require.Equal(t, int64(1), panelB.calls.Load(), "B's support.scope was recorded: B ran on m")
	require.Equal(t, http.StatusOK, codeB)
	require.False(t, stillRunning,
		"grant m, on which panel B runs with messages:read, was revoked by this Manager and the request went on for 1s: A's restoreNeed removed B's identical need, so nothing watches m")
}

// TestReview18ScopeBeforeRefusalResponseNeverAudited: an action behind
// RequireScope(messages:write), rendered into a recorder, runs on grant m
// before the response started: auditLateScope records nothing ("listed in
// the support.request event, still to come"). Then a part behind
// RequireScope(billing:read) is refused on the middleware's writer: the
// refusal becomes the response, and "no support.request event is recorded
// for it". The action ran with support's access on grant m and no event
// names m or messages:write — only the access.denied of billing:read
// (predates 67ce881: 355fcab made later scopes audited after such a
// refusal, not the earlier ones).
func TestReview18ScopeBeforeRefusalResponseNeverAudited(t *testing.T) {
	const billing, msgs sa.Scope = "billing:read", "messages:write"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	summary, action := &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(action).ServeHTTP(rec, r)   // allowed: runs on m
		sa.RequireScope(billing)(summary).ServeHTTP(w, r) // refused: the response
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), action.calls.Load(), "the action ran on grant m")
	require.Zero(t, summary.calls.Load())
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.True(t, rw16Names(e, m.ID.String(), msgs),
		"the action ran on grant m with messages:write and no event names either (events: %s)",
		mwJSON(t, e.events()))
}

// TestReview18AuditorPanicRecoveredHeadersGoOutAs200: 67ce881 blocks the
// writer when the auditor panics while the response's support.request
// event is recorded, but writes no denial and leaves the handler's header
// fields in place (replace, used when the audit fails with an error,
// resets them and writes a 503). A handler that recovers the panic and
// returns has written nothing through the writer underneath, so net/http
// sends its implicit 200 with every header field the handler set — to
// support, with no support.request event.
func TestReview18AuditorPanicRecoveredHeadersGoOutAs200(t *testing.T) {
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: time.Hour})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Customer-Secret", "iban=DE89370400440532013000")
		store.panicReq.Store(-1)
		func() {
			defer func() { _ = recover() }() // a failing part does not break the page
			w.WriteHeader(http.StatusOK)
		}()
		store.panicReq.Store(0)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/inbox", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Empty(t, e.events(sa.EventSupportRequest), "the auditor panicked: no event")
	require.Empty(t, resp.Header.Get("X-Customer-Secret"),
		"support got a %d response carrying the handler's header fields, with no support.request event", resp.StatusCode)
	require.NotEqual(t, http.StatusOK, resp.StatusCode, "an unaudited response went out as 200")
}

// TestReview18AuditorPanicOnSessionEndedCommitLetsHeaderThrough: the
// session-ended path of committedAs calls st.audit directly: 67ce881's
// auditResponse guard is not applied there. When the request's grant was
// revoked and the auditor panics while recording the 403, the writer is
// committed with blocked nil and no denial written; a handler that
// recovers and calls WriteHeader again goes straight to the writer
// underneath ("let net/http report the superfluous call"): support gets
// the handler's status and header fields after the session ended, with no
// event, instead of the 403 DeniedSessionEnded denial.
func TestReview18AuditorPanicOnSessionEndedCommitLetsHeaderThrough(t *testing.T) {
	e := newMWEnv(t)
	store := e.store
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
		require.NoError(t, err)
		select {
		case <-r.Context().Done(): // the watcher ended the request
		case <-time.After(5 * time.Second):
			t.Error("the revoked request was not ended")
		}
		w.Header().Set("X-Customer-Secret", "iban=DE89370400440532013000")
		store.panicReq.Store(-1)
		for range 2 {
			func() {
				defer func() { _ = recover() }() // a failing part does not break the page
				w.WriteHeader(http.StatusOK)
			}()
		}
		store.panicReq.Store(0)
	}), sa.WithPollInterval(100*time.Millisecond))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	res := rec.Result()
	require.Empty(t, res.Header.Get("X-Customer-Secret"),
		"after the session ended, support got a %d response carrying the handler's header fields", res.StatusCode)
	require.NotEqual(t, http.StatusOK, res.StatusCode)
}
