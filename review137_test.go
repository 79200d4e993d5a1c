package supportaccess_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

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
	"go.opentelemetry.io/otel/trace/noop"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 137: telemetry (spans, metrics) and logging as a data-leak and
// denial-of-service surface.

// r137MeterProvider wraps a MeterProvider; the Int64Counter named hookName
// runs hook (which may panic or block) at the start of each Add.
type r137MeterProvider struct {
	metric.MeterProvider
	hookName string
	hook     func()
}

func (p *r137MeterProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return &r137Meter{Meter: p.MeterProvider.Meter(name, opts...), p: p}
}

type r137Meter struct {
	metric.Meter
	p *r137MeterProvider
}

func (m *r137Meter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := m.Meter.Int64Counter(name, opts...)
	if name == m.p.hookName {
		return &r137Counter{Int64Counter: c, hook: m.p.hook}, err
	}
	return c, err
}

type r137Counter struct {
	metric.Int64Counter
	hook func()
}

func (c *r137Counter) Add(ctx context.Context, n int64, opts ...metric.AddOption) {
	c.hook()
	c.Int64Counter.Add(ctx, n, opts...)
}

// TestReview137PanickingRevokeCounterStillEndsInFlightRequests attacks
// SECURITY.md's "requests in flight on the revoking replica are cancelled
// at once" with a host MeterProvider whose supportaccess.grants.revoked
// counter panics (a bug in a custom provider or a view/exporter wrapper).
// revokeQuietly counts the revocation (m.tel.revoked.Add) before it tells
// the middleware's listeners (m.revoked): the panic skips the latter, so
// a request admitted with the revoked grant keeps running after the
// revocation committed, until the next poll (1 s by default; here 1 h).
func TestReview137PanickingRevokeCounterStillEndsInFlightRequests(t *testing.T) {
	mp := &r137MeterProvider{MeterProvider: sdkmetric.NewMeterProvider(), hookName: "supportaccess.grants.revoked",
		hook: func() { panic("meter bug") }}
	e := newMWEnv(t, sa.WithMeterProvider(mp))
	g := e.grant(sa.GrantInput{})
	entered := make(chan *http.Request, 1)
	var cancelled atomic.Bool
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r
		select {
		case <-r.Context().Done():
			cancelled.Store(true)
		case <-time.After(3 * time.Second):
		}
	}), sa.WithPollInterval(time.Hour))
	done := make(chan struct{})
	go func() {
		defer close(done)
		mwServe(h, mwReq(http.MethodGet, "/settings", "generic"))
	}()
	r := <-entered
	require.PanicsWithValue(t, "meter bug", func() { _, _ = e.m.Revoke(context.Background(), g.ID, mwCustomer, "") })
	stored, err := e.store.GetGrant(context.Background(), g.ID)
	require.NoError(t, err)
	require.False(t, stored.RevokedAt.IsZero(), "the revocation committed")
	require.Error(t, mwWaitEnd(r, 500*time.Millisecond), "the in-flight request of the revoked grant must end at once")
	<-done
	require.True(t, cancelled.Load())
}

// r137Scan fails t when any span of rec (name, attributes, event
// attributes, status description, link attributes) or any metric data
// point's attributes of rm holds one of the forbidden substrings, or a
// string value that is not valid UTF-8 or longer than maxLen. It also
// requires every started span to have ended.
func r137Scan(t *testing.T, rec *tracetest.SpanRecorder, rm *metricdata.ResourceMetrics, maxLen int, forbidden ...string) {
	t.Helper()
	check := func(where, v string) {
		t.Helper()
		for _, f := range forbidden {
			require.NotContains(t, v, f, "%s carries %q", where, f)
		}
		require.True(t, utf8.ValidString(v), "%s is not valid UTF-8: %q", where, v)
		require.LessOrEqual(t, len(v), maxLen, "%s is %d bytes long", where, len(v))
	}
	checkKVs := func(where string, kvs []attribute.KeyValue) {
		t.Helper()
		for _, kv := range kvs {
			check(where+" key", string(kv.Key))
			check(where+" "+string(kv.Key), kv.Value.String())
		}
	}
	require.Len(t, rec.Ended(), len(rec.Started()), "every started span ended")
	for _, s := range rec.Ended() {
		check("span name", s.Name())
		checkKVs("span "+s.Name(), s.Attributes())
		for _, ev := range s.Events() {
			check("event name of "+s.Name(), ev.Name)
			checkKVs("event of "+s.Name(), ev.Attributes)
		}
		check("status of "+s.Name(), s.Status().Description)
		for _, l := range s.Links() {
			checkKVs("link of "+s.Name(), l.Attributes)
		}
	}
	if rm == nil {
		return
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, s := range r137AttrSets(t, m) {
				checkKVs("metric "+m.Name, s.ToSlice())
			}
		}
	}
}

// r137AttrSets returns the attribute sets of m's data points (the library
// reports int64 sums and gauges and float64 histograms).
func r137AttrSets(t *testing.T, m metricdata.Metrics) []attribute.Set {
	t.Helper()
	var sets []attribute.Set
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	default:
		t.Fatalf("metric %s: unexpected data %T", m.Name, m.Data)
	}
	return sets
}

// TestReview137NoCustomerDataInTelemetry attacks SECURITY.md's "Telemetry
// carries no reason texts and, by default, no principal IDs" (and the
// attribute keys' doc: "no reason texts ... no principal or actor IDs")
// with every operation of the lifecycle, refusals included, and
// impersonated requests whose path, query string, Authorization header,
// session ID and impersonated user carry markers: none of reasons, ticket
// references, actor IDs or names, grantees, session IDs, subject user
// IDs, paths, query strings or headers may reach a span (name,
// attribute, event, status) or a metric attribute. The spans are all
// named supportaccess.<Operation> and all end.
func TestReview137NoCustomerDataInTelemetry(t *testing.T) {
	o := newOtelEnv(t, sa.WithCheckSpans(true), sa.WithActiveGrantsGauge(true))
	t.Cleanup(func() { _ = o.m.Close() })
	adm := sa.Actor{Kind: sa.ActorCustomer, ID: "adm-S3CRET@acme.example", Name: "Ada S3CRET-NAME"}
	sup := sa.Actor{Kind: sa.ActorSupport, ID: "eve-S3CRET@vendor.example", Name: "Eve S3CRET-NAME"}
	g, err := o.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: adm, Grantees: []string{sup.ID}, Duration: time.Hour,
		Reason: "reason S3CRET", TicketRef: "TICKET-S3CRET"})
	require.NoError(t, err)
	_, err = o.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: sup, Reason: "self S3CRET", TicketRef: "TICKET-S3CRET"})
	require.ErrorIs(t, err, sa.ErrForbidden, "support never lets itself in (a refusal, audited)")
	_, err = o.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), adm)
	require.NoError(t, err)
	_, err = o.m.AddGrantee(ctx, g.ID, "colleague-S3CRET@vendor.example", adm)
	require.NoError(t, err)
	r1, err := o.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: sup, Duration: time.Hour, Reason: "ask S3CRET", TicketRef: "TICKET-S3CRET"})
	require.NoError(t, err)
	g2, err := o.m.Approve(ctx, r1.ID, adm, sa.ApproveInput{Reason: "approve S3CRET"})
	require.NoError(t, err)
	r2, err := o.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: sup, Duration: time.Hour, Reason: "ask2 S3CRET", TicketRef: "TICKET-S3CRET"})
	require.NoError(t, err)
	_, err = o.m.Deny(ctx, r2.ID, adm, "deny S3CRET")
	require.NoError(t, err)
	_, err = o.m.GetRequest(ctx, r2.ID)
	require.NoError(t, err)
	_, err = o.m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", RequestedBy: sup.ID, TicketRef: "TICKET-S3CRET"})
	require.NoError(t, err)
	_, err = o.m.List(ctx, sa.ListFilter{TenantID: "acme", TicketRef: "TICKET-S3CRET"})
	require.NoError(t, err)
	_, err = o.m.Get(ctx, g.ID)
	require.NoError(t, err)

	// Impersonated requests under a server span, allowed and denied.
	resolve := func(r *http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: r.Header.Get("X-Tenant"), Principal: sup.ID, SubjectUserID: "user-S3CRET", SessionID: "sess-S3CRET"}, true
	}
	h := o.m.Middleware(resolve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("body S3CRET")) }))
	for _, tenant := range []string{"acme", "globex"} {
		sctx, server := o.tp.Tracer("http").Start(ctx, "server")
		req := httptest.NewRequest(http.MethodGet, "/path-S3CRET?token=S3CRET-QS", nil).WithContext(sctx)
		req.Header.Set("X-Tenant", tenant)
		req.Header.Set("Authorization", "Bearer S3CRET-TOKEN")
		h.ServeHTTP(httptest.NewRecorder(), req)
		server.End()
	}
	sctx, server := o.tp.Tracer("http").Start(ctx, "server")
	_, err = o.m.Check(sctx, "acme", sup.ID, sa.Scope("export"))
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	server.End()

	_, err = o.m.Events(ctx, sa.AuditFilter{TenantID: "acme", ActorID: adm.ID})
	require.NoError(t, err)
	_, _, err = o.m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme", ActorID: sup.ID}, "")
	require.NoError(t, err)
	_, err = o.m.ExportAudit(ctx, io.Discard, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	_, err = o.m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	var rm metricdata.ResourceMetrics
	require.NoError(t, o.reader.Collect(ctx, &rm))
	_, err = o.m.Revoke(ctx, g.ID, adm, "revoke S3CRET")
	require.NoError(t, err)
	_, err = o.m.RevokeTicket(ctx, "acme", "TICKET-S3CRET", adm, "closed S3CRET")
	require.NoError(t, err)
	_, err = o.m.RevokeTenant(ctx, "acme", adm, "all S3CRET")
	require.NoError(t, err)
	o.clock.Advance(3 * time.Hour)
	_, err = o.m.Sweep(ctx)
	require.NoError(t, err)
	_, err = o.m.PurgeAudit(ctx, "acme", o.now().Add(-time.Minute))
	require.NoError(t, err)
	require.NotEqual(t, g.ID, g2.ID)

	var rm2 metricdata.ResourceMetrics
	require.NoError(t, o.reader.Collect(ctx, &rm2))
	rm.ScopeMetrics = append(rm.ScopeMetrics, rm2.ScopeMetrics...)
	r137Scan(t, o.spans, &rm, sa.MaxReasonLen, "S3CRET", "@", "token", "Bearer", "/path")
	for _, s := range o.spans.Ended() {
		if s.Name() != "server" {
			require.True(t, strings.HasPrefix(s.Name(), "supportaccess."), s.Name())
			require.NotContains(t, s.Name()[len("supportaccess."):], ".", "one constant word per operation")
		}
	}
}

// TestReview137CheckMetricsAndSpansBoundedUnderHostileInput attacks the
// metrics' cardinality and the trace backend's storage: a support client
// (or a resolver fed by it) sending random tenants, principals, methods,
// paths, method-override headers and scopes, some not UTF-8 or far too
// long, must not create a time series per request: supportaccess.checks
// and supportaccess.check.duration keep one series per outcome (five at
// most) with the "outcome" attribute only, the Check spans keep their
// constant name and only validated, bounded values, and the middleware's
// decision attribute takes only "allowed" or "denied:<Denied… constant>".
func TestReview137CheckMetricsAndSpansBoundedUnderHostileInput(t *testing.T) {
	o := newOtelEnv(t, sa.WithCheckSpans(true), sa.WithPrincipalAttributes(true))
	o.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeRead, "export"}})
	long := strings.Repeat("x", 70000)
	hostile := func(i int) string {
		switch i % 5 {
		case 0:
			return fmt.Sprintf("v-%d", i)
		case 1:
			return fmt.Sprintf("v-%d\xff", i)
		case 2:
			return long + fmt.Sprint(i)
		case 3:
			return fmt.Sprintf("v\u200b%d", i)
		default:
			return "acme"
		}
	}
	for i := range 200 {
		sctx, server := o.tp.Tracer("http").Start(ctx, "server")
		_, _ = o.m.Check(sctx, hostile(i), hostile(i+1)+"@vendor.example", sa.Scope(hostile(i+2)))
		_, _ = o.m.Check(sctx, "acme", support.ID, sa.Scope(fmt.Sprintf("scope-%d", i)))
		server.End()
	}
	resolve := func(r *http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: r.Header.Get("X-Tenant"), Principal: r.Header.Get("X-Principal"), SessionID: r.Header.Get("X-Session")}, true
	}
	h := o.m.Middleware(resolve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for i := range 100 {
		sctx, server := o.tp.Tracer("http").Start(ctx, "server")
		req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(sctx)
		req.Method = fmt.Sprintf("M%d", i)
		if i%3 == 0 {
			req.Method = http.MethodGet
			req.Header.Set("X-HTTP-Method-Override", fmt.Sprintf("X%d", i))
		}
		req.URL.Path = fmt.Sprintf("/p/%d", i)
		req.URL.RawQuery = fmt.Sprintf("q=%d", i)
		req.Header.Set("X-Tenant", []string{"acme", "globex", hostile(i)}[i%3])
		req.Header.Set("X-Principal", []string{support.ID, hostile(i), "eve@vendor.example"}[i%3])
		req.Header.Set("X-Session", fmt.Sprintf("s-%d", i))
		h.ServeHTTP(httptest.NewRecorder(), req)
		server.End()
	}

	var rm metricdata.ResourceMetrics
	require.NoError(t, o.reader.Collect(ctx, &rm))
	outcomes := []string{sa.OutcomeAllowed, sa.OutcomeNoGrant, sa.OutcomeScope, sa.OutcomeInvalid, sa.OutcomeError}
	seen := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sets := r137AttrSets(t, m)
			if m.Name != "supportaccess.checks" && m.Name != "supportaccess.check.duration" {
				require.LessOrEqual(t, len(sets), 1, "metric %s has one series", m.Name)
				continue
			}
			seen++
			require.LessOrEqual(t, len(sets), len(outcomes), "metric %s: one series per outcome", m.Name)
			for _, s := range sets {
				require.Equal(t, 1, s.Len(), "metric %s: only the outcome attribute", m.Name)
				v, ok := s.Value("outcome")
				require.True(t, ok)
				require.Contains(t, outcomes, v.AsString())
			}
		}
	}
	require.Equal(t, 2, seen, "both check instruments reported")

	r137Scan(t, o.spans, nil, sa.MaxPrincipalLen)
	decisions := []string{"allowed", "denied:" + sa.DeniedAccess, "denied:" + sa.DeniedMFARequired, "denied:" + sa.DeniedSessionEnded, "denied:" + sa.DeniedUnavailable}
	names := map[string]bool{}
	for _, s := range o.spans.Ended() {
		names[s.Name()] = true
		if d, ok := attrs(s)[sa.AttrKeyDecision]; ok {
			require.Contains(t, decisions, d)
		}
		if sc, ok := attrs(s)[sa.AttrKeyScope]; ok {
			require.LessOrEqual(t, len(sc), sa.MaxScopeLen)
		}
		if tn, ok := attrs(s)[sa.AttrKeyTenant]; ok {
			require.NotContains(t, tn, "\u200b", "an invisible character fails validation: not recorded")
		}
	}
	require.Equal(t, map[string]bool{"server": true, "supportaccess.Check": true, "supportaccess.Grant": true}, names)
}

// r137FaultStore is a memstore whose method named method panics with
// r137PanicValue (mode "panic"), calls runtime.Goexit (mode "goexit") or
// fails with err (mode "error").
type r137FaultStore struct {
	*memstore.Store
	method, mode string
	err          error
}

// r137PanicValue is a panic value of host code that carries a secret.
const r137PanicValue = "store bug: dsn=postgres://app:S3CRET-PW@db"

func (s *r137FaultStore) hit(method string) error {
	if s.method != method {
		return nil
	}
	switch s.mode {
	case "panic":
		panic(r137PanicValue)
	case "goexit":
		runtime.Goexit()
	case "error":
		return s.err
	}
	return nil
}

func (s *r137FaultStore) CreateGrant(ctx context.Context, g sa.Grant, evs []sa.Event) error {
	if err := s.hit("CreateGrant"); err != nil {
		return err
	}
	return s.Store.CreateGrant(ctx, g, evs)
}

func (s *r137FaultStore) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	if err := s.hit("UpdateGrant"); err != nil {
		return sa.Grant{}, err
	}
	return s.Store.UpdateGrant(ctx, id, change)
}

func (s *r137FaultStore) GetGrant(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
	if err := s.hit("GetGrant"); err != nil {
		return sa.Grant{}, err
	}
	return s.Store.GetGrant(ctx, id)
}

func (s *r137FaultStore) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	if err := s.hit("ListGrants"); err != nil {
		return nil, err
	}
	return s.Store.ListGrants(ctx, f, now)
}

func (s *r137FaultStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if err := s.hit("FindActiveGrant"); err != nil {
		return sa.Grant{}, err
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

func (s *r137FaultStore) CreateRequest(ctx context.Context, r sa.AccessRequest, evs []sa.Event) error {
	if err := s.hit("CreateRequest"); err != nil {
		return err
	}
	return s.Store.CreateRequest(ctx, r, evs)
}

func (s *r137FaultStore) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	if err := s.hit("Events"); err != nil {
		return nil, err
	}
	return s.Store.Events(ctx, f)
}

// r137FaultEnv is a Manager on an r137FaultStore reporting to an
// in-memory SDK, with Check spans, and one grant of acme open to any
// support principal.
type r137FaultEnv struct {
	st     *r137FaultStore
	m      *sa.Manager
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	g      sa.Grant
}

func newR137FaultEnv(t *testing.T) *r137FaultEnv {
	t.Helper()
	e := &r137FaultEnv{st: &r137FaultStore{Store: memstore.New()}, rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	e.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.rec))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	t.Cleanup(func() { _ = e.tp.Shutdown(ctx); _ = mp.Shutdown(ctx) })
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(e.st, sa.WithNow(clock.Now), sa.WithTracerProvider(e.tp), sa.WithMeterProvider(mp), sa.WithCheckSpans(true))
	require.NoError(t, err)
	e.m = m
	e.g, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	return e
}

// r137Ops are Manager operations by the store method each calls first;
// the Check runs inside a recording span, so it has a span of its own.
func r137Ops(e *r137FaultEnv) map[string]struct {
	span string
	call func()
} {
	type op = struct {
		span string
		call func()
	}
	return map[string]op{
		"CreateGrant": {"supportaccess.Grant", func() {
			_, _ = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		}},
		"UpdateGrant": {"supportaccess.Revoke", func() { _, _ = e.m.Revoke(ctx, e.g.ID, customer, "") }},
		"GetGrant":    {"supportaccess.Get", func() { _, _ = e.m.Get(ctx, e.g.ID) }},
		"ListGrants":  {"supportaccess.List", func() { _, _ = e.m.List(ctx, sa.ListFilter{TenantID: "acme"}) }},
		"FindActiveGrant": {"supportaccess.Check", func() {
			sctx, server := e.tp.Tracer("http").Start(ctx, "server")
			defer server.End()
			_, _ = e.m.Check(sctx, "acme", support.ID, sa.ScopeRead)
		}},
		"CreateRequest": {"supportaccess.RequestAccess", func() {
			_, _ = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour})
		}},
		"Events": {"supportaccess.Events", func() { _, _ = e.m.Events(ctx, sa.AuditFilter{TenantID: "acme"}) }},
	}
}

// TestReview137PanicAndGoexitEndEverySpanAsAFault attacks the "every
// startSpan ended exactly once, with error status" rule of endOp and
// checkInstrumented: a store that panics (with a value holding a
// password) or calls runtime.Goexit inside Grant, Revoke, Get, List,
// Check, RequestAccess or Events. Each must re-raise the panic unchanged
// (fail closed: no answer), end its span with status Error and outcome
// "error" (never "ok" or a denial), without the panic value's text on the
// span, and count a Check that did not return as an error.
func TestReview137PanicAndGoexitEndEverySpanAsAFault(t *testing.T) {
	for _, mode := range []string{"panic", "goexit"} {
		for method := range r137Ops(newR137FaultEnv(t)) {
			t.Run(mode+"/"+method, func(t *testing.T) {
				e := newR137FaultEnv(t)
				op := r137Ops(e)[method]
				e.st.method, e.st.mode = method, mode
				var p any
				returned := false
				done := make(chan struct{})
				go func() {
					defer close(done)
					defer func() { p = recover() }()
					op.call()
					returned = true
				}()
				<-done
				require.False(t, returned, "the operation did not return")
				if mode == "panic" {
					require.Equal(t, r137PanicValue, p, "the panic is re-raised unchanged")
				} else {
					require.Nil(t, p)
				}
				var found sdktrace.ReadOnlySpan
				for _, s := range e.rec.Ended() {
					if s.Name() == op.span {
						found = s
					}
				}
				require.NotNil(t, found, "span %s ended", op.span)
				require.Equal(t, codes.Error, found.Status().Code)
				require.Equal(t, sa.OutcomeError, attrs(found)[sa.AttrKeyOutcome])
				// The host's own server span (ended by a deferred End while
				// the panic unwinds) records the panic: the SDK's doing, not
				// the library's; the library's spans must not.
				for _, s := range e.rec.Ended() {
					if s.Name() == "server" {
						continue
					}
					require.NotContains(t, s.Status().Description, "S3CRET", s.Name())
					for _, ev := range s.Events() {
						for _, kv := range ev.Attributes {
							require.NotContains(t, kv.Value.String(), "S3CRET", s.Name())
						}
					}
				}
				require.Len(t, e.rec.Ended(), len(e.rec.Started()), "every started span ended")
				if method == "FindActiveGrant" {
					var rm metricdata.ResourceMetrics
					require.NoError(t, e.reader.Collect(ctx, &rm))
					n := int64(0)
					for _, sm := range rm.ScopeMetrics {
						for _, m := range sm.Metrics {
							if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "supportaccess.checks" {
								for _, dp := range d.DataPoints {
									v, _ := dp.Attributes.Value("outcome")
									require.Equal(t, sa.OutcomeError, v.AsString())
									n += dp.Value
								}
							}
						}
					}
					require.EqualValues(t, 1, n, "the check is counted once, as an error")
				}
			})
		}
	}
}

// r137BadError is an error whose Error method panics when it is a nil
// pointer (a typed nil returned by host code).
type r137BadError struct{ msg string }

func (e *r137BadError) Error() string { return e.msg }

// TestReview137FaultTextIsCleanedBeforeItReachesTheSpan attacks
// recordFault's promise (valid UTF-8, no control characters, clipped):
// store errors with line breaks (log/trace injection), invalid UTF-8 (an
// OTLP exporter drops the whole batch), 1 MiB of text (backend storage),
// and a typed nil error whose Error method panics. The operation must
// return the error (not panic) and the span's status and exception event
// must hold cleaned, bounded text.
func TestReview137FaultTextIsCleanedBeforeItReachesTheSpan(t *testing.T) {
	var typedNil *r137BadError
	for name, ferr := range map[string]error{
		"line breaks":   errors.New("boom\nlevel=INFO msg=\"forged\"\r\n\x1b[2Jcleared"),
		"invalid UTF-8": errors.New("boom \xff\xfe\xc0"),
		"huge":          errors.New(strings.Repeat("é", 1<<19)),
		"typed nil":     typedNil,
		"bidi override": errors.New("boom \u202egnp.exe"),
	} {
		t.Run(name, func(t *testing.T) {
			e := newR137FaultEnv(t)
			e.st.method, e.st.mode, e.st.err = "UpdateGrant", "error", ferr
			var err error
			require.NotPanics(t, func() { _, err = e.m.Revoke(ctx, e.g.ID, customer, "") })
			require.Error(t, err)
			var found sdktrace.ReadOnlySpan
			for _, s := range e.rec.Ended() {
				if s.Name() == "supportaccess.Revoke" {
					found = s
				}
			}
			require.NotNil(t, found)
			require.Equal(t, codes.Error, found.Status().Code)
			require.NotEmpty(t, found.Status().Description)
			r137Scan(t, e.rec, nil, sa.MaxReasonLen, "\n", "\r", "\x1b", "\u202e")
		})
	}
}

// r137PanicTracerProvider is a TracerProvider whose tracers panic on
// Start (a broken host provider).
type r137PanicTracerProvider struct{ trace.TracerProvider }

func (p r137PanicTracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return r137PanicTracer{p.TracerProvider.Tracer(name, opts...)}
}

type r137PanicTracer struct{ trace.Tracer }

func (r137PanicTracer) Start(context.Context, string, ...trace.SpanStartOption) (context.Context, trace.Span) {
	panic("tracer bug")
}

// TestReview137BrokenTelemetryProvidersFailClosed attacks fail-closed
// with a host TracerProvider whose Start panics and a MeterProvider whose
// supportaccess.checks counter panics: a Grant must change nothing (no
// grant, no event) and an impersonated request must not reach the
// handler, whatever the provider does.
func TestReview137BrokenTelemetryProvidersFailClosed(t *testing.T) {
	t.Run("tracer", func(t *testing.T) {
		e := newEnv(t, sa.WithTracerProvider(r137PanicTracerProvider{noop.NewTracerProvider()}), sa.WithCheckSpans(true))
		before := e.snapshot()
		require.PanicsWithValue(t, "tracer bug", func() {
			_, _ = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		})
		require.Equal(t, before, e.snapshot(), "a Grant whose span could not start changed nothing")

		// A grant made past the broken tracer (directly in the store).
		now := e.now()
		require.NoError(t, e.store.CreateGrant(ctx, sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeRead},
			GrantedBy: customer, CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}, nil))
		tp := sdktrace.NewTracerProvider()
		t.Cleanup(func() { _ = tp.Shutdown(ctx) })
		var calls atomic.Int64
		h := e.m.Middleware(func(*http.Request) (sa.Session, bool) {
			return sa.Session{TenantID: "acme", Principal: support.ID, SessionID: "s1"}, true
		})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
		sctx, server := tp.Tracer("http").Start(ctx, "server")
		defer server.End()
		require.Panics(t, func() {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(sctx))
		})
		require.Zero(t, calls.Load(), "the handler never ran")
	})
	t.Run("meter", func(t *testing.T) {
		mp := &r137MeterProvider{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
			hookName: "supportaccess.checks", hook: func() { panic("meter bug") }}
		e := newEnv(t, sa.WithMeterProvider(mp))
		e.grant(sa.GrantInput{})
		var calls atomic.Int64
		h := e.m.Middleware(func(*http.Request) (sa.Session, bool) {
			return sa.Session{TenantID: "acme", Principal: support.ID, SessionID: "s1"}, true
		})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
		require.PanicsWithValue(t, "meter bug", func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)) })
		require.Zero(t, calls.Load(), "the handler never ran")
		require.PanicsWithValue(t, "meter bug", func() { _, _ = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead) },
			"an allowed check whose counting panics gives no answer")
	})
}

// TestReview137ClientTraceHeadersDoNotChangeAuthorisation attacks the
// context propagation: a host extracts the client's traceparent and
// baggage (as otelhttp does) before the middleware runs; a support client
// sends a trace context (sampled or not) and baggage members named like
// the library's attributes ("supportaccess.decision=allowed", another
// tenant). The decision must be the same as without them, the span
// attributes must be the middleware's, and an unsampled client trace (no
// recording span) must neither skip the check nor its counting.
func TestReview137ClientTraceHeadersDoNotChangeAuthorisation(t *testing.T) {
	o := newOtelEnv(t, sa.WithCheckSpans(true))
	g := o.grant(sa.GrantInput{})
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(ctx) })
	var calls atomic.Int64
	inner := o.m.Middleware(func(r *http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: r.Header.Get("X-Tenant"), Principal: support.ID, SessionID: "s1"}, true
	})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	var last sdktrace.ReadOnlySpan
	host := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { // what otelhttp does
		pctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		sctx, span := tp.Tracer("http").Start(pctx, "server", trace.WithSpanKind(trace.SpanKindServer))
		inner.ServeHTTP(w, r.WithContext(sctx))
		span.End()
		if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
			last = ro
		} else {
			last = nil
		}
	})
	for _, flags := range []string{"01", "00"} {
		for tenant, want := range map[string]int{"acme": http.StatusOK, "globex": http.StatusForbidden} {
			before := calls.Load()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("X-Tenant", tenant)
			req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"+flags)
			req.Header.Set("baggage", "supportaccess.decision=allowed,supportaccess.tenant_id=acme,supportaccess.grant_id="+g.ID.String()+",supportaccess.impersonated=false")
			rec := httptest.NewRecorder()
			last = nil
			host.ServeHTTP(rec, req)
			require.Equal(t, want, rec.Code, "tenant %s flags %s", tenant, flags)
			require.Equal(t, want == http.StatusOK, calls.Load() == before+1)
			if flags == "00" {
				require.False(t, last != nil && last.SpanContext().IsSampled(), "an unsampled parent: the server span does not record")
				continue
			}
			require.NotNil(t, last)
			a := attrs(last)
			require.Equal(t, "true", a[sa.AttrKeyImpersonated])
			if want == http.StatusOK {
				require.Equal(t, "allowed", a[sa.AttrKeyDecision])
			} else {
				require.Equal(t, "denied:"+sa.DeniedAccess, a[sa.AttrKeyDecision])
				require.NotContains(t, a, sa.AttrKeyGrant)
				require.Equal(t, "globex", a[sa.AttrKeyTenant])
			}
		}
	}
	m := o.metrics()
	require.EqualValues(t, 2, m["supportaccess.checks/allowed"], "unsampled requests are checked and counted too")
	require.EqualValues(t, 2, m["supportaccess.checks/no_grant"])
}

// TestReview137QueryStringsAndTokensNeverReachTheSlogAuditor attacks
// "Query strings never reach the audit trail" through the logging
// auditor: the support.request events a SlogAuditor writes (JSON and text
// handlers) for allowed and denied impersonated requests must not carry
// the query string, the Authorization header or the cookie, and each
// record must be one line even with a path holding encoded line breaks.
func TestReview137QueryStringsAndTokensNeverReachTheSlogAuditor(t *testing.T) {
	var jbuf, tbuf bytes.Buffer
	st := memstore.New()
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st,
		sa.NewSlogAuditor(slog.New(slog.NewJSONHandler(&jbuf, nil))),
		sa.NewSlogAuditor(slog.New(slog.NewTextHandler(&tbuf, nil))))))
	e.grant(sa.GrantInput{})
	h := e.m.Middleware(func(r *http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: r.Header.Get("X-Tenant"), Principal: support.ID, SessionID: "s1"}, true
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	for _, tenant := range []string{"acme", "globex"} {
		req := httptest.NewRequest(http.MethodGet, "/a%0Alevel=ERROR%20msg=forged/b?token=QS-S3CRET&x=1", nil)
		req.Header.Set("X-Tenant", tenant)
		req.Header.Set("Authorization", "Bearer AUTH-S3CRET")
		req.AddCookie(&http.Cookie{Name: "sid", Value: "COOKIE-S3CRET"})
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for name, out := range map[string]string{"json": jbuf.String(), "text": tbuf.String()} {
		require.Contains(t, out, "support.request", name)
		require.NotContains(t, out, "S3CRET", name)
		require.NotContains(t, out, "token=", name)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		for _, l := range lines {
			require.True(t, strings.HasPrefix(l, "{") || strings.HasPrefix(l, "time="), "%s: a record per line, no forged line: %q", name, l)
		}
	}
}

// TestReview137ErrorHandlerGetsNoSessionSecrets attacks the error handler
// (by default slog.Default at level Error, i.e. the host's log) and the
// trail with malformed sessions: a resolver that copies a bearer token
// with a line break into the tenant ID (the denial cannot be audited and
// goes to the error handler) or into the session ID and subject user ID
// (the denial is audited). The error handler's text must name the field,
// not echo the token or the line break; the audited denial must leave the
// malformed session and subject IDs out; the 403 body must echo nothing.
func TestReview137ErrorHandlerGetsNoSessionSecrets(t *testing.T) {
	errs := &mwErrs{}
	e := newEnv(t, sa.WithErrorHandler(errs.handle))
	e.grant(sa.GrantInput{})
	sessions := map[string]sa.Session{
		"tenant":  {TenantID: "acme\nBearer TOKEN-S3CRET", Principal: support.ID, SessionID: "s1"},
		"session": {TenantID: "acme", Principal: support.ID, SubjectUserID: "user-S3CRET\x00", SessionID: "Bearer TOKEN-S3CRET\nlevel=ERROR"},
	}
	h := e.m.Middleware(func(r *http.Request) (sa.Session, bool) {
		return sessions[r.Header.Get("X-Case")], true
	})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler reached") }))
	for c := range sessions {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/?q=QS-S3CRET", nil)
		req.Header.Set("X-Case", c)
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusForbidden, rec.Code, c)
		require.NotContains(t, rec.Body.String(), "S3CRET", c)
		require.NotContains(t, rec.Header().Get("Content-Type")+rec.Header().Get("Location"), "S3CRET", c)
	}
	require.Len(t, errs.all(), 1, "the unauditable denial is reported")
	for _, err := range errs.all() {
		require.NotContains(t, err.Error(), "S3CRET")
		require.NotContains(t, err.Error(), "\n")
		require.Contains(t, err.Error(), "Session.TenantID")
	}
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, 1)
	require.Equal(t, "acme", denied[0].TenantID)
	require.NotContains(t, denied[0].Attrs, sa.AttrSessionID)
	require.NotContains(t, denied[0].Attrs, sa.AttrSubjectUserID)
	b, err := json.Marshal(denied[0])
	require.NoError(t, err)
	require.NotContains(t, string(b), "S3CRET")
}

// r137CountingStore counts ListGrants calls.
type r137CountingStore struct {
	*memstore.Store
	lists atomic.Int64
}

func (s *r137CountingStore) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	s.lists.Add(1)
	return s.Store.ListGrants(ctx, f, now)
}

// TestReview137ActiveGaugeReleasedByClose attacks the active-grants gauge
// as a denial-of-service lever: its callback lists every active grant of
// every tenant at each collection. After Manager.Close (a host that
// rebuilds Managers, say per configuration reload) the meter provider
// must no longer call the closed Manager's store; a second Close is
// harmless.
func TestReview137ActiveGaugeReleasedByClose(t *testing.T) {
	st := &r137CountingStore{Store: memstore.New()}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })
	clock := storetest.NewClock(storetest.Epoch)
	var managers []*sa.Manager
	for range 3 {
		m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithMeterProvider(mp), sa.WithActiveGrantsGauge(true))
		require.NoError(t, err)
		managers = append(managers, m)
	}
	_, err := managers[0].Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	require.EqualValues(t, 3, st.lists.Load(), "one ListGrants per Manager per collection")
	for _, m := range managers {
		require.NoError(t, m.Close())
		require.NotPanics(t, func() { _ = m.Close() })
	}
	st.lists.Store(0)
	require.NoError(t, reader.Collect(ctx, &rm))
	require.Zero(t, st.lists.Load(), "closed Managers are not asked")
}

// TestReview137GoexitInHostCodeIsAFaultInEveryOperation attacks the
// promise of errNotReturned (telemetry.go): "a panic or runtime.Goexit in
// host code (an Authorizer, an auditor, a store, a Notifier) went through
// it. So its span ends with status Error (outcome "error") and nothing is
// counted as done, instead of "ok" ... every return overwrites it". Some
// operations assign their named err before the last host call, so a
// Goexit there ends the span "ok": RequestAccess (newGrant's and
// policy.duration's `g, err :=` / `d, err :=` clear err before the
// store's CreateRequest, so a request that was never stored gets an "ok"
// span carrying its ID), and Extend, Approve and Deny (err set by the
// store call before the Notifier runs). Grant and Revoke, which keep
// err = errNotReturned until their last return, report the same Goexit as
// a fault.
func TestReview137GoexitInHostCodeIsAFaultInEveryOperation(t *testing.T) {
	runOp := func(f func()) {
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		<-done
	}
	t.Run("store", func(t *testing.T) {
		e := newR137FaultEnv(t)
		e.st.method, e.st.mode = "CreateRequest", "goexit"
		runOp(func() {
			_, _ = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour})
		})
		rs, err := e.st.ListRequests(ctx, sa.RequestFilter{}, time.Now())
		require.NoError(t, err)
		require.Empty(t, rs, "no request was stored")
		var found sdktrace.ReadOnlySpan
		for _, s := range e.rec.Ended() {
			if s.Name() == "supportaccess.RequestAccess" {
				found = s
			}
		}
		require.NotNil(t, found)
		require.Equal(t, sa.OutcomeError, attrs(found)[sa.AttrKeyOutcome])
		require.Equal(t, codes.Error, found.Status().Code)
		require.NotContains(t, attrs(found), sa.AttrKeyRequest, "no ID of a request that does not exist")
	})
	t.Run("notifier", func(t *testing.T) {
		var on atomic.Bool
		o := newOtelEnv(t, sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error {
			if on.Load() {
				runtime.Goexit()
			}
			return nil
		})))
		g := o.grant(sa.GrantInput{Duration: time.Hour, Grantees: []string{engineer.ID}})
		g2 := o.grant(sa.GrantInput{Duration: time.Hour})
		r1 := o.request(sa.RequestInput{})
		r2 := o.request(sa.RequestInput{})
		on.Store(true)
		for name, f := range map[string]func(){
			"Grant":  func() { _, _ = o.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour}) },
			"Revoke": func() { _, _ = o.m.Revoke(ctx, g2.ID, customer, "") },
			"Extend": func() { _, _ = o.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Minute), customer) },
			"RequestAccess": func() {
				_, _ = o.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour})
			},
			"Approve": func() { _, _ = o.m.Approve(ctx, r1.ID, customer, sa.ApproveInput{}) },
			"Deny":    func() { _, _ = o.m.Deny(ctx, r2.ID, customer, "") },
			"AddGrantee": func() {
				_, _ = o.m.AddGrantee(ctx, g.ID, "other@vendor.example", customer)
			},
		} {
			runOp(f)
			s := o.span("supportaccess." + name)
			require.Equal(t, sa.OutcomeError, attrs(s)[sa.AttrKeyOutcome], name)
			require.Equal(t, codes.Error, s.Status().Code, name)
		}
	})
}
