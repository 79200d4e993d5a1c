package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// sendRaw sends the request line and header lines raw (adding Host, the
// body's headers and the end of the header) to the app on a new connection
// and returns the response with its body read.
func (e *testEnv) sendRaw(raw, body string) (*http.Response, string) {
	e.t.Helper()
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(e.t, err)
	defer conn.Close()
	require.NoError(e.t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	msg := raw + "\r\nHost: " + addr + "\r\nConnection: close\r\n"
	if body != "" {
		msg += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	_, _ = conn.Write([]byte(msg + "\r\n" + body)) // a server that refuses early may stop reading
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.String()
}

// auditCount returns how many events the store holds, by type.
func (e *testEnv) auditCount() map[sa.EventType]int {
	e.t.Helper()
	evs, err := e.store.Events(context.Background(), sa.AuditFilter{})
	require.NoError(e.t, err)
	out := map[sa.EventType]int{}
	for _, ev := range evs {
		out[ev.Type]++
	}
	return out
}

// TestHTTPBadInputsThroughTheApp sends odd requests, byte for byte, to the
// demo app as a support engineer impersonating acme under a read-only
// grant: method overrides (_method, X-HTTP-Method-Override) never turn a
// POST into a read, HEAD and OPTIONS are reads, traversal shapes never
// reach the customer admin pages, invalid UTF-8 and oversized headers are
// refused or handled without a 5xx. No request changes a grant or the
// tenant's settings, and each leaves exactly the audit event asserted.
func TestHTTPBadInputsThroughTheApp(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	admin.grant(url.Values{}) // read only
	support := e.login(samEngineer)
	require.Equal(t, http.StatusOK, support.impersonate(acmeTenantID).StatusCode)
	cookie := "Cookie: " + loginCookie + "=" + support.cookie(loginCookie) + "; " + impersonationCookie + "=" + support.cookie(impersonationCookie)
	form := url.Values{"company_name": {"Evil Corp"}, "theme": {"dark"}}
	req := func(lines ...string) string { return strings.Join(lines, "\r\n") }

	grantsBefore := e.grants(t)
	settingsBefore := e.app.settings.get(acmeTenantID)

	for _, c := range []struct {
		name   string
		raw    string
		body   string
		status int
		event  sa.EventType // the audit event the request leaves ("" none)
		check  func(t *testing.T, resp *http.Response, body string)
	}{
		{name: "post_form_method_get", raw: req("POST /app/settings HTTP/1.1", cookie), body: form.Encode() + "&_method=GET",
			status: http.StatusForbidden, event: sa.EventAccessDenied},
		{name: "post_query_method_get", raw: req("POST /app/settings?_method=GET HTTP/1.1", cookie), body: form.Encode(),
			status: http.StatusForbidden, event: sa.EventAccessDenied},
		{name: "post_override_header_get", raw: req("POST /app/settings HTTP/1.1", cookie, "X-HTTP-Method-Override: GET"), body: form.Encode(),
			status: http.StatusForbidden, event: sa.EventAccessDenied},
		{name: "get_override_post", raw: req("GET /app/settings HTTP/1.1", cookie, "X-HTTP-Method-Override: POST"),
			status: http.StatusForbidden, event: sa.EventAccessDenied},
		{name: "head_is_a_read", raw: req("HEAD /app/settings HTTP/1.1", cookie), status: http.StatusOK, event: sa.EventSupportRequest,
			check: func(t *testing.T, _ *http.Response, body string) { require.Empty(t, body) }},
		{name: "options_is_a_read_without_a_route", raw: req("OPTIONS /app/settings HTTP/1.1", cookie), status: http.StatusMethodNotAllowed, event: sa.EventSupportRequest},
		{name: "lowercase_post", raw: req("post /app/settings HTTP/1.1", cookie), body: form.Encode(), status: http.StatusForbidden, event: sa.EventAccessDenied},
		{name: "put_settings", raw: req("PUT /app/settings HTTP/1.1", cookie), body: form.Encode(), status: http.StatusForbidden, event: sa.EventAccessDenied},
		{name: "traversal_to_admin_is_redirected", raw: req("GET /app/../admin/support-access HTTP/1.1", cookie), status: http.StatusTemporaryRedirect,
			check: func(t *testing.T, resp *http.Response, _ string) {
				require.Equal(t, "/admin/support-access", resp.Header.Get("Location"))
			}},
		{name: "encoded_traversal_stays_in_app", raw: req("GET /app/%2e%2e/admin/support-access HTTP/1.1", cookie), status: http.StatusNotFound, event: sa.EventSupportRequest},
		// Support's attempts on the admin UI during its support session
		// are audited (review65): a GET the read grant admits as the
		// support.request of the 403, a POST as access.denied.
		{name: "admin_page_refuses_support", raw: req("GET /admin/support-access HTTP/1.1", cookie), status: http.StatusForbidden, event: sa.EventSupportRequest},
		{name: "traversal_to_revoke_is_redirected", raw: req("POST /app/../admin/support-access/grants/"+grantsBefore[0].ID.String()+"/revoke HTTP/1.1", cookie),
			status: http.StatusTemporaryRedirect},
		{name: "revoke_refuses_support", raw: req("POST /admin/support-access/grants/"+grantsBefore[0].ID.String()+"/revoke HTTP/1.1", cookie),
			status: http.StatusForbidden, event: sa.EventAccessDenied},
		{name: "encoded_slash_stays_in_app", raw: req("GET /app/..%2fadmin HTTP/1.1", cookie), status: http.StatusNotFound, event: sa.EventSupportRequest},
		{name: "invalid_utf8_path", raw: req("GET /app/\xff\xfe HTTP/1.1", cookie), status: http.StatusNotFound, event: sa.EventSupportRequest,
			check: func(t *testing.T, _ *http.Response, body string) { require.NotContains(t, body, "\xff") }},
		{name: "invalid_utf8_cookie_is_no_login", raw: req("GET /app/settings HTTP/1.1", "Cookie: "+loginCookie+"="+support.cookie(loginCookie)+"\xff"),
			status: http.StatusSeeOther, check: func(t *testing.T, resp *http.Response, _ string) {
				require.Equal(t, "/login", resp.Header.Get("Location"))
			}},
		{name: "oversized_header", raw: req("GET /app/settings HTTP/1.1", cookie, "X-Big: "+strings.Repeat("a", http.DefaultMaxHeaderBytes+8192)),
			status: http.StatusRequestHeaderFieldsTooLarge},
		{name: "oversized_cookie_post", raw: req("POST /app/settings HTTP/1.1", cookie+"; pad="+strings.Repeat("a", http.DefaultMaxHeaderBytes+8192)),
			body: form.Encode(), status: http.StatusRequestHeaderFieldsTooLarge},
		{name: "invalid_utf8_form_value", raw: req("POST /app/settings HTTP/1.1", cookie), body: "company_name=%FF%FE&theme=dark",
			status: http.StatusForbidden, event: sa.EventAccessDenied},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.auditCount()
			resp, body := e.sendRaw(c.raw, c.body)
			require.Equal(t, c.status, resp.StatusCode, body)
			require.Less(t, resp.StatusCode, 500)
			if c.check != nil {
				c.check(t, resp, body)
			}
			after := e.auditCount()
			if c.event != "" {
				before[c.event]++
			}
			require.Equal(t, before, after, "the audit trail grew by exactly the event expected")
			require.Equal(t, settingsBefore, e.app.settings.get(acmeTenantID), "the settings are unchanged")
			gs := e.grants(t)
			require.Equal(t, grantsBefore, gs, "no grant changed")
		})
	}
}
