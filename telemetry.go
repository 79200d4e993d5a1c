package supportaccess

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of the library's spans and metrics
// (the module path).
const ScopeName = "github.com/supportaccess/supportaccess"

// Version is the library's version, reported as the instrumentation
// version.
const Version = "0.1.0"

// Attribute keys of spans and metrics. No reason texts and, unless
// WithPrincipalAttributes is set, no principal or actor IDs are recorded
// (they are often e-mail addresses). Identifiers are recorded only when
// they pass the library's validation (an actor kind that does not is
// "invalid"), so no malformed input reaches the trace backend.
const (
	AttrKeyTenant       = attribute.Key("supportaccess.tenant_id")
	AttrKeyGrant        = attribute.Key("supportaccess.grant_id")
	AttrKeyRequest      = attribute.Key("supportaccess.request_id")
	AttrKeyScope        = attribute.Key("supportaccess.scope")
	AttrKeyOutcome      = attribute.Key("supportaccess.outcome")
	AttrKeyActorKind    = attribute.Key("supportaccess.actor.kind")
	AttrKeyActorID      = attribute.Key("supportaccess.actor.id")
	AttrKeyPrincipal    = attribute.Key("supportaccess.principal")
	AttrKeyImpersonated = attribute.Key("supportaccess.impersonated")
	AttrKeyDecision     = attribute.Key("supportaccess.decision")
	AttrKeyCount        = attribute.Key("supportaccess.count")
)

// Outcomes of operations, the values of AttrKeyOutcome and of the
// "outcome" attribute of supportaccess.checks.
const (
	OutcomeAllowed   = "allowed"   // Check allowed
	OutcomeNoGrant   = "no_grant"  // Check denied: no active grant covers the principal
	OutcomeScope     = "scope"     // Check denied: scope not granted
	OutcomeError     = "error"     // a fault (store, audit, context); status Error
	OutcomeOK        = "ok"        // a change succeeded
	OutcomeForbidden = "forbidden" // refused by authorisation or policy
	OutcomeInvalid   = "invalid"   // bad input or a state that does not allow it
	OutcomeNotFound  = "not_found"
)

// WithPrincipalAttributes records principal and actor IDs on spans
// (supportaccess.principal, supportaccess.actor.id). Default: off, since
// they are usually e-mail addresses.
func WithPrincipalAttributes(on bool) Option {
	return optionFunc(func(m *Manager) { m.principalAttrs = on })
}

// WithCheckSpans makes Check start a child span supportaccess.Check when
// it runs inside a recording span (a traced request). Default: off — Check
// is the hot path and the middleware already annotates the request's span
// with the tenant, grant and decision; checks are always counted in the
// supportaccess.checks and supportaccess.check.duration metrics.
func WithCheckSpans(on bool) Option {
	return optionFunc(func(m *Manager) { m.checkSpans = on })
}

// WithActiveGrantsGauge enables the observable gauge
// supportaccess.grants.active with one series per tenant, counted from the
// store on each collection (one ListGrants per collection); grants of
// tenant IDs that fail validation (stored before the identifier rules)
// are counted in one series without the tenant attribute. A tenant without
// an active grant has no series (not a 0). When the store fails, the
// collection observes nothing for the gauge and the error goes to the
// error handler (WithErrorHandler); the other metrics are still exported.
// Default: off, because its cardinality is the number of tenants. The
// meter provider holds the gauge's callback until Manager.Close.
//
// With OpenTelemetry's global provider (no WithMeterProvider), call
// otel.SetMeterProvider before NewManager, or pass WithMeterProvider: a
// Manager made before it registers its callback on the global placeholder,
// and in otel-go (v1.47) a Close that takes such a callback off while
// SetMeterProvider runs deadlocks both calls, leaving the global provider
// locked.
func WithActiveGrantsGauge(on bool) Option {
	return optionFunc(func(m *Manager) { m.activeGauge = on })
}

// telemetry holds the instruments, created once per Manager.
type telemetry struct {
	tracer   trace.Tracer
	checks   metric.Int64Counter
	checkDur metric.Float64Histogram
	created  metric.Int64Counter
	revoked  metric.Int64Counter
	expired  metric.Int64Counter
	active   metric.Int64ObservableGauge
	// checkOpts are the precomputed attribute options per check outcome
	// (indexed by checkOutcome), so recording allocates nothing.
	checkOpts [5]metric.MeasurementOption
	reg       metric.Registration
}

// checkBuckets are histogram bounds in seconds, from 10 µs to 1 s: memstore
// checks take well under a microsecond, SQL checks a few hundred.
var checkBuckets = []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

func (m *Manager) initTelemetry() {
	tp, mp := m.tracerProvider, m.meterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t := &m.tel
	t.tracer = orNoop(tp.Tracer(ScopeName, trace.WithInstrumentationVersion(Version)), trace.Tracer(tracenoop.Tracer{}))
	meter := orNoop(mp.Meter(ScopeName, metric.WithInstrumentationVersion(Version)), metric.Meter(noop.Meter{}))
	var err error
	handle := func(e error) {
		if e != nil {
			err = errors.Join(err, e)
		}
	}
	var e error
	t.checks, e = meter.Int64Counter("supportaccess.checks", metric.WithDescription("Access checks by outcome."), metric.WithUnit("{check}"))
	handle(e)
	t.checkDur, e = meter.Float64Histogram("supportaccess.check.duration", metric.WithDescription("Duration of access checks."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(checkBuckets...))
	handle(e)
	t.created, e = meter.Int64Counter("supportaccess.grants.created", metric.WithDescription("Grants created."), metric.WithUnit("{grant}"))
	handle(e)
	t.revoked, e = meter.Int64Counter("supportaccess.grants.revoked", metric.WithDescription("Grants revoked."), metric.WithUnit("{grant}"))
	handle(e)
	t.expired, e = meter.Int64Counter("supportaccess.grants.expired", metric.WithDescription("Grant expiries recorded by Sweep."), metric.WithUnit("{grant}"))
	handle(e)
	for i, o := range checkOutcomes {
		t.checkOpts[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o)))
	}
	if m.activeGauge {
		t.active, e = meter.Int64ObservableGauge("supportaccess.grants.active", metric.WithDescription("Active grants per tenant."), metric.WithUnit("{grant}"))
		handle(e)
		if e == nil && !isNil(t.active) {
			t.reg, e = meter.RegisterCallback(m.observeActive, t.active)
			handle(e)
		}
	}
	// A provider may return a nil instrument with its error (the API
	// promises nothing else): a nil one would panic in Grant after its
	// commit and in every Check, so it is replaced by a no-op one.
	t.checks = orNoop(t.checks, metric.Int64Counter(noop.Int64Counter{}))
	t.checkDur = orNoop(t.checkDur, metric.Float64Histogram(noop.Float64Histogram{}))
	t.created = orNoop(t.created, metric.Int64Counter(noop.Int64Counter{}))
	t.revoked = orNoop(t.revoked, metric.Int64Counter(noop.Int64Counter{}))
	t.expired = orNoop(t.expired, metric.Int64Counter(noop.Int64Counter{}))
	if err != nil {
		otel.Handle(err)
	}
}

// orNoop returns x, or fallback when x is nil (a nil interface, or one
// holding a nil pointer).
func orNoop[T any](x, fallback T) T {
	if isNil(x) {
		return fallback
	}
	return x
}

// setTenant sets AttrKeyTenant on span when tenantID passes validation.
// A tenant ID read from the store need not: a store keeps what was written
// before the identifier rules, or by hand (see the attribute keys' doc).
func setTenant(span trace.Span, tenantID string) {
	if span.IsRecording() && validateTenant("", tenantID) == nil {
		span.SetAttributes(AttrKeyTenant.String(tenantID))
	}
}

// observeActive reports the number of active grants per tenant; grants of
// tenant IDs that fail validation are counted together, without
// AttrKeyTenant. A store failure goes to the error handler and observes
// nothing: returned to the SDK, it would make a reader drop every metric of
// the collection (the checks of the outage with them).
func (m *Manager) observeActive(ctx context.Context, o metric.Observer) error {
	if m.runs.stopped() {
		return nil // Close could not take the callback off (or has not yet)
	}
	gs, err := m.store.ListGrants(ctx, ListFilter{Statuses: []Status{StatusActive}}, m.now())
	if err != nil {
		m.reportError(ctx, fmt.Errorf("supportaccess.grants.active: %w", err))
		return nil
	}
	counts := map[string]int64{} // "" for the tenant IDs not recorded
	for _, g := range gs {
		tenant := g.TenantID
		if validateTenant("", tenant) != nil {
			tenant = ""
		}
		counts[tenant]++
	}
	for tenant, n := range counts {
		if tenant == "" {
			o.ObserveInt64(m.tel.active, n)
			continue
		}
		o.ObserveInt64(m.tel.active, n, metric.WithAttributes(AttrKeyTenant.String(tenant)))
	}
	return nil
}

// checkOutcomes are the outcomes of Check, indexed by checkOutcome.
var checkOutcomes = [5]string{OutcomeAllowed, OutcomeNoGrant, OutcomeScope, OutcomeInvalid, OutcomeError}

// checkFault is the index in checkOutcomes of a fault (status Error).
const checkFault = 4

// checkOutcome returns the index in checkOutcomes of err's outcome.
func checkOutcome(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNoActiveGrant):
		return 1
	case errors.Is(err, ErrScopeNotGranted):
		return 2
	case errors.Is(err, ErrInvalidInput):
		return 3 // malformed arguments: refused, not a fault
	default:
		return checkFault
	}
}

// startSpan starts the span of a Manager operation.
func (m *Manager) startSpan(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return m.tel.tracer.Start(ctx, "supportaccess."+op, trace.WithAttributes(attrs...))
}

// actorAttrs returns the span attributes describing by. They are made
// before the operation validates by, so only what passes validation is
// recorded (as Check does with tenants and principals): an actor kind
// that is none of the three is "invalid", an ID that would be refused is
// left out — no unchecked bytes (invalid UTF-8 fails an exporter's whole
// batch) or unbounded lengths reach the trace backend.
func (m *Manager) actorAttrs(by Actor) []attribute.KeyValue {
	kind := string(by.Kind)
	if !by.Kind.Valid() {
		kind = "invalid"
	}
	attrs := []attribute.KeyValue{AttrKeyActorKind.String(kind)}
	if m.principalAttrs && checkText("", by.ID, MaxPrincipalLen, true, identity) == nil {
		attrs = append(attrs, AttrKeyActorID.String(by.ID))
	}
	return attrs
}

// outcomeOf classifies an operation's error.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrNoActiveGrant):
		return OutcomeNoGrant
	case errors.Is(err, ErrScopeNotGranted):
		return OutcomeScope
	case errors.Is(err, ErrForbidden):
		return OutcomeForbidden
	case errors.Is(err, ErrInvalidInput), errors.Is(err, ErrConflict):
		return OutcomeInvalid
	case errors.Is(err, ErrNotFound):
		return OutcomeNotFound
	default:
		return OutcomeError
	}
}

// errNotReturned is the error an operation's deferred telemetry sees when
// the operation did not return: a panic or runtime.Goexit in host code (an
// Authorizer, an auditor, a store, a Notifier) went through it. So its
// span ends with status Error (outcome "error") and nothing is counted as
// done, instead of "ok". endOp recovers a panic, sets the error to
// errNotReturned and raises the panic again; for runtime.Goexit, which
// cannot be recovered, each operation sets its named error result to
// errNotReturned first, and every return overwrites it.
var errNotReturned = errors.New("supportaccess: the operation did not return (a panic or runtime.Goexit in host code went through it)")

// endOp is deferred by every operation (defer endOp(span, &err, done)):
// it recovers a panic that went through the operation and sets *err to
// errNotReturned, calls done (if not nil: the operation's own telemetry,
// which reads the final error), ends span with *err, and then raises the
// panic again — its traceback keeps where it happened. recover works only
// in the deferred function itself, hence one function for all of it.
func endOp(span trace.Span, err *error, done func()) {
	if p := recover(); p != nil {
		*err = errNotReturned
		defer panic(p)
	}
	if done != nil {
		done()
	}
	endSpan(span, *err)
}

// endSpan records the outcome of an operation on span and ends it. Only
// faults set status Error; denials and refusals are outcomes.
func endSpan(span trace.Span, err error) {
	if span.IsRecording() {
		o := outcomeOf(err)
		span.SetAttributes(AttrKeyOutcome.String(o))
		if o == OutcomeError {
			recordFault(span, err)
		}
	}
	span.End()
}

// recordFault marks span as failed by err, as span.RecordError and
// SetStatus would, with err's text cleaned as the audit trail cleans host
// error text (errorText: valid UTF-8, no control characters, clipped) —
// host code writes it, and invalid UTF-8 makes an exporter drop its batch.
func recordFault(span trace.Span, err error) {
	msg := errorText(err)
	span.AddEvent("exception", trace.WithAttributes(
		attribute.String("exception.type", fmt.Sprintf("%T", err)),
		attribute.String("exception.message", msg)))
	span.SetStatus(codes.Error, msg)
}
