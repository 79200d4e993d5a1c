// Review 38: the expiry worker's handling of host panics (78a38ea,
// 021a22a) — prefix TestReview38.

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
	"github.com/supportaccess/supportaccess/storetest"
)

// review38Auditor records every event it is given.
type review38Auditor struct {
	mu     sync.Mutex
	events []sa.Event
}

func (a *review38Auditor) Record(_ context.Context, e sa.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return nil
}

func (a *review38Auditor) count(typ sa.EventType, id uuid.UUID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.events {
		if e.Type == typ && e.GrantID == id {
			n++
		}
	}
	return n
}

// review38Flaky fails (mode "error") or panics (mode "panic") on events of
// type typ while armed, recording nothing for them.
type review38Flaky struct {
	review38Auditor
	typ   sa.EventType
	mode  string
	armed bool
}

func (a *review38Flaky) Record(ctx context.Context, e sa.Event) error {
	a.mu.Lock()
	armed := a.armed && e.Type == a.typ
	a.mu.Unlock()
	if armed {
		if a.mode == "panic" {
			panic("auditor bug")
		}
		return errBoom
	}
	return a.review38Auditor.Record(ctx, e)
}

func (a *review38Flaky) arm(on bool) {
	a.mu.Lock()
	a.armed = on
	a.mu.Unlock()
}

// TestReview38SecondAuditorFailureRecordsExpiryTwiceOnFirst: when the
// store keeps no events (WithAuditor naming other auditors only), the
// auditors are the trail. recordLifecycle used to abandon the claim when
// any of them failed or panicked: the first auditor had recorded the
// event, the second failed, the claim was given back, and every later
// Sweep recorded the same grant.expired on the first auditor again until
// the second took it. Now the first auditor decides: a failure of the
// second is reported (a panic raised once the claim is committed), the
// expiry is recorded once, and the second misses it as a failing auditor
// does when the store keeps the trail. A failure of the first still
// abandons the claim, before the second is asked: each gets the event
// once, at the Sweep that succeeds.
func TestReview38SecondAuditorFailureRecordsExpiryTwiceOnFirst(t *testing.T) {
	for _, mode := range []string{"error", "panic"} {
		for _, failing := range []string{"second", "first"} {
			t.Run(mode+"/"+failing, func(t *testing.T) {
				st := memstore.New()
				clock := storetest.NewClock(storetest.Epoch)
				ok := &review38Auditor{}
				flaky := &review38Flaky{typ: sa.EventGrantExpired, mode: mode}
				auditors := []sa.Auditor{ok, flaky}
				if failing == "first" {
					auditors = []sa.Auditor{flaky, ok}
				}
				var reported []error
				m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditor(sa.MultiAuditor(auditors...)),
					sa.WithErrorHandler(func(_ context.Context, err error) { reported = append(reported, err) }))
				require.NoError(t, err)
				g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
				require.NoError(t, err)
				_, err = m.Sweep(ctx) // the start
				require.NoError(t, err)
				clock.Set(g.ExpiresAt)

				flaky.arm(true)
				for i := range 3 {
					switch {
					case mode == "panic" && (i == 0 || failing == "first"):
						require.PanicsWithValue(t, "auditor bug", func() { _, _ = m.Sweep(ctx) })
					case mode == "panic":
						require.NotPanics(t, func() { _, _ = m.Sweep(ctx) }, "nothing left to claim")
					default:
						_, _ = m.Sweep(ctx)
					}
				}
				flaky.arm(false)
				n, err := m.Sweep(ctx)
				require.NoError(t, err)
				require.Equal(t, 1, ok.count(sa.EventGrantExpired, g.ID), "one expiry, recorded once")
				if failing == "second" {
					require.Zero(t, n, "recorded by the first Sweep")
					require.Zero(t, flaky.count(sa.EventGrantExpired, g.ID), "missed by the failing auditor")
					if mode == "error" {
						require.Len(t, reported, 1)
						require.ErrorIs(t, reported[0], errBoom)
					}
					return
				}
				require.Equal(t, 1, n, "recorded once the first auditor works")
				require.Equal(t, 1, flaky.count(sa.EventGrantExpired, g.ID))
			})
		}
	}
}
