package supportaccess_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 161: is the telemetry an operator builds dashboards and alerts on
// truthful? Every documented instrument with its name, unit and type;
// counts that match the real decisions and commits exactly (also under
// concurrency); faults that are errors, never successes; spans ended and
// parented as documented; and providers that fail without changing an
// access decision.

// r161Store is a memstore whose reads and writes can fail as a database
// does: FindActiveGrant fails (errBoom) for tenant "down" or while down is
// set, and, like a SQL store, answers a done context with its error;
// ListGrants fails while listDown is set; CreateGrant answers a done
// context with its error; support.request Records fail while failRequest
// is set; FindActiveGrant waits slow (real time) first.
type r161Store struct {
	*memstore.Store
	down, listDown, failRequest atomic.Bool
	slow                        atomic.Int64
}

func (s *r161Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if d := time.Duration(s.slow.Load()); d > 0 {
		time.Sleep(d)
	}
	if err := ctx.Err(); err != nil {
		return sa.Grant{}, err
	}
	if s.down.Load() || tenantID == "down" {
		return sa.Grant{}, errBoom
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

func (s *r161Store) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	if s.listDown.Load() {
		return nil, errBoom
	}
	return s.Store.ListGrants(ctx, f, now)
}

func (s *r161Store) CreateGrant(ctx context.Context, g sa.Grant, evs []sa.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Store.CreateGrant(ctx, g, evs)
}

func (s *r161Store) Record(ctx context.Context, e sa.Event) error {
	if s.failRequest.Load() && e.Type == sa.EventSupportRequest {
		return errBoom
	}
	return s.Store.Record(ctx, e)
}

// r161Env is a Manager over a store with an in-memory trace recorder, a
// manual metric reader and the manual clock.
type r161Env struct {
	t      *testing.T
	m      *sa.Manager
	clock  *storetest.Clock
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
}

func newR161(t *testing.T, st sa.Store, opts ...sa.Option) *r161Env {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = tp.Shutdown(ctx); _ = mp.Shutdown(ctx) })
	e := &r161Env{t: t, clock: storetest.NewClock(storetest.Epoch), spans: rec, tp: tp, reader: reader}
	base := []sa.Option{sa.WithNow(e.clock.Now), sa.WithTracerProvider(tp), sa.WithMeterProvider(mp)}
	m, err := sa.NewManager(st, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	e.m = m
	return e
}

// collect returns the library's metrics by name.
func (e *r161Env) collect() map[string]metricdata.Metrics {
	e.t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(e.t, e.reader.Collect(ctx, &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != sa.ScopeName {
			continue
		}
		require.Equal(e.t, sa.Version, sm.Scope.Version)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// counts returns the library's sums, histogram counts and gauges, keyed
// "name" or "name/outcome" (or "name/tenant" for the gauge).
func (e *r161Env) counts() map[string]int64 {
	e.t.Helper()
	return r161Counts(e.collect())
}

func r161Counts(ms map[string]metricdata.Metrics) map[string]int64 {
	out := map[string]int64{}
	for name, m := range ms {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				key := name
				if v, ok := p.Attributes.Value("outcome"); ok {
					key += "/" + v.AsString()
				}
				out[key] += p.Value
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				v, _ := p.Attributes.Value("outcome")
				out[name+"/"+v.AsString()] += int64(p.Count)
			}
		case metricdata.Gauge[int64]:
			for _, p := range d.DataPoints {
				v, _ := p.Attributes.Value(sa.AttrKeyTenant)
				out[name+"/"+v.AsString()] += p.Value
			}
		}
	}
	return out
}

// ended returns the ended spans named name, in order.
func (e *r161Env) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range e.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// last returns the last ended span named name.
func (e *r161Env) last(name string) sdktrace.ReadOnlySpan {
	e.t.Helper()
	got := e.ended(name)
	require.NotEmpty(e.t, got, "span %s", name)
	return got[len(got)-1]
}

// r161RequireFault asserts that s ended as a fault: outcome "error",
// status Error and an exception event.
func r161RequireFault(t *testing.T, s sdktrace.ReadOnlySpan) {
	t.Helper()
	require.Equal(t, sa.OutcomeError, attrs(s)[sa.AttrKeyOutcome], "%s", s.Name())
	require.Equal(t, codes.Error, s.Status().Code, "%s", s.Name())
	require.NotEmpty(t, s.Status().Description, "%s", s.Name())
	var exc bool
	for _, ev := range s.Events() {
		exc = exc || ev.Name == "exception"
	}
	require.True(t, exc, "%s records the exception", s.Name())
}

// r161RequireNotFault asserts that s ended with outcome want and no error
// status (a denial or refusal is an outcome, not a fault).
func r161RequireNotFault(t *testing.T, s sdktrace.ReadOnlySpan, want string) {
	t.Helper()
	require.Equal(t, want, attrs(s)[sa.AttrKeyOutcome], "%s", s.Name())
	require.Equal(t, codes.Unset, s.Status().Code, "%s", s.Name())
}

// TestReview161InstrumentsHaveTheDocumentedNameUnitAndType attacks the
// instruments telemetry.go creates and the docs name ("supportaccess.checks
// and supportaccess.check.duration", Manager.Check; "the observable gauge
// supportaccess.grants.active with one series per tenant",
// WithActiveGrantsGauge; "Grant expiries recorded by Sweep"): each exists
// under the library's scope with its name, unit, description and kind — a
// monotonic cumulative int64 sum for the counters, a float64 histogram in
// seconds with the documented 10 µs to 1 s buckets, an int64 gauge.
func TestReview161InstrumentsHaveTheDocumentedNameUnitAndType(t *testing.T) {
	e := newR161(t, memstore.New(), sa.WithActiveGrantsGauge(true))
	short, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	gone, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 2 * time.Hour})
	require.NoError(t, err)
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 3 * time.Hour})
	require.NoError(t, err)
	_, err = e.m.Revoke(ctx, gone.ID, customer, "")
	require.NoError(t, err)
	e.clock.Advance(90 * time.Minute)
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	_ = short

	ms := e.collect()
	sum := func(name, unit, desc string, want int64) {
		t.Helper()
		m, ok := ms[name]
		require.True(t, ok, "instrument %s", name)
		require.Equal(t, unit, m.Unit, name)
		require.Equal(t, desc, m.Description, name)
		d, ok := m.Data.(metricdata.Sum[int64])
		require.True(t, ok, "%s is an int64 sum, got %T", name, m.Data)
		require.True(t, d.IsMonotonic, "%s is a counter", name)
		require.Equal(t, metricdata.CumulativeTemporality, d.Temporality, name)
		var total int64
		for _, p := range d.DataPoints {
			total += p.Value
		}
		require.Equal(t, want, total, name)
	}
	sum("supportaccess.checks", "{check}", "Access checks by outcome.", 1)
	sum("supportaccess.grants.created", "{grant}", "Grants created.", 3)
	sum("supportaccess.grants.revoked", "{grant}", "Grants revoked.", 1)
	sum("supportaccess.grants.expired", "{grant}", "Grant expiries recorded by Sweep.", 1)

	h, ok := ms["supportaccess.check.duration"]
	require.True(t, ok)
	require.Equal(t, "s", h.Unit, "durations in seconds, as the OTel conventions want")
	require.Equal(t, "Duration of access checks.", h.Description)
	hd, ok := h.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "a float64 histogram, got %T", h.Data)
	require.Len(t, hd.DataPoints, 1)
	require.Equal(t, []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		hd.DataPoints[0].Bounds)
	v, _ := hd.DataPoints[0].Attributes.Value("outcome")
	require.Equal(t, sa.OutcomeAllowed, v.AsString(), "the histogram carries the same outcome attribute as the counter")

	g, ok := ms["supportaccess.grants.active"]
	require.True(t, ok)
	require.Equal(t, "{grant}", g.Unit)
	require.Equal(t, "Active grants per tenant.", g.Description)
	gd, ok := g.Data.(metricdata.Gauge[int64])
	require.True(t, ok, "an int64 gauge, got %T", g.Data)
	require.Len(t, gd.DataPoints, 1)
	tv, _ := gd.DataPoints[0].Attributes.Value(sa.AttrKeyTenant)
	require.Equal(t, "acme", tv.AsString())
	require.EqualValues(t, 1, gd.DataPoints[0].Value, "one active: one expired, one revoked, one left")

	// Without the option the gauge does not exist at all.
	plain := newR161(t, memstore.New())
	_, err = plain.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	require.NotContains(t, plain.collect(), "supportaccess.grants.active")
}

// TestReview161EveryCheckDenialReasonHasItsOutcome attacks the outcome
// contract ("no_grant: Check denied: no active grant covers the
// principal", "scope", "invalid", "error: a fault (store, audit,
// context); status Error", telemetry.go) with each real reason a Check
// is refused: expired (not yet swept), revoked, scheduled, another
// tenant, another principal, the scope missing, malformed input, the
// store down, the context cancelled. The counter, the histogram and the
// Check spans (children of the traced request) must all agree, and only
// faults carry status Error.
func TestReview161EveryCheckDenialReasonHasItsOutcome(t *testing.T) {
	st := &r161Store{Store: memstore.New()}
	e := newR161(t, st, sa.WithCheckSpans(true))
	grant := func(in sa.GrantInput) sa.Grant {
		t.Helper()
		in.By = customer
		g, err := e.m.Grant(ctx, in)
		require.NoError(t, err)
		return g
	}
	acme := grant(sa.GrantInput{TenantID: "acme", Duration: 8 * time.Hour})
	grant(sa.GrantInput{TenantID: "hooli", Duration: time.Hour})
	grant(sa.GrantInput{TenantID: "globex", Grantees: []string{engineer.ID}, Scopes: []sa.Scope{sa.ScopeWrite}, Duration: 8 * time.Hour})
	gone := grant(sa.GrantInput{TenantID: "initech", Duration: 8 * time.Hour})
	_, err := e.m.Revoke(ctx, gone.ID, customer, "")
	require.NoError(t, err)
	grant(sa.GrantInput{TenantID: "umbrella", StartsAt: e.clock.Now().Add(4 * time.Hour), Duration: time.Hour})
	e.clock.Advance(2 * time.Hour) // hooli expired (no Sweep), umbrella still scheduled

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		name              string
		ctx               context.Context
		tenant, principal string
		scope             sa.Scope
		want              string
		sentinel          error
	}{
		{"allowed", ctx, "acme", support.ID, sa.ScopeRead, sa.OutcomeAllowed, nil},
		{"expired", ctx, "hooli", support.ID, sa.ScopeRead, sa.OutcomeNoGrant, sa.ErrNoActiveGrant},
		{"revoked", ctx, "initech", support.ID, sa.ScopeRead, sa.OutcomeNoGrant, sa.ErrNoActiveGrant},
		{"scheduled", ctx, "umbrella", support.ID, sa.ScopeRead, sa.OutcomeNoGrant, sa.ErrNoActiveGrant},
		{"other tenant", ctx, "soylent", support.ID, sa.ScopeRead, sa.OutcomeNoGrant, sa.ErrNoActiveGrant},
		{"other principal", ctx, "globex", support.ID, sa.ScopeRead, sa.OutcomeNoGrant, sa.ErrNoActiveGrant},
		{"named principal", ctx, "globex", engineer.ID, sa.ScopeWrite, sa.OutcomeAllowed, nil},
		{"scope missing", ctx, "acme", support.ID, sa.ScopeWrite, sa.OutcomeScope, sa.ErrScopeNotGranted},
		{"elevated scope missing", ctx, "acme", support.ID, "messages:read", sa.OutcomeScope, sa.ErrScopeNotGranted},
		{"malformed tenant", ctx, "acme\x00", support.ID, sa.ScopeRead, sa.OutcomeInvalid, sa.ErrInvalidInput},
		{"empty principal", ctx, "acme", "", sa.ScopeRead, sa.OutcomeInvalid, sa.ErrInvalidInput},
		{"malformed scope", ctx, "acme", support.ID, "read\n", sa.OutcomeInvalid, sa.ErrInvalidInput},
		{"store down", ctx, "down", support.ID, sa.ScopeRead, sa.OutcomeError, errBoom},
		{"context cancelled", cancelled, "acme", support.ID, sa.ScopeRead, sa.OutcomeError, context.Canceled},
	}
	want := map[string]int64{}
	for _, c := range cases {
		pctx, parent := e.tp.Tracer("http").Start(c.ctx, "request "+c.name)
		g, err := e.m.Check(pctx, c.tenant, c.principal, c.scope)
		parent.End()
		if c.sentinel == nil {
			require.NoError(t, err, c.name)
			require.NotEqual(t, uuid.Nil, g.ID, c.name)
		} else {
			require.ErrorIs(t, err, c.sentinel, c.name)
			require.Equal(t, uuid.Nil, g.ID, c.name)
		}
		want["supportaccess.checks/"+c.want]++
		want["supportaccess.check.duration/"+c.want]++

		var span sdktrace.ReadOnlySpan
		for _, s := range e.ended("supportaccess.Check") {
			if s.Parent().SpanID() == parent.SpanContext().SpanID() {
				require.Nil(t, span, "%s: one Check span per check", c.name)
				span = s
			}
		}
		require.NotNil(t, span, "%s: the Check span is a child of the request's", c.name)
		require.Equal(t, parent.SpanContext().TraceID(), span.SpanContext().TraceID(), c.name)
		if c.want == sa.OutcomeError {
			r161RequireFault(t, span)
		} else {
			r161RequireNotFault(t, span, c.want)
		}
		if c.want == sa.OutcomeAllowed {
			require.Equal(t, g.ID.String(), attrs(span)[sa.AttrKeyGrant], c.name)
		} else {
			require.NotContains(t, attrs(span), sa.AttrKeyGrant, "%s: a denial names no grant", c.name)
		}
	}
	got := e.counts()
	for k, v := range want {
		require.Equal(t, v, got[k], k)
	}
	for k, v := range got {
		if len(k) > len("supportaccess.check") && k[:len("supportaccess.check")] == "supportaccess.check" {
			require.Equal(t, want[k], v, "no check counted under %s that did not happen", k)
		}
	}
	_ = acme
}

// TestReview161CheckCountsAreExactUnderConcurrency attacks "every call
// counts in supportaccess.checks" (Manager.Check) under the race
// detector: 8 goroutines check concurrently with every kind of outcome;
// the counter and the histogram must hold exactly the decisions made.
// Concurrent Grants and concurrent Revokes of one grant must count the
// commits exactly: 16 grants, 1 revocation.
func TestReview161CheckCountsAreExactUnderConcurrency(t *testing.T) {
	st := &r161Store{Store: memstore.New()}
	e := newR161(t, st)
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "initech", By: customer})
	require.NoError(t, err)

	type probe struct {
		tenant string
		scope  sa.Scope
		want   string
	}
	probes := []probe{
		{"acme", sa.ScopeRead, sa.OutcomeAllowed},
		{"acme", sa.ScopeWrite, sa.OutcomeScope},
		{"globex", sa.ScopeRead, sa.OutcomeNoGrant},
		{"acme\x7f", sa.ScopeRead, sa.OutcomeInvalid},
		{"down", sa.ScopeRead, sa.OutcomeError},
	}
	const workers, rounds = 8, 60
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				p := probes[(w+i)%len(probes)]
				_, err := e.m.Check(ctx, p.tenant, support.ID, p.scope)
				if (err == nil) != (p.want == sa.OutcomeAllowed) {
					wrong.Add(1)
				}
			}
		}()
	}
	var grants, revokes atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "hooli", By: customer}); err == nil {
				grants.Add(1)
			}
			if _, err := e.m.Revoke(ctx, g.ID, customer, ""); err == nil {
				revokes.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Zero(t, wrong.Load())
	require.EqualValues(t, 16, grants.Load())
	require.EqualValues(t, 1, revokes.Load(), "of concurrent revokes exactly one succeeds")

	got := e.counts()
	per := int64(workers * rounds / len(probes))
	for _, p := range probes {
		require.Equal(t, per, got["supportaccess.checks/"+p.want], p.want)
		require.Equal(t, per, got["supportaccess.check.duration/"+p.want], p.want)
	}
	require.EqualValues(t, 18, got["supportaccess.grants.created"])
	require.EqualValues(t, 1, got["supportaccess.grants.revoked"], "the refused revokes are not counted")
	var ok int
	for _, s := range e.ended("supportaccess.Revoke") {
		if attrs(s)[sa.AttrKeyOutcome] == sa.OutcomeOK {
			ok++
		} else {
			r161RequireNotFault(t, s, sa.OutcomeInvalid)
		}
	}
	require.Equal(t, 1, ok)
	require.Len(t, e.spans.Ended(), len(e.spans.Started()), "every span ended")
}

// TestReview161ChangeCountersCountCommitsOnly attacks the change counters
// ("Grants created.", "Grants revoked.", "Grant expiries recorded by
// Sweep.") against every way a change can fail or not happen: refused by
// the Authorizer, invalid input, the auditor down, the store down, the
// context cancelled, an already revoked grant, a support actor giving
// back what it does not hold — none counted; and the ways one commits
// that are easy to miss: Approve, RevokeTenant, RevokeTicket, a Notifier
// that panics after the commit (the grant exists: counted, the span an
// error). Sweep counts expiries, not starts, nor revoked grants, and
// never twice.
func TestReview161ChangeCountersCountCommitsOnly(t *testing.T) {
	st := &r161Store{Store: memstore.New()}
	var refuse atomic.Bool
	var notifyPanics atomic.Bool
	e := newR161(t, st,
		sa.WithAuthorizer(func(ctx context.Context, a sa.Action, by sa.Actor, tenant string) error {
			if refuse.Load() {
				return sa.ErrForbidden
			}
			return sa.DefaultAuthorizer(ctx, a, by, tenant)
		}),
		sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error {
			if notifyPanics.Load() {
				panic("notifier bug")
			}
			return nil
		})))
	created := func() int64 { return e.counts()["supportaccess.grants.created"] }
	revoked := func() int64 { return e.counts()["supportaccess.grants.revoked"] }

	// Grants that do not happen.
	refuse.Store(true)
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorIs(t, err, sa.ErrForbidden)
	r161RequireNotFault(t, e.last("supportaccess.Grant"), sa.OutcomeForbidden)
	refuse.Store(false)
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 500 * sa.Day})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	r161RequireNotFault(t, e.last("supportaccess.Grant"), sa.OutcomeInvalid)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = e.m.Grant(cctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorIs(t, err, context.Canceled)
	r161RequireFault(t, e.last("supportaccess.Grant"))
	require.Zero(t, created())

	down := newR161(t, memstore.New(), sa.WithAuditor(failingAuditor{}))
	_, err = down.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorIs(t, err, errBoom, "the auditor is down: no grant")
	r161RequireFault(t, down.last("supportaccess.Grant"))
	require.Zero(t, down.counts()["supportaccess.grants.created"], "a grant whose event could not be written is not counted")
	gs, err := down.m.List(ctx, sa.ListFilter{})
	require.NoError(t, err)
	require.Empty(t, gs)

	// Grants that do.
	a, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, TicketRef: "SUP-1"})
	require.NoError(t, err)
	b, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, TicketRef: "SUP-2"})
	require.NoError(t, err)
	r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: time.Hour})
	require.NoError(t, err)
	c, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	require.EqualValues(t, 3, created(), "Approve creates a grant: counted")
	// A Notifier that panics after the commit: the library recovers it
	// (error handler); the grant exists, is counted, and its span is ok.
	notifyPanics.Store(true)
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: customer})
	notifyPanics.Store(false)
	require.NoError(t, err)
	r161RequireNotFault(t, e.last("supportaccess.Grant"), sa.OutcomeOK)
	gs, err = e.m.List(ctx, sa.ListFilter{TenantID: "globex"})
	require.NoError(t, err)
	require.Len(t, gs, 1)
	require.EqualValues(t, 4, created(), "a committed grant is counted even when host code after it fails")

	// Revocations that do not happen.
	_, err = e.m.Revoke(ctx, c.ID, sa.Actor{Kind: sa.ActorSupport, ID: "x@vendor.example"}, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	r161RequireNotFault(t, e.last("supportaccess.Revoke"), sa.OutcomeForbidden)
	_, err = e.m.Revoke(ctx, uuid.New(), customer, "")
	require.ErrorIs(t, err, sa.ErrNotFound)
	r161RequireNotFault(t, e.last("supportaccess.Revoke"), sa.OutcomeNotFound)
	fs := &faultyStore{Store: st.Store, failUpdate: true}
	broken := newR161(t, fs)
	_, err = broken.m.Revoke(ctx, a.ID, customer, "")
	require.ErrorIs(t, err, errBoom)
	r161RequireFault(t, broken.last("supportaccess.Revoke"))
	require.Zero(t, broken.counts()["supportaccess.grants.revoked"])
	require.Zero(t, revoked())

	// Revocations that do.
	_, err = e.m.Revoke(ctx, c.ID, customer, "")
	require.NoError(t, err)
	_, err = e.m.Revoke(ctx, c.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.EqualValues(t, 1, revoked(), "a second revoke of one grant is not counted")
	out, err := e.m.RevokeTicket(ctx, "acme", "SUP-2", customer, "")
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, b.ID, out[0].ID)
	require.EqualValues(t, 2, revoked())
	out, err = e.m.RevokeTenant(ctx, "acme", customer, "")
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, "1", attrs(e.last("supportaccess.RevokeTenant"))[sa.AttrKeyCount])
	require.EqualValues(t, 3, revoked(), "RevokeTenant counts each revocation")

	// Expiries: the globex grant (1 week) expires; a scheduled grant's
	// start is not an expiry; a revoked one does not expire.
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "hooli", By: customer, StartsAt: e.clock.Now().Add(time.Hour), Duration: time.Hour})
	require.NoError(t, err)
	e.clock.Advance(90 * time.Minute)
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a start is not an expiry")
	require.Zero(t, e.counts()["supportaccess.grants.expired"])
	e.clock.Advance(8 * sa.Day)
	n, err = e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "the globex and the hooli grant")
	n, err = e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.EqualValues(t, 2, e.counts()["supportaccess.grants.expired"], "each expiry counted once; revoked grants do not expire")
	require.Equal(t, "0", attrs(e.last("supportaccess.Sweep"))[sa.AttrKeyCount])
	require.Len(t, e.spans.Ended(), len(e.spans.Started()), "every span ended")
}

// TestReview161ReplicasCountEachExpiryOnce attacks "an expiry worker
// records each expiry once (even with many app replicas)" (DESIGN.md) on
// its metric: two replicas (two *sql.DB on one database, a Manager and a
// meter each) sweep at the same time, on SQLite, PostgreSQL and MariaDB;
// the sum of their supportaccess.grants.expired is the number of grants,
// and each replica counts what its Sweep returned.
func TestReview161ReplicasCountEachExpiryOnce(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			var db1, db2 *sql.DB
			if d == sqlstore.SQLite {
				path := filepath.Join(t.TempDir(), "shared.db")
				db1, db2 = sqltest.OpenSQLite(t, path), sqltest.OpenSQLite(t, path)
			} else {
				db1, db2 = sqltest.Open(t, d), sqltest.Open(t, d)
			}
			prefix := sqltest.NewPrefix()
			s1 := sqltest.NewStoreOn(t, db1, d, sqlstore.WithTablePrefix(prefix))
			s2 := sqltest.NewStoreOn(t, db2, d, sqlstore.WithTablePrefix(prefix))
			e1 := newR161(t, s1)
			e2 := newR161(t, s2)
			const grants = 25
			for i := range grants {
				_, err := e1.m.Grant(ctx, sa.GrantInput{TenantID: fmt.Sprintf("t%02d", i%5), By: customer, Duration: time.Hour})
				require.NoError(t, err)
			}
			e1.clock.Advance(2 * time.Hour)
			e2.clock.Advance(2 * time.Hour)
			var wg sync.WaitGroup
			ns := make([]int, 2)
			errs := make([]error, 2)
			for i, e := range []*r161Env{e1, e2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ns[i], errs[i] = e.m.Sweep(ctx)
				}()
			}
			wg.Wait()
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			require.Equal(t, grants, ns[0]+ns[1])
			c1, c2 := e1.counts()["supportaccess.grants.expired"], e2.counts()["supportaccess.grants.expired"]
			require.EqualValues(t, grants, c1+c2, "replica 1 counted %d, replica 2 %d", c1, c2)
			require.EqualValues(t, ns[0], c1)
			require.EqualValues(t, ns[1], c2)
		})
	}
}

// TestReview161HostPanicsEndSpansAsFaultsAndCountNothing attacks
// errNotReturned's promise ("its span ends with status Error (outcome
// "error") and nothing is counted as done") with an Authorizer that panics
// in Grant and Revoke and a store that panics in Check: each span ends
// as a fault, the panic reaches the caller, no grant or revocation is
// counted, and the check is counted as "error", not "allowed".
func TestReview161HostPanicsEndSpansAsFaultsAndCountNothing(t *testing.T) {
	var panics atomic.Bool
	st := &r161Store{Store: memstore.New()}
	e := newR161(t, st, sa.WithCheckSpans(true), sa.WithAuthorizer(func(ctx context.Context, a sa.Action, by sa.Actor, tenant string) error {
		if panics.Load() {
			panic("authorizer bug")
		}
		return sa.DefaultAuthorizer(ctx, a, by, tenant)
	}))
	g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	panics.Store(true)
	require.PanicsWithValue(t, "authorizer bug", func() { _, _ = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer}) })
	r161RequireFault(t, e.last("supportaccess.Grant"))
	require.PanicsWithValue(t, "authorizer bug", func() { _, _ = e.m.Revoke(ctx, g.ID, customer, "") })
	r161RequireFault(t, e.last("supportaccess.Revoke"))
	require.PanicsWithValue(t, "authorizer bug", func() { _, _ = e.m.RevokeTenant(ctx, "acme", customer, "") })
	r161RequireFault(t, e.last("supportaccess.RevokeTenant"))
	panics.Store(false)

	ps := &r161PanicStore{r161Store: st}
	pe := newR161(t, ps, sa.WithCheckSpans(true))
	pctx, parent := pe.tp.Tracer("http").Start(ctx, "GET /")
	require.PanicsWithValue(t, "store bug", func() { _, _ = pe.m.Check(pctx, "acme", support.ID, sa.ScopeRead) })
	parent.End()
	r161RequireFault(t, pe.last("supportaccess.Check"))

	got := e.counts()
	require.EqualValues(t, 1, got["supportaccess.grants.created"])
	require.Zero(t, got["supportaccess.grants.revoked"])
	pgot := pe.counts()
	require.EqualValues(t, 1, pgot["supportaccess.checks/error"])
	require.Zero(t, pgot["supportaccess.checks/allowed"])
	require.Len(t, e.spans.Ended(), len(e.spans.Started()))
	require.Len(t, pe.spans.Ended(), len(pe.spans.Started()))
}

type r161PanicStore struct{ *r161Store }

func (*r161PanicStore) FindActiveGrant(context.Context, string, string, sa.Scope, time.Time) (sa.Grant, error) {
	panic("store bug")
}

// r161Server is a host's HTTP stack as otelhttp builds it: the client's
// trace context is extracted, a server span started, and the
// middleware (with RequireScope("messages:read") on /messages) runs under
// it. It returns the status and the server span.
type r161Server struct {
	e     *r161Env
	h     http.Handler
	prop  propagation.TextMapPropagator
	calls atomic.Int64
}

func newR161Server(e *r161Env, resolve func(*http.Request) (sa.Session, bool), opts ...sa.MiddlewareOption) *r161Server {
	s := &r161Server{e: e, prop: propagation.TraceContext{}}
	mux := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.calls.Add(1)
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("/messages", sa.RequireScope("messages:read")(ok))
	mux.Handle("/", ok)
	s.h = e.m.Middleware(resolve, opts...)(mux)
	return s
}

func (s *r161Server) serve(method, path string, header ...string) (int, sdktrace.ReadOnlySpan, trace.SpanContext) {
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	pctx := s.prop.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	sctx, span := s.e.tp.Tracer("http").Start(pctx, method+" "+path, trace.WithSpanKind(trace.SpanKindServer))
	rec, _ := mwServe(s.h, req.WithContext(sctx))
	span.End()
	ro, ok := span.(sdktrace.ReadOnlySpan)
	if !ok {
		panic("not an SDK span")
	}
	return rec.Code, ro, span.SpanContext()
}

// TestReview161MiddlewareSpansTellTheDecisionUnderTheIncomingTrace
// attacks annotateSpan's doc (the request's span is marked "with the
// tenant, the grant and the decision ("allowed" or "denied:<code>")")
// and WithCheckSpans ("a span supportaccess.Check ... when ctx already
// carries a recording span (the check is part of a traced request)") on
// every path of the middleware: admitted; refused by RequireScope after
// admission; the store down (503); a malformed session; the audit of
// the response failing (503). The Check spans must belong to the
// client's trace (propagated traceparent) and be children of the server
// span; the counted checks must equal the Check spans.
func TestReview161MiddlewareSpansTellTheDecisionUnderTheIncomingTrace(t *testing.T) {
	st := &r161Store{Store: memstore.New()}
	e := newR161(t, st, sa.WithCheckSpans(true))
	g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	var reported atomic.Int64
	srv := newR161Server(e, func(r *http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: r.Header.Get("X-Tenant"), Principal: support.ID, SessionID: "s1"}, true
	}, sa.WithMiddlewareErrorHandler(func(context.Context, error) { reported.Add(1) }))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tp := "00-" + traceID + "-00f067aa0ba902b7-01"

	checksUnder := func(server sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range e.ended("supportaccess.Check") {
			if s.Parent().SpanID() == server.SpanContext().SpanID() {
				require.Equal(t, traceID, s.SpanContext().TraceID().String(), "the Check span is in the client's trace")
				out = append(out, s)
			}
		}
		return out
	}

	// Admitted.
	code, server, sc := srv.serve(http.MethodGet, "/settings", "X-Tenant", "acme", "traceparent", tp)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, traceID, sc.TraceID().String())
	a := attrs(server)
	require.Equal(t, "allowed", a[sa.AttrKeyDecision])
	require.Equal(t, "true", a[sa.AttrKeyImpersonated])
	require.Equal(t, g.ID.String(), a[sa.AttrKeyGrant])
	require.Equal(t, "acme", a[sa.AttrKeyTenant])
	cs := checksUnder(server)
	require.Len(t, cs, 1)
	r161RequireNotFault(t, cs[0], sa.OutcomeAllowed)

	// Admitted for read, refused by RequireScope: the server span must
	// not keep saying "allowed".
	code, server, _ = srv.serve(http.MethodGet, "/messages", "X-Tenant", "acme", "traceparent", tp)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "denied:"+sa.DeniedAccess, attrs(server)[sa.AttrKeyDecision])
	cs = checksUnder(server)
	require.Len(t, cs, 2, "the admission and RequireScope's Check")
	r161RequireNotFault(t, cs[0], sa.OutcomeAllowed)
	r161RequireNotFault(t, cs[1], sa.OutcomeScope)
	require.Equal(t, "messages:read", attrs(cs[1])[sa.AttrKeyScope])

	// The store down: 503, and the Check span an error.
	before := reported.Load()
	code, server, _ = srv.serve(http.MethodGet, "/settings", "X-Tenant", "down", "traceparent", tp)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "denied:"+sa.DeniedUnavailable, attrs(server)[sa.AttrKeyDecision])
	require.NotContains(t, attrs(server), sa.AttrKeyGrant)
	cs = checksUnder(server)
	require.Len(t, cs, 1)
	r161RequireFault(t, cs[0])
	require.Greater(t, reported.Load(), before, "the outage reaches the error handler")

	// A malformed session: refused before any Check (so neither a Check
	// span nor a count in supportaccess.checks: only the server span
	// tells), not a fault.
	code, server, _ = srv.serve(http.MethodGet, "/settings", "X-Tenant", "acme\x01", "traceparent", tp)
	require.Equal(t, http.StatusForbidden, code)
	a = attrs(server)
	require.Equal(t, "denied:"+sa.DeniedAccess, a[sa.AttrKeyDecision])
	require.Equal(t, "true", a[sa.AttrKeyImpersonated])
	require.NotContains(t, a, sa.AttrKeyTenant, "a malformed tenant is not recorded")
	require.Empty(t, checksUnder(server))
	require.Equal(t, codes.Unset, server.Status().Code)

	// The support.request event cannot be recorded: 503, and the span
	// must say so rather than "allowed".
	st.failRequest.Store(true)
	code, server, _ = srv.serve(http.MethodGet, "/settings", "X-Tenant", "acme", "traceparent", tp)
	st.failRequest.Store(false)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "denied:"+sa.DeniedUnavailable, attrs(server)[sa.AttrKeyDecision])

	// An untraced request: no Check span, but counted.
	req := httptest.NewRequest(http.MethodGet, "/settings", nil)
	req.Header.Set("X-Tenant", "acme")
	rec, _ := mwServe(srv.h, req)
	require.Equal(t, http.StatusOK, rec.Code)

	got := e.counts()
	require.EqualValues(t, 4, got["supportaccess.checks/allowed"])
	require.EqualValues(t, 1, got["supportaccess.checks/scope"])
	require.EqualValues(t, 1, got["supportaccess.checks/error"])
	require.Zero(t, got["supportaccess.checks/invalid"])
	require.Len(t, e.ended("supportaccess.Check"), 5, "one Check span per check of a traced request")
	require.EqualValues(t, 3, srv.calls.Load(), "the handler ran for the admitted requests (the failed audit one included)")
	require.Len(t, e.spans.Ended(), len(e.spans.Started()))
}

// TestReview161SchemaTooOldIsAnOutageNotInvalidInput attacks the outcome
// contract ("invalid: malformed arguments: refused, not a fault";
// "error: a fault (store, audit, context); status Error", telemetry.go)
// and the middleware's ("503 with Retry-After when the store fails during
// the check (fail closed: an outage denies, and 503 tells clients and
// monitoring that it is one)", Manager.Middleware) with a real store
// fault: a SQLite store whose schema is older than the library needs
// (Migrate not run after an upgrade, or failed part of the way). Every
// Check fails, for every session: an outage. It must be counted as
// "error", its span an error, the middleware must answer 503 and tell the
// error handler — not 403 "invalid session or scope" counted as
// malformed input, which no error-rate alert sees. Found by review 161
// (sqlstore.ErrSchemaTooOld wrapped ErrInvalidInput); now it wraps no
// sentinel of the root package and the outage is a fault.
func TestReview161SchemaTooOldIsAnOutageNotInvalidInput(t *testing.T) {
	db := sqltest.OpenSQLite(t, filepath.Join(t.TempDir(), "app.db"))
	st := sqltest.NewStoreOn(t, db, sqlstore.SQLite)
	_, err := db.ExecContext(ctx, fmt.Sprintf("DELETE FROM %sschema_version WHERE version = ?", st.TablePrefix()), sqlstore.SchemaVersion)
	require.NoError(t, err)
	old, err := sqlstore.New(db, sqlstore.SQLite, sqlstore.WithTablePrefix(st.TablePrefix()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = old.Close() })
	e := newR161(t, old, sa.WithCheckSpans(true))

	pctx, parent := e.tp.Tracer("http").Start(ctx, "GET /")
	_, err = e.m.Check(pctx, "acme", support.ID, sa.ScopeRead)
	parent.End()
	require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
	r161RequireFault(t, e.last("supportaccess.Check"))

	var checkReported atomic.Int64
	srv := newR161Server(e, func(*http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: "acme", Principal: support.ID, SessionID: "s1"}, true
	}, sa.WithMiddlewareErrorHandler(func(_ context.Context, err error) {
		// Not the failed audit of the denial ("audit of denial: ..."),
		// which is reported either way: the check's own failure.
		if strings.HasPrefix(err.Error(), "supportaccess: middleware: check:") {
			checkReported.Add(1)
		}
	}))
	code, server, _ := srv.serve(http.MethodGet, "/settings")
	require.Equal(t, http.StatusServiceUnavailable, code, "an outage is a 503, as the middleware's doc says")
	require.Equal(t, "denied:"+sa.DeniedUnavailable, attrs(server)[sa.AttrKeyDecision])
	require.Positive(t, checkReported.Load(), "the error handler hears of the outage")

	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
	r161RequireFault(t, e.last("supportaccess.Grant"))

	got := e.counts()
	require.EqualValues(t, 2, got["supportaccess.checks/error"])
	require.Zero(t, got["supportaccess.checks/invalid"], "nobody sent malformed input")
}

// r161DeltaExporter is a push exporter (as OTLP's) with delta temporality
// (as Datadog, Dynatrace and many OTLP backends want): it sums the
// supportaccess.checks data points it is sent, by outcome.
type r161DeltaExporter struct {
	mu      sync.Mutex
	exports int
	checks  map[string]int64
}

func (x *r161DeltaExporter) Temporality(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.DeltaTemporality
}

func (x *r161DeltaExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

func (x *r161DeltaExporter) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.exports++
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "supportaccess.checks" {
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value("outcome")
					x.checks[v.AsString()] += p.Value
				}
			}
		}
	}
	return nil
}

func (*r161DeltaExporter) ForceFlush(context.Context) error { return nil }
func (*r161DeltaExporter) Shutdown(context.Context) error   { return nil }

func (x *r161DeltaExporter) errors() (int64, int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.checks[sa.OutcomeError], x.exports
}

// r161OutageExports runs a store outage under a push exporter (a
// PeriodicReader, flushed by hand) with delta temporality, with or
// without the active-grants gauge: a flush before it, three checks that
// fail on the store, a flush during it, the store back, a flush. It
// returns the checks{outcome=error} exported by the flush during the
// outage and by all flushes.
func r161OutageExports(t *testing.T, gauge bool) (during, total int64) {
	t.Helper()
	x := &r161DeltaExporter{checks: map[string]int64{}}
	reader := sdkmetric.NewPeriodicReader(x, sdkmetric.WithInterval(time.Hour))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })
	st := &r161Store{Store: memstore.New()}
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithMeterProvider(mp), sa.WithActiveGrantsGauge(gauge))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	require.NoError(t, mp.ForceFlush(ctx))

	// The outage: every check fails closed, and is counted as a fault.
	st.down.Store(true)
	st.listDown.Store(true)
	for range 3 {
		_, err := m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, errBoom)
	}
	_ = mp.ForceFlush(ctx) // with the gauge its callback fails: the SDK reports that
	during, _ = x.errors()
	st.down.Store(false)
	st.listDown.Store(false)
	require.NoError(t, mp.ForceFlush(ctx))
	total, _ = x.errors()
	return during, total
}

// TestReview161StoreOutageReachesThePushExporter pins the baseline:
// without the gauge, the checks that failed during a store outage are
// exported by the next push, once.
func TestReview161StoreOutageReachesThePushExporter(t *testing.T) {
	during, total := r161OutageExports(t, false)
	require.EqualValues(t, 3, during)
	require.EqualValues(t, 3, total)
}

// TestReview161StoreOutageReachesThePushExporterWithTheGauge attacks
// "every call counts in supportaccess.checks" (Manager.Check) where an
// operator's alert needs it most, with WithActiveGrantsGauge on: the
// gauge's callback asks the store on every collection ("one ListGrants
// per collection") and returns its error to the SDK; the SDK's
// PeriodicReader exports nothing from a collection whose callbacks
// failed, and with delta temporality the counts it collected are gone.
// So the checks{outcome=error} surge of the outage was never exported
// (nor any other metric of the provider, the host's included): the
// dashboard showed a gap and the error-rate alert never fired. Found by
// review 161; now the callback reports the store's error to the error
// handler and observes nothing.
func TestReview161StoreOutageReachesThePushExporterWithTheGauge(t *testing.T) {
	during, total := r161OutageExports(t, true)
	require.EqualValues(t, 3, during, "the outage's failed checks are exported while it lasts")
	require.EqualValues(t, 3, total, "delta counts of the outage are not lost")
}

// TestReview161ActiveGaugeCountsWhatIsActiveNow attacks WithActiveGrantsGauge
// ("Active grants per tenant", counted "on each collection") against the
// states a dashboard must not mistake for access: a scheduled grant, one
// past its end that no Sweep has recorded yet, a revoked one. The gauge
// follows the Manager's clock, not the Sweep; and a tenant whose last
// grant ended reports no series rather than a stale count.
func TestReview161ActiveGaugeCountsWhatIsActiveNow(t *testing.T) {
	e := newR161(t, memstore.New(), sa.WithActiveGrantsGauge(true))
	in := func(tenant string, d time.Duration, starts time.Time) sa.Grant {
		t.Helper()
		g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: customer, Duration: d, StartsAt: starts})
		require.NoError(t, err)
		return g
	}
	now := e.clock.Now()
	in("acme", time.Hour, time.Time{})
	in("acme", 3*time.Hour, time.Time{})
	in("acme", time.Hour, now.Add(2*time.Hour)) // scheduled
	r := in("globex", 3*time.Hour, time.Time{})
	in("globex", 3*time.Hour, time.Time{})
	_, err := e.m.Revoke(ctx, r.ID, customer, "")
	require.NoError(t, err)
	got := e.counts()
	require.EqualValues(t, 2, got["supportaccess.grants.active/acme"])
	require.EqualValues(t, 1, got["supportaccess.grants.active/globex"])

	e.clock.Advance(150 * time.Minute) // first acme grant past its end (not swept); the scheduled one started
	got = e.counts()
	require.EqualValues(t, 2, got["supportaccess.grants.active/acme"], "one ended, one started")
	e.clock.Advance(time.Hour) // 3h30: everything has ended, nothing swept
	got = e.counts()
	require.NotContains(t, got, "supportaccess.grants.active/acme")
	require.NotContains(t, got, "supportaccess.grants.active/globex")
}

// r161ErrMeterProvider hands out the SDK's instruments with an error (as
// the SDK itself does for a name it refuses, or a wrapper for a View it
// rejects), or, with nilInstruments, no instrument at all with the error.
type r161ErrMeterProvider struct {
	metric.MeterProvider
	nilInstruments bool
}

func (p *r161ErrMeterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return &r161ErrMeter{Meter: p.MeterProvider.Meter(name, opts...), p: p}
}

type r161ErrMeter struct {
	metric.Meter
	p *r161ErrMeterProvider
}

var errR161Meter = errors.New("meter: instrument refused")

func (m *r161ErrMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, _ := m.Meter.Int64Counter(name, opts...)
	if m.p.nilInstruments {
		return nil, errR161Meter
	}
	return c, errR161Meter
}

func (m *r161ErrMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	h, _ := m.Meter.Float64Histogram(name, opts...)
	if m.p.nilInstruments {
		return nil, errR161Meter
	}
	return h, errR161Meter
}

// TestReview161MeterErrorsDoNotChangeDecisions attacks "telemetry never
// changes an access decision" for a MeterProvider whose instruments come
// back with an error: NewManager reports it through otel.Handle and goes
// on; an allowed check stays allowed (and counted, as the instrument
// works), a denied one denied, and Grant and Revoke still work.
func TestReview161MeterErrorsDoNotChangeDecisions(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	sdk := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = sdk.Shutdown(ctx) })
	st := memstore.New()
	m, err := sa.NewManager(st, sa.WithMeterProvider(&r161ErrMeterProvider{MeterProvider: sdk}))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err, "allowed stays allowed")
	_, err = m.Check(ctx, "globex", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "denied stays denied")
	_, err = m.Revoke(ctx, g.ID, customer, "")
	require.NoError(t, err)
	_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	ms := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, x := range sm.Metrics {
			ms[x.Name] = x
		}
	}
	got := r161Counts(ms)
	require.EqualValues(t, 1, got["supportaccess.checks/allowed"])
	require.EqualValues(t, 2, got["supportaccess.checks/no_grant"])
	require.EqualValues(t, 1, got["supportaccess.grants.revoked"])
}

// TestReview161NilInstrumentsDoNotBreakAccess attacks the same promise
// with a MeterProvider that returns no instrument with its error (a
// hand-written or wrapping provider; the metric API does not promise a
// usable instrument with an error). The Manager must not keep a nil
// instrument: an allowed check must stay allowed, and a Grant that
// committed must return it (not panic after the commit, skipping its
// notification). Found by review 161 (the nil instrument was kept); now a
// nil instrument is replaced by a no-op one.
func TestReview161NilInstrumentsDoNotBreakAccess(t *testing.T) {
	st := memstore.New()
	var notified atomic.Int64
	m, err := sa.NewManager(st, sa.WithMeterProvider(&r161ErrMeterProvider{MeterProvider: sdkmetric.NewMeterProvider(), nilInstruments: true}),
		sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error { notified.Add(1); return nil })))
	if err != nil {
		require.ErrorIs(t, err, sa.ErrInvalidInput, "refusing the provider outright is fine too")
		return
	}
	var g sa.Grant
	require.NotPanics(t, func() { g, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer}) })
	require.NoError(t, err)
	require.EqualValues(t, 1, notified.Load())
	require.NotPanics(t, func() { _, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead) })
	require.NoError(t, err, "allowed stays allowed")
	require.NotPanics(t, func() { _, err = m.Revoke(ctx, g.ID, customer, "") })
	require.NoError(t, err)
}

// TestReview161CheckDurationIsInSeconds attacks the histogram's unit
// ("s"): a store that takes 30 ms to answer must be recorded as about
// 0.03, not 30 or 30 000 000.
func TestReview161CheckDurationIsInSeconds(t *testing.T) {
	st := &r161Store{Store: memstore.New()}
	e := newR161(t, st)
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	st.slow.Store(int64(30 * time.Millisecond))
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	h := e.collect()["supportaccess.check.duration"].Data.(metricdata.Histogram[float64])
	require.Len(t, h.DataPoints, 1)
	p := h.DataPoints[0]
	require.EqualValues(t, 1, p.Count)
	require.GreaterOrEqual(t, p.Sum, 0.03)
	require.Less(t, p.Sum, 1.0)
	require.Equal(t, attribute.NewSet(attribute.String("outcome", sa.OutcomeAllowed)), p.Attributes)
}
