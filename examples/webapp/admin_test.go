package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// revokeAction is the form action of the Revoke button of grant g.
func revokeAction(g sa.Grant) string {
	return `action="/admin/support-access/grants/` + g.ID.String() + `/revoke"`
}

func TestSupportAccessPage(t *testing.T) {
	e := newTestEnv(t)
	c := e.login(aliceAdmin)
	r := c.get("/admin/support-access")
	require.Equal(t, http.StatusOK, r.StatusCode)
	for _, label := range []string{"24 hours", "3 days", "7 days"} {
		require.Contains(t, r.Body, label)
	}
	require.Contains(t, r.Body, `value="24h0m0s" checked`, "24 hours is the default")
	require.Contains(t, r.Body, `name="starts_at"`)
	require.Contains(t, r.Body, `name="scope_write"`)
	require.Contains(t, r.Body, `name="scope_messages"`)
	require.Contains(t, r.Body, `name="reason"`)
	require.Contains(t, r.Body, `name="ticket_ref"`)
	require.Contains(t, r.Body, `value="sam@vendor.example"`, "a grant can name an engineer")
	require.Contains(t, r.Body, "No grants yet")
	require.NotContains(t, r.Body, "Support access is active until")
}

func TestGrant(t *testing.T) {
	t.Run("read_grant_for_24_hours_is_listed_active_with_a_banner_on_every_page", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(aliceAdmin)
		g := c.grant(url.Values{"reason": {"Invoice export fails"}, "ticket_ref": {"T-1001"}})
		require.Equal(t, acmeTenantID, g.TenantID)
		require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes)
		require.Empty(t, g.Grantees)
		require.Equal(t, t0, g.StartsAt)
		require.Equal(t, t0.Add(24*time.Hour), g.ExpiresAt)
		require.Equal(t, aliceAdmin, g.GrantedBy.ID)

		r := c.get("/admin/support-access")
		require.Contains(t, r.Body, `data-status="active" data-grant="`+g.ID.String()+`"`)
		require.Contains(t, r.Body, "2031-03-10 09:00 UTC")
		require.Contains(t, r.Body, "2031-03-11 09:00 UTC")
		require.Contains(t, r.Body, "Invoice export fails")
		require.Contains(t, r.Body, "T-1001")
		require.Contains(t, r.Body, revokeAction(g))
		for _, p := range []string{"/admin/support-access", "/admin/audit", "/app/", "/app/settings", "/app/messages"} {
			r := c.get(p)
			require.Equal(t, http.StatusOK, r.StatusCode, p)
			require.Contains(t, r.Body, "Support access is active until 2031-03-11 09:00 UTC", p)
		}
		// Other tenants see nothing of it.
		r = e.login(ginaAdmin).get("/admin/support-access")
		require.NotContains(t, r.Body, g.ID.String())
		require.NotContains(t, r.Body, "Support access is active")
	})
	t.Run("write_elevated_and_named_grant", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(aliceAdmin)
		g := c.grant(url.Values{"duration": {"72h0m0s"}, "scope_write": {"1"}, "scope_messages": {"1"}, "grantee": {samEngineer}})
		require.Equal(t, []sa.Scope{scopeMessages, sa.ScopeRead, sa.ScopeWrite}, g.Scopes)
		require.Equal(t, []string{samEngineer}, g.Grantees)
		require.Equal(t, 72*time.Hour, g.ExpiresAt.Sub(g.StartsAt))
	})
	t.Run("scheduled_grant_becomes_active_at_its_start", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(aliceAdmin)
		g := c.grant(url.Values{"starts_at": {"2031-03-12T08:30"}, "duration": {"168h0m0s"}})
		require.Equal(t, time.Date(2031, 3, 12, 8, 30, 0, 0, time.UTC), g.StartsAt)
		r := c.get("/admin/support-access")
		require.Contains(t, r.Body, `data-status="scheduled"`)
		require.Contains(t, r.Body, revokeAction(g), "scheduled grants can be revoked")
		require.NotContains(t, r.Body, "Support access is active until")

		e.clock.Advance(48 * time.Hour)
		r = c.get("/admin/support-access")
		require.Contains(t, r.Body, `data-status="active"`)
		require.Contains(t, r.Body, "Support access is active until 2031-03-19 08:30 UTC")
	})
	t.Run("invalid_input_is_refused_and_the_form_kept", func(t *testing.T) {
		for name, tc := range map[string]struct {
			form url.Values
			want string
		}{
			"duration_not_a_preset": {url.Values{"duration": {"5h0m0s"}, "reason": {"keep me"}}, "Choose one of the durations"},
			"start_in_the_past":     {url.Values{"duration": {"24h0m0s"}, "starts_at": {"2031-03-09T09:00"}, "reason": {"keep me"}}, "StartsAt is in the past"},
			"start_not_a_time":      {url.Values{"duration": {"24h0m0s"}, "starts_at": {"tomorrow"}, "reason": {"keep me"}}, "not a valid date"},
			"start_too_far_ahead":   {url.Values{"duration": {"24h0m0s"}, "starts_at": {"2031-06-01T09:00"}, "reason": {"keep me"}}, "StartsAt is more than"},
			"unknown_grantee":       {url.Values{"duration": {"24h0m0s"}, "grantee": {"eve@evil.example"}, "reason": {"keep me"}}, "Choose who gets access"},
			"reason_too_long":       {url.Values{"duration": {"24h0m0s"}, "reason": {"keep me" + strings.Repeat("x", 2001)}}, "Reason is longer"},
		} {
			t.Run(name, func(t *testing.T) {
				e := newTestEnv(t)
				c := e.login(aliceAdmin)
				r := c.post("/admin/support-access/grants", tc.form)
				require.Equal(t, http.StatusBadRequest, r.StatusCode)
				require.Contains(t, r.Body, tc.want)
				require.Contains(t, r.Body, "keep me", "the form keeps what was typed")
				require.Empty(t, e.grants(t))
			})
		}
	})
}

func TestRevoke(t *testing.T) {
	t.Run("active_grant_is_revoked_and_loses_its_button", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(aliceAdmin)
		g := c.grant(url.Values{})
		e.clock.Advance(time.Hour)
		r := c.post("/admin/support-access/grants/"+g.ID.String()+"/revoke", nil)
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, "Support access revoked")
		require.Contains(t, r.Body, `data-status="revoked"`)
		require.NotContains(t, r.Body, revokeAction(g))
		require.NotContains(t, r.Body, "Support access is active until")
		got, err := e.app.m.Get(context.Background(), g.ID)
		require.NoError(t, err)
		require.Equal(t, t0.Add(time.Hour), got.RevokedAt)
		require.Equal(t, aliceAdmin, got.RevokedBy.ID)

		r = c.post("/admin/support-access/grants/"+g.ID.String()+"/revoke", nil)
		require.Equal(t, http.StatusConflict, r.StatusCode)
		require.Contains(t, r.Body, "already revoked")
	})
	t.Run("expired_grant_has_no_revoke_button", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(aliceAdmin)
		g := c.grant(url.Values{})
		e.clock.Advance(24 * time.Hour)
		r := c.get("/admin/support-access")
		require.Contains(t, r.Body, `data-status="expired"`)
		require.NotContains(t, r.Body, revokeAction(g))
	})
	t.Run("another_tenants_grant_is_not_found", func(t *testing.T) {
		e := newTestEnv(t)
		g := e.login(aliceAdmin).grant(url.Values{})
		r := e.login(ginaAdmin).post("/admin/support-access/grants/"+g.ID.String()+"/revoke", nil)
		require.Equal(t, http.StatusNotFound, r.StatusCode)
		got, err := e.app.m.Get(context.Background(), g.ID)
		require.NoError(t, err)
		require.Equal(t, sa.StatusActive, got.Status(e.clock.Now()))
	})
	t.Run("malformed_id_is_not_found", func(t *testing.T) {
		e := newTestEnv(t)
		r := e.login(aliceAdmin).post("/admin/support-access/grants/not-a-uuid/revoke", nil)
		require.Equal(t, http.StatusNotFound, r.StatusCode)
	})
}

func TestXSSShapedReasonIsShownAsText(t *testing.T) {
	e := newTestEnv(t)
	c := e.login(aliceAdmin)
	evil := `<script>alert("x")</script><img src=x onerror=alert(1)>`
	c.grant(url.Values{"reason": {evil}, "ticket_ref": {`"><b>T</b>`}})
	for _, p := range []string{"/admin/support-access", "/admin/audit"} {
		r := c.get(p)
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.NotContains(t, r.Body, "<script>", p)
		require.NotContains(t, r.Body, "<img src=x", p)
		require.NotContains(t, r.Body, "<b>T</b>", p)
		require.Contains(t, r.Body, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;`, p)
	}
}

func TestSettings(t *testing.T) {
	e := newTestEnv(t)
	c := e.login(aliceAdmin)
	r := c.get("/app/settings")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, r.Body, `value="Acme Corporation"`)
	require.NotContains(t, r.Body, "read-only")

	r = c.post("/app/settings", url.Values{"company_name": {"Acme Rockets"}, "theme": {"dark"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, r.Body, "Settings saved")
	require.Contains(t, r.Body, `value="Acme Rockets"`)
	require.Contains(t, r.Body, `class="theme-dark"`)
	require.Equal(t, tenantSettings{CompanyName: "Acme Rockets", Theme: "dark"}, e.app.settings.get(acmeTenantID))
	require.Empty(t, e.events(acmeTenantID, sa.EventSupportChange), "customer changes are not support changes")

	r = c.post("/app/settings", url.Values{"company_name": {" "}, "theme": {"dark"}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Contains(t, r.Body, "company name is required")
	r = c.post("/app/settings", url.Values{"company_name": {"X"}, "theme": {"neon"}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Equal(t, "Acme Rockets", e.app.settings.get(acmeTenantID).CompanyName)

	// Tenants are separate.
	require.Equal(t, "Globex Inc.", e.app.settings.get("globex").CompanyName)
}

func TestMessagesPage(t *testing.T) {
	e := newTestEnv(t)
	r := e.login(aliceAdmin).get("/app/messages")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, r.Body, "Confidential: merger timeline")
}
