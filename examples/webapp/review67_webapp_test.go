package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// review67SupportEvents counts the events of tenantID whose actor is the
// support principal.
func review67SupportEvents(t *testing.T, e *testEnv, tenantID, principal string) int {
	t.Helper()
	evs, err := e.app.m.Events(context.Background(), sa.AuditFilter{TenantID: tenantID, ActorID: principal, Limit: sa.MaxListLimit})
	require.NoError(t, err)
	return len(evs)
}

// TestReview67ReadOnlySupportAdminPostIsCustomersOnly: since 49b8b62 a
// support engineer in a support session reaches the customer admin pages
// through the access middleware (auth.go:134,143). Under a read-only grant
// the middleware refuses a POST there with ErrScopeNotGranted, and the
// app's denied handler (access.go:91-96) renders its scope page: "Not
// allowed with your current access — The customer granted support access
// without this permission ... Ask the customer to grant the scope it
// needs." That is false for the admin UI: with the write scope the same
// POST is still refused (403 "Customers only"). Support is told to ask the
// customer for write access in order to grant itself access / approve its
// own request / revoke the customer's grant. Expected: the admin pages
// refuse support with the "Customers only" page whatever the grant's
// scopes, as they do for a GET or under a write grant.
func TestReview67ReadOnlySupportAdminPostIsCustomersOnly(t *testing.T) {
	e := newTestEnv(t)
	g := e.login(aliceAdmin).grant(url.Values{}) // read only
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)

	for _, c := range []struct {
		name, path string
		form       url.Values
	}{
		{"grant_itself_write", "/admin/support-access/grants",
			url.Values{"duration": {"168h0m0s"}, "scope_write": {"1"}, "grantee": {samEngineer}, "reason": {"x"}}},
		{"revoke_customer_grant", "/admin/support-access/grants/" + g.ID.String() + "/revoke", url.Values{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := sam.post(c.path, c.form)
			require.Equal(t, http.StatusForbidden, r.StatusCode)
			require.NotContains(t, r.Body, "Ask the customer to grant the scope it needs",
				"support's POST %s on the customer admin UI is answered with the scope page, telling it to ask the customer for more access", c.path)
			require.Contains(t, r.Body, "Customers only")
		})
	}
}

// TestReview67RefusedImpersonatedAdminFormIsAudited: 49b8b62 moves the
// form limit inside the middleware for /app/ only (app.go:172-179), so
// that support's refused oversized or malformed form is audited, and sends
// support's attempts on the admin UI through the middleware so that "the
// attempt lands in the tenant's audit log" (README). But on /admin/... the
// outer limitForms still runs first: support in an acme session (write
// grant) POSTing an oversized (413) or malformed (400) form to
// /admin/support-access/grants — trying to grant itself access — is refused
// before customerOnly/the middleware ever see it, and acme's trail has no
// event of it. Expected: the refused attempt is in acme's trail
// (support.request with its 4xx, or access.denied), like the same request
// on /app/settings.
func TestReview67RefusedImpersonatedAdminFormIsAudited(t *testing.T) {
	for name, body := range map[string]string{
		"oversized": url.Values{"duration": {"168h0m0s"}, "scope_write": {"1"}, "grantee": {samEngineer}, "reason": {strings.Repeat("a", 70000)}}.Encode(),
		"malformed": "duration=168h0m0s&scope_write=1&reason=%zz",
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			e.login(aliceAdmin).grant(url.Values{"scope_write": {"1"}})
			sam := e.login(samEngineer)
			require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)

			// The same body on /app/settings is audited (review65).
			before := review67SupportEvents(t, e, acmeTenantID, samEngineer)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.srv.URL+"/app/settings", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			require.GreaterOrEqual(t, sam.do(req).StatusCode, 400)
			require.Greater(t, review67SupportEvents(t, e, acmeTenantID, samEngineer), before)

			before = review67SupportEvents(t, e, acmeTenantID, samEngineer)
			req, err = http.NewRequestWithContext(context.Background(), http.MethodPost, e.srv.URL+"/admin/support-access/grants", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r := sam.do(req)
			require.GreaterOrEqual(t, r.StatusCode, 400)
			require.Greater(t, review67SupportEvents(t, e, acmeTenantID, samEngineer), before,
				"support's refused POST /admin/support-access/grants (%d) during its acme support session is not in acme's audit trail", r.StatusCode)
		})
	}
}
