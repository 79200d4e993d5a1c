package supportaccess_test

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 59: the documentation's checkable claims against the code.

func TestReview59DocChecked(t *testing.T) {
	t.Run("list order ties", func(t *testing.T) {
		e := newEnv(t)
		a := e.grant(sa.GrantInput{})
		b := e.grant(sa.GrantInput{})
		gs, err := e.m.List(ctx, sa.ListFilter{TenantID: "acme"})
		require.NoError(t, err)
		require.Len(t, gs, 2)
		// same CreatedAt: ID descending (UUIDv7: b > a)
		require.Equal(t, b.ID, gs[0].ID, "a=%s b=%s", a.ID, b.ID)
	})
	t.Run("request ttl default", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.RequestTTL = 0
		e := newEnv(t, sa.WithPolicy(p))
		r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
		require.NoError(t, err)
		require.Equal(t, 72*time.Hour, r.ExpiresAt.Sub(r.CreatedAt))
	})
	t.Run("methods", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{})
		h := e.wrap(&mwOK{})
		for _, c := range []struct {
			method string
			hdr    []string
			code   int
		}{
			{http.MethodGet, nil, 200},
			{http.MethodHead, nil, 200},
			{http.MethodOptions, nil, 200},
			{http.MethodPost, nil, 403},
			{http.MethodDelete, nil, 403},
			{"PROPFIND", nil, 403},
			{http.MethodGet, []string{"X-HTTP-Method-Override", "DELETE"}, 403},
			{http.MethodGet, []string{"X-Method-Override", "PUT"}, 403},
			{http.MethodGet, []string{"X-HTTP-Method", "PATCH"}, 403},
			{http.MethodPost, []string{"X-HTTP-Method-Override", "GET"}, 403},
		} {
			rec := mwDo(h, mwReq(c.method, "/x", "generic", c.hdr...))
			require.Equal(t, c.code, rec.Code, "%s %v", c.method, c.hdr)
		}
	})
	t.Run("no grant ends session before denied handler", func(t *testing.T) {
		e := newMWEnv(t)
		var order []string
		var mu sync.Mutex
		h := e.m.Middleware(e.sessions.resolve,
			sa.OnSessionEnded(func(s sa.Session, reason string) { mu.Lock(); order = append(order, "ended:"+reason); mu.Unlock() }),
			sa.WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d sa.Denial) {
				mu.Lock()
				order = append(order, "denied")
				mu.Unlock()
				sa.DefaultDeniedHandler(w, r, d)
			}))(&mwOK{})
		rec := mwDo(h, mwReq("GET", "/x", "generic"))
		require.Equal(t, 403, rec.Code)
		require.Equal(t, []string{"ended:" + sa.SessionEndNoGrant, "denied"}, order)
	})
	t.Run("default denied handler", func(t *testing.T) {
		e := newMWEnv(t)
		h := e.wrap(&mwOK{})
		rec := mwDo(h, mwReq("HEAD", "/x", "generic"))
		require.Equal(t, 403, rec.Code)
		require.Empty(t, rec.Body.String())
		rec = mwDo(h, mwReq("GET", "/x", "generic", "Accept", "application/problem+json"))
		require.Contains(t, rec.Header().Get("Content-Type"), "application/json")
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	})
	t.Run("record change outside", func(t *testing.T) {
		require.NoError(t, sa.RecordChange(context.Background(), "", nil, nil))
	})
	t.Run("add grantee", func(t *testing.T) {
		e := newEnv(t)
		gen := e.grant(sa.GrantInput{})
		_, err := e.m.AddGrantee(ctx, gen.ID, "bob@vendor.example", customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		before := len(e.events())
		g2, err := e.m.AddGrantee(ctx, g.ID, engineer.ID, engineer)
		require.NoError(t, err)
		require.Equal(t, g, g2)
		require.Len(t, e.events(), before)
	})
	t.Run("revoke by support not covered", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Grantees: []string{"carol@vendor.example"}})
		_, err := e.m.Revoke(ctx, g.ID, engineer, "")
		require.ErrorIs(t, err, sa.ErrForbidden)
		require.Len(t, e.events(sa.EventActionRefused), 1)
	})
	t.Run("extend unlimited", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{})
		_, err := e.m.Extend(ctx, g.ID, time.Time{}, customer)
		require.ErrorIs(t, err, sa.ErrForbidden)
	})
	t.Run("runexpiry", func(t *testing.T) {
		e := newEnv(t)
		require.ErrorIs(t, e.m.RunExpiry(ctx, 0), sa.ErrInvalidInput)
	})
	t.Run("since until", func(t *testing.T) {
		e := newEnv(t)
		e.grant(sa.GrantInput{})
		at := e.now()
		evs, err := e.m.Events(ctx, sa.AuditFilter{Since: at})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		evs, err = e.m.Events(ctx, sa.AuditFilter{Until: at})
		require.NoError(t, err)
		require.Len(t, evs, 0)
	})
	t.Run("approve later start", func(t *testing.T) {
		e := newEnv(t)
		start := e.now().Add(48 * time.Hour)
		r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, StartsAt: start, Duration: sa.Day})
		require.NoError(t, err)
		g, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		require.Equal(t, start, g.StartsAt)
		require.Equal(t, start.Add(sa.Day), g.ExpiresAt)
		_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: sa.Day})
		require.NoError(t, err)
	})
	t.Run("approve wider", func(t *testing.T) {
		e := newEnv(t)
		r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: sa.Day})
		require.NoError(t, err)
		_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Duration: 2 * sa.Day})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	})
	t.Run("request expiry not notified", func(t *testing.T) {
		var mu sync.Mutex
		var got []sa.EventType
		e := newEnv(t, sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
			mu.Lock()
			got = append(got, n.Type)
			mu.Unlock()
			return nil
		})))
		_, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
		require.NoError(t, err)
		e.clock.Advance(73 * time.Hour)
		_, err = e.m.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, []sa.EventType{sa.EventRequestCreated}, got)
		require.Len(t, e.events(sa.EventRequestExpired), 1)
	})
	t.Run("slog disabled level", func(t *testing.T) {
		l := slog.New(slog.NewTextHandler(&strings.Builder{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		err := sa.NewSlogAuditor(l).Record(ctx, sa.Event{Time: time.Now(), Type: "x", TenantID: "t"})
		require.Error(t, err)
	})
	t.Run("starts at past", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: e.now().Add(-time.Second)})
		require.NoError(t, err)
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: e.now().Add(-time.Second - time.Microsecond)})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	})
	t.Run("host scope only", func(t *testing.T) {
		e := newEnv(t)
		e.grant(sa.GrantInput{Scopes: []sa.Scope{"messages:read"}})
		_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	})
	t.Run("check picks latest, unlimited first", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.AllowUnlimited = true
		e := newEnv(t, sa.WithPolicy(p))
		e.grant(sa.GrantInput{Duration: sa.Day})
		b := e.grant(sa.GrantInput{Duration: 2 * sa.Day})
		g, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.NoError(t, err)
		require.Equal(t, b.ID, g.ID)
		u := e.grant(sa.GrantInput{Duration: sa.Unlimited})
		g, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.NoError(t, err)
		require.Equal(t, u.ID, g.ID)
	})
	t.Run("revoke ticket empty", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.m.RevokeTicket(ctx, "acme", "", customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	})
	t.Run("sweep count", func(t *testing.T) {
		e := newEnv(t)
		e.grant(sa.GrantInput{Duration: time.Hour})
		e.grant(sa.GrantInput{Duration: time.Hour})
		e.clock.Advance(time.Hour)
		n, err := e.m.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Len(t, e.events(sa.EventGrantStarted), 2)
		require.Len(t, e.events(sa.EventGrantExpired), 2)
	})
}

func TestReview59DocCheckedMiddleware(t *testing.T) {
	t.Run("panic recorded 500", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{})
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
		func() {
			defer func() { _ = recover() }()
			mwDo(h, mwReq("GET", "/p?secret=1", "generic"))
		}()
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, 1)
		require.Equal(t, "500", evs[0].Attrs[sa.AttrStatus])
		require.Equal(t, "/p", evs[0].Attrs[sa.AttrPath])
		for _, k := range []string{sa.AttrMethod, sa.AttrPath, sa.AttrStatus, sa.AttrDurationMS, sa.AttrScope, sa.AttrSessionID, sa.AttrSubjectUserID} {
			require.Contains(t, evs[0].Attrs, k)
		}
	})
	t.Run("require scope outside passes", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{})
		inner := &mwOK{}
		h := sa.RequireScope("messages:read")(e.wrap(inner))
		rec := mwDo(h, mwReq("GET", "/m", "generic"))
		require.Equal(t, 200, rec.Code)
	})
	t.Run("mfa", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{})
		h := e.wrap(&mwOK{}, sa.RequireMFA(sa.GenericSupportUser("support+{tenant}@vendor.example")))
		require.Equal(t, 200, mwDo(h, mwReq("GET", "/", "generic")).Code)
		require.Equal(t, 403, mwDo(h, mwReq("GET", "/", "eve")).Code)
		require.Equal(t, 200, mwDo(h, mwReq("GET", "/", "eve-mfa")).Code)
		require.Len(t, e.events(sa.EventAccessDenied), 1)
		require.Empty(t, e.ended.all())
	})
	t.Run("impersonated admin call refused", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		var gerr, perr error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, gerr = e.m.Grant(r.Context(), sa.GrantInput{TenantID: "acme", By: mwCustomer})
			_, perr = e.m.PurgeAudit(r.Context(), "acme", time.Now())
		}))
		mwDo(h, mwReq("POST", "/admin", "generic"))
		require.ErrorIs(t, gerr, sa.ErrForbidden)
		require.ErrorIs(t, perr, sa.ErrForbidden)
		ref := e.events(sa.EventActionRefused)
		require.Len(t, ref, 2)
		require.Equal(t, sa.ActorSupport, ref[0].Actor.Kind)
	})
	t.Run("audit page next", func(t *testing.T) {
		e := newEnv(t)
		e.grant(sa.GrantInput{})
		e.grant(sa.GrantInput{})
		evs, next, err := e.m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme", Limit: 2}, "")
		require.NoError(t, err)
		require.Len(t, evs, 2)
		require.NotEmpty(t, next)
		evs, next, err = e.m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme", Limit: 2}, next)
		require.NoError(t, err)
		require.Len(t, evs, 0)
		require.Empty(t, next)
	})
	t.Run("export limit", func(t *testing.T) {
		e := newEnv(t)
		e.grant(sa.GrantInput{})
		e.grant(sa.GrantInput{})
		e.grant(sa.GrantInput{})
		var b strings.Builder
		n, err := e.m.ExportAudit(ctx, &b, sa.AuditFilter{Limit: 2})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, 2, strings.Count(b.String(), "\n"))
	})
}

func TestReview59DocCheckedHookRetry(t *testing.T) {
	t.Run("hook retry", func(t *testing.T) {
		fails := 3
		calls := 0
		var handled []error
		e := newEnv(t, sa.OnExpire(func(context.Context, sa.Grant) error {
			calls++
			if calls <= fails {
				return errBoom
			}
			return nil
		}), sa.WithErrorHandler(func(_ context.Context, err error) { handled = append(handled, err) }))
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		e.clock.Advance(time.Hour)
		_, err := e.m.Sweep(ctx)
		require.NoError(t, err)
		delays := []time.Duration{30 * time.Second, 60 * time.Second, 120 * time.Second}
		for i := 0; i < fails; i++ {
			evs := e.events(sa.EventExpireHookFailed)
			require.Len(t, evs, i+1)
			ev := evs[i]
			require.Equal(t, "0", ev.Attrs["hook"])
			require.Equal(t, strconv.Itoa(i+1), ev.Attrs["attempt"])
			next, err := time.Parse(time.RFC3339Nano, ev.Attrs["next_at"])
			require.NoError(t, err)
			require.Equal(t, e.now().Add(delays[i]), next, "attempt %d", i+1)
			e.clock.Advance(delays[i])
			_, err = e.m.Sweep(ctx)
			require.NoError(t, err)
		}
		ok := e.events(sa.EventExpireHookSucceeded)
		require.Len(t, ok, 1)
		require.Equal(t, "3", ok[0].Attrs["attempts"])
		require.Equal(t, g.ID, ok[0].GrantID)
		require.Len(t, handled, 3)
	})
}

func TestReview59DocCheckedExportFormat(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{})
	_, err := e.m.Revoke(ctx, g.ID, customer, "x")
	require.NoError(t, err)
	e.grant(sa.GrantInput{TenantID: "globex"})
	var b strings.Builder
	_, err = e.m.ExportAudit(ctx, &b, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 3)
	require.Contains(t, lines[0], `"prev_hash":""`)
	require.NotContains(t, lines[1], `prev_hash`)
	require.Contains(t, lines[2], `"prev_hash":""`)
	require.Contains(t, lines[0], `"attrs":{}`)
	rep, err := sa.VerifyJSONL(strings.NewReader(b.String()))
	require.NoError(t, err)
	require.EqualValues(t, 3, rep.Events)
	b.Reset()
	_, err = e.m.ExportAudit(ctx, &b, sa.AuditFilter{})
	require.NoError(t, err)
	require.NotContains(t, b.String(), "prev_hash")
}

func TestReview59DocCheckedSelector(t *testing.T) {
	e := newEnv(t)
	a := e.grant(sa.GrantInput{Duration: 2 * time.Hour})
	e.clock.Advance(time.Hour)
	e.grant(sa.GrantInput{Duration: time.Hour})
	g, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	require.Equal(t, a.ID, g.ID)
}

func TestReview59DocCheckedListsAndRequests(t *testing.T) {
	e := newEnv(t)
	a := e.grant(sa.GrantInput{TicketRef: "T-1"})
	e.clock.Advance(time.Second)
	b := e.grant(sa.GrantInput{TicketRef: "T-1"})
	_, err := e.m.Revoke(ctx, b.ID, customer, "")
	require.NoError(t, err)
	gs, err := e.m.List(ctx, sa.ListFilter{Statuses: []sa.Status{sa.StatusActive}, Limit: 1})
	require.NoError(t, err)
	require.Len(t, gs, 1)
	require.Equal(t, a.ID, gs[0].ID)

	r1, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
	require.NoError(t, err)
	e.clock.Advance(time.Second)
	r2, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: sa.Day})
	require.NoError(t, err)
	rs, err := e.m.ListRequests(ctx, sa.RequestFilter{})
	require.NoError(t, err)
	require.Equal(t, r2.ID, rs[0].ID)
	require.Equal(t, r1.ID, rs[1].ID)
	e.clock.Advance(72 * time.Hour)
	rs, err = e.m.ListRequests(ctx, sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestExpired}})
	require.NoError(t, err)
	require.Len(t, rs, 2)
	require.Equal(t, sa.RequestExpired, rs[0].Status)
	got, err := e.m.GetRequest(ctx, r1.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestExpired, got.Status)
	_, err = e.m.Approve(ctx, r1.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.Deny(ctx, r1.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	// RevokeTicket
	c := e.grant(sa.GrantInput{TicketRef: "T-2"})
	out, err := e.m.RevokeTicket(ctx, "acme", "T-1", customer, "closed")
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, a.ID, out[0].ID)
	g, err := e.m.Get(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, sa.StatusActive, g.Status(e.now()))
}

// tenantBlindStore is a memstore whose ListGrants ignores ListFilter.TenantID
// and TicketRef (a store with a broken filter): SECURITY.md says the Manager
// "re-checks every grant a store returns".
type tenantBlindStore struct{ *memstore.Store }

func (s tenantBlindStore) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	f.TenantID, f.TicketRef = "", ""
	return s.Store.ListGrants(ctx, f, now)
}

// SECURITY.md:22 "The Manager re-checks every grant a store returns." Check
// does (grant.go check); RevokeTenant and RevokeTicket do not: they revoke
// whatever ListGrants returns, after authorising the caller for the tenant
// named in the call only. With a store whose filter is broken, an admin of
// acme revoking "all of acme" revokes globex's grant too (DefaultAuthorizer;
// a host Authorizer that checks the tenant stops it at that grant with
// ErrForbidden, and RevokeTenant then returns an error halfway).
func TestReview59RevokeTenantRechecksStoreGrants(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := tenantBlindStore{memstore.New()}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now))
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	other, err := m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: sa.Actor{Kind: sa.ActorCustomer, ID: "gina@globex.example"}})
	require.NoError(t, err)

	out, err := m.RevokeTenant(ctx, "acme", customer, "offboarding acme")
	require.NoError(t, err)
	for _, g := range out {
		require.Equal(t, "acme", g.TenantID, "RevokeTenant(acme) revoked a grant of another tenant the store returned")
	}
	require.Len(t, out, 1, "acme's own grant is revoked")
	got, err := m.Get(ctx, other.ID)
	require.NoError(t, err)
	require.Equal(t, sa.StatusActive, got.Status(clock.Now()))
}

// Manager.List, too, leaves out what a store with a broken filter returns
// beyond the filter (another tenant, another ticket, another status, more
// than Limit), and reports each grant it leaves out to the error handler.
func TestReview59ListRechecksStoreGrants(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	var mu sync.Mutex
	var reported []error
	m, err := sa.NewManager(listBlindStore{memstore.New()}, sa.WithNow(clock.Now), sa.WithErrorHandler(func(_ context.Context, err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}))
	require.NoError(t, err)
	mine, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, TicketRef: "T-1"})
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, TicketRef: "T-2"})
	require.NoError(t, err)
	gone, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, TicketRef: "T-1"})
	require.NoError(t, err)
	_, err = m.Revoke(ctx, gone.ID, customer, "")
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: sa.Actor{Kind: sa.ActorCustomer, ID: "gina@globex.example"}, TicketRef: "T-1"})
	require.NoError(t, err)

	gs, err := m.List(ctx, sa.ListFilter{TenantID: "acme", TicketRef: "T-1", Statuses: []sa.Status{sa.StatusActive}})
	require.NoError(t, err)
	require.Len(t, gs, 1)
	require.Equal(t, mine.ID, gs[0].ID)
	mu.Lock()
	require.Len(t, reported, 3, "each grant left out is reported")
	for _, err := range reported {
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	}
	mu.Unlock()

	gs, err = m.List(ctx, sa.ListFilter{TenantID: "acme", Limit: 2})
	require.NoError(t, err)
	require.Len(t, gs, 2, "no more than Limit")
}

// listBlindStore is a memstore whose ListGrants ignores the filter.
type listBlindStore struct{ *memstore.Store }

func (s listBlindStore) ListGrants(ctx context.Context, _ sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	return s.Store.ListGrants(ctx, sa.ListFilter{}, now)
}
