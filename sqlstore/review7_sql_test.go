package sqlstore_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// review7OpenPostgres opens the PostgreSQL test database with extra
// connection parameters (e.g. default_transaction_isolation).
func review7OpenPostgres(t *testing.T, params map[string]string) *sql.DB {
	t.Helper()
	if err := sqltest.Available(sqlstore.Postgres); err != nil {
		t.Skip(err)
	}
	u, err := url.Parse(sqltest.DSN(sqlstore.Postgres))
	require.NoError(t, err, "this test needs a URL DSN")
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// review7MigrateLockKey is the advisory lock key Migrate takes on
// PostgreSQL for prefix (as Store.lockKey computes it).
func review7MigrateLockKey(prefix string) int64 {
	sum := sha256.Sum256([]byte("supportaccess.sqlstore.migrate:" + strings.ToLower(prefix)))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// TestReview7SQLMigrateConcurrentRepeatableReadDefault: on a PostgreSQL
// server (or role, or DSN) whose default_transaction_isolation is
// REPEATABLE READ, two replicas that call Migrate at the same time must
// both succeed (Migrate documents: "safe when several replicas call it at
// once"). migratePostgres begins its transaction at the server's default
// level, and its first statement (pg_advisory_xact_lock) takes the
// transaction's snapshot before it waits for the lock: the replica that
// waited then reads schema_version from a snapshot older than the other's
// commit, sees version 0, re-applies migration 1 and fails on the
// duplicate schema_version row.
func TestReview7SQLMigrateConcurrentRepeatableReadDefault(t *testing.T) {
	db := review7OpenPostgres(t, map[string]string{"default_transaction_isolation": "repeatable read"})
	plain := sqltest.Open(t, sqlstore.Postgres)
	ctx := context.Background()
	prefix := sqltest.NewPrefix()
	t.Cleanup(func() { _ = sqltest.DropTables(context.Background(), plain, sqlstore.Postgres, prefix) })

	var stores []*sqlstore.Store
	for i := 0; i < 2; i++ {
		s, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.WithTablePrefix(prefix))
		require.NoError(t, err)
		stores = append(stores, s)
	}

	// Hold the migration lock so that both replicas start their
	// transaction and wait for it, as two replicas starting together do.
	holder, err := plain.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback() }()
	_, err = holder.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, review7MigrateLockKey(prefix))
	require.NoError(t, err)

	errs := make(chan error, len(stores))
	for _, s := range stores {
		go func() { errs <- s.Migrate(ctx) }()
	}
	require.Eventually(t, func() bool {
		var n int
		err := plain.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n)
		return err == nil && n >= 2
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, holder.Commit())

	for range stores {
		require.NoError(t, <-errs, "a replica migrating concurrently must not fail")
	}
}

// TestReview7SQLMySQLDSTGapLocation: sqlstore.MySQL documents "any DSN
// works, parseTime and loc included". With parseTime=true and a loc that
// has daylight saving time (loc=Local on most servers outside UTC), the
// driver builds each DATETIME's wall clock with time.Date in loc; a stored
// UTC wall clock that falls into loc's spring-forward gap does not exist
// there and is normalised an hour later, and timeScanner, which reads the
// wall clock back as UTC, returns a time one hour off. A grant expiring at
// 2026-03-08 02:30 UTC reads back expiring at 03:30; the next UpdateGrant
// (a delegation, a revocation) writes that back, extending the grant; an
// event recorded at such a time fails VerifyAudit although nobody touched
// it.
func TestReview7SQLMySQLDSTGapLocation(t *testing.T) {
	if err := sqltest.Available(sqlstore.MySQL); err != nil {
		sqltest.Open(t, sqlstore.MySQL) // skips or fails with the how-to message
	}
	_, err := time.LoadLocation("America/New_York")
	require.NoError(t, err, "needs the time zone database")
	base := sqltest.DSN(sqlstore.MySQL)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	db, err := sql.Open("mysql", base+sep+"parseTime=true&loc=America%2FNew_York")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s := sqltest.NewStoreOn(t, db, sqlstore.MySQL)
	ctx := context.Background()

	gap := time.Date(2026, 3, 8, 2, 30, 0, 0, time.UTC) // 02:30 does not exist in New York that day
	created := gap.Add(-2 * time.Hour)
	// A scheduled grant: the customer chose 02:30 UTC as its start.
	g := sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer,
		CreatedAt: created, StartsAt: gap, ExpiresAt: gap.Add(4 * time.Hour)}
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	// Any change written through UpdateGrant (here a delegation) writes
	// the grant back as read.
	_, err = s.UpdateGrant(ctx, g.ID, func(x *sa.Grant) ([]sa.Event, error) {
		x.Grantees = append(x.Grantees, storetest.Engineer.ID)
		return nil, nil
	})
	require.NoError(t, err)
	_, err = s.FindActiveGrant(ctx, "acme", storetest.Engineer.ID, sa.ScopeRead, gap.Add(-30*time.Minute))
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the grant starts at %s, not earlier", gap)
	got, err := s.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, gap, got.StartsAt, "StartsAt read back as stored")

	// An event recorded at that instant verifies.
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: gap, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
	_, err = m.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "a genuine event is not reported as tampered")
}
