package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Tests of the 22nd review round (sqlstore audit trail).

// review22Chain records n support.request events of tenant a second apart
// on a fresh store and returns the store, a Manager on it (clock at the
// Epoch plus an hour) and the events as stored.
func review22Chain(t *testing.T, d sqlstore.Dialect, tenant string, n int) (*sqlstore.Store, *sa.Manager, []sa.Event) {
	t.Helper()
	ctx := context.Background()
	s := sqltest.NewStore(t, d)
	clock := storetest.NewClock(storetest.Epoch.Add(time.Hour))
	m, err := sa.NewManager(s, sa.WithNow(clock.Now))
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: storetest.Epoch.Add(time.Duration(i) * time.Second),
			Type: sa.EventSupportRequest, TenantID: tenant, Actor: storetest.Support, Attrs: map[string]string{sa.AttrPath: fmt.Sprint("/p/", i)}}))
	}
	evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant, Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Len(t, evs, n)
	_, err = m.VerifyAudit(ctx, tenant)
	require.NoError(t, err, "intact before the change")
	return s, m, evs
}

// TestReview22SQLCheckpointHashChangeBlamesGenuineEvent: after a genuine
// purge, someone with write access changes the checkpoint's hash in
// audit_heads (the seq stays). VerifyAudit chains the first remaining
// event from that hash, which fails, and classify sees that the next event
// links to the first one's stored hash, so it reports BreakHashMismatch
// "the event was changed after it was recorded" at the first remaining
// event — an event nobody touched — and never mentions the checkpoint
// (verifier.checkpoint runs only when everything else verified). The
// chain's latest audit.purged event records the genuine checkpoint hash,
// so the changed checkpoint is identifiable: it is a BreakCheckpoint.
func TestReview22SQLCheckpointHashChangeBlamesGenuineEvent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		s, m, evs := review22Chain(t, d, "acme", 6)
		res, err := m.PurgeAudit(ctx, "acme", evs[3].Time) // deletes 1 to 3
		require.NoError(t, err)
		require.EqualValues(t, 3, res.Checkpoint.Seq)
		_, err = m.VerifyAudit(ctx, "acme")
		require.NoError(t, err)

		require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_heads SET checkpoint_hash = ? WHERE tenant_id = ?`,
			make([]byte, 32), "acme"))

		rep, err := m.VerifyAudit(ctx, "acme")
		require.ErrorIs(t, err, sa.ErrTampered)
		require.NotNil(t, rep.Break)
		require.Equal(t, sa.BreakCheckpoint, rep.Break.Kind,
			"the checkpoint was changed, not event 4 (%s): %v", evs[3].ID, rep.Break)
		require.EqualValues(t, 4, rep.Break.Seq)
	})
}

// TestReview22SQLMalformedRowIsNotReportedAsTampering: an attrs column
// rewritten to something the store cannot decode (here a lone backslash)
// makes Events fail with a plain decoding error ("malformed list
// column"). VerifyAudit returns that error — not ErrTampered, no
// ChainBreak, no location (and a report whose OK() is true); every
// Events and ExportAudit of the tenant fails the same way. A verification
// job that tells tampering (errors.Is ErrTampered) from an unavailable
// store treats the tampered trail as a transient failure. The row must be
// reported like the SQLite storage-class changes already are: a
// *ChainBreak at the changed event.
func TestReview22SQLMalformedRowIsNotReportedAsTampering(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		s, m, evs := review22Chain(t, d, "acme", 4)
		require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET attrs = ? WHERE tenant_id = ? AND seq = 3`, `\`, "acme"))

		_, err := m.VerifyAudit(ctx, "acme")
		require.Error(t, err)
		require.ErrorIs(t, err, sa.ErrTampered, "a row changed behind the store's back is tampering: %v", err)
		var brk *sa.ChainBreak
		require.ErrorAs(t, err, &brk)
		require.EqualValues(t, 3, brk.Seq)
		require.Equal(t, evs[2].ID, brk.EventID)
	})
}

// TestReview22SQLiteStoreChainBreakNotInReport: on SQLite a filter column
// rewritten as a BLOB makes Events return a *ChainBreak (eventRow.scan).
// VerifyAudit returns it as its error, but the report it returns with it
// has Break nil, so OK() is true — against VerifyAudit's contract ("a
// *ChainBreak wrapping ErrTampered (also in the report's Break)"). A
// caller that reads the report (OK, Break) rather than the error, e.g. a
// scheduled job that logs rep.OK(), is told the chain is intact.
func TestReview22SQLiteStoreChainBreakNotInReport(t *testing.T) {
	ctx := context.Background()
	s, m, evs := review22Chain(t, sqlstore.SQLite, "acme", 4)
	require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET actor_id = CAST(actor_id AS BLOB) WHERE id = ?`, evs[1].ID))

	rep, err := m.VerifyAudit(ctx, "acme")
	require.ErrorIs(t, err, sa.ErrTampered)
	require.False(t, rep.OK(), "VerifyAudit returned ErrTampered with a report that says the chain is intact")
	require.NotNil(t, rep.Break)
	require.EqualValues(t, 2, rep.Break.Seq)
	require.Equal(t, evs[1].ID, rep.Break.EventID)
}
