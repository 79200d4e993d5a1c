package supportaccess_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// hookLog is an expiry hook that records its calls and fails while told
// to.
type hookLog struct {
	mu    sync.Mutex
	calls []uuid.UUID
	fail  map[uuid.UUID]error
	name  string
	order *[]string
}

func (h *hookLog) hook(_ context.Context, g sa.Grant) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, g.ID)
	if h.order != nil {
		*h.order = append(*h.order, h.name)
	}
	return h.fail[g.ID]
}

func (h *hookLog) count(id uuid.UUID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		if c == id {
			n++
		}
	}
	return n
}

func (h *hookLog) setFail(id uuid.UUID, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail == nil {
		h.fail = map[uuid.UUID]error{}
	}
	if err == nil {
		delete(h.fail, id)
	} else {
		h.fail[id] = err
	}
}

func (e *env) sweep() int {
	e.t.Helper()
	n, err := e.m.Sweep(ctx)
	require.NoError(e.t, err)
	return n
}

func TestSweepRunsExpireHooks(t *testing.T) {
	var order []string
	h1 := &hookLog{name: "first", order: &order}
	h2 := &hookLog{name: "second", order: &order}
	n := &notes{}
	e := newEnv(t, sa.OnExpire(h1.hook), sa.OnExpire(nil), sa.OnExpire(h2.hook), sa.WithNotifier(n))
	a := e.grant(sa.GrantInput{Duration: time.Hour})
	b := e.grant(sa.GrantInput{Duration: 2 * time.Hour})
	r := e.grant(sa.GrantInput{Duration: time.Hour})
	_, err := e.m.Revoke(ctx, r.ID, customer, "")
	require.NoError(t, err)

	require.Zero(t, e.sweep())
	require.Empty(t, order)
	e.clock.Set(a.ExpiresAt)
	require.Equal(t, 1, e.sweep())
	require.Equal(t, []string{"first", "second"}, order, "registration order")
	require.Equal(t, 1, h1.count(a.ID))
	e.clock.Advance(3 * time.Hour)
	require.Equal(t, 1, e.sweep())
	require.Zero(t, e.sweep())
	require.Equal(t, 1, h1.count(a.ID), "once per expiry")
	require.Equal(t, 1, h1.count(b.ID))
	require.Equal(t, 1, h2.count(b.ID))
	require.Zero(t, h1.count(r.ID), "revocation is not expiry")
	require.Len(t, e.events(sa.EventGrantExpired), 2)
	require.Empty(t, e.events(sa.EventExpireHookFailed, sa.EventExpireHookSucceeded))
	require.Equal(t, 2, countType(n.types(), sa.EventGrantExpired), "the Notifier is told of each expiry")
}

func countType(ts []sa.EventType, t sa.EventType) int {
	n := 0
	for _, x := range ts {
		if x == t {
			n++
		}
	}
	return n
}

func TestExpireHookFailureRetried(t *testing.T) {
	h1, h2 := &hookLog{}, &hookLog{}
	handled := &errs{}
	e := newEnv(t, sa.OnExpire(h1.hook), sa.OnExpire(h2.hook), sa.WithErrorHandler(handled.handle))
	bad := e.grant(sa.GrantInput{Duration: time.Hour})
	good := e.grant(sa.GrantInput{Duration: time.Hour})
	h2.setFail(bad.ID, errors.New("directory unavailable"))
	e.clock.Set(bad.ExpiresAt)

	require.Equal(t, 2, e.sweep(), "a failing hook is not a Sweep error")
	require.Equal(t, 1, h1.count(bad.ID))
	require.Equal(t, 1, h2.count(bad.ID))
	require.Equal(t, 1, h2.count(good.ID), "other grants are not blocked")
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 1)
	require.Equal(t, bad.ID, failed[0].GrantID)
	require.Equal(t, sa.ActorSystem, failed[0].Actor.Kind)
	require.Equal(t, "1", failed[0].Attrs["hook"], "the second hook failed")
	require.Equal(t, "1", failed[0].Attrs["attempt"])
	require.Equal(t, "directory unavailable", failed[0].Attrs[sa.AttrError])
	require.Equal(t, e.now().Add(sa.DefaultHookRetryMin).Format("2006-01-02T15:04:05.000000Z07:00"), failed[0].Attrs["next_at"])
	require.Len(t, handled.list(), 1)
	require.ErrorContains(t, handled.list()[0], "directory unavailable")

	e.clock.Advance(sa.DefaultHookRetryMin - time.Microsecond)
	e.sweep()
	require.Equal(t, 1, h2.count(bad.ID), "not before the retry delay")

	e.clock.Advance(time.Microsecond)
	e.sweep()
	require.Equal(t, 2, h2.count(bad.ID), "retried")
	require.Equal(t, 1, h1.count(bad.ID), "the hook that succeeded is not run again")
	require.Len(t, e.events(sa.EventExpireHookFailed), 2)

	h2.setFail(bad.ID, nil)
	e.clock.Advance(2 * sa.DefaultHookRetryMin)
	e.sweep()
	require.Equal(t, 3, h2.count(bad.ID))
	ok := e.events(sa.EventExpireHookSucceeded)
	require.Len(t, ok, 1)
	require.Equal(t, "2", ok[0].Attrs["attempts"])
	e.clock.Advance(sa.DefaultHookRetryMax)
	e.sweep()
	require.Equal(t, 3, h2.count(bad.ID), "done")
	require.Len(t, e.events(sa.EventGrantExpired), 2, "expiry recorded once")
}

func TestExpireHookRetryBackoff(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook), sa.WithExpireHookRetry(time.Minute, 5*time.Minute))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)
	e.sweep()
	for _, d := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		calls := h.count(g.ID)
		e.clock.Advance(d - time.Microsecond)
		e.sweep()
		require.Equal(t, calls, h.count(g.ID), "not before %s", d)
		e.clock.Advance(time.Microsecond)
		e.sweep()
		require.Equal(t, calls+1, h.count(g.ID), "after %s", d)
	}
}

func TestExpireHookPanicIsAFailure(t *testing.T) {
	e := newEnv(t, sa.OnExpire(func(context.Context, sa.Grant) error { panic("nil map") }), sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	require.Equal(t, 1, e.sweep())
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 1)
	require.Contains(t, failed[0].Attrs[sa.AttrError], "nil map")
}

func TestExpireHookLongErrorIsClipped(t *testing.T) {
	msg := strings.Repeat("é", sa.MaxReasonLen) // 2 bytes each
	e := newEnv(t, sa.OnExpire(func(context.Context, sa.Grant) error { return errors.New(msg) }), sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	e.sweep()
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 1)
	got := failed[0].Attrs[sa.AttrError]
	require.LessOrEqual(t, len(got), sa.MaxReasonLen)
	require.True(t, utf8.ValidString(got))
	require.True(t, strings.HasPrefix(msg, got))
}

func TestExpireHookTaskSurvivesACrash(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	// A replica claims the expiry and dies before running the hooks.
	dead := sa.Lease{Token: "dead replica", Until: e.now().Add(sa.DefaultHookLease)}
	_, err := storetest.ClaimStarts(ctx, e.store, e.now())
	require.NoError(t, err)
	claimed, err := e.store.ClaimExpirations(ctx, e.now(), 10, dead, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Zero(t, e.sweep(), "the expiry is claimed already")
	require.Zero(t, h.count(g.ID), "not while the claimer's lease holds")
	e.clock.Set(dead.Until)
	e.sweep()
	require.Equal(t, 1, h.count(g.ID), "another replica runs the hooks")

	// A replica leases the task and dies while running the hooks.
	g2 := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g2.ExpiresAt)
	_, err = storetest.ClaimStarts(ctx, e.store, e.now())
	require.NoError(t, err)
	_, err = e.store.ClaimExpirations(ctx, e.now(), 10, sa.Lease{Token: "claimer", Until: e.now()}, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
	require.NoError(t, err)
	lease := sa.Lease{Token: "dead replica", Until: e.now().Add(sa.DefaultHookLease)}
	tasks, err := e.store.ClaimHookTasks(ctx, e.now(), 10, lease)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	e.sweep()
	require.Zero(t, h.count(g2.ID), "not while the lease holds")
	e.clock.Set(lease.Until)
	e.sweep()
	require.Equal(t, 1, h.count(g2.ID), "taken over when the lease ran out")
	n, err := e.store.FinishHookTasks(ctx, lease.Token, tasks, nil)
	require.NoError(t, err)
	require.Zero(t, n, "the dead replica's lease is gone")
	e.clock.Advance(sa.DefaultHookRetryMax)
	e.sweep()
	require.Equal(t, 1, h.count(g2.ID))
}

func TestExpireHookDeadline(t *testing.T) {
	defer goleak.VerifyNone(t)
	var got error
	e := newEnv(t, sa.WithExpireHookLease(time.Second), sa.WithErrorHandler(func(context.Context, error) {}),
		sa.OnExpire(func(ctx context.Context, _ sa.Grant) error {
			<-ctx.Done() // a hung hook: its context ends before the lease
			got = ctx.Err()
			return got
		}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	start := time.Now()
	require.Equal(t, 1, e.sweep())
	require.ErrorIs(t, got, context.DeadlineExceeded)
	require.Less(t, time.Since(start), time.Second, "cancelled within the lease")
	require.Len(t, e.events(sa.EventExpireHookFailed), 1)
}

func TestExpireHookOptions(t *testing.T) {
	e := newEnv(t)
	_, err := sa.NewManager(plainStore{e.store}, sa.WithAuditor(e.store), sa.OnExpire(func(context.Context, sa.Grant) error { return nil }))
	require.ErrorIs(t, err, errors.ErrUnsupported, "hooks need a HookStore")
	_, err = sa.NewManager(plainStore{e.store}, sa.WithAuditor(e.store))
	require.NoError(t, err, "no hooks, no need")
	for _, o := range []sa.Option{
		sa.WithExpireHookLease(time.Millisecond),
		sa.WithExpireHookRetry(0, time.Minute),
		sa.WithExpireHookRetry(time.Nanosecond, time.Minute), // below the stores' microsecond: no delay at all
		sa.WithExpireHookRetry(time.Hour, time.Minute),
	} {
		_, err := sa.NewManager(e.store, o)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	}
}

func TestSweepWithoutHooksUsesPlainClaims(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	require.Equal(t, 1, e.sweep())
	tasks, err := e.store.ClaimHookTasks(ctx, e.now(), 10, sa.Lease{Token: "x", Until: e.now().Add(time.Minute)})
	require.NoError(t, err)
	require.Empty(t, tasks, "no hook tasks without hooks")
}

func TestSweepStartedOnce(t *testing.T) {
	e := newEnv(t, sa.OnExpire(func(context.Context, sa.Grant) error { return nil }))
	g := e.grant(sa.GrantInput{StartsAt: e.now().Add(time.Hour), Duration: time.Hour})
	e.sweep()
	require.Empty(t, e.events(sa.EventGrantStarted))
	e.clock.Set(g.StartsAt)
	e.sweep()
	e.sweep()
	started := e.events(sa.EventGrantStarted)
	require.Len(t, started, 1)
	require.Equal(t, g.ID, started[0].GrantID)
	e.clock.Set(g.ExpiresAt)
	e.sweep()
	require.Len(t, e.events(sa.EventGrantStarted), 1)
	require.Len(t, e.events(sa.EventGrantExpired), 1)
}

func TestSweepConcurrentReplicasRunHooksOnce(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook))
	m2, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.OnExpire(h.hook))
	require.NoError(t, err)
	const n = 300
	for i := 0; i < n; i++ {
		e.grant(sa.GrantInput{Duration: time.Hour})
	}
	e.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < 8; i++ {
		m := e.m
		if i%2 == 1 {
			m = m2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := m.Sweep(ctx)
			if err != nil {
				t.Errorf("sweep: %v", err)
			}
			mu.Lock()
			total += c
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, n, total)
	require.Len(t, h.calls, n)
	require.Len(t, e.events(sa.EventGrantExpired), n)
}

func TestRunExpiry(t *testing.T) {
	defer goleak.VerifyNone(t)
	hooked := make(chan uuid.UUID, 10)
	e := newEnv(t, sa.OnExpire(func(_ context.Context, g sa.Grant) error { hooked <- g.ID; return nil }))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- e.m.RunExpiry(runCtx, time.Hour) }()
	select {
	case id := <-hooked:
		require.Equal(t, g.ID, id, "the first sweep runs at once")
	case <-time.After(10 * time.Second):
		t.Fatal("no sweep")
	}
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	t.Run("ticks and reports errors", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		reported := make(chan error, 100)
		fs := &failingClaims{Store: e.store}
		m, err := sa.NewManager(fs, sa.WithAuditor(e.store), sa.WithErrorHandler(func(_ context.Context, err error) {
			select {
			case reported <- err:
			default:
			}
		}))
		require.NoError(t, err)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- m.RunExpiry(runCtx, time.Millisecond) }()
		for i := 0; i < 3; i++ { // several ticks
			select {
			case err := <-reported:
				require.ErrorIs(t, err, errBoom)
			case <-time.After(10 * time.Second):
				t.Fatal("no error reported")
			}
		}
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
	t.Run("bad interval", func(t *testing.T) {
		require.ErrorIs(t, e.m.RunExpiry(ctx, 0), sa.ErrInvalidInput)
		require.ErrorIs(t, e.m.RunExpiry(ctx, -time.Second), sa.ErrInvalidInput)
	})
	t.Run("ended context", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, e.m.RunExpiry(c, time.Second), context.Canceled)
	})
}

// failingClaims is a Store whose ClaimTransitions fails.
type failingClaims struct{ sa.Store }

func (failingClaims) ClaimTransitions(context.Context, sa.Transition, time.Time, int, func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	return nil, errBoom
}

func TestSweepConcurrencyOption(t *testing.T) {
	for _, n := range []int{0, -1, sa.MaxSweepConcurrency + 1, math.MaxInt} {
		_, err := sa.NewManager(memstore.New(), sa.WithSweepConcurrency(n))
		require.ErrorIs(t, err, sa.ErrInvalidInput, n)
		require.ErrorContains(t, err, "sweep concurrency")
	}
	for _, n := range []int{1, sa.MaxSweepConcurrency} {
		_, err := sa.NewManager(memstore.New(), sa.WithSweepConcurrency(n))
		require.NoError(t, err, n)
	}
}

// grantMany stores n grants of an hour in tenants acme-0 … acme-9.
func (e *env) grantMany(n int) {
	e.t.Helper()
	for i := 0; i < n; i++ {
		e.grant(sa.GrantInput{TenantID: fmt.Sprintf("acme-%d", i%10), Duration: time.Hour})
	}
}

// serialHook is an expiry hook that counts its calls per grant and how
// many of its calls ever overlapped.
type serialHook struct {
	inFlight, maxInFlight atomic.Int32
	mu                    sync.Mutex
	calls                 map[uuid.UUID]int
}

func (h *serialHook) run(_ context.Context, g sa.Grant) error {
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.maxInFlight.Load()
		if n <= m || h.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	runtime.Gosched() // widen the window for an overlapping call
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls == nil {
		h.calls = map[uuid.UUID]int{}
	}
	h.calls[g.ID]++
	return nil
}

// With several claims in flight, every due grant still expires once, its
// hook runs once, hooks never overlap and the Notifier hears of each.
func TestSweepConcurrentBatches(t *testing.T) {
	const n = 2*sa.SweepBatchSize + 500 // three batches
	for _, workers := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			h := &serialHook{}
			notes := &notes{}
			e := newEnv(t, sa.OnExpire(h.run), sa.WithNotifier(notes), sa.WithSweepConcurrency(workers))
			e.grantMany(n)
			e.clock.Advance(time.Hour)
			require.Equal(t, n, e.sweep())
			require.Zero(t, e.sweep())
			require.Len(t, h.calls, n)
			for id, c := range h.calls {
				require.Equal(t, 1, c, id)
			}
			require.Equal(t, int32(1), h.maxInFlight.Load(), "hooks run one at a time")
			require.Equal(t, n, countType(notes.types(), sa.EventGrantExpired))
			require.Len(t, e.events(sa.EventGrantExpired), n)
		})
	}
}

// laterFailingClaims fails the claim of expiries from its fail-th call on.
type laterFailingClaims struct {
	*memstore.Store
	calls atomic.Int32
	fail  int32
}

var errClaim = errors.New("claim failed")

func (s *laterFailingClaims) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if t == sa.TransitionExpired && s.calls.Add(1) >= s.fail {
		return nil, errClaim
	}
	return s.Store.ClaimTransitions(ctx, t, now, limit, events)
}

// A failed claim stops the sweep with its error; the batches committed
// before it are counted and notified, and the rest expire, once, on the
// next sweep.
func TestSweepClaimFailureStopsClaims(t *testing.T) {
	const n = 2*sa.SweepBatchSize + 500
	st := &laterFailingClaims{Store: memstore.New(), fail: 2}
	notes := &notes{}
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithNotifier(notes), sa.WithSweepConcurrency(2))
	require.NoError(t, err)
	e := &env{t: t, store: st.Store, clock: clock, m: m}
	e.grantMany(n)
	clock.Advance(time.Hour)
	got, err := m.Sweep(ctx)
	require.ErrorIs(t, err, errClaim)
	require.Equal(t, sa.SweepBatchSize, got, "the first claim committed")
	require.Equal(t, got, countType(notes.types(), sa.EventGrantExpired))
	require.LessOrEqual(t, st.calls.Load(), int32(3), "no claim starts after the failure is seen")

	st.fail = 1 << 30
	rest, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, n-got, rest)
	require.Len(t, e.events(sa.EventGrantExpired), n)
}

// panickyAuditor is an extra auditor that panics on grant.expired.
type panickyAuditor struct{}

func (panickyAuditor) Record(_ context.Context, e sa.Event) error {
	if e.Type == sa.EventGrantExpired {
		panic("auditor bug")
	}
	return nil
}

// A panic inside a claim (here an extra auditor's) reaches Sweep's caller,
// as it did when claims ran in its goroutine, and no claimer outlives it.
func TestSweepClaimPanicReachesCaller(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditor(sa.MultiAuditor(st, panickyAuditor{})), sa.WithSweepConcurrency(3))
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Advance(time.Hour)
	require.PanicsWithValue(t, "auditor bug", func() { _, _ = m.Sweep(ctx) })
}
