package supportaccess_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
)

// Review of the concurrent Sweep: a panic in Sweep's own goroutine while
// it handles a batch (here the host's error handler, called for a failing
// expiry hook) must not strand the claimers on the unbuffered channel: the
// batches they already committed are still notified, every claimer returns
// and the panic then reaches Sweep's caller, as a claimer's panic does.
func TestReviewSweepHandlerPanicLeaksNoClaimer(t *testing.T) {
	before := goleak.IgnoreCurrent()
	const n = 2*sa.SweepBatchSize + 500 // three batches
	notes := &notes{}
	e := newEnv(t, sa.WithSweepConcurrency(2), sa.WithNotifier(notes),
		sa.OnExpire(func(context.Context, sa.Grant) error { return errors.New("hook failed") }),
		sa.WithErrorHandler(func(context.Context, error) { panic("error handler bug") }))
	e.grantMany(n)
	e.clock.Advance(time.Hour)

	require.PanicsWithValue(t, "error handler bug", func() { _, _ = e.m.Sweep(ctx) })
	require.NoError(t, goleak.Find(before), "every claimer returned before Sweep panicked")
	expired := len(e.events(sa.EventGrantExpired))
	require.Equal(t, expired, countType(notes.types(), sa.EventGrantExpired),
		"every batch committed as expired was notified")
}

// overrunHook blocks its first call until its context ends and then
// overruns the deadline (ExpireHook allows it); it records every call.
type overrunHook struct {
	mu      sync.Mutex
	calls   map[uuid.UUID]int
	first   bool
	overrun time.Duration
}

func (h *overrunHook) run(ctx context.Context, g sa.Grant) error {
	h.mu.Lock()
	if h.calls == nil {
		h.calls = map[uuid.UUID]int{}
	}
	h.calls[g.ID]++
	block := !h.first
	h.first = true
	h.mu.Unlock()
	if !block {
		return nil
	}
	<-ctx.Done()
	time.Sleep(h.overrun) // wall clock of the hook lease, not of expiry
	return ctx.Err()
}

// Review of the per-batch lease budget: a batch claimed while the previous
// batch's hooks ran waits in the channel, and its budget (runTasks' start)
// runs down meanwhile. A hook that was never called must not be recorded
// as a failed attempt (grant.expire_hook_failed, "context deadline
// exceeded"); the batch's tasks are to be released untouched instead.
func TestReviewSweepQueuedBatchHookNotFailedUncalled(t *testing.T) {
	const n = 2*sa.SweepBatchSize + 500 // three batches
	h := &overrunHook{overrun: 200 * time.Millisecond}
	e := newEnv(t, sa.WithSweepConcurrency(2), sa.WithExpireHookLease(time.Second),
		sa.OnExpire(h.run), sa.WithErrorHandler(func(context.Context, error) {}))
	e.grantMany(n)
	e.clock.Advance(time.Hour)

	got, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, n, got)

	failed := e.events(sa.EventExpireHookFailed)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range failed {
		require.NotZero(t, h.calls[ev.GrantID], "grant %s: failure recorded for a hook never called (%s)", ev.GrantID, ev.Attrs[sa.AttrError])
	}
	require.Len(t, failed, 1, "only the overrunning hook failed")
	require.Len(t, h.calls, n, "every other hook ran in this sweep")
}
