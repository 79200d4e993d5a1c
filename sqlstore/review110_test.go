package sqlstore_test

// Review round 110: mutation testing of sqlstore. The test below names the
// mutant of the production code it kills and passes on the pristine code;
// the round's backend-agnostic cases are storetest conformance cases
// (ListStatusesExcludeRevoked, AuditCursorOfAnotherTenant,
// FinishHookTasksEmptyToken, ClaimAtExactDueTimeOnce, ClaimTiesInIDOrder).

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

var (
	r110Now     = time.Date(2031, 3, 4, 5, 6, 7, 123456000, time.UTC)
	r110Support = sa.Actor{Kind: sa.ActorSupport, ID: "sup-1", Name: "Sup"}
)

// TestReview110CachedHeadAfterPurgeByAnotherReplica: on PostgreSQL (and
// MySQL) Record appends with a compare-and-set on the head the store
// cached at its last append. Another replica's appends alone would make a
// stale append collide on the (tenant_id, seq) key, but when that replica
// then purges the whole trail the stale seq is free again: only the
// head's "seq = ?" condition refuses the stale head. The event must land
// after the purge's own event, and the chain must verify. Kills
// (audit_cas.go, recordCASQuery): "AND seq = ?" dropped from the head
// UPDATE (P1: the event was chained on the stale head, inside the purged
// range, and the head went back).
func TestReview110CachedHeadAfterPurgeByAnotherReplica(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open replicas) {
		ctx := context.Background()
		a, b := open(t)
		clock := r110Now
		now := func() time.Time { return clock }
		ma, err := sa.NewManager(a, sa.WithNow(now))
		require.NoError(t, err)
		mb, err := sa.NewManager(b, sa.WithNow(now))
		require.NoError(t, err)
		ev := func() sa.Event {
			return sa.Event{ID: uuid.New(), Time: clock, Type: sa.EventSupportRequest, TenantID: "acme", Actor: r110Support,
				Attrs: map[string]string{sa.AttrMethod: "GET"}}
		}
		recA, recB := a.(sa.Auditor), b.(sa.Auditor)
		require.NoError(t, recA.Record(ctx, ev())) // a caches head 1 (and again at 2)
		require.NoError(t, recA.Record(ctx, ev()))
		require.NoError(t, recB.Record(ctx, ev()))
		require.NoError(t, recB.Record(ctx, ev()))
		clock = clock.Add(time.Hour)
		res, err := mb.PurgeAudit(ctx, "acme", clock) // deletes 1–4, appends its event as 5
		require.NoError(t, err)
		require.Equal(t, int64(4), res.Deleted)
		last := ev()
		require.NoError(t, recA.Record(ctx, last)) // a's cached head (2) is stale
		evs, err := a.(sa.AuditLog).Events(ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
		require.NoError(t, err)
		require.Len(t, evs, 2)
		require.Equal(t, last.ID, evs[1].ID)
		require.Equal(t, int64(6), evs[1].Seq, "P1: the event was chained on a stale head")
		rep, err := ma.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.True(t, rep.OK(), "P1: %+v", rep.Break)
	})
}
