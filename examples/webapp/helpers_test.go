package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Seeded users the tests sign in as.
const (
	aliceAdmin   = "alice@acme.example"
	ginaAdmin    = "gina@globex.example"
	supportAcme  = "support+acme@vendor.example"
	samEngineer  = "sam@vendor.example"
	acmeTenantID = "acme"
)

// t0 is the fake clock's start.
var t0 = time.Date(2031, 3, 10, 9, 0, 0, 0, time.UTC)

// fakeClock is a settable clock shared by the Manager, sessions and pages.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testEnv is the app on a loopback test server with a fake clock and an
// in-memory store the test can inspect.
type testEnv struct {
	t     *testing.T
	app   *app
	srv   *httptest.Server
	clock *fakeClock
	store *memstore.Store
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	mem := memstore.New()
	return newTestEnvOn(t, mem, mem)
}

// newTestEnvOn is newTestEnv with the app on st, a store that wraps the
// memstore mem (the env's store, which tests read directly) to inject
// faults.
func newTestEnvOn(t *testing.T, st sa.Store, mem *memstore.Store) *testEnv {
	t.Helper()
	e := &testEnv{t: t, clock: &fakeClock{t: t0}, store: mem}
	a, h, err := newApp(config{Store: st, Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	e.app, e.srv = a, httptest.NewServer(h)
	t.Cleanup(e.stop)
	return e
}

// setsCookie returns the cookie called name that r sets, or nil.
func (r resp) setsCookie(name string) *http.Cookie {
	for _, ck := range r.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// grants lists every grant of the app's Manager, failing t on an error.
func (e *testEnv) grants(t *testing.T) []sa.Grant {
	t.Helper()
	gs, err := e.app.m.List(context.Background(), sa.ListFilter{})
	require.NoError(t, err)
	return gs
}

// client is a browser-like HTTP client with its own cookie jar. It does not
// follow redirects by itself; get and post follow them (as a browser does)
// unless raw is set.
type client struct {
	t   *testing.T
	env *testEnv
	hc  *http.Client
	raw bool
}

// resp is a response with its body read.
type resp struct {
	*http.Response
	Body string
}

func (e *testEnv) newClient() *client {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	return &client{t: e.t, env: e, hc: &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// login returns a client signed in as userID.
func (e *testEnv) login(userID string) *client {
	e.t.Helper()
	c := e.newClient()
	r := c.post("/login", url.Values{"user": {userID}})
	require.Equal(e.t, http.StatusOK, r.StatusCode, r.Body)
	return c
}

func (c *client) do(req *http.Request) resp {
	c.t.Helper()
	for range 10 {
		res, err := c.hc.Do(req)
		require.NoError(c.t, err)
		body, err := io.ReadAll(res.Body)
		require.NoError(c.t, err)
		require.NoError(c.t, res.Body.Close())
		loc := res.Header.Get("Location")
		if c.raw || res.StatusCode/100 != 3 || loc == "" {
			return resp{Response: res, Body: string(body)}
		}
		next, err := req.URL.Parse(loc)
		require.NoError(c.t, err)
		req, err = http.NewRequestWithContext(context.Background(), http.MethodGet, next.String(), nil)
		require.NoError(c.t, err)
	}
	c.t.Fatal("too many redirects")
	return resp{}
}

func (c *client) get(path string) resp {
	c.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, c.env.srv.URL+path, nil)
	require.NoError(c.t, err)
	return c.do(req)
}

func (c *client) post(path string, form url.Values, header ...string) resp {
	c.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, c.env.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return c.do(req)
}

// cookie returns the client's cookie called name for the test server ("" if
// none).
func (c *client) cookie(name string) string {
	u, err := url.Parse(c.env.srv.URL)
	require.NoError(c.t, err)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// grant creates a grant through the admin form and returns it.
func (c *client) grant(form url.Values) sa.Grant {
	c.t.Helper()
	if form.Get("duration") == "" {
		form.Set("duration", (24 * time.Hour).String())
	}
	r := c.post("/admin/support-access/grants", form)
	require.Equal(c.t, http.StatusOK, r.StatusCode, r.Body)
	require.Contains(c.t, r.Body, `id="flash"`)
	gs, err := c.env.app.m.List(context.Background(), sa.ListFilter{Limit: 1})
	require.NoError(c.t, err)
	require.Len(c.t, gs, 1)
	return gs[0]
}

// impersonate starts a support session in tenantID and returns the page it
// lands on.
func (c *client) impersonate(tenantID string) resp {
	c.t.Helper()
	return c.post("/support/impersonate", url.Values{"tenant": {tenantID}})
}

// events returns the audit events of tenantID of the given type.
func (e *testEnv) events(tenantID string, t sa.EventType) []sa.Event {
	e.t.Helper()
	evs, err := e.app.m.Events(context.Background(), sa.AuditFilter{TenantID: tenantID, Types: []sa.EventType{t}})
	require.NoError(e.t, err)
	return evs
}
