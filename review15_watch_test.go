package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Regression tests of the fifteenth review round: the middleware end to end
// at 9a36db2 (prefix TestReview15).

// rw15ShortenDuringAdmission sets up rw12's store so that the admission
// Check of the next request reads grant g with its old end and, before it
// answers, the customer shortens g (Extend on this Manager) to a minute
// from now; from then on the watcher's re-checks (the Checks with a
// deadline) get no answer before their deadline (a store that stopped
// answering). It returns a function giving g's new end.
func rw15ShortenDuringAdmission(t *testing.T, e *mwEnv, store *mwStore, g sa.Grant, then func(newEnd time.Time)) func() time.Time {
	var newEnd time.Time
	extend := func() {
		ng, err := e.m.Extend(context.Background(), g.ID, e.clock.Now().Add(time.Minute), mwCustomer)
		require.NoError(t, err)
		newEnd = ng.ExpiresAt
		store.slowWatch.Store(int64(time.Hour)) // re-checks: no answer by their deadline
		if then != nil {
			then(newEnd)
		}
	}
	store.after.Store(&extend)
	return func() time.Time { return newEnd }
}

// TestReview15ShortenedDuringAdmissionRequireScopeRunsPastEnd: grant g
// (read, messages:read) admits a GET; while the admission Check answers,
// the customer shortens g on this Manager. The listener cannot record the
// move for the request (it is not watched yet); admission only sees that
// *some* end moved and flags a plain re-check, and keeps g's old end in
// needs[0]. With the re-check unanswered (a store that stopped answering
// the watcher), a RequireScope(messages:read) after g's new end passed by
// the Manager's clock takes admittedEnd's shortcut on the stale end and
// runs its route with no store access — on a grant this Manager knows has
// ended. (A RequireScope Check would refuse: Check finds no active grant.)
func TestReview15ShortenedDuringAdmissionRequireScopeRunsPastEnd(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	g := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeRead, msgs}})
	newEnd := rw15ShortenDuringAdmission(t, e, store, g, nil)
	route := &mwOK{}
	var code int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.False(t, newEnd().IsZero(), "the Extend ran inside the admission Check")
		e.clock.Advance(2 * time.Minute) // g's new end has passed (Manager clock)
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(route).ServeHTTP(rec, r)
		code = rec.Code
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Zero(t, route.calls.Load(), "RequireScope ran its route on grant g after its end (moved by Extend on this Manager during admission)")
	require.Equal(t, http.StatusForbidden, code)
}

// TestReview15ShortenedDuringAdmissionOutlivesEnd: the same Extend during
// the admission Check, with g's new end 50 ms away in real time. The
// request's expiry timer is armed at g's old end, so nothing marks the
// re-check urgent: with the store not answering the watcher, the request
// runs on until the staleness bound (max(3d, 5 s) = 5 s), not "at once"
// at ExpiresAt plus at most a poll under way (250 ms here) and 100 ms as
// WithPollInterval's doc promises for ends the Manager knows.
func TestReview15ShortenedDuringAdmissionOutlivesEnd(t *testing.T) {
	e := newMWEnv(t)
	store := e.store
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	rw15ShortenDuringAdmission(t, e, store, g, func(newEnd time.Time) {
		e.clock.setUntil(newEnd, 50*time.Millisecond) // before the request is armed
	})
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cause = mwWaitEnd(r, 900*time.Millisecond)
	}), sa.WithPollInterval(100*time.Millisecond))
	mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "still running 850 ms after its grant's end (moved during admission)")
	require.ErrorContains(t, cause, "expired")
}

// TestReview15RequireScopeAfterCommitNotAudited: a streaming page (the
// response committed by its first write) then renders a panel behind
// RequireScope(messages:read) into the same response. Only grant m allows
// messages:read, so establish runs the panel on m — but the request's one
// support.request event was recorded at the commit, before: it lists
// neither the scope nor m (elevated_grant_ids), and no other event of the
// request does. The messages support read are in no audit record naming
// the grant that allowed them, although RequireScope's doc says "the
// support.request event lists the other grant in elevated_grant_ids" and
// Middleware's that a nested request writing to the outer writer is
// covered by "the outer support.request event ..., listing the scopes
// added" (the same holds for a DELETE dispatched inside a GET after its
// first byte: ScopeWrite is established and never audited).
func TestReview15RequireScopeAfterCommitNotAudited(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	panel := sa.RequireScope(msgs)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<messages>secret</messages>"))
	}))
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<page>"))
		w.(http.Flusher).Flush()
		panel.ServeHTTP(w, r)
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, "<page><messages>secret</messages>", rec.Body.String(), "the panel ran on grant m")
	named := false
	for _, ev := range e.events(sa.EventSupportRequest, sa.EventSupportChange, sa.EventSupportScope) {
		if ev.GrantID == m.ID || strings.Contains(ev.Attrs[sa.AttrElevatedGrantIDs], m.ID.String()) {
			named = true
		}
	}
	require.True(t, named, "no event of the request names grant m, which allowed the panel support was sent (events: %s)",
		mwJSON(t, e.events(sa.EventSupportRequest)))
	// The fix: a support.scope event for the scope taken after the
	// response started, naming its grant; and none when a scope is taken
	// before (the support.request event lists it).
	scopes := e.events(sa.EventSupportScope)
	require.Len(t, scopes, 1)
	require.Equal(t, m.ID, scopes[0].GrantID)
	require.Equal(t, string(msgs), scopes[0].Attrs[sa.AttrScope])
	require.Equal(t, "/inbox", scopes[0].Attrs[sa.AttrPath])
}

// A scope taken after the response started cannot be used when its
// support.scope event cannot be recorded (fail closed, as for the request).
func TestLateScopeAuditFailureRefusesTheScope(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour})
	e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	panel := &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<page>"))
		e.store.failRecord.Store(true)
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(panel).ServeHTTP(rec, r)
		e.store.failRecord.Store(false)
		_, _ = w.Write([]byte(strconv.Itoa(rec.Code)))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Zero(t, panel.calls.Load(), "the panel ran without its scope being audited")
	require.Equal(t, "<page>503", rec.Body.String())
	require.Empty(t, e.events(sa.EventSupportScope))
}

// TestReview15PanicInFinishLeaksWatchedRequest: a handler returns without
// writing, so the middleware commits its response in finish (the deferred
// function), and the auditor panics there. finish then never reaches
// watch.leave nor st.cancel: the request stays in the watcher's active set
// for good — its timer starts the watcher goroutine, which never stops
// (active is never empty again) and re-checks the request that is gone
// every half interval, one store call each, for as long as its grant
// lasts — and its context is never cancelled. A panic in the handler
// itself is handled (finish runs with completed false); one in what finish
// calls (the auditor, a WithDeniedHandler replacing an ended response,
// the error handler) is not.
func TestReview15PanicInFinishLeaksWatchedRequest(t *testing.T) {
	e := newMWEnv(t)
	store := e.store
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	t.Cleanup(func() { // ends the re-checks of a leaked request
		store.panicReq.Store(0)
		_, _ = e.m.Revoke(context.Background(), g.ID, mwCustomer, "")
	})
	var reqCtx context.Context
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqCtx = r.Context()
		store.panicReq.Store(-1) // the handler returns; finish commits
	}), sa.WithPollInterval(20*time.Millisecond))
	func() {
		defer func() { require.NotNil(t, recover(), "the auditor's panic propagates") }()
		mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	}()
	store.panicReq.Store(0)
	finds := store.finds.Load()
	require.Never(t, func() bool { return store.finds.Load() > finds }, 300*time.Millisecond, 10*time.Millisecond,
		"the watcher goes on re-checking a request that has returned (it never left the active set)")
	require.Error(t, reqCtx.Err(), "the request's context is never cancelled")
}
