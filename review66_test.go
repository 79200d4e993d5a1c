package supportaccess_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 66: the purge checkpoint, copies of another log's purges.

// TestReview66LegacyCopyAfterOwnPurgeFalseAlarm: the review64 setup (B
// keeps a copy of A's trail through MultiAuditor, with its own retention;
// A's audit.purged events reach B unmarked because the release, or the
// replica, that ran A's purge predates AttrPurgeCopy), with the two purges
// in the other order — B's retention runs first, then A's, as happens
// every time both run the same retention from two cron jobs and B's
// happens to fire first. B purges up to event 4 (its own audit.purged
// event, seq 7, records checkpoint 4); then A purges up to event 3 and its
// unmarked copy lands in B at seq 8 recording checkpoint 3. That checkpoint
// is not past B's start (4), so VerifyAudit takes the copy for B's latest
// own purge and reports B's untouched chain as tampered (BreakCheckpoint)
// until B's retention next deletes something. The chain itself shows the
// copy is not B's own: B's own audit.purged event at seq 7 already records
// checkpoint 4, and a checkpoint never moves back, so a later purge of B
// cannot record 3. 97eb4e1 accepted this chain; review64 (70b4fc5) says
// what it accepts is a subset of that and that legacy copy trails verify
// again — not in this order.
func TestReview66LegacyCopyAfterOwnPurgeFalseAlarm(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	a, b := memstore.New(), memstore.New()
	ma, err := sa.NewManager(a, sa.WithNow(clock.Now), sa.WithAuditor(sa.MultiAuditor(a, review64LegacyMirror{b})))
	require.NoError(t, err)
	mb, err := sa.NewManager(b, sa.WithNow(clock.Now))
	require.NoError(t, err)

	var times []time.Time
	for range 6 {
		times = append(times, ma.Now()) // the time the grant's event is stamped with
		_, err := ma.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 24 * time.Hour})
		require.NoError(t, err)
		clock.Advance(time.Second)
	}
	// B's retention first: deletes events 1 to 4, own audit.purged at seq 7.
	res, err := mb.PurgeAudit(ctx, "acme", times[4])
	require.NoError(t, err)
	require.EqualValues(t, 4, res.Checkpoint.Seq)
	_, err = mb.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "B after its own purge")

	// Then A's (the old release): deletes A's events 1 to 3; B receives
	// A's audit.purged event unmarked, at seq 8.
	res, err = ma.PurgeAudit(ctx, "acme", times[3])
	require.NoError(t, err)
	require.EqualValues(t, 3, res.Checkpoint.Seq)
	_, err = ma.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "A intact")

	rep, err := mb.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "nobody touched B's chain; reported: %v", rep.Break)
}
