package supportaccess_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 64: the audit.purged copy marker, padded identifiers, blank
// reasons, stores refusing alike.

// review64LegacyMirror is a second store as a release before AttrPurgeCopy
// (97eb4e1 and earlier) — or an old replica during a rolling upgrade —
// wrote to it through MultiAuditor: the audit.purged event of the other
// log's purge arrives as that log recorded it, without the copy marker.
type review64LegacyMirror struct{ *memstore.Store }

func (l review64LegacyMirror) Record(ctx context.Context, e sa.Event) error {
	if e.Type == sa.EventAuditPurged {
		e.Attrs = maps.Clone(e.Attrs)
		delete(e.Attrs, sa.AttrPurgeCopy)
	}
	return l.Store.Record(ctx, e)
}

// TestReview64MirrorWrittenBeforeCopyMarkerStillVerifies: a host keeps a
// copy of its trail in store B (WithAuditor(MultiAuditor(A, B))) with its
// own retention, exactly the setup 97eb4e1 fixed ("a store that keeps a
// copy of another's trail with its own retention failed verification for
// good once the other purged"). B purged itself (its own audit.purged event
// records B's checkpoint), then A purged, and A's audit.purged event went
// to B — without AttrPurgeCopy, because the release (or the replica) that
// ran A's purge predates the marker. Nobody touched B. At 97eb4e1 B
// verified (B's own purge event records B's checkpoint); ac9022a makes
// VerifyAudit trust only the latest unmarked audit.purged event, takes A's
// legacy copy for B's own, and reports the untouched chain as tampered
// (BreakCheckpoint) — the very false alarm 97eb4e1 removed, now for every
// trail written before the upgrade, until B's retention next deletes
// something. The chain itself tells the legacy copy apart: it records
// checkpoint 3 while B's checkpoint is 1 and B still holds events 2 and 3 —
// a purge of B that set checkpoint 3 would have deleted them, and a
// checkpoint only moves forward — and B's own audit.purged event (seq 7),
// which records B's checkpoint exactly, is still in the chain. Expected:
// B verifies, as it did before the upgrade.
func TestReview64MirrorWrittenBeforeCopyMarkerStillVerifies(t *testing.T) {
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
	// B's retention: deletes event 1; B's own audit.purged event (seq 7)
	// records checkpoint 1.
	res, err := mb.PurgeAudit(ctx, "acme", times[1])
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Checkpoint.Seq)
	_, err = mb.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "B after its own purge")

	// A's retention (the old release): deletes events 1 to 3; B receives
	// A's audit.purged event (seq 8 in B) unmarked.
	res, err = ma.PurgeAudit(ctx, "acme", times[3])
	require.NoError(t, err)
	require.EqualValues(t, 3, res.Checkpoint.Seq)
	_, err = ma.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "A intact")

	rep, err := mb.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "nobody touched B's chain, written before AttrPurgeCopy existed; reported: %v", rep.Break)
}
