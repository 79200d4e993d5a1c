package supportaccess_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Regression tests of the twentieth review round: commits ad76bc2 and
// 8dcbfae (a refusal that becomes the response audits the scopes and
// grants other parts of the request ran on) — prefix TestReview20.

// rw20ScopeEvents returns the support.request, support.change and
// support.scope events whose scope list names s.
func rw20ScopeEvents(e *mwEnv, s sa.Scope) []sa.Event {
	var out []sa.Event
	for _, ev := range e.events(sa.EventSupportRequest, sa.EventSupportChange, sa.EventSupportScope) {
		if strings.Contains(","+ev.Attrs[sa.AttrScope]+",", ","+string(s)+",") {
			out = append(out, ev)
		}
	}
	return out
}

// TestReview20RefusalDropsExtraScopeOfAdmittingGrant (regression of
// 8dcbfae): the admitting grant allows read and messages:write. An action
// behind RequireScope(messages:write), rendered into a recorder, runs on
// it before the response started (admittedEnd path: setNeed on the
// admitting grant, no event yet — "listed in the support.request event,
// still to come"). A part behind RequireScope(billing:read) is then
// refused on the middleware's writer: the refusal becomes the response.
// ad76bc2's recordedElsewhere returned needs[1:], messages:write among
// them; 8dcbfae's add() skips every need whose grant is the admitting one
// (n.id != st.grant.ID), whatever its scope. The support.request event
// would have listed messages:write in its scopes; now no event names it —
// only access.denied for billing:read.
func TestReview20RefusalDropsExtraScopeOfAdmittingGrant(t *testing.T) {
	const billing, msgs sa.Scope = "billing:read", "messages:write"
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeRead, msgs}})
	summary, action := &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(action).ServeHTTP(rec, r)   // allowed: runs on g with messages:write
		sa.RequireScope(billing)(summary).ServeHTTP(w, r) // refused: the response
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), action.calls.Load(), "the action ran with messages:write")
	require.Zero(t, summary.calls.Load())
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, e.events(sa.EventSupportRequest), "precondition: the refusal is the response")
	require.Len(t, e.events(sa.EventAccessDenied), 1)
	require.NotEmpty(t, rw20ScopeEvents(e, msgs),
		"the action ran on grant %s with messages:write and no event names messages:write (events: %s)",
		g.ID, mwJSON(t, e.events()))
}

// TestReview20RefusalHidesWriteOfRequestItself: a POST is admitted with
// write on grant g; the handler performs its change (write access used)
// and then renders a part behind RequireScope(billing:read) on the
// middleware's writer, which is refused and becomes the response. No
// support.request is recorded, and recordedElsewhere skips needs[0] when
// it is on the admitting grant ("needs[0] too, when another grant took
// over"), so the only event is access.denied (scope billing:read): the
// trail says support's POST was denied, and no event says write was used
// though the change was made. A support.request event would have listed
// "write".
func TestReview20RefusalHidesWriteOfRequestItself(t *testing.T) {
	const billing sa.Scope = "billing:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}})
	var changed atomic.Bool
	summary := &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		changed.Store(true)                               // the message is sent: write used
		sa.RequireScope(billing)(summary).ServeHTTP(w, r) // refused: the response
	}))
	rec := mwDo(h, mwReq(http.MethodPost, "/messages", "generic"))
	require.True(t, changed.Load())
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, e.events(sa.EventSupportRequest), "precondition: the refusal is the response")
	require.NotEmpty(t, rw20ScopeEvents(e, sa.ScopeWrite),
		"the POST ran with write on the admitting grant and no support event names write: only access.denied of billing:read (events: %s)",
		mwJSON(t, e.events()))
}
