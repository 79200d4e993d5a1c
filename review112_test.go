package supportaccess_test

// Review 112: mutation testing of the lifecycle code (expiry.go, hooks.go,
// requests.go, delegate.go, grant.go, revoke.go, notify.go). Each test
// names the mutant it kills.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

var errReview112 = errors.New("review112 store fault")

// review112Store is a memstore whose claims can be made short (at most one
// transition or request per claim, as a MariaDB claim beside another
// sweeper returns: SKIP LOCKED applied after LIMIT), whose claim of starts
// can fail, and whose FinishHookTasks can fail.
type review112Store struct {
	*memstore.Store
	shortClaims bool
	failStarts  bool
	failFinish  bool
}

func (s *review112Store) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if s.failStarts && t == sa.TransitionStarted {
		return nil, errReview112
	}
	if s.shortClaims {
		limit = 1
	}
	return s.Store.ClaimTransitions(ctx, t, now, limit, events)
}

func (s *review112Store) ClaimExpirations(ctx context.Context, now time.Time, limit int, lease sa.Lease, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if s.shortClaims {
		limit = 1
	}
	return s.Store.ClaimExpirations(ctx, now, limit, lease, events)
}

func (s *review112Store) ClaimExpiredRequests(ctx context.Context, now time.Time, limit int, events func(sa.AccessRequest) ([]sa.Event, error)) ([]sa.AccessRequest, error) {
	if s.shortClaims {
		limit = 1
	}
	return s.Store.ClaimExpiredRequests(ctx, now, limit, events)
}

func (s *review112Store) FinishHookTasks(ctx context.Context, token string, tasks []sa.HookTask, events []sa.Event) (int, error) {
	if s.failFinish {
		return 0, errReview112
	}
	return s.Store.FinishHookTasks(ctx, token, tasks, events)
}

// review112Env is an env whose Manager runs on st (its store, for the
// events, is the memstore st wraps).
func review112Env(t *testing.T, st *review112Store, opts ...sa.Option) *env {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, append([]sa.Option{sa.WithNow(clock.Now)}, opts...)...)
	require.NoError(t, err)
	return &env{t: t, store: st.Store, clock: clock, m: m}
}

// Kills expiry.go `if startErr == nil` -> `if true`: Sweep's doc says
// "expiries are not claimed in a Sweep whose claim of starts failed". A
// grant whose start an earlier Sweep recorded must not have its expiry
// claimed by a Sweep whose claim of starts fails.
func TestReview112NoExpiryClaimedWhenStartsClaimFails(t *testing.T) {
	st := &review112Store{Store: memstore.New()}
	e := review112Env(t, st)
	m, clock := e.m, e.clock
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	_, err := m.Sweep(ctx) // records grant.started
	require.NoError(t, err)
	require.Len(t, e.events(sa.EventGrantStarted), 1)

	clock.Set(g.ExpiresAt)
	st.failStarts = true
	n, err := m.Sweep(ctx)
	require.ErrorIs(t, err, errReview112)
	require.Zero(t, n, "an expiry was claimed in a Sweep whose claim of starts failed")
	require.Empty(t, e.events(sa.EventGrantExpired))

	st.failStarts = false
	n, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the next Sweep records the expiry")
}

// Kills expiry.go `b.last = err != nil || len(b.claimed) == 0` ->
// `... || len(b.claimed) < m.lifecycleBatch()`: a short batch (SKIP LOCKED
// beside another sweeper) does not mean nothing is left; one Sweep must
// record every due expiry.
func TestReview112SweepGoesOnAfterShortBatch(t *testing.T) {
	st := &review112Store{Store: memstore.New(), shortClaims: true}
	e := review112Env(t, st, sa.WithSweepConcurrency(1))
	m, clock := e.m, e.clock
	for range 3 {
		e.grant(sa.GrantInput{Duration: time.Hour})
	}
	clock.Advance(time.Hour)
	n, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n, "Sweep stopped at a short batch")
	require.Len(t, e.events(sa.EventGrantStarted), 3)
	require.Len(t, e.events(sa.EventGrantExpired), 3)
}

// Kills requests.go `if len(rr) == 0` -> `if len(rr) < m.lifecycleBatch()`
// in sweepRequests: as for grants, a short claim of expired requests must
// not end the sweep.
func TestReview112RequestSweepGoesOnAfterShortBatch(t *testing.T) {
	st := &review112Store{Store: memstore.New(), shortClaims: true}
	e := review112Env(t, st)
	m, clock := e.m, e.clock
	for range 3 {
		_, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Reason: "ticket"})
		require.NoError(t, err)
	}
	clock.Advance(72 * time.Hour)
	_, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Len(t, e.events(sa.EventRequestExpired), 3, "the request sweep stopped at a short batch")
}

// Kills expiry.go `if err := after(&b); err != nil && firstErr == nil` ->
// `... && false`: when the store fails to store the outcome of a batch's
// hooks (FinishHookTasks), Sweep must return the store's error ("Errors:
// the context's error, or the store's"), not nil.
func TestReview112SweepReturnsFinishHookTasksError(t *testing.T) {
	st := &review112Store{Store: memstore.New(), failFinish: true}
	h := &hookLog{}
	e := review112Env(t, st, sa.OnExpire(h.hook))
	m, clock := e.m, e.clock
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	clock.Set(g.ExpiresAt)
	n, err := m.Sweep(ctx)
	require.Equal(t, 1, n)
	require.ErrorIs(t, err, errReview112, "the failure to store the hooks' outcome was swallowed")
	require.Equal(t, 1, h.count(g.ID))
}

// Kills hooks.go `if (i > 0 || queued) && (ctx.Err() != nil ||
// time.Now().After(startBy))` -> `if (i > 0) && ...`: a Sweep batch that
// waited behind another batch's hooks past half its lease is released
// untouched, for runHookTasks to take at once with a fresh lease (runTasks'
// doc), rather than run its first hook on what is left of the old budget.
// The lease is wall-clock time (runTasks' start), so the first hook sleeps
// past half of a one-second lease; no grant expiry waits on a sleep.
func TestReview112QueuedBatchPastHalfLeaseRunsWithFreshLease(t *testing.T) {
	st := &review112Store{Store: memstore.New(), shortClaims: true} // one grant per batch
	var mu sync.Mutex
	calls := 0
	var left []time.Duration // the budget the later hooks were given
	hook := func(ctx context.Context, g sa.Grant) error {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			time.Sleep(650 * time.Millisecond) // past half the lease of the queued batch
			return nil
		}
		dl, ok := ctx.Deadline()
		require.True(t, ok)
		mu.Lock()
		left = append(left, time.Until(dl))
		mu.Unlock()
		return nil
	}
	e := review112Env(t, st, sa.WithSweepConcurrency(2), sa.WithExpireHookLease(time.Second), sa.OnExpire(hook))
	m, clock := e.m, e.clock
	for range 2 {
		e.grant(sa.GrantInput{Duration: time.Hour})
	}
	clock.Advance(time.Hour)
	n, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, calls)
	require.Len(t, left, 1)
	require.Greater(t, left[0], 600*time.Millisecond,
		"the queued batch's first hook ran on the rest of a budget more than half spent (%s left of a 900ms deadline)", left[0])
	require.Empty(t, e.events(sa.EventExpireHookFailed))
}

// Kills notify.go `if t == EventRequestCreated { n.RespondBy = ... }` ->
// `if true`: Notification.RespondBy is "when an unanswered request expires
// (request.created)"; a request.denied notification (the request is
// answered) must not carry a deadline to respond by.
func TestReview112DeniedNotificationHasNoRespondBy(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Reason: "ticket"})
	require.NoError(t, err)
	_, err = e.m.Deny(ctx, r.ID, customer, "not now")
	require.NoError(t, err)
	n.mu.Lock()
	defer n.mu.Unlock()
	require.Len(t, n.all, 2)
	require.Equal(t, sa.EventRequestCreated, n.all[0].Type)
	require.Equal(t, r.ExpiresAt, n.all[0].RespondBy)
	require.Equal(t, sa.EventRequestDenied, n.all[1].Type)
	require.True(t, n.all[1].RespondBy.IsZero(), "request.denied told the customer to respond by %s", n.all[1].RespondBy)
}

// Kills hooks.go callHook's `if err := ctx.Err(); err != nil { return err }`
// (removed): once the hooks' context ended (here the caller cancelled
// Sweep's context during the first hook), no further hook of the expiry
// may start — after a lease's deadline another replica may run them — and
// the progress is kept, so a later Sweep runs the second hook once and the
// first not again.
func TestReview112NoHookStartsAfterContextEnded(t *testing.T) {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first, second int
	h1 := func(context.Context, sa.Grant) error { first++; cancel(); return nil }
	h2 := func(context.Context, sa.Grant) error { second++; return nil }
	e := newEnv(t, sa.OnExpire(h1), sa.OnExpire(h2), sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	_, err := e.m.Sweep(sctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, first)
	require.Zero(t, second, "the second hook started after the hooks' context had ended")

	_, err = e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, first, "the first hook, which succeeded, ran again")
	require.Equal(t, 1, second)
	require.Empty(t, e.events(sa.EventExpireHookFailed), "a shutdown is not a failed attempt")
}

// Kills hooks.go runHookTasks' `Until: capTime(now.Add(m.life.lease))` ->
// `now.Add(m.life.lease/2)`: the retry of a failed hook is leased for the
// whole WithExpireHookLease ("how long a sweep holds the hook tasks it
// claimed before another replica may take them over"); three minutes into
// a five-minute lease, another replica must not be able to claim the task
// whose hooks are running.
func TestReview112RetryLeaseHoldsForWholeLease(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	var g sa.Grant
	calls := 0
	var stolen []sa.HookTask
	hook := func(ctx context.Context, _ sa.Grant) error {
		calls++
		if calls == 1 {
			return errBoom // retried by a later sweep
		}
		clock.Advance(3 * time.Minute) // the retry runs long (injected clock)
		var err error
		stolen, err = st.ClaimHookTasks(ctx, clock.Now().UTC().Truncate(time.Microsecond), 10,
			sa.Lease{Token: "other replica", Until: clock.Now().Add(sa.DefaultHookLease)})
		require.NoError(t, err)
		return nil
	}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(hook), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	g, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Set(g.ExpiresAt)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, calls)

	clock.Advance(sa.DefaultHookRetryMin) // the retry is due
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, calls)
	require.Empty(t, stolen, "another replica claimed a hook task three minutes into its five-minute lease")
}
