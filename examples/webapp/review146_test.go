package main

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Review 146: the example web application attacked by a support engineer
// who controls text that later renders in the customer admin's pages
// (request reasons and ticket references, the request target the
// middleware records, the company name a write grant lets it save), and by
// a support-controlled page that tries to drive the admin's browser.

// review146SupportCookie is the Cookie header line of sam's login and
// support session, for raw requests.
func review146SupportCookie(sam *client) string {
	return "Cookie: " + loginCookie + "=" + sam.cookie(loginCookie) + "; " +
		impersonationCookie + "=" + sam.cookie(impersonationCookie)
}

// review146Markup runs the same story with reason, ticket and host as the
// text support controls: sam asks acme for access (reason, ticket), Alice
// approves it (the grant carries the reason and ticket), sam opens the
// dashboard with an absolute-form request target naming host, and asks
// again (left pending). It returns the bodies of the admin's pages that
// show that text.
func review146Markup(t *testing.T, reason, ticket, host string) []string {
	t.Helper()
	e := newTestEnv(t)
	sam := e.login(samEngineer)
	form := url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}, "reason": {reason}, "ticket_ref": {ticket}}
	req := sam.requestAccess(form)
	alice := e.login(aliceAdmin)
	r := alice.post("/admin/support-access/requests/"+req.ID.String()+"/approve", url.Values{"duration": {"24h0m0s"}})
	require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	res, body := e.sendRaw("GET http://"+host+"/app/ HTTP/1.1\r\n"+review146SupportCookie(sam), "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Equal(t, http.StatusOK, sam.post("/support/requests", form).StatusCode)
	return []string{
		alice.get("/admin/support-access").Body,
		alice.get("/admin/audit").Body,
		alice.get("/admin/audit?type=request.created").Body,
		alice.get("/admin/audit?type=grant.created").Body,
		alice.get("/admin/audit?support=1").Body,
	}
}

// TestReview146MarkupFromSupportAddsNoElements attacks "templates
// auto-escape (a reason such as <script>alert(1)</script> is shown as
// text)" (README, Security) structurally, beyond the script payloads of
// review 131: text that closes the table cell and opens a forged audit
// row, a form posting elsewhere, a comment swallowing the rest of the
// page, an attribute break-out in the ticket reference, and markup in the
// host of an absolute-form request target (recorded as request_target).
// Each admin page must have exactly as many '<' and '"' as the same story
// with plain text gives it (no element, attribute or comment was added),
// and must show the text itself (escaped, not dropped).
func TestReview146MarkupFromSupportAddsNoElements(t *testing.T) {
	const (
		reason = "</td></tr><tr data-type=\"grant.revoked\"><td>revoked by Alice</td></tr>" +
			"<form action=//evil.example/x method=post><button>Approve</button></form><!--"
		ticket = `T-1"><a href=//evil.example>x</a><base href=//evil.example>`
		host   = `"><svg>`
	)
	plain := review146Markup(t, "plain reason", "T-1", "plain.example")
	marked := review146Markup(t, reason, ticket, host)
	for i := range plain {
		for _, c := range []string{"<", `"`} {
			require.Equal(t, strings.Count(plain[i], c), strings.Count(marked[i], c),
				"page %d: support's text added markup (count of %q)", i, c)
		}
	}
	text := html.UnescapeString(marked[0] + marked[1])
	require.Contains(t, text, reason, "the reason is shown as text")
	require.Contains(t, text, ticket, "the ticket is shown as text")
	require.Contains(t, html.UnescapeString(marked[4]), "http://"+host+"/app/", "the request target is shown as text")
}

// TestReview146ControlAndBidiTextNeverReachesTheAdmin attacks the
// library's input rules as the admin pages rely on them (validate.go:
// "Values ... containing control characters (... bidirectional embedding,
// override and isolate controls count as control characters) ... are
// refused"; identifiers, ticket refs included, "may not contain invisible
// characters either"): a reason or ticket reference that would reorder a
// line of the admin's pending-request list or audit trail (U+202E "RLO",
// an isolate, a C0/C1 control, a lone CR, a line separator) and a ticket
// reference with an invisible or look-alike space (RLM, ALM, ZWSP, BOM,
// NBSP, a tag character, a doubled space) must be refused:
// nothing stored, nothing in the trail, nothing on the admin's pages.
func TestReview146ControlAndBidiTextNeverReachesTheAdmin(t *testing.T) {
	e := newTestEnv(t)
	sam := e.login(samEngineer)
	alice := e.login(aliceAdmin)
	bad := []struct{ field, value string }{}
	for _, r := range []string{"\u202e", "\u202a", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\x00", "\x1b[2J",
		"\u0085", "\u009b", "\u2028", "\u2029", "\r", "\x7f"} {
		bad = append(bad, struct{ field, value string }{"reason", "Need access for ticket 12" + r + "34 granted by alice"})
		bad = append(bad, struct{ field, value string }{"ticket_ref", "SUP-12" + r + "34"})
	}
	for _, r := range []string{"\u200e", "\u200f", "\u061c", "\u200b", "\u200d", "\ufeff", "\u00a0", "\u3000", "\U000E0041", "\u2800", "\u115f"} {
		bad = append(bad, struct{ field, value string }{"ticket_ref", "SUP-12" + r + "34"})
	}
	// (A leading or trailing space is trimmed by the form handler, not refused.)
	bad = append(bad, struct{ field, value string }{"ticket_ref", "SUP  1234"}, struct{ field, value string }{"ticket_ref", "SUP-1 \u200b"})
	for _, b := range bad {
		form := url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}, "reason": {"ok"}, "ticket_ref": {"SUP-1"}}
		form.Set(b.field, b.value)
		r := sam.post("/support/requests", form)
		require.Equal(t, http.StatusBadRequest, r.StatusCode, "%s %+q accepted", b.field, b.value)
		require.NotContains(t, r.Body, b.value, "the refusal does not echo the text")
	}
	rs, err := e.app.m.ListRequests(context.Background(), sa.RequestFilter{TenantID: acmeTenantID})
	require.NoError(t, err)
	require.Empty(t, rs, "nothing was stored")
	require.Empty(t, e.events(acmeTenantID, sa.EventRequestCreated))
	for _, p := range []string{"/admin/support-access", "/admin/audit"} {
		body := alice.get(p).Body
		for _, b := range bad {
			require.NotContains(t, body, b.value, "%s shows %+q", p, b.value)
		}
		require.False(t, strings.ContainsAny(body, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), "%s holds a bidi control", p)
	}
}

// TestReview146RequestTargetCannotReorderTheTrail attacks the one audit
// attribute whose text support types freely, request_target (an
// absolute-form target's host): "Values are one-line text: control
// characters and invalid UTF-8 in what a request ... supplied are
// replaced by U+FFFD" (audit.go). An override or isolate in the host, a
// C1 control or invalid UTF-8 must not reach the admin's audit page as
// such; the request is still listed.
func TestReview146RequestTargetCannotReorderTheTrail(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	hosts := []string{"a\u202eb", "a\u2067b", "a\u2069b", "a\u0085b", "a\xffb", "a\xe2\x80b"}
	for _, h := range hosts {
		res, body := e.sendRaw("GET http://"+h+"/app/ HTTP/1.1\r\n"+review146SupportCookie(sam), "")
		require.Less(t, res.StatusCode, 500, body)
	}
	body := alice.get("/admin/audit?type=support.request").Body
	for _, h := range hosts {
		require.NotContains(t, body, h)
	}
	require.False(t, strings.ContainsAny(body, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u0085"))
	require.Contains(t, body, "http://a\ufffdb/app/", "the request is listed, its control character replaced")
}

// TestReview146DecisionsCannotBeForgedFromASupportPortal attacks CSRF on
// the admin's state-changing actions ("http.NewCrossOriginProtection()
// wraps the whole site, so every POST from another origin is refused",
// README) from where support really controls pages: a sibling subdomain
// of the same site (help centre, ticket attachments: Sec-Fetch-Site
// same-site, SameSite=Lax cookies are sent), another port of the same
// host, and an opaque origin (a sandboxed frame or data: page, Origin:
// null) in a browser that sends no Sec-Fetch-Site. Approve, deny, grant,
// revoke and sign-out must all be refused and change nothing.
func TestReview146DecisionsCannotBeForgedFromASupportPortal(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g := alice.grant(url.Values{})
	sam := e.login(samEngineer)
	req := sam.requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"168h0m0s"}, "scope_write": {"1"}, "scope_messages": {"1"}})
	u, err := url.Parse(e.srv.URL)
	require.NoError(t, err)
	origins := [][]string{
		{"Sec-Fetch-Site", "same-site", "Origin", "http://help." + u.Hostname() + ":" + u.Port()},
		{"Origin", "http://" + u.Hostname() + ":1"},
		{"Origin", "null"},
		{"Origin", "http://localhost:" + u.Port()},
	}
	before := e.auditCount()
	for _, hdr := range origins {
		for _, c := range []struct {
			path string
			form url.Values
		}{
			{"/admin/support-access/requests/" + req.ID.String() + "/approve", url.Values{"duration": {"168h0m0s"}, "scope_write": {"1"}, "scope_messages": {"1"}}},
			{"/admin/support-access/requests/" + req.ID.String() + "/deny", url.Values{"comment": {"x"}}},
			{"/admin/support-access/grants", url.Values{"duration": {"168h0m0s"}, "scope_write": {"1"}, "scope_messages": {"1"}, "grantee": {samEngineer}}},
			{"/admin/support-access/grants/" + g.ID.String() + "/revoke", url.Values{}},
			{"/logout", url.Values{}},
		} {
			r := alice.post(c.path, c.form, hdr...)
			require.Equal(t, http.StatusForbidden, r.StatusCode, "%s with %v", c.path, hdr)
		}
	}
	require.Equal(t, before, e.auditCount(), "nothing was recorded")
	got, err := e.app.m.GetRequest(context.Background(), req.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
	gs := e.grants(t)
	require.Len(t, gs, 1)
	require.Equal(t, sa.StatusActive, gs[0].Status(e.clock.Now()))
	require.Equal(t, http.StatusOK, alice.get("/admin/audit").StatusCode, "Alice is still signed in")
}

// TestReview146PagesShowingSupportTextAreLockedDown attacks "a strict
// Content-Security-Policy forbids scripts and framing" (README) on the
// pages that show what support wrote, as the second line of defence
// should escaping ever fail: the policy must name no source that would
// run or load markup support injected (no 'unsafe-inline', no
// 'unsafe-eval', no wildcard or scheme source, no data:), must forbid
// scripts, plugins, <base>, forms posting elsewhere and framing, and the
// other headers must forbid sniffing, framing and cross-site referrers.
func TestReview146PagesShowingSupportTextAreLockedDown(t *testing.T) {
	e := newTestEnv(t)
	e.login(samEngineer).requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}, "reason": {"<b>x</b>"}})
	alice := e.login(aliceAdmin)
	for _, p := range []string{"/admin/support-access", "/admin/audit", "/admin/audit?type=request.created", "/app/", "/app/settings"} {
		r := alice.get(p)
		require.Equal(t, http.StatusOK, r.StatusCode, p)
		require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/html; charset=utf-8"), p)
		csp := map[string]string{}
		for _, d := range strings.Split(r.Header.Get("Content-Security-Policy"), ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			if name != "" {
				csp[name] = value
			}
			for _, weak := range []string{"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "data:", "http:", "https:", "blob:"} {
				require.NotContains(t, strings.Fields(value), weak, "%s: %s", p, d)
			}
		}
		require.Equal(t, "'self'", csp["default-src"], p)
		require.Equal(t, "'none'", csp["script-src"], p)
		require.Equal(t, "'none'", csp["object-src"], p)
		require.Equal(t, "'none'", csp["base-uri"], p)
		require.Equal(t, "'self'", csp["form-action"], p)
		require.Equal(t, "'none'", csp["frame-ancestors"], p)
		for _, d := range []string{"style-src", "img-src", "style-src-attr", "style-src-elem", "script-src-elem", "script-src-attr", "frame-src", "child-src"} {
			if v, ok := csp[d]; ok {
				require.Contains(t, []string{"'self'", "'none'"}, v, "%s: %s widens the default", p, d)
			}
		}
		require.Equal(t, "DENY", r.Header.Get("X-Frame-Options"), p)
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), p)
		require.Contains(t, []string{"same-origin", "no-referrer", "strict-origin"}, r.Header.Get("Referrer-Policy"), p)
	}
}

// TestReview146SettingsCannotInjectAttributes attacks the only markup
// context support fills on the admin's pages outside text: the tenant
// settings a write grant lets it save. The theme lands in the class
// attribute of every page's <body> ("theme-..."): a theme that closes
// the attribute is refused. The company name lands in the settings
// form's value attribute and the dashboard heading: quotes and markup stay
// text.
func TestReview146SettingsCannotInjectAttributes(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{"scope_write": {"1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	for _, theme := range []string{`light" style="display:none`, "light dark", "light banner", `light"><h1>x</h1>`, "Light", " light"} {
		r := sam.post("/app/settings", url.Values{"company_name": {"Acme"}, "theme": {theme}})
		require.Equal(t, http.StatusBadRequest, r.StatusCode, "theme %q", theme)
	}
	require.Equal(t, "light", e.app.settings.get(acmeTenantID).Theme)
	name := `Acme" autofocus x="<h1>Support access revoked</h1>`
	r := sam.post("/app/settings", url.Values{"company_name": {name}, "theme": {"dark"}})
	require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
	for _, p := range []string{"/app/", "/app/settings", "/admin/audit?type=support.change"} {
		body := alice.get(p).Body
		require.NotContains(t, body, `" autofocus`, p)
		require.NotContains(t, body, "<h1>Support access", p)
		require.Contains(t, body, `<body class="theme-dark">`, p)
	}
}

// TestReview146NoReturnURLToAbuse attacks open redirects in the sign-in
// flow: the demo's login takes no return URL, so any a link or form adds
// (next, return_to, redirect, continue, a Referer) must not move the
// admin off the site after signing in or out.
func TestReview146NoReturnURLToAbuse(t *testing.T) {
	e := newTestEnv(t)
	for _, who := range []string{aliceAdmin, samEngineer} {
		c := e.newClient()
		c.raw = true
		form := url.Values{"user": {who}}
		for _, k := range []string{"next", "return_to", "redirect", "redirect_uri", "continue", "returnUrl", "url"} {
			form.Set(k, "https://evil.example/")
		}
		for _, p := range []string{"/login?next=https://evil.example/&return_to=//evil.example", "/login"} {
			r := c.post(p, form, "Referer", "https://evil.example/phish")
			require.Equal(t, http.StatusSeeOther, r.StatusCode, r.Body)
			require.Contains(t, []string{"/admin/support-access", "/support/"}, r.Header.Get("Location"))
			r = c.post("/logout?next=//evil.example", url.Values{"next": {"//evil.example"}}, "Referer", "https://evil.example/")
			require.Equal(t, "/login", r.Header.Get("Location"))
		}
		r := c.get("/login?next=https://evil.example/")
		require.NotContains(t, r.Body, "evil.example", "the login page does not carry a return URL on")
	}
}

// TestReview146ApprovalShowsWhatIsApproved attacks the request approval
// page ("the admin approves it — possibly shorter or with fewer scopes",
// README; "the request is what the approver is shown and approves",
// Manager.Approve): the scopes and duration the admin sees must be the
// ones the Approve button grants — a read-only request offers no write or
// messages box, an elevated one shows the elevated scope — and the grant
// that carries support's reason is traceable to the request in the trail
// (the grant.created row, whose actor is the admin, names the request).
func TestReview146ApprovalShowsWhatIsApproved(t *testing.T) {
	e := newTestEnv(t)
	sam := e.login(samEngineer)
	readOnly := sam.requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"72h0m0s"}, "reason": {"Alice approved this on the phone"}})
	alice := e.login(aliceAdmin)
	body := alice.get("/admin/support-access").Body
	row := review146Between(body, `data-request="`+readOnly.ID.String()+`"`, "</tr>")
	require.NotEmpty(t, row)
	require.Contains(t, row, "<td>3 days</td>")
	require.Contains(t, row, "<td>read</td>")
	require.NotContains(t, row, "scope_write")
	require.NotContains(t, row, "scope_messages")
	// The select offers only the requested duration and shorter ones.
	require.NotContains(t, row, `value="168h0m0s"`)

	r := alice.post("/admin/support-access/requests/"+readOnly.ID.String()+"/approve", url.Values{"duration": {"72h0m0s"}})
	require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
	gs := e.grants(t)
	require.Len(t, gs, 1)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, gs[0].Scopes)
	audit := alice.get("/admin/audit?type=grant.created").Body
	created := review106AuditRow(audit, "Alice approved this on the phone")
	require.NotEmpty(t, created)
	require.Contains(t, created, readOnly.ID.String(), "the grant carrying support's reason names the request it came from")

	elevated := sam.requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}, "scope_messages": {"1"}})
	row = review146Between(alice.get("/admin/support-access").Body, `data-request="`+elevated.ID.String()+`"`, "</tr>")
	require.Contains(t, row, "<td>messages:read, read</td>")
	require.Contains(t, row, `name="scope_messages"`)
	require.NotContains(t, row, "scope_write")
}

// review146Between returns the part of s from the first from up to the
// next to after it ("" when from is missing).
func review146Between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j >= 0 {
		s = s[:j]
	}
	return s
}

// TestReview146NoDownloadToInject checks the premise of CSV/JSON export
// injection: the admin UI offers no download of the trail (an export a
// spreadsheet would open, with a reason such as =HYPERLINK(...)), so
// none of the usual addresses serves anything but the HTML not-found page.
func TestReview146NoDownloadToInject(t *testing.T) {
	e := newTestEnv(t)
	e.login(samEngineer).requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}, "reason": {`=HYPERLINK("https://evil.example","x")`}})
	alice := e.login(aliceAdmin)
	for _, p := range []string{"/admin/audit.csv", "/admin/audit.json", "/admin/audit/export", "/admin/audit/export.csv", "/admin/export"} {
		r := alice.get(p)
		require.Equal(t, http.StatusNotFound, r.StatusCode, p)
		require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/html"), p)
		require.Empty(t, r.Header.Get("Content-Disposition"), p)
	}
	for _, q := range []string{"format=csv", "format=json", "download=1", "export=csv"} {
		r := alice.get("/admin/audit?" + q)
		require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/html"), q)
		require.Empty(t, r.Header.Get("Content-Disposition"), q)
	}
}
