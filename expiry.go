package supportaccess

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// SweepBatchSize is how many grants (or access requests) one Sweep claims
// per store transaction. A batch's transaction holds the claimed grants and
// the audit chain heads of their tenants locked until it commits (on
// PostgreSQL about 0.1–0.3 s for 2000 expiries); larger batches sweep
// faster (fewer statements per expiry) but make writers to those tenants
// wait longer. See BENCHMARKS.md (#6).
const SweepBatchSize = 2000

// Sweep records the lifecycle transitions that are due, each exactly once,
// also when several replicas sweep the same store at the same moment (the
// store's claims guarantee it):
//
//   - grant.started for scheduled grants that began;
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
// Errors: the context's error, or the store's; a failure of one step does
// not prevent the others.
func (m *Manager) Sweep(ctx context.Context) (n int, err error) {
	ctx, span := m.startSpan(ctx, "Sweep")
	defer func() {
		span.SetAttributes(AttrKeyCount.Int(n))
		if n > 0 {
			m.tel.expired.Add(ctx, int64(n))
		}
		endSpan(span, err)
	}()
	if _, err := m.sweep(ctx, TransitionStarted, m.store.ClaimTransitions, nil); err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	var errs []error
	hs, hooked := m.store.(HookStore)
	hooked = hooked && len(m.life.hooks) > 0
	claim, after := m.store.ClaimTransitions, func([]Grant) error { return nil }
	if hooked {
		// The claimer holds the hook tasks of its claims and runs them
		// right after each batch.
		var lease Lease
		var start, claimedAt time.Time
		claim = func(ctx context.Context, _ Transition, now time.Time, limit int, events func(Grant) []Event) ([]Grant, error) {
			start, claimedAt = time.Now(), now
			lease = Lease{Token: newID().String(), Until: now.Add(m.life.lease)}
			return hs.ClaimExpirations(ctx, now, limit, lease, events)
		}
		after = func(claimed []Grant) error {
			tasks := make([]HookTask, len(claimed))
			for i, g := range claimed {
				tasks[i] = HookTask{Grant: g, NextAt: claimedAt, LeaseToken: lease.Token, LeaseUntil: lease.Until}
			}
			return m.runTasks(ctx, hs, lease.Token, tasks, start)
		}
	}
	n, err = m.sweepExpired(ctx, claim, after)
	if err != nil {
		errs = append(errs, err)
	}
	if hooked && ctx.Err() == nil {
		if err := m.runHookTasks(ctx, hs); err != nil {
			errs = append(errs, err)
		}
	}
	if rs, ok := m.store.(RequestStore); ok && ctx.Err() == nil {
		if err := m.sweepRequests(ctx, rs); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("sweep: %w", errors.Join(errs...))
	}
	return n, nil
}

type claimFunc func(ctx context.Context, t Transition, now time.Time, limit int, events func(Grant) []Event) ([]Grant, error)

// sweepExpired records due expiries; after runs after each batch (the
// expiry hooks).
func (m *Manager) sweepExpired(ctx context.Context, claim claimFunc, after func([]Grant) error) (int, error) {
	return m.sweep(ctx, TransitionExpired, claim, after)
}

// sweep claims the due transitions t in batches; for expiries it tells the
// Notifier and the listeners, then calls after (if not nil) with the batch.
func (m *Manager) sweep(ctx context.Context, t Transition, claim claimFunc, after func([]Grant) error) (int, error) {
	typ := EventGrantStarted
	if t == TransitionExpired {
		typ = EventGrantExpired
	}
	now := m.now()
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var extraErr error
		claimed, err := claim(ctx, t, now, SweepBatchSize, func(g Grant) []Event {
			ev := m.newEvent(now, typ, g.TenantID, g.ID, SystemActor, "")
			if t == TransitionExpired {
				ev.Attrs = map[string]string{"expires_at": g.ExpiresAt.Format(timeFormat)}
			}
			if err := m.recordExtra(ctx, ev); err != nil && extraErr == nil {
				extraErr = err
			}
			return m.storeEvents(ev)
		})
		if err != nil {
			return total, err
		}
		if extraErr != nil {
			m.reportError(ctx, fmt.Errorf("sweep: %w", extraErr))
		}
		total += len(claimed)
		for _, g := range claimed {
			if t == TransitionExpired {
				m.notify(ctx, EventGrantExpired, g, SystemActor, "")
				m.revoked(g)
			}
		}
		if after != nil && len(claimed) > 0 {
			if err := after(claimed); err != nil {
				return total, err
			}
		}
		// Stop at an empty batch, not at a short one: with SKIP LOCKED a
		// claim beside concurrent sweepers returns fewer grants than it
		// could (MariaDB applies the LIMIT before skipping rows others
		// hold), so a short batch does not mean nothing is left.
		if len(claimed) == 0 {
			return total, nil
		}
	}
}

// RunExpiry runs Sweep at once and then every interval, each wait varied
// at random by up to ±10 % so that replicas spread out, until ctx ends; it
// then returns ctx's error after the sweep in progress stopped. Sweep
// errors go to the error handler (WithErrorHandler) and the next tick tries
// again. RunExpiry starts no goroutine: run it in one of yours, for example
// `go m.RunExpiry(ctx, time.Minute)`, and cancel ctx to stop it.
//
// Errors: ErrInvalidInput, at once, for interval <= 0; otherwise ctx.Err().
func (m *Manager) RunExpiry(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("run expiry: %w: interval must be positive", ErrInvalidInput)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		if _, err := m.Sweep(ctx); err != nil && ctx.Err() == nil {
			m.reportError(ctx, fmt.Errorf("run expiry: %w", err))
		}
		timer.Reset(jitter(interval))
	}
}

// jitter returns d varied at random by up to ±10 %.
func jitter(d time.Duration) time.Duration {
	j := d / 10
	if j <= 0 {
		return d
	}
	return d - j + time.Duration(rand.Int64N(int64(2*j)+1))
}

// timeFormat is RFC 3339 with microseconds, the library's text form of times.
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"
