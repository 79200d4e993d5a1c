// Review 44: 33d21a9 (runTasks' report keeps the error handler's first
// panic so the batch's other hooks and finish still run; the deferred
// finish path reports an auditor's error) — prefix TestReview44.

package supportaccess_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// review44NilErr is a host error type whose Error method dereferences its
// receiver: a hook that returns a typed nil *review44NilErr returns a
// non-nil error whose Error() panics (the classic typed-nil gotcha).
type review44NilErr struct{ msg string }

func (e *review44NilErr) Error() string { return e.msg }

// review44Sweep runs Sweep and returns the value it panicked with, if any.
func review44Sweep(m *sa.Manager) (p any) {
	defer func() { p = recover() }()
	_, _ = m.Sweep(ctx)
	return nil
}

// TestReview44HookErrorWhoseTextPanicsStoredWithoutRetryTime: OnExpire
// (hooks.go:60-62) says a hook that fails "(or panics)" is recorded as
// grant.expire_hook_failed and retried by a later sweep after the
// WithExpireHookRetry delay. In runTasks' failure branch (hooks.go:236-237)
// t.Attempts is incremented before errorText(err) calls the hook error's
// Error() — host code outside callHook's recover and outside report's. If
// it panics (a typed nil error), the deferred finish (hooks.go:209-216)
// stores the task as failed (Attempts+1) but with its old NextAt (the
// sweep's now: due at once), no LastError and no expire_hook_failed
// event; the panic then leaves Sweep. The next Sweep runs the hook again
// at once with no back-off, panics again, and so on: with RunExpiry every
// tick crashes the host, and the failure never reaches the audit trail.
func TestReview44HookErrorWhoseTextPanicsStoredWithoutRetryTime(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	var calls atomic.Int32
	hook := func(context.Context, sa.Grant) error {
		calls.Add(1)
		var e *review44NilErr
		return e // non-nil error, Error() panics
	}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(hook),
		sa.WithExpireHookRetry(time.Minute, time.Hour),
		sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Set(g.ExpiresAt)

	p1 := review44Sweep(m)
	require.Equal(t, int32(1), calls.Load(), "sanity: the hook ran once")
	p2 := review44Sweep(m) // same instant: the retry (1 min later) is not due
	evs, err := st.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventExpireHookFailed}})
	require.NoError(t, err)
	require.Len(t, evs, 1,
		"the failed hook was not recorded as grant.expire_hook_failed (first sweep panicked with %v)", p1)
	require.Equal(t, int32(1), calls.Load(),
		"the failed task was stored without its retry time and ran again at once (second sweep panicked with %v)", p2)
}

var errReview44Finish = errors.New("review44 store down at finish")

// review44FailFinish is a memstore whose FinishHookTasks fails.
type review44FailFinish struct{ *memstore.Store }

func (review44FailFinish) FinishHookTasks(context.Context, string, []sa.HookTask, []sa.Event) (int, error) {
	return 0, errReview44Finish
}

// TestReview44FinishErrorLostWhenHandlerPanicKept: since 33d21a9 the
// error handler's panic on a hook failure is kept in x and the normal
// path runs finish (hooks.go:248-258) — but `if x.panicked != nil {
// panic(...) }` comes before `if err != nil { return "finish hook tasks"
// }`, so the store's failure to store the batch's outcome is neither
// returned nor reported: Sweep panics with the handler's value only. The
// host never learns that the outcome (the hooks that succeeded, the
// failure and its retry time, the hook events) was not stored, although
// the same path now reports an auditor's error (x.err) before raising.
// Succeeded hooks then run again after the lease, silently.
func TestReview44FinishErrorLostWhenHandlerPanicKept(t *testing.T) {
	st := review44FailFinish{memstore.New()}
	clock := storetest.NewClock(storetest.Epoch)
	h := &hookLog{}
	reported := &mwErrs{}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(h.hook), withPanickingHandler(reported))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	h.setFail(g.ID, errBoom)
	clock.Set(g.ExpiresAt)

	var serr error
	require.PanicsWithValue(t, "error handler bug", func() { _, serr = m.Sweep(ctx) })
	found := errors.Is(serr, errReview44Finish) || reported.has(errReview44Finish)
	require.True(t, found,
		"FinishHookTasks failed, but its error was neither returned nor reported (the kept panic is raised first); reported: %v", reported.all())
}

// TestReview44LeaseLostWarningDroppedWhenHandlerPanicKept: runTasks warns
// the error handler when FinishHookTasks finished fewer tasks than it ran
// ("hook task leases ran out ...; another replica may run them again",
// hooks.go:259-261) — the only signal that hooks that succeeded may run a
// second time. With the error handler's panic kept in x (33d21a9), that
// warning is skipped: the kept panic is raised first. Here the failing
// hook outlives the lease and another replica claims the batch's tasks;
// the other grant's hook succeeded but its outcome is not stored, and the
// host is never told.
func TestReview44LeaseLostWarningDroppedWhenHandlerPanicKept(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	var g1ID atomic.Value
	reported := &mwErrs{}
	var tookOver atomic.Int32
	hook := func(_ context.Context, g sa.Grant) error {
		if id, _ := g1ID.Load().(string); id == g.ID.String() {
			// g1's hook is slow: the lease runs out and another replica
			// claims the tasks of the batch.
			clock.Advance(sa.DefaultHookLease + time.Second)
			ts, err := st.ClaimHookTasks(context.Background(), clock.Now(), 10,
				sa.Lease{Token: "replica-2", Until: clock.Now().Add(sa.DefaultHookLease)})
			if err == nil {
				tookOver.Store(int32(len(ts)))
			}
			return errBoom
		}
		return nil
	}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(hook), withPanickingHandler(reported))
	require.NoError(t, err)
	g1, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Advance(time.Minute)
	g2, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	g1ID.Store(g1.ID.String())
	clock.Set(g2.ExpiresAt)

	require.PanicsWithValue(t, "error handler bug", func() { _, _ = m.Sweep(ctx) })
	require.Equal(t, int32(2), tookOver.Load(), "sanity: the other replica took over both tasks")
	found := slices.ContainsFunc(reported.all(), func(err error) bool { return strings.Contains(err.Error(), "leases ran out") })
	require.True(t, found,
		"the batch's leases were lost (g2's successful hook will run again on the other replica) but the warning was never reported; reported: %v", reported.all())
}
