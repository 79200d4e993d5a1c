package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// review131Store is a memstore with two faults a test can arm: after a
// grant update commits, afterUpdate runs (with the caller's context); and
// while down is set, active-grant lookups fail like a database outage.
type review131Store struct {
	*memstore.Store
	down        atomic.Bool
	afterUpdate atomic.Pointer[func(ctx context.Context)]
}

func (s *review131Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if s.down.Load() {
		return sa.Grant{}, errors.New("review131: database unreachable")
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

func (s *review131Store) UpdateGrant(ctx context.Context, id uuid.UUID, change func(g *sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	g, err := s.Store.UpdateGrant(ctx, id, change)
	if f := s.afterUpdate.Load(); err == nil && f != nil {
		(*f)(ctx)
	}
	return g, err
}

// review131Env is newTestEnv on a review131Store.
func review131Env(t *testing.T) (*testEnv, *review131Store) {
	t.Helper()
	st := &review131Store{Store: memstore.New()}
	return newTestEnvOn(t, st, st.Store), st
}

// review131SessionResumed reports whether sam's support session, started
// under the first grant, served the request it just made under a later
// grant: a 200 whose support.request carries the same audit session ID as
// the first one.
func review131SessionResumed(t *testing.T, e *testEnv, r resp) bool {
	t.Helper()
	evs := e.events(acmeTenantID, sa.EventSupportRequest)
	require.NotEmpty(t, evs)
	first, last := evs[0], evs[len(evs)-1]
	return r.StatusCode == http.StatusOK && first.Attrs[sa.AttrSessionID] == last.Attrs[sa.AttrSessionID]
}

// TestReview131RevokeDuringOutageEndsSupportSessions attacks the README's
// promise "A support session ends ... at once when a grant is revoked ...
// (the app's Notifier), so a later grant starts new sessions instead of
// reviving old ones". The Notifier (access.go notified) ends a session
// only when its Check answers ErrNoActiveGrant: if the store cannot
// answer that Check (a blip right after the revocation committed), the
// session of the revoked grant lives on, and resumes under the next
// grant. Must fail: a revoked grant's session is over whatever the
// store answers afterwards.
func TestReview131RevokeDuringOutageEndsSupportSessions(t *testing.T) {
	e, st := review131Env(t)
	alice := e.login(aliceAdmin)
	g := alice.grant(url.Values{"reason": {"ticket 1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)

	down := func(context.Context) { st.down.Store(true) }
	st.afterUpdate.Store(&down)
	r := alice.post("/admin/support-access/grants/"+g.ID.String()+"/revoke", nil)
	st.afterUpdate.Store(nil)
	st.down.Store(false)
	require.Contains(t, r.Body, "Support access revoked")

	require.Equal(t, http.StatusOK, sam.get("/support/").StatusCode)
	e.clock.Advance(time.Hour)
	alice.grant(url.Values{"reason": {"ticket 2"}})
	r = sam.get("/app/settings")
	require.False(t, review131SessionResumed(t, e, r), "the revoked grant's support session resumed under the new grant")
}

// TestReview131RevokeFromAClosedTabEndsSupportSessions attacks the same
// promise through the context: the library hands the Notifier the
// caller's context, "which may have ended by then (a closed browser
// tab ...)" (notify.go). Alice clicks Revoke and her connection drops
// right after the revocation commits; the Notifier's Check then fails
// with the cancelled context and the session is kept. Must fail.
func TestReview131RevokeFromAClosedTabEndsSupportSessions(t *testing.T) {
	e, st := review131Env(t)
	alice := e.login(aliceAdmin)
	g := alice.grant(url.Values{"reason": {"ticket 1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)

	clientCtx, closeTab := context.WithCancel(context.Background())
	defer closeTab()
	var serverSawClose atomic.Bool
	hook := func(ctx context.Context) {
		closeTab() // the browser goes away right after the commit
		select {
		case <-ctx.Done():
			serverSawClose.Store(true)
		case <-time.After(5 * time.Second):
		}
	}
	st.afterUpdate.Store(&hook)
	req, err := http.NewRequestWithContext(clientCtx, http.MethodPost, e.srv.URL+"/admin/support-access/grants/"+g.ID.String()+"/revoke", strings.NewReader(""))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, err := alice.hc.Do(req); err == nil {
		_ = res.Body.Close()
	}
	require.Eventually(t, func() bool {
		gs := e.grants(t)
		return len(gs) == 1 && gs[0].Status(e.clock.Now()) == sa.StatusRevoked
	}, 5*time.Second, 10*time.Millisecond)
	// The commit shows before the hook sees the server notice the closed
	// connection (net/http's background read finds it): wait for both.
	require.Eventually(t, serverSawClose.Load, 5*time.Second, 10*time.Millisecond, "the server noticed the closed connection")
	st.afterUpdate.Store(nil)

	require.Equal(t, http.StatusOK, sam.get("/support/").StatusCode)
	e.clock.Advance(time.Hour)
	alice.grant(url.Values{"reason": {"ticket 2"}})
	r := sam.get("/app/settings")
	require.False(t, review131SessionResumed(t, e, r), "the revoked grant's support session resumed under the new grant")
}

// TestReview131ExpiryBeforeSweepEndsSupportSessions attacks the README's
// "at once when a grant ... expires": the Notifier hears of an expiry
// only when Sweep records it (every 30 s in main.go, never in a host
// that runs no sweeper, which SECURITY.md calls optional). A grant that
// expired, followed by a new grant before the next Sweep, revives the
// old session. Must fail: the session of an expired grant is over.
func TestReview131ExpiryBeforeSweepEndsSupportSessions(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{"reason": {"ticket 1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	e.clock.Advance(24*time.Hour + 10*time.Second) // expired, not swept yet
	alice.grant(url.Values{"reason": {"ticket 2"}})
	r := sam.get("/app/settings")
	require.False(t, review131SessionResumed(t, e, r), "the expired grant's support session resumed under the new grant")
}

// TestReview131NoOpenRedirect attacks the server's redirects with URL
// shapes that turn a path into another host (protocol-relative "//host",
// backslashes, encoded slashes, dot segments): every Location the app
// sends must stay on this site.
func TestReview131NoOpenRedirect(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	cookie := "Cookie: " + loginCookie + "=" + alice.cookie(loginCookie)
	for _, target := range []string{
		"//evil.example/", "//evil.example/%2e%2e", "/\\evil.example/", "/%2F%2Fevil.example/", "/.//evil.example/",
		"///evil.example/", "/app/..//evil.example/", "/admin/..//evil.example", "/static//evil.example/",
		"/%5Cevil.example", "/app", "/admin", "/support", "//", "/./", "/app/.//%2F/evil.example",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			resp, body := e.sendRaw(method+" "+target+" HTTP/1.1\r\n"+cookie, "x=1")
			require.Less(t, resp.StatusCode, 500, "%s %s: %s", method, target, body)
			loc := resp.Header.Get("Location")
			if loc == "" {
				continue
			}
			u, err := url.Parse(loc)
			require.NoError(t, err)
			require.Empty(t, u.Host, "%s %s redirects off site to %q", method, target, loc)
			require.True(t, strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && !strings.HasPrefix(loc, "/\\"),
				"%s %s: Location %q a browser may read as another host", method, target, loc)
		}
	}
}

// TestReview131EveryResponseIsUncacheableAndUnframeable attacks the
// security headers on the answers the handlers do not render themselves
// (net/http's 405, redirects, the CSRF refusal, 413, the plain 500, the
// static file server): an authenticated page kept by a shared cache or
// framed by another site would leak or be clickjacked.
func TestReview131EveryResponseIsUncacheableAndUnframeable(t *testing.T) {
	e, st := review131Env(t)

	alice := e.login(aliceAdmin)
	alice.raw = true
	sam := e.login(samEngineer)
	sam.raw = true
	check := func(name string, r resp) {
		t.Helper()
		if name != "static-404" { // net/http's file server drops Cache-Control on its errors (nothing secret there)
			require.Equal(t, "no-store", r.Header.Get("Cache-Control"), name)
		}
		require.Equal(t, "DENY", r.Header.Get("X-Frame-Options"), name)
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), name)
		require.Contains(t, r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", name)
	}
	check("405", alice.get("/logout"))
	check("redirect", alice.get("/"))
	check("csrf", alice.post("/admin/support-access/grants", url.Values{}, "Sec-Fetch-Site", "cross-site"))
	check("413", alice.post("/admin/support-access/grants", url.Values{"reason": {strings.Repeat("a", maxFormBytes)}}))
	check("static", alice.get("/static/style.css"))
	check("static-404", alice.get("/static/nope.css"))
	check("support-403", sam.get("/admin/audit"))
	st.down.Store(true)
	r := sam.get("/support/")
	require.Equal(t, http.StatusInternalServerError, r.StatusCode)
	require.NotContains(t, r.Body, "database unreachable", "the 500 page hides the error")
	check("500", r)
}

// TestReview131GetDoesNotChangeState attacks the state-changing routes
// with GET and HEAD (a link or an <img> on another site sends those with
// the Lax login cookie): nothing may change — no sign-out, no grant, no
// revocation, no support session.
func TestReview131GetDoesNotChangeState(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g := alice.grant(url.Values{})
	sam := e.login(samEngineer)
	q := "?duration=24h0m0s&tenant=acme&user=" + url.QueryEscape(samEngineer)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, c := range []struct {
			who  *client
			path string
		}{
			{alice, "/logout"}, {alice, "/admin/support-access/grants" + q},
			{alice, "/admin/support-access/grants/" + g.ID.String() + "/revoke"},
			{sam, "/support/impersonate" + q}, {sam, "/support/requests" + q}, {sam, "/login" + q},
		} {
			req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+c.path, nil)
			require.NoError(t, err)
			c.who.raw = true
			r := c.who.do(req)
			c.who.raw = false
			require.Less(t, r.StatusCode, 500, "%s %s", method, c.path)
		}
	}
	require.Len(t, e.grants(t), 1)
	require.Equal(t, sa.StatusActive, e.grants(t)[0].Status(e.clock.Now()))
	require.Empty(t, sam.cookie(impersonationCookie))
	require.Empty(t, e.app.sessions.impersonationsOf(acmeTenantID))
	rs, err := e.app.m.ListRequests(context.Background(), sa.RequestFilter{})
	require.NoError(t, err)
	require.Empty(t, rs)
	require.Equal(t, http.StatusOK, alice.get("/admin/support-access").StatusCode, "still signed in")
}

// review131Payloads are markup a stored or echoed field could carry.
var review131Payloads = []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`, `'><svg onload=alert(1)>`}

// TestReview131StoredXSSFromSupport attacks the admin pages with every
// field support controls: a request's reason and ticket, the company name
// support saves with a write grant (dashboard, settings, audit before and
// after, layout title), and the paths support opens (audit page). Each
// must be shown as text: none of the payloads appears unescaped.
func TestReview131StoredXSSFromSupport(t *testing.T) {
	e := newTestEnv(t)
	sam := e.login(samEngineer)
	for i, p := range review131Payloads {
		r := sam.post("/support/requests", url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"},
			"reason": {p}, "ticket_ref": {"T-" + p}})
		require.Less(t, r.StatusCode, 500, i)
	}
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{"scope_write": {"1"}, "reason": {review131Payloads[0]}, "ticket_ref": {review131Payloads[1]}})
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	for _, p := range review131Payloads {
		sam.post("/app/settings", url.Values{"company_name": {p}, "theme": {"dark"}})
		sam.get("/app/" + url.PathEscape(p))
	}
	pages := []string{
		alice.get("/admin/support-access").Body, alice.get("/admin/audit").Body,
		alice.get("/admin/audit?type=support.change").Body, alice.get("/app/").Body, alice.get("/app/settings").Body,
		sam.get("/support/").Body, sam.get("/app/").Body,
	}
	for i, body := range pages {
		for _, p := range review131Payloads {
			require.NotContains(t, body, p, "page %d", i)
		}
		require.NotContains(t, body, "<script", "page %d", i)
		require.NotContains(t, body, "<img", "page %d", i)
		require.NotContains(t, body, "<svg", "page %d", i)
	}
}

// TestReview131QueryParametersAreNotReflected attacks the audit page's
// filter parameters (the only query string a page reads): markup or text
// a link chose must not be shown back to the admin.
func TestReview131QueryParametersAreNotReflected(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	for _, p := range append(review131Payloads, "CALL-0800-EVIL") {
		for _, k := range []string{"type", "since", "until", "page", "support"} {
			r := alice.get("/admin/audit?" + url.Values{k: {p}}.Encode())
			require.Equal(t, http.StatusOK, r.StatusCode)
			require.NotContains(t, r.Body, p, "?%s=%s is reflected", k, p)
			require.NotContains(t, r.Body, "CALL-0800", "?%s= is reflected", k)
		}
	}
}

// TestReview131ForeignSupportSessionCookieIsUseless attacks the binding
// of a support session to its engineer's login: support+acme (or Alice)
// presenting Sam's support session cookie with their own login must not
// act as Sam, nor enter the tenant at all without a session of its own.
func TestReview131ForeignSupportSessionCookieIsUseless(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{"grantee": {samEngineer}, "scope_messages": {"1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	stolen := sam.cookie(impersonationCookie)
	require.NotEmpty(t, stolen)
	before := len(e.events(acmeTenantID, sa.EventSupportRequest))
	for _, thief := range []string{supportAcme, ginaAdmin} {
		c := e.login(thief)
		r := review126WithCookies(t, e, "/app/messages", loginCookie, c.cookie(loginCookie), impersonationCookie, stolen)
		require.NotContains(t, r.Body, "@acme.example</td>", thief)
		require.NotContains(t, r.Body, "Acme Corporation", thief)
	}
	evs := e.events(acmeTenantID, sa.EventSupportRequest)
	require.Len(t, evs, before, "nothing was recorded under Sam's session")
	require.Equal(t, http.StatusOK, sam.get("/app/messages").StatusCode, "Sam's own session is untouched")
}

// TestReview131CrossTenantIDsInOtherSpellings attacks tenantGrant and
// tenantRequest with the other spellings uuid.Parse accepts for an ID
// (upper case, braces, urn:uuid:, no dashes): Gina of globex must still
// get a 404 for acme's grant and request, and nothing changes.
func TestReview131CrossTenantIDsInOtherSpellings(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g := alice.grant(url.Values{})
	req := e.login(samEngineer).requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
	gina := e.login(ginaAdmin)
	spell := func(id uuid.UUID) []string {
		s := id.String()
		return []string{strings.ToUpper(s), "%7B" + s + "%7D", "urn:uuid:" + s, strings.ReplaceAll(s, "-", "")}
	}
	for _, id := range spell(g.ID) {
		r := gina.post("/admin/support-access/grants/"+id+"/revoke", url.Values{"reason": {"mine now"}})
		require.Equal(t, http.StatusNotFound, r.StatusCode, id)
	}
	for _, id := range spell(req.ID) {
		for _, action := range []string{"approve", "deny"} {
			r := gina.post("/admin/support-access/requests/"+id+"/"+action, url.Values{"duration": {"24h0m0s"}})
			require.Equal(t, http.StatusNotFound, r.StatusCode, "%s %s", action, id)
		}
	}
	gs := e.grants(t)
	require.Len(t, gs, 1)
	require.Equal(t, sa.StatusActive, gs[0].Status(e.clock.Now()))
	got, err := e.app.m.GetRequest(context.Background(), req.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
	require.Empty(t, e.events("globex", sa.EventGrantRevoked))
}

// TestReview131SupportCannotApproveItsOwnRequest attacks "Support never
// lets itself in": Sam, inside acme with a write grant (so POSTs pass the
// middleware), asks for the elevated messages scope and then submits the
// approve form of the customer admin page as the impersonated admin, and
// also outside any support session. Both must be refused and the request
// stay pending, with no new grant.
func TestReview131SupportCannotApproveItsOwnRequest(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{"scope_write": {"1"}, "grantee": {samEngineer}})
	sam := e.login(samEngineer)
	req := sam.requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}, "scope_messages": {"1"}, "scope_write": {"1"}})
	for _, inside := range []bool{false, true} {
		if inside {
			require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
		}
		r := sam.post("/admin/support-access/requests/"+req.ID.String()+"/approve",
			url.Values{"duration": {"24h0m0s"}, "scope_messages": {"1"}, "scope_write": {"1"}})
		require.Equal(t, http.StatusForbidden, r.StatusCode, "inside=%v", inside)
		r = sam.post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}, "scope_messages": {"1"}})
		require.Equal(t, http.StatusForbidden, r.StatusCode, "inside=%v", inside)
	}
	got, err := e.app.m.GetRequest(context.Background(), req.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
	require.Len(t, e.grants(t), 1)
	require.Equal(t, http.StatusForbidden, sam.get("/app/messages").StatusCode, "no messages scope")
}

// TestReview131GenericSupportStaysInItsTenant attacks tenantsFor: acme
// grants "any support agent"; the generic support user of globex tries
// to enter acme (impersonate) and to ask acme for access. Both are
// refused, and it never sees acme's pages.
func TestReview131GenericSupportStaysInItsTenant(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{"scope_messages": {"1"}})
	g := e.login("support+globex@vendor.example")
	r := g.impersonate(acmeTenantID)
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.Empty(t, g.cookie(impersonationCookie))
	r = g.get("/app/messages")
	require.NotContains(t, r.Body, "merger timeline")
	r = g.post("/support/requests", url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	rs, err := e.app.m.ListRequests(context.Background(), sa.RequestFilter{TenantID: acmeTenantID})
	require.NoError(t, err)
	require.Empty(t, rs)
	require.NotContains(t, g.get("/support/").Body, "Acme")
}

// TestReview131AuditPageExtremeTimes attacks the audit filter with the
// extremes datetime-local accepts (year 1 and year 9999, whose To is
// moved a minute on, into year 10000) and a range holding everything:
// the page must answer, not fail with a 5xx.
func TestReview131AuditPageExtremeTimes(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{})
	for _, q := range []string{
		"since=0001-01-01T00:00", "until=9999-12-31T23:59", "since=0001-01-01T00:00&until=9999-12-31T23:59",
		"since=9999-12-31T23:59", "until=0001-01-01T00:00", "page=-9223372036854775808", "page=9223372036854775807",
	} {
		r := alice.get("/admin/audit?" + q)
		require.Equal(t, http.StatusOK, r.StatusCode, q)
	}
	r := alice.get("/admin/audit?since=0001-01-01T00:00&until=9999-12-31T23:59")
	require.Contains(t, r.Body, "grant.created")
}

// TestReview131GrantStartOutsideTheWindow attacks the grant dialog's
// optional start: one in the past must not make a grant that started
// before it was made (a window the trail never saw), one beyond the
// policy's 30 days ahead must be refused; neither stores anything odd.
func TestReview131GrantStartOutsideTheWindow(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	r := alice.post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}, "starts_at": {t0.Add(-48 * time.Hour).Format(formTimeLayout)}})
	require.Less(t, r.StatusCode, 500)
	for _, g := range e.grants(t) {
		require.False(t, g.StartsAt.Before(g.CreatedAt), "a grant starting before it was made: %v < %v", g.StartsAt, g.CreatedAt)
	}
	n := len(e.grants(t))
	r = alice.post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}, "starts_at": {t0.Add(31 * 24 * time.Hour).Format(formTimeLayout)}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Len(t, e.grants(t), n)
	r = alice.post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}, "starts_at": {"10000-01-01T00:00"}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Len(t, e.grants(t), n)
}

// TestReview131ConcurrentApprovalsMakeOneGrant attacks the approve form
// with a double submission (two tabs, a double click): exactly one grant.
func TestReview131ConcurrentApprovalsMakeOneGrant(t *testing.T) {
	e := newTestEnv(t)
	req := e.login(samEngineer).requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
	alice := e.login(aliceAdmin)
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Go(func() {
			body := url.Values{"duration": {"24h0m0s"}}.Encode()
			hreq, err := http.NewRequest(http.MethodPost, e.srv.URL+"/admin/support-access/requests/"+req.ID.String()+"/approve", strings.NewReader(body))
			if err != nil {
				return
			}
			hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			hreq.AddCookie(&http.Cookie{Name: loginCookie, Value: alice.cookie(loginCookie)})
			res, err := http.DefaultTransport.RoundTrip(hreq)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		require.NotZero(t, c)
		require.Less(t, c, 500)
		if c == http.StatusSeeOther {
			ok++
		}
	}
	require.Equal(t, 1, ok, "codes %v", codes)
	require.Len(t, e.grants(t), 1)
	require.Len(t, e.events(acmeTenantID, sa.EventRequestApproved), 1)
}

// TestReview131SupportProbesOfTheAuditTrailLeakNothing attacks the
// customer-only pages with the read methods a read grant admits (GET,
// HEAD, OPTIONS) and query strings: support inside acme must not get the
// audit log, the grant list or a request ID, whatever the method.
func TestReview131SupportProbesOfTheAuditTrailLeakNothing(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g := alice.grant(url.Values{"reason": {"secret-reason-131"}})
	sam := e.login(samEngineer)
	sam.requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}, "reason": {"pending-131"}})
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	sam.raw = true
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
		for _, p := range []string{"/admin/audit", "/admin/audit?support=1&page=1", "/admin/support-access", "/admin/support-access/", "/admin/support-access/grants/" + g.ID.String(), "/admin/"} {
			req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+p, nil)
			require.NoError(t, err)
			r := sam.do(req)
			require.Contains(t, []int{http.StatusForbidden, http.StatusMovedPermanently, http.StatusTemporaryRedirect}, r.StatusCode, "%s %s", method, p)
			for _, secret := range []string{"secret-reason-131", "pending-131", "grant.created", g.ID.String()} {
				require.NotContains(t, r.Body, secret, "%s %s", method, p)
			}
		}
	}
}

// TestReview131CookieAttributes attacks the cookies' scope: both session
// cookies are HttpOnly, host-only (no Domain: a sibling subdomain must
// not receive them), site-wide, Lax or Strict, and deleted with the same
// attributes they were set with.
func TestReview131CookieAttributes(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{})
	sam := e.newClient()
	sam.raw = true
	r := sam.post("/login", url.Values{"user": {samEngineer}})
	ck := r.setsCookie(loginCookie)
	require.NotNil(t, ck)
	require.True(t, ck.HttpOnly)
	require.Empty(t, ck.Domain)
	require.Equal(t, "/", ck.Path)
	require.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	require.GreaterOrEqual(t, len(ck.Value), 52, "256 random bits")
	r = sam.impersonate(acmeTenantID)
	ck = r.setsCookie(impersonationCookie)
	require.NotNil(t, ck)
	require.True(t, ck.HttpOnly)
	require.Empty(t, ck.Domain)
	require.Equal(t, "/", ck.Path)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	r = sam.post("/support/stop", nil)
	ck = r.setsCookie(impersonationCookie)
	require.NotNil(t, ck)
	require.Equal(t, "/", ck.Path)
	require.Less(t, ck.MaxAge, 0)
}

// TestReview131AuditPageExtremeTimesOnDatabases repeats the extreme
// audit filters on the SQL stores (SQLite, the demo's default, and
// PostgreSQL and MariaDB when reachable), whose time columns a year-1 or
// year-10000 bound could overflow: the page must still answer.
func TestReview131AuditPageExtremeTimesOnDatabases(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, e *testEnv) {
		alice := e.login(aliceAdmin)
		alice.grant(url.Values{})
		for _, q := range []string{
			"since=0001-01-01T00:00", "until=9999-12-31T23:59", "since=0001-01-01T00:00&until=9999-12-31T23:59",
			"since=9999-12-31T23:59", "until=0001-01-01T00:00",
		} {
			r := alice.get("/admin/audit?" + q)
			require.Equal(t, http.StatusOK, r.StatusCode, q)
		}
		require.Contains(t, alice.get("/admin/audit?since=0001-01-01T00:00&until=9999-12-31T23:59").Body, "grant.created")
	}
	t.Run("sqlite", func(t *testing.T) {
		st, closer, _, err := openStore(ctx, options{Dialect: "sqlite", Data: t.TempDir()})
		require.NoError(t, err)
		e := startOn(t, st, closer)
		defer e.stop()
		run(t, e)
	})
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			db := sqltest.Open(t, d)
			prefix := sqltest.NewPrefix()
			t.Cleanup(func() { require.NoError(t, sqltest.DropTables(context.Background(), db, d, prefix)) })
			st, closer, _, err := openStore(ctx, options{Dialect: d.String(), DSN: sqltest.DSN(d), tablePrefix: prefix})
			require.NoError(t, err)
			e := startOn(t, st, closer)
			defer e.stop()
			run(t, e)
		})
	}
}

// TestSupportSessionContinuesAcrossOverlappingGrants is the other side of
// TestReview131ExpiryBeforeSweepEndsSupportSessions: a grant given while
// the session's grant still runs continues the session past that grant's
// end — before the expiry is swept, and after Sweep tells the Notifier.
func TestSupportSessionContinuesAcrossOverlappingGrants(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{"reason": {"ticket 1"}}) // 24 h
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	e.clock.Advance(12 * time.Hour)
	alice.grant(url.Values{"reason": {"ticket 2"}}) // from 12 h to 36 h
	e.clock.Advance(13 * time.Hour)                 // the first ended an hour ago, unswept
	r := sam.get("/app/settings")
	require.True(t, review131SessionResumed(t, e, r), "covered without a gap: the session goes on (status %d)", r.StatusCode)

	n, err := e.app.m.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n, "the first grant's expiry is recorded and notified")
	r = sam.get("/app/settings")
	require.True(t, review131SessionResumed(t, e, r), "the Notifier keeps a session the second grant continues (status %d)", r.StatusCode)

	e.clock.Advance(12 * time.Hour) // the second ended too
	alice.grant(url.Values{"reason": {"ticket 3"}})
	r = sam.get("/app/settings")
	require.False(t, review131SessionResumed(t, e, r), "after a gap the session is over")
	require.Contains(t, r.Body, "Support access ended")
}

// TestSupportSessionContinuesAfterExtend: the customer extends the
// session's grant (Manager.Extend); a request after the grant's first end
// continues the session, which now knows the new end.
func TestSupportSessionContinuesAfterExtend(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g := alice.grant(url.Values{"reason": {"ticket 1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	_, err := e.app.m.Extend(context.Background(), g.ID, g.ExpiresAt.Add(24*time.Hour), sa.Actor{Kind: sa.ActorCustomer, ID: aliceAdmin})
	require.NoError(t, err)
	e.clock.Advance(30 * time.Hour)
	r := sam.get("/app/settings")
	require.True(t, review131SessionResumed(t, e, r), "the extended grant continues the session (status %d)", r.StatusCode)
	e.clock.Advance(30 * time.Hour) // past the new end
	alice.grant(url.Values{"reason": {"ticket 2"}})
	r = sam.get("/app/settings")
	require.False(t, review131SessionResumed(t, e, r), "a grant after the extended one's end does not revive the session")
}
