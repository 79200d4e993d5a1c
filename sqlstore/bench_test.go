package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Benchmarks, per dialect:
//
//	go test -run '^$' -bench . -benchmem ./sqlstore/
//
// BenchmarkCheck and BenchmarkCheckBaselineSelect share one fixture per
// dialect and size (grants spread over tenants, 10 per tenant, see
// fixtureGrants): 10k grants always; 1M grants only with
// SUPPORTACCESS_BENCH_LARGE=1, because bulk-loading them takes minutes per
// server. Fixtures live in the shared test database under a random prefix
// and are dropped when the benchmarks end.

// benchSizes are the fixture sizes: name, tenants (10 grants each).
func benchSizes() []struct {
	name    string
	tenants int
} {
	sizes := []struct {
		name    string
		tenants int
	}{{"10k", 1_000}}
	if os.Getenv("SUPPORTACCESS_BENCH_LARGE") == "1" {
		sizes = append(sizes, struct {
			name    string
			tenants int
		}{"1M", 100_000})
	}
	return sizes
}

type benchFixture struct {
	db      *sql.DB
	s       *sqlstore.Store
	m       *sa.Manager
	tenants []string
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]*benchFixture{}
	cleanups   []func()
)

// TestMain drops the benchmark fixtures after the run, then fails the run
// if any goroutine outlived it (goleak): every *sql.DB is closed by a
// cleanup, which ends its connection opener and the drivers' per-connection
// goroutines, so none is ignored.
func TestMain(m *testing.M) {
	code := m.Run()
	fixturesMu.Lock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	fixturesMu.Unlock()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// benchDB opens a database for d that outlives a single benchmark
// function; closed by TestMain.
func benchDB(b *testing.B, d sqlstore.Dialect) *sql.DB {
	b.Helper()
	if err := sqltest.Available(d); err != nil {
		if sqltest.RequireBackends() {
			b.Fatalf("%v not reachable: %v", d, err)
		}
		b.Skipf("%v not reachable at %s: %v", d, sqltest.DSN(d), err)
	}
	dsn := sqltest.DSN(d)
	if d == sqlstore.SQLite {
		dir, err := os.MkdirTemp("", "sqlstore-bench")
		if err != nil {
			b.Fatal(err)
		}
		cleanups = append(cleanups, func() { _ = os.RemoveAll(dir) })
		dsn = filepath.Join(dir, "bench.db")
	}
	db, err := sql.Open(sqltest.DriverName(d), dsn)
	if err != nil {
		b.Fatal(err)
	}
	cleanups = append(cleanups, func() { _ = db.Close() })
	return db
}

// benchStore returns a migrated store with its own prefix, dropped by
// TestMain. Call with fixturesMu held.
func benchStore(b *testing.B, d sqlstore.Dialect) (*sql.DB, *sqlstore.Store) {
	b.Helper()
	db := benchDB(b, d)
	s, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(sqltest.NewPrefix()))
	if err != nil {
		b.Fatal(err)
	}
	cleanups = append(cleanups, func() {
		_ = s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = sqltest.DropTables(ctx, db, d, s.TablePrefix())
	})
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return db, s
}

// fixture returns the shared Check fixture for d with tenants tenants.
func fixture(b *testing.B, d sqlstore.Dialect, tenants int) *benchFixture {
	b.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	key := fmt.Sprintf("%v/%d", d, tenants)
	if f := fixtures[key]; f != nil {
		return f
	}
	db, s := benchStore(b, d)
	start := time.Now()
	seed(b, s, tenants, 10)
	switch d {
	case sqlstore.Postgres:
		_, _ = db.Exec(`ANALYZE ` + s.TablePrefix() + `grants`)
	case sqlstore.MySQL:
		_, _ = db.Exec(`ANALYZE TABLE ` + s.TablePrefix() + `grants`)
	case sqlstore.SQLite:
		// No ANALYZE: with sqlite_stat4 statistics SQLite re-prepares a
		// statement whenever a parameter compared with an indexed column
		// is rebound, so every query of both Check and the baselines
		// would be parsed and planned anew — a cost of that
		// configuration, not of the store (the plan is the same; see
		// TestCheckQueryUsesIndex, which does analyze).
	}
	b.Logf("%v: loaded %d grants in %s", d, tenants*10, time.Since(start).Round(time.Millisecond))
	m, err := sa.NewManager(s, sa.WithNow(func() time.Time { return fixtureNow }))
	if err != nil {
		b.Fatal(err)
	}
	f := &benchFixture{db: db, s: s, m: m}
	for i := 0; i < tenants; i++ {
		f.tenants = append(f.tenants, fixtureTenant(i))
	}
	fixtures[key] = f
	return f
}

// tenantAt spreads benchmark iterations over the fixture's tenants.
func (f *benchFixture) tenantAt(i int) string { return f.tenants[(i*7919)%len(f.tenants)] }

// BenchmarkCheck measures Manager.Check (one FindActiveGrant query) for the
// generic support principal, read scope, on a random tenant.
func BenchmarkCheck(b *testing.B) {
	for _, d := range sqltest.Dialects() {
		b.Run(d.String(), func(b *testing.B) {
			for _, size := range benchSizes() {
				b.Run(size.name, func(b *testing.B) {
					f := fixture(b, d, size.tenants)
					ctx := context.Background()
					if _, err := f.m.Check(ctx, f.tenantAt(0), storetest.Support.ID, sa.ScopeRead); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := f.m.Check(ctx, f.tenantAt(i), storetest.Support.ID, sa.ScopeRead); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// baselineQuery answers Check's question for the fixture's data by hand:
// the tenant's active grant open to any principal that expires last
// (every fixture grant has the read scope), all columns, one indexed
// SELECT.
const baselineQuery = `SELECT ` + sqlstore.GrantColumns + ` FROM %sgrants ` +
	`WHERE tenant_id = ? AND revoked_at IS NULL AND starts_at <= ? AND (expires_at IS NULL OR expires_at > ?) AND grantees IS NULL ` +
	`ORDER BY expires_at IS NULL DESC, expires_at DESC, created_at, id LIMIT 1`

// BenchmarkCheckBaselineSelect is the hand-written query BenchmarkCheck is
// compared with, on the same fixture: "query" sends it with
// db.QueryRowContext, "prepared" through a prepared statement (as the store
// does). Columns are scanned without decoding.
func BenchmarkCheckBaselineSelect(b *testing.B) {
	for _, d := range sqltest.Dialects() {
		b.Run(d.String(), func(b *testing.B) {
			for _, size := range benchSizes() {
				b.Run(size.name, func(b *testing.B) {
					f := fixture(b, d, size.tenants)
					q := fmt.Sprintf(baselineQuery, f.s.TablePrefix())
					if d == sqlstore.Postgres {
						q = dollar(q)
					}
					now := f.s.TimeArg(fixtureNow)
					ctx := context.Background()
					var id, tenant, reason, ticket, gk, gid, gname, rk, rid, rname, rreason string
					var grantees, scopes, request sql.NullString
					var created, starts, expires, revoked any
					dest := []any{&id, &tenant, &grantees, &scopes, &reason, &ticket, &gk, &gid, &gname, &request,
						&created, &starts, &expires, &revoked, &rk, &rid, &rname, &rreason}
					b.Run("query", func(b *testing.B) {
						b.ReportAllocs()
						for i := 0; i < b.N; i++ {
							if err := f.db.QueryRowContext(ctx, q, f.tenantAt(i), now, now).Scan(dest...); err != nil {
								b.Fatal(err)
							}
						}
					})
					b.Run("prepared", func(b *testing.B) {
						st, err := f.db.PrepareContext(ctx, q)
						if err != nil {
							b.Fatal(err)
						}
						defer st.Close()
						b.ReportAllocs()
						b.ResetTimer()
						for i := 0; i < b.N; i++ {
							if err := st.QueryRowContext(ctx, f.tenantAt(i), now, now).Scan(dest...); err != nil {
								b.Fatal(err)
							}
						}
					})
				})
			}
		})
	}
}

// dollar numbers ? placeholders for PostgreSQL.
func dollar(q string) string {
	out := make([]byte, 0, len(q)+8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, fmt.Sprintf("$%d", n)...)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

// benchManager returns a Manager on the dialect's shared benchmark store
// (also returned), its clock fixed at fixtureNow.
func benchManager(b *testing.B, d sqlstore.Dialect) (*sa.Manager, *sqlstore.Store) {
	b.Helper()
	fixturesMu.Lock()
	_, s := benchStore(b, d)
	fixturesMu.Unlock()
	m, err := sa.NewManager(s, sa.WithNow(func() time.Time { return fixtureNow }))
	if err != nil {
		b.Fatal(err)
	}
	return m, s
}

// BenchmarkGrant measures Manager.Grant: one transaction that inserts the
// grant and its grant.created event (chained under the tenant's head lock),
// over 1 000 tenants.
func BenchmarkGrant(b *testing.B) {
	for _, d := range sqltest.Dialects() {
		b.Run(d.String(), func(b *testing.B) {
			m, _ := benchManager(b, d)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Grant(ctx, sa.GrantInput{TenantID: fixtureTenant(i % 1000), By: storetest.Customer, Reason: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRevoke measures Manager.Revoke: a read, then one transaction
// that locks the grant, updates it and appends grant.revoked.
func BenchmarkRevoke(b *testing.B) {
	for _, d := range sqltest.Dialects() {
		b.Run(d.String(), func(b *testing.B) {
			m, s := benchManager(b, d)
			ctx := context.Background()
			gs := make([]sa.Grant, b.N)
			for i := range gs {
				gs[i] = sa.Grant{ID: uuid.New(), TenantID: fixtureTenant(i % 1000), Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer,
					CreatedAt: fixtureNow.Add(-time.Hour), StartsAt: fixtureNow.Add(-time.Hour), ExpiresAt: fixtureNow.Add(time.Hour)}
			}
			if err := s.InsertGrantsForTest(ctx, gs); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Revoke(ctx, gs[i].ID, storetest.Customer, "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckPaired runs Check and the two baselines of
// BenchmarkCheckBaselineSelect in turns, on the same tenant in each round
// (rotating which goes first), and reports their mean times and the ratios
// Check/baseline. Interleaving makes the ratio robust against load on the
// machine that drifts during a run.
func BenchmarkCheckPaired(b *testing.B) {
	for _, d := range sqltest.Dialects() {
		b.Run(d.String(), func(b *testing.B) {
			for _, size := range benchSizes() {
				b.Run(size.name, func(b *testing.B) {
					f := fixture(b, d, size.tenants)
					q := fmt.Sprintf(baselineQuery, f.s.TablePrefix())
					if d == sqlstore.Postgres {
						q = dollar(q)
					}
					ctx := context.Background()
					st, err := f.db.PrepareContext(ctx, q)
					if err != nil {
						b.Fatal(err)
					}
					defer st.Close()
					now := f.s.TimeArg(fixtureNow)
					var id, tenant, reason, ticket, gk, gid, gname, rk, rid, rname, rreason string
					var grantees, scopes, request sql.NullString
					var created, starts, expires, revoked any
					dest := []any{&id, &tenant, &grantees, &scopes, &reason, &ticket, &gk, &gid, &gname, &request,
						&created, &starts, &expires, &revoked, &rk, &rid, &rname, &rreason}
					runs := []func(tenant string) error{
						func(t string) error { _, err := f.m.Check(ctx, t, storetest.Support.ID, sa.ScopeRead); return err },
						func(t string) error { return f.db.QueryRowContext(ctx, q, t, now, now).Scan(dest...) },
						func(t string) error { return st.QueryRowContext(ctx, t, now, now).Scan(dest...) },
					}
					var total [3]time.Duration
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						tenant := f.tenantAt(i)
						for k := 0; k < 3; k++ {
							j := (i + k) % 3
							start := time.Now()
							if err := runs[j](tenant); err != nil {
								b.Fatal(err)
							}
							total[j] += time.Since(start)
						}
					}
					n := float64(b.N)
					b.ReportMetric(float64(total[0].Microseconds())/n, "check-µs")
					b.ReportMetric(float64(total[1].Microseconds())/n, "select-µs")
					b.ReportMetric(float64(total[2].Microseconds())/n, "prepared-µs")
					b.ReportMetric(float64(total[0])/float64(total[1]), "check/select")
					b.ReportMetric(float64(total[0])/float64(total[2]), "check/prepared")
				})
			}
		})
	}
}
