package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// forEachDialect runs f as a subtest per dialect.
func forEachDialect(t *testing.T, f func(t *testing.T, d sqlstore.Dialect)) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) { f(t, d) })
	}
}

// unmigrated returns a store with a fresh prefix whose tables are dropped at
// the end of the test, without migrating it.
func unmigrated(t *testing.T, db *sql.DB, d sqlstore.Dialect) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(sqltest.NewPrefix()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.Close()
		require.NoError(t, sqltest.DropTables(context.Background(), db, d, s.TablePrefix()))
	})
	return s
}

func versions(t *testing.T, db *sql.DB, s *sqlstore.Store) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM ` + s.TablePrefix() + `schema_version ORDER BY version`)
	require.NoError(t, err)
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

func wantVersions() []int {
	var out []int
	for v := 1; v <= sqlstore.SchemaVersion; v++ {
		out = append(out, v)
	}
	return out
}

func TestMigrateTwice(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		s := unmigrated(t, db, d)
		ctx := context.Background()
		require.NoError(t, s.Migrate(ctx))
		require.NoError(t, s.Migrate(ctx), "idempotent")
		require.Equal(t, wantVersions(), versions(t, db, s))
		tables, err := sqltest.Tables(ctx, db, d, s.TablePrefix())
		require.NoError(t, err)
		var bare []string
		for _, n := range tables {
			bare = append(bare, strings.TrimPrefix(n, s.TablePrefix()))
		}
		require.Subset(t, bare, []string{"audit_events", "audit_heads", "grants", "schema_version"})
	})
}

func TestMigrateConcurrent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		prefix := sqltest.NewPrefix()
		t.Cleanup(func() { require.NoError(t, sqltest.DropTables(context.Background(), db, d, prefix)) })
		// Four replicas, each with its own *sql.DB where that is possible
		// (SQLite: handles on the same file).
		var stores []*sqlstore.Store
		for i := 0; i < 4; i++ {
			h := db
			if i%2 == 1 && d != sqlstore.SQLite {
				h = sqltest.Open(t, d)
			}
			s, err := sqlstore.New(h, d, sqlstore.WithTablePrefix(prefix))
			require.NoError(t, err)
			stores = append(stores, s)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(stores))
		for i, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Migrate(context.Background())
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, wantVersions(), versions(t, db, stores[0]), "each version applied once")
		m, err := sa.NewManager(stores[3])
		require.NoError(t, err)
		_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: storetest.Customer})
		require.NoError(t, err)
	})
}

func TestMigrateConcurrentSQLiteHandles(t *testing.T) {
	path := t.TempDir() + "/shared.db"
	var stores []*sqlstore.Store
	for i := 0; i < 4; i++ {
		s, err := sqlstore.New(sqltest.OpenSQLite(t, path), sqlstore.SQLite)
		require.NoError(t, err)
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Migrate(context.Background())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	db := sqltest.OpenSQLite(t, path)
	require.Equal(t, wantVersions(), versions(t, db, stores[0]))
	var mode string
	require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode, "Migrate switches the file to WAL")
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		s := sqltest.NewStoreOn(t, db, d)
		_, err := db.Exec(`INSERT INTO ` + s.TablePrefix() + `schema_version (version) VALUES (` + fmt.Sprint(sqlstore.SchemaVersion+1) + `)`)
		require.NoError(t, err)
		err = s.Migrate(context.Background())
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooNew)
		require.NotErrorIs(t, err, sa.ErrInvalidInput, "a fault of the deployment, not malformed input")
		require.Equal(t, append(wantVersions(), sqlstore.SchemaVersion+1), versions(t, db, s), "nothing downgraded")
		// In use, a newer schema is not refused: in a rolling upgrade the
		// replicas still on this release keep working while a newer one
		// migrates.
		m, err := sa.NewManager(s)
		require.NoError(t, err)
		_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: storetest.Customer})
		require.NoError(t, err)
	})
}

// TestUseRefusesAnOlderSchema: a database a host's tool left at an older
// version (Migrate not run, or stopped part of the way) is refused by
// every method but Migrate with ErrSchemaTooOld, before anything is
// written — Check fails closed, Grant stores nothing. Once another
// replica migrated, the same store works: a refusal is not kept.
func TestUseRefusesAnOlderSchema(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		s := unmigrated(t, db, d)
		dropRoutines(t, db, d, s.TablePrefix())
		names, err := fs.Glob(s.Migrations(), "*.sql")
		require.NoError(t, err)
		for _, n := range names[:len(names)-1] {
			applyFile(t, db, s, n)
		}
		m, err := sa.NewManager(s)
		require.NoError(t, err)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
		require.NotErrorIs(t, err, sa.ErrInvalidInput, "a fault of the deployment, not malformed input (review 161)")
		require.ErrorContains(t, err, fmt.Sprintf("is at version %d, this library needs %d: run Migrate", sqlstore.SchemaVersion-1, sqlstore.SchemaVersion))
		_, err = m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld, "Check fails closed")
		var n int
		require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM `+s.TablePrefix()+`grants`).Scan(&n))
		require.Zero(t, n, "nothing written")

		other, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(s.TablePrefix()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = other.Close() })
		require.NoError(t, other.Migrate(ctx))
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
		require.NoError(t, err, "the same store, once another migrated")
		_, err = m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.NoError(t, err)
	})
}

// TestMigrationsWithOwnTool applies the exported files statement by
// statement, as a host's migration tool would; Migrate then finds nothing
// to do and the store works.
func TestMigrationsWithOwnTool(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		s := unmigrated(t, db, d)
		fsys := s.Migrations()
		names, err := fs.Glob(fsys, "*.sql")
		require.NoError(t, err)
		require.NotEmpty(t, names)
		for _, n := range names {
			applyFile(t, db, s, n)
		}
		require.NoError(t, s.Migrate(context.Background()))
		require.Equal(t, wantVersions(), versions(t, db, s))
		m, err := sa.NewManager(s)
		require.NoError(t, err)
		g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: storetest.Customer})
		require.NoError(t, err)
		_, err = m.Check(context.Background(), "acme", storetest.Support.ID, sa.ScopeRead)
		require.NoError(t, err)
		require.NotEqual(t, g.ID, [16]byte{})
	})
}

func TestNewRejectsBadInput(t *testing.T) {
	db := sqltest.Open(t, sqlstore.SQLite)
	for _, p := range []string{"", "a-b", "x; DROP TABLE y; --", "1abc", "ab c", "é", `a"b`, strings.Repeat("p", 33)} {
		_, err := sqlstore.New(db, sqlstore.SQLite, sqlstore.WithTablePrefix(p))
		require.ErrorIs(t, err, sa.ErrInvalidInput, "prefix %q", p)
	}
	_, err := sqlstore.New(nil, sqlstore.SQLite)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = sqlstore.New(db, sqlstore.Dialect(0))
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	s, err := sqlstore.New(db, sqlstore.SQLite, nil, sqlstore.WithBusyTimeout(-time.Second))
	require.NoError(t, err, "nil options and non-positive timeouts are ignored")
	require.Equal(t, sqlstore.DefaultTablePrefix, s.TablePrefix())
	require.Equal(t, sqlstore.SQLite, s.Dialect())
}

func TestPrefixIsolation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		a := sqltest.NewStoreOn(t, db, d)
		b := sqltest.NewStoreOn(t, db, d)
		ctx := context.Background()
		ma, err := sa.NewManager(a)
		require.NoError(t, err)
		mb, err := sa.NewManager(b)
		require.NoError(t, err)
		g, err := ma.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
		require.NoError(t, err)
		_, err = ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.NoError(t, err)
		_, err = mb.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the other prefix's grant is invisible")
		_, err = mb.Get(ctx, g.ID)
		require.ErrorIs(t, err, sa.ErrNotFound)
		gs, err := mb.List(ctx, sa.ListFilter{})
		require.NoError(t, err)
		require.Empty(t, gs)
		evs, err := mb.Events(ctx, sa.AuditFilter{})
		require.NoError(t, err)
		require.Empty(t, evs)
		// The same grant ID may exist under both prefixes.
		require.NoError(t, b.CreateGrant(ctx, g, nil))
		evs, err = ma.Events(ctx, sa.AuditFilter{})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.EqualValues(t, 1, evs[0].Seq)
	})
}

// applyFile runs the migration file name of s.Migrations() on db the way a
// host's own tool would: statement by statement, comments dropped.
func applyFile(t *testing.T, db *sql.DB, s *sqlstore.Store, name string) {
	t.Helper()
	applySome(t, db, s, name, func(int, string) bool { return true })
}

// applySome is applyFile for the statements for which keep(i, q) is true
// (i counts the file's statements from 0): a tool that stopped half-way.
func applySome(t *testing.T, db *sql.DB, s *sqlstore.Store, name string, keep func(i int, q string) bool) {
	t.Helper()
	b, err := fs.ReadFile(s.Migrations(), name)
	require.NoError(t, err)
	require.Contains(t, string(b), s.TablePrefix()+"schema_version", "rendered for the prefix")
	i := 0
	for _, stmt := range strings.Split(string(b), ";\n") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		q := strings.TrimSpace(strings.Join(lines, "\n"))
		if q == "" {
			continue
		}
		if keep(i, q) {
			_, err := db.Exec(q)
			require.NoError(t, err, "%s: %s", name, q)
		}
		i++
	}
}

// atVersion4 returns a store of dialect d on db with a fresh prefix whose
// tables the migration files 1–4 created, as a host's tool would.
func atVersion4(t *testing.T, db *sql.DB, d sqlstore.Dialect) *sqlstore.Store {
	t.Helper()
	s := unmigrated(t, db, d)
	names, err := fs.Glob(s.Migrations(), "*.sql")
	require.NoError(t, err)
	for _, n := range names {
		if n < "0005" {
			applyFile(t, db, s, n)
		}
	}
	require.Equal(t, []int{1, 2, 3, 4}, versions(t, db, s))
	return s
}

// TestMigrateV5KeepsPendingTransitions upgrades a version 4 database whose
// grants are in every claim state: version 5 (grant_due on PostgreSQL and
// SQLite) must leave exactly the transitions that were pending, so nothing
// is recorded twice or lost across the upgrade.
func TestMigrateV5KeepsPendingTransitions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		s := atVersion4(t, db, d)
		now := storetest.Epoch.UTC().Truncate(time.Microsecond)
		mk := func(tenant string, expires time.Time) sa.Grant {
			return sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: tenant, GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
				CreatedAt: now.Add(-2 * time.Hour), StartsAt: now.Add(-time.Hour), ExpiresAt: expires}
		}
		fresh := mk("fresh", now.Add(-time.Minute))     // nothing claimed yet
		started := mk("started", now.Add(-time.Minute)) // its start claimed
		done := mk("done", now.Add(-time.Minute))       // both claimed
		revoked := mk("revoked", now.Add(-time.Minute)) // revoked before either
		revoked.RevokedAt, revoked.RevokedBy = now.Add(-90*time.Minute), storetest.Customer
		unlimited := mk("unlimited", time.Time{})
		later := mk("later", now.Add(time.Hour)) // started, expires after now
		flags := map[uuid.UUID][2]bool{started.ID: {true, false}, done.ID: {true, true}, later.ID: {true, false}}
		require.NoError(t, s.InsertV4GrantsForTest(ctx, []sa.Grant{fresh, started, done, revoked, unlimited, later}, flags))

		require.NoError(t, s.Migrate(ctx))
		require.Equal(t, wantVersions(), versions(t, db, s))
		claim := func(tr sa.Transition, at time.Time) []uuid.UUID {
			gs, err := s.ClaimTransitions(ctx, tr, at, 100, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
			require.NoError(t, err)
			var ids []uuid.UUID
			for _, g := range gs {
				ids = append(ids, g.ID)
			}
			return ids
		}
		require.ElementsMatch(t, []uuid.UUID{fresh.ID, unlimited.ID}, claim(sa.TransitionStarted, now), "starts still pending")
		require.ElementsMatch(t, []uuid.UUID{fresh.ID, started.ID}, claim(sa.TransitionExpired, now), "expiries still pending and due")
		require.Equal(t, []uuid.UUID{later.ID}, claim(sa.TransitionExpired, now.Add(2*time.Hour)))
		require.Empty(t, claim(sa.TransitionStarted, now.Add(48*time.Hour)))
		require.Empty(t, claim(sa.TransitionExpired, now.Add(48*time.Hour)))
	})
}
