package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// review2PanickyAuditor is an extra auditor that panics on grant.expired,
// inside the store's claim transaction.
type review2PanickyAuditor struct{}

func (review2PanickyAuditor) Record(_ context.Context, e sa.Event) error {
	if e.Type == sa.EventGrantExpired {
		panic("auditor bug")
	}
	return nil
}

// Review of a panic inside a claim (Sweep re-raises it in its caller): the
// store's transaction must not be left open holding the claimed rows (and
// on SQLite the write lock) for as long as the sweep's context lives. An
// extra auditor's panic, with the store keeping the trail, is now held
// until the claim commits (the store's rollback of a claim whose events
// panic is the conformance case ClaimAbandonedOnEventsError/panic): the
// grant is expired once, and the next sweep finds nothing to do.
func TestReview2ClaimPanicRollsBack(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			s := sqltest.NewStore(t, d)
			clock := storetest.NewClock(storetest.Epoch)
			bad, err := sa.NewManager(s, sa.WithNow(clock.Now), sa.WithAuditor(sa.MultiAuditor(s, review2PanickyAuditor{})))
			require.NoError(t, err)
			good, err := sa.NewManager(s, sa.WithNow(clock.Now))
			require.NoError(t, err)
			g, err := good.Grant(context.Background(), sa.GrantInput{TenantID: "acme", Duration: time.Hour,
				By: sa.Actor{Kind: sa.ActorCustomer, ID: "admin@acme"}})
			require.NoError(t, err)
			clock.Advance(time.Hour)

			// The sweeper's context lives on, as RunExpiry's does.
			sweepCtx, cancel := context.WithCancel(context.Background())
			defer cancel()
			require.PanicsWithValue(t, "auditor bug", func() { _, _ = bad.Sweep(sweepCtx) })

			ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel2()
			n, err := good.Sweep(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "grant %s expired by the sweep that panicked", g.ID)
			evs, err := good.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventGrantExpired}})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.Equal(t, g.ID, evs[0].GrantID)
		})
	}
}
