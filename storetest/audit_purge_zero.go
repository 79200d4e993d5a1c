package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// testAuditPurgeZeroBefore: no event is older than the zero time, so a
// purge with a zero before (a retention job with an unset cutoff calling
// the store directly; Manager.PurgeAudit refuses it) deletes nothing and
// does not call event.
func testAuditPurgeZeroBefore(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	p, ok := h.store.(sa.AuditPurger)
	if !ok {
		t.Skip("store does not implement AuditPurger")
	}
	h.fill("acme", 3)
	called := false
	res, err := p.PurgeAudit(h.ctx, "acme", time.Time{}, func(r sa.AuditPurge) (sa.Event, error) {
		called = true
		return sa.Event{ID: uuid.New(), Time: h.clock.Now(), Type: sa.EventAuditPurged, TenantID: "acme", Actor: sa.SystemActor}, nil
	})
	require.NoError(t, err)
	require.False(t, called, "no event is older than the zero time")
	require.Zero(t, res.Deleted)
	evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventSupportRequest}})
	require.NoError(t, err)
	require.Len(t, evs, 3, "the tenant's audit trail is intact")
	h.verify("acme")
}

// testAuditPurgeOfACopy: a host keeps a copy of its trail in a second
// store B (WithAuditor(MultiAuditor(A, B))), which has its own retention
// (a Manager over B purges it). A's purges send their audit.purged events,
// recording A's checkpoints, to B as well. Both chains still verify: B's
// checkpoint is vouched for by B's own audit.purged event, not only by the
// latest one (A's, which VerifyAudit used to require, failing B's
// untouched chain for good).
func testAuditPurgeOfACopy(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	h.auditLog()
	if _, ok := h.store.(sa.AuditPurger); !ok {
		t.Skip("store does not implement AuditPurger")
	}
	b := ns(t)
	copyTo, ok := b.(sa.Auditor)
	if !ok {
		t.Skip("store does not implement Auditor")
	}
	ma, err := sa.NewManager(h.store, sa.WithNow(h.clock.Now), sa.WithAuditor(sa.MultiAuditor(h.store.(sa.Auditor), copyTo)))
	require.NoError(t, err)
	mb, err := sa.NewManager(b, sa.WithNow(h.clock.Now))
	require.NoError(t, err)
	both := sa.MultiAuditor(h.store.(sa.Auditor), copyTo)
	var times []time.Time
	for i := 1; i <= 6; i++ {
		times = append(times, h.clock.Now())
		require.NoError(t, both.Record(h.ctx, sa.Event{ID: uuid.New(), Time: h.clock.Now(), Type: sa.EventSupportRequest,
			TenantID: "acme", Actor: Support, Attrs: map[string]string{sa.AttrPath: fmt.Sprint("/p/", i)}}))
		h.clock.Advance(time.Second)
	}
	_, err = mb.PurgeAudit(h.ctx, "acme", times[1]) // B keeps more: deletes event 1
	require.NoError(t, err)
	_, err = mb.VerifyAudit(h.ctx, "acme")
	require.NoError(t, err)
	res, err := ma.PurgeAudit(h.ctx, "acme", times[3]) // A deletes events 1 to 3
	require.NoError(t, err)
	require.EqualValues(t, 3, res.Checkpoint.Seq)
	_, err = ma.VerifyAudit(h.ctx, "acme")
	require.NoError(t, err, "A intact")
	rep, err := mb.VerifyAudit(h.ctx, "acme")
	require.NoError(t, err, "nobody touched B's chain: %v", rep.Break)
	st, err := b.(sa.AuditChainReader).AuditChain(h.ctx, "acme")
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Checkpoint.Seq, "B's own checkpoint")
}

// testAuditCheckpointMovedBack: after a purge (events 1 to 3 deleted,
// checkpoint 3, recorded by the audit.purged event), the checkpoint is
// moved back or reset behind the store's back, no event touched.
// VerifyAudit reports a BreakCheckpoint at the first remaining event, not
// a gap: the deleted events are the ones the purge vouches for, and an
// investigator must look at the checkpoint, not for someone deleting rows.
func testAuditCheckpointMovedBack(t *testing.T, ns NewStore) {
	for _, back := range []sa.ChainLink{{Seq: 2}, {}} {
		t.Run(fmt.Sprint("to_", back.Seq), func(t *testing.T) {
			h := newHarness(t, ns)
			h.auditLog()
			tm, ok := h.store.(CheckpointTamperer)
			if !ok {
				t.Skip("store does not implement storetest.CheckpointTamperer")
			}
			evs := h.fill("acme", 6)
			res, err := h.m.PurgeAudit(h.ctx, "acme", evs[3].Time)
			require.NoError(t, err)
			require.EqualValues(t, 3, res.Checkpoint.Seq)
			h.verify("acme")
			if back.Seq > 0 {
				back.Hash = evs[back.Seq-1].Hash
			}
			require.NoError(t, tm.TamperCheckpoint(h.ctx, "acme", back))
			rep, err := h.m.VerifyAudit(h.ctx, "acme")
			require.ErrorIs(t, err, sa.ErrTampered)
			require.NotNil(t, rep.Break)
			require.Equal(t, sa.BreakCheckpoint, rep.Break.Kind, "%v", rep.Break)
			require.EqualValues(t, 4, rep.Break.Seq)
			require.Equal(t, evs[3].ID, rep.Break.EventID)
		})
	}
}
