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
// recording A's checkpoints, to B as well, marked as copies
// (AttrPurgeCopy). Both chains verify, whichever purged last (VerifyAudit
// took A's copy, when it was B's latest audit.purged event, for the record
// of B's checkpoint and failed B's untouched chain for good). And a copy
// vouches for nothing in B: B's chain equals A's up to A's checkpoint, so
// someone deleting B's events up to there and moving B's checkpoint to
// A's (copying a stored hash, computing none) is reported.
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
	both := sa.MultiAuditor(h.store.(sa.Auditor), copyTo)
	ma, err := sa.NewManager(h.store, sa.WithNow(h.clock.Now), sa.WithAuditor(both))
	require.NoError(t, err)
	mb, err := sa.NewManager(b, sa.WithNow(h.clock.Now))
	require.NoError(t, err)
	var times []time.Time
	for i := 1; i <= 8; i++ {
		at := h.clock.Now().Truncate(time.Microsecond) // as stored
		times = append(times, at)
		require.NoError(t, both.Record(h.ctx, sa.Event{ID: uuid.New(), Time: at, Type: sa.EventSupportRequest,
			TenantID: "acme", Actor: Support, Attrs: map[string]string{sa.AttrPath: fmt.Sprint("/p/", i)}}))
		h.clock.Advance(time.Second)
	}
	verified := func(m *sa.Manager, what string) {
		t.Helper()
		rep, err := m.VerifyAudit(h.ctx, "acme")
		require.NoError(t, err, "%s: %v", what, rep.Break)
	}
	_, err = mb.PurgeAudit(h.ctx, "acme", times[1]) // B keeps more: deletes event 1
	require.NoError(t, err)
	verified(mb, "B after its own purge")
	res, err := ma.PurgeAudit(h.ctx, "acme", times[3]) // A deletes events 1 to 3
	require.NoError(t, err)
	require.EqualValues(t, 3, res.Checkpoint.Seq)
	verified(ma, "A")
	verified(mb, "B after A's purge, whose copy it received last")
	_, err = mb.PurgeAudit(h.ctx, "acme", times[2]) // B deletes event 2
	require.NoError(t, err)
	verified(mb, "B after its own purge again")
	st, err := b.(sa.AuditChainReader).AuditChain(h.ctx, "acme")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Checkpoint.Seq, "B's own checkpoint")

	for _, c := range []struct {
		name string
		log  sa.AuditLog
		copy bool
	}{{"A", h.store.(sa.AuditLog), false}, {"B", b.(sa.AuditLog), true}} {
		evs, err := c.log.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventAuditPurged}})
		require.NoError(t, err)
		copies := 0
		for _, e := range evs {
			if e.Attrs[sa.AttrPurgeCopy] == "true" {
				copies++
			}
		}
		if c.copy {
			require.Equal(t, 1, copies, "%s keeps A's audit.purged event as a copy", c.name)
		} else {
			require.Zero(t, copies, "%s's own audit.purged events are no copies", c.name)
		}
	}

	tm, ok1 := b.(AuditTamperer)
	ct, ok2 := b.(CheckpointTamperer)
	if !ok1 || !ok2 {
		return
	}
	// Delete B's event 3 and move B's checkpoint to A's (3), copying the
	// stored hash: A's audit.purged copy records exactly that link.
	evs, err := b.(sa.AuditLog).Events(h.ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.EqualValues(t, 3, evs[0].Seq)
	require.NoError(t, tm.TamperDelete(h.ctx, "acme", 3))
	require.NoError(t, ct.TamperCheckpoint(h.ctx, "acme", sa.ChainLink{Seq: 3, Hash: evs[0].Hash}))
	rep, err := mb.VerifyAudit(h.ctx, "acme")
	require.ErrorIs(t, err, sa.ErrTampered, "A's copied audit.purged vouches for nothing in B")
	require.Equal(t, sa.BreakCheckpoint, rep.Break.Kind, "%v", rep.Break)
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
