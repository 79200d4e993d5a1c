package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
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

// Review 138: sqlstore schema, migrations and deployment misconfiguration.

// r138Grantee and r138Tenant are identifiers shaped to break a statement
// whose quoting depends on session settings (backslashes, quotes, LIKE
// wildcards).
const (
	r138Grantee = `o'b"\\x%_@vendor.example`
	r138Tenant  = `acme'\"%_`
)

// r138Lifecycle runs a grant through Grant, Check, Revoke, Sweep and
// VerifyAudit on s and requires every answer to be exact.
func r138Lifecycle(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(s, sa.WithNow(clock.Now))
	require.NoError(t, err)
	reason := `it's a "test" \ 100% _done_ \n`
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: r138Tenant, By: storetest.Customer, Duration: time.Hour,
		Grantees: []string{r138Grantee}, Scopes: []sa.Scope{sa.ScopeWrite}, Reason: reason, TicketRef: `T\'1`})
	require.NoError(t, err)
	_, err = m.Check(ctx, r138Tenant, r138Grantee, sa.ScopeWrite)
	require.NoError(t, err)
	for _, p := range []string{`o'b"\x%_@vendor.example`, `o'b"\\\\x%_@vendor.example`, `o'b"\\x__@vendor.example`, storetest.Support.ID} {
		_, err = m.Check(ctx, r138Tenant, p, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "principal %q is not the grantee", p)
	}
	for _, tn := range []string{"acme", `acme'\\"%_`, `acme'\"%%`} {
		_, err = m.Check(ctx, tn, r138Grantee, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "tenant %q is not the grant's", tn)
	}
	got, err := m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got, "stored exactly")
	_, err = m.Revoke(ctx, g.ID, storetest.Customer, `no\more 'access'`)
	require.NoError(t, err)
	_, err = m.Check(ctx, r138Tenant, r138Grantee, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	g2, err := m.Grant(ctx, sa.GrantInput{TenantID: r138Tenant, By: storetest.Customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Advance(2 * time.Hour)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: clock.Now(), Type: sa.EventSupportRequest,
		TenantID: r138Tenant, Actor: storetest.Support, Attrs: map[string]string{"path": `/a'b\c`}}))
	rep, err := m.VerifyAudit(ctx, r138Tenant)
	require.NoError(t, err)
	require.True(t, rep.OK(), "chain intact: %+v", rep.Break)
	evs, err := m.Events(ctx, sa.AuditFilter{TenantID: r138Tenant, GrantID: g.ID})
	require.NoError(t, err)
	var types []sa.EventType
	for _, e := range evs {
		types = append(types, e.Type)
	}
	require.Contains(t, types, sa.EventGrantCreated)
	require.Contains(t, types, sa.EventGrantRevoked)
	require.NotContains(t, types, sa.EventGrantExpired, "a revoked grant does not expire")
	require.Equal(t, reason, evs[0].Reason)
	evs, err = m.Events(ctx, sa.AuditFilter{TenantID: r138Tenant, GrantID: g2.ID, Types: []sa.EventType{sa.EventGrantExpired}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "the unrevoked grant's expiry recorded once")
}

// r138Tables lists the tables of prefix on db.
func r138Tables(t *testing.T, db *sql.DB, d sqlstore.Dialect, prefix string) []string {
	t.Helper()
	tables, err := sqltest.Tables(context.Background(), db, d, prefix)
	require.NoError(t, err)
	return tables
}

// r138Count counts the rows of table (without prefix) of s on db.
func r138Count(t *testing.T, db *sql.DB, s *sqlstore.Store, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM `+s.TablePrefix()+table).Scan(&n))
	return n
}

// TestReview138MySQLSelectLimitRefused attacks "Revocation is immediate"
// and the MySQL session-settings guard (SECURITY.md: "the store refuses to
// work otherwise"): a DSN (or server default) with sql_select_limit=1
// silently caps every SELECT without LIMIT at one row, so RevokeTenant
// listed one grant of three, revoked it and reported success (found by
// review 138). The store now refuses the setting, naming it, and Check
// fails closed.
func TestReview138MySQLSelectLimitRefused(t *testing.T) {
	db := mysqlWithParams(t, "sql_select_limit=1")
	s := unmigrated(t, db, sqlstore.MySQL)
	dropRoutines(t, db, sqlstore.MySQL, s.TablePrefix())
	ctx := context.Background()
	err := s.Migrate(ctx)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.ErrorContains(t, err, "sql_select_limit is 1")
	_, err = s.FindActiveGrant(ctx, "acme", storetest.Support.ID, sa.ScopeRead, storetest.Epoch)
	require.ErrorIs(t, err, errors.ErrUnsupported, "Check fails closed")
}

// TestReview138MySQLSelectLimitSetLaterCutsNothing: a sql_select_limit
// set after the store checked the session (SET SESSION on a connection
// the host shares, SET GLOBAL for later connections) is overridden by the
// explicit LIMIT of the store's lists: RevokeTenant revokes every grant,
// List and Events show everything.
func TestReview138MySQLSelectLimitSetLaterCutsNothing(t *testing.T) {
	db, s := mysqlSharedConn(t)
	ctx := context.Background()
	t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), "SET SESSION sql_select_limit = DEFAULT") })
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(s, sa.WithNow(clock.Now))
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
	}
	_, err = db.ExecContext(ctx, "SET SESSION sql_select_limit = 1") // the store's only connection
	require.NoError(t, err)
	gs, err := m.List(ctx, sa.ListFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, gs, 3, "List shows every grant")
	evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, evs, 3, "Events shows the whole trail")
	rs, err := m.RevokeTenant(ctx, "acme", storetest.Customer, "all out")
	require.NoError(t, err)
	require.Len(t, rs, 3, "RevokeTenant revokes every grant")
	_, err = m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "no access after RevokeTenant")
}

// TestReview138WrongDialect attacks New's Dialect argument: a store
// whose Dialect does not match the *sql.DB (PostgreSQL SQL on SQLite,
// MySQL on PostgreSQL, …). Migrate must fail with nothing created under
// the prefix; a Manager on it must neither grant nor admit.
func TestReview138WrongDialect(t *testing.T) {
	for _, dbD := range sqltest.Dialects() {
		for _, sD := range sqltest.Dialects() {
			if dbD == sD {
				continue
			}
			t.Run(fmt.Sprintf("%v_db_%v_store", dbD, sD), func(t *testing.T) {
				ctx := context.Background()
				db := sqltest.Open(t, dbD)
				prefix := sqltest.NewPrefix()
				t.Cleanup(func() {
					require.NoError(t, sqltest.DropTables(context.Background(), db, dbD, prefix))
				})
				s, err := sqlstore.New(db, sD, sqlstore.WithTablePrefix(prefix))
				require.NoError(t, err, "New does not touch the database")
				t.Cleanup(func() { _ = s.Close() })
				require.Error(t, s.Migrate(ctx))
				require.Empty(t, r138Tables(t, db, dbD, prefix), "nothing created")

				// On tables the right dialect created (a replica
				// misconfigured after the fact).
				right, err := sqlstore.New(db, dbD, sqlstore.WithTablePrefix(prefix))
				require.NoError(t, err)
				t.Cleanup(func() { _ = right.Close() })
				require.NoError(t, right.Migrate(ctx))
				mr, err := sa.NewManager(right)
				require.NoError(t, err)
				live, err := mr.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
				require.NoError(t, err)
				before := r138Count(t, db, right, "audit_events")

				mw, err := sa.NewManager(s)
				require.NoError(t, err)
				_, err = mw.Grant(ctx, sa.GrantInput{TenantID: "other", By: storetest.Customer, Duration: time.Hour})
				require.Error(t, err)
				_, err = mw.Check(ctx, "other", storetest.Support.ID, sa.ScopeRead)
				require.Error(t, err)
				_, err = mr.Check(ctx, "other", storetest.Support.ID, sa.ScopeRead)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the wrong-dialect Grant stored nothing")
				_, err = mw.Revoke(ctx, live.ID, storetest.Customer, "")
				require.Error(t, err)
				_, err = mr.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
				require.NoError(t, err, "a refused Revoke changed nothing")
				require.Equal(t, 1, r138Count(t, db, right, "grants"))
				require.Equal(t, before, r138Count(t, db, right, "audit_events"), "no event from the wrong dialect")
				require.Error(t, s.Migrate(ctx), "Migrate over migrated tables still refuses")
				rep, err := mr.VerifyAudit(ctx, "acme")
				require.NoError(t, err)
				require.True(t, rep.OK())
			})
		}
	}
}

// TestReview138MigrateFailsMidwayAtomically attacks "nothing
// half-written" on PostgreSQL and SQLite, whose whole Migrate is one
// transaction: a step that fails after its DDL (here version 3's final
// INSERT of its version, refused by a CHECK constraint a DBA put on
// schema_version) must leave no version recorded and none of the earlier
// steps' tables. On MySQL (DDL outside transactions) it leaves exactly the
// half-applied state the migrations are written for: versions 1 and 2
// recorded, version 3's tables created but not recorded. A Check on the
// half-migrated schema fails or denies. Lifting the obstacle and
// migrating again must reach the full schema, and the store work exactly.
func TestReview138MigrateFailsMidwayAtomically(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		s := unmigrated(t, db, d)
		dropRoutines(t, db, d, s.TablePrefix())
		_, err := db.Exec(`CREATE TABLE ` + s.TablePrefix() + `schema_version (version INTEGER NOT NULL PRIMARY KEY, ` +
			map[sqlstore.Dialect]string{
				sqlstore.Postgres: `applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), `,
				sqlstore.MySQL:    `applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `,
				sqlstore.SQLite:   `applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, `,
			}[d] + `CONSTRAINT r138_no3 CHECK (version <> 3))`)
		require.NoError(t, err)
		err = s.Migrate(ctx)
		require.Error(t, err)
		require.ErrorContains(t, err, "version 3")
		switch d {
		case sqlstore.MySQL:
			require.Equal(t, []int{1, 2}, versions(t, db, s), "versions before the failing one recorded")
			require.Contains(t, r138Tables(t, db, d, s.TablePrefix()), s.TablePrefix()+"hook_tasks", "version 3's DDL applied")
		default:
			require.Equal(t, []string{s.TablePrefix() + "schema_version"}, r138Tables(t, db, d, s.TablePrefix()),
				"the failed Migrate left nothing but the table it found")
			require.Empty(t, versions(t, db, s))
		}
		m, err := sa.NewManager(s)
		require.NoError(t, err)
		_, err = m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.Error(t, err, "half-migrated: Check fails or denies")

		if d == sqlstore.SQLite {
			_, err = db.Exec(`DROP TABLE ` + s.TablePrefix() + `schema_version`)
		} else {
			_, err = db.Exec(`ALTER TABLE ` + s.TablePrefix() + `schema_version DROP CONSTRAINT r138_no3`)
		}
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx))
		require.Equal(t, wantVersions(), versions(t, db, s))
		r138Lifecycle(t, s)
	})
}

// TestReview138MigrateRerunChangesNothing attacks Migrate's idempotence
// beyond the version rows: re-running it on an up-to-date schema with
// live data must leave the schema objects, the versions' applied_at, the
// grants and their lifecycle state exactly as they were (a revoked grant
// stays revoked, a recorded start is not recorded again).
func TestReview138MigrateRerunChangesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		s := sqltest.NewStoreOn(t, db, d)
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(s, sa.WithNow(clock.Now))
		require.NoError(t, err)
		a, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
		b, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: 3 * time.Hour})
		require.NoError(t, err)
		_, err = m.Revoke(ctx, a.ID, storetest.Customer, "")
		require.NoError(t, err)
		_, err = m.Sweep(ctx)
		require.NoError(t, err)

		schema := schemaOf(t, db, d, s.TablePrefix())
		var applied []string
		rows, err := db.Query(`SELECT CAST(applied_at AS CHAR(40)) FROM ` + s.TablePrefix() + `schema_version ORDER BY version`)
		if d == sqlstore.Postgres {
			rows, err = db.Query(`SELECT applied_at::text FROM ` + s.TablePrefix() + `schema_version ORDER BY version`)
		}
		require.NoError(t, err)
		for rows.Next() {
			var v string
			require.NoError(t, rows.Scan(&v))
			applied = append(applied, v)
		}
		require.NoError(t, rows.Close())
		evs, err := m.Events(ctx, sa.AuditFilter{})
		require.NoError(t, err)

		for i := 0; i < 2; i++ {
			require.NoError(t, s.Migrate(ctx))
		}
		require.Equal(t, schema, schemaOf(t, db, d, s.TablePrefix()))
		require.Equal(t, wantVersions(), versions(t, db, s))
		var again []string
		q := `SELECT CAST(applied_at AS CHAR(40)) FROM ` + s.TablePrefix() + `schema_version ORDER BY version`
		if d == sqlstore.Postgres {
			q = `SELECT applied_at::text FROM ` + s.TablePrefix() + `schema_version ORDER BY version`
		}
		rows, err = db.Query(q)
		require.NoError(t, err)
		for rows.Next() {
			var v string
			require.NoError(t, rows.Scan(&v))
			again = append(again, v)
		}
		require.NoError(t, rows.Close())
		require.Equal(t, applied, again)

		_, err = m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.NoError(t, err)
		got, err := m.Get(ctx, a.ID)
		require.NoError(t, err)
		require.False(t, got.RevokedAt.IsZero(), "still revoked")
		_, err = m.Sweep(ctx)
		require.NoError(t, err)
		evs2, err := m.Events(ctx, sa.AuditFilter{})
		require.NoError(t, err)
		require.Equal(t, evs, evs2, "no transition re-opened by the re-run")
		clock.Advance(4 * time.Hour)
		_, err = m.Sweep(ctx)
		require.NoError(t, err)
		evs2, err = m.Events(ctx, sa.AuditFilter{})
		require.NoError(t, err)
		require.Len(t, evs2, len(evs)+1, "only b's expiry is new")
		last := evs2[len(evs2)-1]
		if last.Type != sa.EventGrantExpired {
			last = evs2[0]
		}
		require.Equal(t, sa.EventGrantExpired, last.Type)
		require.Equal(t, b.ID, last.GrantID)
	})
}

// TestReview138SchemaTooNewTouchesNothing attacks a database at a schema
// newer than the code (a newer release migrated it, then dropped objects
// this release would recreate): Migrate must refuse with ErrSchemaTooNew
// before any DDL, creating none of its tables.
func TestReview138SchemaTooNewTouchesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		s := unmigrated(t, db, d)
		col := "INTEGER"
		_, err := db.Exec(`CREATE TABLE ` + s.TablePrefix() + `schema_version (version ` + col + ` PRIMARY KEY)`)
		require.NoError(t, err)
		_, err = db.Exec(`INSERT INTO ` + s.TablePrefix() + `schema_version (version) VALUES (1), (` + fmt.Sprint(sqlstore.SchemaVersion+7) + `)`)
		require.NoError(t, err)
		err = s.Migrate(ctx)
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooNew)
		require.ErrorContains(t, err, fmt.Sprint(sqlstore.SchemaVersion+7))
		require.Equal(t, []string{s.TablePrefix() + "schema_version"}, r138Tables(t, db, d, s.TablePrefix()))
		require.Equal(t, []int{1, sqlstore.SchemaVersion + 7}, versions(t, db, s))
	})
}

// TestReview138PostgresReadOnlyDefault attacks a PostgreSQL role or
// database with default_transaction_read_only=on: Migrate must fail with
// nothing created; on migrated tables Grant and Revoke must fail with
// nothing stored or recorded (the grant keeps its state, the trail its
// length), while Check reads rightly.
func TestReview138PostgresReadOnlyDefault(t *testing.T) {
	ctx := context.Background()
	rw := sqltest.Open(t, sqlstore.Postgres)
	ro, err := sql.Open("pgx", sqltest.DSN(sqlstore.Postgres)+"?default_transaction_read_only=on")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ro.Close() })

	fresh := unmigrated(t, rw, sqlstore.Postgres)
	sro, err := sqlstore.New(ro, sqlstore.Postgres, sqlstore.WithTablePrefix(fresh.TablePrefix()))
	require.NoError(t, err)
	err = sro.Migrate(ctx)
	require.Error(t, err)
	require.ErrorContains(t, err, "read-only")
	require.Empty(t, r138Tables(t, rw, sqlstore.Postgres, fresh.TablePrefix()))

	s := sqltest.NewStoreOn(t, rw, sqlstore.Postgres)
	sro, err = sqlstore.New(ro, sqlstore.Postgres, sqlstore.WithTablePrefix(s.TablePrefix()))
	require.NoError(t, err)
	require.Error(t, sro.Migrate(ctx), "a read-only session cannot even confirm the version table")
	mrw, err := sa.NewManager(s)
	require.NoError(t, err)
	mro, err := sa.NewManager(sro)
	require.NoError(t, err)
	g, err := mrw.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
	require.NoError(t, err)
	before := r138Count(t, rw, s, "audit_events")
	_, err = mro.Grant(ctx, sa.GrantInput{TenantID: "beta", By: storetest.Customer, Duration: time.Hour})
	require.Error(t, err)
	_, err = mro.Revoke(ctx, g.ID, storetest.Customer, "")
	require.Error(t, err)
	_, err = mro.Check(ctx, "beta", storetest.Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	_, err = mro.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.NoError(t, err, "the refused revocation changed nothing")
	require.Equal(t, 1, r138Count(t, rw, s, "grants"))
	require.Equal(t, before, r138Count(t, rw, s, "audit_events"))
	require.Error(t, sro.Record(ctx, sa.Event{ID: uuid.New(), Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
	require.Equal(t, before, r138Count(t, rw, s, "audit_events"))
}

// TestReview138PostgresSearchPathWithoutSchema attacks a PostgreSQL
// session whose search_path names no existing schema (a typo in the
// DSN): Migrate must fail clearly with nothing created anywhere, and a
// Check must fail closed rather than read some other table.
func TestReview138PostgresSearchPathWithoutSchema(t *testing.T) {
	ctx := context.Background()
	rw := sqltest.Open(t, sqlstore.Postgres)
	s := sqltest.NewStoreOn(t, rw, sqlstore.Postgres)
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
	require.NoError(t, err)

	bad, err := sql.Open("pgx", sqltest.DSN(sqlstore.Postgres)+"?search_path=no_such_schema_r138")
	require.NoError(t, err)
	t.Cleanup(func() { _ = bad.Close() })
	sb, err := sqlstore.New(bad, sqlstore.Postgres, sqlstore.WithTablePrefix(s.TablePrefix()))
	require.NoError(t, err)
	err = sb.Migrate(ctx)
	require.Error(t, err)
	require.ErrorContains(t, err, "no schema has been selected")
	mb, err := sa.NewManager(sb)
	require.NoError(t, err)
	_, err = mb.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.Error(t, err)
	require.NotErrorIs(t, err, sa.ErrNoActiveGrant)
	require.ErrorContains(t, err, "run Migrate")
}

// TestReview138PostgresTinyTimeoutsKeepMigrateAtomic attacks Migrate
// under statement_timeout / lock_timeout of 1 ms and four replicas at
// once: whichever calls fail, every version is recorded exactly once or
// not at all, no replica leaves half a schema, and a final Migrate
// completes it.
func TestReview138PostgresTinyTimeoutsKeepMigrateAtomic(t *testing.T) {
	ctx := context.Background()
	rw := sqltest.Open(t, sqlstore.Postgres)
	prefix := sqltest.NewPrefix()
	t.Cleanup(func() { require.NoError(t, sqltest.DropTables(context.Background(), rw, sqlstore.Postgres, prefix)) })
	var stores []*sqlstore.Store
	for i := 0; i < 4; i++ {
		db, err := sql.Open("pgx", sqltest.DSN(sqlstore.Postgres)+"?statement_timeout=1&lock_timeout=1")
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		s, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.WithTablePrefix(prefix))
		require.NoError(t, err)
		stores = append(stores, s)
	}
	errs := r138MigrateAll(ctx, stores)
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	t.Logf("%d of %d succeeded; errors: %v", ok, len(errs), errs)
	tables := r138Tables(t, rw, sqlstore.Postgres, prefix)
	if ok == 0 {
		require.Empty(t, tables, "every Migrate failed: nothing left behind (errors %v)", errs)
	} else {
		ref, err := sqlstore.New(rw, sqlstore.Postgres, sqlstore.WithTablePrefix(prefix))
		require.NoError(t, err)
		require.Equal(t, wantVersions(), versions(t, rw, ref))
	}
	final, err := sqlstore.New(rw, sqlstore.Postgres, sqlstore.WithTablePrefix(prefix))
	require.NoError(t, err)
	require.NoError(t, final.Migrate(ctx))
	require.Equal(t, wantVersions(), versions(t, rw, final))
}

// TestReview138PostgresSessionSettings runs the lifecycle with
// quote-shaped identifiers on PostgreSQL sessions whose settings change
// how SQL text is read: standard_conforming_strings=off (backslashes in
// literals), escape_string_warning, a DateStyle/IntervalStyle and
// timezone far from UTC, serializable default isolation. Every answer
// must be exact, or the session refused.
func TestReview138PostgresSessionSettings(t *testing.T) {
	for _, params := range []string{
		"standard_conforming_strings=off",
		"standard_conforming_strings=off&escape_string_warning=on&backslash_quote=on",
		"DateStyle=SQL%2C%20DMY&IntervalStyle=sql_standard&timezone=Pacific%2FKiritimati",
		"default_transaction_isolation=serializable&default_transaction_deferrable=on",
	} {
		t.Run(params, func(t *testing.T) {
			sqltest.Open(t, sqlstore.Postgres)
			db, err := sql.Open("pgx", sqltest.DSN(sqlstore.Postgres)+"?"+params)
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			s := unmigrated(t, db, sqlstore.Postgres)
			require.NoError(t, s.Migrate(context.Background()))
			r138Lifecycle(t, s)
		})
	}
}

// TestReview138MySQLSQLModes runs the lifecycle with quote-shaped
// identifiers on MySQL/MariaDB sessions whose sql_mode changes how SQL
// text is read (ANSI_QUOTES, PIPES_AS_CONCAT, NO_BACKSLASH_ESCAPES,
// HIGH_NOT_PRECEDENCE, IGNORE_SPACE, MariaDB's ORACLE mode), each with STRICT_TRANS_TABLES. The store must either
// refuse the session (Migrate fails, nothing recorded) or answer exactly.
func TestReview138MySQLSQLModes(t *testing.T) {
	for _, mode := range []string{
		"STRICT_TRANS_TABLES,ANSI",
		"STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES",
		"STRICT_ALL_TABLES,ANSI_QUOTES,PIPES_AS_CONCAT,NO_BACKSLASH_ESCAPES,HIGH_NOT_PRECEDENCE,IGNORE_SPACE",
		"STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,PAD_CHAR_TO_FULL_LENGTH",
		"STRICT_TRANS_TABLES,ORACLE",
	} {
		t.Run(mode, func(t *testing.T) {
			db := mysqlWithParams(t, "sql_mode="+url.QueryEscape("'"+mode+"'"))
			s := unmigrated(t, db, sqlstore.MySQL)
			dropRoutines(t, db, sqlstore.MySQL, s.TablePrefix())
			if err := s.Migrate(context.Background()); err != nil {
				t.Logf("refused: %v", err)
				m, merr := sa.NewManager(s)
				require.NoError(t, merr)
				_, cerr := m.Check(context.Background(), "acme", storetest.Support.ID, sa.ScopeRead)
				require.Error(t, cerr)
				return
			}
			r138Lifecycle(t, s)
		})
	}
}

// TestReview138SQLiteReadOnlyHandle attacks a replica that opened the
// SQLite file read-only (mode=ro, or query_only): Migrate of a fresh file
// fails with nothing created; on a migrated file Grant, Revoke and Record
// fail with nothing changed, and Check answers rightly.
func TestReview138SQLiteReadOnlyHandle(t *testing.T) {
	for _, dsn := range []string{"file:%s?mode=ro", "file:%s?_pragma=query_only(1)"} {
		t.Run(dsn, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			empty := filepath.Join(dir, "empty.db")
			rw0 := sqltest.OpenSQLite(t, empty)
			require.NoError(t, rw0.Ping())
			ro0 := sqltest.OpenSQLite(t, fmt.Sprintf(dsn, empty))
			s0, err := sqlstore.New(ro0, sqlstore.SQLite)
			require.NoError(t, err)
			require.Error(t, s0.Migrate(ctx))
			require.Empty(t, r138Tables(t, rw0, sqlstore.SQLite, sqlstore.DefaultTablePrefix))

			path := filepath.Join(dir, "live.db")
			rw := sqltest.OpenSQLite(t, path)
			s, err := sqlstore.New(rw, sqlstore.SQLite)
			require.NoError(t, err)
			require.NoError(t, s.Migrate(ctx))
			m, err := sa.NewManager(s)
			require.NoError(t, err)
			g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
			require.NoError(t, err)
			before := r138Count(t, rw, s, "audit_events")

			ro := sqltest.OpenSQLite(t, fmt.Sprintf(dsn, path))
			sro, err := sqlstore.New(ro, sqlstore.SQLite, sqlstore.WithBusyTimeout(time.Second))
			require.NoError(t, err)
			_ = sro.Migrate(ctx) // nothing to apply; either answer is fine
			mro, err := sa.NewManager(sro)
			require.NoError(t, err)
			_, err = mro.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
			require.NoError(t, err)
			_, err = mro.Grant(ctx, sa.GrantInput{TenantID: "beta", By: storetest.Customer, Duration: time.Hour})
			require.Error(t, err)
			_, err = mro.Revoke(ctx, g.ID, storetest.Customer, "")
			require.Error(t, err)
			require.Error(t, sro.Record(ctx, sa.Event{ID: uuid.New(), Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
			_, err = m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
			require.NoError(t, err, "the refused revocation changed nothing")
			_, err = m.Check(ctx, "beta", storetest.Support.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)
			require.Equal(t, 1, r138Count(t, rw, s, "grants"))
			require.Equal(t, before, r138Count(t, rw, s, "audit_events"))
			// The read-only handle sees a revocation at once.
			_, err = m.Revoke(ctx, g.ID, storetest.Customer, "")
			require.NoError(t, err)
			_, err = mro.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		})
	}
}

// TestReview138SQLiteTwoHandlesDifferentOptions attacks two stores on one
// SQLite file opened with different connection settings (one enforcing
// foreign keys, reversing unordered SELECTs, an exclusive BEGIN and a
// rollback journal requested; the other a plain path): grants made on
// one and revoked on the other are seen at once by both, each lifecycle
// transition is recorded once, and the chain verifies.
func TestReview138SQLiteTwoHandlesDifferentOptions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	a, err := sqlstore.New(sqltest.OpenSQLite(t, "file:"+path+
		"?_pragma=foreign_keys(1)&_pragma=reverse_unordered_selects(1)&_txlock=exclusive&_pragma=synchronous(OFF)"),
		sqlstore.SQLite, sqlstore.WithBusyTimeout(5*time.Second))
	require.NoError(t, err)
	b, err := sqlstore.New(sqltest.OpenSQLite(t, path), sqlstore.SQLite)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*sqlstore.Store{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Migrate(ctx) }()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	clock := storetest.NewClock(storetest.Epoch)
	ma, err := sa.NewManager(a, sa.WithNow(clock.Now))
	require.NoError(t, err)
	mb, err := sa.NewManager(b, sa.WithNow(clock.Now))
	require.NoError(t, err)
	var ids []uuid.UUID
	for i := 0; i < 6; i++ {
		m := ma
		if i%2 == 1 {
			m = mb
		}
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: fmt.Sprintf("t%d", i%3), By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
		ids = append(ids, g.ID)
	}
	_, err = mb.Revoke(ctx, ids[0], storetest.Customer, "")
	require.NoError(t, err)
	_, err = ma.Check(ctx, "t0", storetest.Support.ID, sa.ScopeRead)
	require.NoError(t, err, "t0 still has ids[3]")
	_, err = ma.Revoke(ctx, ids[3], storetest.Customer, "")
	require.NoError(t, err)
	for _, m := range []*sa.Manager{ma, mb} {
		_, err = m.Check(ctx, "t0", storetest.Support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	}
	clock.Advance(2 * time.Hour)
	var na, nb int
	wg.Add(2)
	go func() { defer wg.Done(); na, errs[0] = ma.Sweep(ctx) }()
	go func() { defer wg.Done(); nb, errs[1] = mb.Sweep(ctx) }()
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	_, err = ma.Sweep(ctx)
	require.NoError(t, err)
	evs, err := ma.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExpired}})
	require.NoError(t, err)
	require.Len(t, evs, 4, "each unrevoked grant's expiry recorded once (sweeps claimed %d+%d)", na, nb)
	for _, tn := range []string{"t0", "t1", "t2"} {
		rep, err := mb.VerifyAudit(ctx, tn)
		require.NoError(t, err)
		require.True(t, rep.OK(), tn)
	}
}

// TestReview138PrefixCaseFoldsToOneLock attacks the migration lock under
// prefixes that name the same tables (PostgreSQL folds unquoted names,
// SQLite's names ignore case): replicas configured with "T_x_" and
// "t_x_" migrating at once must still apply each version once.
func TestReview138PrefixCaseFoldsToOneLock(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, d)
			lower := sqltest.NewPrefix()
			upper := strings.ToUpper(lower[:1]) + lower[1:]
			t.Cleanup(func() { require.NoError(t, sqltest.DropTables(context.Background(), db, d, lower)) })
			var stores []*sqlstore.Store
			for i := 0; i < 4; i++ {
				p := lower
				if i%2 == 1 {
					p = upper
				}
				h := db
				if d == sqlstore.Postgres {
					h = sqltest.Open(t, d)
				}
				s, err := sqlstore.New(h, d, sqlstore.WithTablePrefix(p))
				require.NoError(t, err)
				stores = append(stores, s)
			}
			errs := r138MigrateAll(ctx, stores)
			for _, err := range errs {
				require.NoError(t, err)
			}
			require.Equal(t, wantVersions(), versions(t, db, stores[0]))
			ma, err := sa.NewManager(stores[0])
			require.NoError(t, err)
			mb, err := sa.NewManager(stores[1])
			require.NoError(t, err)
			g, err := ma.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
			require.NoError(t, err)
			_, err = mb.Revoke(ctx, g.ID, storetest.Customer, "")
			require.NoError(t, err, "same tables: the other-case replica revokes it")
			_, err = ma.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)
			rep, err := ma.VerifyAudit(ctx, "acme")
			require.NoError(t, err)
			require.True(t, rep.OK())
		})
	}
}

// TestReview138MariaDBEmptyStringIsNull attacks MariaDB's sql_mode
// EMPTY_STRING_IS_NULL, which turns every empty string the store binds (an unset
// revoked_by, an empty actor name or reason) or compares (a grant open to
// any principal) into NULL. Review 138 found that operations then failed
// later, with raw server errors; the session check now refuses the mode
// up front, naming it, so every operation (Migrate, Check, Grant, Revoke,
// Record) fails with errors.ErrUnsupported, and a grant made by a
// correctly configured replica is neither lost nor widened nor revoked.
func TestReview138MariaDBEmptyStringIsNull(t *testing.T) {
	ctx := context.Background()
	good := sqltest.NewStore(t, sqlstore.MySQL)
	mg, err := sa.NewManager(good)
	require.NoError(t, err)
	g, err := mg.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour, Grantees: []string{storetest.Engineer.ID}})
	require.NoError(t, err)

	db := mysqlWithParams(t, "sql_mode="+url.QueryEscape("'STRICT_TRANS_TABLES,EMPTY_STRING_IS_NULL'"))
	var mode string
	require.NoError(t, db.QueryRow(`SELECT @@sql_mode`).Scan(&mode))
	if !strings.Contains(mode, "EMPTY_STRING_IS_NULL") {
		t.Skip("not MariaDB: no EMPTY_STRING_IS_NULL")
	}
	raw := sqltest.Open(t, sqlstore.MySQL)
	before := r138Count(t, raw, good, "audit_events")
	s, err := sqlstore.New(db, sqlstore.MySQL, sqlstore.WithTablePrefix(good.TablePrefix()))
	require.NoError(t, err)
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	refused := func(err error) {
		t.Helper()
		require.ErrorIs(t, err, errors.ErrUnsupported)
		require.ErrorContains(t, err, "EMPTY_STRING_IS_NULL")
	}
	refused(s.Migrate(ctx))
	_, err = m.Check(ctx, "acme", storetest.Engineer.ID, sa.ScopeRead)
	refused(err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "beta", By: storetest.Customer, Duration: time.Hour})
	refused(err)
	_, err = m.Revoke(ctx, g.ID, storetest.Customer, "")
	refused(err)
	refused(s.Record(ctx, sa.Event{ID: uuid.New(), Time: fixtureNow, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
	require.Equal(t, 1, r138Count(t, raw, good, "grants"))
	require.Equal(t, before, r138Count(t, raw, good, "audit_events"))
	_, err = mg.Check(ctx, "acme", storetest.Engineer.ID, sa.ScopeRead)
	require.NoError(t, err, "the named grantee keeps the grant the refused Revoke left")
	_, err = mg.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the grant is not widened to any principal")
	got, err := mg.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got)
}

// r138MigrateAll runs Migrate on every store at once and returns their
// errors, in the stores' order.
func r138MigrateAll(ctx context.Context, stores []*sqlstore.Store) []error {
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Migrate(ctx) }()
	}
	wg.Wait()
	return errs
}
