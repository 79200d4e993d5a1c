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

// Regression tests of the nineteenth review round: commit ad76bc2 (needs
// numbered by a token, the scopes taken before a refusal became the
// response audited by refuse, a bare 503 on an auditor panic) — prefix
// TestReview19.

// TestReview19FailedScopeEventAfterRefusalLeavesScopeUsable: an action
// behind RequireScope(messages:write), rendered into a recorder, runs on
// grant m before the response started (no event yet: "listed in the
// support.request event, still to come"). A part behind
// RequireScope(billing:read) is then refused on the middleware's writer:
// the refusal becomes the response and refuse records a support.scope
// event for messages:write instead. That Record fails: refuse only hands
// the error to the error handler and leaves the need in place, not
// pending. A second action behind RequireScope(messages:write) then takes
// usesScope's shortcut and runs on m — relied on with no event naming m
// or messages:write. establish itself fails closed when a support.scope
// event cannot be recorded (restoreNeed, 503); refuse's path does not.
func TestReview19FailedScopeEventAfterRefusalLeavesScopeUsable(t *testing.T) {
	const billing, msgs sa.Scope = "billing:read", "messages:write"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	action, again, summary := &mwOK{}, &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(action).ServeHTTP(httptest.NewRecorder(), r) // runs on m, no event yet
		fail := store.gate(sa.EventSupportScope, true)                     // the next support.scope Record fails at once
		close(fail.release)
		sa.RequireScope(billing)(summary).ServeHTTP(w, r) // refused: the response; m's support.scope fails
		sa.RequireScope(msgs)(again).ServeHTTP(httptest.NewRecorder(), r)
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Zero(t, summary.calls.Load())
	require.Equal(t, int64(1), action.calls.Load())
	require.False(t, rw16Names(e, m.ID.String(), msgs), "precondition: m's support.scope event failed (events: %s)", mwJSON(t, e.events()))
	require.Zero(t, again.calls.Load(),
		"a second messages:write action ran on grant m after m's support.scope event failed to be recorded: no event names m or messages:write (events: %s)",
		mwJSON(t, e.events()))
}

// TestReview19RefusalForgetsGrantReplacedInNeeds: an action behind
// RequireScope(messages:write) runs on grant m1 before the response
// started (markUsed(m1); no event yet). m1 is revoked on this Manager; a
// second action behind the same scope Checks again, finds m2 and runs on
// it (setNeed replaces m1 by m2 in needs). A part behind
// RequireScope(billing:read) is then refused on the middleware's writer:
// the refusal becomes the response. recordedElsewhere returns the needs
// only — messages:write on m2 — not st.used, which the support.request
// event would have named in elevated_grant_ids ("the event names them
// even when a later check replaced them in needs"). The first action ran
// with support's access on m1 and no support event names m1.
func TestReview19RefusalForgetsGrantReplacedInNeeds(t *testing.T) {
	const billing, msgs sa.Scope = "billing:read", "messages:write"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	// m1 ends last, so the first Check picks it (the one expiring last).
	m1 := e.grant(sa.GrantInput{Duration: 2 * time.Hour, Scopes: []sa.Scope{msgs}})
	m2 := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	first, second, summary := &mwOK{}, &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(first).ServeHTTP(httptest.NewRecorder(), r)
		_, err := e.m.Revoke(context.Background(), m1.ID, mwCustomer, "done")
		require.NoError(t, err)
		sa.RequireScope(msgs)(second).ServeHTTP(httptest.NewRecorder(), r)
		sa.RequireScope(billing)(summary).ServeHTTP(w, r) // refused: the response
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, int64(1), first.calls.Load(), "the first action ran on m1")
	require.Equal(t, int64(1), second.calls.Load(), "the second action ran on m2")
	require.True(t, rw16Names(e, m2.ID.String(), ""), "m2 is named (support.scope)")
	found := false
	for _, ev := range e.events(sa.EventSupportRequest, sa.EventSupportScope, sa.EventAccessDenied) {
		if ev.GrantID == m1.ID || strings.Contains(ev.Attrs[sa.AttrElevatedGrantIDs], m1.ID.String()) {
			found = true
		}
	}
	require.True(t, found,
		"the first action ran on grant m1 with messages:write and no support event names m1 (events: %s)",
		mwJSON(t, e.events(sa.EventSupportRequest, sa.EventSupportScope, sa.EventAccessDenied)))
}

// TestReview19RefusalForgetsGrantThatTookOverOwnScope: the grant that
// admitted the request (r1, read) is revoked on this Manager while the
// handler runs; another read grant r2 of the tenant keeps the request
// going, and a part behind RequireScope(read) runs on r2 (setNeed, or the
// watcher's re-check, puts r2 in needs[0]). The support.request event
// would name r2 in elevated_grant_ids (needs[0].id differs from the
// admitting grant). When a RequireScope(billing:read) refusal then becomes
// the response, recordedElsewhere skips needs[0] ("those taken beyond the
// request's own scope"): nothing names r2, and the access.denied names
// the revoked r1 only.
func TestReview19RefusalForgetsGrantThatTookOverOwnScope(t *testing.T) {
	const billing sa.Scope = "billing:read"
	e := newMWEnv(t)
	g1 := e.grant(sa.GrantInput{Duration: time.Hour})
	g2 := e.grant(sa.GrantInput{Duration: time.Hour})
	var r1, r2 sa.Grant // r1: the admitting grant (whichever the store found)
	panel, summary := &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := sa.GrantFromContext(r.Context())
		require.True(t, ok)
		r1, r2 = g1, g2
		if got.ID == g2.ID {
			r1, r2 = g2, g1
		}
		_, err := e.m.Revoke(context.Background(), r1.ID, mwCustomer, "done")
		require.NoError(t, err)
		sa.RequireScope(sa.ScopeRead)(panel).ServeHTTP(httptest.NewRecorder(), r) // runs on r2
		sa.RequireScope(billing)(summary).ServeHTTP(w, r)                         // refused: the response
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, int64(1), panel.calls.Load(), "the panel ran on r2 after r1 was revoked")
	found := false
	for _, ev := range e.events(sa.EventSupportRequest, sa.EventSupportScope, sa.EventAccessDenied) {
		if ev.GrantID == r2.ID || strings.Contains(ev.Attrs[sa.AttrElevatedGrantIDs], r2.ID.String()) {
			found = true
		}
	}
	require.True(t, found,
		"the request ran on grant r2 after its own grant r1 was revoked, and no support event names r2 (events: %s)",
		mwJSON(t, e.events(sa.EventSupportRequest, sa.EventSupportScope, sa.EventAccessDenied)))
}
