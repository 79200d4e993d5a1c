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

// Regression tests of the thirteenth review round: commits 25a5bd8,
// 111e392 and bbaacd9 to the middleware's watcher (prefix TestReview13).
// They use mwStore's slowWatch (a store slow only for the watcher's
// Checks) and after hook (right after a Check read its grant), rw12BigTenant (260 grants of
// bigco: their RevokeTenant overflows the end log) and mwWaitEnd.

// rw13Revoke returns a hook that has this Manager revoke grant id and then
// bigco's 260 grants: the request's grant ended, and the end log (256)
// overflowed after it.
func rw13Revoke(t *testing.T, e *mwEnv, id sa.Grant) func() {
	return func() {
		_, err := e.m.Revoke(context.Background(), id.ID, mwCustomer, "access no longer needed")
		require.NoError(t, err)
		_, err = e.m.RevokeTenant(context.Background(), "bigco", mwCustomer, "contract ended")
		require.NoError(t, err)
	}
}

// TestReview13OverflowHidesRevocationAtAdmission: while the admission
// Check answers with grant g, this Manager revokes g (and 260 grants of
// bigco). The listener ran before the watcher knew the request, so only
// serveSupport's noteEnded can mark it; since 111e392 an overflowed log
// makes that grantMayHaveEnded — no grantGone — so the re-check is not
// urgent: with a store that stopped answering it waits the poll's time
// (here 1 s), then unanswered retries at each tick until the staleness
// bound, max(3 intervals, 5 s) = 3 minutes here. WithPollInterval's doc
// promises that a request whose grant was revoked by the Manager waits at
// most 100 ms for the store before it ends (as it does without the
// overflow: rw12BigTenant with 200 grants passes this test).
func TestReview13OverflowHidesRevocationAtAdmission(t *testing.T) {
	e := newMWEnv(t)
	store := e.store
	g := e.grant(sa.GrantInput{Duration: sa.Day})
	rw12BigTenant(e)
	store.slowWatch.Store(int64(time.Hour)) // the watcher's Checks get no answer
	revoke := rw13Revoke(t, e, g)
	store.after.Store(&revoke) // inside the admission Check
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cause = mwWaitEnd(r, 600*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request ran on (600 ms and more) after this Manager revoked its only grant")
	require.Contains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked)
}

// TestReview13OverflowHidesRevocationInRequireScope: the need was set
// after the listener ran. RequireScope's Check finds grant m (the only
// one with messages:read); right after, this Manager revokes m and 260
// grants of bigco. The listener's grantEnded(m) finds no need using m yet
// (setNeed comes after the Check) and marks nothing; establish sees an
// overflowed log, runs the route on m anyway, and noteEnded now calls
// grantMayHaveEnded: no grantGone, so the watcher's re-check is a plain
// poll's. With a store that stopped answering, the request keeps the
// messages:read scope of a grant this Manager revoked for the poll's time
// (1 s) and then up to max(3 intervals, 5 s) — instead of the documented
// 100 ms (before 111e392 it was marked by grantEnded and ended in 100 ms).
// (Refusing the route, as establish does when the log can tell, passes
// too.)
func TestReview13OverflowHidesRevocationInRequireScope(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: sa.Day}) // read: admits the request
	mg := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	rw12BigTenant(e)
	store.slowWatch.Store(int64(time.Hour)) // the watcher's Checks get no answer
	route := &mwOK{}
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoke := rw13Revoke(t, e, mg)
		store.after.Store(&revoke) // inside RequireScope's Check
		sa.RequireScope(msgs)(route).ServeHTTP(httptest.NewRecorder(), r)
		cause = mwWaitEnd(r, 600*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	if route.calls.Load() == 0 {
		return // refused: m not used at all (an end log that can tell)
	}
	require.ErrorIs(t, cause, sa.ErrScopeNotGranted, "the request kept messages:read (600 ms and more) after this Manager revoked the only grant allowing it")
}
