package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Environment variables of the browser test.
const (
	// envRequireBrowser=1 turns a missing Chromium into a failure (CI).
	envRequireBrowser = "SUPPORTACCESS_REQUIRE_BROWSER"
	// envChromium overrides the browser binary (default /usr/bin/chromium).
	envChromium = "SUPPORTACCESS_CHROMIUM"
	// envScreenshots keeps the screenshots in this directory instead of the
	// test's temporary directory.
	envScreenshots = "SUPPORTACCESS_SCREENSHOT_DIR"
)

// chromiumPath returns the browser to drive, or skips (fails when
// SUPPORTACCESS_REQUIRE_BROWSER=1) when there is none.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv(envChromium)
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		msg := "Chromium not found at " + p + ": install it (Debian: apt-get install -y chromium) or set " +
			envChromium + " to a Chrome/Chromium binary to run the browser test"
		if os.Getenv(envRequireBrowser) == "1" {
			t.Fatal(msg + " (" + envRequireBrowser + "=1)")
		}
		t.Skip(msg)
	}
	return p
}

// browserTab is one signed-in person's window (its own cookie jar).
type browserTab struct {
	t    *testing.T
	name string
	ctx  context.Context
	dir  string
}

// stepTimeout bounds each browser step.
const stepTimeout = 15 * time.Second

// do runs actions on the tab.
func (b *browserTab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, actions...), b.name)
}

// navigation runs actions that load a page and returns its HTTP status.
func (b *browserTab) navigation(actions ...chromedp.Action[chromedp.Void]) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, actions...)
	require.NoError(b.t, err, b.name)
	return res.Status
}

// text returns the visible text of the element sel.
func (b *browserTab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, b.name)
	return s
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browserTab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(b.t, err, b.name)
	return v
}

// cookies returns the tab's cookies for url.
func (b *browserTab) cookies(url string) map[string]*network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	cs, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
		return res.Cookies, err
	})
	require.NoError(b.t, err, b.name)
	out := make(map[string]*network.Cookie)
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

// screenshot saves the viewport (or the element sel) as dir/name.png.
func (b *browserTab) screenshot(name, sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	var png []byte
	var err error
	if sel == "" {
		png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	} else {
		png, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	}
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", p)
}

// TestBrowserEndToEnd drives the real app in headless Chromium: the admin
// grants 24 h read access, support browses, support's save is refused, the
// admin revokes, support's next page says access ended, and the audit log
// lists support's page views labelled "support".
func TestBrowserEndToEnd(t *testing.T) {
	chromium := chromiumPath(t)
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	shots := os.Getenv(envScreenshots)
	if shots == "" {
		shots = t.TempDir()
	} else {
		require.NoError(t, os.MkdirAll(shots, 0o755))
	}

	// The app as `go run` starts it: SQLite, migrated on start.
	st, closer, _, err := openStore(context.Background(), options{Dialect: "sqlite", Data: t.TempDir()})
	require.NoError(t, err)
	a, h, err := newApp(config{Store: st, Closer: closer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, a.Close())
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 720),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// Start the browser without a deadline (a deadline here would bound the
	// browser's whole life); every later step has its own.
	require.NoError(t, chromedp.Do(browserCtx))

	newTab := func(name string) *browserTab {
		ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		require.NoError(t, chromedp.Do(ctx))
		return &browserTab{t: t, name: name, ctx: ctx, dir: shots}
	}
	admin, support := newTab("admin"), newTab("support")
	t.Cleanup(func() {
		if t.Failed() {
			admin.screenshot("failure-admin", "")
			support.screenshot("failure-support", "")
		}
	})

	// The admin signs in and grants 24 hours of read access.
	require.EqualValues(t, http.StatusOK, admin.navigation(chromedp.Navigate(srv.URL+"/login")))
	require.EqualValues(t, http.StatusOK, admin.navigation(chromedp.Click(chromedp.CSS(`button[value="alice@acme.example"]`))))
	admin.do(
		chromedp.WaitVisible(chromedp.ID("grant-form")),
		chromedp.Click(chromedp.CSS(`input[name="duration"][value="24h0m0s"]`)),
		chromedp.SetValue(chromedp.ID("reason"), `Invoice export fails <script>alert(1)</script>`),
		chromedp.SetValue(chromedp.ID("ticket_ref"), "T-4711"),
	)
	require.EqualValues(t, http.StatusOK, admin.navigation(chromedp.Click(chromedp.ID("grant-submit"))))
	require.Contains(t, admin.text("#flash"), "Support access granted until")
	require.Contains(t, admin.text("#access-banner"), "Support access is active until")
	require.Contains(t, admin.text("#grants"), "active")
	require.Contains(t, admin.text("#grants"), "Invoice export fails <script>alert(1)</script>", "the reason is text, not markup")
	require.Zero(t, eval[int](admin, `document.querySelectorAll("#grants script").length`))
	admin.screenshot("admin-support-access", "")

	// Support signs in, enters the tenant as its admin, and browses.
	require.EqualValues(t, http.StatusOK, support.navigation(chromedp.Navigate(srv.URL+"/login")))
	require.EqualValues(t, http.StatusOK, support.navigation(chromedp.Click(chromedp.CSS(`button[value="sam@vendor.example"]`))))
	require.Contains(t, support.text(`tr[data-tenant="acme"]`), "active")
	require.EqualValues(t, http.StatusOK, support.navigation(chromedp.Click(chromedp.CSS(`tr[data-tenant="acme"] button.impersonate`))))
	banner := support.text("#support-banner")
	require.Contains(t, banner, "You (sam@vendor.example) are signed in as Alice Adams (alice@acme.example) of Acme Corporation")
	require.Contains(t, banner, "until")
	require.EqualValues(t, http.StatusOK, support.navigation(chromedp.Navigate(srv.URL+"/app/settings")))
	require.Contains(t, support.text("#readonly-note"), "read-only")
	jar := support.cookies(srv.URL)
	require.Contains(t, jar, impersonationCookie)
	require.True(t, jar[impersonationCookie].HTTPOnly)
	require.Equal(t, network.CookieSameSiteStrict, jar[impersonationCookie].SameSite, "no cross-site navigation acts as the support session")
	support.screenshot("support-banner", "")

	// Saving with read-only access is refused.
	support.do(chromedp.SetValue(chromedp.ID("company_name"), "Changed by support"))
	require.EqualValues(t, http.StatusForbidden, support.navigation(chromedp.Click(chromedp.ID("save-settings"))))
	require.Equal(t, "Not allowed with your current access", support.text("#message-title"))
	require.Equal(t, "Acme Corporation", a.settings.get(acmeTenantID).CompanyName)
	support.screenshot("support-save-refused", "")

	// The admin revokes; support's next page shows that access ended.
	require.EqualValues(t, http.StatusOK, admin.navigation(chromedp.Navigate(srv.URL+"/admin/support-access")))
	require.EqualValues(t, http.StatusOK, admin.navigation(chromedp.Click(chromedp.CSS(`#grants button.revoke`))))
	require.Contains(t, admin.text("#flash"), "Support access revoked")
	require.Contains(t, admin.text("#grants"), "revoked")
	require.Zero(t, eval[int](admin, `document.querySelectorAll("#grants button.revoke").length`), "no Revoke button on a revoked grant")
	require.Zero(t, eval[int](admin, `document.querySelectorAll("#access-banner").length`), "no banner once revoked")

	require.EqualValues(t, http.StatusForbidden, support.navigation(chromedp.Navigate(srv.URL+"/app/settings")))
	require.Equal(t, "Support access ended", support.text("#message-title"))
	jar = support.cookies(srv.URL)
	require.NotContains(t, jar, impersonationCookie, "support is logged out of the tenant")
	require.Contains(t, jar, loginCookie)
	support.screenshot("support-access-ended", "")

	// The audit log lists support's page views, labelled "support".
	require.EqualValues(t, http.StatusOK, admin.navigation(chromedp.Navigate(srv.URL+"/admin/audit?support=1&type=support.request")))
	audit := admin.text("#audit")
	require.Contains(t, audit, "GET /app/ → 200")
	require.Contains(t, audit, "GET /app/settings → 200")
	require.GreaterOrEqual(t, eval[int](admin, `document.querySelectorAll("#audit .label-support").length`), 2)
	require.True(t, strings.Contains(audit, "sam@vendor.example"))
	require.EqualValues(t, http.StatusOK, admin.navigation(chromedp.Navigate(srv.URL+"/admin/audit")))
	audit = admin.text("#audit")
	for _, want := range []string{"grant.created", "grant.revoked", "access.denied", "support.request"} {
		require.Contains(t, audit, want)
	}
	admin.screenshot("admin-audit", "")
}
