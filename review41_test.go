// Review 41: a final read of the session's production changes
// (3216f3e..e644f4d) — prefix TestReview41.

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

// TestReview41HookEventSkipsAuditorsAfterAFailingOne: runTasks' finish
// (hooks.go:188-204) says it "records the events on the auditors other
// than the store, each whatever the others do", and recordLifecycle
// (expiry.go:336-356, 699edd1) gives each auditor the lifecycle event
// whatever another one returns. But finish calls recordExtra
// (manager.go:282), which stops at the first auditor that fails: every
// auditor listed after a failing one never receives
// grant.expire_hook_failed — the record that the host's expiry hook
// (e.g. "delete the generic support user") failed. The same auditor does
// receive the grant.expired of the same Sweep. With a store that keeps no
// events, the attempt is then stored (FinishHookTasks) while the
// auditors after the failing one — possibly all of the trail but the
// first — have no event of it, which the comment also rules out ("no
// attempt is stored without its event").
func TestReview41HookEventSkipsAuditorsAfterAFailingOne(t *testing.T) {
	for _, storeAudits := range []bool{true, false} {
		name := "store, failing auditor, auditor"
		if !storeAudits {
			name = "first auditor, failing auditor, auditor"
		}
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			first := &reviewAuditor{}
			failing := &reviewAuditor{fail: sa.EventExpireHookFailed}
			last := &reviewAuditor{}
			auditors := []sa.Auditor{st, failing, last}
			if !storeAudits {
				auditors = []sa.Auditor{first, failing, last}
			}
			h := &hookLog{}
			reported := &mwErrs{}
			e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(auditors...)), sa.OnExpire(h.hook),
				sa.WithErrorHandler(reported.handle))
			g := e.grant(sa.GrantInput{Duration: time.Hour})
			h.setFail(g.ID, errBoom)
			e.clock.Set(g.ExpiresAt)

			e.sweep()
			require.Equal(t, 1, h.count(g.ID), "sanity: the hook ran and failed")
			require.Positive(t, len(reported.all()), "sanity: the failures were reported")
			require.Equal(t, 1, last.count(sa.EventGrantExpired, g.ID), "sanity: grant.expired reached every auditor")
			if !storeAudits {
				require.Equal(t, 1, first.count(sa.EventExpireHookFailed, g.ID), "sanity: the first auditor has the failure")
			}
			require.Equal(t, 1, last.count(sa.EventExpireHookFailed, g.ID),
				"grant.expire_hook_failed never reached the auditor listed after the failing one (recordExtra stops at the first failure)")
		})
	}
}

// TestReview41ExtraAuditorErrorWithPanickingHandlerLosesExpiryNotice:
// sweep's collector (expiry.go:266-296) reports a batch's extra-auditor
// error (b.extra.err) first and only then tells the listeners
// (m.revoked), sends the Notifier's grant.expired and runs the hooks. A
// panicking error handler there is recovered "so that ... the batches
// already committed are still handled" — but the rest of this batch,
// committed already, is skipped: its grants' expiry notices are never
// sent (the claim is committed, no later Sweep sends them), the
// middleware's listeners are not told, and its hook tasks wait for their
// lease. Since 699edd1 the extra error also arises when the store keeps
// no events (a failure of any auditor but the first), where it used to
// abandon the claim instead. Reporting b.extra.err after handling the
// batch (or inside its own recover) would keep the batch handled.
func TestReview41ExtraAuditorErrorWithPanickingHandlerLosesExpiryNotice(t *testing.T) {
	for _, storeAudits := range []bool{true, false} {
		name := "store and a failing auditor"
		if !storeAudits {
			name = "an auditor and a failing auditor"
		}
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			failing := &reviewAuditor{fail: sa.EventGrantExpired}
			auditors := []sa.Auditor{st, failing}
			if !storeAudits {
				auditors = []sa.Auditor{&reviewAuditor{}, failing}
			}
			var mu sync.Mutex
			notices := map[uuid.UUID]int{}
			e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(auditors...)),
				sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
					if n.Type == sa.EventGrantExpired {
						mu.Lock()
						notices[n.GrantID]++
						mu.Unlock()
					}
					return nil
				})),
				withPanickingHandler(nil))
			g := e.grant(sa.GrantInput{Duration: time.Hour})
			e.clock.Set(g.ExpiresAt)

			require.PanicsWithValue(t, "error handler bug", func() { _, _ = e.m.Sweep(ctx) })
			e.sweep()
			got, err := e.m.Get(ctx, g.ID)
			require.NoError(t, err)
			require.Equal(t, sa.StatusExpired, got.Status(e.clock.Now()))
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, 1, notices[g.ID],
				"the expiry was recorded (claim committed) but the customer was never told: the panicking report of the extra auditor's error skipped the batch's notices")
		})
	}
}
