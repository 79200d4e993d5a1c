// Review 43: 78f857b (sweep's collector runs each step of a committed
// batch under keep; runTasks reports an auditor's error before raising a
// kept panic, finish records with its own context) — prefix TestReview43.

package supportaccess_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

var errReview43Audit = errors.New("review43 auditor down")

// review43Auditor refuses (errReview43Audit) every event of type fail.
type review43Auditor struct {
	fail sa.EventType
}

func (a *review43Auditor) Record(_ context.Context, e sa.Event) error {
	if e.Type == a.fail {
		return errReview43Audit
	}
	return nil
}

// TestReview43HandlerPanicOnHookFailureSkipsRestOfBatchHooks: 78f857b
// runs each step of a committed batch under keep, "so that a panic does
// not leave the rest of a committed batch unhandled" (expiry.go:269-273),
// and Sweep's doc (expiry.go:65-68) says a panic reaches the caller
// "after every batch already committed has been handled". But the hooks
// of a batch are one step: inside runTasks the report of one task's hook
// failure (hooks.go:231, m.reportError in the loop) is not kept — a
// panicking error handler there ends the loop, and the hooks of every
// later grant of the same committed batch are not run in this Sweep
// (released untouched), although the error handler panicked only about
// another grant. The same handler panic in deliver (a Notifier failure)
// lets the batch's other grants and its hooks go on since 78f857b.
func TestReview43HandlerPanicOnHookFailureSkipsRestOfBatchHooks(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	h := &hookLog{}
	var panicked atomic.Bool
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(h.hook),
		sa.WithErrorHandler(func(context.Context, error) {
			if panicked.CompareAndSwap(false, true) {
				panic("error handler bug")
			}
		}))
	require.NoError(t, err)
	g1, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Advance(time.Minute)
	g2, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	h.setFail(g1.ID, errBoom) // g1 expires first: its task runs first
	clock.Set(g2.ExpiresAt)

	require.PanicsWithValue(t, "error handler bug", func() { _, _ = m.Sweep(ctx) })
	require.Equal(t, 1, h.count(g1.ID), "sanity: g1's hook ran and failed")
	require.Equal(t, 1, h.count(g2.ID),
		"g2's expiry was committed in the same batch, but its hook never ran: the error handler's panic on g1's hook failure ended runTasks' loop")
}

// TestReview43HookAuditorErrorLostWhenHandlerPanicsInLoop: 78f857b makes
// runTasks report an extra auditor's failure to record the batch's hook
// events (x.err) "before raising another's panic" (hooks.go:236-248) —
// but only on the normal path. When the error handler panics on a hook
// failure inside the loop, the deferred finish (hooks.go:197-201,
// `_, _ = finish()`) records the events and drops x: the auditor that
// refused grant.expire_hook_failed is never reported, although WithAuditor
// (manager.go:74-76) and Sweep's doc say such a failure goes to the
// error handler, and the sweep collector itself, since 78f857b, still
// reports b.extra.err after another step panicked.
func TestReview43HookAuditorErrorLostWhenHandlerPanicsInLoop(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	failing := &review43Auditor{fail: sa.EventExpireHookFailed}
	h := &hookLog{}
	var panicked atomic.Bool
	var mu sync.Mutex
	var reported []error
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(h.hook),
		sa.WithAuditor(sa.MultiAuditor(st, failing)),
		sa.WithErrorHandler(func(_ context.Context, err error) {
			mu.Lock()
			reported = append(reported, err)
			mu.Unlock()
			if panicked.CompareAndSwap(false, true) {
				panic("error handler bug")
			}
		}))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	h.setFail(g.ID, errBoom)
	clock.Set(g.ExpiresAt)

	require.PanicsWithValue(t, "error handler bug", func() { _, _ = m.Sweep(ctx) })
	evs, err := st.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventExpireHookFailed}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "sanity: the deferred finish stored the failed attempt and its event")
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, err := range reported {
		found = found || errors.Is(err, errReview43Audit)
	}
	require.True(t, found,
		"the auditor that refused grant.expire_hook_failed was never reported (the deferred finish drops x.err); reported: %v", reported)
}
