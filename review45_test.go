// Review 45: 8e221dd (errorMessage recovers a panicking Error method;
// runTasks reports the finish error and lease warning when a kept panic
// goes on) — prefix TestReview45.

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

// review45SelfPanicErr is a host error whose Error method panics with the
// error itself (a non-nil pointer, so fmt's "<nil>" shortcut does not
// apply).
type review45SelfPanicErr struct{}

func (e *review45SelfPanicErr) Error() string { panic(e) }

// TestReview45HookErrorWhosePanicValuePanicsStillEscapes: 8e221dd's
// errorMessage (notify.go:195-202) recovers err.Error()'s panic, then
// formats the panic value with %v — host code again. When the recovered
// value is itself an error whose Error panics, fmt's catchPanic sees a
// nested panic and re-panics (fmt/print.go: "Nested panics; the recursion
// in printArg cannot succeed"), so the panic leaves errorMessage's
// deferred func, errorText, and runTasks' failure branch after
// t.Attempts++ (hooks.go:236-237): the deferred finish stores the task
// with no LastError, no retry time and no grant.expire_hook_failed event,
// and Sweep panics — exactly the case 8e221dd says it fixed
// (TestReview44HookErrorWhoseTextPanicsStoredWithoutRetryTime), for a
// slightly different host error. The fmt.Errorf("...: %w", err) passed
// to report (hooks.go:246) would hit the same nested panic, outside
// report's recover.
func TestReview45HookErrorWhosePanicValuePanicsStillEscapes(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	var calls atomic.Int32
	hook := func(context.Context, sa.Grant) error {
		calls.Add(1)
		return &review45SelfPanicErr{}
	}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(hook),
		sa.WithExpireHookRetry(time.Minute, time.Hour),
		sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Set(g.ExpiresAt)

	var p1 any
	func() {
		defer func() { p1 = recover() }()
		_, _ = m.Sweep(ctx)
	}()
	require.Equal(t, int32(1), calls.Load(), "sanity: the hook ran once")
	require.Nil(t, p1, "a hook's failure must not make Sweep panic (OnExpire: failures and panics are recorded and retried)")
	evs, err := st.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventExpireHookFailed}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "the failed hook was not recorded as grant.expire_hook_failed")
	func() {
		defer func() { _ = recover() }()
		_, _ = m.Sweep(ctx) // same instant: the retry (1 min later) is not due
	}()
	require.Equal(t, int32(1), calls.Load(), "the failed task was stored without its retry time and ran again at once")
}

// TestReview45NotifierAndHookPanicsWithSelfPanickingValues: a Notifier
// that returns such an error, a Notifier and a hook that panic with one:
// the grant's change stands, the failures are recorded (notify.failed,
// grant.expire_hook_failed), and nothing panics out of Grant or Sweep.
func TestReview45NotifierAndHookPanicsWithSelfPanickingValues(t *testing.T) {
	for _, notifyPanics := range []bool{false, true} {
		st := memstore.New()
		clock := storetest.NewClock(storetest.Epoch)
		n := sa.NotifierFunc(func(context.Context, sa.Notification) error {
			if notifyPanics {
				panic(&review45SelfPanicErr{})
			}
			return &review45SelfPanicErr{}
		})
		var reported []error
		m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithNotifier(n),
			sa.OnExpire(func(context.Context, sa.Grant) error { panic(&review45SelfPanicErr{}) }),
			sa.WithErrorHandler(func(_ context.Context, err error) { reported = append(reported, err) }))
		require.NoError(t, err)
		var g sa.Grant
		require.NotPanics(t, func() {
			g, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		})
		require.NoError(t, err)
		clock.Set(g.ExpiresAt)
		require.NotPanics(t, func() { _, err = m.Sweep(ctx) })
		require.NoError(t, err)
		for _, typ := range []sa.EventType{sa.EventNotifyFailed, sa.EventExpireHookFailed} {
			evs, err := st.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{typ}})
			require.NoError(t, err)
			require.NotEmpty(t, evs, typ)
		}
		require.NotEmpty(t, reported)
		for _, err := range reported {
			require.NotPanics(t, func() { _ = err.Error() })
		}
	}
}
