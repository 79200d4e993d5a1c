// Review 43: 78f857b (sweep's collector runs each step of a committed
// batch under keep; runTasks reports an auditor's error before raising a
// kept panic, finish records with its own context) — prefix TestReview43.

package supportaccess_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

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
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook), withPanickingHandler(nil))
	g1 := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Advance(time.Minute)
	g2 := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g1.ID, errBoom) // g1 expires first: its task runs first
	e.clock.Set(g2.ExpiresAt)

	require.PanicsWithValue(t, "error handler bug", func() { _, _ = e.m.Sweep(ctx) })
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
	failing := &reviewAuditor{fail: sa.EventExpireHookFailed, failErr: errAuditDown}
	h := &hookLog{}
	reported := &mwErrs{}
	e := newEnvOn(t, st, sa.OnExpire(h.hook),
		sa.WithAuditor(sa.MultiAuditor(st, failing)),
		withPanickingHandler(reported))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)

	require.PanicsWithValue(t, "error handler bug", func() { _, _ = e.m.Sweep(ctx) })
	evs, err := st.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventExpireHookFailed}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "sanity: the deferred finish stored the failed attempt and its event")
	require.True(t, reported.has(errAuditDown),
		"the auditor that refused grant.expire_hook_failed was never reported (the deferred finish drops x.err); reported: %v", reported.all())
}
