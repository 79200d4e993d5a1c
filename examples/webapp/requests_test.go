package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// requestAccess sends an access request from the support console.
func (c *client) requestAccess(form url.Values) sa.AccessRequest {
	c.t.Helper()
	r := c.post("/support/requests", form)
	require.Equal(c.t, http.StatusOK, r.StatusCode, r.Body)
	require.Contains(c.t, r.Body, "Access requested")
	rs, err := c.env.app.m.ListRequests(context.Background(), sa.RequestFilter{Limit: 1})
	require.NoError(c.t, err)
	require.Len(c.t, rs, 1)
	return rs[0]
}

func TestAccessRequests(t *testing.T) {
	t.Run("support_asks_and_the_admin_approves_narrower_and_shorter", func(t *testing.T) {
		e := newTestEnv(t)
		sam := e.login(samEngineer)
		req := sam.requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"168h0m0s"}, "scope_write": {"1"},
			"reason": {"Reproduce <bug>"}, "ticket_ref": {"T-9"}})
		require.Equal(t, []sa.Scope{sa.ScopeRead, sa.ScopeWrite}, req.Scopes)
		require.Equal(t, 7*24*time.Hour, req.Duration)

		admin := e.login(aliceAdmin)
		r := admin.get("/admin/support-access")
		require.Contains(t, r.Body, `data-request="`+req.ID.String()+`"`)
		require.Contains(t, r.Body, "Reproduce &lt;bug&gt;")
		require.Contains(t, r.Body, `<option value="168h0m0s" selected>7 days</option>`)
		require.Contains(t, r.Body, `<option value="24h0m0s">24 hours</option>`, "shorter durations are offered")
		require.NotContains(t, e.login(ginaAdmin).get("/admin/support-access").Body, req.ID.String())

		// Approve for 3 days, read only (write unticked).
		r = admin.post("/admin/support-access/requests/"+req.ID.String()+"/approve", url.Values{"duration": {"72h0m0s"}, "comment": {"read is enough"}})
		require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
		require.Contains(t, r.Body, "Request approved: sam@vendor.example has access until 2031-03-13 09:00 UTC")
		require.NotContains(t, r.Body, `id="pending-requests"`, "nothing pending any more")
		gs, err := e.app.m.List(context.Background(), sa.ListFilter{TenantID: acmeTenantID})
		require.NoError(t, err)
		require.Len(t, gs, 1)
		require.Equal(t, []sa.Scope{sa.ScopeRead}, gs[0].Scopes)
		require.Equal(t, []string{samEngineer}, gs[0].Grantees)
		require.Equal(t, req.ID, gs[0].RequestID)

		r = sam.get("/support/")
		require.Contains(t, r.Body, `data-status="approved"`)
		require.Contains(t, r.Body, "read is enough")
		require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)

		// Approving twice is refused.
		r = admin.post("/admin/support-access/requests/"+req.ID.String()+"/approve", url.Values{})
		require.Equal(t, http.StatusBadRequest, r.StatusCode)
	})
	t.Run("approval_cannot_widen_the_request", func(t *testing.T) {
		e := newTestEnv(t)
		req := e.login(samEngineer).requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
		admin := e.login(aliceAdmin)
		r := admin.post("/admin/support-access/requests/"+req.ID.String()+"/approve", url.Values{"duration": {"72h0m0s"}})
		require.Equal(t, http.StatusBadRequest, r.StatusCode)
		require.Contains(t, r.Body, "longer than the requested")
		r = admin.post("/admin/support-access/requests/"+req.ID.String()+"/approve", url.Values{"scope_write": {"1"}})
		require.Equal(t, http.StatusBadRequest, r.StatusCode)
		require.Contains(t, r.Body, "was not requested")
		require.Empty(t, e.grants(t))
	})
	t.Run("admin_denies", func(t *testing.T) {
		e := newTestEnv(t)
		sam := e.login(samEngineer)
		req := sam.requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
		r := e.login(aliceAdmin).post("/admin/support-access/requests/"+req.ID.String()+"/deny", url.Values{"comment": {"not now"}})
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, "Request denied")
		require.Contains(t, sam.get("/support/").Body, `data-status="denied"`)
		require.Len(t, e.events(acmeTenantID, sa.EventRequestDenied), 1)
	})
	t.Run("another_tenants_admin_cannot_decide", func(t *testing.T) {
		e := newTestEnv(t)
		req := e.login(samEngineer).requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
		gina := e.login(ginaAdmin)
		require.Equal(t, http.StatusNotFound, gina.post("/admin/support-access/requests/"+req.ID.String()+"/approve", nil).StatusCode)
		require.Equal(t, http.StatusNotFound, gina.post("/admin/support-access/requests/"+req.ID.String()+"/deny", nil).StatusCode)
		require.Equal(t, http.StatusNotFound, gina.post("/admin/support-access/requests/nope/deny", nil).StatusCode)
	})
	t.Run("generic_support_user_asks_only_its_tenant", func(t *testing.T) {
		e := newTestEnv(t)
		c := e.login(supportAcme)
		r := c.post("/support/requests", url.Values{"tenant": {"globex"}, "duration": {"24h0m0s"}})
		require.Equal(t, http.StatusForbidden, r.StatusCode)
	})
	t.Run("bad_duration_is_refused", func(t *testing.T) {
		e := newTestEnv(t)
		r := e.login(samEngineer).post("/support/requests", url.Values{"tenant": {acmeTenantID}, "duration": {"5h0m0s"}})
		require.Equal(t, http.StatusBadRequest, r.StatusCode)
		require.Contains(t, r.Body, "not one of the policy presets")
	})
	t.Run("customers_cannot_request", func(t *testing.T) {
		e := newTestEnv(t)
		r := e.login(aliceAdmin).post("/support/requests", url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
		require.Equal(t, http.StatusForbidden, r.StatusCode)
	})
}

// grantOnlyStore hides the RequestStore methods of a memstore, like a
// backend that keeps no access requests.
type grantOnlyStore struct {
	sa.Store
	sa.Auditor
	sa.AuditLog
}

func TestAccessRequestsUnsupportedByTheStore(t *testing.T) {
	ms := memstore.New()
	st := grantOnlyStore{Store: ms, Auditor: ms, AuditLog: ms}
	a, h, err := newApp(config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	e := &testEnv{t: t, app: a, srv: httptest.NewServer(h)}
	defer e.stop()

	sam := e.login(samEngineer)
	r := sam.get("/support/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.NotContains(t, r.Body, `id="request-form"`, "no request form without request storage")
	r = sam.post("/support/requests", url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
	require.Equal(t, http.StatusNotImplemented, r.StatusCode)
	require.Contains(t, r.Body, "does not keep access requests")

	admin := e.login(aliceAdmin)
	r = admin.get("/admin/support-access")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.NotContains(t, r.Body, "Pending access requests")
	admin.grant(url.Values{})
}
