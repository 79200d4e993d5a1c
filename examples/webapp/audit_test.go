package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// recordEvent puts an event straight into the store's audit trail.
func (e *testEnv) recordEvent(ev sa.Event) {
	e.t.Helper()
	if ev.ID == uuid.Nil {
		ev.ID = uuid.New()
	}
	if ev.TenantID == "" {
		ev.TenantID = acmeTenantID
	}
	require.NoError(e.t, e.store.Record(context.Background(), ev))
}

func TestAuditPage(t *testing.T) {
	e := newTestEnv(t)
	c := e.login(aliceAdmin)
	g := c.grant(url.Values{"reason": {"ticket work"}})
	supportActor := sa.Actor{Kind: sa.ActorSupport, ID: supportAcme, Name: "Vendor support (Acme)"}
	for i := range 25 {
		e.recordEvent(sa.Event{
			Time: t0.Add(time.Duration(i+1) * time.Minute), Type: sa.EventSupportRequest, GrantID: g.ID, Actor: supportActor,
			Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: fmt.Sprintf("/app/page-%02d", i), sa.AttrStatus: "200"},
		})
	}
	before, _ := json.Marshal(tenantSettings{CompanyName: "Acme Corporation", Theme: "light"})
	after, _ := json.Marshal(tenantSettings{CompanyName: "Acme <Rockets>", Theme: "light"})
	e.recordEvent(sa.Event{
		Time: t0.Add(2 * time.Hour), Type: sa.EventSupportChange, GrantID: g.ID, Actor: supportActor,
		Attrs: map[string]string{sa.AttrWhat: "tenant settings"}, Before: before, After: after,
	})
	e.recordEvent(sa.Event{TenantID: "globex", Time: t0.Add(3 * time.Hour), Type: sa.EventSupportRequest, Actor: supportActor,
		Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/app/globex-secret"}})

	t.Run("newest_first_with_support_label_method_path_and_before_after", func(t *testing.T) {
		r := c.get("/admin/audit")
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, "Events 1–20 of 27")
		require.Contains(t, r.Body, `<span class="label label-support">support</span>`)
		require.Contains(t, r.Body, `<code class="req">GET /app/page-24</code> → 200`)
		require.Contains(t, r.Body, `&#34;company_name&#34;: &#34;Acme \u003cRockets\u003e&#34;`)
		require.Contains(t, r.Body, `&#34;company_name&#34;: &#34;Acme Corporation&#34;`)
		require.Contains(t, r.Body, "tenant settings")
		require.NotContains(t, r.Body, "globex-secret", "only the tenant's own events")
		require.NotContains(t, r.Body, "/app/page-05", "older events are on page 2")
		require.Contains(t, r.Body, `href="/admin/audit?page=2"`)
	})
	t.Run("second_page", func(t *testing.T) {
		r := c.get("/admin/audit?page=2")
		require.Contains(t, r.Body, "Events 21–27 of 27")
		require.Contains(t, r.Body, "/app/page-00")
		require.Contains(t, r.Body, `data-type="grant.created"`)
		require.Contains(t, r.Body, "Page 2 of 2")
		require.Contains(t, r.Body, `id="newer"`)
		require.NotContains(t, r.Body, `id="older"`)
	})
	t.Run("page_out_of_range_shows_the_last", func(t *testing.T) {
		r := c.get("/admin/audit?page=99")
		require.Contains(t, r.Body, "Page 2 of 2")
	})
	t.Run("support_only", func(t *testing.T) {
		r := c.get("/admin/audit?support=1")
		require.Contains(t, r.Body, "of 26")
		require.NotContains(t, r.Body, `data-type="grant.created"`)
	})
	t.Run("event_type", func(t *testing.T) {
		r := c.get("/admin/audit?type=support.change")
		require.Contains(t, r.Body, "Events 1–1 of 1")
		require.Contains(t, r.Body, `<option value="support.change" selected>`)
		r = c.get("/admin/audit?type=bogus")
		require.Contains(t, r.Body, "Unknown event type")
		require.Contains(t, r.Body, "of 27")
	})
	t.Run("time_range", func(t *testing.T) {
		// From 09:10 to 09:14, that minute included: page-09 .. page-13.
		r := c.get("/admin/audit?since=2031-03-10T09:10&until=2031-03-10T09:14&type=support.request")
		require.Contains(t, r.Body, "Events 1–5 of 5")
		require.Contains(t, r.Body, "/app/page-09")
		require.Contains(t, r.Body, "/app/page-13")
		require.NotContains(t, r.Body, "/app/page-14")
		require.NotContains(t, r.Body, "/app/page-08")
		require.Contains(t, r.Body, `value="2031-03-10T09:10"`)
	})
	t.Run("filters_survive_pagination", func(t *testing.T) {
		r := c.get("/admin/audit?support=1&type=support.request")
		require.Contains(t, r.Body, `href="/admin/audit?page=2&amp;support=1&amp;type=support.request"`)
	})
	// More matching events than the page keeps: it shows the newest (not
	// the oldest, as one limited read would) and says so.
	t.Run("newest_kept_when_over_the_cap", func(t *testing.T) {
		saved := auditKeep
		auditKeep = 10
		t.Cleanup(func() { auditKeep = saved })
		r := c.get("/admin/audit")
		require.Contains(t, r.Body, "Events 1–10 of 10")
		require.Contains(t, r.Body, "Only the newest 10 are listed; narrow the filter")
		require.Contains(t, r.Body, "tenant settings", "the newest event is shown")
		require.Contains(t, r.Body, "/app/page-24")
		require.NotContains(t, r.Body, "/app/page-15", "the 11th newest is beyond the cap")
		require.NotContains(t, r.Body, `data-type="grant.created"`, "the oldest is beyond the cap")
	})
	// The chain is read backwards in windows of sequence numbers, each
	// one query: small windows give the same pages; a read budget that
	// runs out lists what it found and says older events may match.
	t.Run("windows", func(t *testing.T) {
		savedW, savedR := auditWindow, auditReads
		t.Cleanup(func() { auditWindow, auditReads = savedW, savedR })
		auditWindow = 4
		r := c.get("/admin/audit?type=support.request&page=2")
		require.Contains(t, r.Body, "Events 21–25 of 25")
		require.Contains(t, r.Body, "/app/page-00")
		require.NotContains(t, r.Body, "Only the newest")
		auditReads = 2 // sequence numbers 20–27 of 27: page-18 … page-24
		r = c.get("/admin/audit?type=support.request")
		require.Contains(t, r.Body, "Events 1–7 of 7")
		require.Contains(t, r.Body, "/app/page-24")
		require.Contains(t, r.Body, "/app/page-18")
		require.NotContains(t, r.Body, "/app/page-17")
		require.Contains(t, r.Body, "Only the newest 7 are listed; narrow the filter")
		// None in the windows read: the page says so, not "no events".
		auditReads = 1
		r = c.get("/admin/audit?type=grant.created")
		require.Contains(t, r.Body, "None among the newest events; set From")
		// A From time reads that range forward instead, however old.
		r = c.get("/admin/audit?since=2031-03-10T09:01&until=2031-03-10T09:02&type=support.request")
		require.Contains(t, r.Body, "Events 1–2 of 2")
		require.Contains(t, r.Body, "/app/page-00")
		require.Contains(t, r.Body, "/app/page-01")
		// A range holding exactly what one view reads is listed whole.
		r = c.get("/admin/audit?since=2031-03-10T09:01&until=2031-03-10T09:04&type=support.request")
		require.Contains(t, r.Body, "Events 1–4 of 4")
		require.NotContains(t, r.Body, "More events fall in this time range")
		// A range holding more than one view reads (here 4 events) lists
		// none and says so.
		r = c.get("/admin/audit?since=2031-03-10T09:00&type=support.request")
		require.Contains(t, r.Body, "More events fall in this time range than one page view reads")
		require.NotContains(t, r.Body, "/app/page-")
	})
	t.Run("bad_time_range", func(t *testing.T) {
		r := c.get("/admin/audit?since=2031-03-10T10:00&until=2031-03-10T09:00")
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Contains(t, r.Body, "ends before it starts")
		r = c.get("/admin/audit?since=yesterday")
		require.Contains(t, r.Body, "From is not a valid date")
	})
}
