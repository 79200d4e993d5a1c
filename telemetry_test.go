package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// otelEnv is an env whose Manager reports to an in-memory SDK.
type otelEnv struct {
	*env
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
}

func newOtelEnv(t *testing.T, opts ...sa.Option) *otelEnv {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = tp.Shutdown(ctx); _ = mp.Shutdown(ctx) })
	e := newEnv(t, append([]sa.Option{sa.WithTracerProvider(tp), sa.WithMeterProvider(mp)}, opts...)...)
	return &otelEnv{env: e, spans: rec, tp: tp, reader: reader}
}

func (o *otelEnv) span(name string) sdktrace.ReadOnlySpan {
	o.t.Helper()
	var found sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == name {
			found = s
		}
	}
	require.NotNil(o.t, found, "span %s", name)
	return found
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	out := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value.String()
	}
	return out
}

// metrics collects and returns sums and histogram counts by instrument and
// "outcome" attribute.
func (o *otelEnv) metrics() map[string]int64 {
	o.t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(o.t, o.reader.Collect(ctx, &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(o.t, sa.ScopeName, sm.Scope.Name)
		require.Equal(o.t, sa.Version, sm.Scope.Version)
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					key := m.Name
					if v, ok := p.Attributes.Value("outcome"); ok {
						key += "/" + v.AsString()
					}
					out[key] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value("outcome")
					out[m.Name+"/"+v.AsString()] += int64(p.Count)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value(sa.AttrKeyTenant)
					out[m.Name+"/"+v.AsString()] = p.Value
				}
			}
		}
	}
	return out
}

func TestTelemetrySpans(t *testing.T) {
	o := newOtelEnv(t)
	g := o.grant(sa.GrantInput{Reason: "secret reason text", Duration: time.Hour})
	s := o.span("supportaccess.Grant")
	a := attrs(s)
	require.Equal(t, "acme", a[sa.AttrKeyTenant])
	require.Equal(t, g.ID.String(), a[sa.AttrKeyGrant])
	require.Equal(t, "customer", a[sa.AttrKeyActorKind])
	require.Equal(t, "ok", a[sa.AttrKeyOutcome])
	require.NotContains(t, a, sa.AttrKeyActorID, "no actor ids by default")
	for _, kv := range s.Attributes() {
		require.NotContains(t, kv.Value.String(), "secret reason", "no reason texts")
		require.NotContains(t, kv.Value.String(), "@", "no e-mail addresses")
	}
	require.Equal(t, codes.Unset, s.Status().Code)

	_, err := o.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
	require.NoError(t, err)
	require.Equal(t, g.ID.String(), attrs(o.span("supportaccess.Extend"))[sa.AttrKeyGrant])

	// A refusal is an outcome, not an error status.
	_, err = o.m.Revoke(ctx, g.ID, sa.Actor{Kind: sa.ActorSupport, ID: "x@vendor.example"}, "")
	require.NoError(t, err, "any-principal grant: support may give it back")
	g2 := o.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
	_, err = o.m.Revoke(ctx, g2.ID, support, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	rs := o.span("supportaccess.Revoke")
	require.Equal(t, "forbidden", attrs(rs)[sa.AttrKeyOutcome])
	require.Equal(t, "support", attrs(rs)[sa.AttrKeyActorKind])
	require.Equal(t, codes.Unset, rs.Status().Code)

	_, err = o.m.Revoke(ctx, g.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Equal(t, "invalid", attrs(o.span("supportaccess.Revoke"))[sa.AttrKeyOutcome])

	_, err = o.m.RevokeTenant(ctx, "acme", customer, "")
	require.NoError(t, err)
	require.Equal(t, "1", attrs(o.span("supportaccess.RevokeTenant"))[sa.AttrKeyCount])
}

func TestTelemetryFaultsSetErrorStatus(t *testing.T) {
	o := newOtelEnv(t)
	g := o.grant(sa.GrantInput{})
	fs := &faultyStore{Store: o.store, failUpdate: true, failFind: true}
	m, err := sa.NewManager(fs, sa.WithNow(o.clock.Now), sa.WithTracerProvider(o.tp))
	require.NoError(t, err)
	_, err = m.Revoke(ctx, g.ID, customer, "")
	require.ErrorIs(t, err, errBoom)
	s := o.span("supportaccess.Revoke")
	require.Equal(t, codes.Error, s.Status().Code)
	require.Equal(t, "error", attrs(s)[sa.AttrKeyOutcome])
	require.NotEmpty(t, s.Events(), "the error is recorded")
}

func TestTelemetryPrincipalAttributesOptIn(t *testing.T) {
	o := newOtelEnv(t, sa.WithPrincipalAttributes(true), sa.WithCheckSpans(true))
	o.grant(sa.GrantInput{})
	require.Equal(t, customer.ID, attrs(o.span("supportaccess.Grant"))[sa.AttrKeyActorID])
	pctx, parent := o.tp.Tracer("test").Start(ctx, "request")
	_, err := o.m.Check(pctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	parent.End()
	require.Equal(t, support.ID, attrs(o.span("supportaccess.Check"))[sa.AttrKeyPrincipal])
}

func TestTelemetryCheck(t *testing.T) {
	o := newOtelEnv(t, sa.WithCheckSpans(true))
	g := o.grant(sa.GrantInput{})

	// Untraced checks start no span but are counted.
	_, err := o.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	for _, s := range o.spans.Ended() {
		require.NotEqual(t, "supportaccess.Check", s.Name())
	}

	// Inside a traced request the check is a child span.
	pctx, parent := o.tp.Tracer("test").Start(ctx, "GET /settings")
	_, err = o.m.Check(pctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	_, err = o.m.Check(pctx, "acme", support.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = o.m.Check(pctx, "globex", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	_, err = o.m.Check(pctx, "acme\x00", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	parent.End()
	var checks []sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == "supportaccess.Check" {
			checks = append(checks, s)
		}
	}
	require.Len(t, checks, 4)
	require.Equal(t, parent.SpanContext().SpanID(), checks[0].Parent().SpanID())
	require.Equal(t, map[attribute.Key]string{sa.AttrKeyTenant: "acme", sa.AttrKeyScope: "read", sa.AttrKeyGrant: g.ID.String(), sa.AttrKeyOutcome: "allowed"}, attrs(checks[0]))
	require.Equal(t, "scope", attrs(checks[1])[sa.AttrKeyOutcome])
	require.Equal(t, "no_grant", attrs(checks[2])[sa.AttrKeyOutcome])
	require.Equal(t, "invalid", attrs(checks[3])[sa.AttrKeyOutcome], "malformed arguments are refused, not a fault")
	require.NotContains(t, attrs(checks[3]), sa.AttrKeyTenant, "an invalid tenant ID is not recorded")
	for _, c := range checks {
		require.Equal(t, codes.Unset, c.Status().Code, "denials and refusals are not errors")
	}

	// A store fault is an error.
	fs := &faultyStore{Store: o.store, failFind: true}
	m, err := sa.NewManager(fs, sa.WithTracerProvider(o.tp), sa.WithMeterProvider(nil), sa.WithCheckSpans(true))
	require.NoError(t, err)
	pctx, parent = o.tp.Tracer("test").Start(ctx, "GET /x")
	_, err = m.Check(pctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, errBoom)
	parent.End()
	require.Equal(t, codes.Error, o.span("supportaccess.Check").Status().Code)

	got := o.metrics()
	require.EqualValues(t, 2, got["supportaccess.checks/allowed"])
	require.EqualValues(t, 1, got["supportaccess.checks/scope"])
	require.EqualValues(t, 1, got["supportaccess.checks/no_grant"])
	require.EqualValues(t, 1, got["supportaccess.checks/invalid"])
	require.EqualValues(t, 2, got["supportaccess.check.duration/allowed"])
	require.EqualValues(t, 1, got["supportaccess.grants.created"])
}

func TestTelemetryCheckSpansAreOptIn(t *testing.T) {
	o := newOtelEnv(t)
	o.grant(sa.GrantInput{})
	pctx, parent := o.tp.Tracer("test").Start(ctx, "GET /settings")
	_, err := o.m.Check(pctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	parent.End()
	for _, s := range o.spans.Ended() {
		require.NotEqual(t, "supportaccess.Check", s.Name())
	}
	require.EqualValues(t, 1, o.metrics()["supportaccess.checks/allowed"], "checks are counted all the same")
}

func TestTelemetryGrantCounters(t *testing.T) {
	o := newOtelEnv(t, sa.WithActiveGrantsGauge(true))
	a := o.grant(sa.GrantInput{Duration: time.Hour})
	o.grant(sa.GrantInput{TenantID: "globex"})
	o.grant(sa.GrantInput{TenantID: "globex"})
	_, err := o.m.Revoke(ctx, a.ID, customer, "")
	require.NoError(t, err)
	got := o.metrics()
	require.EqualValues(t, 3, got["supportaccess.grants.created"])
	require.EqualValues(t, 1, got["supportaccess.grants.revoked"])
	require.EqualValues(t, 2, got["supportaccess.grants.active/globex"])
	require.NotContains(t, got, "supportaccess.grants.active/acme")

	plain := newOtelEnv(t)
	plain.grant(sa.GrantInput{})
	require.NotContains(t, plain.metrics(), "supportaccess.grants.active/acme", "the per-tenant gauge is opt-in")
}

// With the default (global, no SDK installed) providers a Check allocates
// only what the store does: telemetry adds nothing.
func TestTelemetryDefaultAllocatesNothing(t *testing.T) {
	st := memstore.New()
	m, err := sa.NewManager(st)
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	now := time.Now()
	storeAllocs := testing.AllocsPerRun(200, func() {
		_, _ = st.FindActiveGrant(context.Background(), "acme", support.ID, sa.ScopeRead, now)
	})
	checkAllocs := testing.AllocsPerRun(200, func() {
		_, _ = m.Check(context.Background(), "acme", support.ID, sa.ScopeRead)
	})
	require.Equal(t, storeAllocs, checkAllocs)
}

func TestTelemetryLifecycleAndAuditSpans(t *testing.T) {
	o := newOtelEnv(t)
	r, err := o.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "secret", Duration: time.Hour})
	require.NoError(t, err)
	a := attrs(o.span("supportaccess.RequestAccess"))
	require.Equal(t, "acme", a[sa.AttrKeyTenant])
	require.Equal(t, r.ID.String(), a[sa.AttrKeyRequest])
	require.Equal(t, "support", a[sa.AttrKeyActorKind])
	g, err := o.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	require.Equal(t, g.ID.String(), attrs(o.span("supportaccess.Approve"))[sa.AttrKeyGrant])
	r2, err := o.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: time.Hour})
	require.NoError(t, err)
	_, err = o.m.Deny(ctx, r2.ID, support, "no")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Equal(t, "forbidden", attrs(o.span("supportaccess.Deny"))[sa.AttrKeyOutcome])

	o.clock.Advance(2 * time.Hour)
	n, err := o.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, "1", attrs(o.span("supportaccess.Sweep"))[sa.AttrKeyCount])
	require.EqualValues(t, 1, o.metrics()["supportaccess.grants.expired"])

	_, err = o.m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	o.span("supportaccess.Events")
	_, err = o.m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, "ok", attrs(o.span("supportaccess.VerifyAudit"))[sa.AttrKeyOutcome])
	for _, s := range o.spans.Ended() {
		for _, kv := range s.Attributes() {
			require.NotContains(t, kv.Value.String(), "@", "no principal ids in %s", s.Name())
			require.NotContains(t, kv.Value.String(), "secret", "no reason texts in %s", s.Name())
		}
	}
}

func TestTelemetryMiddlewareAnnotatesServerSpan(t *testing.T) {
	o := newOtelEnv(t)
	g := o.grant(sa.GrantInput{})
	resolve := func(r *http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: r.Header.Get("X-Tenant"), Principal: support.ID, SessionID: "s1"}, true
	}
	h := o.m.Middleware(resolve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	serve := func(tenant string) sdktrace.ReadOnlySpan {
		sctx, server := o.tp.Tracer("http").Start(ctx, "GET /settings")
		req := httptest.NewRequest(http.MethodGet, "/settings", nil).WithContext(sctx)
		req.Header.Set("X-Tenant", tenant)
		h.ServeHTTP(httptest.NewRecorder(), req)
		server.End()
		return o.span("GET /settings")
	}
	a := attrs(serve("acme"))
	require.Equal(t, "true", a[sa.AttrKeyImpersonated])
	require.Equal(t, "acme", a[sa.AttrKeyTenant])
	require.Equal(t, g.ID.String(), a[sa.AttrKeyGrant])
	require.Equal(t, "allowed", a[sa.AttrKeyDecision])
	d := attrs(serve("globex"))
	require.Equal(t, "true", d[sa.AttrKeyImpersonated])
	require.Equal(t, "denied:"+sa.DeniedAccess, d[sa.AttrKeyDecision])
	require.NotContains(t, d, sa.AttrKeyGrant)
	for _, s := range o.spans.Ended() {
		require.NotEqual(t, trace.SpanKindServer, s.SpanKind(), "the middleware starts no server span")
	}
}

// TestTelemetryStoredTenantRecordedOnlyWhenValid: a store keeps tenant IDs
// written before the identifier rules (or by hand): one with an invisible
// character, one that is not UTF-8 (which fails an OTLP exporter's whole
// batch). The operations that read the tenant from the store (Revoke,
// Extend, AddGrantee, Deny) and the active-grants gauge record it only
// when it passes validation, as the attribute keys' doc promises; the
// gauge counts such grants without the attribute (review75).
func TestTelemetryStoredTenantRecordedOnlyWhenValid(t *testing.T) {
	for name, tenant := range map[string]string{"invisible": "acme\u200b", "not UTF-8": "acme\xff"} {
		t.Run(name, func(t *testing.T) {
			o := newOtelEnv(t, sa.WithActiveGrantsGauge(true))
			now := o.now()
			legacy := func(grantees ...string) sa.Grant {
				g := sa.Grant{ID: uuid.New(), TenantID: tenant, Grantees: grantees, Scopes: []sa.Scope{sa.ScopeRead},
					GrantedBy: customer, CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}
				require.NoError(t, o.store.CreateGrant(ctx, g, nil)) // written directly, as before the rules
				return g
			}
			a, b := legacy(engineer.ID), legacy()
			o.grant(sa.GrantInput{TenantID: "globex"})
			r := sa.AccessRequest{ID: uuid.New(), TenantID: tenant, RequestedBy: support, Duration: time.Hour,
				Scopes: []sa.Scope{sa.ScopeRead}, Status: sa.RequestPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			require.NoError(t, o.store.CreateRequest(ctx, r, nil))

			got := o.metrics()
			require.EqualValues(t, 2, got["supportaccess.grants.active/"], "counted, without the tenant")
			require.EqualValues(t, 1, got["supportaccess.grants.active/globex"])

			_, err := o.m.Extend(ctx, a.ID, a.ExpiresAt.Add(time.Minute), customer)
			require.NoError(t, err)
			_, err = o.m.AddGrantee(ctx, a.ID, colleague, customer)
			require.NoError(t, err)
			_, err = o.m.Revoke(ctx, b.ID, customer, "")
			require.NoError(t, err)
			_, err = o.m.Deny(ctx, r.ID, customer, "")
			require.NoError(t, err)
			for _, name := range []string{"Extend", "AddGrantee", "Revoke", "Deny"} {
				s := o.span("supportaccess." + name)
				require.Equal(t, "ok", attrs(s)[sa.AttrKeyOutcome], name)
				require.NotContains(t, attrs(s), sa.AttrKeyTenant, name)
			}
		})
	}
}

// TestSpansOfGetRequestAndEmptyTicket: GetRequest has a span as Get does,
// and RevokeTicket's refusal of an empty ticket is under its span, as
// every other refusal is (review94: the first had none, the second
// returned before its span started).
func TestSpansOfGetRequestAndEmptyTicket(t *testing.T) {
	o := newOtelEnv(t)
	r := o.request(sa.RequestInput{})
	_, err := o.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	a := attrs(o.span("supportaccess.GetRequest"))
	require.Equal(t, "ok", a[sa.AttrKeyOutcome])
	require.Equal(t, r.ID.String(), a[sa.AttrKeyRequest])

	_, err = o.m.RevokeTicket(ctx, "acme", "", customer, "closed")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Equal(t, "invalid", attrs(o.span("supportaccess.RevokeTicket"))[sa.AttrKeyOutcome])
}
