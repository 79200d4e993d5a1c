package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// TestForgedEventAtOrBeforeChainStartDetected: a row INSERTed in SQL (no
// hash computed) with a sequence number at or before the chain's start —
// seq 0 when nothing was purged, a purged seq after a purge — is listed by
// Events (so AuditPage, ExportAudit and the webapp show it); VerifyAudit
// used to start its walk after the checkpoint and never read it.
func TestForgedEventAtOrBeforeChainStartDetected(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		for _, purged := range []bool{false, true} {
			name := d.String() + "/no_purge"
			if purged {
				name = d.String() + "/after_purge"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				s, m, _, evs := checkpointFixture(t, d)
				forged := evs[0]
				forged.ID = uuid.New()
				forged.Seq = 0
				kind := sa.BreakForged
				if purged {
					_, err := m.PurgeAudit(ctx, "acme", evs[2].Time) // deletes 1 and 2
					require.NoError(t, err)
					forged.Seq = 1 // a purged position
					kind = sa.BreakCheckpoint
				}
				forged.Time = evs[3].Time
				forged.Reason = "customer asked support to export all messages"
				forged.Hash = bytes.Repeat([]byte{0xab}, 32) // any bytes: no hashing needed
				require.NoError(t, s.InsertEventForTest(ctx, forged))

				shown, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
				require.NoError(t, err)
				ids := make([]uuid.UUID, len(shown))
				for i := range shown {
					ids[i] = shown[i].ID
				}
				require.Contains(t, ids, forged.ID, "the forged event is part of the trail the host shows")

				_, err = m.VerifyAudit(ctx, "acme")
				require.ErrorIs(t, err, sa.ErrTampered)
				var brk *sa.ChainBreak
				require.True(t, errors.As(err, &brk))
				require.Equal(t, kind, brk.Kind)
				require.Equal(t, forged.Seq, brk.Seq)
				require.Equal(t, forged.ID, brk.EventID)
			})
		}
	}
}
