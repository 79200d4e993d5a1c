// Review 47: runtime.Goexit in host code run by Sweep (t.FailNow in a
// test's auditor, Notifier or hook) — prefix TestReview47.

package supportaccess_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// goexitAuditor records events, but its first `left` calls end their
// goroutine with runtime.Goexit, as t.FailNow does.
type goexitAuditor struct {
	reviewAuditor
	left atomic.Int32
}

func (a *goexitAuditor) Record(ctx context.Context, e sa.Event) error {
	if a.left.Add(-1) >= 0 {
		runtime.Goexit()
	}
	return a.reviewAuditor.Record(ctx, e)
}

// review47Sweep runs Sweep in a goroutine of its own (which may be ended
// by runtime.Goexit) and returns its result, failing the test if it does
// not return.
func review47Sweep(t *testing.T, m *sa.Manager) (n int, err error, returned bool) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err = m.Sweep(ctx)
		returned = true
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		require.FailNow(t, "Sweep did not return")
	}
	return n, err, returned
}

// An extra auditor that calls runtime.Goexit inside a claim (run in a
// claimer goroutine) used to leave Sweep waiting for that claimer for
// ever. Now Sweep returns an error, the claim is undone and the next
// Sweep expires the grant once.
func TestReview47GoexitInClaimDoesNotHangSweep(t *testing.T) {
	before := goleak.IgnoreCurrent()
	st := memstore.New()
	aud := &goexitAuditor{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	aud.left.Store(1)

	n, err, returned := review47Sweep(t, e.m)
	require.True(t, returned, "Sweep itself returns: the Goexit was in another goroutine")
	require.ErrorContains(t, err, "runtime.Goexit")
	require.Zero(t, n)
	got, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, sa.StatusActive, got.Status(e.now().Add(-time.Microsecond)), "the claim was undone")
	evs, err := st.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventGrantExpired}})
	require.NoError(t, err)
	require.Empty(t, evs, "no expiry recorded by the undone claim")
	goleak.VerifyNone(t, before)

	require.Equal(t, 1, e.sweep(), "the grant stayed due")
	require.Equal(t, 1, aud.count(sa.EventGrantExpired, g.ID))
}

// A Notifier that calls runtime.Goexit on Sweep's own goroutine ends
// Sweep, as t.FailNow ends a test — but the claimers it started used to
// stay blocked for ever on their next batch. Now they are stopped and
// waited for.
func TestReview47GoexitInNotifierLeavesNoClaimer(t *testing.T) {
	before := goleak.IgnoreCurrent()
	var calls atomic.Int32
	notifier := sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
		if n.Type == sa.EventGrantExpired && calls.Add(1) == 1 {
			runtime.Goexit()
		}
		return nil
	})
	e := newEnv(t, sa.WithNotifier(notifier), sa.WithSweepConcurrency(2))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)

	_, _, returned := review47Sweep(t, e.m)
	require.False(t, returned, "sanity: the Notifier ended Sweep's goroutine")
	require.Equal(t, int32(1), calls.Load())
	goleak.VerifyNone(t, before)
}

// A hook that calls runtime.Goexit ends Sweep's goroutine too: the hook
// run stores its batch's outcome on the way out (the exit is a failed
// attempt: the task runs again after the retry delay), reports a store
// failure doing so, and leaves no claimer behind.
func TestReview47GoexitInHookFinishesBatch(t *testing.T) {
	for _, failFinish := range []bool{false, true} {
		name := "finish stored"
		if failFinish {
			name = "finish failed"
		}
		t.Run(name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			var calls atomic.Int32
			hook := func(context.Context, sa.Grant) error {
				if calls.Add(1) == 1 {
					runtime.Goexit()
				}
				return nil
			}
			mem := memstore.New()
			var st sa.Store = mem
			if failFinish {
				st = review44FailFinish{mem}
			}
			reported := &mwErrs{}
			e := &env{t: t, store: mem, clock: newEnv(t).clock}
			m, err := sa.NewManager(st, sa.WithNow(e.clock.Now), sa.OnExpire(hook), sa.WithErrorHandler(reported.handle))
			require.NoError(t, err)
			e.m = m
			g := e.grant(sa.GrantInput{Duration: time.Hour})
			e.clock.Set(g.ExpiresAt)

			_, _, returned := review47Sweep(t, m)
			require.False(t, returned, "sanity: the hook ended Sweep's goroutine")
			goleak.VerifyNone(t, before)
			if failFinish {
				require.True(t, reported.has(errReview44Finish),
					"the store's failure to store the outcome was not reported: %v", reported.all())
				return
			}
			all := reported.all()
			require.Len(t, all, 1, "the exit is reported as the hook's failed attempt: %v", all)
			require.ErrorContains(t, all[0], "runtime.Goexit")
			n, err := m.Sweep(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "sanity: the grant was expired by the first Sweep")
			require.Equal(t, int32(1), calls.Load(), "the failed task waits for its retry delay")
			e.clock.Advance(sa.DefaultHookRetryMin)
			_, err = m.Sweep(ctx)
			require.NoError(t, err)
			require.Equal(t, int32(2), calls.Load(), "the released task ran again after the delay")
		})
	}
}
