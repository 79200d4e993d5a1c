package supportaccess_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Review 122: mutants of telemetry.go, session.go and change.go that the
// suite let survive.

// review122Store is a memstore whose UpdateGrant and ListGrants return the
// error set (a sentinel, unlike faultyStore's errBoom) instead of running.
type review122Store struct {
	*memstore.Store
	updateErr, listErr error
}

func (s *review122Store) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	if s.updateErr != nil {
		return sa.Grant{}, s.updateErr
	}
	return s.Store.UpdateGrant(ctx, id, change)
}

func (s *review122Store) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	if s.listErr != nil {
		return nil, s.listErr
	}
	return s.Store.ListGrants(ctx, f, now)
}

// Pins a fault span's "exception" event (Go type, text) and its status description (the same text).
func TestReview122FaultSpanRecordsTypeAndStatusDescription(t *testing.T) {
	o := newOtelEnv(t)
	g := o.grant(sa.GrantInput{})
	m, err := sa.NewManager(&faultyStore{Store: o.store, failUpdate: true}, sa.WithNow(o.clock.Now), sa.WithTracerProvider(o.tp))
	require.NoError(t, err)
	_, rerr := m.Revoke(ctx, g.ID, customer, "")
	require.ErrorIs(t, rerr, errBoom)

	s := o.span("supportaccess.Revoke")
	require.Equal(t, codes.Error, s.Status().Code)
	require.Equal(t, rerr.Error(), s.Status().Description)
	require.Len(t, s.Events(), 1)
	ev := s.Events()[0]
	require.Equal(t, "exception", ev.Name)
	got := map[attribute.Key]string{}
	for _, kv := range ev.Attributes {
		got[kv.Key] = kv.Value.String()
	}
	require.Equal(t, map[attribute.Key]string{
		"exception.type":    fmt.Sprintf("%T", rerr),
		"exception.message": rerr.Error(),
	}, got)
}

// Pins outcomeOf for every sentinel: an outcome with status Unset; only a non-sentinel error is a fault.
func TestReview122OperationOutcomeOfEachSentinel(t *testing.T) {
	o := newOtelEnv(t)
	g := o.grant(sa.GrantInput{})
	st := &review122Store{Store: o.store}
	m, err := sa.NewManager(st, sa.WithNow(o.clock.Now), sa.WithTracerProvider(o.tp))
	require.NoError(t, err)
	for sentinel, want := range map[error]string{
		sa.ErrNotFound:        sa.OutcomeNotFound,
		sa.ErrConflict:        sa.OutcomeInvalid,
		sa.ErrInvalidInput:    sa.OutcomeInvalid,
		sa.ErrForbidden:       sa.OutcomeForbidden,
		sa.ErrNoActiveGrant:   sa.OutcomeNoGrant,
		sa.ErrScopeNotGranted: sa.OutcomeScope,
		errBoom:               sa.OutcomeError,
	} {
		st.updateErr = fmt.Errorf("store: %w", sentinel)
		_, err := m.Revoke(ctx, g.ID, customer, "")
		require.ErrorIs(t, err, sentinel)
		s := o.span("supportaccess.Revoke")
		require.Equal(t, want, attrs(s)[sa.AttrKeyOutcome], "%v", sentinel)
		if want == sa.OutcomeError {
			require.Equal(t, codes.Error, s.Status().Code, "%v", sentinel)
		} else {
			require.Equal(t, codes.Unset, s.Status().Code, "%v is an outcome, not a fault", sentinel)
			require.Empty(t, s.Events(), "%v records no exception", sentinel)
		}
	}

	// The store's own answer for an unknown grant is not_found, not a fault.
	_, err = o.m.Revoke(ctx, uuid.New(), customer, "")
	require.ErrorIs(t, err, sa.ErrNotFound)
	s := o.span("supportaccess.Revoke")
	require.Equal(t, sa.OutcomeNotFound, attrs(s)[sa.AttrKeyOutcome])
	require.Equal(t, codes.Unset, s.Status().Code)
}

// Pins the spans' instrumentation scope name and version (metrics' are pinned by otelEnv.metrics).
func TestReview122SpanInstrumentationScope(t *testing.T) {
	o := newOtelEnv(t)
	o.grant(sa.GrantInput{})
	scope := o.span("supportaccess.Grant").InstrumentationScope()
	require.Equal(t, sa.ScopeName, scope.Name)
	require.Equal(t, sa.Version, scope.Version)
}

// Pins that a store error of the active-grants gauge reaches the error
// handler instead of passing unseen. (It was returned to the collector
// until review 161 found that an SDK reader then drops every metric of the
// collection; now the collection succeeds without the gauge.)
func TestReview122ActiveGaugeReportsStoreError(t *testing.T) {
	o := newOtel68(t, memstore.New())
	o.grant(sa.GrantInput{})
	st := &review122Store{Store: o.store, listErr: errBoom}
	var reported []error
	var mu sync.Mutex
	m, err := sa.NewManager(st, sa.WithNow(o.clock.Now), sa.WithMeterProvider(o.mp), sa.WithActiveGrantsGauge(true),
		sa.WithErrorHandler(func(_ context.Context, err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	var rm metricdata.ResourceMetrics
	require.NoError(t, o.reader.Collect(ctx, &rm))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, reported, 1)
	require.ErrorIs(t, reported[0], errBoom)
	require.ErrorContains(t, reported[0], "supportaccess.grants.active")
	for _, sm := range rm.ScopeMetrics {
		for _, x := range sm.Metrics {
			if x.Name == "supportaccess.grants.active" {
				require.Empty(t, x.Data.(metricdata.Gauge[int64]).DataPoints, "nothing observed while the store fails")
			}
		}
	}
}

// Pins that a nil context reads as not impersonated (no panic) in the three context functions.
func TestReview122NilContextIsNotImpersonated(t *testing.T) {
	var nilCtx context.Context
	_, ok := sa.SessionFromContext(nilCtx)
	require.False(t, ok)
	_, ok = sa.GrantFromContext(nilCtx)
	require.False(t, ok)
	require.NoError(t, sa.RecordChange(nilCtx, "sso", 1, 2))
}

// Pins that GrantFromContext returns a deep copy: a handler changing its slices changes no later answer.
func TestReview122GrantFromContextIsACopy(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Grantees: []string{mwGeneric}, Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeWrite}})
	var first, second sa.Grant
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, _ = sa.GrantFromContext(r.Context())
		first.Grantees[0] = mwEve
		first.Scopes[0] = "admin"
		second, _ = sa.GrantFromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	require.Equal(t, http.StatusNoContent, mwDo(h, mwReq(http.MethodGet, "/settings", "generic")).Code)
	require.Equal(t, g.ID, second.ID)
	require.Equal(t, []string{mwGeneric}, second.Grantees)
	require.Equal(t, []sa.Scope{sa.ScopeRead, sa.ScopeWrite}, second.Scopes)
}

// Pins that a GenericSupportUser pattern beginning with {tenant} is templated.
func TestReview122GenericSupportUserPlaceholderFirst(t *testing.T) {
	generic := sa.GenericSupportUser("{tenant}-support@vendor.example")
	require.True(t, generic(sa.Session{TenantID: "acme", Principal: "acme-support@vendor.example"}))
	require.False(t, generic(sa.Session{TenantID: "globex", Principal: "acme-support@vendor.example"}))
	require.False(t, generic(sa.Session{TenantID: "acme", Principal: "{tenant}-support@vendor.example"}))
}

// Pins RecordChange after the end: the request's own cause (grant revoked), without asking a failing store.
func TestReview122RecordChangeAfterEndReturnsTheCause(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var changeErr, cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "")
		require.NoError(t, err)
		cause = mwWaitEnd(r, 900*time.Millisecond) // this Manager ends it at once
		e.store.failFind.Store(true)
		changeErr = sa.RecordChange(r.Context(), "sso", false, true)
		e.store.failFind.Store(false)
	}))
	mwDo(h, mwReq(http.MethodPut, "/settings", "generic"))
	require.ErrorIs(t, cause, sa.ErrSessionEnded)
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded)
	require.ErrorIs(t, changeErr, cause)
	require.NotErrorIs(t, changeErr, errMWBoom)
	require.Contains(t, changeErr.Error(), "grant revoked")
	require.Empty(t, e.events(sa.EventSupportChange))
}

// Pins what: 200 bytes recorded; 201 bytes, LF, tab or CRLF refused with ErrInvalidInput, nothing written.
func TestReview122RecordChangeWhatBounds(t *testing.T) {
	long := strings.Repeat("w", 200)
	evs, err := mwRecordChange(t, long, 1, 2)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, long, evs[0].Attrs[sa.AttrWhat])
	for _, what := range []string{long + "w", "sso\nenforced", "sso\tenforced", "sso\r\nenforced"} {
		evs, err := mwRecordChange(t, what, 1, 2)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%q", what)
		require.Empty(t, evs, "%q", what)
	}
}

// Pins that a refused value is named in the error: before, or after.
func TestReview122RecordChangeErrorNamesTheValue(t *testing.T) {
	_, err := mwRecordChange(t, "sso", make(chan int), 2)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Contains(t, err.Error(), "before")
	require.NotContains(t, err.Error(), "after")
	_, err = mwRecordChange(t, "sso", 1, make(chan int))
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Contains(t, err.Error(), "after")
	require.NotContains(t, err.Error(), "before")
}

// Pins MaxChangeValueLen: exactly that many JSON bytes recorded, one more refused and nothing written.
func TestReview122RecordChangeValueLengthBoundary(t *testing.T) {
	fits := strings.Repeat("v", sa.MaxChangeValueLen-2) // plus the quotes
	evs, err := mwRecordChange(t, "blob", nil, fits)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Len(t, evs[0].After, sa.MaxChangeValueLen)

	evs, err = mwRecordChange(t, "blob", fits+"v", nil)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Contains(t, err.Error(), "before")
	require.Empty(t, evs)
}

// Pins that RecordChange checks and records although the client went away (cancellation ignored).
func TestReview122RecordChangeIgnoresClientCancellation(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var changeErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel() // the client went away
		<-r.Context().Done()
		changeErr = sa.RecordChange(r.Context(), "sso", false, true)
	}))
	mwDo(h, mwReq(http.MethodPut, "/settings", "generic").WithContext(cctx))
	require.NoError(t, changeErr)
	require.Len(t, e.events(sa.EventSupportChange), 1)
}

// Pins the surrogate-pair bounds: \udbff\udfff (U+10FFFF) is accepted, a lone \udfff refused.
func TestReview122RecordChangeHighestSurrogatePairAccepted(t *testing.T) {
	evs, err := mwRecordChange(t, "name", nil, json.RawMessage(`"\udbff\udfff"`))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	mwRequireChangeRefused(t, "name", nil, json.RawMessage(`"\udbff\udfffx\udfff"`))
}

// review122Nest is text encoded n times as a JSON string: JSON text held
// in a string, n levels deep.
func review122Nest(text string, n int) json.RawMessage {
	for range n {
		b, err := json.Marshal(text)
		if err != nil {
			panic(err)
		}
		text = string(b)
	}
	return json.RawMessage(text)
}

// Pins maxJSONTextDepth: JSON text nested 4 deep accepted, 5 deep refused; \ufffd nested 3 deep refused.
func TestReview122RecordChangeJSONTextDepth(t *testing.T) {
	evs, err := mwRecordChange(t, "doc", nil, review122Nest(`["x"]`, 4))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	mwRequireChangeRefused(t, "doc", nil, review122Nest(`["x"]`, 5))
	mwRequireChangeRefused(t, "doc", nil, review122Nest(`["\ufffd"]`, 3))
}

// Pins UseNumber: a 1e400 number beside a string with a backslash is recorded, not refused.
func TestReview122RecordChangeHugeNumberBesideBackslash(t *testing.T) {
	v := map[string]any{"seats": json.Number("1e400"), "path": `C:\acme`}
	evs, err := mwRecordChange(t, "company", nil, v)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, `{"path":"C:\\acme","seats":1e400}`, string(evs[0].After))
}
