package supportaccess_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// forgedCheckpointLog is a memstore's audit trail as someone with write
// access to the store leaves it: the tenant's events up to a chosen link
// deleted and the purge checkpoint moved onto that link, with values read
// from the store (no hash computed, no audit.purged event recorded).
type forgedCheckpointLog struct {
	*memstore.Store
	tenant string
	cp     sa.ChainLink // zero: no forgery yet
	hide   bool         // the events up to cp are deleted (else only the checkpoint moved)
}

func (l *forgedCheckpointLog) AuditChain(ctx context.Context, tenantID string) (sa.AuditChainState, error) {
	st, err := l.Store.AuditChain(ctx, tenantID)
	if err == nil && tenantID == l.tenant && l.cp.Seq > 0 {
		st.Checkpoint = l.cp
	}
	return st, err
}

func (l *forgedCheckpointLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	evs, err := l.Store.Events(ctx, f)
	if err != nil || !l.hide {
		return evs, err
	}
	out := evs[:0]
	for _, e := range evs {
		if e.TenantID != l.tenant || e.Seq > l.cp.Seq {
			out = append(out, e)
		}
	}
	return out, nil
}

// forge deletes the tenant's events up to seq and moves the checkpoint
// onto the stored link of event seq.
func (l *forgedCheckpointLog) forge(t *testing.T, seq int64, hide bool) {
	t.Helper()
	l.cp, l.hide = sa.ChainLink{}, false
	evs, err := l.Store.Events(ctx, sa.AuditFilter{TenantID: l.tenant, Order: sa.AuditByChain})
	require.NoError(t, err)
	for _, e := range evs {
		if e.Seq == seq {
			l.cp, l.hide = sa.ChainLink{Seq: e.Seq, Hash: e.Hash}, hide
			return
		}
	}
	t.Fatalf("no event %d", seq)
}

// checkpointEnv is a Manager on a memstore whose audit trail a test can
// forge (forgedCheckpointLog), six grants in tenant acme a minute apart.
func checkpointEnv(t *testing.T) (*env, *forgedCheckpointLog, []sa.Event) {
	t.Helper()
	st := memstore.New()
	l := &forgedCheckpointLog{Store: st, tenant: "acme"}
	e := &env{t: t, store: st, clock: storetest.NewClock(storetest.Epoch)}
	m, err := sa.NewManager(st, sa.WithNow(e.clock.Now), sa.WithAuditLog(l))
	require.NoError(t, err)
	e.m = m
	for i := 0; i < 6; i++ {
		e.grant(sa.GrantInput{Duration: time.Hour, Reason: fmt.Sprint("grant ", i+1)})
		e.clock.Advance(time.Minute)
	}
	evs, err := st.Events(ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Len(t, evs, 6)
	_, err = m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	return e, l, evs
}

// checkpointBreak verifies acme and returns its break, which must be a
// BreakCheckpoint.
func checkpointBreak(t *testing.T, m *sa.Manager) (sa.VerifyReport, *sa.ChainBreak) {
	t.Helper()
	rep, err := m.VerifyAudit(ctx, "acme")
	require.ErrorIs(t, err, sa.ErrTampered)
	var brk *sa.ChainBreak
	require.True(t, errors.As(err, &brk))
	require.Equal(t, rep.Break, brk)
	require.False(t, rep.OK())
	require.Equal(t, "acme", brk.TenantID)
	require.Equal(t, sa.BreakCheckpoint, brk.Kind, "%v", brk)
	return rep, brk
}

// TestVerifyAuditForgedCheckpoint: deleting the first events of a chain
// and moving the checkpoint onto the last deleted one (seq and hash read
// from the store) is a broken link at the checkpoint, not a pass.
func TestVerifyAuditForgedCheckpoint(t *testing.T) {
	e, l, evs := checkpointEnv(t)
	l.forge(t, 4, true)

	rep, brk := checkpointBreak(t, e.m)
	require.EqualValues(t, 5, brk.Seq, "the first remaining event")
	require.Equal(t, evs[4].ID, brk.EventID)
	require.Contains(t, brk.Detail, "purge checkpoint (seq 4,")
	require.Contains(t, brk.Detail, "no audit.purged event follows it")
	require.Contains(t, brk.Error(), "checkpoint")
	require.Equal(t, sa.ChainLink{Seq: 4, Hash: evs[3].Hash}, rep.Chains["acme"].From)
	require.Equal(t, sa.ChainLink{Seq: 6, Hash: evs[5].Hash}, rep.Chains["acme"].Head, "the rest was verified")

	// Only moving the checkpoint (the events stay) is caught too: the
	// first event left at or before it.
	l.forge(t, 4, false)
	_, brk = checkpointBreak(t, e.m)
	require.EqualValues(t, 1, brk.Seq)
	require.Equal(t, evs[0].ID, brk.EventID)
	require.Contains(t, brk.Detail, "at or before the purge checkpoint (seq 4)")

	// Every event deleted, the checkpoint on the head: nothing is left to
	// name.
	l.forge(t, 6, true)
	rep, brk = checkpointBreak(t, e.m)
	require.EqualValues(t, 7, brk.Seq)
	require.Equal(t, uuid.Nil, brk.EventID)
	require.Zero(t, rep.Events)
}

// TestVerifyAuditForgedCheckpointAfterPurge: after a genuine purge, moving
// the checkpoint further is caught: the latest audit.purged event records
// the genuine one.
func TestVerifyAuditForgedCheckpointAfterPurge(t *testing.T) {
	e, l, evs := checkpointEnv(t)
	res, err := e.m.PurgeAudit(ctx, "acme", evs[2].Time) // deletes 1 and 2
	require.NoError(t, err)
	require.Equal(t, sa.ChainLink{Seq: 2, Hash: evs[1].Hash}, res.Checkpoint)
	rep, err := e.m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, res.Checkpoint, rep.Chains["acme"].From)

	l.forge(t, 4, true) // the attacker deletes 3 and 4
	_, brk := checkpointBreak(t, e.m)
	require.EqualValues(t, 5, brk.Seq)
	require.Equal(t, evs[4].ID, brk.EventID)
	require.Contains(t, brk.Detail, "the latest audit.purged event (seq 7) records checkpoint 2")
}

// TestVerifyAuditGenuinePurges: purges keep the chain verifiable however
// they follow each other: one that deletes nothing (and records nothing),
// and one that deletes the previous purge's audit.purged event.
func TestVerifyAuditGenuinePurges(t *testing.T) {
	e, _, evs := checkpointEnv(t)
	verify := func(from int64, events int64) sa.VerifyReport {
		t.Helper()
		rep, err := e.m.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.True(t, rep.OK())
		require.Equal(t, from, rep.Chains["acme"].From.Seq)
		require.Equal(t, events, rep.Events)
		return rep
	}

	first, err := e.m.PurgeAudit(ctx, "acme", evs[2].Time) // 1, 2; purge event 7
	require.NoError(t, err)
	require.EqualValues(t, 2, first.Deleted)
	verify(2, 5)

	none, err := e.m.PurgeAudit(ctx, "acme", evs[2].Time)
	require.NoError(t, err)
	require.Zero(t, none.Deleted)
	require.Equal(t, first.Checkpoint, none.Previous)
	verify(2, 5)

	e.clock.Advance(time.Minute)
	e.grant(sa.GrantInput{Duration: time.Hour}) // seq 8
	// Deletes 3 and 4 (not the first purge event, 7); appends 9.
	second, err := e.m.PurgeAudit(ctx, "acme", evs[4].Time)
	require.NoError(t, err)
	require.Equal(t, first.Checkpoint, second.Previous)
	verify(4, 5)

	// Deletes the first two purge events too: the third vouches alone.
	purged := e.events(sa.EventAuditPurged)
	require.Len(t, purged, 2)
	e.clock.Advance(time.Minute)
	third, err := e.m.PurgeAudit(ctx, "acme", e.clock.Now())
	require.NoError(t, err)
	require.EqualValues(t, 9, third.Checkpoint.Seq)
	rep := verify(9, 1)
	require.EqualValues(t, 10, rep.Chains["acme"].Head.Seq)
	purged = e.events(sa.EventAuditPurged)
	require.Len(t, purged, 1)
	require.Equal(t, "9", purged[0].Attrs[sa.AttrCheckpointSeq])
}
