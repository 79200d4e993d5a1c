package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLogin(t *testing.T) {
	t.Run("page_lists_seeded_users_and_says_there_are_no_passwords", func(t *testing.T) {
		e := newTestEnv(t)
		r := e.newClient().get("/login")
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, "there are no passwords")
		for _, u := range []string{aliceAdmin, ginaAdmin, supportAcme, "support+globex@vendor.example", samEngineer} {
			require.Contains(t, r.Body, `value="`+strings.ReplaceAll(u, "+", "&#43;")+`"`)
		}
	})
	t.Run("sets_an_httponly_samesite_cookie_with_a_random_id", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.newClient()
		c.raw = true
		r := c.post("/login", url.Values{"user": {aliceAdmin}})
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		require.Equal(t, "/admin/support-access", r.Header.Get("Location"))
		ck := r.setsCookie(loginCookie)
		require.NotNil(t, ck)
		require.True(t, ck.HttpOnly)
		require.Equal(t, http.SameSiteLaxMode, ck.SameSite)
		require.Equal(t, "/", ck.Path)
		require.GreaterOrEqual(t, len(ck.Value), 50, "256 random bits")
		require.NotContains(t, ck.Value, "alice")

		other := e.newClient()
		other.raw = true
		r2 := other.post("/login", url.Values{"user": {aliceAdmin}})
		require.NotContains(t, r2.Header.Get("Set-Cookie"), ck.Value, "every login gets a fresh session id")
	})
	t.Run("support_lands_on_the_console", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.newClient()
		r := c.post("/login", url.Values{"user": {samEngineer}})
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Equal(t, "/support/", r.Request.URL.Path)
		require.Contains(t, r.Body, "Support console")
	})
	t.Run("unknown_user_is_refused", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.newClient()
		r := c.post("/login", url.Values{"user": {"mallory@evil.example"}})
		require.Equal(t, http.StatusBadRequest, r.StatusCode)
		require.Empty(t, c.cookie(loginCookie))
	})
	t.Run("logout_ends_the_session", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(aliceAdmin)
		old := c.cookie(loginCookie)
		r := c.post("/logout", nil)
		require.Equal(t, "/login", r.Request.URL.Path)
		require.Empty(t, c.cookie(loginCookie))

		// The old session id is dead on the server too.
		replay := e.newClient()
		replay.raw = true
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/admin/support-access", nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: loginCookie, Value: old})
		res := replay.do(req)
		require.Equal(t, http.StatusSeeOther, res.StatusCode)
		require.Equal(t, "/login", res.Header.Get("Location"))
	})
	t.Run("session_expires_after_its_lifetime", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(aliceAdmin)
		e.clock.Advance(loginTTL)
		r := c.get("/admin/support-access")
		require.Equal(t, "/login", r.Request.URL.Path)
	})
}

func TestPagesRequireLogin(t *testing.T) {
	e := newTestEnv(t)
	c := e.newClient()
	c.raw = true
	for _, p := range []string{"/", "/admin/support-access", "/admin/audit", "/app/", "/app/settings", "/app/messages", "/support/"} {
		r := c.get(p)
		require.Equal(t, http.StatusSeeOther, r.StatusCode, p)
		require.Equal(t, "/login", r.Header.Get("Location"), p)
	}
}

func TestRoleSeparation(t *testing.T) {
	e := newTestEnv(t)
	t.Run("support_cannot_open_the_customer_admin_pages", func(t *testing.T) {
		c := e.login(samEngineer)
		for _, p := range []string{"/admin/support-access", "/admin/audit"} {
			r := c.get(p)
			require.Equal(t, http.StatusForbidden, r.StatusCode, p)
			require.Contains(t, r.Body, "Customers only")
		}
		r := c.post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}})
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.Empty(t, e.events(acmeTenantID, "grant.created"))
	})
	t.Run("customers_cannot_open_the_support_console", func(t *testing.T) {
		c := e.login(aliceAdmin)
		r := c.get("/support/")
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		r = c.impersonate("globex")
		require.Equal(t, http.StatusForbidden, r.StatusCode)
	})
	t.Run("support_without_a_support_session_goes_to_the_console", func(t *testing.T) {
		c := e.login(samEngineer)
		r := c.get("/app/settings")
		require.Equal(t, "/support/", r.Request.URL.Path)
	})
}

func TestStaticAndNotFound(t *testing.T) {
	e := newTestEnv(t)
	c := e.newClient()
	r := c.get("/static/style.css")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/css"))
	r = c.get("/nope/<b>")
	require.Equal(t, http.StatusNotFound, r.StatusCode)
	require.NotContains(t, r.Body, "<b>")
}
