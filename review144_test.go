package supportaccess_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 144: the Manager's lifecycle — NewManager's options (nil, typed
// nil, duplicated, in either order), Close against everything that runs
// beside it, RunExpiry's extremes, WithSweepConcurrency's extremes, and
// WithNow / WithErrorHandler misbehaving.

// r144Wait waits (real time, bounded) for ch to deliver, failing t with
// what otherwise.
func r144Wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// r144PtrNotifier is a Notifier with a pointer receiver that reads its
// receiver: a (*r144PtrNotifier)(nil) passed on (a constructor's error
// dropped) panics when called.
type r144PtrNotifier struct{ calls int }

func (n *r144PtrNotifier) Notify(context.Context, sa.Notification) error {
	n.calls++
	return nil
}

// TestReview144NilAndTypedNilOptions: "A nil Option is ignored";
// WithAuditor/WithAuditLog: NewManager returns ErrInvalidInput "when
// store, an auditor (WithAuditor) or the audit log (WithAuditLog) is a nil
// pointer"; WithTracerProvider/WithMeterProvider: "Nil, or a nil pointer,
// is ignored"; WithNow, WithErrorHandler, WithAuthorizer, OnExpire:
// nil is ignored; "a Manager never runs without an audit trail" — so an
// empty MultiAuditor, the only auditor, is refused.
func TestReview144NilAndTypedNilOptions(t *testing.T) {
	st := memstore.New()
	var nilStore *memstore.Store

	t.Run("ignored", func(t *testing.T) {
		var nilTP *sdktrace.TracerProvider
		m, err := sa.NewManager(st, nil, sa.WithAuditor(nil), sa.WithAuditLog(nil), sa.WithNow(nil),
			sa.WithErrorHandler(nil), sa.WithAuthorizer(nil), sa.OnExpire(nil), sa.WithNotifier(nil),
			sa.WithTracerProvider(nilTP), sa.WithTracerProvider(nil), sa.WithMeterProvider(nil), nil)
		require.NoError(t, err)
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		require.NoError(t, err)
		_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), g.CreatedAt, time.Minute, "the default clock")
		_, err = m.Sweep(ctx)
		require.NoError(t, err)
		require.NoError(t, m.Close())
	})

	for name, opt := range map[string]sa.Option{
		"typed-nil auditor":                    sa.WithAuditor(nilStore),
		"typed-nil auditor in a MultiAuditor":  sa.WithAuditor(sa.MultiAuditor(st, nilStore)),
		"typed-nil audit log":                  sa.WithAuditLog(nilStore),
		"empty MultiAuditor, the only auditor": sa.WithAuditor(sa.MultiAuditor()),
		"MultiAuditor of nils":                 sa.WithAuditor(sa.MultiAuditor(nil, nil)),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := sa.NewManager(st, opt)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Nil(t, m)
		})
	}
	_, err := sa.NewManager(nilStore)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a typed-nil store")
}

// TestReview144TypedNilNotifier: WithNotifier "Nil is ignored". A nil
// *T Notifier (a constructor's error dropped), like the nil pointers the
// other options ignore or refuse, must not turn every change into a
// recorded notify.failed: NewManager ignores or refuses it.
func TestReview144TypedNilNotifier(t *testing.T) {
	var nilPtr *r144PtrNotifier
	for name, n := range map[string]sa.Notifier{"nil pointer": nilPtr, "nil NotifierFunc": sa.NotifierFunc(nil)} {
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			errs := &mwErrs{}
			m, err := sa.NewManager(st, sa.WithNotifier(n), sa.WithErrorHandler(errs.handle))
			if err != nil {
				require.ErrorIs(t, err, sa.ErrInvalidInput, "refused, as a nil-pointer auditor is")
				return
			}
			_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
			require.NoError(t, err)
			evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventNotifyFailed}})
			require.NoError(t, err)
			require.Empty(t, evs, "a nil Notifier is ignored, not called")
			require.Empty(t, errs.all())
		})
	}
}

// TestReview144OptionOrderAndDuplicates: options apply in order (the last
// of a kind wins), but an invalid value of WithSweepConcurrency,
// WithExpireHookLease or WithExpireHookRetry is refused by NewManager
// ("NewManager returns an ErrInvalidInput error for n < 1") wherever it
// stands; a later valid value does not launder it.
func TestReview144OptionOrderAndDuplicates(t *testing.T) {
	bad := sa.DefaultPolicy()
	bad.MaxDuration = -time.Hour
	for name, opts := range map[string][]sa.Option{
		"bad concurrency, then good":   {sa.WithSweepConcurrency(0), sa.WithSweepConcurrency(2)},
		"good concurrency, then bad":   {sa.WithSweepConcurrency(2), sa.WithSweepConcurrency(-1)},
		"bad retry, then a good lease": {sa.WithExpireHookRetry(0, 0), sa.WithExpireHookLease(time.Minute)},
		"bad lease, then good retry":   {sa.WithExpireHookLease(time.Millisecond), sa.WithExpireHookRetry(time.Second, time.Minute)},
		"good policy, then bad":        {sa.WithPolicy(sa.DefaultPolicy()), sa.WithPolicy(bad)},
		"concurrency MinInt":           {sa.WithSweepConcurrency(math.MinInt)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sa.NewManager(memstore.New(), opts...)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		})
	}

	t.Run("bad policy, then good", func(t *testing.T) {
		_, err := sa.NewManager(memstore.New(), sa.WithPolicy(bad), sa.WithPolicy(sa.DefaultPolicy()))
		require.NoError(t, err, "the last WithPolicy is the policy")
	})

	t.Run("failing auditor replaced by the store", func(t *testing.T) {
		st := memstore.New()
		m, err := sa.NewManager(st, sa.WithAuditor(failingAuditor{}), sa.WithAuditor(st))
		require.NoError(t, err)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.NoError(t, err, "the last WithAuditor wins")
	})

	t.Run("store replaced by a failing auditor", func(t *testing.T) {
		st := memstore.New()
		m, err := sa.NewManager(st, sa.WithAuditor(st), sa.WithAuditor(failingAuditor{}))
		require.NoError(t, err)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.ErrorIs(t, err, errBoom, "fails closed on the only auditor")
		gs, err := st.ListGrants(ctx, sa.ListFilter{}, time.Now())
		require.NoError(t, err)
		require.Empty(t, gs)
		_, err = m.Events(ctx, sa.AuditFilter{})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "the store gets no events: no default log that reads as empty")
	})

	t.Run("OnExpire twice runs twice, in order", func(t *testing.T) {
		var order []string
		h := func(s string) sa.ExpireHook {
			return func(context.Context, sa.Grant) error { order = append(order, s); return nil }
		}
		e := newEnv(t, sa.OnExpire(h("a")), sa.OnExpire(h("b")), sa.OnExpire(h("a")))
		e.grant(sa.GrantInput{Duration: time.Hour})
		e.clock.Advance(time.Hour)
		require.Equal(t, 1, e.sweep())
		require.Equal(t, []string{"a", "b", "a"}, order)
	})
}

// TestReview144HugeSweepConcurrency: "Exactly-once does not depend on it
// ... all of which have returned when Sweep returns". Far more claimers
// than there are grants (and batches; the most WithSweepConcurrency
// takes, which review 144 tried at 300 before there was a maximum) still
// record each transition once and leave no goroutine.
func TestReview144HugeSweepConcurrency(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var claims atomic.Int64
	st := &r144CountingClaims{Store: memstore.New(), n: &claims}
	clock := storetest.NewClock(storetest.Epoch)
	var hooked sync.Map
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithSweepConcurrency(sa.MaxSweepConcurrency),
		sa.OnExpire(func(_ context.Context, g sa.Grant) error {
			_, dup := hooked.LoadOrStore(g.ID, true)
			if dup {
				return errors.New("hook ran twice")
			}
			return nil
		}))
	require.NoError(t, err)
	for i := range 5 {
		_, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, TicketRef: string(rune('a' + i))})
		require.NoError(t, err)
	}
	clock.Advance(time.Hour)
	var wg sync.WaitGroup
	var total atomic.Int64
	for range 3 {
		wg.Go(func() {
			n, err := m.Sweep(ctx)
			require.NoError(t, err)
			total.Add(int64(n))
		})
	}
	wg.Wait()
	require.EqualValues(t, 5, total.Load())
	evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExpired}})
	require.NoError(t, err)
	require.Len(t, evs, 5)
	evs, err = st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed}})
	require.NoError(t, err)
	require.Empty(t, evs)
	// The cost WithSweepConcurrency documents: each claimer claims at
	// least once per phase, so a Sweep with nothing due makes n claims
	// of starts (those of expiries, with hooks, are ClaimExpirations,
	// not counted here).
	claims.Store(0)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(sa.MaxSweepConcurrency), claims.Load())
}

// r144CountingClaims counts ClaimTransitions calls.
type r144CountingClaims struct {
	*memstore.Store
	n *atomic.Int64
}

func (s *r144CountingClaims) ClaimTransitions(ctx context.Context, tr sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	s.n.Add(1)
	return s.Store.ClaimTransitions(ctx, tr, now, limit, events)
}

// TestReview144RunExpiryIntervalExtremes: "RunExpiry runs Sweep at once
// and then every interval"; the longest interval must not wrap to a
// negative wait nor delay the first Sweep, the shortest must not keep
// Close from stopping the loop; both return ErrClosed.
func TestReview144RunExpiryIntervalExtremes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, d := range []time.Duration{time.Nanosecond, 9, 10, math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 / 10 * 9} {
		st := signalClaims{Store: memstore.New(), entered: make(chan struct{}, 1)}
		m, err := sa.NewManager(st)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- m.RunExpiry(ctx, d) }()
		r144Wait(t, st.entered, "the first Sweep")
		require.NoError(t, m.Close())
		require.ErrorIs(t, r144Wait(t, done, "RunExpiry to return"), sa.ErrClosed, "interval %d", d)
	}
}

// TestReview144RunExpiryPanicReleasesClose: a Sweep's panic (here the
// error handler's, host code) leaves RunExpiry ("A panic in any of them
// (host code) reaches the caller"). The loop must not stay registered:
// Close returns at once, and a new loop may start before Close.
func TestReview144RunExpiryPanicReleasesClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var panics atomic.Int32
	fs := &failingClaims{Store: memstore.New()}
	m, err := sa.NewManager(fs, sa.WithAuditor(fs.Store.(*memstore.Store)), sa.WithErrorHandler(func(context.Context, error) {
		panics.Add(1)
		panic("handler bug")
	}))
	require.NoError(t, err)
	run := func() (p any, err error) {
		defer func() { p = recover() }()
		return nil, m.RunExpiry(ctx, time.Hour)
	}
	type result struct {
		p   any
		err error
	}
	res := make(chan result, 1)
	go func() { p, err := run(); res <- result{p, err} }()
	r := r144Wait(t, res, "RunExpiry to panic")
	require.Equal(t, "handler bug", r.p)

	// The Manager is not closed: a new loop runs (and panics the same way).
	go func() { p, err := run(); res <- result{p, err} }()
	r = r144Wait(t, res, "the second RunExpiry")
	require.Equal(t, "handler bug", r.p)
	require.EqualValues(t, 2, panics.Load())

	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	require.NoError(t, r144Wait(t, closed, "Close after loops that panicked"))
	require.ErrorIs(t, m.RunExpiry(ctx, time.Hour), sa.ErrClosed)
}

// TestReview144CloseUnblocksHandlerWaitingOnContext: Close "stops every
// RunExpiry loop ... and waits for them to return". An error handler
// that waits on the context it is given (a host forwarding errors to a
// channel with a select on ctx.Done) is released by Close: the loop's
// context is the one cancelled.
func TestReview144CloseUnblocksHandlerWaitingOnContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	entered := make(chan struct{}, 1)
	fs := &failingClaims{Store: memstore.New()}
	m, err := sa.NewManager(fs, sa.WithAuditor(fs.Store.(*memstore.Store)), sa.WithErrorHandler(func(ctx context.Context, err error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
	}))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- m.RunExpiry(ctx, time.Hour) }()
	r144Wait(t, entered, "the error handler")
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	require.NoError(t, r144Wait(t, closed, "Close"))
	require.ErrorIs(t, r144Wait(t, done, "RunExpiry"), sa.ErrClosed)
}

// TestReview144CloseDuringHookKeepsTaskAndRerunsIt: Close cancels "the
// Sweep in progress"; a hook it cuts off (returning the context's error)
// is no failed attempt (OnExpire: "retried, from that hook on, by a later
// sweep"), and "The calls of the API keep working after Close (Check,
// Grant, Sweep…)": a Sweep after Close runs it to completion, and the
// expiry is recorded once. On memstore and every SQL backend.
func TestReview144CloseDuringHookKeepsTaskAndRerunsIt(t *testing.T) {
	stores := map[string]func(t *testing.T) sa.Store{"memstore": func(*testing.T) sa.Store { return memstore.New() }}
	for _, d := range sqltest.Dialects() {
		stores[d.String()] = func(t *testing.T) sa.Store { return sqltest.NewStore(t, d) }
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			st := mk(t)
			clock := storetest.NewClock(storetest.Epoch)
			var calls atomic.Int32
			entered := make(chan struct{}, 1)
			hook := func(ctx context.Context, g sa.Grant) error {
				if calls.Add(1) == 1 {
					entered <- struct{}{}
					<-ctx.Done()
					return context.Cause(ctx)
				}
				return nil
			}
			errs := &mwErrs{}
			m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(hook), sa.WithErrorHandler(errs.handle))
			require.NoError(t, err)
			g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
			require.NoError(t, err)
			clock.Advance(time.Hour)
			done := make(chan error, 1)
			go func() { done <- m.RunExpiry(ctx, time.Hour) }()
			r144Wait(t, entered, "the hook")
			require.NoError(t, m.Close())
			require.ErrorIs(t, r144Wait(t, done, "RunExpiry"), sa.ErrClosed)

			evs, err := m.Events(ctx, sa.AuditFilter{GrantID: g.ID})
			require.NoError(t, err)
			var types []sa.EventType
			for _, e := range evs {
				types = append(types, e.Type)
			}
			require.NotContains(t, types, sa.EventExpireHookFailed, "cut off by Close: no failed attempt")
			require.Empty(t, errs.all(), "nothing to report")

			n, err := m.Sweep(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "the expiry is already recorded")
			require.EqualValues(t, 2, calls.Load(), "the hook ran again after Close, at once")
			evs, err = m.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventGrantExpired, sa.EventExpireHookFailed, sa.EventExpireHookSucceeded}})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.Equal(t, sa.EventGrantExpired, evs[0].Type)
			n, err = m.Sweep(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			require.EqualValues(t, 2, calls.Load(), "and only once")
		})
	}
}

// TestReview144MiddlewareAfterClose: "The calls of the API keep working
// after Close ... a middleware's watcher goroutines end with the requests
// they watch." A stream admitted before Close is still ended by a
// revocation after it, and a middleware built after Close still denies
// and admits.
func TestReview144MiddlewareAfterClose(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	s := e.streams()
	defer s.stop()
	r := s.serve("generic")
	require.NoError(t, e.m.Close())
	require.NoError(t, mwWaitEnd(r, 50*time.Millisecond), "Close does not end requests")
	_, err := e.m.Revoke(ctx, g.ID, mwCustomer, "after close")
	require.NoError(t, err)
	require.ErrorIs(t, mwWaitEnd(r, time.Second), sa.ErrSessionEnded, "the revocation still ends the stream")

	h := e.wrap(&mwOK{})
	require.Equal(t, 403, mwDo(h, mwReq("GET", "/x", "generic")).Code)
	e.grant(sa.GrantInput{Duration: time.Hour})
	require.Equal(t, 200, mwDo(h, mwReq("GET", "/x", "generic")).Code)
}

// TestReview144ZeroClockRevokeWithExternalAuditor: "Revocation at any
// time by the customer, effective immediately" (DESIGN.md), and
// checkClock's promise that "a change made at a broken clock's time is
// refused by the Manager itself, whatever the store and the other
// auditors would keep". A clock that reads the zero time (a WithNow fake
// left unset) stamps the revocation RevokedAt = zero — "not revoked".
// With the store keeping the trail the store refuses the event's zero
// Time; with WithAuditor naming another destination only, nothing
// refuses it: Revoke reports success, the Notifier and the trail say
// "revoked", and the grant stays active.
func TestReview144ZeroClockRevokeWithExternalAuditor(t *testing.T) {
	for _, action := range []string{"revoke", "extend"} {
		t.Run(action, func(t *testing.T) {
			st := memstore.New()
			rec := &recordingAuditor{}
			clock := storetest.NewClock(storetest.Epoch)
			m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditor(rec))
			require.NoError(t, err)
			g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
			require.NoError(t, err)
			good := clock.Now()
			clock.Set(time.Time{})
			heard := len(rec.types())
			switch action {
			case "revoke":
				_, err := m.Revoke(ctx, g.ID, customer, "broken clock")
				require.ErrorIs(t, err, sa.ErrInvalidInput, "no revocation at a broken clock")
				require.ErrorContains(t, err, "the clock reads")
				clock.Set(good)
				_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
				require.NoError(t, err, "the refused Revoke changed nothing")
				require.Len(t, rec.types(), heard, "no auditor heard of a revocation")
			case "extend":
				// The grant ended (not yet swept); at the zero clock it
				// looks scheduled and Extend would bring it back.
				clock.Set(good.Add(2 * time.Hour))
				_, err := m.Check(ctx, "acme", support.ID, sa.ScopeRead)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant)
				clock.Set(time.Time{})
				_, err = m.Extend(ctx, g.ID, good.Add(3*time.Hour), customer)
				require.ErrorIs(t, err, sa.ErrInvalidInput, "no change at a broken clock")
				clock.Set(good.Add(2 * time.Hour))
				_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant, "an ended grant stays ended")
			}
		})
	}
}

// TestReview144ZeroClockWithStoreAuditing: the same broken clock with the
// default configuration (the store keeps the trail) changes nothing:
// Grant, Revoke and Extend are refused with ErrInvalidInput, Check and
// Sweep fail closed.
func TestReview144ZeroClockWithStoreAuditing(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	good := e.clock.Now()
	before := e.snapshot()
	for _, at := range []time.Time{{}, time.Date(999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		e.clock.Set(at)
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "grant at %s", at)
		_, err = e.m.Extend(ctx, g.ID, good.Add(2*time.Hour), customer)
		require.Error(t, err, "extend at %s", at)
		_, err = e.m.Sweep(ctx)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "sweep at %s", at)
		_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorContains(t, err, "the clock reads", "check at %s fails closed (a fault since review 169)", at)
	}
	e.clock.Set(time.Time{})
	_, err := e.m.Revoke(ctx, g.ID, customer, "zero clock")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	e.clock.Set(good)
	require.Equal(t, before.grants, e.snapshot().grants, "no grant changed")
}

// TestReview144FarClockUnlimitedGrant: a clock past year 9999 (a WithNow
// reading a corrupted source) — an unlimited grant, which Check then
// still found active, must stay revocable ("Revocation at any time by the
// customer, effective immediately"): either Check fails closed at that
// clock, or Revoke works. Check now fails closed (ErrInvalidInput) at
// any clock no record may hold, and Revoke is refused there too.
func TestReview144FarClockUnlimitedGrant(t *testing.T) {
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	e := newEnv(t, sa.WithPolicy(p))
	g := e.grant(sa.GrantInput{Duration: sa.Unlimited})
	e.clock.Set(time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC))
	_, checkErr := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	_, revokeErr := e.m.Revoke(ctx, g.ID, customer, "far clock")
	require.ErrorContains(t, checkErr, "the clock reads", "Check fails closed at a clock past 9999 (a fault since review 169)")
	require.ErrorIs(t, revokeErr, sa.ErrInvalidInput)
	for _, at := range []time.Time{
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC), // the last time a record may hold
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),                // the first
	} {
		e.clock.Set(at)
		_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		if at.Year() == 9999 {
			require.NoError(t, err, "Check at %s, within the range", at)
		} else {
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, "Check at %s: in range, before the grant", at)
		}
	}
	e.clock.Set(time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)) // truncated to the last microsecond
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
}

// TestReview144BrokenClockChangesReachNoAuditor: checkClock's promise for
// every change, not only Grant's: at a clock no record may hold (the zero
// time, year 999, year 10000) Deny, AddGrantee, Sweep and PurgeAudit are
// refused with ErrInvalidInput before any auditor (here another
// destination than the store) hears of them, and nothing changes.
func TestReview144BrokenClockChangesReachNoAuditor(t *testing.T) {
	st := memstore.New()
	rec := &recordingAuditor{}
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditor(rec))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Grantees: []string{support.ID}})
	require.NoError(t, err)
	r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour, Reason: "ticket"})
	require.NoError(t, err)
	good := clock.Now()
	heard := len(rec.types())
	for _, at := range []time.Time{{}, time.Date(999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		clock.Set(at)
		_, err := m.Deny(ctx, r.ID, customer, "no")
		require.ErrorIs(t, err, sa.ErrInvalidInput, "deny at %s", at)
		_, err = m.AddGrantee(ctx, g.ID, "other@vendor.example", customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "add grantee at %s", at)
		_, err = m.Sweep(ctx)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "sweep at %s", at)
		_, err = m.PurgeAudit(ctx, "acme", good)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "purge at %s", at)
		require.Len(t, rec.types(), heard, "an auditor heard of a change at %s", at)
	}
	clock.Set(good)
	got, err := m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status, "the refused Deny changed nothing")
	cur, err := m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, cur, "the refused AddGrantee changed nothing")
}

// TestReview144ClockBackAfterRecordedExpiry documents (does not judge) what
// Check answers when the clock steps back after Sweep recorded a grant's
// expiry: the trail says grant.expired, the hooks ran, the customer was
// told.
func TestReview144ClockBackAfterRecordedExpiry(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	require.Equal(t, 1, e.sweep())
	e.clock.Set(g.ExpiresAt.Add(-time.Minute))
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	t.Logf("Check a minute before ExpiresAt after the expiry was recorded: %v", err)
	_, err = e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a recorded expiry is final for changes")
}
