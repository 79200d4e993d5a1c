package supportaccess_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// TestReview98RevokeTenantHostPanicSkipsOtherNotifications: RevokeTenant
// commits every revocation, then (deferred) tells the Notifier about each
// one in a plain loop. A panic of host code while telling the first (the
// error handler that receives its notification failure) ends that loop:
// the other revoked grants are never notified, nor is a notify.failed
// recorded for them, although their revocations committed. Sweep guards
// exactly this case (review42: "every batch already committed is still
// handled" before the panic goes on); RevokeTenant/RevokeTicket do not.
func TestReview98RevokeTenantHostPanicSkipsOtherNotifications(t *testing.T) {
	var mu sync.Mutex
	notified := map[uuid.UUID]int{}
	calls := 0
	e := newEnv(t,
		sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
			if n.Type != sa.EventGrantRevoked {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			notified[n.GrantID]++
			calls++
			if calls == 1 {
				return errBoom // the first revocation notice fails
			}
			return nil
		})),
		withPanickingHandler(nil))
	g1 := e.grant(sa.GrantInput{Duration: time.Hour})
	g2 := e.grant(sa.GrantInput{Duration: time.Hour})

	require.PanicsWithValue(t, "error handler bug", func() {
		_, _ = e.m.RevokeTenant(ctx, "acme", customer, "offboarding")
	})
	for _, id := range []uuid.UUID{g1.ID, g2.ID} {
		got, err := e.m.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, sa.StatusRevoked, got.Status(e.clock.Now()), "sanity: both revocations committed")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, notified, 2,
		"a committed revocation was never notified: the error handler's panic while reporting the first notice's failure aborted RevokeTenant's notification loop")
}

// TestReview98HookFailureDuringCloseLeavesNoTrace: an expiry hook that
// fails while Close is stopping the RunExpiry loop (here it panics — a
// bug of its own, not the cancellation) is neither audited as
// grant.expire_hook_failed nor passed to the error handler: runTasks
// treats every error met while the Sweep's context is cancelled as
// "shutting down" and drops it. OnExpire's doc: "A hook that fails (or
// panics) is recorded as grant.expire_hook_failed"; Sweep's: "A failing
// hook is ... audited and passed to the error handler". Not counting an
// attempt at shutdown is a fair choice; losing the failure itself is an
// audit gap (the hook may have half-run: say, a support user left
// half-deleted), and a later success records nothing either (Attempts is
// still 0), so the trail never shows it.
func TestReview98HookFailureDuringCloseLeavesNoTrace(t *testing.T) {
	entered := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var reported []error
	e := newEnvOn(t, memstore.New(),
		sa.OnExpire(func(hctx context.Context, g sa.Grant) error {
			first := false
			once.Do(func() { first = true })
			if !first {
				return nil
			}
			close(entered)
			<-hctx.Done()                      // Close is stopping the loop
			panic("support user half deleted") // a bug of the hook's own
		}),
		sa.WithErrorHandler(func(_ context.Context, err error) {
			mu.Lock()
			reported = append(reported, err)
			mu.Unlock()
		}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt.Add(time.Minute))

	done := make(chan error, 1)
	go func() { done <- e.m.RunExpiry(context.Background(), time.Hour) }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the hook was not called")
	}
	require.NoError(t, e.m.Close())
	require.ErrorIs(t, <-done, sa.ErrClosed)

	mu.Lock()
	defer mu.Unlock()
	failed := e.events(sa.EventExpireHookFailed)
	require.True(t, len(failed) > 0 || len(reported) > 0,
		"the hook panicked (a bug of its own) while Close stopped the loop, yet no grant.expire_hook_failed was recorded and nothing reached the error handler: the failure left no trace")
}
