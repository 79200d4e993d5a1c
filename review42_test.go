// Review 42: d8fa54a (runTasks' finish through recordEach, the sweep
// collector's deferred report of an extra auditor's error) and 14344e9
// (docs, checkSession's error) — prefix TestReview42.

package supportaccess_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// TestReview42HookAuditorErrorDroppedWhenAnotherPanics: since d8fa54a
// runTasks' finish gives each hook event to every other auditor
// (recordEach) and keeps the first error and the first panic in x. Then
// (hooks.go:235-241) it raises x.panicked before it reports x.err: an
// auditor's failure to record grant.expire_hook_failed never reaches the
// error handler when another auditor panicked in the same batch. The
// Sweep doc (expiry.go:70-71) says a failure of another auditor "is
// passed to the error handler (a panic reaches the caller ...)" — both —
// and the sweep collector does both for the claim's own events (it keeps
// b.extra.panicked and still reports b.extra.err). The operator is told
// of the panic, never that a trail destination misses the failed hook's
// record.
func TestReview42HookAuditorErrorDroppedWhenAnotherPanics(t *testing.T) {
	st := memstore.New()
	failing := &reviewAuditor{fail: sa.EventExpireHookFailed, failErr: errAuditDown}
	panicking := &reviewAuditor{panicOn: sa.EventExpireHookFailed, panicValue: "review42 auditor bug"}
	h := &hookLog{}
	reported := &mwErrs{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, failing, panicking)), sa.OnExpire(h.hook),
		sa.WithErrorHandler(reported.handle))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)

	require.PanicsWithValue(t, "review42 auditor bug", func() { _, _ = e.m.Sweep(ctx) })
	require.Equal(t, 1, h.count(g.ID), "sanity: the hook ran and failed")
	require.True(t, reported.has(errAuditDown),
		"the auditor that refused grant.expire_hook_failed was never reported (runTasks panics with x.panicked before reporting x.err); reported: %v", reported.all())
}

// TestReview42NotifyPanicSkipsRestOfBatch: d8fa54a moved the report of
// an extra auditor's error after the batch "so that a panicking error
// handler does not skip the expiry notice, listeners and hooks"
// (review41). The same panicking error handler reached through notify
// (deliver reports a Notifier failure, expiry.go:290-294 → notify.go
// deliver) still aborts the collector's loop over the batch: the other
// grants of the committed batch are never told to the Notifier (no later
// Sweep tells them: the expiry is recorded), nor to the listeners (the
// middleware's in-flight requests), and the batch's hooks wait for their
// lease. Sweep's doc (expiry.go:65-68) says a panic reaches the caller
// "after every batch already committed has been handled".
func TestReview42NotifyPanicSkipsRestOfBatch(t *testing.T) {
	var mu sync.Mutex
	notified := map[uuid.UUID]int{}
	calls := 0
	e := newEnv(t,
		sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
			if n.Type != sa.EventGrantExpired {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			notified[n.GrantID]++
			calls++
			if calls == 1 {
				return errBoom // the first expiry notice fails
			}
			return nil
		})),
		withPanickingHandler(nil))
	g1 := e.grant(sa.GrantInput{Duration: time.Hour})
	g2 := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g1.ExpiresAt.Add(time.Minute))

	require.PanicsWithValue(t, "error handler bug", func() { _, _ = e.m.Sweep(ctx) })
	e.sweep()
	for _, id := range []uuid.UUID{g1.ID, g2.ID} {
		got, err := e.m.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, sa.StatusExpired, got.Status(e.clock.Now()), "sanity: both expiries committed")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[uuid.UUID]int{g1.ID: 1, g2.ID: 1}, notified,
		"one grant of the committed batch was never notified: the error handler's panic in deliver aborted the batch's loop")
}

// TestReview42DeferredReportPanicReplacesFirstPanic: with the report of
// the extra auditor's error now deferred (expiry.go:283-289), a panic
// of the batch's handling (here the error handler called by deliver for
// a failed notice) runs that defer while panicking; when the error
// handler panics again there, Go replaces the first panic with the
// second, and the collector's recover (expiry.go:274-281) keeps the
// second. Everywhere else the collector keeps the first panic (if
// panicked == nil): Sweep now raises the report's panic and the panic
// that actually aborted the batch's notices, listeners and hooks is
// lost for good.
func TestReview42DeferredReportPanicReplacesFirstPanic(t *testing.T) {
	st := memstore.New()
	failing := &reviewAuditor{fail: sa.EventGrantExpired, failErr: errAuditDown}
	e := newEnvOn(t, st,
		sa.WithAuditor(sa.MultiAuditor(st, failing)),
		sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
			if n.Type == sa.EventGrantExpired {
				return errBoom
			}
			return nil
		})),
		sa.WithErrorHandler(func(_ context.Context, err error) {
			panic(fmt.Sprintf("handler: %v", err))
		}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)

	var got any
	func() {
		defer func() { got = recover() }()
		_, _ = e.m.Sweep(ctx)
	}()
	require.NotNil(t, got, "sanity: Sweep panicked")
	require.Contains(t, fmt.Sprint(got), "notify grant.expired",
		"Sweep raised the second panic (the deferred report's) and swallowed the first (deliver's), which aborted the batch")
}

// TestReview42HookEventsRecordedWithEndedContext: runTasks' finish "runs
// also when ctx ended" and stores the batch's outcome with a context
// that does not end (hooks.go:189-196), but gives the events to the
// other auditors with ctx itself (recordEach(ctx, ...)). A shutdown
// during a batch's hooks (ctx cancelled while a later task's hook runs)
// makes every auditor that honours its context refuse the earlier
// tasks' grant.expire_hook_failed, while FinishHookTasks stores the
// attempt: when the store keeps no events the failed attempt is counted
// with no event anywhere — what the comment rules out ("no attempt is
// stored without its event"), and the later expire_hook_succeeded says
// "attempts: 2" of a failure the trail never shows. deliver uses
// lateContext for notify.failed for this very reason.
func TestReview42HookEventsRecordedWithEndedContext(t *testing.T) {
	trail := &reviewAuditor{ctxAware: true}
	var (
		hmu     sync.Mutex
		round   int
		calls   int
		failed  uuid.UUID
		cancel2 context.CancelFunc
	)
	hook := func(hctx context.Context, g sa.Grant) error {
		hmu.Lock()
		defer hmu.Unlock()
		if round == 1 {
			return errBoom
		}
		calls++
		if calls == 1 {
			failed = g.ID
			return errBoom // attempt 2 of this task fails
		}
		cancel2() // shutdown while the next hook runs
		return context.Cause(hctx)
	}
	e := newEnv(t, sa.WithAuditor(trail), sa.OnExpire(hook),
		sa.WithErrorHandler(func(context.Context, error) {}))
	g1 := e.grant(sa.GrantInput{Duration: time.Hour})
	g2 := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g1.ExpiresAt.Add(time.Minute))
	hmu.Lock()
	round = 1
	hmu.Unlock()
	e.sweep()
	require.Len(t, trail.find(sa.EventExpireHookFailed, g1.ID), 1, "sanity: attempt 1 recorded")
	require.Len(t, trail.find(sa.EventExpireHookFailed, g2.ID), 1, "sanity: attempt 1 recorded")

	// The retries are due: one batch of runHookTasks takes both.
	e.clock.Advance(sa.DefaultHookRetryMin + time.Second)
	hmu.Lock()
	round = 2
	ctx2, c := context.WithCancel(ctx)
	cancel2 = c
	hmu.Unlock()
	defer c()
	_, _ = e.m.Sweep(ctx2)
	hmu.Lock()
	id := failed
	hmu.Unlock()
	require.NotEqual(t, uuid.Nil, id, "sanity: a retry failed")

	tasks, err := e.store.ClaimHookTasks(ctx, e.clock.Now().Add(24*time.Hour), 10,
		sa.Lease{Token: "review42", Until: e.clock.Now().Add(48 * time.Hour)})
	require.NoError(t, err)
	attempts := -1
	for _, tk := range tasks {
		if tk.Grant.ID == id {
			attempts = tk.Attempts
		}
	}
	require.Equal(t, 2, attempts, "sanity: the second failed attempt was stored")
	require.Len(t, trail.find(sa.EventExpireHookFailed, id), 2,
		"the stored attempt 2 has no grant.expire_hook_failed in the trail: finish recorded it with the ended ctx")
}
