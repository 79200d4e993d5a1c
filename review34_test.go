// Review 34: the expiry worker, its claims and expire hooks — prefix
// TestReview34.

package supportaccess_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 34: a panic inside a claim (an extra auditor's, host code that
// Sweep runs inside the claim and whose panic it passes on to its caller,
// see TestSweepClaimPanicReachesCaller) must abandon the claim like an
// error does: nothing claimed, the transition still due. memstore's
// claimLocked marks each grant claimed and pops it off its due queue
// before calling events, and only undoes that on an error return: after a
// panic the grant is left claimed for good without its grant.expired (or
// grant.started) event. The trail never says it expired, no later Sweep
// records it, no hook runs — and yet UpdateGrant treats the expiry as
// recorded (final).
func TestReview34ClaimPanicLeavesTransitionClaimedWithoutEvent(t *testing.T) {
	for _, typ := range []sa.EventType{sa.EventGrantStarted, sa.EventGrantExpired} {
		t.Run(string(typ), func(t *testing.T) {
			st := memstore.New()
			aud := &reviewAuditor{}
			var hooked atomic.Int32
			e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)),
				sa.OnExpire(func(context.Context, sa.Grant) error { hooked.Add(1); return nil }))
			g := e.grant(sa.GrantInput{Duration: time.Hour})
			if typ == sa.EventGrantExpired {
				e.sweep() // the start, recorded normally
			}
			e.clock.Set(g.ExpiresAt)

			aud.panicOnce(typ, 1)
			require.PanicsWithValue(t, "auditor bug", func() { _, _ = e.m.Sweep(ctx) })

			// The auditor works again: the next Sweep must record what the
			// panicking one did not.
			e.sweep()
			evs, err := st.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{typ}})
			require.NoError(t, err)
			require.Len(t, evs, 1, "the transition whose claim panicked is recorded by the next Sweep, with its event")
			if typ == sa.EventGrantExpired {
				require.EqualValues(t, 1, hooked.Load(), "its expiry hooks run")
			}
		})
	}
}

// review34SlowStarts is a memstore whose claim of starts takes d on the
// Manager's clock (a claim that waits for the database, say).
type review34SlowStarts struct {
	*memstore.Store
	clock *storetest.Clock
	d     time.Duration
}

func (s *review34SlowStarts) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	gs, err := s.Store.ClaimTransitions(ctx, t, now, limit, events)
	if t == sa.TransitionStarted {
		s.clock.Advance(s.d)
	}
	return gs, err
}

// Review 34: one Sweep decides what is due twice — sweep() reads the clock
// for the starts and again for the expiries — so a grant whose window lies
// between the two readings (a short grant, or one Extend shortened, that
// begins while the claim of starts runs) gets its grant.expired (and its
// expiry hooks and the Notifier's expiry notice) from this Sweep and its
// grant.started only from the next one: one replica, sweeping alone,
// records the expiry before the start. Sweep holds back expiries after a
// failed claim of starts precisely so that "this Sweep does not record an
// expiry before the start"; SECURITY.md allows either order only for
// replicas sweeping at the same moment.
func TestReview34OneSweepRecordsExpiryBeforeStart(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := &review34SlowStarts{Store: memstore.New(), clock: clock, d: 5 * time.Millisecond}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer,
		StartsAt: clock.Now().Add(time.Millisecond), Duration: time.Millisecond})
	require.NoError(t, err)

	n, err := m.Sweep(ctx) // starts at now (nothing due), expiries 5 ms later
	require.NoError(t, err)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)

	evs, err := st.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventGrantStarted, sa.EventGrantExpired}})
	require.NoError(t, err)
	var types []sa.EventType
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	require.Equal(t, []sa.EventType{sa.EventGrantStarted, sa.EventGrantExpired}, types,
		"a replica sweeping alone records the start before the expiry (first Sweep expired %d)", n)
}

// Review 34: runTasks persists the outcome of a batch's hooks
// (FinishHookTasks) only after the last task ran and every failure was
// passed to the error handler. When the error handler panics (host code;
// Sweep otherwise takes care that such a panic strands nothing, see
// TestReviewSweepHandlerPanicLeaksNoClaimer), the batch's results are
// never stored: the hooks that already succeeded are not marked done, the
// failure's grant.expire_hook_failed is not in the store's trail, and the
// whole batch stays leased for the full lease. Once the lease runs out the
// hooks that succeeded run a second time — OnExpire promises each hook
// runs at most once per expiry when it succeeds (a second run is allowed
// only for a hook that outlived its deadline).
func TestReview34HandlerPanicInHooksRerunsSucceededHooks(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook), withPanickingHandler(nil))
	ok := e.grant(sa.GrantInput{Duration: time.Hour})
	bad := e.grant(sa.GrantInput{Duration: 2 * time.Hour}) // after ok in the batch
	h.setFail(bad.ID, errBoom)
	e.clock.Set(bad.ExpiresAt)

	require.PanicsWithValue(t, "error handler bug", func() { _, _ = e.m.Sweep(ctx) })
	require.Equal(t, 1, h.count(ok.ID), "ok's hook succeeded")

	h.setFail(bad.ID, nil)
	e.clock.Advance(sa.DefaultHookLease + sa.DefaultHookRetryMax)
	e.sweep()
	require.Equal(t, 2, h.count(bad.ID), "sanity: bad's hook was retried after its failure")
	require.Equal(t, 1, h.count(ok.ID), "a hook that succeeded runs again: its success was never stored")
}
