package main

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// review106AuditRow returns the audit page's table row (unescaped text)
// that contains needle, or "" when none does.
func review106AuditRow(body, needle string) string {
	for _, row := range strings.Split(body, "<tr ")[1:] {
		if !strings.HasPrefix(row, "data-type=") {
			continue
		}
		if text := html.UnescapeString(row); strings.Contains(text, needle) {
			if i := strings.Index(text, "</tr>"); i >= 0 {
				text = text[:i]
			}
			return text
		}
	}
	return ""
}

// TestReview106AuditPageHidesSessionID: every support.request the
// middleware records carries the support session's id (session_id): the
// one thing that tells the auditor which requests belong to which support
// session (two sessions of the same generic support principal, a session
// resumed after a re-grant, what one sign-in did). The audit page shows a
// fixed subset of the attributes (method, path, status, what) and never
// the session id, so the customer's admin cannot tell sessions apart.
// Expected: the row of a support request shows its session id.
func TestReview106AuditPageHidesSessionID(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	admin.grant(url.Values{"reason": {"ticket 7"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	require.Equal(t, http.StatusOK, sam.get("/app/settings").StatusCode)

	evs := e.events(acmeTenantID, sa.EventSupportRequest)
	require.NotEmpty(t, evs)
	sid := evs[len(evs)-1].Attrs[sa.AttrSessionID]
	require.NotEmpty(t, sid, "the middleware records the session id")

	r := admin.get("/admin/audit?support=1")
	require.Equal(t, http.StatusOK, r.StatusCode)
	row := review106AuditRow(r.Body, "/app/settings")
	require.NotEmpty(t, row)
	require.Truef(t, strings.Contains(row, sid),
		"the audit page's row of support's request does not show its support session id (%s): the admin cannot tell which session did what", sid)
}

// TestReview106AuditPageHidesMethodOverride: support (write grant) sends
// POST /app/settings with X-HTTP-Method-Override: DELETE. The library
// records method=POST and method_override=DELETE — the method a framework
// that honours the header served — so that the trail says what support
// asked for. The audit page integrators copy prints only "POST
// /app/settings": the override the library took care to record is
// dropped, and in a host that honours it the auditor sees a POST where a
// DELETE happened. Expected: the row shows the override.
func TestReview106AuditPageHidesMethodOverride(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	admin.grant(url.Values{"scope_write": {"1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	sam.post("/app/settings", url.Values{"tenant": {acmeTenantID}, "company_name": {"Acme Corporation"}, "theme": {"light"}},
		"X-HTTP-Method-Override", "DELETE")

	var found bool
	for _, ev := range e.events(acmeTenantID, sa.EventSupportRequest) {
		if ev.Attrs[sa.AttrMethod] == http.MethodPost {
			require.Equal(t, "DELETE", ev.Attrs[sa.AttrMethodOverride])
			found = true
		}
	}
	require.True(t, found, "the POST is audited")

	r := admin.get("/admin/audit?type=support.request")
	require.Equal(t, http.StatusOK, r.StatusCode)
	row := review106AuditRow(r.Body, "POST /app/settings")
	require.NotEmpty(t, row)
	require.Truef(t, strings.Contains(row, "DELETE"),
		"the audit page shows support's request as a plain POST: the recorded method override (DELETE) is not shown")
}

// TestReview106AuditPageNamesWrongGrantForElevatedRead: Alice grants
// support read-only access for 3 days (grant A) and Sam alone
// messages:read for a day (grant B). Sam opens /app/messages: the middleware admits it on grant A and
// RequireScope takes messages:read from grant B, recorded as the event's
// elevated_grant_ids. The audit page prints only "grant …<A>" on that row:
// the admin reading who let support see the confidential messages is
// pointed at the read-only grant, and grant B (the one to revoke) is not
// named. Expected: the row names the grant that allowed the elevated
// scope.
func TestReview106AuditPageNamesWrongGrantForElevatedRead(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	admin.grant(url.Values{"reason": {"general"}, "duration": {(72 * time.Hour).String()}})
	e.clock.Advance(time.Minute)
	admin.grant(url.Values{"reason": {"messages"}, "scope_messages": {"1"}, "grantee": {samEngineer}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	require.Equal(t, http.StatusOK, sam.get("/app/messages").StatusCode)

	var elevated string
	for _, ev := range e.events(acmeTenantID, sa.EventSupportRequest) {
		if ev.Attrs[sa.AttrPath] == "/app/messages" {
			elevated = ev.Attrs[sa.AttrElevatedGrantIDs]
		}
	}
	require.NotEmpty(t, elevated, "set-up: the request is admitted on grant A, messages:read comes from grant B")

	r := admin.get("/admin/audit?type=support.request")
	row := review106AuditRow(r.Body, "/app/messages")
	require.NotEmpty(t, row)
	require.Truef(t, strings.Contains(row, elevated[len(elevated)-8:]),
		"the audit page's row of support reading /app/messages names only the read-only grant; the grant that allowed messages:read (%s) is not shown", elevated)
}

// TestReview106AuditPurgeIsNotFindable: a retention purge deletes part of
// the tenant's trail and records audit.purged with the cut-off time and
// how many events went. The audit page's type filter does not offer
// audit.purged (asking for it yields "Unknown event type; showing all
// types") and its row shows neither the cut-off nor the count: the
// customer's admin cannot find, or read, the record that part of the
// trail was deleted. Expected: the filter accepts audit.purged and the
// row shows how many events were deleted.
func TestReview106AuditPurgeIsNotFindable(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	admin.grant(url.Values{"reason": {"old work"}})
	e.clock.Advance(48 * time.Hour)
	p, err := e.app.m.PurgeAudit(context.Background(), acmeTenantID, e.clock.Now().Add(-24*time.Hour))
	require.NoError(t, err)
	require.Positive(t, p.Deleted)

	r := admin.get("/admin/audit?type=" + string(sa.EventAuditPurged))
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Falsef(t, strings.Contains(r.Body, "Unknown event type"),
		"the audit page's filter refuses audit.purged: the admin cannot list the purges of the trail")
	row := review106AuditRow(r.Body, string(sa.EventAuditPurged))
	require.NotEmpty(t, row)
	n := strconv.FormatInt(p.Deleted, 10)
	require.Regexpf(t, `(?s)\bdeleted\b.*\b`+n+`\b|\b`+n+`\b.*\bdeleted\b`, row,
		"the audit.purged row does not say how many events were deleted")
}

// TestReview106InvisibleCompanyNameChange: support with the write scope
// saves the company name with a zero-width space (U+200B) in it. Review 48 made the settings form
// refuse control and bidirectional characters because they "would make
// the name read differently in a page or the audit log than it is"
// (settings.go hiddenRune); invisible characters such as U+200B do
// exactly that and pass. The change is stored and audited, but the audit
// page's before and after read the same: the admin sees support "change"
// the name to what it was, while the stored name now differs (breaking
// exact-match lookups, invoices, e-mail headers). The library itself
// refuses these characters in identifiers for that reason (validate.go
// hiddenRune). Expected: the form refuses the name, as it refuses U+202E.
func TestReview106InvisibleCompanyNameChange(t *testing.T) {
	for name, value := range map[string]string{
		"zero_width_space_at_end":    "Acme Corporation\u200b",
		"zero_width_space_in_middle": "Acme\u200b Corporation",
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			admin := e.login(aliceAdmin)
			admin.grant(url.Values{"scope_write": {"1"}})
			sam := e.login(samEngineer)
			require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
			r := sam.post("/app/settings", url.Values{"tenant": {acmeTenantID}, "company_name": {value}, "theme": {"light"}, "weekly_email": {"1"}})
			saved := e.app.settings.get(acmeTenantID).CompanyName
			require.Falsef(t, r.StatusCode == http.StatusOK && saved == value,
				"support saved the company name %+q, which the audit page shows as %q before and %q after: an invisible change", value, "Acme Corporation", value)
		})
	}
}

// TestReview106AuditPageHidesRequestTarget: a host that mounts its tenant
// pages under http.StripPrefix (or dispatches a request again with another
// path) gets support.request events whose path is the handler's
// ("/users/42/delete") and whose request_target is what support actually
// asked for ("/admin/users/42/delete"); the library records the target
// exactly so that the trail shows the URL support used. The audit page
// prints only the path: two requests to different client URLs read the
// same, and the URL the admin would recognise is not shown. Expected: the
// row shows the request target when the event has one.
func TestReview106AuditPageHidesRequestTarget(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	g := admin.grant(url.Values{})
	e.recordEvent(sa.Event{
		Time: t0.Add(time.Minute), Type: sa.EventSupportRequest, GrantID: g.ID,
		Actor: sa.Actor{Kind: sa.ActorSupport, ID: samEngineer},
		Attrs: map[string]string{
			sa.AttrMethod: "POST", sa.AttrPath: "/users/42/delete", sa.AttrStatus: "200",
			sa.AttrRequestTarget: "/admin/users/42/delete",
		},
	})
	r := admin.get("/admin/audit?type=support.request")
	row := review106AuditRow(r.Body, "/users/42/delete")
	require.NotEmpty(t, row)
	require.Truef(t, strings.Contains(row, "/admin/users/42/delete"),
		"the audit page's row shows only the handler's path /users/42/delete, not the request target /admin/users/42/delete support sent")
}

// TestReview106AuditToTimeDropsItsOwnMinute: the audit page shows every
// time to the minute ("2031-03-10 09:05 UTC") and its From/To filter takes
// minutes (datetime-local), but To is passed to the library as an
// exclusive bound at the minute's first second. An admin who reviews what
// support did "from 09:00 to 09:05" does not get the support request the
// page itself lists at 09:05 — the one the admin is looking for — and
// From 09:05 To 09:05 answers "No events match" for it. Expected: To
// includes the minute it names (as From does).
func TestReview106AuditToTimeDropsItsOwnMinute(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	g := admin.grant(url.Values{})
	e.recordEvent(sa.Event{
		Time: t0.Add(5*time.Minute + 30*time.Second), Type: sa.EventSupportRequest, GrantID: g.ID,
		Actor: sa.Actor{Kind: sa.ActorSupport, ID: samEngineer},
		Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/app/messages", sa.AttrStatus: "200"},
	})
	r := admin.get("/admin/audit")
	row := review106AuditRow(r.Body, "/app/messages")
	require.Contains(t, row, "2031-03-10 09:05 UTC", "set-up: the page lists the request at 09:05")

	for _, q := range []string{
		"since=2031-03-10T09:00&until=2031-03-10T09:05",
		"since=2031-03-10T09:05&until=2031-03-10T09:05",
		"until=2031-03-10T09:05",
	} {
		r := admin.get("/admin/audit?" + q)
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Truef(t, review106AuditRow(r.Body, "/app/messages") != "",
			"filter %s: the support request the page lists at 09:05 is not found by a To of 09:05", q)
	}
}
