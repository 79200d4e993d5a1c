package supportaccess_test

// Review 169: documentation truthfulness after this session's changes.
// Each test takes a claim of README.md (its "Telemetry" section, the
// RunExpiry/Close paragraph), SECURITY.md (method overrides, what the
// request line does not show, the audit grace), doc.go ("Shutdown") or a
// doc comment changed since 0b71a00, and checks it against what the code
// does. A passing test is a failed attack; a test that starts with
// t.Skip("BUG: …") asserts the correct behaviour of a bug found.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// r169Store is a memstore that counts ListGrants calls, can fail
// FindActiveGrant (down) or the Record of one event type (failType), and
// can delay the Record of one event type (delayType, delay), honouring
// ctx as a database driver does (hang: wait for ctx alone).
type r169Store struct {
	*memstore.Store
	lists     atomic.Int64
	down      atomic.Bool
	mu        sync.Mutex
	failType  sa.EventType
	delayType sa.EventType
	delay     time.Duration
	hang      bool
}

func newR169Store() *r169Store { return &r169Store{Store: memstore.New()} }

func (s *r169Store) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	s.lists.Add(1)
	return s.Store.ListGrants(ctx, f, now)
}

func (s *r169Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if err := ctx.Err(); err != nil {
		return sa.Grant{}, err
	}
	if s.down.Load() {
		return sa.Grant{}, errBoom
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

func (s *r169Store) slowOn(typ sa.EventType, d time.Duration, hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delayType, s.delay, s.hang = typ, d, hang
}

func (s *r169Store) failOn(typ sa.EventType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failType = typ
}

func (s *r169Store) Record(ctx context.Context, e sa.Event) error {
	s.mu.Lock()
	fail, typ, d, hang := s.failType, s.delayType, s.delay, s.hang
	s.mu.Unlock()
	if fail != "" && e.Type == fail {
		return errBoom
	}
	if typ != "" && e.Type == typ {
		if hang {
			<-ctx.Done()
			return ctx.Err()
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return s.Store.Record(ctx, e)
}

// r169Events returns the store's events of the given types.
func r169Events(t *testing.T, st interface {
	Events(context.Context, sa.AuditFilter) ([]sa.Event, error)
}, types ...sa.EventType) []sa.Event {
	t.Helper()
	evs, err := st.Events(context.Background(), sa.AuditFilter{Types: types})
	require.NoError(t, err)
	return evs
}

const r169Principal = "p169@vendor.example"

// r169Resolve resolves every request to a session of tenant acme for
// r169Principal (header X-Tenant / X-Principal override them, X-MFA sets
// MFA).
func r169Resolve(r *http.Request) (sa.Session, bool) {
	s := sa.Session{TenantID: "acme", Principal: r169Principal, SubjectUserID: "u-169", SessionID: "s-169"}
	if v, ok := r.Header["X-Tenant"]; ok {
		s.TenantID = v[0]
	}
	if v := r.Header.Get("X-Principal"); v != "" {
		s.Principal = v
	}
	s.MFA = r.Header.Get("X-Mfa") == "1"
	return s, true
}

// TestReview169GaugeSeriesQueriesAndClose attacks README's gauge row
// ("opt-in: WithActiveGrantsGauge; one store query per collection; a
// tenant with no active grant has no series", attribute
// supportaccess.tenant_id) and Close's doc ("takes the callback ... off
// the meter provider ... from Close on, the callback observes nothing").
func TestReview169GaugeSeriesQueriesAndClose(t *testing.T) {
	st := newR169Store()
	e := newR161(t, st, sa.WithActiveGrantsGauge(true))
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	gx, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: customer, Duration: time.Hour})
	require.NoError(t, err)

	gauge := func() map[string]int64 {
		t.Helper()
		before := st.lists.Load()
		ms := e.collect()
		require.Equal(t, before+1, st.lists.Load(), "one store query per collection")
		out := map[string]int64{}
		if m, ok := ms["supportaccess.grants.active"]; ok {
			for _, p := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				require.Equal(t, 1, p.Attributes.Len(), "one attribute")
				v, ok := p.Attributes.Value(sa.AttrKeyTenant)
				require.True(t, ok, "the attribute is supportaccess.tenant_id")
				out[v.AsString()] = p.Value
			}
		}
		return out
	}
	require.Equal(t, map[string]int64{"acme": 1, "globex": 1}, gauge())
	_, err = e.m.Revoke(ctx, gx.ID, customer, "")
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"acme": 1}, gauge(), "globex has no series, not a 0")

	require.NoError(t, e.m.Close())
	before := st.lists.Load()
	ms := e.collect()
	if m, ok := ms["supportaccess.grants.active"]; ok {
		require.Empty(t, m.Data.(metricdata.Gauge[int64]).DataPoints, "nothing observed after Close")
	}
	require.Equal(t, before, st.lists.Load(), "no store query after Close")
	// The API keeps working after Close.
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
}

// TestReview169CheckOutcomesAsReadmeLists attacks README's outcome list of
// supportaccess.checks: "invalid (malformed tenant, principal or scope),
// error (a fault: store down, schema not migrated, context ended)"; the
// histogram carries the same outcome.
func TestReview169CheckOutcomesAsReadmeLists(t *testing.T) {
	st := newR169Store()
	e := newR161(t, st)
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)

	for _, c := range []struct{ tenant, principal, scope string }{
		{"", support.ID, "read"},
		{" acme", support.ID, "read"},
		{"acme", "", "read"},
		{"acme", "a\u200bb@vendor.example", "read"},
		{"acme", support.ID, ""},
		{"acme", support.ID, "bad\nscope"},
	} {
		_, err := e.m.Check(ctx, c.tenant, c.principal, sa.Scope(c.scope))
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%+v", c)
	}
	got := e.counts()
	require.EqualValues(t, 6, got["supportaccess.checks/invalid"])
	require.EqualValues(t, 6, got["supportaccess.check.duration/invalid"])

	st.down.Store(true)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, errBoom)
	st.down.Store(false)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = e.m.Check(cctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, context.Canceled)
	dctx, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	_, err = e.m.Check(dctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	got = e.counts()
	require.EqualValues(t, 3, got["supportaccess.checks/error"], "store down and context ended are faults")
	require.EqualValues(t, 3, got["supportaccess.check.duration/error"])
	require.EqualValues(t, 6, got["supportaccess.checks/invalid"])

	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = e.m.Check(ctx, "globex", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	got = e.counts()
	require.EqualValues(t, 1, got["supportaccess.checks/scope"])
	require.EqualValues(t, 1, got["supportaccess.checks/no_grant"])
	require.EqualValues(t, 1, got["supportaccess.checks/allowed"])
}

// TestReview169BrokenClockIsAFaultNotMalformedInput attacks README's
// outcome list again: "invalid (malformed tenant, principal or scope)",
// "error (a fault: ...)", and "Alert on checks{outcome="error"} (a store
// outage: every support request is denied with 503)". A Manager whose
// clock reads outside the years 1000-9999 (a broken RTC, a WithNow bug)
// denies every support request — an outage of the host, like a schema
// not migrated — yet Check wraps ErrInvalidInput for it (checkClock,
// manager.go), so it is counted as outcome "invalid" and the middleware
// answers 403 "invalid session or scope": the alert README recommends
// never fires, exactly the failure review 161 removed for
// sqlstore.ErrSchemaTooOld.
func TestReview169BrokenClockIsAFaultNotMalformedInput(t *testing.T) {
	var broken atomic.Bool
	clock := storetest.NewClock(storetest.Epoch)
	st := newR169Store()
	e := newR161(t, st, sa.WithNow(func() time.Time {
		if broken.Load() {
			return time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		return clock.Now()
	}))
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	broken.Store(true)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.Error(t, err)
	require.NotErrorIs(t, err, sa.ErrInvalidInput, "the arguments were fine")
	require.EqualValues(t, 1, e.counts()["supportaccess.checks/error"])
	h := e.m.Middleware(r169Resolve)(&mwOK{})
	rec := mwDo(h, mwReq(http.MethodGet, "/", ""))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "an outage is a 503")
}

// TestReview169SpanOutcomes attacks README's span paragraph: "Every
// operation has a span supportaccess.<Op> with supportaccess.outcome (ok,
// forbidden, invalid, not_found, error — only error sets the span's status
// to Error); Check has one only with WithCheckSpans". It pins what the
// README leaves out: Check's spans carry Check's own outcomes (allowed,
// no_grant, scope, invalid, error — what examples/otel prints), not "ok".
func TestReview169SpanOutcomes(t *testing.T) {
	st := newR169Store()
	e := newR161(t, st, sa.WithCheckSpans(true))
	g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support, Duration: time.Hour})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Grant(ctx, sa.GrantInput{By: customer})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.Get(ctx, uuid.New())
	require.ErrorIs(t, err, sa.ErrNotFound)
	_, err = e.m.Revoke(ctx, g.ID, customer, "")
	require.NoError(t, err)
	_, err = e.m.Extend(ctx, g.ID, e.clock.Now().Add(2*time.Hour), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.RevokeTenant(ctx, "acme", customer, "")
	require.NoError(t, err)
	_, err = e.m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	st.down.Store(true)
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err, "Grant does not call FindActiveGrant")
	st.down.Store(false)
	st.failOn(sa.EventGrantRevoked)
	_, err = e.m.RevokeTenant(ctx, "acme", customer, "")
	require.NoError(t, err, "the memstore commits the revocation's events itself")
	st.failOn("")

	allowed := map[string]bool{sa.OutcomeOK: true, sa.OutcomeForbidden: true, sa.OutcomeInvalid: true, sa.OutcomeNotFound: true, sa.OutcomeError: true}
	seen := map[string]string{}
	for _, s := range e.spans.Ended() {
		require.True(t, strings.HasPrefix(s.Name(), "supportaccess."), s.Name())
		o := attrs(s)[sa.AttrKeyOutcome]
		require.True(t, allowed[o], "%s: outcome %q is one README lists", s.Name(), o)
		require.Equal(t, o == sa.OutcomeError, s.Status().Code == codes.Error, "%s: only error sets status Error", s.Name())
		seen[s.Name()+"/"+o] = o
	}
	for _, k := range []string{"supportaccess.Grant/ok", "supportaccess.Grant/forbidden", "supportaccess.Grant/invalid",
		"supportaccess.Get/not_found", "supportaccess.Revoke/ok", "supportaccess.Extend/invalid",
		"supportaccess.RevokeTenant/ok", "supportaccess.VerifyAudit/ok"} {
		require.Contains(t, seen, k)
	}
	require.NotContains(t, seen, "supportaccess.Check/ok", "no Check span without a recording parent")

	// Check spans, under a traced request: their outcome values are
	// Check's, which README's span list does not name.
	pctx, parent := e.tp.Tracer("http").Start(ctx, "GET /")
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	_, err = e.m.Check(pctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	_, err = e.m.Check(pctx, "acme", support.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = e.m.Check(pctx, "globex", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	parent.End()
	var outs []string
	for _, s := range e.ended("supportaccess.Check") {
		outs = append(outs, attrs(s)[sa.AttrKeyOutcome])
		require.Equal(t, codes.Unset, s.Status().Code)
	}
	require.Equal(t, []string{sa.OutcomeAllowed, sa.OutcomeScope, sa.OutcomeNoGrant}, outs,
		"Check spans say allowed/scope/no_grant (README lists ok, forbidden, invalid, not_found, error only)")
}

// TestReview169MiddlewareSpanAndCounting attacks README: the middleware
// annotates the request's span with supportaccess.impersonated, the
// tenant, the grant and supportaccess.decision ("allowed" or
// "denied:<code>"); "A refusal the middleware makes before any Check (a
// malformed session, MFA required) is on that span only, not in
// supportaccess.checks"; a store outage denies with 503 (checks error);
// "an audit outage also denies with 503, after a Check that was allowed",
// and reaches the error handler.
func TestReview169MiddlewareSpanAndCounting(t *testing.T) {
	st := newR169Store()
	e := newR161(t, st)
	g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	var reported []error
	var mu sync.Mutex
	srv := newR161Server(e, r169Resolve, sa.RequireMFA(nil), sa.WithMiddlewareErrorHandler(func(_ context.Context, err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}))
	checks := func() map[string]int64 {
		out := map[string]int64{}
		for k, v := range e.counts() {
			if strings.HasPrefix(k, "supportaccess.checks/") {
				out[strings.TrimPrefix(k, "supportaccess.checks/")] = v
			}
		}
		return out
	}

	code, span, _ := srv.serve(http.MethodGet, "/", "X-Mfa", "1")
	require.Equal(t, http.StatusOK, code)
	a := attrs(span)
	require.Equal(t, "true", a[sa.AttrKeyImpersonated])
	require.Equal(t, "acme", a[sa.AttrKeyTenant])
	require.Equal(t, g.ID.String(), a[sa.AttrKeyGrant])
	require.Equal(t, "allowed", a[sa.AttrKeyDecision])
	require.NotContains(t, a, sa.AttrKeyPrincipal)
	require.Equal(t, map[string]int64{"allowed": 1}, checks())

	code, span, _ = srv.serve(http.MethodGet, "/")
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "denied:"+sa.DeniedMFARequired, attrs(span)[sa.AttrKeyDecision])
	code, span, _ = srv.serve(http.MethodGet, "/", "X-Mfa", "1", "X-Tenant", "ac\x01me")
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "denied:"+sa.DeniedAccess, attrs(span)[sa.AttrKeyDecision])
	require.NotContains(t, attrs(span), sa.AttrKeyTenant, "a malformed tenant is not recorded")
	require.Equal(t, map[string]int64{"allowed": 1}, checks(), "refusals before any Check are not counted")

	st.down.Store(true)
	code, span, _ = srv.serve(http.MethodGet, "/", "X-Mfa", "1")
	st.down.Store(false)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "denied:"+sa.DeniedUnavailable, attrs(span)[sa.AttrKeyDecision])
	require.EqualValues(t, 1, checks()["error"])

	mu.Lock()
	reported = nil
	mu.Unlock()
	st.failOn(sa.EventSupportRequest)
	code, _, _ = srv.serve(http.MethodGet, "/", "X-Mfa", "1")
	st.failOn("")
	require.Equal(t, http.StatusServiceUnavailable, code, "an audit outage denies with 503")
	require.EqualValues(t, 2, checks()["allowed"], "after a Check that was allowed")
	mu.Lock()
	defer mu.Unlock()
	var audit bool
	for _, err := range reported {
		audit = audit || errors.Is(err, errBoom)
	}
	require.True(t, audit, "the audit outage reaches the error handler: %v", reported)
}

// TestReview169NoReasonsOrPrincipalsInTelemetry attacks "No reasons and,
// unless WithPrincipalAttributes, no principal or actor IDs are recorded"
// (README; SECURITY.md: "Telemetry carries no reason texts and, by
// default, no principal IDs") over every span attribute, span event
// attribute, status description and metric attribute of a workload that
// includes refusals and faults.
func TestReview169NoReasonsOrPrincipalsInTelemetry(t *testing.T) {
	for _, withPrincipals := range []bool{false, true} {
		st := newR169Store()
		e := newR161(t, st, sa.WithCheckSpans(true), sa.WithActiveGrantsGauge(true), sa.WithPrincipalAttributes(withPrincipals))
		admin := sa.Actor{Kind: sa.ActorCustomer, ID: "admin169@acme.example", Name: "Admin OneSixtyNine"}
		const reason = "reason-169-secret"
		g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: admin, Duration: time.Hour, Grantees: []string{r169Principal}, Reason: reason, Scopes: []sa.Scope{sa.ScopeWrite}})
		require.NoError(t, err)
		_, err = e.m.AddGrantee(ctx, g.ID, "colleague169@vendor.example", sa.Actor{Kind: sa.ActorSupport, ID: r169Principal})
		require.NoError(t, err)
		req, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorSupport, ID: r169Principal}, Reason: reason})
		require.NoError(t, err)
		_, err = e.m.Deny(ctx, req.ID, admin, reason)
		require.NoError(t, err)
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorSupport, ID: r169Principal}, Reason: reason})
		require.ErrorIs(t, err, sa.ErrForbidden)
		srv := newR161Server(e, r169Resolve)
		code, _, _ := srv.serve(http.MethodGet, "/")
		require.Equal(t, 200, code)
		code, _, _ = srv.serve(http.MethodGet, "/", "X-Principal", "other169@vendor.example")
		require.Equal(t, 403, code)
		st.down.Store(true)
		code, _, _ = srv.serve(http.MethodGet, "/")
		require.Equal(t, 503, code)
		st.down.Store(false)
		_, err = e.m.Revoke(ctx, g.ID, admin, reason)
		require.NoError(t, err)
		_ = e.collect()

		var dump strings.Builder
		kv := func(list []attribute.KeyValue) {
			for _, a := range list {
				fmt.Fprintf(&dump, "%s=%s\n", a.Key, a.Value.String())
			}
		}
		for _, s := range e.spans.Ended() {
			kv(s.Attributes())
			for _, ev := range s.Events() {
				kv(ev.Attributes)
			}
			dump.WriteString(s.Status().Description + "\n")
		}
		ms := e.collect()
		for _, m := range ms {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					kv(p.Attributes.ToSlice())
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					kv(p.Attributes.ToSlice())
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					kv(p.Attributes.ToSlice())
				}
			}
		}
		out := dump.String()
		require.NotContains(t, out, reason)
		require.NotContains(t, out, "OneSixtyNine")
		if withPrincipals {
			require.Contains(t, out, "admin169@acme.example")
			require.Contains(t, out, r169Principal)
		} else {
			require.NotContains(t, out, "admin169@acme.example")
			require.NotContains(t, out, r169Principal)
			require.NotContains(t, out, "colleague169")
			require.NotContains(t, out, "other169")
		}
	}
}

// TestReview169ChangeCountersAtTheCommit attacks README's "counted at the
// commit only" for .created and .revoked: a Grant whose (must-succeed)
// auditor fails counts nothing; RevokeTenant counts each grant it
// revoked; Approve counts the grant it created; a refused Revoke counts
// nothing.
func TestReview169ChangeCountersAtTheCommit(t *testing.T) {
	st := newR169Store()
	bad := &reviewAuditor{fail: sa.EventGrantCreated}
	e := newR161(t, st, sa.WithAuditor(sa.MultiAuditor(st, bad)))
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.ErrorIs(t, err, errBoom)
	require.Zero(t, e.counts()["supportaccess.grants.created"])
	bad.failOn("", "error")
	for range 3 {
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		require.NoError(t, err)
	}
	req, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: support})
	require.NoError(t, err)
	ag, err := e.m.Approve(ctx, req.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	require.EqualValues(t, 4, e.counts()["supportaccess.grants.created"])
	_, err = e.m.Revoke(ctx, ag.ID, sa.Actor{Kind: sa.ActorSupport, ID: "someone-else@vendor.example"}, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	gs, err := e.m.RevokeTenant(ctx, "acme", customer, "")
	require.NoError(t, err)
	require.Len(t, gs, 3)
	require.EqualValues(t, 3, e.counts()["supportaccess.grants.revoked"])
}

// TestReview169AuditGrace attacks the 5 s audit grace as the middleware's
// doc, RecordChange's doc and SECURITY.md describe it: an audit write
// ends "at the deadline, or 5 s after the write began when that is
// later"; "A request whose context has no deadline waits for the auditor
// as long as it takes"; the cancellation of the request context is
// ignored; RecordChange's check and event get the grace too; so do
// denials (access.denied).
func TestReview169AuditGrace(t *testing.T) {
	st := newR169Store()
	m, err := sa.NewManager(st)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}})
	require.NoError(t, err)
	var changeErr atomic.Pointer[error]
	h := m.Middleware(r169Resolve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			err := sa.RecordChange(r.Context(), "settings", "a", "b")
			changeErr.Store(&err)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	serve := func(r *http.Request, d time.Duration, cancelFirst bool) (int, time.Duration) {
		c := context.Background()
		var cancel context.CancelFunc = func() {}
		if d != 0 {
			c, cancel = context.WithTimeout(c, d)
		}
		defer cancel()
		if cancelFirst {
			cc, stop := context.WithCancel(c)
			c = cc
			defer stop()
			go func() { time.Sleep(10 * time.Millisecond); stop() }()
		}
		start := time.Now()
		rec := mwDo(h, r.WithContext(c))
		return rec.Code, time.Since(start)
	}

	// A write begun 40 ms before the deadline, for an auditor needing
	// 200 ms: given 5 s, it is recorded.
	st.slowOn(sa.EventSupportRequest, 200*time.Millisecond, false)
	code, _ := serve(mwReq(http.MethodGet, "/grace", ""), 40*time.Millisecond, false)
	require.Equal(t, http.StatusOK, code)
	// No deadline at all: waits as long as it takes; a cancelled client
	// is audited all the same.
	code, took := serve(mwReq(http.MethodGet, "/nodeadline", ""), 0, true)
	require.Equal(t, http.StatusOK, code)
	require.GreaterOrEqual(t, took, 190*time.Millisecond)
	paths := map[string]bool{}
	for _, ev := range r169Events(t, st, sa.EventSupportRequest) {
		paths[ev.Attrs[sa.AttrPath]] = true
	}
	require.True(t, paths["/grace"] && paths["/nodeadline"], "%v", paths)

	// RecordChange near its deadline gets the grace as well.
	st.slowOn(sa.EventSupportChange, 200*time.Millisecond, false)
	code, _ = serve(mwReq(http.MethodPost, "/settings", ""), 40*time.Millisecond, false)
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, *changeErr.Load())
	require.Len(t, r169Events(t, st, sa.EventSupportChange), 1)

	// A denial near its deadline is audited too.
	st.slowOn(sa.EventAccessDenied, 200*time.Millisecond, false)
	code, _ = serve(mwReq(http.MethodGet, "/denied", "", "X-Tenant", "globex"), 40*time.Millisecond, false)
	require.Equal(t, http.StatusForbidden, code)
	require.Len(t, r169Events(t, st, sa.EventAccessDenied), 1)

	// A hanging auditor: the write ends at the grace when it is later
	// than the deadline, at the deadline when that is later.
	restore := sa.SetAuditGraceForTest(200 * time.Millisecond)
	defer restore()
	st.slowOn(sa.EventSupportRequest, 0, true)
	code, took = serve(mwReq(http.MethodGet, "/hang1", ""), 20*time.Millisecond, false)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.GreaterOrEqual(t, took, 190*time.Millisecond, "the grace, not the deadline")
	require.Less(t, took, time.Second)
	code, took = serve(mwReq(http.MethodGet, "/hang2", ""), 500*time.Millisecond, false)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.GreaterOrEqual(t, took, 490*time.Millisecond, "the deadline, being later than the grace")
	require.Less(t, took, 900*time.Millisecond)
}

// r169Override is a gorilla/handlers-style HTTPMethodOverrideHandler: on a
// POST it sets r.Method in place from the _method form field, else from
// X-HTTP-Method-Override (PUT, PATCH, DELETE only). copyFirst applies it
// to a copy (r.WithContext), as a router in between would.
func r169Override(next http.Handler, copyFirst bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			om := r.FormValue("_method")
			if om == "" {
				om = r.Header.Get("X-HTTP-Method-Override")
			}
			if om == http.MethodPut || om == http.MethodPatch || om == http.MethodDelete {
				if copyFirst {
					r = r.WithContext(r.Context())
				}
				r.Method = om
			}
		}
		next.ServeHTTP(w, r)
	})
}

func r169Form(target string, form url.Values, header ...string) *http.Request {
	r := mwReq(http.MethodPost, target, "", header...)
	body := form.Encode()
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// TestReview169MethodOverridePlacement attacks SECURITY.md's new bullet:
// outside the middleware "the method they set is the one the middleware
// checks the scope of and records"; inside it "the scope is judged by the
// wire's method (override headers can only raise it), and the trail adds
// the method served only when the override changed the very request the
// middleware passed on; one applied behind a router ... that copies the
// request ... is not seen"; and AttrMethodOverride's doc: that method
// "comes first".
func TestReview169MethodOverridePlacement(t *testing.T) {
	st := newR169Store()
	m, err := sa.NewManager(st)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	read, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	ok := &mwOK{}
	mw := m.Middleware(r169Resolve)
	last := func() sa.Event {
		t.Helper()
		evs := r169Events(t, st, sa.EventSupportRequest)
		require.NotEmpty(t, evs)
		return evs[len(evs)-1]
	}

	// Outside: the override's method is checked (write) and recorded.
	outside := r169Override(mw(ok), false)
	rec := mwDo(outside, r169Form("/items/1", url.Values{"_method": {"DELETE"}}))
	require.Equal(t, http.StatusForbidden, rec.Code, "DELETE needs write")
	// Inside, header overrides only raise the scope.
	inside := mw(r169Override(ok, false))
	rec = mwDo(inside, mwReq(http.MethodGet, "/items/1", "", "X-HTTP-Method-Override", "DELETE"))
	require.Equal(t, http.StatusForbidden, rec.Code, "a header naming DELETE raises GET to write")
	rec = mwDo(inside, mwReq(http.MethodPost, "/items/1", "", "X-HTTP-Method-Override", "GET"))
	require.Equal(t, http.StatusForbidden, rec.Code, "a header naming GET does not lower POST")
	require.Zero(t, ok.calls.Load())

	_, err = m.Revoke(ctx, read.ID, customer, "")
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}})
	require.NoError(t, err)

	rec = mwDo(outside, r169Form("/items/1", url.Values{"_method": {"DELETE"}}))
	require.Equal(t, http.StatusOK, rec.Code)
	ev := last()
	require.Equal(t, "DELETE", ev.Attrs[sa.AttrMethod], "outside: recorded as the method")
	require.Empty(t, ev.Attrs[sa.AttrMethodOverride])

	// Inside, in place: the served method comes first, before a decoy
	// header's.
	rec = mwDo(inside, r169Form("/items/1", url.Values{"_method": {"DELETE"}}, "X-HTTP-Method-Override", "PATCH"))
	require.Equal(t, http.StatusOK, rec.Code)
	ev = last()
	require.Equal(t, "POST", ev.Attrs[sa.AttrMethod])
	require.Equal(t, "DELETE,PATCH", ev.Attrs[sa.AttrMethodOverride])

	// Inside, on a copy: not seen (the documented limit).
	copied := mw(r169Override(ok, true))
	rec = mwDo(copied, r169Form("/items/1", url.Values{"_method": {"DELETE"}}))
	require.Equal(t, http.StatusOK, rec.Code)
	ev = last()
	require.Equal(t, "POST", ev.Attrs[sa.AttrMethod])
	require.Empty(t, ev.Attrs[sa.AttrMethodOverride], "a change to a copy is not seen")
}

// TestReview169RequestLineAndWrappers attacks SECURITY.md's "Record what
// the request line does not show": the trail records "method ..., path
// and status — never its query string or body"; wrappers that replace
// responses (http.TimeoutHandler) inside the middleware have the status
// sent recorded, "outside it, the recorded status is the one the handler
// wrote, not the one the wrapper sent".
func TestReview169RequestLineAndWrappers(t *testing.T) {
	st := newR169Store()
	m, err := sa.NewManager(st)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}})
	require.NoError(t, err)
	mw := m.Middleware(r169Resolve)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("ok"))
	})
	r := mwReq(http.MethodPost, "/api/items?id=query169secret&x=1", "")
	r.Body = io.NopCloser(strings.NewReader(`{"body":"body169secret"}`))
	require.Equal(t, http.StatusOK, mwDo(mw(echo), r).Code)
	evs := r169Events(t, st, sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "/api/items", evs[0].Attrs[sa.AttrPath])
	b, err := json.Marshal(evs[0])
	require.NoError(t, err)
	require.NotContains(t, string(b), "query169secret")
	require.NotContains(t, string(b), "body169secret")

	slow := func(done chan struct{}) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(done)
			<-r.Context().Done()
			w.WriteHeader(http.StatusOK)
		})
	}
	status := func(path string) string {
		for _, ev := range r169Events(t, st, sa.EventSupportRequest) {
			if ev.Attrs[sa.AttrPath] == path {
				return ev.Attrs[sa.AttrStatus]
			}
		}
		return ""
	}
	done := make(chan struct{})
	in := mw(http.TimeoutHandler(slow(done), 30*time.Millisecond, "timeout"))
	rec := mwDo(in, mwReq(http.MethodGet, "/inside", ""))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	<-done
	require.Equal(t, "503", status("/inside"), "inside: the status sent")

	done = make(chan struct{})
	out := http.TimeoutHandler(mw(slow(done)), 30*time.Millisecond, "timeout")
	rec = mwDo(out, mwReq(http.MethodGet, "/outside", ""))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	<-done
	require.Eventually(t, func() bool { return status("/outside") != "" }, time.Second, 5*time.Millisecond)
	require.Equal(t, "200", status("/outside"), "outside: the status the handler wrote (documented)")
}

// TestReview169CloseWaitsForTheLoopsWork attacks doc.go's "Shutdown" and
// Close's doc: Close "stops every RunExpiry loop, cancelling the Sweep in
// progress, waits until their work has ended"; "Host code a loop runs (an
// expiry hook ...) holds Close for as long as it runs, its context
// cancelled"; each loop returns ErrClosed; later RunExpiry calls are
// refused; every Close returns the first one's error; the API keeps
// working; README: "cancelling that ctx stops it too".
func TestReview169CloseWaitsForTheLoopsWork(t *testing.T) {
	started := make(chan struct{})
	var calls atomic.Int64
	var hookReturned atomic.Bool
	e := newEnv(t, sa.OnExpire(func(hctx context.Context, g sa.Grant) error {
		if calls.Add(1) > 1 {
			return nil // a retry of the task Close cancelled
		}
		close(started)
		<-hctx.Done()
		time.Sleep(50 * time.Millisecond) // cleanup after the cancellation
		hookReturned.Store(true)
		return hctx.Err()
	}))
	e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Advance(2 * time.Hour)
	runErr := make(chan error, 1)
	go func() { runErr <- e.m.RunExpiry(context.Background(), time.Hour) }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the hook did not start")
	}
	closeErr := e.m.Close()
	require.True(t, hookReturned.Load(), "Close returned before the hook it cancelled had returned")
	select {
	case err := <-runErr:
		require.ErrorIs(t, err, sa.ErrClosed)
	case <-time.After(time.Second):
		t.Fatal("RunExpiry did not return after Close")
	}
	require.Equal(t, closeErr, e.m.Close())
	require.ErrorIs(t, e.m.RunExpiry(context.Background(), time.Hour), sa.ErrClosed)
	e.grant(sa.GrantInput{Duration: time.Hour})
	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)

	// Cancelling RunExpiry's context stops it too.
	e2 := newEnv(t)
	c, cancel := context.WithCancel(context.Background())
	go func() { runErr <- e2.m.RunExpiry(c, time.Hour) }()
	cancel()
	select {
	case err := <-runErr:
		require.Error(t, err)
		require.NotErrorIs(t, err, sa.ErrClosed)
	case <-time.After(time.Second):
		t.Fatal("RunExpiry did not stop at its context's end")
	}
}

// TestReview169BestEffortAuditorRules attacks BestEffortAuditor's and
// NewManager's docs: "NewManager refuses a BestEffortAuditor of nil (or of
// a nil pointer), and auditors that are all best-effort: a change needs
// one auditor that must succeed", while the store with a best-effort
// extra works, and a best-effort auditor's failure does not fail the
// change (it is reported).
func TestReview169BestEffortAuditorRules(t *testing.T) {
	st := memstore.New()
	var nilStore *memstore.Store
	rec := &recordingAuditor{}
	for name, a := range map[string]sa.Auditor{
		"nil":                        sa.BestEffortAuditor(nil, nil),
		"nil pointer":                sa.BestEffortAuditor(nilStore, nil),
		"nil beside the store":       sa.MultiAuditor(st, sa.BestEffortAuditor(nil, nil)),
		"nil pointer beside store":   sa.MultiAuditor(st, sa.BestEffortAuditor(nilStore, nil)),
		"alone":                      sa.BestEffortAuditor(rec, nil),
		"two best-effort":            sa.MultiAuditor(sa.BestEffortAuditor(rec, nil), sa.BestEffortAuditor(&recordingAuditor{}, nil)),
		"store wrapped best-effort":  sa.BestEffortAuditor(st, nil),
		"store and extra, wrapped":   sa.BestEffortAuditor(sa.MultiAuditor(st, rec), nil),
		"nested best-effort of nil":  sa.BestEffortAuditor(sa.BestEffortAuditor(nil, nil), nil),
		"best-effort of empty multi": sa.BestEffortAuditor(sa.MultiAuditor(), nil),
	} {
		_, err := sa.NewManager(st, sa.WithAuditor(a))
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
	}

	var reported atomic.Int64
	m, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, sa.BestEffortAuditor(failingAuditor{}, func(context.Context, error) { reported.Add(1) }))))
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	require.Positive(t, reported.Load())
	// WithAuditor leaving the store out, with one must-succeed auditor
	// beside a best-effort one.
	ok, err := sa.NewManager(memstore.New(), sa.WithAuditor(sa.MultiAuditor(sa.BestEffortAuditor(failingAuditor{}, nil), rec)))
	require.NoError(t, err)
	_, err = ok.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
}

// TestReview169BulkRevocationsLeaveRequestsPending attacks RevokeTenant's
// and RevokeTicket's docs: "Pending access requests of the tenant stay
// pending (an administrator may still approve one, which grants access
// again)".
func TestReview169BulkRevocationsLeaveRequestsPending(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour, TicketRef: "SUP-1"})
	r1, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, TicketRef: "SUP-1"})
	require.NoError(t, err)
	r2, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, TicketRef: "SUP-2"})
	require.NoError(t, err)
	_, err = e.m.RevokeTicket(ctx, "acme", "SUP-1", customer, "")
	require.NoError(t, err)
	_, err = e.m.RevokeTenant(ctx, "acme", customer, "")
	require.NoError(t, err)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	pending, err := e.m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", Statuses: []sa.RequestStatus{sa.RequestPending}})
	require.NoError(t, err)
	require.Len(t, pending, 2, "both requests stay pending")
	_, err = e.m.Approve(ctx, r1.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err, "approving grants access again")
	_, err = e.m.Deny(ctx, r2.ID, customer, "")
	require.NoError(t, err)
}

// TestReview169RequestTTLFixedWhenMade attacks Policy.RequestTTL's doc:
// "It is applied when the request is made (its ExpiresAt is stored): a
// shorter TTL on the replica that approves it, or after a restart, does
// not expire requests made before".
func TestReview169RequestTTLFixedWhenMade(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	long, err := sa.NewManager(st, sa.WithNow(clock.Now))
	require.NoError(t, err)
	p := sa.DefaultPolicy()
	p.RequestTTL = time.Hour
	short, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithPolicy(p))
	require.NoError(t, err)
	r, err := long.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	require.Equal(t, clock.Now().UTC().Truncate(time.Microsecond).Add(72*time.Hour), r.ExpiresAt, "0 means 72 hours")
	r2, err := short.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	clock.Advance(2 * time.Hour)
	got, err := short.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status, "the shorter TTL does not expire a request made before")
	got, err = long.GetRequest(ctx, r2.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestExpired, got.Status, "nor does a longer one revive one")
	_, err = short.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
}

// r169PurgingLog is an AuditLog (and AuditChainReader) over a memstore
// that, at the export's look-up of the event before its first line
// (Limit 1 after a cursor), first has another replica purge past it.
type r169PurgingLog struct {
	*memstore.Store
	purge func()
}

func (l *r169PurgingLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	if f.Limit == 1 && f.After != nil && l.purge != nil {
		p := l.purge
		l.purge = nil
		p()
	}
	return l.Store.Events(ctx, f)
}

// TestReview169ExportConflictBeforeThePageIsWritten attacks ExportAudit's
// new doc: "In AuditByChain order, a purge that moves a tenant's
// checkpoint past the event before its first line while that line's page
// is read also fails the export with ErrConflict (its prev_hash is gone),
// before the page is written".
func TestReview169ExportConflictBeforeThePageIsWritten(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	other, err := sa.NewManager(st, sa.WithNow(clock.Now))
	require.NoError(t, err)
	var times []time.Time
	for range 4 {
		times = append(times, clock.Now())
		_, err := other.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		require.NoError(t, err)
		clock.Advance(time.Minute)
	}
	log := &r169PurgingLog{Store: st}
	log.purge = func() {
		// Past the event before the page's first line (a purge that
		// moves the checkpoint exactly to it leaves its hash usable:
		// review 168).
		_, err := other.PurgeAudit(ctx, "acme", times[3])
		require.NoError(t, err)
	}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditLog(log))
	require.NoError(t, err)
	var out bytes.Buffer
	n, err := m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain, Since: times[2]})
	require.ErrorIs(t, err, sa.ErrConflict)
	require.Zero(t, n)
	require.Zero(t, out.Len(), "nothing of the page is written")
	// Exported again: it starts at the checkpoint and verifies.
	out.Reset()
	_, err = m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.NotZero(t, out.Len())
}

// TestReview169SchemaErrorsAreFaults attacks sqlstore's doc:
// ErrSchemaTooOld and ErrSchemaTooNew are faults "and wrap no sentinel
// of the root package: the Manager's telemetry counts it as outcome
// "error" and the middleware answers 503", on every dialect.
func TestReview169SchemaErrorsAreFaults(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := sqltest.Open(t, d)
			st := sqltest.NewStoreOn(t, db, d)
			p := st.TablePrefix()
			_, err := db.ExecContext(ctx, fmt.Sprintf("INSERT INTO %sschema_version (version) VALUES (%d)", p, sqlstore.SchemaVersion+1))
			require.NoError(t, err)
			err = st.Migrate(ctx)
			require.ErrorIs(t, err, sqlstore.ErrSchemaTooNew)
			require.NotErrorIs(t, err, sa.ErrInvalidInput)
			// An older store over the newer schema keeps working.
			e := newR161(t, st)
			_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)

			_, err = db.ExecContext(ctx, fmt.Sprintf("DELETE FROM %sschema_version WHERE version >= %d", p, sqlstore.SchemaVersion))
			require.NoError(t, err)
			old, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(p))
			require.NoError(t, err)
			t.Cleanup(func() { _ = old.Close() })
			e2 := newR161(t, old)
			_, err = e2.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
			require.NotErrorIs(t, err, sa.ErrInvalidInput)
			require.EqualValues(t, 1, e2.counts()["supportaccess.checks/error"])
			rec := mwDo(e2.m.Middleware(r169Resolve)(&mwOK{}), mwReq(http.MethodGet, "/", ""))
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		})
	}
}
