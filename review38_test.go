// Review 38: the expiry worker's handling of host panics (78a38ea,
// 021a22a) — prefix TestReview38.

package supportaccess_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

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
				ok := &reviewAuditor{}
				flaky := &reviewAuditor{}
				auditors := []sa.Auditor{ok, flaky}
				if failing == "first" {
					auditors = []sa.Auditor{flaky, ok}
				}
				reported := &mwErrs{}
				e := newEnv(t, sa.WithAuditor(sa.MultiAuditor(auditors...)), sa.WithErrorHandler(reported.handle))
				g := e.grant(sa.GrantInput{Duration: time.Hour})
				e.sweep() // the start
				e.clock.Set(g.ExpiresAt)

				flaky.failOn(sa.EventGrantExpired, mode)
				for i := range 3 {
					switch {
					case mode == "panic" && (i == 0 || failing == "first"):
						require.PanicsWithValue(t, "auditor bug", func() { _, _ = e.m.Sweep(ctx) })
					case mode == "panic":
						require.NotPanics(t, func() { _, _ = e.m.Sweep(ctx) }, "nothing left to claim")
					default:
						_, _ = e.m.Sweep(ctx)
					}
				}
				flaky.failOn("", mode)
				n := e.sweep()
				require.Equal(t, 1, ok.count(sa.EventGrantExpired, g.ID), "one expiry, recorded once")
				if failing == "second" {
					require.Zero(t, n, "recorded by the first Sweep")
					require.Zero(t, flaky.count(sa.EventGrantExpired, g.ID), "missed by the failing auditor")
					if mode == "error" {
						require.Len(t, reported.all(), 1)
						require.ErrorIs(t, reported.all()[0], errBoom)
					}
					return
				}
				require.Equal(t, 1, n, "recorded once the first auditor works")
				require.Equal(t, 1, flaky.count(sa.EventGrantExpired, g.ID))
			})
		}
	}
}
