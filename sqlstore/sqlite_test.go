package sqlstore_test

import (
	"context"
	"io/fs"
	"path/filepath"
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

// sqliteReplicas opens n *sql.DB handles on one new file (plain path, no
// DSN parameters), each with its own store and Manager on a shared clock;
// the first store is migrated.
func sqliteReplicas(t *testing.T, n int) ([]*sqlstore.Store, []*sa.Manager, *storetest.Clock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replicas.db")
	clock := storetest.NewClock(storetest.Epoch)
	var stores []*sqlstore.Store
	var managers []*sa.Manager
	for i := 0; i < n; i++ {
		s, err := sqlstore.New(sqltest.OpenSQLite(t, path), sqlstore.SQLite)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		if i == 0 {
			require.NoError(t, s.Migrate(context.Background()))
		}
		m, err := sa.NewManager(s, sa.WithNow(clock.Now))
		require.NoError(t, err)
		stores = append(stores, s)
		managers = append(managers, m)
	}
	return stores, managers, clock
}

func TestSQLiteRevokeVisibleThroughOtherHandle(t *testing.T) {
	_, ms, _ := sqliteReplicas(t, 2)
	ctx := context.Background()
	g, err := ms[0].Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
	require.NoError(t, err)
	got, err := ms[1].Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.NoError(t, err, "a grant made through one handle is seen through the other")
	require.Equal(t, g.ID, got.ID)
	_, err = ms[0].Revoke(ctx, g.ID, storetest.Customer, "done")
	require.NoError(t, err)
	_, err = ms[1].Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the next Check through the other handle denies")
	_, err = ms[1].Revoke(ctx, g.ID, storetest.Customer, "again")
	require.ErrorIs(t, err, sa.ErrInvalidInput, "the other handle sees the revocation")
}

// TestSQLiteConcurrentWritersNeverLocked: 8 writers on 2 handles (plain
// path, no busy_timeout) grant, revoke, record and sweep at once; none sees
// "database is locked".
func TestSQLiteConcurrentWritersNeverLocked(t *testing.T) {
	stores, ms, clock := sqliteReplicas(t, 2)
	ctx := context.Background()
	const writers, rounds = 8, 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, s := ms[w%2], stores[w%2]
			fail := func(err error) bool {
				if err == nil {
					return false
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return true
			}
			for i := 0; i < rounds; i++ {
				tenant := []string{"acme", "globex"}[i%2]
				g, err := m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: storetest.Customer, Duration: time.Hour})
				if fail(err) {
					return
				}
				if _, err := m.Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead); fail(err) {
					return
				}
				if fail(s.Record(ctx, sa.Event{ID: uuid.New(), Time: clock.Now().Truncate(time.Microsecond), Type: sa.EventSupportRequest,
					TenantID: tenant, Actor: storetest.Support})) {
					return
				}
				if i%3 == 0 {
					if _, err := m.Sweep(ctx); fail(err) {
						return
					}
				}
				if _, err := m.Revoke(ctx, g.ID, storetest.Customer, ""); fail(err) {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NotContains(t, err.Error(), "locked")
		require.NoError(t, err)
	}
	gs, err := ms[1].List(ctx, sa.ListFilter{Statuses: []sa.Status{sa.StatusRevoked}})
	require.NoError(t, err)
	require.Len(t, gs, writers*rounds)
	for _, tenant := range []string{"acme", "globex"} {
		rep, err := ms[0].VerifyAudit(ctx, tenant)
		require.NoError(t, err)
		require.True(t, rep.OK())
	}
}

// TestSQLiteBusyTimeout: while another connection holds the write lock, a
// write keeps retrying for the busy timeout and then fails with an error;
// it never waits past its context.
func TestSQLiteBusyTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	s, err := sqlstore.New(sqltest.OpenSQLite(t, path), sqlstore.SQLite, sqlstore.WithBusyTimeout(100*time.Millisecond))
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	require.NoError(t, s.Migrate(ctx))

	other := sqltest.OpenSQLite(t, path)
	conn, err := other.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
	require.NoError(t, err)

	ev := sa.Event{ID: uuid.New(), Time: storetest.Epoch.Truncate(time.Microsecond), Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}
	start := time.Now()
	err = s.Record(ctx, ev)
	require.Error(t, err)
	require.Contains(t, err.Error(), "busy after 100ms")
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	slow, err := sqlstore.New(sqltest.OpenSQLite(t, path), sqlstore.SQLite) // default 30 s
	require.NoError(t, err)
	defer slow.Close()
	require.ErrorIs(t, slow.Record(tctx, ev), context.DeadlineExceeded)

	// Reads are not blocked by the writer (WAL).
	_, err = s.FindActiveGrant(ctx, "acme", "x", sa.ScopeRead, time.Now())
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)

	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	require.NoError(t, err)
	require.NoError(t, s.Record(ctx, ev), "works once the lock is released")
}

// TestSQLiteWALWithoutMigrate: a store on a database migrated by another
// tool switches the file to WAL before its first write.
func TestSQLiteWALWithoutMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "own-tool.db")
	db := sqltest.OpenSQLite(t, path)
	b, err := sqlstoreMigrationSQL(sqlstore.SQLite)
	require.NoError(t, err)
	_, err = db.Exec(b) // modernc runs a multi-statement script
	require.NoError(t, err)
	var mode string
	require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "delete", mode)

	s, err := sqlstore.New(sqltest.OpenSQLite(t, path), sqlstore.SQLite)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Record(context.Background(), sa.Event{ID: uuid.New(), Time: time.Now().UTC().Truncate(time.Microsecond),
		Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
	fresh := sqltest.OpenSQLite(t, path)
	require.NoError(t, fresh.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode)
}

// sqlstoreMigrationSQL concatenates the exported migration files of d.
func sqlstoreMigrationSQL(d sqlstore.Dialect) (string, error) {
	fsys := sqlstore.Migrations(d)
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, n := range names {
		text, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		b.Write(text)
	}
	return b.String(), nil
}
