package sqlstore_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestStaleHeadAfterLostCommits: the database comes back without its last
// commits (a failover to a lagging replica, a point-in-time restore) while
// replica A still caches the chain head it last wrote, (3, H3). Replica B
// appends its own event at seq 3 with another hash. A's next Record must
// not chain from H3, which is no longer in the chain: its one-round-trip
// append compares the whole head, hash included, misses, and takes the
// locking transaction, which chains from B's event (found by review 145:
// the append compared the sequence number only and forked the chain for
// good, so VerifyAudit reported a trail nobody tampered with as broken).
// SQLite, which keeps no one-round-trip append, is not run: its
// databases are files of one process.
func TestStaleHeadAfterLostCommits(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		if d == sqlstore.SQLite {
			return
		}
		ctx := context.Background()
		a := sqltest.NewStore(t, d)
		b, err := sqlstore.New(sqltest.Open(t, d), d, sqlstore.WithTablePrefix(a.TablePrefix()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		raw := sqltest.Open(t, d)
		p := a.TablePrefix()
		ev := func(i int) sa.Event {
			return sa.Event{ID: uuid.New(), Time: storetest.Epoch, Type: sa.EventSupportRequest,
				TenantID: "acme", Actor: storetest.Support, Reason: "request " + string(rune('0'+i))}
		}
		for i := 1; i <= 3; i++ {
			require.NoError(t, a.Record(ctx, ev(i)))
		}
		// The commit of event 3 is lost: the database is back at (2, H2).
		var h2 []byte
		q := func(s string) string { return review148Placeholders(d, s) }
		require.NoError(t, raw.QueryRowContext(ctx, q(`SELECT chain_hash FROM `+p+`audit_events WHERE tenant_id = ? AND seq = 2`), "acme").Scan(&h2))
		_, err = raw.ExecContext(ctx, q(`DELETE FROM `+p+`audit_events WHERE tenant_id = ? AND seq = 3`), "acme")
		require.NoError(t, err)
		_, err = raw.ExecContext(ctx, q(`UPDATE `+p+`audit_heads SET seq = 2, chain_hash = ? WHERE tenant_id = ?`), h2, "acme")
		require.NoError(t, err)

		fromB := ev(4)
		require.NoError(t, b.Record(ctx, fromB))
		fromA := ev(5)
		require.NoError(t, a.Record(ctx, fromA))

		chains := reviewVerifyChains(t, a) // every link, and the head
		evs := chains["acme"]
		require.Len(t, evs, 4)
		require.Equal(t, fromB.ID, evs[2].ID, "B's event is the third")
		require.Equal(t, fromA.ID, evs[3].ID, "A's event follows B's, chained from it")
		m, err := sa.NewManager(a)
		require.NoError(t, err)
		rep, err := m.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.True(t, rep.OK(), "no fork: %+v", rep.Break)
	})
}
