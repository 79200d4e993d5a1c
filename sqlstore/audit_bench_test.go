package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// auditBenchEvent is a typical support.request event.
func auditBenchEvent(tenant string, now time.Time) sa.Event {
	return sa.Event{ID: uuid.New(), Time: now, Type: sa.EventSupportRequest, TenantID: tenant, GrantID: uuid.New(),
		Actor: storetest.Support, Attrs: map[string]string{
			sa.AttrMethod: "GET", sa.AttrPath: "/settings/security", sa.AttrStatus: "200", sa.AttrDurationMS: "12",
			sa.AttrScope: "read", sa.AttrSessionID: "sess-4f9c2a", sa.AttrSubjectUserID: "user-1042",
		}}
}

// BenchmarkRecord measures Store.Record (one transaction per event) on
// each database, with the hash chain and without it (the same statements
// with an empty hash).
func BenchmarkRecord(b *testing.B) {
	now := storetest.Epoch.Truncate(time.Microsecond)
	for _, d := range sqltest.Dialects() {
		for _, chained := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/chained=%v", d, chained), func(b *testing.B) {
				s := sqltest.NewStore(b, d)
				ctx := context.Background()
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					e := auditBenchEvent(fmt.Sprint("tenant-", i%100), now.Add(time.Duration(i)*time.Microsecond))
					var err error
					if chained {
						err = s.Record(ctx, e)
					} else {
						err = sqlstore.RecordUnchained(ctx, s, e)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// EnvVerifyEvents sets how many events BenchmarkVerifyAudit verifies
// (default 10000; BENCHMARKS.md uses 1000000 on PostgreSQL).
const EnvVerifyEvents = "SUPPORTACCESS_BENCH_VERIFY_EVENTS"

// BenchmarkVerifyAudit measures Manager.VerifyAudit of one tenant's chain
// on each database. The chain is built directly (bulk INSERTs), not
// through Record.
func BenchmarkVerifyAudit(b *testing.B) {
	n := 10_000
	if v := os.Getenv(EnvVerifyEvents); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number", EnvVerifyEvents, v)
		}
	}
	now := storetest.Epoch.Truncate(time.Microsecond)
	for _, d := range sqltest.Dialects() {
		b.Run(fmt.Sprintf("%s/events=%d", d, n), func(b *testing.B) {
			s := sqltest.NewStore(b, d)
			ctx := context.Background()
			evs := make([]sa.Event, 0, min(n, 100_000))
			var prev []byte
			for i := 1; i <= n; i++ {
				e := auditBenchEvent("acme", now.Add(time.Duration(i)*time.Millisecond))
				e.Seq = int64(i)
				e.Hash = e.ChainHash(prev)
				prev = e.Hash
				evs = append(evs, e)
				if len(evs) == cap(evs) || i == n {
					if err := sqlstore.SeedChain(ctx, s, evs); err != nil {
						b.Fatal(err)
					}
					evs = evs[:0]
				}
			}
			m, err := sa.NewManager(s)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				rep, err := m.VerifyAudit(ctx, "acme")
				if err != nil || rep.Events != int64(n) {
					b.Fatal(rep.Events, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/event")
		})
	}
}

// BenchmarkRecordPaired records with and without the chain in turns on
// the same store and reports each mean and their ratio (chained/unchained):
// interleaving keeps the ratio meaningful on a machine whose load drifts.
func BenchmarkRecordPaired(b *testing.B) {
	now := storetest.Epoch.Truncate(time.Microsecond)
	for _, d := range sqltest.Dialects() {
		b.Run(d.String(), func(b *testing.B) {
			s := sqltest.NewStore(b, d)
			ctx := context.Background()
			var on, off time.Duration
			for i := 0; b.Loop(); i++ {
				for k := 0; k < 2; k++ {
					chained := (i+k)%2 == 0
					tenant := "on-"
					if !chained {
						tenant = "off-"
					}
					e := auditBenchEvent(fmt.Sprint(tenant, i%100), now.Add(time.Duration(i)*time.Microsecond))
					start := time.Now()
					var err error
					if chained {
						err = s.Record(ctx, e)
					} else {
						err = sqlstore.RecordUnchained(ctx, s, e)
					}
					el := time.Since(start)
					if err != nil {
						b.Fatal(err)
					}
					if chained {
						on += el
					} else {
						off += el
					}
				}
			}
			b.ReportMetric(float64(on.Nanoseconds())/float64(b.N), "ns/chained")
			b.ReportMetric(float64(off.Nanoseconds())/float64(b.N), "ns/unchained")
			b.ReportMetric(float64(on)/float64(off), "ratio")
		})
	}
}
