package supportaccess_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestMiddlewarePassThrough(t *testing.T) {
	e := newMWEnv(t)
	var gotW http.ResponseWriter
	var gotR *http.Request
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotW, gotR = w, r
		_, ok := sa.SessionFromContext(r.Context())
		require.False(t, ok)
		_, ok = sa.GrantFromContext(r.Context())
		require.False(t, ok)
		require.NoError(t, sa.RecordChange(r.Context(), "anything", 1, 2), "not impersonated: nothing to record")
		w.WriteHeader(http.StatusTeapot)
	}))
	for _, r := range []*http.Request{
		mwReq(http.MethodGet, "/settings", ""),
		mwReq(http.MethodPost, "/settings", "no-such-session"),
		mwReq(http.MethodDelete, "/x", "", "Authorization", "Basic Zm9vOmJhcg=="),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		require.Equal(t, http.StatusTeapot, rec.Code)
		require.Same(t, r, gotR, "the request passes untouched")
		require.Equal(t, http.ResponseWriter(rec), gotW, "the writer is not wrapped")
	}
	require.Zero(t, e.store.finds.Load(), "no store access")
	require.Empty(t, e.events(), "nothing audited")
}

func TestMiddlewareResolverCookieAndBearer(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	var got []sa.Session
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := sa.SessionFromContext(r.Context())
		require.True(t, ok)
		got = append(got, s)
	}))
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/", "generic")).Code)
	e.sessions.add("api-token-1", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "tok-1"})
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/api/v1/users", "", "Authorization", "Bearer api-token-1")).Code)
	require.Equal(t, []string{"s-generic", "tok-1"}, []string{got[0].SessionID, got[1].SessionID})
}

func TestMiddlewareDenies(t *testing.T) {
	cases := []struct {
		name   string
		grant  *sa.GrantInput
		method string
		token  string
		header []string
		reason string
		ended  bool // OnSessionEnded(no active grant)
	}{
		{name: "no_grant", method: http.MethodGet, token: "generic", reason: "no active grant", ended: true},
		{name: "other_tenant", grant: &sa.GrantInput{}, method: http.MethodGet, token: "globex", reason: "no active grant", ended: true},
		{name: "other_principal", grant: &sa.GrantInput{Grantees: []string{mwEve}}, method: http.MethodGet, token: "bob", reason: "no active grant", ended: true},
		{name: "post_on_read_grant", grant: &sa.GrantInput{}, method: http.MethodPost, token: "generic", reason: "scope not granted: write"},
		{name: "delete_on_read_grant", grant: &sa.GrantInput{}, method: http.MethodDelete, token: "generic", reason: "scope not granted: write"},
		{name: "custom_method_needs_write", grant: &sa.GrantInput{}, method: "PURGE", token: "generic", reason: "scope not granted: write"},
		{name: "override_cannot_lower_post", grant: &sa.GrantInput{}, method: http.MethodPost, token: "generic", header: []string{"X-HTTP-Method-Override", "GET"}, reason: "scope not granted: write"},
		{name: "override_raises_get", grant: &sa.GrantInput{}, method: http.MethodGet, token: "generic", header: []string{"X-HTTP-Method-Override", "DELETE"}, reason: "scope not granted: write"},
		{name: "override_raises_get_x_method", grant: &sa.GrantInput{}, method: http.MethodGet, token: "generic", header: []string{"X-Method-Override", "put"}, reason: "scope not granted: write"},
		{name: "scheduled_grant", grant: &sa.GrantInput{StartsAt: time.Now().Add(time.Hour)}, method: http.MethodGet, token: "generic", reason: "no active grant", ended: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newMWEnv(t)
			if c.grant != nil {
				e.grant(*c.grant)
			}
			next := &mwOK{}
			rec := mwDo(e.wrap(next), mwReq(c.method, "/settings?token=hunter2", c.token, c.header...))
			require.Equal(t, http.StatusForbidden, rec.Code)
			require.Zero(t, next.calls.Load(), "the handler never runs")
			evs := e.events(sa.EventAccessDenied)
			require.Len(t, evs, 1)
			require.Equal(t, c.reason, evs[0].Reason)
			require.Equal(t, "403", evs[0].Attrs[sa.AttrStatus])
			require.Equal(t, "/settings", evs[0].Attrs[sa.AttrPath])
			require.Equal(t, sa.ActorSupport, evs[0].Actor.Kind)
			require.Empty(t, e.events(sa.EventSupportRequest))
			if c.ended {
				require.Len(t, e.ended.all(), 1)
				require.Contains(t, e.ended.all()[0], ":"+sa.SessionEndNoGrant)
			} else {
				require.Empty(t, e.ended.all())
			}
		})
	}
}

func TestMiddlewareAllows(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Grantees: []string{mwEve}, Scopes: []sa.Scope{sa.ScopeWrite}})
	next := &mwOK{}
	h := e.wrap(next)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		rec := mwDo(h, mwReq(m, "/settings", "eve"))
		require.Equal(t, http.StatusOK, rec.Code, m)
	}
	require.EqualValues(t, 7, next.calls.Load())
	// A safe override on a safe method changes nothing.
	e2 := newMWEnv(t)
	e2.grant(sa.GrantInput{})
	require.Equal(t, http.StatusOK, mwDo(e2.wrap(next), mwReq(http.MethodGet, "/", "generic", "X-HTTP-Method-Override", "HEAD")).Code)
}

func TestMiddlewareContext(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: 3 * sa.Day, Reason: "ticket 7"})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := sa.SessionFromContext(r.Context())
		require.True(t, ok)
		require.Equal(t, "s-generic", s.SessionID)
		got, ok := sa.GrantFromContext(r.Context())
		require.True(t, ok)
		require.Equal(t, g.ID, got.ID)
		require.Equal(t, g.ExpiresAt, got.ExpiresAt, "for the 'active until' banner")
	}))
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/", "generic")).Code)
}

func TestMiddlewareRequireScope(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	route := func(e *mwEnv, next http.Handler) http.Handler {
		return e.wrap(sa.RequireScope(msgs)(next))
	}
	t.Run("missing", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{})
		next := &mwOK{}
		rec := mwDo(route(e, next), mwReq(http.MethodGet, "/messages", "generic"))
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Zero(t, next.calls.Load())
		evs := e.events(sa.EventAccessDenied)
		require.Len(t, evs, 1)
		require.Equal(t, "scope not granted: messages:read", evs[0].Reason)
		require.Empty(t, e.events(sa.EventSupportRequest), "a refusal is not a support request")
		require.Empty(t, e.ended.all(), "the session itself is still valid")
	})
	t.Run("present_on_admitting_grant", func(t *testing.T) {
		e := newMWEnv(t)
		g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeRead, msgs}})
		next := &mwOK{}
		rec := mwDo(route(e, next), mwReq(http.MethodGet, "/messages", "generic"))
		require.Equal(t, http.StatusOK, rec.Code)
		require.EqualValues(t, 1, e.store.finds.Load(), "no second check")
		ev := e.events(sa.EventSupportRequest)[0]
		require.Equal(t, g.ID, ev.GrantID)
		require.Equal(t, "read,messages:read", ev.Attrs[sa.AttrScope])
		require.NotContains(t, ev.Attrs, sa.AttrElevatedGrantIDs)
	})
	t.Run("present_on_another_grant", func(t *testing.T) {
		e := newMWEnv(t)
		// The longer read grant admits the request; a shorter one for the
		// ticket carries the elevated scope.
		long := e.grant(sa.GrantInput{Duration: 7 * sa.Day})
		short := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
		var inCtx sa.Grant
		rec := mwDo(route(e, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inCtx, _ = sa.GrantFromContext(r.Context())
		})), mwReq(http.MethodGet, "/messages", "generic"))
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, long.ID, inCtx.ID, "the context keeps the admitting grant")
		ev := e.events(sa.EventSupportRequest)[0]
		require.Equal(t, long.ID, ev.GrantID)
		require.Equal(t, short.ID.String(), ev.Attrs[sa.AttrElevatedGrantIDs])
	})
	t.Run("not_impersonated_passes", func(t *testing.T) {
		e := newMWEnv(t)
		next := &mwOK{}
		require.Equal(t, http.StatusOK, mwDo(route(e, next), mwReq(http.MethodGet, "/messages", "")).Code)
		require.Equal(t, http.StatusOK, mwDo(sa.RequireScope(msgs)(next), mwReq(http.MethodGet, "/messages", "")).Code)
	})
	t.Run("store_failure", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{})
		inner := sa.RequireScope(msgs)(&mwOK{})
		// Only the second check (the elevated one) fails.
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.store.failFind.Store(true)
			inner.ServeHTTP(w, r)
		}))
		rec := mwDo(h, mwReq(http.MethodGet, "/messages", "generic"))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.NotEmpty(t, e.errs.all())
	})
}

func TestMiddlewareStoreFailureDenies(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	e.store.failFind.Store(true)
	next := &mwOK{}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		rec := mwDo(e.wrap(next), mwReq(m, "/settings", "generic", "Accept", "application/json"))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.NotEmpty(t, rec.Header().Get("Retry-After"))
		require.JSONEq(t, `{"error":"unavailable","message":"Support access cannot be verified right now. Try again later."}`, rec.Body.String())
		require.NotContains(t, rec.Body.String(), "boom")
	}
	require.Zero(t, next.calls.Load())
	require.Len(t, e.errs.all(), 2)
	require.ErrorIs(t, e.errs.all()[0], errMWBoom)
	evs := e.events(sa.EventAccessDenied)
	require.Len(t, evs, 2, "the outage is audited (the auditor still works here)")
	require.Equal(t, "check failed", evs[0].Reason)
	require.Equal(t, "503", evs[0].Attrs[sa.AttrStatus])
	require.Contains(t, evs[0].Attrs[sa.AttrError], "boom")
	require.Empty(t, e.ended.all(), "an outage does not end the session")
}

// A panicking resolver never lets the request through: the panic
// propagates before next runs, nothing is audited as an admitted request,
// and over a real server the client gets no response at all.
func TestMiddlewareResolverPanicPropagates(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	next := &mwOK{}
	denied := 0
	for _, p := range []any{"nil map", http.ErrAbortHandler} {
		h := e.m.Middleware(func(*http.Request) (sa.Session, bool) { panic(p) },
			sa.WithMiddlewareErrorHandler(e.errs.handle),
			sa.WithDeniedHandler(func(http.ResponseWriter, *http.Request, sa.Denial) { denied++ }),
		)(next)
		require.PanicsWithValue(t, p, func() { h.ServeHTTP(httptest.NewRecorder(), mwReq(http.MethodGet, "/", "generic")) })
	}
	h := e.m.Middleware(func(*http.Request) (sa.Session, bool) { panic(nil) })(next)
	require.Panics(t, func() { mwDo(h, mwReq(http.MethodGet, "/", "generic")) })

	srv := httptest.NewUnstartedServer(e.m.Middleware(func(*http.Request) (sa.Session, bool) { panic("resolver bug") })(next))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/settings")
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "net/http aborts the response of a panicking handler")

	require.Zero(t, next.calls.Load(), "next never runs")
	require.Zero(t, denied)
	require.Empty(t, e.errs.all())
	require.Empty(t, e.events(sa.EventSupportRequest, sa.EventAccessDenied))
}

func TestMiddlewareDeniedBodyLeaksNothing(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Grantees: []string{mwEve}})
	h := e.wrap(&mwOK{})
	secrets := []string{"acme", g.ID.String(), mwEve, "u-42", "s-eve", "scope", "write", "grant", "tenant", "boom", "check:"}
	check := func(rec *httptest.ResponseRecorder) {
		t.Helper()
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		require.Less(t, rec.Body.Len(), 200)
		body := strings.ToLower(rec.Body.String())
		for _, s := range secrets {
			require.NotContains(t, body, strings.ToLower(s))
		}
	}
	// Text by default.
	rec := mwDo(h, mwReq(http.MethodPost, "/settings", "eve", "Accept", "text/html,application/xhtml+xml,*/*;q=0.8"))
	check(rec)
	require.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Equal(t, "Support access does not allow this request.\n", rec.Body.String())
	// JSON when asked for.
	for _, accept := range []string{"application/json", "application/problem+json", "text/html;q=0.9, application/json"} {
		rec = mwDo(h, mwReq(http.MethodPost, "/settings", "eve", "Accept", accept))
		check(rec)
		require.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
		var body map[string]string
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		require.Equal(t, map[string]string{"error": "access_denied", "message": "Support access does not allow this request."}, body)
	}
	// q=0 is a refusal of JSON.
	rec = mwDo(h, mwReq(http.MethodPost, "/settings", "eve", "Accept", "application/json;q=0"))
	require.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	// HEAD gets no body; other principal, no grant at all, alike.
	rec = mwDo(h, mwReq(http.MethodHead, "/settings", "bob"))
	check(rec)
	require.Zero(t, rec.Body.Len())
	check(mwDo(h, mwReq(http.MethodGet, "/settings", "globex")))
}

func TestMiddlewareDeniedHandler(t *testing.T) {
	e := newMWEnv(t)
	var got sa.Denial
	h := e.wrap(&mwOK{}, sa.WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d sa.Denial) {
		got = d
		http.Redirect(w, r, "/support-access-ended", http.StatusSeeOther)
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/settings", "generic"))
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, "/support-access-ended", rec.Header().Get("Location"))
	require.Equal(t, http.StatusForbidden, got.Status)
	require.Equal(t, sa.DeniedAccess, got.Code)
	require.Equal(t, "s-generic", got.Session.SessionID)
	require.ErrorIs(t, got.Err, sa.ErrNoActiveGrant)
	// The event, recorded before the handler ran, names the refusal's
	// status, as AttrStatus says, not the redirect.
	evs := e.events(sa.EventAccessDenied)
	require.Len(t, evs, 1)
	require.Equal(t, "403", evs[0].Attrs[sa.AttrStatus])
	require.Equal(t, "no active grant", evs[0].Reason)
}

// TestMiddlewareDeniedHandlerWritingNothing: a denied handler that only
// sets header fields (or does nothing) does not let the denial go out as
// net/http's implicit 200 — at admission, and when the end of access
// replaces a response not yet started — the middleware writes d.Status.
func TestMiddlewareDeniedHandlerWritingNothing(t *testing.T) {
	e := newMWEnv(t)
	quiet := sa.WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d sa.Denial) {
		w.Header().Set("X-Denied", d.Code)
	})
	rec := mwDo(e.wrap(&mwOK{}, quiet), mwReq(http.MethodGet, "/settings", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, sa.DeniedAccess, rec.Header().Get("X-Denied"))
	require.Zero(t, rec.Body.Len())

	g := e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
		require.NoError(t, err)
		<-r.Context().Done() // the end reached the request
		_, _ = w.Write([]byte("secret"))
	}), quiet)
	rec = mwDo(h, mwReq(http.MethodGet, "/settings", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, sa.DeniedSessionEnded, rec.Header().Get("X-Denied"))
	require.NotContains(t, rec.Body.String(), "secret")
}

// TestMiddlewareInvalidStatusRecordedAsPanic: net/http panics on a status
// outside 100–999; the middleware does so before recording the code, so
// the trail holds the handler's panic (500), not a status no client saw.
func TestMiddlewareInvalidStatusRecordedAsPanic(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	for _, code := range []int{0, 42, 1000} {
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		require.Panics(t, func() { mwDo(h, mwReq(http.MethodGet, "/settings", "generic")) }, "code %d", code)
	}
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 3)
	for _, ev := range evs {
		require.Equal(t, "500", ev.Attrs[sa.AttrStatus])
		require.Equal(t, "handler panicked", ev.Reason)
	}
}

func TestMiddlewareMFA(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Grantees: []string{mwEve}})
	e.grant(sa.GrantInput{}) // open grant: the generic user, and eve too
	next := &mwOK{}
	h := e.wrap(next, sa.RequireMFA(sa.GenericSupportUser("support+{tenant}@vendor.example")))
	rec := mwDo(h, mwReq(http.MethodGet, "/", "eve", "Accept", "application/json"))
	require.Equal(t, http.StatusForbidden, rec.Code, "a named principal without MFA, whichever grant covers it")
	require.JSONEq(t, `{"error":"mfa_required","message":"Support access requires a two-factor login."}`, rec.Body.String())
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/", "eve-mfa")).Code)
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/", "generic")).Code, "the generic user is exempt")
	evs := e.events(sa.EventAccessDenied)
	require.Len(t, evs, 1)
	require.Equal(t, "mfa required", evs[0].Reason)
	require.Equal(t, mwEve, evs[0].Actor.ID)
	require.Empty(t, e.ended.all(), "an MFA refusal does not end the session")

	// Another tenant's generic user is a named principal here.
	e.sessions.add("foreign-generic", sa.Session{TenantID: "acme", Principal: "support+globex@vendor.example"})
	require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/", "foreign-generic")).Code)
	// nil exempts nobody.
	require.Equal(t, http.StatusForbidden, mwDo(e.wrap(next, sa.RequireMFA(nil)), mwReq(http.MethodGet, "/", "generic")).Code)
}

func TestGenericSupportUser(t *testing.T) {
	generic := sa.GenericSupportUser("support+{tenant}@vendor.example")
	require.True(t, generic(sa.Session{TenantID: "acme", Principal: "support+acme@vendor.example"}))
	require.False(t, generic(sa.Session{TenantID: "acme", Principal: "support+globex@vendor.example"}))
	require.False(t, generic(sa.Session{TenantID: "acme", Principal: "eve@vendor.example"}))
	require.False(t, generic(sa.Session{TenantID: "acme", Principal: "support+@vendor.example"}))
	fixed := sa.GenericSupportUser("support@vendor.example")
	require.True(t, fixed(sa.Session{TenantID: "acme", Principal: "support@vendor.example"}))
	require.False(t, fixed(sa.Session{TenantID: "acme", Principal: "eve@vendor.example"}))
}

func TestMiddlewareInvalidSessionDenies(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	next := &mwOK{}
	for _, s := range []sa.Session{
		{TenantID: "", Principal: mwGeneric},
		{TenantID: "acme", Principal: ""},
		{TenantID: "acme", Principal: mwGeneric, SessionID: "a\nb"},
		{TenantID: "acme", Principal: mwGeneric, SubjectUserID: strings.Repeat("x", 1000)},
	} {
		h := e.m.Middleware(func(*http.Request) (sa.Session, bool) { return s, true }, sa.WithMiddlewareErrorHandler(e.errs.handle))(next)
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/", "")).Code)
	}
	require.Zero(t, next.calls.Load())
}

func TestMiddlewareAuditEvents(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.clock.Advance(1500 * time.Millisecond) // the handler takes 1.5 s
		w.WriteHeader(http.StatusCreated)
	}))
	start := e.clock.Now().UTC().Truncate(time.Microsecond)
	rec := mwDo(h, mwReq(http.MethodPost, "/settings/sso?access_token=hunter2&x=1", "generic"))
	require.Equal(t, http.StatusCreated, rec.Code)
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	ev := evs[0]
	require.Equal(t, "acme", ev.TenantID)
	require.Equal(t, g.ID, ev.GrantID)
	require.Equal(t, sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}, ev.Actor)
	require.WithinDuration(t, start, ev.Time, 100*time.Millisecond, "the time the request arrived")
	dur := ev.Attrs[sa.AttrDurationMS]
	require.True(t, dur >= "1500" && len(dur) == 4, "duration_ms %q", dur)
	delete(ev.Attrs, sa.AttrDurationMS)
	require.Equal(t, map[string]string{
		sa.AttrMethod:        "POST",
		sa.AttrPath:          "/settings/sso",
		sa.AttrStatus:        "201",
		sa.AttrScope:         "write",
		sa.AttrSessionID:     "s-generic",
		sa.AttrSubjectUserID: "u-42",
	}, ev.Attrs)
	require.Empty(t, ev.Reason)

	// Query strings (tokens) never reach the audit trail, for admitted and
	// refused requests alike.
	mwDo(h, mwReq(http.MethodGet, "/a%2Fb/c?token=hunter2", "generic"))
	mwDo(h, mwReq(http.MethodGet, "/x?token=hunter2", "globex"))
	all := mwJSON(t, e.events())
	require.NotContains(t, all, "hunter2")
	require.NotContains(t, all, "access_token")
	require.Equal(t, "/a%2Fb/c", e.events(sa.EventSupportRequest)[1].Attrs[sa.AttrPath])
}

func TestMiddlewareAuditStatus(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	cases := map[string]struct {
		h    http.HandlerFunc
		want string
	}{
		"implicit_200":      {func(w http.ResponseWriter, r *http.Request) {}, "200"},
		"write_only":        {func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("x")) }, "200"},
		"not_found":         {http.NotFound, "404"},
		"early_hints_first": {func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(103); w.WriteHeader(204) }, "204"},
		"flush_first": {func(w http.ResponseWriter, r *http.Request) {
			require.NoError(t, http.NewResponseController(w).Flush())
		}, "200"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			before := len(e.events(sa.EventSupportRequest))
			mwDo(e.wrap(c.h), mwReq(http.MethodGet, "/", "generic"))
			evs := e.events(sa.EventSupportRequest)
			require.Len(t, evs, before+1)
			require.Equal(t, c.want, evs[before].Attrs[sa.AttrStatus])
		})
	}
	t.Run("handler_panic_is_audited_as_500", func(t *testing.T) {
		before := len(e.events(sa.EventSupportRequest))
		h := e.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bug") }))
		require.PanicsWithValue(t, "bug", func() { mwDo(h, mwReq(http.MethodGet, "/", "generic")) })
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, before+1)
		require.Equal(t, "500", evs[before].Attrs[sa.AttrStatus])
		require.Equal(t, "handler panicked", evs[before].Reason)
	})
}

func TestMiddlewareAuditFailureFailsClosed(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			e := newMWEnv(t)
			e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
			var writeErr, cause error
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				e.store.failRecord.Store(true)
				w.Header().Set("Set-Cookie", "a=b")
				_, writeErr = w.Write([]byte("secret customer data"))
				cause = context.Cause(r.Context())
			}))
			rec := mwDo(h, mwReq(method, "/settings", "generic"))
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			require.NotContains(t, rec.Body.String(), "secret customer data")
			require.Empty(t, rec.Header().Get("Set-Cookie"))
			require.ErrorIs(t, writeErr, sa.ErrSessionEnded)
			require.ErrorIs(t, cause, sa.ErrSessionEnded, "the handler's context is cancelled")
			require.NotEmpty(t, e.errs.all())
			require.Empty(t, e.ended.all())
		})
	}
}

func TestMiddlewareErrorHandlerDefaultsToManagers(t *testing.T) {
	e := newMWEnv(t)
	e.store.failFind.Store(true)
	h := e.m.Middleware(e.sessions.resolve)(&mwOK{})
	require.Equal(t, http.StatusServiceUnavailable, mwDo(h, mwReq(http.MethodGet, "/", "generic")).Code)
	require.Len(t, e.errs.all(), 1, "reported to the Manager's WithErrorHandler")
	require.True(t, errors.Is(e.errs.all()[0], errMWBoom))
}

func TestMiddlewarePanicsOnNil(t *testing.T) {
	e := newMWEnv(t)
	require.Panics(t, func() { e.m.Middleware(nil) })
	require.Panics(t, func() { e.m.Middleware(e.sessions.resolve)(nil) })
	require.Panics(t, func() { sa.RequireScope("x")(nil) })
}

func TestMiddlewareNestedChecksAndAuditsOnce(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	next := &mwOK{}
	h := e.wrap(e.wrap(next))
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/", "generic")).Code)
	require.EqualValues(t, 1, next.calls.Load())
	require.EqualValues(t, 1, e.store.finds.Load())
	require.Len(t, e.events(sa.EventSupportRequest), 1)
}

// TestRequireScopeRefusalInsideStartedResponse: a RequireScope route that
// is refused while the response it is part of is under way (a panel of a
// page already sent) is left out of it: the refusal is audited, nothing is
// written into the page (before, the denial's text was appended to it),
// and the page goes on.
func TestRequireScopeRefusalInsideStartedResponse(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read only: no messages:read
	panelRan := false
	panel := sa.RequireScope("messages:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panelRan = true
		_, _ = w.Write([]byte("secret messages"))
	}))
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("part;"))
		panel.ServeHTTP(w, r)
		_, _ = w.Write([]byte(";tail"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.False(t, panelRan)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "part;;tail", rec.Body.String())
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, 1)
	require.Equal(t, "messages:read", denied[0].Attrs[sa.AttrScope])
	require.Len(t, e.events(sa.EventSupportRequest), 1)
}
