package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReview25ExpiredLoginSessionsAreDropped: sessionStore drops an
// expired session only when its own ID is looked up again
// (loginByID/impersonationByID). A session whose cookie is never sent
// again (browser closed, cookie-less client, a script POSTing /login in a
// loop — the demo's login needs no credentials and CSRF protection lets
// requests without Origin/Sec-Fetch-Site through) stays in the map for
// ever, long after loginTTL: memory grows without bound with the number
// of sign-ins. Hosts copy this store.
func TestReview25ExpiredLoginSessionsAreDropped(t *testing.T) {
	e := newTestEnv(t)
	const n = 200
	for range n {
		r := e.newClient().post("/login", url.Values{"user": {aliceAdmin}})
		require.Equal(t, http.StatusOK, r.StatusCode)
	}
	e.clock.Advance(loginTTL + 1)
	// Every earlier session has expired; a new sign-in happens.
	c := e.login(aliceAdmin)
	require.Equal(t, http.StatusOK, c.get("/admin/support-access").StatusCode)

	e.app.sessions.mu.Lock()
	live := len(e.app.sessions.logins)
	e.app.sessions.mu.Unlock()
	require.LessOrEqual(t, live, 1, "%d login sessions past loginTTL are still kept in memory", live-1)
}
