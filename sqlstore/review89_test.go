package sqlstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
)

// TestReview89UnreadablePurgeEventHidesEarlierBreak: review88's fix makes
// the walk read up to an unreadable row one at a time, so that an earlier
// break is reported first. But when the first event after a purge
// checkpoint is broken, classify (hash mismatch) and movedBack (gap) read
// the chain's audit.purged events through ownPurges, a second Events query
// that still fails whole on the unreadable row: its ChainBreak is returned
// as the walk's error, and VerifyAudit reports the later, unreadable
// audit.purged event instead of the first broken link.
func TestReview89UnreadablePurgeEventHidesEarlierBreak(t *testing.T) {
	for _, tc := range []struct {
		name, tamper string
	}{
		{"changed", `UPDATE {p}audit_events SET reason = 'nothing to see' WHERE tenant_id = ? AND seq = 4`},
		{"deleted", `DELETE FROM {p}audit_events WHERE tenant_id = ? AND seq = 4`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
				ctx := context.Background()
				s, m, evs := review22Chain(t, d, "acme", 6)
				res, err := m.PurgeAudit(ctx, "acme", evs[3].Time) // deletes 1 to 3, audit.purged at 7
				require.NoError(t, err)
				require.EqualValues(t, 3, res.Checkpoint.Seq)
				_, err = m.VerifyAudit(ctx, "acme")
				require.NoError(t, err)

				require.NoError(t, s.ExecForTest(ctx, tc.tamper, "acme"))
				require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET attrs = ? WHERE tenant_id = ? AND seq = 7`, `\`, "acme"))

				rep, err := m.VerifyAudit(ctx, "acme")
				require.ErrorIs(t, err, sa.ErrTampered)
				require.NotNil(t, rep.Break)
				require.EqualValues(t, 4, rep.Break.Seq, "the first broken link is event 4, not the unreadable audit.purged event 7: %v", rep.Break)
			})
		})
	}
}
