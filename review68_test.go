package supportaccess_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// otel68 is an otelEnv on a given memstore that also keeps its
// MeterProvider (for a second Manager on the same SDK).
type otel68 struct {
	*otelEnv
	mp *sdkmetric.MeterProvider
}

func newOtel68(t *testing.T, st *memstore.Store, opts ...sa.Option) *otel68 {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = tp.Shutdown(ctx); _ = mp.Shutdown(ctx) })
	e := newEnvOn(t, st, append([]sa.Option{sa.WithTracerProvider(tp), sa.WithMeterProvider(mp)}, opts...)...)
	return &otel68{otelEnv: &otelEnv{env: e, spans: rec, tp: tp, reader: reader}, mp: mp}
}

// panickyFindStore is a host Store whose FindActiveGrant panics (a bug in
// a custom store, a nil map in a cache layer, ...).
type panickyFindStore struct{ *memstore.Store }

func (panickyFindStore) FindActiveGrant(context.Context, string, string, sa.Scope, time.Time) (sa.Grant, error) {
	panic("store bug")
}

// TestReview68GrantPanicIsCountedAsCreatedAndOK: Grant's deferred
// telemetry reads the named result err, which is still nil when host code
// it calls (here the Authorizer, before anything is stored) panics. The
// deferred func then adds 1 to supportaccess.grants.created and ends the
// span with outcome "ok" and status Unset — for a call that created no
// grant and did not return at all. Expected: a panicking operation is not
// counted as a created grant, and its span is not "ok" (a fault: outcome
// "error", status Error), so dashboards and alerts on faults see it. The
// same deferred pattern (err == nil on panic/Goexit) is used by Approve
// (also counting created), Revoke, Extend, AddGrantee, RequestAccess,
// Deny and the audit operations.
func TestReview68GrantPanicIsCountedAsCreatedAndOK(t *testing.T) {
	o := newOtel68(t, memstore.New(), sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error {
		panic("authorizer bug")
	}))
	require.PanicsWithValue(t, "authorizer bug", func() {
		_, _ = o.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	})
	gs, err := o.store.ListGrants(ctx, sa.ListFilter{}, o.now())
	require.NoError(t, err)
	require.Empty(t, gs, "no grant was created")

	require.Zero(t, o.metrics()["supportaccess.grants.created"], "no grant was created, none may be counted")
	s := o.span("supportaccess.Grant")
	require.NotEqual(t, sa.OutcomeOK, attrs(s)[sa.AttrKeyOutcome], "a panicking Grant is not an ok outcome")
	require.Equal(t, codes.Error, s.Status().Code, "a panic of host code is a fault")
}

// TestReview68CheckPanicLeavesSpanOpen: checkInstrumented starts the
// supportaccess.Check span (WithCheckSpans, inside a traced request) and
// ends it with a plain call after m.check returns — no defer. When the
// store panics (or calls runtime.Goexit), the span is never ended: it is
// never exported, so the request's trace lacks the failing check (and any
// store span parented to it dangles), and the check is not counted in
// supportaccess.checks although Check's doc says every call counts.
// Every other Manager operation ends its span in a defer; the
// instrumented path has its own frame, so a defer there costs the default
// (uninstrumented) path nothing. Expected: the span is ended (status
// Error) and the check counted as an error.
func TestReview68CheckPanicLeavesSpanOpen(t *testing.T) {
	o := newOtel68(t, memstore.New())
	m, err := sa.NewManager(panickyFindStore{o.store}, sa.WithNow(o.clock.Now), sa.WithTracerProvider(o.tp),
		sa.WithMeterProvider(o.mp), sa.WithCheckSpans(true))
	require.NoError(t, err)
	pctx, parent := o.tp.Tracer("test").Start(ctx, "GET /settings")
	require.PanicsWithValue(t, "store bug", func() { _, _ = m.Check(pctx, "acme", support.ID, sa.ScopeRead) })
	parent.End()

	var check sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == "supportaccess.Check" {
			check = s
		}
	}
	require.NotNil(t, check, "the supportaccess.Check span of a panicking check was never ended")
	require.Equal(t, codes.Error, check.Status().Code)
	require.EqualValues(t, 1, o.metrics()["supportaccess.checks/error"], "every Check call counts")
}

// TestReview68SweepPanicLosesCommittedExpiries: Sweep's doc says a panic
// of host code (here an extra auditor's, on grant.expired) "reaches the
// caller after every batch already committed has been handled" — the
// expiry below is committed in the store. But n, the count the deferred
// telemetry reads, is assigned only when m.sweep returns, so the
// committed expiry is never added to supportaccess.grants.expired (and the
// next Sweep does not claim it again: the counter stays short for good),
// and the Sweep span ends with outcome "ok", count 0, status Unset.
// Expected: expiries that committed are counted; the panicking Sweep's
// span is not "ok".
func TestReview68SweepPanicLosesCommittedExpiries(t *testing.T) {
	st := memstore.New()
	o := newOtel68(t, st, sa.WithAuditor(sa.MultiAuditor(st, panickyAuditor{})))
	o.grant(sa.GrantInput{Duration: time.Hour})
	o.clock.Advance(2 * time.Hour)
	require.PanicsWithValue(t, "auditor bug", func() { _, _ = o.m.Sweep(ctx) })
	require.Len(t, o.events(sa.EventGrantExpired), 1, "the expiry committed")

	n, err := o.m.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the committed expiry is not claimed again")

	require.EqualValues(t, 1, o.metrics()["supportaccess.grants.expired"], "the committed expiry is counted")
	var first sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == "supportaccess.Sweep" {
			first = s
			break
		}
	}
	require.NotNil(t, first)
	require.NotEqual(t, sa.OutcomeOK, attrs(first)[sa.AttrKeyOutcome], "a panicking Sweep is not an ok outcome")
}

// TestReview68SessionEndedResponseStaysAllowedOnSpan: the middleware
// annotates the request's server span with its decision ("allowed" or
// "denied:<code>"; WithCheckSpans and Check's doc point to it as what a
// trace shows instead of a Check span). When support access ends while
// the handler runs, a part guarded by RequireScope is refused with
// DeniedSessionEnded and the span says "denied:session_ended" (refuse →
// deny → annotateSpan). But when the handler simply writes its response
// after the end, the supportWriter replaces it with the very same 403
// DeniedSessionEnded denial (and, on an audit failure, a 503
// DeniedUnavailable one) without annotating: the span keeps "allowed"
// for a response that was a denial. Expected: the same denial gives the
// same decision on the span, whichever path wrote it.
func TestReview68SessionEndedResponseStaysAllowedOnSpan(t *testing.T) {
	o := newOtel68(t, memstore.New())
	g := o.grant(sa.GrantInput{})
	resolve := func(*http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: "acme", Principal: support.ID, SessionID: "s1"}, true
	}
	serve := func(name string, inner http.Handler) (sdktrace.ReadOnlySpan, int) {
		h := o.m.Middleware(resolve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := o.m.Revoke(ctx, g.ID, customer, "")
			require.NoError(t, err)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
				t.Error("the request did not end at the revocation")
			}
			inner.ServeHTTP(w, r)
		}))
		sctx, server := o.tp.Tracer("http").Start(ctx, name)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/settings", nil).WithContext(sctx))
		server.End()
		return o.span(name), rec.Code
	}
	write := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("settings")) })

	// Through RequireScope: refused and annotated as a denial.
	s, code := serve("GET /scoped", sa.RequireScope("settings:read")(write))
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "denied:"+sa.DeniedSessionEnded, attrs(s)[sa.AttrKeyDecision])

	// A plain write after the end: the same 403 session_ended denial.
	g = o.grant(sa.GrantInput{})
	s, code = serve("GET /plain", write)
	require.Equal(t, http.StatusForbidden, code, "the response was replaced by the session-ended denial")
	require.Equal(t, "denied:"+sa.DeniedSessionEnded, attrs(s)[sa.AttrKeyDecision],
		"the server span must not say allowed for a response that was a denial")
}

// badTextAuditor is a host auditor whose error text carries bytes that
// are not UTF-8 (a driver quoting a value in a legacy encoding, say).
type badTextAuditor struct{}

func (badTextAuditor) Record(context.Context, sa.Event) error {
	return errors.New("audit sink: write refused: \xff\xfe latin-1 path C:\\Protokoll\xe4")
}

// TestReview68FaultTextReachesSpansUnchecked: telemetry.go promises that
// only validated identifiers are recorded, "so no malformed input reaches
// the trace backend", and actorAttrs explains why: "invalid UTF-8 fails
// an exporter's whole batch" (OTLP's protobuf marshalling refuses the
// batch, dropping every span in it). Yet endSpan (and Check's span) put a
// fault's raw text into the span: SetStatus(codes.Error, err.Error()) and
// RecordError's exception.message. That text is host code's (an
// auditor's or a store's error) — the very text the library treats as
// caller text everywhere else (errorText cleans it, and clips it to
// MaxReasonLen, before it reaches the audit trail or a store, because one
// invalid byte made PostgreSQL and MySQL refuse whole writes). Expected:
// the status description and the exception event's attributes are valid
// UTF-8 (cleaned as errorText does), so one failing auditor does not take
// the whole span batch of the process with it.
func TestReview68FaultTextReachesSpansUnchecked(t *testing.T) {
	st := memstore.New()
	o := newOtel68(t, st, sa.WithAuditor(sa.MultiAuditor(st, badTextAuditor{})))
	_, err := o.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.Error(t, err)
	s := o.span("supportaccess.Grant")
	require.Equal(t, codes.Error, s.Status().Code, "an audit failure is a fault")
	require.True(t, utf8.ValidString(s.Status().Description), "span status description holds invalid UTF-8: %q", s.Status().Description)
	for _, ev := range s.Events() {
		for _, kv := range ev.Attributes {
			if kv.Value.Type() == attribute.STRING {
				require.True(t, utf8.ValidString(kv.Value.AsString()), "event %s: %s holds invalid UTF-8: %q", ev.Name, kv.Key, kv.Value.AsString())
			}
		}
	}
}
