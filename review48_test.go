// Review 48: the expiry worker's host-code boundaries (auditors, error
// handler, hooks) — prefix TestReview48.

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

// review48GoexitOn records events like reviewAuditor, but the first event
// of type typ ends its goroutine with runtime.Goexit (t.FailNow in a
// test's auditor), once.
type review48GoexitOn struct {
	reviewAuditor
	typ  sa.EventType
	done atomic.Bool
}

func (a *review48GoexitOn) Record(ctx context.Context, e sa.Event) error {
	if e.Type == a.typ && a.done.CompareAndSwap(false, true) {
		runtime.Goexit()
	}
	return a.reviewAuditor.Record(ctx, e)
}

// TestReview48GoexitInAuditorDuringFinishLosesHookOutcome: 8eb5b91 makes
// runTasks store its batch's outcome when runtime.Goexit ends the hook
// run (the deferred `if !finished { finish() ... }`, hooks.go:202-214) —
// but `finished = true` is set (hooks.go:248) before finish() runs, and
// finish calls host code first: the extra auditors (recordEach, line 194)
// and only then hs.FinishHookTasks (line 196). An extra auditor
// (WithAuditor/MultiAuditor) that calls runtime.Goexit while recording a
// hook outcome event therefore ends the goroutine with finished already
// true: FinishHookTasks is never called. The store never gets the
// grant.expire_hook_succeeded event (lost from the trail for good), the
// task keeps its lease and Attempts, and once the lease runs out the hook
// that already succeeded runs again — and nothing is reported to the
// host. Expected: the batch's outcome is stored whatever the extra
// auditors do (set finished only once FinishHookTasks was called, or call
// it from the deferred path too), as the Goexit-in-a-hook path does.
func TestReview48GoexitInAuditorDuringFinishLosesHookOutcome(t *testing.T) {
	st := memstore.New()
	aud := &review48GoexitOn{typ: sa.EventExpireHookSucceeded}
	h := &hookLog{}
	reported := &mwErrs{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)), sa.OnExpire(h.hook),
		sa.WithErrorHandler(reported.handle))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)
	require.Equal(t, 1, e.sweep(), "sanity: expired, hook failed once")
	require.Len(t, e.events(sa.EventExpireHookFailed), 1)

	// The retry succeeds; the auditor exits while recording that fact.
	h.setFail(g.ID, nil)
	e.clock.Advance(sa.DefaultHookRetryMin)
	before := goleak.IgnoreCurrent()
	_, _, returned := review47Sweep(t, e.m)
	require.False(t, returned, "sanity: the auditor ended Sweep's goroutine")
	goleak.VerifyNone(t, before)
	require.Equal(t, 2, h.count(g.ID), "sanity: the retry ran and succeeded")

	require.Len(t, e.events(sa.EventExpireHookSucceeded), 1,
		"the hook's success was never stored: FinishHookTasks was skipped (reported: %v)", reported.all())

	// Once the lease is over, the hook that succeeded runs again.
	e.clock.Advance(sa.DefaultHookLease + time.Second)
	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, h.count(g.ID),
		"the hook that succeeded ran again without the host being told (reported: %v)", reported.all())
}

// TestReview48GoexitInLaterHookRerunsEarlierHook: runHooks (hooks.go:
// 271-278) reports how many of a grant's hooks succeeded only when it
// returns; callHook turns a panic into an error, but runtime.Goexit in a
// hook (t.FailNow in a test's hook, the case 8eb5b91 handles) unwinds
// through runHooks, so `t.Done = done` (hooks.go:222) never runs. The
// deferred finish then stores the task with Done 0 and NextAt unchanged
// (claimable at once), so the next Sweep runs hook 0 again although it
// had succeeded — "each at most once per expiry when it succeeds"
// (OnExpire doc); the ExpireHook doc promises a re-run only of the failing
// hook and those after it. Expected: progress of the hooks that returned
// nil is kept (update t.Done after each successful hook), so the retry
// resumes at the hook that exited.
func TestReview48GoexitInLaterHookRerunsEarlierHook(t *testing.T) {
	first := &hookLog{}
	var second atomic.Int32
	exiting := func(context.Context, sa.Grant) error {
		if second.Add(1) == 1 {
			runtime.Goexit()
		}
		return nil
	}
	e := newEnv(t, sa.OnExpire(first.hook), sa.OnExpire(exiting))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)

	before := goleak.IgnoreCurrent()
	_, _, returned := review47Sweep(t, e.m)
	require.False(t, returned, "sanity: the second hook ended Sweep's goroutine")
	goleak.VerifyNone(t, before)
	require.Equal(t, 1, first.count(g.ID), "sanity: the first hook succeeded")

	e.clock.Advance(sa.DefaultHookRetryMin) // the exit was a failed attempt
	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), second.Load(), "sanity: the task was retried")
	require.Equal(t, 1, first.count(g.ID), "the first hook, which had succeeded, ran again")
}

// TestReview48RequestSweepDropsAuditorErrorWhenPanicKept: sweepRequests
// (requests.go:495-501), which records request.expired through
// recordLifecycle with an extraOutcome like the grants' sweep, calls
// x.raise() before it reports x.err. When one extra auditor refuses a
// request's expiry and another panics (in the same claim), the panic
// goes to the caller and the refusal is never passed to the error
// handler: the host is not told that an auditor lacks the request.expired
// event, and since the claim committed it is never retried. The grants'
// sweep reports b.extra.err also when a panic is kept (expiry.go:323-325,
// "an auditor's error is reported also on the path where a panic is on
// its way", 33d21a9). Expected: report x.err, then raise.
func TestReview48RequestSweepDropsAuditorErrorWhenPanicKept(t *testing.T) {
	st := memstore.New()
	refusing := &reviewAuditor{fail: sa.EventRequestExpired, failErr: errAuditDown}
	panicking := &reviewAuditor{panicOn: sa.EventRequestExpired}
	reported := &mwErrs{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, refusing, panicking)),
		sa.WithErrorHandler(reported.handle))
	r := e.request(sa.RequestInput{})
	e.clock.Set(r.ExpiresAt)

	require.PanicsWithValue(t, "auditor bug", func() { _, _ = e.m.Sweep(ctx) })
	require.Len(t, e.events(sa.EventRequestExpired), 1, "sanity: the claim committed")
	require.True(t, reported.has(errAuditDown),
		"the refusing auditor's failure was never reported: %v", reported.all())
}

// review48SelfPanicErr is an error whose Error method panics with the
// error itself, the case 41f0991 made errorMessage and panicText handle
// (fmt re-panics with it: its catchPanic calls Error again to print the
// panic value, and a nested panic is re-raised). calls counts the calls
// of Error.
type review48SelfPanicErr struct{ calls *atomic.Int32 }

func (e review48SelfPanicErr) Error() string {
	e.calls.Add(1)
	panic(e)
}

// review48ErrAuditor refuses every event of type typ with err.
type review48ErrAuditor struct {
	reviewAuditor
	typ sa.EventType
	err error
}

func (a *review48ErrAuditor) Record(ctx context.Context, e sa.Event) error {
	if e.Type == a.typ {
		return a.err
	}
	return a.reviewAuditor.Record(ctx, e)
}

// TestReview48AuditorSelfPanickingErrorPanicsSweep: 41f0991 stopped
// passing host errors to fmt's %w in deliver and the hook run, because an
// error whose Error method panics with itself makes fmt call Error again
// and re-panic. recordEach (expiry.go:415-418) still builds x.err with
// fmt.Errorf("audit: %w", err) for an extra auditor's refusal of
// grant.expired: fmt calls Error twice and re-panics, x.keep keeps that
// as the claim's panic, and Sweep panics with the auditor's error value
// instead of passing the refusal to the error handler (as it does for an
// auditor whose Error returns, or panics with a plain value). Expected:
// Error called once (errorMessage) and the refusal reported, Sweep
// returning normally.
func TestReview48AuditorSelfPanickingErrorPanicsSweep(t *testing.T) {
	st := memstore.New()
	var calls atomic.Int32
	aud := &review48ErrAuditor{typ: sa.EventGrantExpired, err: review48SelfPanicErr{&calls}}
	reported := &mwErrs{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)), sa.WithErrorHandler(reported.handle))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)

	var n int
	var err error
	var p any
	func() {
		defer func() { p = recover() }() // p is not formatted: fmt would re-panic
		n, err = e.m.Sweep(ctx)
	}()
	_, isAuditorErr := p.(review48SelfPanicErr)
	require.False(t, p != nil, "an auditor's refusal became a panic of Sweep (with the auditor's error: %t; Error called %d times)",
		isAuditorErr, calls.Load())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, reported.all(), 1, "the auditor's refusal is reported")
	require.Equal(t, int32(1), calls.Load(), "the auditor error's Error method is called once")
}

// TestReview48SelfPanickingErrorMessageCallsErrorThrice: errorMessage
// (notify.go:199-206) is documented, and used by deliver (notify.go:151)
// and the hook run (hooks.go:236) as "host code, called once" — 41f0991:
// "Host error and panic texts never call host code twice". But when
// err.Error() panics with err itself (the case 41f0991 names), the
// fallback formats the panic value with panicText(p), i.e. fmt.Sprint(err):
// fmt calls Error again (second call), catches that panic and calls Error
// once more to print the panic value (third call), then re-panics, and
// only then does panicText fall back to the type. A Notifier's or hook's
// error method thus runs three times per failure. panicText alone (a hook
// or Notifier that panics with such an error, callHook hooks.go:284 and
// callNotifier notify.go:169) calls it twice. Expected: once —
// errorMessage must not format a panic value that is err itself (or any
// error) through its Error method again, and panicText must not let fmt
// retry a panicking Error method.
func TestReview48SelfPanickingErrorMessageCallsErrorThrice(t *testing.T) {
	t.Run("hook", func(t *testing.T) {
		var calls atomic.Int32
		hook := func(context.Context, sa.Grant) error { return review48SelfPanicErr{&calls} }
		reported := &mwErrs{}
		e := newEnv(t, sa.OnExpire(hook), sa.WithErrorHandler(reported.handle))
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		e.clock.Set(g.ExpiresAt)
		require.Equal(t, 1, e.sweep())
		require.Len(t, e.events(sa.EventExpireHookFailed), 1, "sanity: the failure is recorded")
		require.Equal(t, int32(1), calls.Load(), "the hook error's Error method is called once")
	})
	t.Run("hook panics", func(t *testing.T) {
		var calls atomic.Int32
		hook := func(context.Context, sa.Grant) error { panic(review48SelfPanicErr{&calls}) }
		e := newEnv(t, sa.OnExpire(hook), sa.WithErrorHandler((&mwErrs{}).handle))
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		e.clock.Set(g.ExpiresAt)
		require.Equal(t, 1, e.sweep())
		require.Len(t, e.events(sa.EventExpireHookFailed), 1, "sanity: the failure is recorded")
		require.LessOrEqual(t, calls.Load(), int32(1), "the panic value's Error method is called at most once (panicText)")
	})
	t.Run("notifier", func(t *testing.T) {
		var calls atomic.Int32
		var fail atomic.Bool
		notifier := sa.NotifierFunc(func(context.Context, sa.Notification) error {
			if fail.Load() {
				return review48SelfPanicErr{&calls}
			}
			return nil
		})
		reported := &mwErrs{}
		e := newEnv(t, sa.WithNotifier(notifier), sa.WithErrorHandler(reported.handle))
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		e.clock.Set(g.ExpiresAt)
		fail.Store(true)
		require.Equal(t, 1, e.sweep())
		require.Len(t, e.events(sa.EventNotifyFailed), 1, "sanity: the failure is recorded")
		require.Equal(t, int32(1), calls.Load(), "the Notifier error's Error method is called once")
	})
}

// TestReview48NotifyFailureReportLostToAuditorSelfPanickingError: the
// same fmt %w on an auditor's error, in record (manager.go:301-306, which
// deliver calls at notify.go:159 to record notify.failed on every
// auditor): when an extra auditor refuses notify.failed with an error
// whose Error method panics with itself, fmt re-panics inside record, the
// panic leaves deliver before m.reportError (notify.go:162), and the
// Notifier's failure is never passed to the error handler — Sweep keeps
// the panic and raises it instead. deliver's doc: a failure is recorded
// "and hands it to the error handler". Expected: the Notifier's failure
// (and the auditor's, under a text errorMessage built) reported, no
// panic.
func TestReview48NotifyFailureReportLostToAuditorSelfPanickingError(t *testing.T) {
	st := memstore.New()
	var calls atomic.Int32
	aud := &review48ErrAuditor{typ: sa.EventNotifyFailed, err: review48SelfPanicErr{&calls}}
	var fail atomic.Bool
	notifier := sa.NotifierFunc(func(context.Context, sa.Notification) error {
		if fail.Load() {
			return errBoom
		}
		return nil
	})
	reported := &mwErrs{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)), sa.WithNotifier(notifier),
		sa.WithErrorHandler(reported.handle))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	fail.Store(true)

	var p any
	func() {
		defer func() { p = recover() }() // p is not formatted: fmt would re-panic
		_, _ = e.m.Sweep(ctx)
	}()
	require.Len(t, e.events(sa.EventNotifyFailed), 1, "sanity: the store recorded the failure")
	require.True(t, reported.has(errBoom), "the Notifier's failure was never reported (Sweep panicked: %t)", p != nil)
	require.False(t, p != nil, "Sweep panicked")
}

// TestReview48NotifyFailureLostWhenAuditorPanics: deliver (notify.go:
// 159-162) records notify.failed with m.record, which for a fact writes
// to "every auditor, the store first, whatever the others return"
// (manager.go:296-311) — but nothing there recovers an auditor's panic.
// An extra auditor that panics on notify.failed during Sweep therefore
// (a) keeps the auditors after it from getting the event, and (b) leaves
// deliver before m.reportError, so the Notifier's failure never reaches
// the error handler; Sweep's keep step (expiry.go:309-312) only keeps the
// panic for the caller. deliver's doc: the failure is recorded "and
// hands it to the error handler"; the hook run records its outcome events
// on each auditor whatever the others do, a panic included (recordEach).
// Expected: the same here — each auditor gets the event, the failure is
// reported, and the panic is raised afterwards.
func TestReview48NotifyFailureLostWhenAuditorPanics(t *testing.T) {
	st := memstore.New()
	panicking := &reviewAuditor{panicOn: sa.EventNotifyFailed}
	after := &reviewAuditor{}
	var fail atomic.Bool
	notifier := sa.NotifierFunc(func(context.Context, sa.Notification) error {
		if fail.Load() {
			return errBoom
		}
		return nil
	})
	reported := &mwErrs{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, panicking, after)), sa.WithNotifier(notifier),
		sa.WithErrorHandler(reported.handle))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)
	fail.Store(true)

	require.PanicsWithValue(t, "auditor bug", func() { _, _ = e.m.Sweep(ctx) }, "sanity: the auditor's panic reaches the caller")
	require.Len(t, e.events(sa.EventNotifyFailed), 1, "sanity: the store recorded the failure")
	require.True(t, reported.has(errBoom), "the Notifier's failure was never reported: %v", reported.all())
	require.Equal(t, 1, after.count(sa.EventNotifyFailed, g.ID), "the auditor after the panicking one never got notify.failed")
}
