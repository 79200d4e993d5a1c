package supportaccess_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Close takes the active-grants gauge's callback off the meter provider:
// a collection after it neither reports the gauge nor reads the store,
// and the Manager goes on working.
func TestManagerCloseUnregistersTheGauge(t *testing.T) {
	o := newOtelEnv(t, sa.WithActiveGrantsGauge(true))
	o.grant(sa.GrantInput{TenantID: "globex"})
	require.EqualValues(t, 1, o.metrics()["supportaccess.grants.active/globex"])

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { require.NoError(t, o.m.Close()) })
	}
	wg.Wait()
	got := o.metrics()
	require.NotContains(t, got, "supportaccess.grants.active/globex")
	require.NoError(t, o.m.Close(), "a later Close is a no-op")

	o.grant(sa.GrantInput{TenantID: "globex"})
	_, err := o.m.Check(ctx, "globex", support.ID, sa.ScopeRead)
	require.NoError(t, err, "Close does not stop the Manager")
	got = o.metrics()
	require.EqualValues(t, 2, got["supportaccess.grants.created"])
	require.EqualValues(t, 1, got["supportaccess.checks/allowed"])
	require.NotContains(t, got, "supportaccess.grants.active/globex", "and registers nothing again")
}

// A Manager without the gauge has nothing to release.
func TestManagerCloseWithoutGauge(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.m.Close())
	e.grant(sa.GrantInput{})
}

// refusingMeterProvider hands out meters whose callback registrations
// cannot be undone.
type refusingMeterProvider struct{ noop.MeterProvider }

func (refusingMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return refusingMeter{}
}

type refusingMeter struct{ noop.Meter }

func (refusingMeter) RegisterCallback(metric.Callback, ...metric.Observable) (metric.Registration, error) {
	return refusingRegistration{}, nil
}

type refusingRegistration struct{ noop.Registration }

var errUnregister = errors.New("provider refuses")

func (refusingRegistration) Unregister() error { return errUnregister }

// Close returns the provider's refusal, wrapped, on every call.
func TestManagerCloseReportsUnregisterError(t *testing.T) {
	m, err := sa.NewManager(memstore.New(), sa.WithMeterProvider(refusingMeterProvider{}), sa.WithActiveGrantsGauge(true))
	require.NoError(t, err)
	err = m.Close()
	require.ErrorIs(t, err, errUnregister)
	require.ErrorContains(t, err, "active-grants gauge")
	require.ErrorIs(t, m.Close(), errUnregister)
}

// Now is the Manager's clock as Check and Sweep read it: UTC, whole
// microseconds, no monotonic reading.
func TestManagerNow(t *testing.T) {
	e := newEnv(t)
	at := time.Date(2031, 5, 6, 7, 8, 9, 123_456_789, time.FixedZone("CEST", 2*3600))
	e.clock.Set(at)
	now := e.m.Now()
	require.Equal(t, time.UTC, now.Location())
	require.True(t, now.Equal(at.Truncate(time.Microsecond)), "got %s", now)
	require.Equal(t, now, now.Round(0), "no monotonic reading")

	g := e.grant(sa.GrantInput{Duration: time.Hour})
	require.Equal(t, now, g.CreatedAt, "a grant is stamped with the same reading")
	e.clock.Set(g.ExpiresAt.Add(-time.Nanosecond))
	require.Equal(t, sa.StatusActive, g.Status(e.m.Now()))
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err, "the Manager's status and Check agree")
	e.clock.Set(g.ExpiresAt)
	require.Equal(t, sa.StatusExpired, g.Status(e.m.Now()))
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
}

// panickingMeterProvider hands out meters whose callback registrations
// panic when undone.
type panickingMeterProvider struct{ noop.MeterProvider }

func (panickingMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return panickingMeter{}
}

type panickingMeter struct{ noop.Meter }

func (panickingMeter) RegisterCallback(metric.Callback, ...metric.Observable) (metric.Registration, error) {
	return panickingRegistration{}, nil
}

type panickingRegistration struct{ noop.Registration }

func (panickingRegistration) Unregister() error { panic("provider bug") }

// A provider's panic goes to the first Close's caller; a later Close does
// not report success for a callback still registered.
func TestManagerCloseAfterUnregisterPanicked(t *testing.T) {
	m, err := sa.NewManager(memstore.New(), sa.WithMeterProvider(panickingMeterProvider{}), sa.WithActiveGrantsGauge(true))
	require.NoError(t, err)
	require.PanicsWithValue(t, "provider bug", func() { _ = m.Close() })
	require.ErrorContains(t, m.Close(), "panicked")
}

// signalClaims is a memstore that tells entered (without waiting) when a
// ClaimTransitions starts.
type signalClaims struct {
	*memstore.Store
	entered chan struct{}
}

func (s signalClaims) signal() {
	select {
	case s.entered <- struct{}{}:
	default:
	}
}

func (s signalClaims) ClaimTransitions(ctx context.Context, tr sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	s.signal()
	return s.Store.ClaimTransitions(ctx, tr, now, limit, events)
}

// blockingClaims is a signalClaims whose ClaimTransitions, once it told
// entered, waits for its context to end, and sets returned as it returns.
type blockingClaims struct {
	signalClaims
	returned *atomic.Bool
}

func (b blockingClaims) ClaimTransitions(ctx context.Context, _ sa.Transition, _ time.Time, _ int, _ func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	b.signal()
	<-ctx.Done()
	b.returned.Store(true)
	return nil, ctx.Err()
}

// Close stops every RunExpiry loop — one waiting for its next tick, one in
// the middle of a Sweep, whose context it cancels — and returns only once
// they have returned (ErrClosed); a RunExpiry after Close returns
// ErrClosed at once. No goroutine is left.
func TestManagerCloseStopsRunExpiry(t *testing.T) {
	defer goleak.VerifyNone(t)
	st := blockingClaims{signalClaims: signalClaims{Store: memstore.New(), entered: make(chan struct{}, 1)}, returned: new(atomic.Bool)}
	m, err := sa.NewManager(st, sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)

	// The idle loop must be running before its Close (a loop started
	// after Close is refused at once, which would prove nothing): its
	// first Sweep's claim says it is.
	idleStore := signalClaims{Store: memstore.New(), entered: make(chan struct{}, 1)}
	idleM, err := sa.NewManager(idleStore)
	require.NoError(t, err)
	idleDone := make(chan error, 1)
	go func() { idleDone <- idleM.RunExpiry(ctx, time.Hour) }()
	select {
	case <-idleStore.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle loop's first Sweep did not start")
	}

	busyDone := make(chan error, 1)
	go func() { busyDone <- m.RunExpiry(ctx, time.Hour) }()
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first Sweep did not start")
	}

	// Close waits for the loops: the Sweep in progress has returned when
	// Close does. (RunExpiry's own return to the goroutine that called it
	// may come a moment after Close's, so that one is waited for.)
	require.NoError(t, m.Close())
	require.True(t, st.returned.Load(), "Close returned while its RunExpiry's Sweep was still running")
	select {
	case err := <-busyDone:
		require.ErrorIs(t, err, sa.ErrClosed, "the Sweep in progress was cancelled and the loop returned")
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not return after Close")
	}
	select {
	case <-idleDone:
		t.Fatal("Close of one Manager stopped another's loop")
	default:
	}

	require.NoError(t, idleM.Close())
	select {
	case err := <-idleDone:
		require.ErrorIs(t, err, sa.ErrClosed, "a loop waiting for its tick")
	case <-time.After(10 * time.Second):
		t.Fatal("the idle loop did not return after Close")
	}

	require.ErrorIs(t, m.RunExpiry(ctx, time.Hour), sa.ErrClosed, "refused after Close")
	_, err = idleM.Sweep(ctx)
	require.NoError(t, err, "Sweep itself keeps working")
}

// A loop whose own context ends returns that context's error, as before
// Close existed, and Close has nothing left to wait for.
func TestRunExpiryContextBeforeClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newEnv(t)
	c, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.RunExpiry(c, time.Hour) }()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.NoError(t, e.m.Close())
}
