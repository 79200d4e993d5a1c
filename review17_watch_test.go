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

// Regression tests of the seventeenth review round: commit 355fcab
// (audited set under st.mu in audit, set by a refusal that became the
// response; admission applies only an earlier moved end) — prefix
// TestReview17.

// TestReview17ScopeReusedWhileItsSupportScopeFailsEscapesAudit: a
// streaming page has written its first bytes (support.request recorded,
// without messages:read). Two panels behind RequireScope(messages:read)
// render in parallel into buffers. Panel A's establish finds grant m and
// calls setNeed before auditLateScope records its support.scope event; while
// that Record is under way, panel B's establish sees the need in
// usesScope and runs at once, with no event of its own. A's Record then
// fails: A is refused (503, access.denied for messages:read) and
// restoreNeed removes the need. Panel B ran on grant m with messages:read,
// and no support.request or support.scope event names m or the scope —
// the only event naming it says it was refused. usesScope trusts a need
// whose audit has not succeeded yet.
func TestReview17ScopeReusedWhileItsSupportScopeFailsEscapesAudit(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	panelA, panelB := &mwOK{}, &mwOK{}
	var codeA, codeB int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<page>")) // support.request recorded
		hold := store.gate(sa.EventSupportScope, true)
		done := make(chan struct{})
		go func() {
			defer close(done)
			rec := httptest.NewRecorder()
			sa.RequireScope(msgs)(panelA).ServeHTTP(rec, r)
			codeA = rec.Code
		}()
		<-hold.entered // A's support.scope is being recorded
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(panelB).ServeHTTP(rec, r)
		codeB = rec.Code
		close(hold.release) // A's support.scope fails
		<-done
	}))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Zero(t, panelA.calls.Load(), "panel A's support.scope failed: refused")
	require.Equal(t, http.StatusServiceUnavailable, codeA)
	if panelB.calls.Load() == 0 {
		return // refused too: nothing escaped
	}
	require.Equal(t, http.StatusOK, codeB)
	require.True(t, rw16Names(e, m.ID.String(), msgs),
		"panel B ran on grant m with messages:read and no support.request/support.scope event names either (events: %s)",
		mwJSON(t, e.events(sa.EventSupportRequest, sa.EventSupportScope, sa.EventAccessDenied)))
}

// TestReview17RequireScopeAppliesStaleMoveOverCheckAnswer: the fix of
// 355fcab at admission (a moved end applied only when earlier than the
// Check's answer) was not made in setNeed, which establish uses for a
// RequireScope Check. While the Check for messages:read is under way
// (before it reads the store), this Manager extends grant m to 50 minutes
// from now (recorded in st.movedEnd with a move number above the one read
// before the Check), then another replica shortens m to one minute from
// now. The Check reads m's newest end (1 min); setNeed replaces it by the
// older move's 50 min. With the watcher's re-checks unanswered (a store
// slow to answer them), a second RequireScope(messages:read) two minutes
// later — past m's real end — takes usesScope's shortcut on the stale end
// and runs its route with no store access; a Check would refuse it.
func TestReview17RequireScopeAppliesStaleMoveOverCheckAnswer(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: time.Hour}) // read: admits the page
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	replica, err := sa.NewManager(store, sa.WithNow(e.clock.Now), sa.WithErrorHandler(e.errs.handle))
	require.NoError(t, err)
	var realEnd time.Time
	before := func() {
		_, err := e.m.Extend(context.Background(), m.ID, e.clock.Now().Add(50*time.Minute), mwCustomer)
		require.NoError(t, err)
		ng, err := replica.Extend(context.Background(), m.ID, e.clock.Now().Add(time.Minute), mwCustomer)
		require.NoError(t, err)
		realEnd = ng.ExpiresAt
		store.slowWatch.Store(int64(time.Hour)) // re-checks: no answer by their deadline
	}
	first, second := &mwOK{}, &mwOK{}
	var code int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store.beforeAdmit.Store(&before) // the next Check: RequireScope's
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(first).ServeHTTP(rec, r)
		require.Equal(t, http.StatusOK, rec.Code, "m allowed messages:read until its real end")
		require.False(t, realEnd.IsZero(), "both Extends ran inside RequireScope's Check")
		e.clock.Advance(2 * time.Minute) // m's real end has passed (Manager clock)
		rec = httptest.NewRecorder()
		sa.RequireScope(msgs)(second).ServeHTTP(rec, r)
		code = rec.Code
	}), sa.WithPollInterval(100*time.Millisecond))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), first.calls.Load())
	require.Zero(t, second.calls.Load(),
		"RequireScope ran its route on grant m past its end (%s): setNeed replaced the end its Check read by an older move of this Manager", realEnd)
	require.Equal(t, http.StatusForbidden, code)
}

// TestReview17AuditorPanicRecoveredLetsResponseOutUnaudited: committedAs
// marks the response committed (and, since 355fcab, audit marks the
// request audited) before the support.request event is recorded. When the
// auditor panics there and the handler recovers — a page renderer that
// contains a failing part's panic and goes on with the next part — the
// writer is committed with no denial (blocked nil): the next write goes
// straight to support, and finish records nothing (committed). The
// response reached support and no support.request event exists, though
// Middleware promises the event is recorded before anything reaches the
// client (fail closed).
func TestReview17AuditorPanicRecoveredLetsResponseOutUnaudited(t *testing.T) {
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: time.Hour})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store.panicReq.Store(1)
		for _, part := range []string{"<header>", "<customer-secret>"} {
			func() {
				defer func() { _ = recover() }() // a failing part does not break the page
				_, _ = w.Write([]byte(part))
			}()
		}
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	if !strings.Contains(rec.Body.String(), "<customer-secret>") {
		return // refused: nothing escaped
	}
	require.NotEmpty(t, e.events(sa.EventSupportRequest),
		"the response (%q, %d) reached support with no support.request event", rec.Body.String(), rec.Code)
}
