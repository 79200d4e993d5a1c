package main

// Review 136: adversarial tests of the webapp's new support-session rule
// (access.go markAdmitted and notified, sessions.go admitted, continuedBy,
// grantEnd and impersonation.CoveredUntil). The README promises: "A
// support session ends when no grant covers it any more ... so a later
// grant starts new sessions instead of reviving old ones. The session
// remembers until when its grants covered it: a request admitted on a
// grant that started after that ... ends the session too." Each test
// names what it attacks: a session kept wrongly is the revival the rule
// was meant to stop; a session ended wrongly is a denial of service for
// support. A passing test is an attack that failed.

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// rv136Alice is alice as the Manager's actor (what the admin pages pass).
func rv136Alice(t *testing.T, e *testEnv) sa.Actor {
	t.Helper()
	u, ok := e.app.dir.user(aliceAdmin)
	require.True(t, ok)
	return u.actor()
}

// rv136Grant creates a grant through alice's admin form and returns it.
func rv136Grant(alice *client, duration time.Duration, startsAt, reason string) sa.Grant {
	alice.t.Helper()
	f := url.Values{"duration": {duration.String()}, "reason": {reason}}
	if startsAt != "" {
		f.Set("starts_at", startsAt)
	}
	return alice.grant(f)
}

// rv136Impersonate signs sam in to acme as support and requires the
// landing page to be served (the session is admitted).
func rv136Impersonate(t *testing.T, e *testEnv) *client {
	t.Helper()
	sam := e.login(samEngineer)
	r := sam.impersonate(acmeTenantID)
	require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
	require.NotEmpty(t, sam.cookie(impersonationCookie))
	return sam
}

// rv136Resumed reports whether sam's request r was served in the support
// session the first support.request of the trail belongs to.
func rv136Resumed(t *testing.T, e *testEnv, r resp) bool {
	t.Helper()
	return review131SessionResumed(t, e, r)
}

// TestReview136RevokedLongGrantDoesNotKeepCoverage attacks the promise
// that a later grant does not revive a session after a gap. Sam's session
// was admitted on G1 (7 days), so CoveredUntil is G1's ExpiresAt. Alice
// revokes G1 an hour later; the Notifier keeps the session, rightly, since
// G0 (24 hours) still covers sam — but CoveredUntil keeps G1's original
// end. G0 expires; nobody covers sam for an hour; alice grants G3 for a
// new ticket before any Sweep; sam's next request is admitted on G3,
// whose end lies before the stale CoveredUntil, so markAdmitted does not
// even look: the old session resumes. Must fail: between G0's end and G3's
// start no grant covered the session.
func TestReview136RevokedLongGrantDoesNotKeepCoverage(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	rv136Grant(alice, sa.Day, "", "ticket 0")         // G0
	g1 := rv136Grant(alice, 7*sa.Day, "", "ticket 1") // G1
	sam := rv136Impersonate(t, e)                     // admitted on G1 (it ends last)

	e.clock.Advance(time.Hour)
	r := alice.post("/admin/support-access/grants/"+g1.ID.String()+"/revoke", nil)
	require.Contains(t, r.Body, "Support access revoked")
	require.Equal(t, http.StatusOK, sam.get("/app/").StatusCode, "G0 still covers the session")

	e.clock.Advance(24 * time.Hour) // G0 expired an hour ago, not swept
	rv136Grant(alice, sa.Day, "", "ticket 3")
	r = sam.get("/app/settings")
	require.False(t, rv136Resumed(t, e, r), "the session resumed under a grant given after an hour without any")
}

// TestReview136ShortenedGrantDoesNotKeepCoverage attacks the same promise
// through Extend, which "may also shorten a grant" (a host that offers
// "end in an hour" calls it): the grant's end moves earlier, the Notifier
// is told grant.extended (which notified ignores) and CoveredUntil keeps
// the old end. After the shortened grant ended, a new grant before the
// next Sweep revives the session. Must fail.
func TestReview136ShortenedGrantDoesNotKeepCoverage(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g1 := rv136Grant(alice, 7*sa.Day, "", "ticket 1")
	sam := rv136Impersonate(t, e)

	_, err := e.app.m.Extend(context.Background(), g1.ID, e.clock.Now().Add(time.Hour), rv136Alice(t, e))
	require.NoError(t, err)
	e.clock.Advance(2 * time.Hour) // the shortened grant ended an hour ago, not swept
	rv136Grant(alice, sa.Day, "", "ticket 2")
	r := sam.get("/app/settings")
	require.False(t, rv136Resumed(t, e, r), "the session resumed under a grant given after an hour without any")
}

// TestReview136ContinuousCoverageByAnotherGrantKeepsTheSession attacks
// the rule from the other side (denial of service): sam's session was
// admitted on G1 (24 hours). An hour later alice grants Ga (3 days, from
// now) and schedules Gb (from G1's end plus an hour, 7 days) for another
// ticket. Ga covers sam without a gap. After Gb started, the middleware
// admits sam's request on Gb (it ends last), whose start lies after
// CoveredUntil, and markAdmitted ends the session although a grant
// covered it all along. Must fail: the session is continued.
func TestReview136ContinuousCoverageByAnotherGrantKeepsTheSession(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	rv136Grant(alice, sa.Day, "", "ticket 1")
	sam := rv136Impersonate(t, e)

	e.clock.Advance(time.Hour)
	rv136Grant(alice, 3*sa.Day, "", "ticket a")
	rv136Grant(alice, 7*sa.Day, t0.Add(25*time.Hour).Format(formTimeLayout), "ticket b")
	e.clock.Advance(25 * time.Hour) // G1 ended, Ga covers, Gb started
	r := sam.get("/app/settings")
	require.Equal(t, http.StatusOK, r.StatusCode, "the session, covered without a gap, was ended: %s", r.Body)
	require.True(t, rv136Resumed(t, e, r))
}

// TestReview136ScheduledGrantAfterAGapEndsTheSession attacks the rule's
// main case with a scheduled grant: G1 ends, a grant scheduled (before
// G1 ended) to start an hour later is active when sam comes back, and no
// Sweep ran. Must fail: the session ends, and a new one works.
func TestReview136ScheduledGrantAfterAGapEndsTheSession(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	rv136Grant(alice, sa.Day, "", "ticket 1")
	sam := rv136Impersonate(t, e)
	rv136Grant(alice, sa.Day, t0.Add(25*time.Hour).Format(formTimeLayout), "ticket 2")

	e.clock.Advance(26 * time.Hour)
	r := sam.get("/app/settings")
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.False(t, rv136Resumed(t, e, r))
	require.Empty(t, sam.cookie(impersonationCookie), "the cookie is cleared")
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode, "a new session works")
}

// TestReview136AdjacentScheduledGrantContinuesTheSession attacks the rule
// at its boundary (denial of service): a grant scheduled to start at the
// very microsecond G1 ends leaves no gap ([StartsAt, ExpiresAt) windows),
// so the session goes on.
func TestReview136AdjacentScheduledGrantContinuesTheSession(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g1 := rv136Grant(alice, sa.Day, "", "ticket 1")
	sam := rv136Impersonate(t, e)
	g2 := rv136Grant(alice, 3*sa.Day, g1.ExpiresAt.Format(formTimeLayout), "ticket 2")
	require.True(t, g2.StartsAt.Equal(g1.ExpiresAt))

	e.clock.Advance(25 * time.Hour)
	r := sam.get("/app/settings")
	require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
	require.True(t, rv136Resumed(t, e, r))
}

// TestReview136ExtendedOrOverlappingGrantContinuesTheSession attacks the
// rule for denial of service on the ordinary paths: the admitting grant
// extended before its end, and a grant given while the first still ran,
// both continue the session after the first grant's original end.
func TestReview136ExtendedOrOverlappingGrantContinuesTheSession(t *testing.T) {
	t.Run("extended", func(t *testing.T) {
		e := newTestEnv(t)
		alice := e.login(aliceAdmin)
		g1 := rv136Grant(alice, sa.Day, "", "ticket 1")
		sam := rv136Impersonate(t, e)
		e.clock.Advance(12 * time.Hour)
		_, err := e.app.m.Extend(context.Background(), g1.ID, e.clock.Now().Add(3*sa.Day), rv136Alice(t, e))
		require.NoError(t, err)
		e.clock.Advance(20 * time.Hour)
		r := sam.get("/app/settings")
		require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
		require.True(t, rv136Resumed(t, e, r))
	})
	t.Run("overlapping", func(t *testing.T) {
		e := newTestEnv(t)
		alice := e.login(aliceAdmin)
		rv136Grant(alice, sa.Day, "", "ticket 1")
		sam := rv136Impersonate(t, e)
		e.clock.Advance(12 * time.Hour)
		rv136Grant(alice, 3*sa.Day, "", "ticket 2")
		e.clock.Advance(20 * time.Hour)
		r := sam.get("/app/settings")
		require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
		require.True(t, rv136Resumed(t, e, r))
		// A Sweep that records G1's expiry now keeps the session too.
		_, err := e.app.m.Sweep(context.Background())
		require.NoError(t, err)
		require.Len(t, e.app.sessions.impersonationsOf(acmeTenantID), 1)
	})
}

// TestReview136SweepAfterTheNewGrantEndsTheSession attacks the Notifier
// half of the rule: G1 expired, G2 was granted, and only then does a
// Sweep record G1's expiry. The Notifier's Check finds G2 active; the
// session must end anyway (G2 does not continue it), before its next
// request — also one that does not pass through the middleware.
func TestReview136SweepAfterTheNewGrantEndsTheSession(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	rv136Grant(alice, sa.Day, "", "ticket 1")
	sam := rv136Impersonate(t, e)
	e.clock.Advance(25 * time.Hour)
	rv136Grant(alice, sa.Day, "", "ticket 2")
	_, err := e.app.m.Sweep(context.Background())
	require.NoError(t, err)
	require.Empty(t, e.app.sessions.impersonationsOf(acmeTenantID), "the Notifier ended the session")
	r := sam.get("/app/settings")
	require.False(t, rv136Resumed(t, e, r))
}

// TestReview136RevokeThenGrantInTheSameMicrosecond attacks the rule when
// alice revokes G1 and grants G2 without the clock moving: G2 starts at
// the microsecond G1 was revoked, before G1's ExpiresAt, so continuedBy
// alone would continue the session; the Notifier of the revocation must
// have ended it first.
func TestReview136RevokeThenGrantInTheSameMicrosecond(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g1 := rv136Grant(alice, sa.Day, "", "ticket 1")
	sam := rv136Impersonate(t, e)
	r := alice.post("/admin/support-access/grants/"+g1.ID.String()+"/revoke", nil)
	require.Contains(t, r.Body, "Support access revoked")
	rv136Grant(alice, sa.Day, "", "ticket 2")
	r = sam.get("/app/settings")
	require.False(t, rv136Resumed(t, e, r), "a session of a revoked grant resumed")
}

// TestReview136EverySessionOfThePrincipalEnds attacks the rule with
// several sessions: sam signed in twice (two browsers), each with a
// support session admitted on G1. After G1 expired and G2 was granted,
// neither resumes, whichever comes first.
func TestReview136EverySessionOfThePrincipalEnds(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	rv136Grant(alice, sa.Day, "", "ticket 1")
	a := rv136Impersonate(t, e)
	b := rv136Impersonate(t, e)
	e.clock.Advance(25 * time.Hour)
	rv136Grant(alice, sa.Day, "", "ticket 2")
	for _, c := range []*client{a, b} {
		r := c.get("/app/settings")
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.Contains(t, r.Body, "Support access ended")
	}
	require.Empty(t, e.app.sessions.impersonationsOf(acmeTenantID))
}

// TestReview136GrantForAnotherPrincipalDoesNotContinue attacks the rule
// with a grant that does not cover sam: sam's named grant expires and the
// host grants access to another engineer only (through the library: the
// demo's form names only sam). Sam's session does not go on, and the
// Notifier of the other grant's revocation does not end a session it does
// not concern (sam's own grant still covers it).
func TestReview136GrantForAnotherPrincipalDoesNotContinue(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{"duration": {sa.Day.String()}, "reason": {"sam"}, "grantee": {samEngineer}})
	sam := rv136Impersonate(t, e)
	otherGrant := func(reason string) sa.Grant {
		g, err := e.app.m.Grant(context.Background(), sa.GrantInput{
			TenantID: acmeTenantID, Grantees: []string{"olga@vendor.example"}, Duration: 3 * sa.Day,
			Reason: reason, By: rv136Alice(t, e),
		})
		require.NoError(t, err)
		require.False(t, g.Covers(samEngineer))
		return g
	}
	other := otherGrant("olga")
	r := alice.post("/admin/support-access/grants/"+other.ID.String()+"/revoke", nil)
	require.Contains(t, r.Body, "Support access revoked")
	require.Len(t, e.app.sessions.impersonationsOf(acmeTenantID), 1, "sam's session, covered by its own grant, goes on")

	e.clock.Advance(25 * time.Hour)
	otherGrant("olga again")
	r = sam.get("/app/settings")
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.False(t, rv136Resumed(t, e, r))
}
