package sqlstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
)

// TestReview88UndecodableRowHidesEarlierBreak: VerifyAudit promises to
// report the first broken link. Someone with write access changes the
// reason of event 2 (a plain hash mismatch) and makes the attrs of event 4
// undecodable. Both rows are in the same page of verifyBatch events, and
// Events fails the whole page on the undecodable row (queryAll returns
// the first scan error), so the verifier never sees event 2: the break is
// reported at seq 4, an event after the first broken one, and the report
// says nothing about the changed event 2.
func TestReview88UndecodableRowHidesEarlierBreak(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		s, m, evs := review22Chain(t, d, "acme", 5)
		require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET reason = ? WHERE tenant_id = ? AND seq = 2`, "nothing to see", "acme"))
		require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET attrs = ? WHERE tenant_id = ? AND seq = 4`, `\`, "acme"))

		rep, err := m.VerifyAudit(ctx, "acme")
		require.ErrorIs(t, err, sa.ErrTampered)
		require.NotNil(t, rep.Break)
		require.EqualValues(t, 2, rep.Break.Seq, "the first broken link is event 2 (%s): %v", evs[1].ID, rep.Break)
		require.Equal(t, evs[1].ID, rep.Break.EventID)
	})
}
