package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// BenchmarkSweep: one Sweep of 10 000 due grants — 100 000 too with
// SUPPORTACCESS_BENCH_LARGE=1, as seeding them takes about a minute per
// iteration — (grant.expired events in batches of
// supportaccess.SweepBatchSize, over 50 tenants), without and with an
// expiry hook, on each database (a server that does not answer is skipped).
// The tables are analysed after seeding, as autovacuum would have. Each
// iteration seeds its grants, so use -benchtime=1x:
//
//	SUPPORTACCESS_BENCH_LARGE=1 go test ./sqlstore -run '^$' -bench Sweep -benchtime=1x
func BenchmarkSweep(b *testing.B) {
	sizes := []int{10_000}
	if os.Getenv("SUPPORTACCESS_BENCH_LARGE") == "1" {
		sizes = append(sizes, 100_000)
	}
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
		for _, n := range sizes {
			for _, hooks := range []bool{false, true} {
				name := fmt.Sprintf("%v/%dk", d, n/1000)
				if hooks {
					name += "/hooks"
				}
				b.Run(name, func(b *testing.B) {
					storetest.BenchmarkSweep(b, store, storetest.SweepBench{N: n, Hooks: hooks, AfterSeed: analyze})
				})
			}
		}
	}
}
