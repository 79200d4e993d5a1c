package supportaccess_test

// Review 139: expiry hooks, leases and sweeps across replicas, attacked as
// an attacker or an unlucky operator would: slow and failing hooks, hooks
// that panic or call runtime.Goexit, leases that run out while hooks run,
// FinishHookTasks and claim transactions that fail, clocks that jump, two
// replicas on one memstore or on one SQLite file.

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// r139Quiet is an error handler that drops what it is given.
func r139Quiet(context.Context, error) {}

// r139Mgr is a Manager on st with clock c and the given options.
func r139Mgr(t *testing.T, st sa.Store, c *storetest.Clock, opts ...sa.Option) *sa.Manager {
	t.Helper()
	m, err := sa.NewManager(st, append([]sa.Option{sa.WithNow(c.Now), sa.WithErrorHandler(r139Quiet)}, opts...)...)
	require.NoError(t, err)
	return m
}

// r139Grant creates a grant of an hour in tenant.
func r139Grant(t *testing.T, m *sa.Manager, tenant, reason string) sa.Grant {
	t.Helper()
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: customer, Duration: time.Hour, Reason: reason})
	require.NoError(t, err)
	return g
}

// r139Events returns the events of st of the given types.
func r139Events(t *testing.T, st sa.AuditLog, f sa.AuditFilter) []sa.Event {
	t.Helper()
	evs, err := st.Events(ctx, f)
	require.NoError(t, err)
	return evs
}

// Attack: an outage of what the hooks call (each attempt fails only after
// a while, simulated by the hook moving the injected clock) with more due
// hook tasks than one claim takes (HookBatchSize). OnExpire promises that
// a failing hook is "retried, from that hook on, by a later sweep"; Sweep
// is run every interval by RunExpiry, so one Sweep must end on its own and
// call each failing hook a bounded number of times. runHookTasks instead
// claims again whenever a claim came back full, and the tasks this very
// Sweep failed are due again (their delay, at most WithExpireHookRetry's
// max, passed while the rest of the batch ran): the Sweep never returns
// until its context ends, and RunExpiry records no further start, expiry
// or request expiry meanwhile.
func TestReview139SweepEndsWhileManyHooksKeepFailing(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	var calls atomic.Int64
	hook := func(context.Context, sa.Grant) error {
		calls.Add(1)
		clock.Advance(time.Second) // each attempt times out after a second
		return errBoom
	}
	st := memstore.New()
	m := r139Mgr(t, st, clock, sa.OnExpire(hook), sa.WithExpireHookRetry(time.Second, time.Minute))
	const grants = sa.HookBatchSize + 100
	for i := range grants {
		r139Grant(t, m, fmt.Sprintf("acme-%d", i%7), "")
	}
	clock.Advance(time.Hour)
	sctx, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
	defer cancel()
	n, err := m.Sweep(sctx)
	require.Equal(t, grants, n)
	require.NoError(t, err, "the Sweep only ended because its context did, after %d hook calls for %d expiries", calls.Load(), grants)
	require.LessOrEqual(t, calls.Load(), int64(2*grants), "one Sweep retried the same failing hooks over and over")
}

// Attack: a hook that always fails. Retries never stop (WithExpireHookRetry),
// but each attempt must be audited exactly once, in the grant's own
// tenant's trail, numbered 1, 2, 3…, with a next_at that grows by the
// doubling delay (capped at max) and is never earlier than the previous
// one; no retry may run before its next_at.
func TestReview139EveryAttemptAuditedOnceWithMonotonicNextAt(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var calls int
	m := r139Mgr(t, st, clock, sa.WithExpireHookRetry(time.Minute, 5*time.Minute),
		sa.OnExpire(func(context.Context, sa.Grant) error { return nil }),
		sa.OnExpire(func(context.Context, sa.Grant) error { calls++; return errBoom }))
	g := r139Grant(t, m, "victim", "")
	r139Grant(t, m, "bystander", "") // expires too; its hook fails as well
	clock.Set(g.ExpiresAt)
	var prev time.Time
	for attempt := 1; attempt <= 6; attempt++ {
		_, err := m.Sweep(ctx)
		require.NoError(t, err)
		evs := r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed}, GrantID: g.ID})
		require.Len(t, evs, attempt, "each attempt is audited exactly once")
		ev := evs[attempt-1]
		require.Equal(t, "victim", ev.TenantID)
		require.Equal(t, sa.SystemActor, ev.Actor)
		require.Equal(t, strconv.Itoa(attempt), ev.Attrs[sa.AttrAttempt])
		require.Equal(t, "1", ev.Attrs[sa.AttrHook], "the position of the hook that failed")
		next, err := time.Parse(time.RFC3339Nano, ev.Attrs[sa.AttrNextAt])
		require.NoError(t, err)
		want := time.Minute << (attempt - 1)
		want = min(want, 5*time.Minute)
		require.Equal(t, clock.Now().UTC().Truncate(time.Microsecond).Add(want), next, "attempt %d", attempt)
		require.True(t, next.After(prev), "next_at went backwards")
		prev = next

		// Not a microsecond early.
		clock.Set(next.Add(-time.Microsecond))
		before := calls
		_, err = m.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, before, calls, "retried before next_at")
		clock.Set(next)
	}
	// The victim's failures are in its own trail only.
	for _, ev := range r139Events(t, st, sa.AuditFilter{TenantID: "bystander", Types: []sa.EventType{sa.EventExpireHookFailed}}) {
		require.NotEqual(t, g.ID, ev.GrantID)
	}
}

// Attack: a hook mutates the Grant it is given (its slices included) to
// make the next hook, or the retry, act on another tenant or principal.
// Each hook gets its own copy; the stored grant is unchanged.
func TestReview139HookCannotAlterGrantForLaterHooks(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var seen []sa.Grant
	evil := func(_ context.Context, g sa.Grant) error {
		g.TenantID = "other-tenant"
		if len(g.Grantees) > 0 {
			g.Grantees[0] = "attacker@vendor.example"
		}
		if len(g.Scopes) > 0 {
			g.Scopes[0] = sa.ScopeWrite
		}
		return nil
	}
	record := func(_ context.Context, g sa.Grant) error { seen = append(seen, g); return nil }
	m := r139Mgr(t, st, clock, sa.OnExpire(evil), sa.OnExpire(record))
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour,
		Grantees: []string{support.ID}, Scopes: []sa.Scope{sa.ScopeRead}})
	require.NoError(t, err)
	clock.Set(g.ExpiresAt)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Len(t, seen, 1)
	require.Equal(t, "acme", seen[0].TenantID)
	require.Equal(t, []string{support.ID}, seen[0].Grantees)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, seen[0].Scopes)
	got, err := st.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, []string{support.ID}, got.Grantees)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, got.Scopes)
}

// Attack: a hook ends its goroutine with runtime.Goexit (t.FailNow in a
// host's test, say) in the middle of an expiry's hooks. Sweep's goroutine
// ends (Goexit cannot be stopped) but must leave nothing behind: the
// progress (the first hook succeeded) is stored and the lease released.
// The interrupted hook failed: its attempt is counted and audited, with
// the retry time (review 139 found that a hook exiting every time ran
// again at every Sweep, uncounted and unaudited), and a Sweep after the
// retry delay resumes from the second hook without running the first
// again.
func TestReview139HookGoexitKeepsProgressAndReleasesLease(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var first, second atomic.Int32
	m := r139Mgr(t, st, clock,
		sa.OnExpire(func(context.Context, sa.Grant) error { first.Add(1); return nil }),
		sa.OnExpire(func(context.Context, sa.Grant) error {
			if second.Add(1) == 1 {
				runtime.Goexit()
			}
			return nil
		}))
	g := r139Grant(t, m, "acme", "")
	clock.Set(g.ExpiresAt)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = m.Sweep(ctx)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Sweep's goroutine did not end after runtime.Goexit in a hook")
	}
	require.Len(t, r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExpired}}), 1)
	failed := r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed}, GrantID: g.ID})
	require.Len(t, failed, 1, "the exit is a failed attempt, audited")
	require.Equal(t, "1", failed[0].Attrs[sa.AttrHook], "the second hook (position 1) failed")
	require.Equal(t, "1", failed[0].Attrs[sa.AttrAttempt])
	require.Contains(t, failed[0].Attrs[sa.AttrError], "runtime.Goexit")
	require.Equal(t, clock.Now().Add(sa.DefaultHookRetryMin).Format("2006-01-02T15:04:05.000000Z07:00"), failed[0].Attrs[sa.AttrNextAt])
	// Same instant: the failed task waits for its retry delay.
	_, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), second.Load(), "an exited hook is retried after the delay, not at every Sweep")
	clock.Advance(sa.DefaultHookRetryMin)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), first.Load(), "the hook that succeeded ran again")
	require.Equal(t, int32(2), second.Load(), "the interrupted hook was resumed after the delay")
	ok := r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookSucceeded}, GrantID: g.ID})
	require.Len(t, ok, 1)
	require.Equal(t, "1", ok[0].Attrs[sa.AttrAttempts])
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), second.Load())
}

// Attack: a hook that panics on every call, under RunExpiry. The panic is
// a failed attempt (audited with its message), RunExpiry keeps going and
// retries after the delay, and ends with ctx.Err() when cancelled.
func TestReview139RunExpirySurvivesPanickingHook(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var calls atomic.Int32
	m := r139Mgr(t, st, clock, sa.OnExpire(func(context.Context, sa.Grant) error {
		calls.Add(1)
		panic("hook exploded")
	}))
	g := r139Grant(t, m, "acme", "")
	clock.Set(g.ExpiresAt)
	rctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() { res <- m.RunExpiry(rctx, 5*time.Millisecond) }()
	require.Eventually(t, func() bool { return calls.Load() >= 1 }, time.Second, time.Millisecond)
	clock.Advance(sa.DefaultHookRetryMin)
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-res:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(time.Second):
		t.Fatal("RunExpiry did not return")
	}
	require.Equal(t, int32(2), calls.Load(), "retried before its delay passed")
	evs := r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed}})
	require.Len(t, evs, 2)
	require.Contains(t, evs[0].Attrs[sa.AttrError], "hook exploded")
	require.Equal(t, "2", evs[1].Attrs[sa.AttrAttempt])
}

// r139FinishFails is a memstore whose FinishHookTasks fails while told to.
type r139FinishFails struct {
	*memstore.Store
	fail atomic.Bool
}

func (s *r139FinishFails) FinishHookTasks(ctx context.Context, token string, tasks []sa.HookTask, events []sa.Event) (int, error) {
	if s.fail.Load() {
		return 0, errReview112
	}
	return s.Store.FinishHookTasks(ctx, token, tasks, events)
}

// r139FinishFailsOnce sets up a grant whose hook succeeds while the
// store then fails FinishHookTasks (a database blip): the Sweep reports it.
// It returns the store, the clock, a second replica and the hook's calls.
func r139FinishFailsOnce(t *testing.T) (*r139FinishFails, *storetest.Clock, *sa.Manager, *atomic.Int32) {
	t.Helper()
	st := &r139FinishFails{Store: memstore.New()}
	clock := storetest.NewClock(storetest.Epoch)
	calls := new(atomic.Int32)
	hook := func(context.Context, sa.Grant) error { calls.Add(1); return nil }
	m := r139Mgr(t, st, clock, sa.OnExpire(hook))
	other := r139Mgr(t, st, clock, sa.OnExpire(hook))
	g := r139Grant(t, m, "acme", "")
	clock.Set(g.ExpiresAt)
	st.fail.Store(true)
	_, err := m.Sweep(ctx)
	require.ErrorIs(t, err, errReview112, "the lost outcome is reported")
	st.fail.Store(false)
	require.Equal(t, int32(1), calls.Load())
	return st, clock, other, calls
}

// Attack: after FinishHookTasks failed, another replica sweeps before the
// lease of the task runs out. It must not run the hooks: the task is
// still leased (WithExpireHookLease).
func TestReview139FinishFailureHoldsLeaseAgainstOtherReplica(t *testing.T) {
	_, clock, other, calls := r139FinishFailsOnce(t)
	clock.Advance(sa.DefaultHookLease - time.Microsecond)
	_, err := other.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), calls.Load(), "another replica ran the hooks while the lease held")
}

// The store fails FinishHookTasks after the hooks succeeded: once the
// lease runs out the task, never deleted, is claimed again and the hook
// that already succeeded runs a second time — as OnExpire now documents
// (review 139 found that it promised "at most once"): hooks must be
// idempotent.
func TestReview139FinishFailureReRunsSucceededHook(t *testing.T) {
	_, clock, other, calls := r139FinishFailsOnce(t)
	clock.Advance(sa.DefaultHookLease)
	_, err := other.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load(), "run again after its outcome was lost, as documented")
}

// Attack: the clock steps forward (NTP, or a VM resumed) by more than the
// lease while a hook runs on replica A; both replicas read the same clock,
// so they "differ by less than a tenth of the lease", the condition of
// WithExpireHookLease's promise that "two replicas never run the hooks of
// one expiry at the same time". Replica B takes the task over while A's
// hook is still running. Whatever happens, A's late finish must not wipe
// out B's newer state of the task (B failed: the retry must remain).
func TestReview139ClockStepDuringHookStaleFinishKeepsNewerState(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var mB *sa.Manager
	var inA, calls, overlapped atomic.Int32
	hook := func(_ context.Context, _ sa.Grant) error {
		n := calls.Add(1)
		if inA.Load() == 1 {
			overlapped.Add(1)
			return errBoom // B's run fails: a retry is due later
		}
		if n == 1 {
			inA.Store(1)
			defer inA.Store(0)
			clock.Advance(2 * time.Minute) // past A's one-minute lease
			_, err := mB.Sweep(ctx)
			require.NoError(t, err)
		}
		return nil // A's run succeeds, too late
	}
	mA := r139Mgr(t, st, clock, sa.OnExpire(hook), sa.WithExpireHookLease(time.Minute))
	mB = r139Mgr(t, st, clock, sa.OnExpire(hook), sa.WithExpireHookLease(time.Minute))
	g := r139Grant(t, mA, "acme", "")
	clock.Set(g.ExpiresAt)
	var reported []error
	mA2 := r139Mgr(t, st, clock, sa.OnExpire(hook), sa.WithExpireHookLease(time.Minute),
		sa.WithErrorHandler(func(_ context.Context, err error) { reported = append(reported, err) }))
	_, err := mA2.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load())
	// A's outcome was not stored over B's: the task is still there with
	// B's failure, and A reported that its lease ran out.
	require.NotEmpty(t, reported)
	require.Contains(t, fmt.Sprint(reported), "leases ran out")
	clock.Advance(sa.DefaultHookRetryMax)
	tasks, err := st.ClaimHookTasks(ctx, clock.Now().UTC().Truncate(time.Microsecond), 10,
		sa.Lease{Token: "probe", Until: clock.Now().Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, tasks, 1, "the stale finisher deleted the task B had failed")
	require.Equal(t, g.ID, tasks[0].Grant.ID)
	require.Equal(t, 1, tasks[0].Attempts)
}

// The same clock step: a jump forward past the lease while hooks run lets
// another replica take the task over, and both run the expiry's hooks at
// once — the case WithExpireHookLease now names among its conditions
// (review 139 found that it named only the replicas' difference). Pinned
// so that the documented limit stays true.
func TestReview139ClockStepDuringHookRunsItTwiceAtOnce(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var mB *sa.Manager
	var inA, overlapped atomic.Int32
	hook := func(context.Context, sa.Grant) error {
		if inA.Load() == 1 {
			overlapped.Add(1)
			return nil
		}
		inA.Store(1)
		defer inA.Store(0)
		clock.Advance(2 * time.Minute)
		_, _ = mB.Sweep(ctx)
		return nil
	}
	mA := r139Mgr(t, st, clock, sa.OnExpire(hook), sa.WithExpireHookLease(time.Minute))
	mB = r139Mgr(t, st, clock, sa.OnExpire(hook), sa.WithExpireHookLease(time.Minute))
	g := r139Grant(t, mA, "acme", "")
	clock.Set(g.ExpiresAt)
	_, err := mA.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), overlapped.Load(), "a clock jump past the lease lets replica B run them too, as documented")
}

// Attack: a clock that jumps backward after a failure (an operator fixing
// the time, or a replica whose clock is behind). The retry must not run
// before its next_at by the clock, nor be claimed twice; once the clock
// comes back it runs once. A task leased by a replica whose clock is
// ahead is not taken by one whose clock is behind.
func TestReview139ClockBackwardNeitherRetriesEarlyNorStealsLease(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var calls atomic.Int32
	fail := atomic.Bool{}
	fail.Store(true)
	hook := func(context.Context, sa.Grant) error {
		calls.Add(1)
		if fail.Load() {
			return errBoom
		}
		return nil
	}
	m := r139Mgr(t, st, clock, sa.OnExpire(hook))
	g := r139Grant(t, m, "acme", "")
	clock.Set(g.ExpiresAt)
	_, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), calls.Load())
	failedAt := clock.Now()
	clock.Set(failedAt.Add(-time.Hour))
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), calls.Load(), "ran with the clock set back")

	// A replica whose clock is ahead leases the retry; one behind must not
	// take it.
	ahead := failedAt.Add(time.Hour)
	tasks, err := st.ClaimHookTasks(ctx, ahead, 10, sa.Lease{Token: "ahead", Until: ahead.Add(sa.DefaultHookLease)})
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	clock.Set(failedAt.Add(sa.DefaultHookRetryMin))
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), calls.Load(), "a replica whose clock is behind took a leased task")
	n, err := st.FinishHookTasks(ctx, "ahead", tasks, nil)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	fail.Store(false)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load())
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load())
	require.Len(t, r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookSucceeded}}), 1)
}

// Attack: extreme options — the longest lease and retry delays a host can
// pass. The hooks' deadline must lie in the future (not overflow into the
// past, failing every hook uncalled), the lease and next_at are capped
// rather than wrapped, and the retry state still round-trips.
func TestReview139ExtremeLeaseAndRetryDoNotOverflow(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var calls atomic.Int32
	var deadlineOK atomic.Bool
	m := r139Mgr(t, st, clock, sa.WithExpireHookLease(math.MaxInt64), sa.WithExpireHookRetry(time.Hour, math.MaxInt64),
		sa.OnExpire(func(ctx context.Context, _ sa.Grant) error {
			dl, ok := ctx.Deadline()
			deadlineOK.Store(!ok || dl.After(time.Now().Add(time.Hour)))
			if calls.Add(1) <= 2 {
				return errBoom
			}
			return nil
		}))
	g := r139Grant(t, m, "acme", "")
	clock.Set(g.ExpiresAt)
	_, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), calls.Load())
	require.True(t, deadlineOK.Load(), "the hooks' deadline overflowed into the past")
	clock.Advance(time.Hour)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load())
	clock.Advance(2 * time.Hour)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(3), calls.Load())
	require.Len(t, r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed}}), 2)
	succ := r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookSucceeded}})
	require.Len(t, succ, 1)
	require.Equal(t, "2", succ[0].Attrs[sa.AttrAttempts])
}

// Attack: Sweep called directly after Close. The API keeps working after
// Close (its doc): the expiry is recorded once and its hook runs once;
// RunExpiry is refused.
func TestReview139SweepAfterCloseRunsHooksOnce(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	h := &hookLog{}
	m := r139Mgr(t, st, clock, sa.OnExpire(h.hook))
	g := r139Grant(t, m, "acme", "")
	require.NoError(t, m.Close())
	clock.Set(g.ExpiresAt)
	n, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 1, h.count(g.ID))
	require.ErrorIs(t, m.RunExpiry(ctx, time.Millisecond), sa.ErrClosed)
}

// r139SQLite returns n stores on one SQLite file (replicas) and a handle
// on it with the tables' prefix.
func r139SQLite(t *testing.T, n int) ([]*sqlstore.Store, *sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r139.db")
	prefix := sqltest.NewPrefix()
	sts := make([]*sqlstore.Store, n)
	for i := range sts {
		sts[i] = sqltest.NewStoreOn(t, sqltest.OpenSQLite(t, path), sqlstore.SQLite, sqlstore.WithTablePrefix(prefix))
	}
	return sts, sqltest.OpenSQLite(t, path), prefix
}

// Attack: the claim transaction fails after the grant's expiry was
// written but before its hook task was (here a trigger refuses the hook
// task's INSERT). Nothing of the claim may stay: no grant.expired event
// without a hook task (the hooks would never run), and the expiry stays
// due; once the fault is gone the expiry is recorded once and the hook
// runs once.
func TestReview139SQLiteFailedTaskInsertLeavesExpiryDue(t *testing.T) {
	sts, db, prefix := r139SQLite(t, 1)
	st := sts[0]
	clock := storetest.NewClock(storetest.Epoch)
	h := &hookLog{}
	m := r139Mgr(t, st, clock, sa.OnExpire(h.hook))
	g := r139Grant(t, m, "acme", "")
	clock.Set(g.ExpiresAt)
	_, err := db.ExecContext(ctx, `CREATE TRIGGER r139_refuse BEFORE INSERT ON `+prefix+`hook_tasks BEGIN SELECT RAISE(ABORT, 'r139 refuses'); END`)
	require.NoError(t, err)
	n, err := m.Sweep(ctx)
	require.Error(t, err)
	require.Zero(t, n)
	require.Empty(t, r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExpired}}), "an expiry recorded without its hook task")
	require.Zero(t, h.count(g.ID))

	_, err = db.ExecContext(ctx, `DROP TRIGGER r139_refuse`)
	require.NoError(t, err)
	n, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 1, h.count(g.ID))
	require.Len(t, r139Events(t, st, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExpired}}), 1)
}

// r139GrantHook checks that every grant it is called with is the grant of
// that ID as created (tenant, reason, principals), counts its calls per
// grant and fails the first call of the grants in failFirst.
type r139GrantHook struct {
	mu        sync.Mutex
	want      map[uuid.UUID]sa.Grant
	calls     map[uuid.UUID]int
	wrong     []string
	failFirst map[uuid.UUID]bool
}

func (h *r139GrantHook) run(_ context.Context, g sa.Grant) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	w, ok := h.want[g.ID]
	switch {
	case !ok:
		h.wrong = append(h.wrong, "unknown grant "+g.ID.String())
	case w.TenantID != g.TenantID || w.Reason != g.Reason || fmt.Sprint(w.Grantees) != fmt.Sprint(g.Grantees):
		h.wrong = append(h.wrong, fmt.Sprintf("grant %s: got tenant %q reason %q", g.ID, g.TenantID, g.Reason))
	}
	h.calls[g.ID]++
	if h.failFirst[g.ID] && h.calls[g.ID] == 1 {
		return errBoom
	}
	return nil
}

// Attack: two replicas (two Managers, each on its own *sql.DB on one
// SQLite file) sweep at the same moment, some hooks failing once and
// retried from the store (ClaimHookTasks reads the grants back by ID).
// Each expiry is recorded once, each hook runs exactly twice for the
// failing grants and once for the others, always with its own grant
// (never another tenant's), and every failure is audited once.
func TestReview139SQLiteReplicasRunEachHookOnceWithItsOwnGrant(t *testing.T) {
	sts, _, _ := r139SQLite(t, 2)
	clock := storetest.NewClock(storetest.Epoch)
	h := &r139GrantHook{want: map[uuid.UUID]sa.Grant{}, calls: map[uuid.UUID]int{}, failFirst: map[uuid.UUID]bool{}}
	ms := []*sa.Manager{
		r139Mgr(t, sts[0], clock, sa.OnExpire(h.run), sa.WithSweepConcurrency(2)),
		r139Mgr(t, sts[1], clock, sa.OnExpire(h.run), sa.WithSweepConcurrency(1)),
	}
	const grants = 40
	for i := range grants {
		g := r139Grant(t, ms[i%2], fmt.Sprintf("tenant-%d", i%5), fmt.Sprintf("reason %d", i))
		h.want[g.ID] = g
		h.failFirst[g.ID] = i%3 == 0
	}
	clock.Advance(time.Hour)
	sweepAll := func() int {
		var wg sync.WaitGroup
		var total atomic.Int64
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := ms[i%2].Sweep(ctx)
				if err != nil {
					t.Errorf("sweep: %v", err)
				}
				total.Add(int64(n))
			}()
		}
		wg.Wait()
		return int(total.Load())
	}
	require.Equal(t, grants, sweepAll())
	clock.Advance(sa.DefaultHookRetryMin)
	require.Zero(t, sweepAll())
	require.Zero(t, sweepAll())
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(t, h.wrong, "a hook was given a grant other than its own")
	failures := 0
	for id, fail := range h.failFirst {
		want := 1
		if fail {
			want = 2
			failures++
		}
		require.Equal(t, want, h.calls[id], "hook calls of grant %s", id)
	}
	require.Len(t, r139Events(t, sts[0], sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExpired}}), grants)
	require.Len(t, r139Events(t, sts[1], sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed}}), failures)
	require.Len(t, r139Events(t, sts[1], sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookSucceeded}}), failures)
	// Each failure is in its grant's tenant's trail.
	for _, ev := range r139Events(t, sts[0], sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed, sa.EventExpireHookSucceeded}}) {
		require.Equal(t, h.want[ev.GrantID].TenantID, ev.TenantID)
	}
}

// Attack: a replica dies holding the lease of freshly claimed expiries (on
// SQLite): nobody runs their hooks before the lease ends, and exactly one
// of two replicas sweeping at once runs them afterwards.
func TestReview139SQLiteDeadClaimerTakenOverOnce(t *testing.T) {
	sts, _, _ := r139SQLite(t, 2)
	clock := storetest.NewClock(storetest.Epoch)
	h := &serialHook{}
	mA := r139Mgr(t, sts[0], clock, sa.OnExpire(h.run))
	mB := r139Mgr(t, sts[1], clock, sa.OnExpire(h.run))
	var ids []uuid.UUID
	for i := range 5 {
		ids = append(ids, r139Grant(t, mA, fmt.Sprintf("t%d", i), "").ID)
	}
	clock.Advance(time.Hour)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	_, err := storetest.ClaimStarts(ctx, sts[0], now)
	require.NoError(t, err)
	dead := sa.Lease{Token: "dead", Until: now.Add(sa.DefaultHookLease)}
	claimed, err := sts[0].ClaimExpirations(ctx, now, 100, dead, func(g sa.Grant) ([]sa.Event, error) { return nil, nil })
	require.NoError(t, err)
	require.Len(t, claimed, 5)
	clock.Set(dead.Until.Add(-time.Microsecond))
	_, err = mB.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, h.maxInFlight.Load(), "hooks ran while the dead claimer's lease held")
	clock.Set(dead.Until)
	var wg sync.WaitGroup
	for _, m := range []*sa.Manager{mA, mB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Sweep(ctx); err != nil {
				t.Errorf("sweep: %v", err)
			}
		}()
	}
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		require.Equal(t, 1, h.calls[id])
	}
	n, err := sts[0].FinishHookTasks(ctx, dead.Token, []sa.HookTask{{Grant: sa.Grant{ID: ids[0]}, Complete: true}}, nil)
	require.NoError(t, err)
	require.Zero(t, n, "the dead claimer's token still finished a task")
}

// r139HookStore is what the bundled stores are, as far as hooks go.
type r139HookStore interface {
	sa.Store
	sa.HookStore
	sa.AuditLog
}

// r139EachStore runs f on a memstore shared by two replicas and on two
// sqlstores over one SQLite file.
func r139EachStore(t *testing.T, f func(t *testing.T, a, b r139HookStore)) {
	t.Run("memstore", func(t *testing.T) {
		st := memstore.New()
		f(t, st, st)
	})
	t.Run("sqlite", func(t *testing.T) {
		sts, _, _ := r139SQLite(t, 2)
		f(t, sts[0], sts[1])
	})
}

// Attack: replica A's lease runs out (the clock stepped) while its hook
// runs; replica B takes the task and is still running its hook when A's
// hook fails and A stores the failure. A's stale FinishHookTasks must not
// touch the task B holds: neither clear B's lease (a third replica could
// then take the task while B runs it) nor overwrite it, so that B's
// success then deletes the task and the hook runs no third time.
func TestReview139StaleFailureDoesNotClearNewerLease(t *testing.T) {
	r139EachStore(t, func(t *testing.T, a, b r139HookStore) {
		clock := storetest.NewClock(storetest.Epoch)
		var calls atomic.Int32
		bIn, bGo := make(chan struct{}), make(chan struct{})
		var mB *sa.Manager
		bDone := make(chan error, 1)
		hook := func(_ context.Context, _ sa.Grant) error {
			switch calls.Add(1) {
			case 1: // A
				clock.Advance(2 * time.Minute) // past A's one-minute lease
				go func() { _, err := mB.Sweep(ctx); bDone <- err }()
				<-bIn
				return errBoom // A fails, late
			case 2: // B
				close(bIn)
				<-bGo
				return nil
			}
			return nil
		}
		mA := r139Mgr(t, a, clock, sa.OnExpire(hook), sa.WithExpireHookLease(time.Minute))
		mB = r139Mgr(t, b, clock, sa.OnExpire(hook), sa.WithExpireHookLease(time.Minute))
		g := r139Grant(t, mA, "acme", "")
		clock.Set(g.ExpiresAt)
		_, err := mA.Sweep(ctx)
		require.NoError(t, err)
		// B still runs its hook: its lease must still hold.
		now := clock.Now().UTC().Truncate(time.Microsecond)
		probe, err := a.ClaimHookTasks(ctx, now.Add(sa.DefaultHookRetryMin), 10, sa.Lease{Token: "third", Until: now.Add(time.Hour)})
		close(bGo)
		require.NoError(t, err)
		require.Empty(t, probe, "a third replica took the task B is running: A's stale finish cleared B's lease")
		select {
		case err := <-bDone:
			require.NoError(t, err)
		case <-time.After(time.Second):
			t.Fatal("B's Sweep did not return")
		}
		clock.Advance(sa.DefaultHookRetryMax)
		_, err = mA.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, int32(2), calls.Load(), "the hook ran a third time: B's success did not delete the task")
	})
}
