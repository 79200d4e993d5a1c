package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// BenchmarkSweep: one Sweep of 100 000 due grants (grant.expired events in
// batches of supportaccess.SweepBatchSize, over 50 tenants), without and
// with an expiry hook, on each database (a server that does not answer is
// skipped). The tables are analysed after seeding, as autovacuum would
// have. Run with -benchtime=1x: each iteration seeds 100 000 grants.
//
//	go test ./sqlstore -run XXX -bench Sweep -benchtime=1x
func BenchmarkSweep(b *testing.B) {
	for _, d := range sqltest.Dialects() {
		var db *sql.DB
		store := func(b *testing.B) sa.Store {
			db = sqltest.Open(b, d)
			return sqltest.NewStoreOn(b, db, d)
		}
		analyze := func(b *testing.B, s sa.Store) {
			q := "ANALYZE"
			if d == sqlstore.MySQL {
				q = "ANALYZE TABLE " + s.(*sqlstore.Store).TablePrefix() + "grants"
			}
			if _, err := db.ExecContext(context.Background(), q); err != nil {
				b.Fatal(err)
			}
		}
		for _, hooks := range []bool{false, true} {
			name := d.String() + "/100k"
			if hooks {
				name += "/hooks"
			}
			b.Run(name, func(b *testing.B) {
				storetest.BenchmarkSweep(b, store, storetest.SweepBench{N: 100_000, Hooks: hooks, AfterSeed: analyze})
			})
		}
	}
}
