package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// review126WithCookies sends a GET of path carrying exactly the given
// cookies (name, value pairs), without the client's jar.
func review126WithCookies(t *testing.T, e *testEnv, path string, nv ...string) resp {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, e.srv.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(nv); i += 2 {
		req.AddCookie(&http.Cookie{Name: nv[i], Value: nv[i+1]})
	}
	c := e.newClient()
	c.raw = true
	return c.do(req)
}

// TestReview126ReloginEndsThePreviousSession pins that signing in again in
// the same browser ends the earlier login session on the server and
// decides the landing page by the new session alone.
func TestReview126ReloginEndsThePreviousSession(t *testing.T) {
	e := newTestEnv(t)
	c := e.login(aliceAdmin)
	old := c.cookie(loginCookie)
	require.NotEmpty(t, old)
	c.raw = true
	r := c.post("/login", url.Values{"user": {samEngineer}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "/support/", r.Header.Get("Location"), "the new user's start page, not the old cookie's")
	require.NotEqual(t, old, c.cookie(loginCookie))

	replay := review126WithCookies(t, e, "/admin/support-access", loginCookie, old)
	require.Equal(t, http.StatusSeeOther, replay.StatusCode)
	require.Equal(t, "/login", replay.Header.Get("Location"), "the replaced login session is dead")
}

// TestReview126LoginAndLogoutClearTheSupportSessionCookie pins that
// signing in and signing out both delete the support session cookie.
func TestReview126LoginAndLogoutClearTheSupportSessionCookie(t *testing.T) {
	for _, path := range []string{"/login", "/logout"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			e := newTestEnv(t)
			e.login(aliceAdmin).grant(url.Values{})
			sam := e.login(samEngineer)
			require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
			require.NotEmpty(t, sam.cookie(impersonationCookie))
			sam.raw = true
			r := sam.post(path, url.Values{"user": {samEngineer}})
			require.Equal(t, http.StatusSeeOther, r.StatusCode)
			ck := r.setsCookie(impersonationCookie)
			require.NotNil(t, ck, "%s does not touch the support session cookie", path)
			require.Empty(t, ck.Value)
			require.Less(t, ck.MaxAge, 0, "the cookie is deleted")
			require.Empty(t, sam.cookie(impersonationCookie))
		})
	}
}

// TestReview126CustomerFormsAreBounded pins the form limit on the customer
// admin routes (customerOnly's limitForms): an oversized grant form is a
// 413 and grants nothing.
func TestReview126CustomerFormsAreBounded(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	r := alice.post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}, "reason": {strings.Repeat("a", maxFormBytes+1)}})
	require.Equal(t, http.StatusRequestEntityTooLarge, r.StatusCode)
	require.Empty(t, e.grants(t))
}

// TestReview126SupportSessionEndsAtItsLifetime pins impersonationTTL as an
// exclusive bound: at exactly impersonationTTL the support session is over
// even while a grant still covers it.
func TestReview126SupportSessionEndsAtItsLifetime(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{"duration": {"168h0m0s"}})
	// A second grant covers the tenant past the support session's end.
	r := alice.post("/admin/support-access/grants", url.Values{"duration": {"168h0m0s"}, "starts_at": {"2031-03-13T09:00"}})
	require.Equal(t, http.StatusOK, r.StatusCode, r.Body)
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	e.clock.Advance(impersonationTTL - time.Microsecond)
	require.Equal(t, http.StatusOK, sam.get("/app/").StatusCode)
	e.clock.Advance(time.Microsecond)
	r = sam.get("/app/")
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.Contains(t, r.Body, "Your support session ended")
	require.Empty(t, sam.cookie(impersonationCookie))
}

// TestReview126LogoutEndsTheLoginsSupportSessions pins that logout drops
// the server-side support sessions of that login at once.
func TestReview126LogoutEndsTheLoginsSupportSessions(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	require.Len(t, e.app.sessions.impersonationsOf(acmeTenantID), 1)
	sam.post("/logout", nil)
	require.Empty(t, e.app.sessions.impersonationsOf(acmeTenantID))
}

// TestReview126NewSupportSessionEndsThePreviousOne pins that starting a
// support session of another tenant ends the login's earlier one: its
// cookie (a tab left open) no longer opens the first tenant's pages.
func TestReview126NewSupportSessionEndsThePreviousOne(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{})
	e.login(ginaAdmin).grant(url.Values{})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	first := sam.cookie(impersonationCookie)
	require.Equal(t, http.StatusOK, sam.impersonate("globex").StatusCode)
	require.NotEqual(t, first, sam.cookie(impersonationCookie))

	r := review126WithCookies(t, e, "/app/settings", loginCookie, sam.cookie(loginCookie), impersonationCookie, first)
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.Contains(t, r.Body, "Your support session ended")
	require.NotContains(t, r.Body, `value="Acme Corporation"`)
}

// TestReview126FlashIsShownOnce pins that the one-shot message is cleared
// once a page showed it.
func TestReview126FlashIsShownOnce(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{})
	r := alice.get("/admin/support-access")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.NotContains(t, r.Body, `id="flash"`)
}

// TestReview126SupportSessionsHaveDistinctAuditIDs pins that every support
// session gets its own audit session id: two engineers, and one engineer's
// two sessions, are told apart in the trail.
func TestReview126SupportSessionsHaveDistinctAuditIDs(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{})
	sessionOf := func(c *client) string {
		t.Helper()
		require.Equal(t, http.StatusOK, c.impersonate(acmeTenantID).StatusCode)
		evs := e.events(acmeTenantID, sa.EventSupportRequest)
		require.NotEmpty(t, evs)
		sid := evs[len(evs)-1].Attrs[sa.AttrSessionID]
		require.NotEmpty(t, sid)
		return sid
	}
	sam := e.login(samEngineer)
	a := sessionOf(sam)
	b := sessionOf(e.login(supportAcme))
	c := sessionOf(sam)
	require.NotEqual(t, a, b, "two engineers' sessions")
	require.NotEqual(t, a, c, "two sessions of one engineer")
}

// TestReview126RefusalLeavesOtherSessionsAlone pins the OnSessionEnded
// hook: the refusal of one engineer's support session ends that session
// only, not another engineer's in another tenant.
func TestReview126RefusalLeavesOtherSessionsAlone(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{})
	acme := e.login(supportAcme)
	require.Equal(t, http.StatusOK, acme.impersonate(acmeTenantID).StatusCode)
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusForbidden, sam.impersonate("globex").StatusCode, "globex granted nothing")
	r := acme.get("/app/settings")
	require.Equal(t, http.StatusOK, r.StatusCode, "support+acme's session was ended by sam's refusal")
	require.Len(t, e.app.sessions.impersonationsOf(acmeTenantID), 1)
}

// TestReview126ScheduledGrantFlashNamesItsStart pins the flash of a grant
// that starts later: "scheduled from … until …", not "granted until".
func TestReview126ScheduledGrantFlashNamesItsStart(t *testing.T) {
	e := newTestEnv(t)
	r := e.login(aliceAdmin).post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}, "starts_at": {"2031-03-12T08:30"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, r.Body, "Support access scheduled from 2031-03-12 08:30 UTC until 2031-03-13 08:30 UTC.")
	require.NotContains(t, r.Body, "Support access granted until")
}

// TestReview126MessagesScopeAloneAddsNoWrite pins that ticking only the
// messages scope grants read and messages:read, never write.
func TestReview126MessagesScopeAloneAddsNoWrite(t *testing.T) {
	e := newTestEnv(t)
	g := e.login(aliceAdmin).grant(url.Values{"scope_messages": {"1"}})
	require.ElementsMatch(t, []sa.Scope{sa.ScopeRead, scopeMessages}, g.Scopes)
}

// TestReview126StatusForMapsEachSentinel pins the HTTP status of every
// library error class (a refusal is 403, an unknown object 404).
func TestReview126StatusForMapsEachSentinel(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("x: %w", sa.ErrInvalidInput):    http.StatusBadRequest,
		fmt.Errorf("x: %w", sa.ErrForbidden):       http.StatusForbidden,
		fmt.Errorf("x: %w", sa.ErrNotFound):        http.StatusNotFound,
		fmt.Errorf("x: %w", errors.ErrUnsupported): http.StatusNotImplemented,
		errors.New("database is on fire"):          http.StatusInternalServerError,
	} {
		require.Equal(t, want, statusFor(err), err.Error())
	}
}

// TestReview126RevokeKeepsTheReason pins that the revoke form's reason
// reaches the grant (and so the audit trail).
func TestReview126RevokeKeepsTheReason(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	g := alice.grant(url.Values{})
	r := alice.post("/admin/support-access/grants/"+g.ID.String()+"/revoke", url.Values{"reason": {"  ticket closed  "}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	got, err := e.app.m.Get(context.Background(), g.ID)
	require.NoError(t, err)
	require.Equal(t, "ticket closed", got.RevokeReason)
}

// TestReview126InputErrorShowsOnlyTheDetail pins userMessage: the page
// shows the field-naming detail after the sentinel, without the library's
// "supportaccess: invalid input" prefix.
func TestReview126InputErrorShowsOnlyTheDetail(t *testing.T) {
	e := newTestEnv(t)
	r := e.login(aliceAdmin).post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}, "reason": {strings.Repeat("x", 2001)}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Contains(t, r.Body, `<p class="error" id="error" role="alert">Reason is longer`)
	require.NotContains(t, r.Body, "invalid input")
	require.NotContains(t, r.Body, "upportaccess:")
}

// TestReview126ExpiryEndsSupportSessions pins the notifier's handling of
// grant.expired: the expiry sweep ends the sessions the grant covered,
// also one whose next request is the console, so a later grant does not
// revive it.
func TestReview126ExpiryEndsSupportSessions(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	require.Equal(t, http.StatusOK, sam.get("/support/").StatusCode)
	e.clock.Advance(24 * time.Hour)
	n, err := e.app.m.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Empty(t, e.app.sessions.impersonationsOf(acmeTenantID), "the expired grant's support session lives on")

	alice.grant(url.Values{"reason": {"again"}})
	r := sam.get("/app/settings")
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.Contains(t, r.Body, "Your support session ended")
}

// TestReview126RefusedSessionCannotBeReplayed pins that a support session
// refused for want of a grant is ended on the server, not only its cookie
// cleared: replaying the cookie after a later grant does not admit it.
func TestReview126RefusedSessionCannotBeReplayed(t *testing.T) {
	e := newTestEnv(t)
	sam := e.login(samEngineer)
	sam.raw = true
	r := sam.impersonate(acmeTenantID)
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	stale := sam.cookie(impersonationCookie)
	require.NotEmpty(t, stale)
	require.Equal(t, http.StatusForbidden, sam.get("/app/").StatusCode)
	require.Empty(t, sam.cookie(impersonationCookie))

	e.login(aliceAdmin).grant(url.Values{})
	r = review126WithCookies(t, e, "/app/settings", loginCookie, sam.cookie(loginCookie), impersonationCookie, stale)
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.Contains(t, r.Body, "Your support session ended")
}

// TestReview126StoppedSessionCannotBeReplayed pins that leaving a support
// session ends it on the server: its cookie no longer opens the tenant.
func TestReview126StoppedSessionCannotBeReplayed(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	stale := sam.cookie(impersonationCookie)
	sam.post("/support/stop", nil)
	require.Empty(t, e.app.sessions.impersonationsOf(acmeTenantID))
	r := review126WithCookies(t, e, "/app/settings", loginCookie, sam.cookie(loginCookie), impersonationCookie, stale)
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.NotContains(t, r.Body, `value="Acme Corporation"`)
}

// TestReview126DenyKeepsTheComment pins that the deny form's comment is
// stored as the request's decision reason (support sees it).
func TestReview126DenyKeepsTheComment(t *testing.T) {
	e := newTestEnv(t)
	sam := e.login(samEngineer)
	req := sam.requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
	r := e.login(aliceAdmin).post("/admin/support-access/requests/"+req.ID.String()+"/deny", url.Values{"comment": {" use the sandbox "}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	got, err := e.app.m.GetRequest(context.Background(), req.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestDenied, got.Status)
	require.Equal(t, "use the sandbox", got.DecisionReason)
	require.Contains(t, sam.get("/support/").Body, "use the sandbox")
}

// TestReview126ConsoleListsOnlyOwnRequests pins that the console's "Your
// requests" lists the signed-in engineer's requests only: another
// engineer's request for another tenant stays hidden.
func TestReview126ConsoleListsOnlyOwnRequests(t *testing.T) {
	e := newTestEnv(t)
	e.login(samEngineer).requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"24h0m0s"}})
	r := e.login("support+globex@vendor.example").get("/support/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.NotContains(t, r.Body, `id="my-requests"`)
	require.NotContains(t, r.Body, "<td>acme</td>")
}

// TestReview126CompanyNameLengthBoundary pins the 100-character bound of
// the company name (in characters, not bytes): 100 is stored, 101 refused.
func TestReview126CompanyNameLengthBoundary(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	name100 := strings.Repeat("é", 100)
	r := alice.post("/app/settings", url.Values{"company_name": {name100}, "theme": {"light"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, name100, e.app.settings.get(acmeTenantID).CompanyName)
	r = alice.post("/app/settings", url.Values{"company_name": {name100 + "x"}, "theme": {"light"}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Contains(t, r.Body, "longer than 100 characters")
	require.Equal(t, name100, e.app.settings.get(acmeTenantID).CompanyName)
}

// TestReview126CompanyNameRefusesLineSeparators pins that U+2028 and
// U+2029 (not control characters to unicode.IsControl) are refused.
func TestReview126CompanyNameRefusesLineSeparators(t *testing.T) {
	for _, sep := range []string{"\u2028", "\u2029"} {
		e := newTestEnv(t)
		r := e.login(aliceAdmin).post("/app/settings", url.Values{"company_name": {"Acme" + sep + "Corp"}, "theme": {"light"}})
		require.Equal(t, http.StatusBadRequest, r.StatusCode, "%U", []rune(sep)[0])
		require.Contains(t, r.Body, "company name is not valid text")
		require.Equal(t, "Acme Corporation", e.app.settings.get(acmeTenantID).CompanyName)
	}
}

// TestReview126UnrecordedSupportChangeIsNotSaved pins audit-before-write:
// when support's change cannot be recorded, the settings stay as they were
// and the 500 page shows no internals.
func TestReview126UnrecordedSupportChangeIsNotSaved(t *testing.T) {
	saved := recordChange
	recordChange = func(context.Context, string, any, any) error {
		return errors.New("review126 audit store detail")
	}
	t.Cleanup(func() { recordChange = saved })
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{"scope_write": {"1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	r := sam.post("/app/settings", url.Values{"company_name": {"Unaudited"}, "theme": {"dark"}})
	require.Equal(t, http.StatusInternalServerError, r.StatusCode)
	require.NotContains(t, r.Body, "review126")
	require.Equal(t, "Acme Corporation", e.app.settings.get(acmeTenantID).CompanyName)
}

// TestReview126InvalidAuditTimeIsDropped pins that an unparsable From is
// ignored everywhere: not echoed in the form nor carried into page links.
func TestReview126InvalidAuditTimeIsDropped(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	for i := range 25 {
		e.recordEvent(sa.Event{Time: t0.Add(time.Duration(i+1) * time.Minute), Type: sa.EventSupportRequest,
			Actor: sa.Actor{Kind: sa.ActorSupport, ID: supportAcme}, Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/app/"}})
	}
	r := alice.get("/admin/audit?since=review126bogus")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, r.Body, "From is not a valid date")
	require.Contains(t, r.Body, `href="/admin/audit?page=2"`)
	require.NotContains(t, r.Body, "review126bogus")
}

// TestReview126AuditPageIgnoresATenantParameter pins tenant isolation of
// the audit page: a tenant named in the query does not select another
// tenant's trail.
func TestReview126AuditPageIgnoresATenantParameter(t *testing.T) {
	e := newTestEnv(t)
	e.recordEvent(sa.Event{TenantID: "globex", Time: t0, Type: sa.EventSupportRequest,
		Actor: sa.Actor{Kind: sa.ActorSupport, ID: samEngineer}, Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/app/globex-secret"}})
	r := e.login(aliceAdmin).get("/admin/audit?tenant=globex")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.NotContains(t, r.Body, "globex-secret")
}

// TestReview126CustomerWithoutTenantGetsNoTenantPage pins withTenantViewer
// failing closed: a customer whose tenant is unknown gets a 500, never a
// tenant page without its tenant.
func TestReview126CustomerWithoutTenantGetsNoTenantPage(t *testing.T) {
	e := newTestEnv(t)
	e.app.dir.users = append(e.app.dir.users, user{ID: "orphan@nowhere.example", Name: "Orphan", Kind: sa.ActorCustomer, TenantID: "gone"})
	c := e.newClient()
	c.raw = true // its start page, the admin area, fails closed too
	require.Equal(t, http.StatusSeeOther, c.post("/login", url.Values{"user": {"orphan@nowhere.example"}}).StatusCode)
	c.raw = false
	for _, p := range []string{"/app/", "/app/settings", "/app/messages"} {
		r := c.get(p)
		require.Equal(t, http.StatusInternalServerError, r.StatusCode, p)
		require.NotContains(t, r.Body, "merger", p)
	}
}

// TestReview126SupportSessionOfAVanishedTenantGetsNoPage pins
// impersonatedViewer failing closed: a support session whose tenant left
// the directory is served no tenant page (nor an admin page).
func TestReview126SupportSessionOfAVanishedTenantGetsNoPage(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{"scope_messages": {"1"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	e.app.dir.tenants = e.app.dir.tenants[1:] // acme is gone
	r := sam.get("/app/messages")
	require.Equal(t, http.StatusInternalServerError, r.StatusCode)
	require.NotContains(t, r.Body, "merger")
}

// review126FlakyStore is a memstore whose active-grant lookup can fail,
// like a database outage.
type review126FlakyStore struct {
	*memstore.Store
	down atomic.Bool
}

func (s *review126FlakyStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if s.down.Load() {
		return sa.Grant{}, errors.New("review126: database unreachable")
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

// TestReview126OutageIsA503WithRetryAfter pins the outage page: access
// that cannot be verified is refused with the middleware's 503 and a
// Retry-After, shows no tenant data, and keeps the support session.
func TestReview126OutageIsA503WithRetryAfter(t *testing.T) {
	st := &review126FlakyStore{Store: memstore.New()}
	e := newTestEnvOn(t, st, st.Store)

	e.login(aliceAdmin).grant(url.Values{})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	cookie := sam.cookie(impersonationCookie)
	st.down.Store(true)
	r := sam.get("/app/settings")
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
	require.Equal(t, "5", r.Header.Get("Retry-After"))
	require.Contains(t, r.Body, "cannot be verified right now")
	require.NotContains(t, r.Body, `value="Acme Corporation"`)
	require.Equal(t, cookie, sam.cookie(impersonationCookie), "an outage does not end the session")
	require.Equal(t, http.StatusInternalServerError, sam.get("/support/").StatusCode,
		"the console does not report an outage as \"no active access\"")
	st.down.Store(false)
	require.Equal(t, http.StatusOK, sam.get("/app/settings").StatusCode)
}

// TestReview126MadeUpTenantRequestIsNotStored pins that a request for a
// tenant that does not exist is refused before the library: no request
// and no audit chain for a made-up tenant.
func TestReview126MadeUpTenantRequestIsNotStored(t *testing.T) {
	e := newTestEnv(t)
	r := e.login(samEngineer).post("/support/requests", url.Values{"tenant": {"initech"}, "duration": {"24h0m0s"}, "reason": {"hi"}})
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.Contains(t, r.Body, "Unknown tenant")
	rs, err := e.app.m.ListRequests(context.Background(), sa.RequestFilter{})
	require.NoError(t, err)
	require.Empty(t, rs)
	evs, err := e.store.Events(context.Background(), sa.AuditFilter{TenantID: "initech"})
	require.NoError(t, err)
	require.Empty(t, evs)
}

// TestReview126DecisionWithoutRequestStoreIsNotFound pins that approving
// or denying on a store without access requests is a 404, not a 500.
func TestReview126DecisionWithoutRequestStoreIsNotFound(t *testing.T) {
	ms := memstore.New()
	a, h, err := newApp(config{Store: grantOnlyStore{Store: ms, Auditor: ms, AuditLog: ms}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	e := &testEnv{t: t, app: a, srv: httptest.NewServer(h)}
	defer e.stop()
	alice := e.login(aliceAdmin)
	for _, action := range []string{"approve", "deny"} {
		r := alice.post("/admin/support-access/requests/"+uuid.NewString()+"/"+action, nil)
		require.Equal(t, http.StatusNotFound, r.StatusCode, action)
		require.Contains(t, r.Body, "keeps no access requests", action)
	}
}

// TestReview126ConsoleShowsReadOnlyAccess pins that the console reports a
// read-only grant as active access (it checks the read scope).
func TestReview126ConsoleShowsReadOnlyAccess(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin).grant(url.Values{})
	r := e.login(samEngineer).get("/support/")
	require.Contains(t, r.Body, "until 2031-03-11 09:00 UTC (read)")
}

// TestReview126CookiesAreSecureOverTLS pins the Secure flag of both
// cookies, set and cleared, on a request that came over TLS.
func TestReview126CookiesAreSecureOverTLS(t *testing.T) {
	for _, name := range []string{loginCookie, impersonationCookie} {
		r := httptest.NewRequest(http.MethodPost, "https://demo.example/login", nil)
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		setCookie(w, r, name, "v", time.Hour)
		clearCookie(w, r, name)
		cks := w.Result().Cookies()
		require.Len(t, cks, 2)
		for _, ck := range cks {
			require.True(t, ck.Secure, name)
			require.True(t, ck.HttpOnly, name)
		}
		plain := httptest.NewRequest(http.MethodPost, "http://localhost/login", nil)
		w = httptest.NewRecorder()
		setCookie(w, plain, name, "v", time.Hour)
		require.False(t, w.Result().Cookies()[0].Secure, "plain HTTP (the local demo) cannot use Secure")
	}
}

// TestReview126RangeKeepsAtMostAuditKeep pins the keep bound of a From
// range read: at most auditKeep events, the newest, and "more" said.
func TestReview126RangeKeepsAtMostAuditKeep(t *testing.T) {
	e := newTestEnv(t)
	for i := range 4 { // one more than kept
		e.recordEvent(sa.Event{Time: t0.Add(time.Duration(i+1) * time.Minute), Type: sa.EventSupportRequest,
			Actor: sa.Actor{Kind: sa.ActorSupport, ID: supportAcme}, Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: fmt.Sprintf("/app/r126-%d", i)}})
	}
	saved := auditKeep
	auditKeep = 3
	t.Cleanup(func() { auditKeep = saved })
	r := e.login(aliceAdmin).get("/admin/audit?since=2031-03-10T09:00&type=support.request")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, r.Body, "Events 1–3 of 3")
	require.Contains(t, r.Body, "/app/r126-3")
	require.Contains(t, r.Body, "/app/r126-1")
	require.NotContains(t, r.Body, "/app/r126-0")
	require.Contains(t, r.Body, "Only the newest 3 are listed")
}

// TestReview126BannerShowsTheLatestEnd pins the customer banner's end: the
// latest expiry of the active grants, not the first one listed.
func TestReview126BannerShowsTheLatestEnd(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	alice.grant(url.Values{"duration": {"168h0m0s"}})
	r := alice.post("/admin/support-access/grants", url.Values{"duration": {"24h0m0s"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	r = alice.get("/app/")
	require.Contains(t, r.Body, "Support access is active until 2031-03-17 09:00 UTC")
}

// TestReview126SweepDropsLoginsAtTheirLifetime pins loginTTL as an
// exclusive bound in the sweep too: a session exactly loginTTL old is
// dropped by the next sign-in's sweep.
func TestReview126SweepDropsLoginsAtTheirLifetime(t *testing.T) {
	e := newTestEnv(t)
	e.login(aliceAdmin)
	e.clock.Advance(loginTTL)
	e.login(ginaAdmin)
	e.app.sessions.mu.Lock()
	live := len(e.app.sessions.logins)
	e.app.sessions.mu.Unlock()
	require.Equal(t, 1, live)
}

// TestReview126ApproveRefusesAMalformedDuration pins that an unparsable
// duration on the approve form is refused, not read as "the requested
// duration": the request stays pending and nothing is granted.
func TestReview126ApproveRefusesAMalformedDuration(t *testing.T) {
	e := newTestEnv(t)
	req := e.login(samEngineer).requestAccess(url.Values{"tenant": {acmeTenantID}, "duration": {"168h0m0s"}})
	r := e.login(aliceAdmin).post("/admin/support-access/requests/"+req.ID.String()+"/approve", url.Values{"duration": {"a week"}})
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Contains(t, r.Body, "Choose one of the durations")
	got, err := e.app.m.GetRequest(context.Background(), req.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
	require.Empty(t, e.grants(t))
}

// TestReview126CompanyNameIsStoredTrimmed pins that the stored (and
// audited) company name has no leading or trailing spaces.
func TestReview126CompanyNameIsStoredTrimmed(t *testing.T) {
	e := newTestEnv(t)
	r := e.login(aliceAdmin).post("/app/settings", url.Values{"company_name": {"  Acme Rockets \t"}, "theme": {"light"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "Acme Rockets", e.app.settings.get(acmeTenantID).CompanyName)
}

// TestReview126MalformedCustomerFormIsRefused pins limitForms on the
// customer admin routes: a malformed form body is a 400 and grants
// nothing (its well-formed fields are not acted on).
func TestReview126MalformedCustomerFormIsRefused(t *testing.T) {
	e := newTestEnv(t)
	alice := e.login(aliceAdmin)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.srv.URL+"/admin/support-access/grants",
		strings.NewReader("duration=24h0m0s&reason=%zz"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := alice.do(req)
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Contains(t, r.Body, "The form could not be read")
	require.Empty(t, e.grants(t))
}

// TestReview126OversizedMultipartFormIs413 pins that a multipart form over
// maxFormBytes is refused as too large (413) by limitForms, not as an
// unknown user.
func TestReview126OversizedMultipartFormIs413(t *testing.T) {
	e := newTestEnv(t)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	require.NoError(t, mw.WriteField("pad", strings.Repeat("a", maxFormBytes)))
	require.NoError(t, mw.WriteField("user", aliceAdmin))
	require.NoError(t, mw.Close())
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.srv.URL+"/login", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	c := e.newClient()
	c.raw = true
	r := c.do(req)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.StatusCode)
	require.Empty(t, c.cookie(loginCookie))
}

// TestReview126AuthorizerChecksKindAndTenant pins the host's role model in
// the Manager: a customer acts on its own tenant only, and an actor whose
// kind is not its directory entry's (a support user passed off as a
// customer) is refused, both audited as refusals rather than granted.
func TestReview126AuthorizerChecksKindAndTenant(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	for name, by := range map[string]sa.Actor{
		"customer_of_another_tenant": {Kind: sa.ActorCustomer, ID: ginaAdmin},
		"support_as_customer":        {Kind: sa.ActorCustomer, ID: supportAcme},
		"unknown_customer":           {Kind: sa.ActorCustomer, ID: "mallory@acme.example"},
	} {
		_, err := e.app.m.Grant(ctx, sa.GrantInput{TenantID: acmeTenantID, By: by, Duration: 24 * time.Hour, Scopes: []sa.Scope{sa.ScopeRead}})
		require.ErrorIs(t, err, sa.ErrForbidden, name)
	}
	require.Empty(t, e.grants(t))
	_, err := e.app.m.Grant(ctx, sa.GrantInput{TenantID: acmeTenantID, By: sa.Actor{Kind: sa.ActorCustomer, ID: aliceAdmin}, Duration: 24 * time.Hour, Scopes: []sa.Scope{sa.ScopeRead}})
	require.NoError(t, err, "the tenant's own admin may grant")
}
