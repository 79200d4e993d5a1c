package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// checkpointFixture is a Manager on a fresh store of dialect d with six
// grants in tenant acme a minute apart (events 1 to 6), and the stored
// events.
func checkpointFixture(t *testing.T, d sqlstore.Dialect) (*sqlstore.Store, *sa.Manager, *storetest.Clock, []sa.Event) {
	t.Helper()
	ctx := context.Background()
	s := sqltest.NewStore(t, d)
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(s, sa.WithNow(clock.Now))
	require.NoError(t, err)
	for i := 0; i < 6; i++ {
		_, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour, Reason: fmt.Sprint("grant ", i+1)})
		require.NoError(t, err)
		clock.Advance(time.Minute)
	}
	evs, err := s.Events(ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Len(t, evs, 6)
	_, err = m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	return s, m, clock, evs
}

// forgeCheckpoint does in SQL what someone with write access to the tables
// can: delete acme's events up to seq and set the checkpoint to the last
// deleted event's stored seq and chain_hash. No hash is computed, no
// audit.purged event is recorded.
func forgeCheckpoint(t *testing.T, s *sqlstore.Store, seq int64, hash []byte) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.ExecForTest(ctx, `DELETE FROM {p}audit_events WHERE tenant_id = ? AND seq <= ?`, "acme", seq))
	require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_heads SET checkpoint_seq = ?, checkpoint_hash = ? WHERE tenant_id = ?`, seq, hash, "acme"))
	st, err := s.AuditChain(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, sa.ChainLink{Seq: seq, Hash: hash}, st.Checkpoint)
}

func requireCheckpointBreak(t *testing.T, m *sa.Manager) (sa.VerifyReport, *sa.ChainBreak) {
	t.Helper()
	rep, err := m.VerifyAudit(context.Background(), "acme")
	require.ErrorIs(t, err, sa.ErrTampered)
	var brk *sa.ChainBreak
	require.True(t, errors.As(err, &brk))
	require.Equal(t, rep.Break, brk)
	require.Equal(t, "acme", brk.TenantID)
	require.Equal(t, sa.BreakCheckpoint, brk.Kind, "%v", brk)
	t.Logf("%v", brk)
	return rep, brk
}

// TestReview5ForgedCheckpoint: the events behind an incident deleted and
// the checkpoint moved onto them in SQL is a broken link at the
// checkpoint, on every backend.
func TestReview5ForgedCheckpoint(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			s, m, _, evs := checkpointFixture(t, d)
			forgeCheckpoint(t, s, 4, evs[3].Hash)

			rep, brk := requireCheckpointBreak(t, m)
			require.EqualValues(t, 5, brk.Seq, "the first remaining event")
			require.Equal(t, evs[4].ID, brk.EventID)
			require.Contains(t, brk.Detail, "no audit.purged event follows it")
			require.Equal(t, sa.ChainLink{Seq: 4, Hash: evs[3].Hash}, rep.Chains["acme"].From)
		})
	}
}

// TestReview5ForgedCheckpointAfterPurge: after a genuine purge, the
// checkpoint moved further in SQL does not match the audit.purged event.
func TestReview5ForgedCheckpointAfterPurge(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			s, m, _, evs := checkpointFixture(t, d)
			res, err := m.PurgeAudit(ctx, "acme", evs[2].Time) // 1 and 2; purge event 7
			require.NoError(t, err)
			require.Equal(t, sa.ChainLink{Seq: 2, Hash: evs[1].Hash}, res.Checkpoint)
			_, err = m.VerifyAudit(ctx, "acme")
			require.NoError(t, err)

			forgeCheckpoint(t, s, 4, evs[3].Hash)
			_, brk := requireCheckpointBreak(t, m)
			require.EqualValues(t, 5, brk.Seq)
			require.Equal(t, evs[4].ID, brk.EventID)
			require.Contains(t, brk.Detail, "the latest audit.purged event (seq 7) records checkpoint 2")
		})
	}
}

// TestReview5GenuinePurgesVerify: two successive purges, one that deletes
// nothing, and one that deletes the earlier purge events all keep the
// chain verifiable.
func TestReview5GenuinePurgesVerify(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			_, m, clock, evs := checkpointFixture(t, d)
			verify := func(from, events int64) sa.VerifyReport {
				t.Helper()
				rep, err := m.VerifyAudit(ctx, "acme")
				require.NoError(t, err)
				require.Equal(t, from, rep.Chains["acme"].From.Seq)
				require.Equal(t, events, rep.Events)
				return rep
			}
			first, err := m.PurgeAudit(ctx, "acme", evs[2].Time) // 1 and 2; purge event 7
			require.NoError(t, err)
			require.EqualValues(t, 2, first.Deleted)
			verify(2, 5)

			none, err := m.PurgeAudit(ctx, "acme", evs[2].Time)
			require.NoError(t, err)
			require.Zero(t, none.Deleted)
			verify(2, 5)

			clock.Advance(time.Minute)
			_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour}) // seq 8
			require.NoError(t, err)
			second, err := m.PurgeAudit(ctx, "acme", evs[4].Time) // 3 and 4; purge event 9
			require.NoError(t, err)
			require.Equal(t, first.Checkpoint, second.Previous)
			verify(4, 5)

			clock.Advance(time.Minute)
			third, err := m.PurgeAudit(ctx, "acme", clock.Now()) // 5 to 9, both purge events; purge event 10
			require.NoError(t, err)
			require.EqualValues(t, 9, third.Checkpoint.Seq)
			rep := verify(9, 1)
			require.EqualValues(t, 10, rep.Chains["acme"].Head.Seq)
		})
	}
}
