package supportaccess_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// Review 140: do the docs tell the truth? Each test pins a concrete claim
// of README.md, SECURITY.md, doc.go or an exported doc comment.

// TestReview140DefaultPolicyAsDocumented pins README.md ("DefaultPolicy: 1
// week default, 120 days max") and DefaultPolicy's doc: no unlimited
// grants, read-only by default, reason and ticket optional, requests
// expire after 72 hours; NewManager without WithPolicy uses it.
func TestReview140DefaultPolicyAsDocumented(t *testing.T) {
	p := sa.DefaultPolicy()
	require.Equal(t, 7*sa.Day, p.DefaultDuration)
	require.Equal(t, 120*sa.Day, p.MaxDuration)
	require.False(t, p.AllowUnlimited)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, p.DefaultScopes)
	require.False(t, p.RequireReason)
	require.False(t, p.RequireTicketRef)
	require.Equal(t, 72*time.Hour, p.RequestTTL)
	require.Empty(t, p.Presets, "any duration up to the maximum")
	require.NoError(t, p.Validate())

	e := newEnv(t)
	require.Equal(t, p, e.m.Policy())
	g := e.grant(sa.GrantInput{}) // no reason, no ticket: optional
	require.Equal(t, 7*sa.Day, g.ExpiresAt.Sub(g.StartsAt))
	require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes)
	g = e.grant(sa.GrantInput{Duration: 120 * sa.Day})
	require.Equal(t, 120*sa.Day, g.ExpiresAt.Sub(g.StartsAt))
	g = e.grant(sa.GrantInput{Duration: 13*sa.Day + time.Microsecond}) // not a preset: there are none
	require.Equal(t, 13*sa.Day+time.Microsecond, g.ExpiresAt.Sub(g.StartsAt))

	before := e.snapshotWithout(sa.EventActionRefused)
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 120*sa.Day + time.Microsecond})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "above MaxDuration")
	require.ErrorContains(t, err, "Duration")
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Unlimited})
	require.ErrorIs(t, err, sa.ErrForbidden, "Policy.AllowUnlimited: refused with ErrForbidden otherwise")
	require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused), "refused grants store nothing")

	r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	require.Equal(t, 72*time.Hour, r.ExpiresAt.Sub(r.CreatedAt))
	require.Equal(t, 7*sa.Day, r.Duration)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, r.Scopes)
}

// TestReview140ZeroPolicyFieldsMeanDefaults pins Policy's field docs for a
// policy built from scratch: RequestTTL 0 means 72 hours, empty
// DefaultScopes means {ScopeRead} (for grants and, through
// RequestInput.Scopes "empty means Policy.DefaultScopes", for requests),
// MaxScheduleAhead 0 means no limit.
func TestReview140ZeroPolicyFieldsMeanDefaults(t *testing.T) {
	p := sa.Policy{DefaultDuration: sa.Day, MaxDuration: 2 * sa.Day}
	require.NoError(t, p.Validate())
	e := newEnv(t, sa.WithPolicy(p))
	g := e.grant(sa.GrantInput{})
	require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes)
	require.Equal(t, sa.Day, g.ExpiresAt.Sub(g.StartsAt))
	far := e.now().Add(5000 * sa.Day)
	g = e.grant(sa.GrantInput{StartsAt: far})
	require.Equal(t, far, g.StartsAt, "MaxScheduleAhead 0: no limit")

	r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	require.Equal(t, 72*time.Hour, r.ExpiresAt.Sub(r.CreatedAt), "RequestTTL 0 means 72 hours")
	require.Equal(t, []sa.Scope{sa.ScopeRead}, r.Scopes)
}

// TestReview140PresetsBindGrantNotExtend pins Policy.Presets and
// Policy.MaxDuration: presets are the only durations Grant accepts (plus
// 0), Extend is not restricted by them, and MaxDuration bounds an
// extension measured from the later of now and StartsAt.
func TestReview140PresetsBindGrantNotExtend(t *testing.T) {
	p := sa.DefaultPolicy()
	p.Presets = sa.PresetsShort
	p.DefaultDuration = sa.Day
	p.MaxDuration = 7 * sa.Day
	e := newEnv(t, sa.WithPolicy(p))
	now := e.now()

	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 2 * sa.Day})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "2 days is not a preset")
	g := e.grant(sa.GrantInput{Duration: 3 * sa.Day})
	require.Equal(t, 3*sa.Day, g.ExpiresAt.Sub(g.StartsAt))

	g, err = e.m.Extend(ctx, g.ID, now.Add(5*time.Hour+time.Microsecond), customer)
	require.NoError(t, err, "Extend sets an end, which presets do not restrict")
	require.Equal(t, now.Add(5*time.Hour+time.Microsecond), g.ExpiresAt)
	_, err = e.m.Extend(ctx, g.ID, now.Add(7*sa.Day+time.Microsecond), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "beyond MaxDuration from now")
	g, err = e.m.Extend(ctx, g.ID, now.Add(7*sa.Day), customer)
	require.NoError(t, err)
	_, err = e.m.Extend(ctx, g.ID, time.Time{}, customer)
	require.ErrorIs(t, err, sa.ErrForbidden, "no end without AllowUnlimited")

	// A scheduled grant: the window is measured from StartsAt.
	start := now.Add(30 * sa.Day)
	s := e.grant(sa.GrantInput{StartsAt: start})
	s, err = e.m.Extend(ctx, s.ID, start.Add(7*sa.Day), customer)
	require.NoError(t, err, "30 days ahead, 7 days long: within MaxDuration from StartsAt")
	require.Equal(t, start.Add(7*sa.Day), s.ExpiresAt)
	_, err = e.m.Extend(ctx, s.ID, start.Add(7*sa.Day+time.Microsecond), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.Extend(ctx, s.ID, start, customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "the new end must lie after StartsAt")
}

// TestReview140MethodScopes pins Manager.Middleware's doc and README.md
// ("GET needs read, POST needs write"): ScopeRead for GET, HEAD and
// OPTIONS, ScopeWrite for every other method, and method-override
// headers never lower the scope but raise it on a safe method.
func TestReview140MethodScopes(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read
	h := e.wrap(&mwOK{})
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
		require.Equal(t, http.StatusOK, mwDo(h, mwReq(method, "/x", "generic")).Code, method)
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, "PROPFIND", http.MethodConnect, http.MethodTrace} {
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(method, "/x", "generic")).Code, method)
	}
	for _, hdr := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/x", "generic", hdr, "DELETE")).Code, "%s raises a GET", hdr)
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodPost, "/x", "generic", hdr, "GET")).Code, "%s never lowers a POST", hdr)
	}
	denied := e.events(sa.EventAccessDenied)
	require.NotEmpty(t, denied)
	for _, ev := range denied {
		require.Equal(t, "write", ev.Attrs[sa.AttrScope], "%s %s", ev.Attrs[sa.AttrMethod], ev.Attrs[sa.AttrPath])
	}
	require.Len(t, e.events(sa.EventSupportRequest), 3)
}

// TestReview140QueryStringsNeverInTrail pins SECURITY.md: "Query strings
// never reach the audit trail" — neither an admitted request's nor a
// refused one's, nor a RequireScope refusal's.
func TestReview140QueryStringsNeverInTrail(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	mux := http.NewServeMux()
	mux.Handle("/x", &mwOK{})
	mux.Handle("/msgs", sa.RequireScope("messages:read")(&mwOK{}))
	h := e.wrap(mux)
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/x?token=SECRET1&a=b", "generic")).Code)
	require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodPost, "/x?token=SECRET2", "generic")).Code)
	require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/msgs?token=SECRET3", "generic")).Code)
	require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/x?token=SECRET4", "globex")).Code) // no grant in globex
	all := e.events()
	require.Len(t, all, 1+1+3) // grant.created, support.request, 3 denials
	blob := mwJSON(t, all)
	require.NotContains(t, blob, "SECRET")
	require.NotContains(t, blob, "token=")
}

// TestReview140WriteImpliesOnlyRead pins SECURITY.md and Scope's doc:
// "write implies read; host-defined scopes are never implied" — also a
// host scope named like a read does not imply ScopeRead.
func TestReview140WriteImpliesOnlyRead(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeWrite)
	require.NoError(t, err)
	_, err = e.m.Check(ctx, "acme", support.ID, "messages:read")
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)

	e.grant(sa.GrantInput{TenantID: "globex", Scopes: []sa.Scope{"messages:read", "admin"}})
	for _, s := range []sa.Scope{sa.ScopeRead, sa.ScopeWrite, "messages", "messages:write"} {
		_, err = e.m.Check(ctx, "globex", support.ID, s)
		require.ErrorIs(t, err, sa.ErrScopeNotGranted, "%q", s)
	}
	_, err = e.m.Check(ctx, "globex", support.ID, "messages:read")
	require.NoError(t, err)
}

// TestReview140MiscasedScopesRefused pins Scope's doc: another spelling
// of read or write is refused with ErrInvalidInput wherever a scope is
// given (a policy's default scopes, grants, access requests, checks),
// rather than taken as a host scope; nothing is stored.
func TestReview140MiscasedScopesRefused(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	before := e.snapshot()
	for _, s := range []sa.Scope{"Write", "READ", "Read", "WRITE"} {
		_, err := e.m.Check(ctx, "acme", support.ID, s)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "Check %q", s)
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Scopes: []sa.Scope{s}})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "Grant %q", s)
		_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Scopes: []sa.Scope{s}})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "RequestAccess %q", s)
		p := sa.DefaultPolicy()
		p.DefaultScopes = []sa.Scope{s}
		require.ErrorIs(t, p.Validate(), sa.ErrInvalidInput, "DefaultScopes %q", s)
		_, err = sa.NewManager(memstore.New(), sa.WithPolicy(p))
		require.ErrorIs(t, err, sa.ErrInvalidInput, "NewManager with DefaultScopes %q", s)
	}
	require.Equal(t, before, e.snapshot())
}

// TestReview140RunExpiryStopsWithErrClosed pins README.md ("call
// m.Close(): it stops RunExpiry (which returns ErrClosed) and waits for
// it ... cancelling that ctx stops it too") and RunExpiry's errors.
func TestReview140RunExpiryStopsWithErrClosed(t *testing.T) {
	e := newEnv(t)
	require.ErrorIs(t, e.m.RunExpiry(ctx, 0), sa.ErrInvalidInput)
	require.ErrorIs(t, e.m.RunExpiry(ctx, -time.Second), sa.ErrInvalidInput)

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.RunExpiry(cctx, time.Hour) }()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("RunExpiry did not return after its context was cancelled")
	}

	go func() { done <- e.m.RunExpiry(ctx, time.Hour) }()
	require.NoError(t, e.m.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, sa.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("RunExpiry did not return after Close")
	}
	require.ErrorIs(t, e.m.RunExpiry(ctx, time.Hour), sa.ErrClosed, "at once after Close")
}

// TestReview140SweepRecordsLifecycleOnce pins README.md: RunExpiry's Sweep
// records each start and expiry once (grant.started, grant.expired,
// request.expired), runs OnExpire and tells the Notifier of grant expiries
// (Notification's doc: a request's expiry is not notified); a
// grant revoked before a sweep reached its start gets no grant.started
// (nor, revoked, a grant.expired); access ends at ExpiresAt without it.
func TestReview140SweepRecordsLifecycleOnce(t *testing.T) {
	var hooked []uuid.UUID
	var notified []sa.EventType
	e := newEnv(t,
		sa.OnExpire(func(_ context.Context, g sa.Grant) error { hooked = append(hooked, g.ID); return nil }),
		sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
			notified = append(notified, n.Type)
			return nil
		})))
	now := e.now()
	g := e.grant(sa.GrantInput{StartsAt: now.Add(time.Hour), Duration: time.Hour})
	revoked := e.grant(sa.GrantInput{StartsAt: now.Add(time.Hour), Duration: time.Hour})
	_, err := e.m.Revoke(ctx, revoked.ID, customer, "not needed")
	require.NoError(t, err)
	_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)

	count := func(typ sa.EventType, id uuid.UUID) int {
		n := 0
		for _, ev := range e.events(typ) {
			if id == uuid.Nil || ev.GrantID == id {
				n++
			}
		}
		return n
	}
	e.clock.Advance(time.Hour)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err, "started without a sweep")
	for range 2 {
		_, err = e.m.Sweep(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, 1, count(sa.EventGrantStarted, g.ID))
	require.Equal(t, 0, count(sa.EventGrantStarted, revoked.ID))

	e.clock.Advance(time.Hour)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "ended at ExpiresAt without a sweep")
	for range 2 {
		_, err = e.m.Sweep(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, 1, count(sa.EventGrantExpired, g.ID))
	require.Equal(t, 0, count(sa.EventGrantExpired, revoked.ID))
	require.Equal(t, []uuid.UUID{g.ID}, hooked)

	e.clock.Advance(72 * time.Hour)
	for range 2 {
		_, err = e.m.Sweep(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, 1, count(sa.EventRequestExpired, uuid.Nil))
	require.Contains(t, notified, sa.EventGrantExpired)
	require.NotContains(t, notified, sa.EventRequestExpired, "Notification: expiry of an unanswered request is audited but not notified")
}

// TestReview140ForbiddenRevealsExistence pins SECURITY.md ("Out of
// scope"): an actor refused on a grant or request ID gets ErrForbidden
// rather than ErrNotFound (the tenant it is judged against is the stored
// record's), an unknown ID is ErrNotFound, and the refusal is audited in
// the record's tenant.
func TestReview140ForbiddenRevealsExistence(t *testing.T) {
	owners := map[string]string{customer.ID: "acme", "gil@globex.example": "globex"}
	e := newEnv(t, sa.WithAuthorizer(func(ctx context.Context, action sa.Action, by sa.Actor, tenantID string) error {
		if by.Kind == sa.ActorCustomer && owners[by.ID] == tenantID {
			return nil
		}
		if by.Kind == sa.ActorSupport {
			return sa.DefaultAuthorizer(ctx, action, by, tenantID)
		}
		return errors.New("not this tenant's admin")
	}))
	gil := sa.Actor{Kind: sa.ActorCustomer, ID: "gil@globex.example"}
	theirs := e.grant(sa.GrantInput{TenantID: "globex", By: gil})
	req, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: support})
	require.NoError(t, err)
	refusedBefore := len(e.events(sa.EventActionRefused))

	_, err = e.m.Revoke(ctx, theirs.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.NotErrorIs(t, err, sa.ErrNotFound)
	_, err = e.m.Extend(ctx, theirs.ID, e.now().Add(time.Hour), customer)
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Approve(ctx, req.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Deny(ctx, req.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrForbidden)

	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, refusedBefore+4, "each refusal audited")
	for _, ev := range refused[refusedBefore:] {
		require.Equal(t, "globex", ev.TenantID, "in the stored record's tenant")
		require.Equal(t, customer, ev.Actor)
	}

	_, err = e.m.Revoke(ctx, uuid.New(), customer, "")
	require.ErrorIs(t, err, sa.ErrNotFound)
	_, err = e.m.Approve(ctx, uuid.New(), customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrNotFound)
	got, err := e.m.Get(ctx, theirs.ID)
	require.NoError(t, err)
	require.True(t, got.RevokedAt.IsZero(), "unchanged")
}

// TestReview140BadInputNamesFieldChangesNothing pins doc.go: "Bad input
// returns an error wrapping ErrInvalidInput that names the field and
// changes nothing", at the documented limits of validate.go (a value at
// the limit is accepted, one byte or entry more is not).
func TestReview140BadInputNamesFieldChangesNothing(t *testing.T) {
	e := newEnv(t)
	base := func() sa.GrantInput { return sa.GrantInput{TenantID: "acme", By: customer} }
	names := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("p%d@vendor.example", i)
		}
		return out
	}
	scopes := func(n int) []sa.Scope {
		out := make([]sa.Scope, n)
		for i := range out {
			out[i] = sa.Scope(fmt.Sprintf("host:%d", i))
		}
		return out
	}
	cases := []struct {
		field     string
		ok, wrong func(*sa.GrantInput)
	}{
		{"TenantID",
			func(in *sa.GrantInput) { in.TenantID = strings.Repeat("t", sa.MaxTenantIDLen) },
			func(in *sa.GrantInput) { in.TenantID = strings.Repeat("t", sa.MaxTenantIDLen+1) }},
		{"Reason",
			func(in *sa.GrantInput) { in.Reason = strings.Repeat("r", sa.MaxReasonLen) },
			func(in *sa.GrantInput) { in.Reason = strings.Repeat("r", sa.MaxReasonLen+1) }},
		{"TicketRef",
			func(in *sa.GrantInput) { in.TicketRef = strings.Repeat("k", sa.MaxTicketRefLen) },
			func(in *sa.GrantInput) { in.TicketRef = strings.Repeat("k", sa.MaxTicketRefLen+1) }},
		{"Grantees",
			func(in *sa.GrantInput) { in.Grantees = names(sa.MaxGrantees) },
			func(in *sa.GrantInput) { in.Grantees = names(sa.MaxGrantees + 1) }},
		{"Grantees",
			func(in *sa.GrantInput) { in.Grantees = []string{strings.Repeat("p", sa.MaxPrincipalLen)} },
			func(in *sa.GrantInput) { in.Grantees = []string{strings.Repeat("p", sa.MaxPrincipalLen+1)} }},
		{"Scopes",
			func(in *sa.GrantInput) { in.Scopes = scopes(sa.MaxScopes) },
			func(in *sa.GrantInput) { in.Scopes = scopes(sa.MaxScopes + 1) }},
		{"Scopes",
			func(in *sa.GrantInput) { in.Scopes = []sa.Scope{sa.Scope(strings.Repeat("s", sa.MaxScopeLen))} },
			func(in *sa.GrantInput) { in.Scopes = []sa.Scope{sa.Scope(strings.Repeat("s", sa.MaxScopeLen+1))} }},
		{"Name",
			func(in *sa.GrantInput) { in.By.Name = strings.Repeat("n", sa.MaxActorNameLen) },
			func(in *sa.GrantInput) { in.By.Name = strings.Repeat("n", sa.MaxActorNameLen+1) }},
		{"Reason",
			func(in *sa.GrantInput) { in.Reason = "line one\r\nline two\tend" },
			func(in *sa.GrantInput) { in.Reason = "lone\rreturn" }},
		{"Reason",
			func(in *sa.GrantInput) { in.Reason = "plain" },
			func(in *sa.GrantInput) { in.Reason = "evil\u202etxt.exe" }},
		{"TenantID",
			func(in *sa.GrantInput) { in.TenantID = "ac me" },
			func(in *sa.GrantInput) { in.TenantID = "ac\u200bme" }},
	}
	for _, c := range cases {
		in := base()
		c.wrong(&in)
		before := e.snapshot()
		_, err := e.m.Grant(ctx, in)
		require.ErrorIs(t, err, sa.ErrInvalidInput, c.field)
		require.ErrorContains(t, err, c.field)
		require.Equal(t, before, e.snapshot(), "%s: nothing stored, nothing audited", c.field)
		in = base()
		c.ok(&in)
		_, err = e.m.Grant(ctx, in)
		require.NoError(t, err, "%s at the limit", c.field)
	}
}

// TestReview140TimesUTCMicroseconds pins doc.go ("Times are UTC and
// truncated to microseconds by the Manager") and WithNow's doc, with a
// clock that answers in another zone with nanoseconds.
func TestReview140TimesUTCMicroseconds(t *testing.T) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2026, 11, 28, 14, 30, 0, 123_456_789, zone)
	m, err := sa.NewManager(memstore.New(), sa.WithNow(func() time.Time { return at }))
	require.NoError(t, err)
	want := time.Date(2026, 11, 28, 9, 0, 0, 123_456_000, time.UTC)
	require.Equal(t, want, m.Now())
	require.Equal(t, time.UTC, m.Now().Location())
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour,
		StartsAt: at.Add(time.Minute + 999*time.Nanosecond)})
	require.NoError(t, err)
	for name, tm := range map[string]time.Time{"CreatedAt": g.CreatedAt, "StartsAt": g.StartsAt, "ExpiresAt": g.ExpiresAt} {
		require.Equal(t, time.UTC, tm.Location(), name)
		require.Zero(t, tm.Nanosecond()%1000, name)
	}
	require.Equal(t, want, g.CreatedAt)
	require.Equal(t, want.Add(time.Minute+time.Microsecond), g.StartsAt, "123456789+999 ns truncates to 123457 µs")
	evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, want, evs[0].Time)
	require.Equal(t, time.UTC, evs[0].Time.Location())
}

// TestReview140AuditFilterTypeLimits pins AuditFilter.Types' doc (at most
// MaxFilterTypes entries of at most 255 bytes each) and AuditLog.Events'
// (more is ErrInvalidInput; no match is an empty result, not an error).
func TestReview140AuditFilterTypeLimits(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{})
	types := make([]sa.EventType, sa.MaxFilterTypes)
	for i := range types {
		types[i] = sa.EventType(fmt.Sprintf("host.t%d", i))
	}
	types[0] = sa.EventGrantCreated
	evs, err := e.m.Events(ctx, sa.AuditFilter{Types: types})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	_, err = e.m.Events(ctx, sa.AuditFilter{Types: append(types, "one.more")})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, _, err = e.m.AuditPage(ctx, sa.AuditFilter{Types: append(types, "one.more")}, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)

	evs, err = e.m.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventType(strings.Repeat("x", 255))}})
	require.NoError(t, err)
	require.Empty(t, evs)
	_, err = e.m.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventType(strings.Repeat("x", 256))}})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	evs, err = e.m.Events(ctx, sa.AuditFilter{TenantID: "nobody"})
	require.NoError(t, err)
	require.Empty(t, evs)
}

// TestReview140IDsCompareByteForByte pins SECURITY.md: "Tenant and
// principal IDs compare byte for byte; there is no pattern matching."
func TestReview140IDsCompareByteForByte(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{TenantID: "straße", Grantees: []string{"eve@vendor.example"}})
	e.grant(sa.GrantInput{TenantID: "acme_%"})
	for _, c := range []struct{ tenant, principal string }{
		{"STRASSE", "eve@vendor.example"},
		{"strasse", "eve@vendor.example"},
		{"Straße", "eve@vendor.example"},
		{"straße", "EVE@vendor.example"},
		{"straße", "eve@vendor.example."},
		{"straße", "eve@vendor.exampl"},
		{"straße", "%"},
		{"acme_x", support.ID},
		{"acme_%x", support.ID},
		{"acme__", support.ID},
		{"ACME_%", support.ID},
	} {
		_, err := e.m.Check(ctx, c.tenant, c.principal, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "%q %q", c.tenant, c.principal)
	}
	_, err := e.m.Check(ctx, "straße", "eve@vendor.example", sa.ScopeRead)
	require.NoError(t, err)
	_, err = e.m.Check(ctx, "acme_%", support.ID, sa.ScopeRead)
	require.NoError(t, err)
}

// TestReview140READMEIntegrationSketch runs README.md's "Integration in
// fifteen lines" on SQLite: sqlstore.New, Migrate, NewManager (the
// DefaultPolicy), a resolver that passes non-support requests untouched,
// the middleware over the mux ("GET needs read, POST needs write"), and an
// admin route behind the middleware calling Grant with r.Context(), which
// is refused when support impersonates the admin. Also README's "behind
// it, support without a write grant could not even log out".
func TestReview140READMEIntegrationSketch(t *testing.T) {
	db := sqltest.OpenSQLite(t, filepath.Join(t.TempDir(), "app.db")) // sql.Open("sqlite", path)
	store, err := sqlstore.New(db, sqlstore.SQLite)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	require.NoError(t, store.Migrate(ctx))
	m, err := sa.NewManager(store)
	require.NoError(t, err)
	require.Equal(t, sa.DefaultPolicy(), m.Policy())

	type hostSession struct{ Tenant, ImpersonatedBy, UserID, ID string }
	sessions := map[string]*hostSession{
		"admin":   {Tenant: "acme", UserID: "ada", ID: "s-admin"},
		"support": {Tenant: "acme", ImpersonatedBy: "support+acme@vendor.example", UserID: "ada", ID: "s-support"},
	}
	get := func(r *http.Request) *hostSession {
		c, err := r.Cookie("sid")
		if err != nil {
			return nil
		}
		return sessions[c.Value]
	}
	resolve := func(r *http.Request) (sa.Session, bool) {
		s := get(r)
		if s == nil || s.ImpersonatedBy == "" {
			return sa.Session{}, false
		}
		return sa.Session{TenantID: s.Tenant, Principal: s.ImpersonatedBy, SubjectUserID: s.UserID, SessionID: s.ID}, true
	}
	var grantErrs []error
	mux := http.NewServeMux()
	mux.HandleFunc("GET /invoices", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "invoices") })
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "bye") })
	mux.HandleFunc("POST /admin/support-access", func(w http.ResponseWriter, r *http.Request) {
		s := get(r)
		_, err := m.Grant(r.Context(), sa.GrantInput{TenantID: s.Tenant, By: sa.Actor{Kind: sa.ActorCustomer, ID: s.UserID},
			Duration: 24 * time.Hour, Reason: "invoice export fails", TicketRef: "SUP-1042"})
		grantErrs = append(grantErrs, err)
		if err != nil {
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		fmt.Fprint(w, "granted")
	})
	h := m.Middleware(resolve)(mux)
	do := func(method, path, sid string) int {
		r := httptest.NewRequest(method, path, nil)
		if sid != "" {
			r.AddCookie(&http.Cookie{Name: "sid", Value: sid})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}

	require.Equal(t, http.StatusForbidden, do(http.MethodGet, "/invoices", "support"), "default deny")
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/invoices", "admin"), "not support: untouched")
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/admin/support-access", "admin"))
	require.Equal(t, []error{nil}, grantErrs)
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/invoices", "support"), "GET needs read")
	require.Equal(t, http.StatusForbidden, do(http.MethodPost, "/logout", "support"), "no write grant: not even log out")
	require.Equal(t, http.StatusForbidden, do(http.MethodPost, "/admin/support-access", "support"), "POST needs write")

	// With a write grant support reaches the admin handler, but Grant,
	// called with the impersonated request's context, refuses.
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "ada"}, Scopes: []sa.Scope{sa.ScopeWrite}})
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, do(http.MethodPost, "/admin/support-access", "support"))
	require.Len(t, grantErrs, 2)
	require.ErrorIs(t, grantErrs[1], sa.ErrForbidden)
	gs, err := m.List(ctx, sa.ListFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, gs, 2, "the impersonated Grant stored nothing")
	refused, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventActionRefused}})
	require.NoError(t, err)
	require.Len(t, refused, 1)
	require.Equal(t, sa.ActorSupport, refused[0].Actor.Kind, "refusal audited with the support principal as actor")
	require.Equal(t, "support+acme@vendor.example", refused[0].Actor.ID)
	require.Equal(t, "s-support", refused[0].Attrs[sa.AttrSessionID])
}

// TestReview140EventJSONShape pins the JSON field names ExampleNewSlogAuditor
// prints and ExportAudit writes (Event's struct tags): a host's log
// pipeline keys on them.
func TestReview140EventJSONShape(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Reason: "why"})
	evs := e.events(sa.EventGrantCreated)
	require.Len(t, evs, 1)
	b, err := json.Marshal(evs[0])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"id", "time", "type", "tenant_id", "grant_id", "actor", "reason", "after", "seq", "hash"} {
		require.Contains(t, m, k)
	}
	require.Equal(t, g.ID.String(), m["grant_id"])
}
