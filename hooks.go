package supportaccess

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Event types of expiry hooks.
const (
	// EventExpireHookFailed records a failed (or panicking) expiry hook;
	// Attrs carry the hook's position (AttrHook), the attempt number
	// (AttrAttempt), the error (AttrError) and when it is retried
	// (AttrNextAt).
	EventExpireHookFailed EventType = "grant.expire_hook_failed"
	// EventExpireHookSucceeded records that the hooks of an expiry ran to
	// the end after one or more failures (AttrAttempts: how many failed).
	// A first-time success is not recorded: grant.expired says it all.
	EventExpireHookSucceeded EventType = "grant.expire_hook_succeeded"
)

// Attribute keys of the expiry hook events (Event.Attrs). Values are
// decimal integers, and AttrNextAt a time in RFC 3339 with microseconds,
// UTC.
const (
	// AttrHook is the position, from 0, of the hook that failed among the
	// Manager's expiry hooks (grant.expire_hook_failed).
	AttrHook = "hook"
	// AttrAttempt is the number, from 1, of the failed attempt
	// (grant.expire_hook_failed).
	AttrAttempt = "attempt"
	// AttrNextAt is when the failed hook is retried
	// (grant.expire_hook_failed).
	AttrNextAt = "next_at"
	// AttrAttempts is how many attempts failed before the hooks ran to
	// the end (grant.expire_hook_succeeded).
	AttrAttempts = "attempts"
)

// Defaults of the expiry hook options.
const (
	// DefaultHookLease is how long a sweep holds the hook tasks it claimed.
	DefaultHookLease = 5 * time.Minute
	// DefaultHookRetryMin and DefaultHookRetryMax bound the delay before a
	// failed hook is retried: DefaultHookRetryMin after the first failure,
	// doubling with each further one up to DefaultHookRetryMax.
	DefaultHookRetryMin = 30 * time.Second
	DefaultHookRetryMax = time.Hour
	// HookBatchSize is how many hook tasks one claim leases. The hooks of a
	// batch run one after the other; tasks not started within half the
	// lease are handed back for the next claim.
	HookBatchSize = 500
)

// ExpireHook is host code run once for each grant expiry that Sweep
// records, for example to delete the generic support+<tenant>@ user or end
// support sessions. It should be idempotent: after a failure it is called
// again (so is any hook after it), and if it outlives its deadline it may
// run twice.
type ExpireHook func(ctx context.Context, g Grant) error

// lifecycle holds the Manager's expiry hook configuration.
type lifecycle struct {
	hooks              []ExpireHook
	lease              time.Duration
	retryMin, retryMax time.Duration
	sweepConcurrency   int
	err                error // a bad option, reported by NewManager
}

// OnExpire registers hook to run for every grant expiry Sweep records
// (revocations are not expiries; use the Notifier for those). Several hooks
// run in registration order, each once per expiry when it succeeds —
// unless storing that outcome fails (FinishHookTasks: Sweep returns the
// error), after which the task is run again once its lease has ended, so
// hooks must be idempotent (see ExpireHook). Hooks run in the goroutine
// of Sweep after the grant.expired event committed, by exactly one
// replica: the claim of the expiry creates a persistent hook task in the
// same transaction, and the task is leased to one sweep at a time (see
// WithExpireHookLease). A hook that fails (or
// panics, or calls runtime.Goexit, which then ends Sweep's goroutine) is
// recorded as grant.expire_hook_failed and retried, from that
// hook on, by a later sweep (see WithExpireHookRetry); it never blocks the
// hooks of other grants. Every replica must register the same hooks in the
// same order, since a retry resumes by position. A task runs only once
// its grant has expired by the claiming replica's clock, and once per
// grant however a store lists it; do not delete a grant's row while its
// hooks have not finished (its task would never run again, reported at
// each claim).
//
// The store must implement HookStore (the bundled stores do); NewManager
// returns an error wrapping errors.ErrUnsupported otherwise. Nil is ignored.
func OnExpire(hook ExpireHook) Option {
	return optionFunc(func(m *Manager) {
		if hook != nil {
			m.life.hooks = append(m.life.hooks, hook)
		}
	})
}

// WithExpireHookLease sets how long a sweep holds the hook tasks it claimed
// before another replica may take them over (for example after a crash).
// A sweep starts no new task after half the lease and cancels the hooks'
// context at nine tenths of it, so that two replicas never run the hooks of
// one expiry at the same time — as long as the replicas' clocks (WithNow,
// default time.Now), by which each judges whether a lease has ended,
// differ by less than a tenth of the lease, and none jumps forward by more
// than that while hooks run (the hooks' deadline follows real elapsed
// time, the leases the clock). Default: DefaultHookLease (5
// minutes).
// NewManager returns an ErrInvalidInput error for d < 1 s.
func WithExpireHookLease(d time.Duration) Option {
	return optionFunc(func(m *Manager) {
		if d < time.Second {
			m.life.err = fmt.Errorf("%w: expire hook lease %s is shorter than a second", ErrInvalidInput, d)
			return
		}
		m.life.lease = d
	})
}

// WithExpireHookRetry sets the delay before a failed hook is retried: min
// after the first failure, doubling with every further failure up to max.
// Retries never stop while the store keeps the task. Default:
// DefaultHookRetryMin (30 s) and DefaultHookRetryMax (1 h). NewManager
// returns an ErrInvalidInput error unless 1µs <= min <= max (the stores
// keep times to the microsecond: a shorter delay would be none).
func WithExpireHookRetry(min, max time.Duration) Option {
	lo, hi := min, max
	return optionFunc(func(m *Manager) {
		if lo < time.Microsecond || hi < lo {
			m.life.err = fmt.Errorf("%w: expire hook retry delays %s and %s must satisfy 1µs <= min <= max", ErrInvalidInput, lo, hi)
			return
		}
		m.life.retryMin, m.life.retryMax = lo, hi
	})
}

// validateLifecycle completes the lifecycle configuration for NewManager.
func (m *Manager) validateLifecycle() error {
	l := &m.life
	if l.err != nil {
		return l.err
	}
	if l.lease == 0 {
		l.lease = DefaultHookLease
	}
	if l.retryMin == 0 {
		l.retryMin, l.retryMax = DefaultHookRetryMin, DefaultHookRetryMax
	}
	if l.sweepConcurrency == 0 {
		l.sweepConcurrency = DefaultSweepConcurrency
	}
	if len(l.hooks) > 0 {
		if _, ok := m.store.(HookStore); !ok {
			return fmt.Errorf("%w: OnExpire needs a store that implements supportaccess.HookStore", errors.ErrUnsupported)
		}
	}
	return nil
}

// retryDelay is the delay after the given number of failed attempts (>= 1).
func (l *lifecycle) retryDelay(attempts int) time.Duration {
	d := l.retryMin
	for i := 1; i < attempts && d < l.retryMax; i++ {
		if d > l.retryMax/2 {
			return l.retryMax // doubling would pass max (or overflow)
		}
		d *= 2
	}
	return min(d, l.retryMax)
}

// runHookTasks claims, in batches, the hook tasks that were due at dueBy
// (the sweep's time) and runs them until none is left. Only those: a task
// that fails here is due again after its retry delay, measured from the
// clock as it runs, so it is after dueBy and left to a later sweep —
// else failing hooks (slow ones, with a short retry delay) would keep one
// sweep claiming the tasks it just failed, for ever.
func (m *Manager) runHookTasks(ctx context.Context, hs HookStore, dueBy time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now() // real time: bounds the hooks' own duration
		lease := Lease{Token: newID().String(), Until: capTime(m.now().Add(m.life.lease))}
		tasks, err := hs.ClaimHookTasks(ctx, dueBy, HookBatchSize, lease)
		if err != nil {
			return fmt.Errorf("claim hook tasks: %w", err)
		}
		if len(tasks) == 0 {
			return nil
		}
		claimed := len(tasks)
		if tasks = m.dueTasks(ctx, tasks); len(tasks) == 0 {
			return nil // all of them refused: a store that lists them again would loop
		}
		ran, err := m.runTasks(ctx, hs, lease.Token, tasks, start, false)
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err // the caller's deadline or cancellation cut the batch short
		}
		if claimed < HookBatchSize || !ran {
			return nil // none left, or claims too slow to run any (reported): the next Sweep tries again
		}
	}
}

// dueTasks is what ClaimHookTasks returned that may run: each grant's task
// once, and only of a grant that has expired by the Manager's clock (a
// store that returns a task twice, or one of an active grant, would have
// the hooks run twice, or before the expiry: review 165). What is left
// out is reported; its lease runs out (a replica whose clock lags the one
// that recorded the expiry so leaves the task to the next claim). A task
// whose grant row was deleted (a store hands it over as Grant{ID}) is so
// left for ever, reported at each claim: do not delete a grant whose
// expiry hooks have not finished.
func (m *Manager) dueTasks(ctx context.Context, tasks []HookTask) []HookTask {
	now := m.now()
	seen := make(map[uuid.UUID]bool, len(tasks))
	kept := tasks[:0]
	for _, t := range tasks {
		if seen[t.Grant.ID] || !transitionDue(TransitionExpired, &t.Grant, now) {
			m.reportError(ctx, fmt.Errorf("expire hooks: %w: the store returned the hook task of grant %s twice, or before the grant expired: left out", ErrInvalidInput, t.Grant.ID))
			continue
		}
		seen[t.Grant.ID] = true
		kept = append(kept, t)
	}
	return kept
}

// runTasks runs the hooks of leased tasks and ends the lease. The first
// task runs even past half the lease (so that a slow claim still makes
// progress) unless queued (Sweep's batches, which may wait behind another
// batch's hooks while their lease runs down): such a batch is then
// released untouched, for runHookTasks to take at once, rather than have
// its first hook "fail" on a deadline that passed before it was called.
// A task whose hooks' deadline (nine tenths of the lease) passed before
// it started is released untouched too, and the slowness reported. It
// reports whether it called the hooks of any task.
func (m *Manager) runTasks(ctx context.Context, hs HookStore, token string, tasks []HookTask, start time.Time, queued bool) (ran bool, _ error) {
	hctx, cancel := context.WithDeadline(ctx, start.Add(m.life.lease-m.life.lease/10)) // not lease*9/10: it overflows for leases over ~32 years
	defer cancel()
	startBy := start.Add(m.life.lease / 2)
	var events []Event
	// report passes err to the error handler, whose panic is kept in x
	// (the first one) so that the other tasks and finish still run.
	var x extraOutcome
	report := func(err error) { x.keep(func() { m.reportError(ctx, err) }) }
	// finish stores the batch's outcome with its events, then records the
	// events on the auditors other than the store, each whatever the
	// others do (their first error is reported, their first panic kept in
	// x and raised afterwards: a hook's outcome is a fact, stored whatever
	// an auditor returns) — the store first, so that an extra auditor that
	// never returns (runtime.Goexit) cannot keep it from the store. It
	// runs also when ctx ended (with a context of its own), so that
	// another replica need not wait for the leases to run out, and when
	// host code panics or calls runtime.Goexit (the error handler's panics
	// are kept in x and raised after it), so that hooks that succeeded do
	// not run again.
	finish := func() (n int, err error) {
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer fcancel()
		defer func() { // also when the store panics
			for _, ev := range events {
				m.recordEach(fctx, m.extra, ev, &x.firstPanic, x.fail)
			}
			if x.err != nil {
				report(fmt.Errorf("expire hooks: %w", x.err))
			}
		}()
		return hs.FinishHookTasks(fctx, token, tasks, m.storeEvents(events...))
	}
	// failed counts a failed attempt of t's hooks at now, the hook at
	// position done having returned err: the task is retried after the
	// delay, and the failure audited. It returns the error to report (the
	// caller reports it: after finish, when host code may not return).
	failed := func(t *HookTask, now time.Time, done int, err error) error {
		t.Attempts = min(t.Attempts+1, math.MaxInt32) // as many as the stores keep
		raw := errorMessage(err)                      // host code, called once
		t.LastError = cleanText(raw)
		t.NextAt = capTime(truncate(now.Add(m.life.retryDelay(t.Attempts))))
		ev := m.newEvent(now, EventExpireHookFailed, t.Grant.TenantID, t.Grant.ID, SystemActor, "")
		ev.Attrs = map[string]string{
			AttrHook: strconv.Itoa(done), AttrAttempt: strconv.Itoa(t.Attempts),
			AttrError: t.LastError, AttrNextAt: t.NextAt.Format(timeFormat),
		}
		events = append(events, ev)
		return newHostError(fmt.Sprintf("expire hook %d of grant %s (attempt %d): %s", done, t.Grant.ID, t.Attempts, raw), err)
	}
	finished := false
	running, began := -1, time.Time{} // the task whose hooks run, since when
	defer func() {
		if !finished {
			// A panic not kept in x, or runtime.Goexit in a hook, is on
			// its way to the caller. A task whose hooks were running
			// failed (else a hook that always exits would run again at
			// every Sweep, uncounted and unaudited); the outcome is
			// stored, then the failure and what went wrong storing it
			// are reported (the error handler may exit too: the outcome
			// is stored first).
			if running >= 0 {
				t := &tasks[running]
				exited := failed(t, began, t.Done, errHookExited)
				defer report(exited) // after finish, also when it panics
			}
			_, ferr := finish()
			if ferr != nil {
				report(fmt.Errorf("expire hooks: finish hook tasks: %w", ferr))
			}
		}
	}()
	for i := range tasks {
		t := &tasks[i]
		if (i > 0 || queued) && (ctx.Err() != nil || time.Now().After(startBy)) {
			continue // released untouched: claimable again at once
		}
		if i == 0 && hctx.Err() != nil {
			// The hooks' deadline passed before the first was called: the
			// caller's context ended during the claim, or the claim took
			// nine tenths of the lease (reported). Released untouched,
			// rather than "failed" uncalled.
			if ctx.Err() == nil {
				report(fmt.Errorf("expire hooks: claiming hook tasks took longer than nine tenths of their %s lease; the tasks are released untouched (lengthen WithExpireHookLease)", m.life.lease))
			}
			continue
		}
		ran = true
		running, began = i, m.now()
		err := m.runHooks(hctx, t.Grant, &t.Done)
		running = -1
		done := t.Done
		now := m.now()
		switch {
		case err == nil:
			t.Complete = true
			if t.Attempts > 0 {
				ev := m.newEvent(now, EventExpireHookSucceeded, t.Grant.TenantID, t.Grant.ID, SystemActor, "")
				ev.Attrs = map[string]string{AttrAttempts: strconv.Itoa(t.Attempts)}
				events = append(events, ev)
			}
		case errors.Is(ctx.Err(), context.Canceled) && (errors.Is(err, context.Canceled) || errors.Is(err, context.Cause(ctx))):
			// Cut off by the shutdown (Close, or the caller cancelled;
			// the hook returned the context's error or its cause, such as
			// ErrClosed): keep the progress, do not count an attempt. A
			// hook that failed otherwise meanwhile (its own error, a
			// panic) failed, and is recorded as such. (The caller's
			// deadline is no shutdown: a hook slower than it failed, and
			// is retried with a delay like any other failure.)
		default:
			report(failed(t, now, done, err))
		}
	}
	finished = true
	n, err := finish()
	if err != nil {
		err = fmt.Errorf("finish hook tasks: %w", err)
	} else if n < len(tasks) {
		report(fmt.Errorf("expire hooks: %d of %d hook task leases ran out before the hooks finished; another replica may run them again", len(tasks)-n, len(tasks)))
	}
	if x.p != nil {
		// The error is not returned: it is reported, and the panic kept
		// from the error handler goes on to the caller.
		if err != nil {
			report(fmt.Errorf("expire hooks: %w", err))
		}
		x.raise()
	}
	return ran, err
}

// errHookExited is the failure of an expire hook that did not return:
// it called runtime.Goexit (t.FailNow in a test, say).
var errHookExited = errors.New("the expire hook did not return (runtime.Goexit)")

// runHooks runs the hooks from position *done on and returns the first
// error. *done counts the hooks that succeeded so far, moved on after each
// one, so that a hook run ended by runtime.Goexit in a later hook still
// stores the progress (see runTasks) and does not run the earlier ones
// again.
func (m *Manager) runHooks(ctx context.Context, g Grant, done *int) error {
	*done = max(*done, 0)
	for ; *done < len(m.life.hooks); *done++ {
		if err := callHook(ctx, m.life.hooks[*done], g.Clone()); err != nil {
			return err
		}
	}
	return nil
}

// callHook calls h, turning a panic into an error.
func callHook(ctx context.Context, h ExpireHook, g Grant) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("expire hook panicked: %s", panicText(p))
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	return h(ctx, g)
}
