package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestCrossOriginPostsAreRefused(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	g := admin.grant(url.Values{"scope_write": {"1"}})
	support := e.login(samEngineer)
	support.impersonate(acmeTenantID)

	for _, tc := range []struct {
		name   string
		c      *client
		path   string
		form   url.Values
		header []string
	}{
		{"grant_sec_fetch_site", admin, "/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"grant_origin", admin, "/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}}, []string{"Origin", "https://evil.example"}},
		{"revoke", admin, "/admin/support-access/grants/" + g.ID.String() + "/revoke", nil, []string{"Sec-Fetch-Site", "cross-site"}},
		{"settings", support, "/app/settings", url.Values{"company_name": {"Evil"}, "theme": {"dark"}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"impersonate", support, "/support/impersonate", url.Values{"tenant": {"globex"}}, []string{"Sec-Fetch-Site", "same-site"}},
		{"login", e.newClient(), "/login", url.Values{"user": {aliceAdmin}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"logout", admin, "/logout", nil, []string{"Sec-Fetch-Site", "cross-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.post(tc.path, tc.form, tc.header...)
			require.Equal(t, http.StatusForbidden, r.StatusCode)
			require.Contains(t, r.Body, "cross-site request forgery protection")
		})
	}
	// Nothing happened.
	gs := e.grants(t)
	require.Len(t, gs, 1)
	require.Equal(t, sa.StatusActive, gs[0].Status(e.clock.Now()))
	require.Equal(t, "Acme Corporation", e.app.settings.get(acmeTenantID).CompanyName)
	require.Equal(t, http.StatusOK, admin.get("/admin/support-access").StatusCode, "still signed in")

	t.Run("same_origin_browser_post_is_accepted", func(t *testing.T) {
		r := admin.post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}}, "Sec-Fetch-Site", "same-origin")
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, "Support access granted")
	})
}

func TestSecurityHeaders(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range []string{"/login", "/admin/support-access"} {
		r := e.login(aliceAdmin).get(p)
		require.Contains(t, r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
		require.Contains(t, r.Header.Get("Content-Security-Policy"), "script-src 'none'")
		require.Equal(t, "DENY", r.Header.Get("X-Frame-Options"))
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"))
		require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	}
}

func TestNoSecretsInURLs(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	admin.grant(url.Values{})
	support := e.login(samEngineer)
	r := support.impersonate(acmeTenantID)
	for _, secret := range []string{admin.cookie(loginCookie), support.cookie(loginCookie), support.cookie(impersonationCookie)} {
		require.NotEmpty(t, secret)
		require.NotContains(t, r.Request.URL.String(), secret)
		require.NotContains(t, r.Body, secret)
		body := admin.get("/admin/audit").Body
		require.NotContains(t, body, secret, "the audit trail holds no session secret")
	}
	for _, ev := range e.events(acmeTenantID, sa.EventSupportRequest) {
		require.NotEqual(t, support.cookie(impersonationCookie), ev.Attrs[sa.AttrSessionID])
	}
}
