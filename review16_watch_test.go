package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Regression tests of the sixteenth review round: commit 00e452f (moveLog
// at admission, finish's panic recovery, support.scope) — prefix
// TestReview16.

// rw16Names reports whether an event of the request (support.request,
// support.scope, support.change) names grant id or scope s.
func rw16Names(e *mwEnv, id string, s sa.Scope) bool {
	for _, ev := range e.events(sa.EventSupportRequest, sa.EventSupportChange, sa.EventSupportScope) {
		if ev.GrantID.String() == id || strings.Contains(ev.Attrs[sa.AttrElevatedGrantIDs], id) ||
			strings.Contains(","+ev.Attrs[sa.AttrScope]+",", ","+string(s)+",") {
			return true
		}
	}
	return false
}

// TestReview16ScopeTakenWhileCommitRecordsEscapesAudit: a streaming page
// writes its first bytes while a goroutine of the handler renders a panel
// behind RequireScope(messages:read) into a buffer (the usual parallel
// rendering of a page's parts). The support.request event's scopes are
// taken from needs when the commit starts (reqState.audit, under st.mu),
// but st.audited is set only once the auditor has returned
// (committedAs). A scope established in between — here while the auditor
// records the event — is in neither record: the snapshot was taken before
// it, and auditLateScope still sees audited false ("listed in the
// support.request event, still to come") and records no support.scope.
// The panel runs on grant m, and no event names m or messages:read.
func TestReview16ScopeTakenWhileCommitRecordsEscapesAudit(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	panel := &mwOK{}
	var panelCode int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hold := store.gate(sa.EventSupportRequest, false)
		done := make(chan struct{})
		go func() {
			defer close(done)
			<-hold.entered // the support.request event is being recorded
			rec := httptest.NewRecorder()
			sa.RequireScope(msgs)(panel).ServeHTTP(rec, r)
			panelCode = rec.Code
			close(hold.release)
		}()
		_, _ = w.Write([]byte("<page>")) // commits: the auditor waits for the panel
		<-done
		_, _ = w.Write([]byte("<panel>"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, "<page><panel>", rec.Body.String())
	require.Equal(t, int64(1), panel.calls.Load(), "the panel ran on grant m")
	require.Equal(t, http.StatusOK, panelCode)
	require.True(t, rw16Names(e, m.ID.String(), msgs),
		"no audit event names grant m or messages:read, which the panel used (support.request: %s; support.scope: %s)",
		mwJSON(t, e.events(sa.EventSupportRequest)), mwJSON(t, e.events(sa.EventSupportScope)))
}

// TestReview16ScopeAfterRefusalEscapesAudit: a page's first part, behind
// RequireScope(billing:read), is refused — the refusal (403, access.denied)
// becomes the response, committed without a support.request event, and
// st.audited stays false. RequireScope's refusal "concerns this route
// only": the handler goes on with an action behind
// RequireScope(messages:write), allowed by grant m. That scope is taken
// after the response started, yet auditLateScope sees audited false and
// records nothing, and no support.request event will ever be recorded for
// the request: the action ran with support's access on grant m and no
// event names it (Middleware's doc: a scope "added after the response
// started, a support.scope event each").
func TestReview16ScopeAfterRefusalEscapesAudit(t *testing.T) {
	const billing, msgs sa.Scope = "billing:read", "messages:write"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	summary, action := &mwOK{}, &mwOK{}
	var actionCode int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(billing)(summary).ServeHTTP(w, r) // refused: the response
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(action).ServeHTTP(rec, r)
		actionCode = rec.Code
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Zero(t, summary.calls.Load())
	require.Len(t, e.events(sa.EventAccessDenied), 1, "the refusal of billing:read")
	if action.calls.Load() == 0 {
		return // refused: nothing to audit
	}
	require.Equal(t, http.StatusOK, actionCode)
	require.True(t, rw16Names(e, m.ID.String(), msgs),
		"the action ran on grant m with messages:write after the response started (a refusal) and no event names either (events: %s)",
		mwJSON(t, e.events()))
}

// TestReview16AdmissionAppliesStaleMoveOverCheckAnswer: while the
// admission Check of a GET is under way (before it reads the store), this
// Manager extends grant g to 50 minutes from now (move 1, kept in the
// moveLog), then another replica on the same store shortens g to a minute
// from now. The Check reads g with that newest end. Admission then sees a
// move since its Check began and applies the moveLog's end (50 min) over
// the Check's fresher answer (1 min): moveLog.since cannot tell whether the
// Check read the store before or after the move. Before 00e452f needs[0]
// kept the Check's answer. With the watcher's re-checks unanswered (a
// store slow to answer them), a RequireScope(messages:read) two minutes
// later (past g's real end) takes admittedEnd's shortcut on the stale end
// and runs its route with no store access; a Check would refuse it.
func TestReview16AdmissionAppliesStaleMoveOverCheckAnswer(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	g := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeRead, msgs}})
	replica, err := sa.NewManager(store, sa.WithNow(e.clock.Now), sa.WithErrorHandler(e.errs.handle))
	require.NoError(t, err)
	var realEnd time.Time
	before := func() {
		_, err := e.m.Extend(context.Background(), g.ID, e.clock.Now().Add(50*time.Minute), mwCustomer)
		require.NoError(t, err)
		ng, err := replica.Extend(context.Background(), g.ID, e.clock.Now().Add(time.Minute), mwCustomer)
		require.NoError(t, err)
		realEnd = ng.ExpiresAt
		store.slowWatch.Store(int64(time.Hour)) // re-checks: no answer by their deadline
	}
	store.beforeAdmit.Store(&before)
	route := &mwOK{}
	var code int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.False(t, realEnd.IsZero(), "both Extends ran inside the admission Check")
		gr, ok := sa.GrantFromContext(r.Context())
		require.True(t, ok)
		require.True(t, gr.ExpiresAt.Equal(realEnd), "the admission Check read g's newest end")
		e.clock.Advance(2 * time.Minute) // g's real end has passed (Manager clock)
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(route).ServeHTTP(rec, r)
		code = rec.Code
	}), sa.WithPollInterval(100*time.Millisecond))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Zero(t, route.calls.Load(), "RequireScope ran its route on grant g past its end: admission replaced the end its Check read by an older move of this Manager")
	require.Equal(t, http.StatusForbidden, code)
}
