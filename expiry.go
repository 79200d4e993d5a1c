package supportaccess

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// SweepBatchSize is how many grants (or access requests) one Sweep claims
// per store transaction. A batch's transaction holds the claimed grants and
// the audit chain heads of their tenants locked until it commits (on
// PostgreSQL about 0.1–0.3 s for 2000 expiries); larger batches sweep
// faster (fewer statements per expiry) but make writers to those tenants
// wait longer. See BENCHMARKS.md (#6).
const SweepBatchSize = 2000

// DefaultSweepConcurrency is how many claim transactions one Sweep keeps in
// flight unless WithSweepConcurrency says otherwise.
const DefaultSweepConcurrency = 2

// MaxSweepConcurrency is the largest WithSweepConcurrency: more claims in
// flight than a database has cores only queue (and each costs a
// transaction per Sweep, due work or not).
const MaxSweepConcurrency = 64

// WithSweepConcurrency sets how many claim transactions (of SweepBatchSize
// grants each) one Sweep keeps in flight. With more than one, a batch's
// transaction runs while the previous batch's notifications and expiry
// hooks run and while another claim transaction waits for the database:
// on PostgreSQL two cut the sweep of 100 k expiries by about a quarter (see
// BENCHMARKS.md). Exactly-once does not depend on it (the store's claims
// skip what another transaction holds), and hooks, notifications and
// listeners still run one batch at a time in Sweep's goroutine. One gives
// strictly sequential batches. Each of the n goroutines makes at least one
// claim (one transaction on a SQL store) per phase of every Sweep, even
// when nothing is due. Default: DefaultSweepConcurrency (2).
// NewManager returns an ErrInvalidInput error for n < 1 or n >
// MaxSweepConcurrency.
func WithSweepConcurrency(n int) Option {
	return optionFunc(func(m *Manager) {
		if n < 1 || n > MaxSweepConcurrency {
			m.life.err = fmt.Errorf("%w: sweep concurrency %d is not between 1 and %d", ErrInvalidInput, n, MaxSweepConcurrency)
			return
		}
		m.life.sweepConcurrency = n
	})
}

// Sweep records the lifecycle transitions that are due, each exactly once,
// also when several replicas sweep the same store at the same moment (the
// store's claims guarantee it):
//
//   - grant.started for grants whose StartsAt has come: scheduled grants
//     that began, and grants created active too (recorded by the first
//     Sweep after their creation, so later than grant.created and possibly
//     after other events of the grant). A grant revoked before a Sweep
//     recorded its start gets none: its grant.created and grant.revoked
//     events (StartsAt in their Before and After) bound its window;
//   - grant.expired (actor: the system) for grants that reached ExpiresAt,
//     then the Notifier is told, and the OnExpire hooks run (see OnExpire)
//     together with the retries of hooks that failed earlier and are due;
//   - request.expired for pending access requests past their ExpiresAt
//     (when the store is a RequestStore).
//
// It returns how many grants expired in this call. Access never depends on
// Sweep: Check denies at ExpiresAt whether or not a sweep ran, and a
// pending request past ExpiresAt cannot be approved. A failing hook is not
// an error of Sweep (it is audited and passed to the error handler).
//
// Claims run in up to WithSweepConcurrency goroutines (default 2), all of
// which have returned when Sweep returns; notifications, listeners and
// hooks run in the caller's goroutine, one batch at a time. A panic in any
// of them (host code) reaches the caller after every batch already
// committed has been handled. runtime.Goexit in host code (t.FailNow in a
// test's fake, say) never leaves a goroutine behind: in a claim's
// goroutine it abandons that claim (the bundled stores undo it) and Sweep
// returns an error; in the caller's goroutine the claimers are stopped
// and waited for, and the batches they committed meanwhile get no
// notifications or listener calls, and their other auditors' failures are
// not reported (their hook tasks run after the lease).
//
// Errors: the context's error, or the store's; a failure of another
// auditor (WithAuditor) is passed to the error handler (a panic reaches
// the caller once the claim it happened in is committed) — except, when
// the store keeps no events, a failure of the first of them, which
// abandons the claim it happened in: its transition stays due for the
// next Sweep, never recorded without its event. A failure of one step
// does not prevent the others, except that expiries are not claimed in a
// Sweep whose claim of starts failed. A grant's expiry is recorded only
// after its start, whatever runs at the same time: a store claims an
// expiry only once the start is claimed (a start another replica or a
// writer holds at that moment leaves the expiry for a later Sweep).
func (m *Manager) Sweep(ctx context.Context) (n int, err error) {
	ctx, span := m.startSpan(ctx, "Sweep")
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		span.SetAttributes(AttrKeyCount.Int(n))
		if n > 0 {
			m.tel.expired.Add(ctx, int64(n))
		}
	})
	var errs []error
	// One reading of the clock decides what is due, starts and expiries
	// alike: a grant whose whole window fell between two readings would
	// have its expiry recorded before its start.
	now, cerr := m.changeNow() // not err: see errNotReturned
	if cerr != nil {
		return 0, fmt.Errorf("sweep: %w", cerr)
	}
	_, startErr := m.sweep(ctx, TransitionStarted, now, m.plainClaim(TransitionStarted), nil, new(int))
	if startErr != nil {
		errs = append(errs, startErr)
	}
	hs, hooked := m.store.(HookStore)
	hooked = hooked && len(m.life.hooks) > 0
	claim := m.plainClaim(TransitionExpired)
	var after func(b *claimBatch) error
	if hooked {
		// The claimer holds the hook tasks of its claims, each batch under
		// its own lease, and runs them right after each batch. The lease
		// runs from the claim, not from the sweep's start (now, which
		// decides what is due): a batch claimed late in a long sweep would
		// otherwise get a lease already over, and another replica could
		// run its hooks at the same time.
		claim = func(ctx context.Context, now time.Time, limit int, events func(Grant) ([]Event, error)) (claimBatch, error) {
			b := claimBatch{start: time.Now(), now: now, lease: Lease{Token: newID().String(), Until: capTime(m.now().Add(m.life.lease))}}
			var err error
			b.claimed, err = hs.ClaimExpirations(ctx, now, limit, b.lease, events)
			return b, err
		}
		after = func(b *claimBatch) error {
			tasks := make([]HookTask, len(b.claimed))
			for i, g := range b.claimed {
				tasks[i] = HookTask{Grant: g, NextAt: b.now, LeaseToken: b.lease.Token, LeaseUntil: b.lease.Until}
			}
			_, err := m.runTasks(ctx, hs, b.lease.Token, tasks, b.start, true)
			return err
		}
	}
	// Expiries wait for a Sweep whose starts were all claimed: a start
	// that this Sweep failed to record must not be recorded after the
	// grant's expiry by the next. (Access does not wait: Check denies at
	// ExpiresAt.)
	if startErr == nil {
		// n counts the committed expiries as they are handled, so that a
		// panic sweep raises after handling them leaves them counted.
		if _, eerr := m.sweep(ctx, TransitionExpired, now, claim, after, &n); eerr != nil { // not err: see errNotReturned
			errs = append(errs, eerr)
		}
	}
	if hooked && ctx.Err() == nil {
		if err := m.runHookTasks(ctx, hs, now); err != nil {
			errs = append(errs, err)
		}
	}
	if rs, ok := m.store.(RequestStore); ok && ctx.Err() == nil {
		if err := m.sweepRequests(ctx, rs); err != nil {
			errs = append(errs, err)
		}
	}
	if err := ctx.Err(); err != nil && len(errs) == 0 {
		// The context ended during the sweep (a hook of a claimed batch
		// ran past the deadline, say), and the steps after it were
		// skipped: not a complete sweep.
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("sweep: %w", errors.Join(errs...))
	}
	return n, nil
}

// claimBatch is one batch a sweep claimed.
type claimBatch struct {
	claimed []Grant
	// For expiries with hooks: the lease of the batch's hook tasks, when
	// the claim began (wall clock, for runTasks) and the sweep's time.
	lease      Lease
	start, now time.Time
	extra      extraOutcome // what the auditors other than the store did (see recordLifecycle)
	err        error        // the claim failed
	panicked   *any         // the claim panicked with this value (host auditor code runs in it)
	last       bool         // the claimer's final message: it stops after this
}

// claimFunc claims up to limit due transitions in one store transaction.
type claimFunc func(ctx context.Context, now time.Time, limit int, events func(Grant) ([]Event, error)) (claimBatch, error)

// transitionDue reports whether transition t of g is due at now.
func transitionDue(t Transition, g *Grant, now time.Time) bool {
	if t == TransitionExpired {
		return !g.ExpiresAt.IsZero() && !g.ExpiresAt.After(now)
	}
	return !g.StartsAt.After(now)
}

// claimedOnce is what a claim returned that the claim made events for
// (accepted), each once, and not handed over before by this claimer
// (seen, which it updates): a store that returns a grant it did not claim
// (one not due, another tenant's), or one again, would otherwise have it
// told to the middleware, notified, counted and hooked, and a store that
// returns it at every claim would keep the Sweep going for ever (review
// 165). What is left out is reported.
func (m *Manager) claimedOnce(ctx context.Context, gs []Grant, accepted, seen map[uuid.UUID]bool) []Grant {
	kept := gs[:0]
	for _, g := range gs {
		if !accepted[g.ID] || seen[g.ID] {
			m.reportError(ctx, fmt.Errorf("sweep: %w: the store returned grant %s from a claim that did not claim it (or claimed it before): left out", ErrInvalidInput, g.ID))
			continue
		}
		seen[g.ID] = true
		kept = append(kept, g)
	}
	return kept
}

// plainClaim claims transition t with the store's ClaimTransitions.
func (m *Manager) plainClaim(t Transition) claimFunc {
	return func(ctx context.Context, now time.Time, limit int, events func(Grant) ([]Event, error)) (claimBatch, error) {
		gs, err := m.store.ClaimTransitions(ctx, t, now, limit, events)
		return claimBatch{claimed: gs}, err
	}
}

// sweep claims the transitions t due at now in batches of SweepBatchSize, with
// up to the Manager's sweep concurrency (WithSweepConcurrency) claims in
// flight: each claimer goroutine runs claim after claim, so one batch's
// transaction overlaps the next one's and the caller's work on the
// batches. The caller's goroutine takes the batches in turn and, for
// expiries, tells the Notifier and the listeners, then calls after (if not
// nil) with the batch — hooks and notifications never run concurrently.
// Every committed batch is handled, also after an error; no claim starts
// after one. All claimers have returned when sweep returns. *total counts
// the transitions claimed as their batches are handled (also when a panic
// then goes on to the caller); sweep returns it.
func (m *Manager) sweep(ctx context.Context, t Transition, now time.Time, claim claimFunc, after func(b *claimBatch) error, total *int) (int, error) {
	typ := EventGrantStarted
	if t == TransitionExpired {
		typ = EventGrantExpired
	}
	events := func(x *extraOutcome) func(g Grant) ([]Event, error) {
		return func(g Grant) ([]Event, error) {
			ev := m.newEvent(now, typ, g.TenantID, g.ID, SystemActor, "")
			if t == TransitionExpired {
				ev.Attrs = map[string]string{AttrExpiresAt: g.ExpiresAt.Format(timeFormat)}
			}
			return m.recordLifecycle(ctx, ev, x)
		}
	}
	workers := m.life.sweepConcurrency
	batches := make(chan claimBatch)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[uuid.UUID]bool{} // the grants this claimer handed over
			lastSent := false
			defer func() {
				// A panic (of an extra auditor, say) is the caller's, as
				// it was when claims ran in its goroutine: sweep panics
				// with it once every claimer has returned.
				if p := recover(); p != nil {
					batches <- claimBatch{panicked: &p, last: true}
				} else if !lastSent {
					// runtime.Goexit in host code (t.FailNow in a test's
					// auditor, say): the caller must not wait for this
					// claimer for ever.
					batches <- claimBatch{err: errClaimerExited, last: true}
				}
			}()
			for {
				if stop.Load() {
					lastSent = true
					batches <- claimBatch{last: true}
					return
				}
				if err := ctx.Err(); err != nil {
					lastSent = true
					batches <- claimBatch{err: err, last: true}
					return
				}
				var x extraOutcome
				accepted := map[uuid.UUID]bool{} // the grants whose events this claim made
				record := events(&x)
				b, err := claim(ctx, now, m.lifecycleBatch(), func(g Grant) ([]Event, error) {
					if !transitionDue(t, &g, now) {
						return nil, fmt.Errorf("%w: the store claimed grant %s for %s before it is due", ErrInvalidInput, g.ID, typ)
					}
					evs, err := record(g)
					if err == nil {
						accepted[g.ID] = true
					}
					return evs, err
				})
				b.extra, b.err = x, err
				if err == nil {
					b.claimed = m.claimedOnce(ctx, b.claimed, accepted, seen)
				}
				// Stop at an empty batch, not at a short one: with SKIP
				// LOCKED a claim beside concurrent sweepers returns fewer
				// grants than it could (MariaDB applies the LIMIT before
				// skipping rows others hold), so a short batch does not
				// mean nothing is left.
				b.last = err != nil || len(b.claimed) == 0
				lastSent = b.last
				batches <- b
				if b.last {
					return
				}
			}
		}()
	}
	*total = 0
	var firstErr error
	var kept firstPanic
	running := workers
	defer func() {
		// Left before every claimer was done: runtime.Goexit in host code
		// on this goroutine (t.FailNow in a test's Notifier or hook, say).
		// The claimers are stopped and waited for; the batches they still
		// commit are not handled (their hook tasks run once their lease
		// runs out).
		if running > 0 {
			stop.Store(true)
			for running > 0 {
				if (<-batches).last {
					running--
				}
			}
			wg.Wait()
		}
	}()
	for running > 0 {
		b := <-batches
		if b.last {
			running--
		}
		if b.extra.p != nil {
			// An extra auditor panicked in a claim the store still
			// committed (or failed on its own): the panic is the
			// caller's once the batch is handled.
			kept.hold(b.extra.p)
			stop.Store(true)
		}
		if b.panicked != nil {
			kept.hold(b.panicked)
			stop.Store(true)
			continue
		}
		if b.err != nil {
			if firstErr == nil {
				firstErr = b.err
			}
			stop.Store(true)
			continue
		}
		*total += len(b.claimed)
		// A panic here (host code: the error handler, a listener, the
		// Notifier, an extra auditor in the hooks' events) must not strand
		// the claimers on the unbuffered channel, nor leave the rest of a
		// committed batch unhandled: each step keeps the first panic, the
		// claims stop, and every batch already committed is still handled.
		keep := func(step func()) {
			if !kept.keep(step) {
				stop.Store(true)
			}
		}
		if t == TransitionExpired {
			// Every expiry ends its in-flight requests before the first
			// Notifier call, as in Revoke and RevokeTenant, so that no
			// request outlives its grant for the length of another's
			// notification.
			for _, g := range b.claimed {
				keep(func() { m.revoked(g) })
			}
			for _, g := range b.claimed {
				keep(func() { m.notify(ctx, EventGrantExpired, g, SystemActor, "") })
			}
		}
		if after != nil && len(b.claimed) > 0 {
			keep(func() {
				if err := after(&b); err != nil && firstErr == nil {
					firstErr = err
					stop.Store(true)
				}
			})
		}
		if b.extra.err != nil {
			keep(func() { m.reportError(ctx, fmt.Errorf("sweep: %w", b.extra.err)) })
		}
	}
	wg.Wait()
	kept.raise()
	return *total, firstErr
}

// errClaimerExited is sweep's error when a claim's goroutine ended
// without returning or panicking: host code run in the claim (an extra
// auditor) called runtime.Goexit. The claim's grants stay due.
var errClaimerExited = errors.New("supportaccess: sweep: a claim's goroutine exited in host code (runtime.Goexit, such as t.FailNow outside a test's own goroutine); its grants stay due")

// lifecycleBatch is how many transitions (or requests) one claim of a
// sweep takes: SweepBatchSize, or 1 when the store keeps no events (see
// recordLifecycle).
func (m *Manager) lifecycleBatch() int {
	if m.storeAudits {
		return SweepBatchSize
	}
	return 1
}

// extraOutcome is what the auditors other than the store did in one
// claim, when the store keeps the trail, or in one hook run: the first
// error and the first panic.
type extraOutcome struct {
	err error
	firstPanic
}

// fail keeps auditor error err in x (as auditError) if it is the first.
func (x *extraOutcome) fail(err error) {
	if x.err == nil {
		x.err = auditError(err)
	}
}

// firstPanic keeps the first panic of the host code it runs, to be raised
// again once the work around it is done.
type firstPanic struct{ p *any }

// keep runs step and reports whether it returned; its panic is kept if it
// is the first.
func (f *firstPanic) keep(step func()) (returned bool) {
	defer func() {
		if p := recover(); p != nil {
			f.hold(&p)
		}
	}()
	step()
	return true
}

// hold keeps panic value p if it is the first.
func (f *firstPanic) hold(p *any) {
	if f.p == nil {
		f.p = p
	}
}

// raise panics with the kept panic, if any.
func (f *firstPanic) raise() {
	if f.p != nil {
		panic(*f.p)
	}
}

// recordLifecycle records a lifecycle event (a start, an expiry, a
// request's expiry) on the auditors other than the store, inside the claim
// that records the transition, and returns the events the store keeps.
// One auditor decides whether the transition is recorded: the store when
// it keeps the trail, else the first other auditor (see WithAuditor),
// whose failure abandons the claim (a panic too, on its way to the
// caller), so that the transition stays due for the next Sweep; each claim
// then takes a single transition (lifecycleBatch), so that none is
// recorded twice because a later one of its batch failed. A failure of
// any other auditor is only reported (through x), and so is a panic,
// which the caller raises again once the claim is committed and handled:
// an auditor that keeps failing must not hold back every later expiry,
// and a claim given back after some auditors had its event would record
// it on them again at every Sweep while the failing one is down.
func (m *Manager) recordLifecycle(ctx context.Context, ev Event, x *extraOutcome) ([]Event, error) {
	others := m.extra
	if !m.storeAudits && len(others) > 0 {
		if err := others[0].Record(ctx, ev.Clone()); err != nil {
			return nil, auditError(err)
		}
		others = others[1:]
	}
	m.recordEach(ctx, others, ev, &x.firstPanic, x.fail)
	return m.storeEvents(ev), nil
}

// recordEach records ev on each of auditors whatever the others do: each
// auditor, given its own copy, has its error go to failed, and the first
// panic is kept in p.
func (m *Manager) recordEach(ctx context.Context, auditors []Auditor, ev Event, p *firstPanic, failed func(error)) {
	for _, a := range auditors {
		p.keep(func() {
			if err := a.Record(ctx, ev.Clone()); err != nil {
				failed(err)
			}
		})
	}
}

// RunExpiry runs Sweep at once and then every interval, each wait varied
// at random by up to ±10 % so that replicas spread out, until ctx ends or
// the Manager is closed (Close); it then returns after the sweep in
// progress stopped. Sweep errors go to the error handler
// (WithErrorHandler) and the next tick tries again. RunExpiry starts no
// goroutine: run it in one of yours, for example
// `go m.RunExpiry(ctx, time.Minute)`, and cancel ctx, or call Close, to
// stop it.
//
// Errors: ErrInvalidInput, at once, for interval <= 0; ErrClosed when
// Close stopped it (before ctx ended), or at once after Close; otherwise
// ctx.Err().
func (m *Manager) RunExpiry(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("run expiry: %w: interval must be positive", ErrInvalidInput)
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	done, ok := m.runs.start(cancel)
	if !ok {
		cancel(nil)
		return fmt.Errorf("run expiry: %w", ErrClosed)
	}
	timer := time.NewTimer(0)
	defer func() {
		// The loop's own cleanup first, then Close may return.
		timer.Stop()
		cancel(nil)
		done()
	}()
	for {
		select {
		case <-ctx.Done():
			// Whichever ended the loop first: Close (the cause ErrClosed)
			// or the caller's context.
			if errors.Is(context.Cause(ctx), ErrClosed) {
				return fmt.Errorf("run expiry: %w", ErrClosed)
			}
			return parent.Err()
		case <-timer.C:
		}
		if _, err := m.Sweep(ctx); err != nil && ctx.Err() == nil {
			m.reportError(ctx, fmt.Errorf("run expiry: %w", err))
		}
		timer.Reset(jitter(interval))
	}
}

// jitter returns d varied at random by up to ±10 %, never above the
// longest Duration (an interval meant as "practically never" must not wrap
// around to a negative wait).
func jitter(d time.Duration) time.Duration {
	j := d / 10
	if j <= 0 {
		return d
	}
	lo, span := d-j, 2*j
	if lo > math.MaxInt64-span {
		span = math.MaxInt64 - lo
	}
	return lo + time.Duration(rand.Int64N(int64(span)+1))
}

// timeFormat is RFC 3339 with microseconds, the library's text form of times.
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"
