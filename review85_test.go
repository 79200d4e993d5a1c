package supportaccess_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// WithExpireHookLease accepts any d >= 1 s; a long lease (here 50 years)
// must still let the hooks run. lease*9/10 overflows int64 and puts the
// hooks' deadline in the past, so every hook "fails" without being called.
func TestReview85LongLeaseHooksRun(t *testing.T) {
	var calls atomic.Int32
	var errs []error
	e := newEnv(t, sa.WithExpireHookLease(50*365*24*time.Hour),
		sa.WithErrorHandler(func(_ context.Context, err error) { errs = append(errs, err) }),
		sa.OnExpire(func(context.Context, sa.Grant) error { calls.Add(1); return nil }))
	e.grant(sa.GrantInput{Duration: time.Hour, Reason: "r"})
	e.clock.Advance(2 * time.Hour)
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Empty(t, errs, "no hook failure expected")
	require.Equal(t, int32(1), calls.Load(), "the hook must run once")
	require.Empty(t, e.events(sa.EventExpireHookFailed))
}

// A retry whose hook fails because the Sweep's own deadline passed is a
// failed hook: OnExpire says it is recorded as grant.expire_hook_failed
// (and retried later, with backoff). Here the failure vanishes: no event,
// no attempt counted, nothing reported, and Sweep returns nil.
func TestReview85HookFailureAtCallerDeadlineIsRecorded(t *testing.T) {
	var fail atomic.Bool
	var reported []error
	e := newEnv(t, sa.WithErrorHandler(func(_ context.Context, err error) { reported = append(reported, err) }),
		sa.OnExpire(func(ctx context.Context, _ sa.Grant) error {
			if fail.Load() {
				return errBoom
			}
			<-ctx.Done() // slower than the caller's deadline
			return ctx.Err()
		}))
	g := e.grant(sa.GrantInput{Duration: time.Hour, Reason: "r"})
	e.clock.Set(g.ExpiresAt)
	fail.Store(true)
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, e.events(sa.EventExpireHookFailed), 1)
	reported = nil

	fail.Store(false)
	e.clock.Advance(sa.DefaultHookRetryMin)
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = e.m.Sweep(dctx)
	failed := e.events(sa.EventExpireHookFailed)
	require.True(t, err != nil || len(reported) > 0 || len(failed) == 2,
		"the retry's failure must show somewhere: Sweep err=%v, reported=%v, failed events=%d", err, reported, len(failed))
}

// slowHookClaims is a memstore whose ClaimHookTasks takes a while.
type slowHookClaims struct {
	*memstore.Store
	delay  atomic.Int64
	claims atomic.Int32
}

func (s *slowHookClaims) ClaimHookTasks(ctx context.Context, now time.Time, limit int, lease sa.Lease) ([]sa.HookTask, error) {
	s.claims.Add(1)
	tasks, err := s.Store.ClaimHookTasks(ctx, now, limit, lease)
	time.Sleep(time.Duration(s.delay.Load()))
	return tasks, err
}

// runTasks says the first task of a claim "runs even past half the lease
// (so that a slow claim still makes progress)". A claim slower than nine
// tenths of the lease handed the first hook a context already past its
// deadline: the hook was never called, yet recorded as a failed attempt.
// Such tasks are now released untouched and the slowness reported; and a
// full batch released so is not claimed again and again in one Sweep.
func TestReview85SlowClaimFirstHookNotFailedUncalled(t *testing.T) {
	st := &slowHookClaims{Store: memstore.New()}
	clock := storetest.NewClock(storetest.Epoch)
	var calls atomic.Int32
	var failing atomic.Bool
	failing.Store(true)
	var reported atomic.Int32
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithExpireHookLease(time.Second),
		sa.WithErrorHandler(func(context.Context, error) { reported.Add(1) }),
		sa.OnExpire(func(context.Context, sa.Grant) error {
			calls.Add(1)
			if failing.Load() {
				return errBoom
			}
			return nil
		}))
	require.NoError(t, err)
	var end time.Time
	for range sa.HookBatchSize { // a full batch
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Reason: "r"})
		require.NoError(t, err)
		end = g.ExpiresAt
	}
	clock.Set(end)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(sa.HookBatchSize), calls.Load())
	failing.Store(false)

	clock.Advance(sa.DefaultHookRetryMin)
	st.delay.Store(int64(950 * time.Millisecond))
	st.claims.Store(0)
	reported.Store(0)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(sa.HookBatchSize), calls.Load(), "no hook called: the claim took the lease")
	evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed}})
	require.NoError(t, err)
	require.Len(t, evs, sa.HookBatchSize, "a hook that was not called is not recorded as a failed attempt")
	require.Equal(t, int32(1), st.claims.Load(), "a batch released untouched is not claimed again in the same Sweep")
	require.NotZero(t, reported.Load(), "the slowness is reported")

	st.delay.Store(0)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2*sa.HookBatchSize), calls.Load(), "the released tasks run at the next Sweep")
}
