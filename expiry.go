package supportaccess

import (
	"context"
	"fmt"
)

// SweepBatchSize is how many grants one Sweep claims per store transaction.
const SweepBatchSize = 500

// Sweep records the lifecycle transitions that are due: grant.started for
// scheduled grants that began and grant.expired for grants that reached
// ExpiresAt (actor: the system). Each transition is recorded exactly once,
// also when several replicas sweep the same store at the same moment; the
// store's ClaimTransitions guarantees it. It returns how many grants expired
// in this call. Access never depends on Sweep: Check denies at ExpiresAt
// whether or not a sweep ran.
func (m *Manager) Sweep(ctx context.Context) (int, error) {
	if _, err := m.sweep(ctx, TransitionStarted, EventGrantStarted); err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	n, err := m.sweep(ctx, TransitionExpired, EventGrantExpired)
	if err != nil {
		return n, fmt.Errorf("sweep: %w", err)
	}
	return n, nil
}

func (m *Manager) sweep(ctx context.Context, t Transition, typ EventType) (int, error) {
	now := m.now()
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var extraErr error
		claimed, err := m.store.ClaimTransitions(ctx, t, now, SweepBatchSize, func(g Grant) []Event {
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
		if len(claimed) < SweepBatchSize {
			return total, nil
		}
	}
}

// timeFormat is RFC 3339 with microseconds, the library's text form of times.
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"
