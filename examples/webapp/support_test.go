package main

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestSupportConsole(t *testing.T) {
	e := newTestEnv(t)
	t.Run("named_engineer_sees_every_tenant_without_access", func(t *testing.T) {
		r := e.login(samEngineer).get("/support/")
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, `data-tenant="acme"`)
		require.Contains(t, r.Body, `data-tenant="globex"`)
		require.Contains(t, r.Body, "Sign in as Alice Adams")
		require.Contains(t, r.Body, "no active access")
	})
	t.Run("generic_support_user_sees_its_tenant_only", func(t *testing.T) {
		r := e.login(supportAcme).get("/support/")
		require.Contains(t, r.Body, `data-tenant="acme"`)
		require.NotContains(t, r.Body, `data-tenant="globex"`)
	})
	t.Run("shows_the_active_grant", func(t *testing.T) {
		e.login(aliceAdmin).grant(url.Values{"scope_write": {"1"}})
		r := e.login(samEngineer).get("/support/")
		require.Contains(t, r.Body, "until 2031-03-11 09:00 UTC (read, write)")
	})
	t.Run("generic_support_user_cannot_enter_another_tenant", func(t *testing.T) {
		c := e.login(supportAcme)
		r := c.impersonate("globex")
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.Empty(t, c.cookie(impersonationCookie))
	})
}

func TestImpersonation(t *testing.T) {
	t.Run("no_grant_shows_no_active_support_access", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(samEngineer)
		r := c.impersonate(acmeTenantID)
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.Contains(t, r.Body, "No active support access")
		require.NotContains(t, r.Body, "Acme Corporation</h1>", "no tenant data")
		require.Empty(t, c.cookie(impersonationCookie), "the useless support session is ended")
	})
	t.Run("read_grant_browses_but_cannot_save", func(t *testing.T) {
		e := newTestEnv(t)
		admin := e.login(aliceAdmin)
		admin.grant(url.Values{"reason": {"look at settings"}})
		c := e.login(samEngineer)
		r := c.impersonate(acmeTenantID)
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Equal(t, "/app/", r.Request.URL.Path)
		require.Contains(t, r.Body, `id="support-banner"`)
		require.Contains(t, r.Body, "You (sam@vendor.example) are signed in as Alice Adams (alice@acme.example) of Acme Corporation")
		require.Contains(t, r.Body, "until 2031-03-11 09:00 UTC")
		require.NotContains(t, r.Body, `href="/admin/support-access"`, "support does not see the access management")
		cookie := c.cookie(impersonationCookie)
		require.NotEmpty(t, cookie)

		r = c.get("/app/settings")
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, `value="Acme Corporation"`)
		require.Contains(t, r.Body, "read-only")

		r = c.post("/app/settings", url.Values{"company_name": {"Hacked"}, "theme": {"dark"}})
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.Contains(t, r.Body, "Not allowed with your current access")
		require.Equal(t, "Acme Corporation", e.app.settings.get(acmeTenantID).CompanyName)
		require.Equal(t, cookie, c.cookie(impersonationCookie), "a scope refusal keeps the session")

		r = c.get("/app/messages")
		require.Equal(t, http.StatusForbidden, r.StatusCode, "messages need the elevated scope")
		require.NotContains(t, r.Body, "merger")

		r = c.get("/admin/support-access")
		require.Equal(t, http.StatusForbidden, r.StatusCode)
	})
	t.Run("write_grant_saves_and_the_audit_shows_before_and_after", func(t *testing.T) {
		e := newTestEnv(t)
		admin := e.login(aliceAdmin)
		admin.grant(url.Values{"scope_write": {"1"}, "scope_messages": {"1"}})
		c := e.login(supportAcme)
		c.impersonate(acmeTenantID)
		r := c.get("/app/settings")
		require.NotContains(t, r.Body, "read-only")
		r = c.post("/app/settings", url.Values{"company_name": {"Acme Rockets"}, "theme": {"ocean"}, "weekly_email": {"1"}})
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, "Settings saved")
		require.Equal(t, "Acme Rockets", e.app.settings.get(acmeTenantID).CompanyName)
		r = c.get("/app/messages")
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, "merger")

		changes := e.events(acmeTenantID, sa.EventSupportChange)
		require.Len(t, changes, 1)
		require.Equal(t, supportAcme, changes[0].Actor.ID)
		require.JSONEq(t, `{"company_name":"Acme Corporation","theme":"light","weekly_email":true}`, string(changes[0].Before))
		require.JSONEq(t, `{"company_name":"Acme Rockets","theme":"ocean","weekly_email":true}`, string(changes[0].After))

		r = admin.get("/admin/audit?type=support.change")
		require.Contains(t, r.Body, "tenant settings")
		require.Contains(t, r.Body, "Acme Rockets")
		r = admin.get("/admin/audit?support=1&type=support.request")
		require.Contains(t, r.Body, `<code class="req">GET /app/settings</code> → 200`)
		require.Contains(t, r.Body, `<code class="req">POST /app/settings</code> → 303`)
		require.Contains(t, r.Body, `<span class="label label-support">support</span>`)
	})
	t.Run("revocation_ends_the_session_on_the_next_request", func(t *testing.T) {
		e := newTestEnv(t)
		admin := e.login(aliceAdmin)
		g := admin.grant(url.Values{})
		c := e.login(samEngineer)
		require.Equal(t, http.StatusOK, c.impersonate(acmeTenantID).StatusCode)

		admin.post("/admin/support-access/grants/"+g.ID.String()+"/revoke", nil)
		r := c.get("/app/settings")
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.Contains(t, r.Body, "Support access ended")
		require.NotContains(t, r.Body, "Acme Corporation\"", "no tenant data")
		require.Empty(t, c.cookie(impersonationCookie), "support is logged out of the tenant")

		r = c.get("/app/")
		require.Equal(t, "/support/", r.Request.URL.Path, "back to the console")
		require.NotEmpty(t, c.cookie(loginCookie), "the engineer's own login stays")
	})
	t.Run("expiry_ends_the_session", func(t *testing.T) {
		e := newTestEnv(t)
		e.login(aliceAdmin).grant(url.Values{})
		c := e.login(samEngineer)
		c.impersonate(acmeTenantID)
		e.clock.Advance(24*time.Hour - time.Microsecond)
		require.Equal(t, http.StatusOK, c.get("/app/").StatusCode)
		e.clock.Advance(time.Microsecond)
		r := c.get("/app/")
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.Contains(t, r.Body, "Support access ended")
	})
	t.Run("grant_to_a_named_engineer_does_not_admit_the_generic_user", func(t *testing.T) {
		e := newTestEnv(t)
		e.login(aliceAdmin).grant(url.Values{"grantee": {samEngineer}})
		r := e.login(supportAcme).impersonate(acmeTenantID)
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.Contains(t, r.Body, "No active support access")
		r = e.login(samEngineer).impersonate(acmeTenantID)
		require.Equal(t, http.StatusOK, r.StatusCode)
	})
	t.Run("leave_ends_the_support_session", func(t *testing.T) {
		e := newTestEnv(t)
		e.login(aliceAdmin).grant(url.Values{})
		c := e.login(samEngineer)
		c.impersonate(acmeTenantID)
		r := c.post("/support/stop", nil)
		require.Equal(t, "/support/", r.Request.URL.Path)
		require.Empty(t, c.cookie(impersonationCookie))
	})
	t.Run("support_session_cookie_is_bound_to_the_engineers_login", func(t *testing.T) {
		e := newTestEnv(t)
		e.login(aliceAdmin).grant(url.Values{})
		c := e.login(samEngineer)
		c.impersonate(acmeTenantID)
		stolen := c.cookie(impersonationCookie)

		other := e.login(supportAcme)
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/app/", nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: impersonationCookie, Value: stolen})
		r := other.do(req)
		require.Equal(t, http.StatusForbidden, r.StatusCode)
		require.NotContains(t, r.Body, `id="support-banner"`)
	})
	t.Run("customer_pages_are_not_audited_as_support", func(t *testing.T) {
		e := newTestEnv(t)
		admin := e.login(aliceAdmin)
		admin.grant(url.Values{})
		admin.get("/app/settings")
		require.Empty(t, e.events(acmeTenantID, sa.EventSupportRequest))
	})
}
