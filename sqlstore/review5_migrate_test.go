package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// migrationStatements counts the statements of the migration file name of
// s.Migrations(), as applySome numbers them.
func migrationStatements(t *testing.T, db *sql.DB, s *sqlstore.Store, name string) int {
	t.Helper()
	n := 0
	applySome(t, db, s, name, func(int, string) bool { n++; return false })
	return n
}

// schemaOf describes the schema objects of prefix (tables with their
// columns and types, indexes with their columns, and on MySQL the stored
// routines), with the prefix removed, sorted, so that two prefixes
// migrated differently can be compared.
func schemaOf(t *testing.T, db *sql.DB, d sqlstore.Dialect, prefix string) []string {
	t.Helper()
	var q string
	var args []any
	switch d {
	case sqlstore.Postgres:
		q = `SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '')
			FROM information_schema.columns WHERE table_schema = current_schema() AND left(table_name, length($1)) = $1
			UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes
			WHERE schemaname = current_schema() AND left(tablename, length($1)) = $1`
		args = []any{strings.ToLower(prefix)}
	case sqlstore.MySQL:
		q = `SELECT CONCAT('column ', table_name, '.', column_name, ' ', column_type, ' ', is_nullable, ' ', COALESCE(column_default, ''))
			FROM information_schema.columns WHERE table_schema = DATABASE() AND LEFT(table_name, CHAR_LENGTH(?)) = ?
			UNION ALL SELECT CONCAT('index ', table_name, '.', index_name, ' ', seq_in_index, ' ', column_name, ' ', non_unique)
			FROM information_schema.statistics WHERE table_schema = DATABASE() AND LEFT(table_name, CHAR_LENGTH(?)) = ?
			UNION ALL SELECT CONCAT('routine ', routine_name) FROM information_schema.routines
			WHERE routine_schema = DATABASE() AND LEFT(routine_name, CHAR_LENGTH(?)) = ?`
		args = []any{prefix, prefix, prefix, prefix, prefix, prefix}
	default:
		q = `SELECT 'column ' || m.name || '.' || c.name || ' ' || c.type || ' ' || c."notnull" || ' ' || COALESCE(c.dflt_value, '')
			FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table' AND substr(m.name, 1, length(?1)) = ?1
			UNION ALL SELECT 'index ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master
			WHERE type = 'index' AND substr(name, 1, length(?1)) = ?1`
		args = []any{prefix}
	}
	rows, err := db.Query(q, args...)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		out = append(out, strings.ReplaceAll(strings.ReplaceAll(v, prefix, "{p}"), strings.ToLower(prefix), "{p}"))
	}
	require.NoError(t, rows.Err())
	slices.Sort(out)
	return out
}

// dropRoutines drops the MySQL procedures a failed test may have left
// under prefix (sqltest.DropTables drops audit_append only).
func dropRoutines(t *testing.T, db *sql.DB, d sqlstore.Dialect, prefix string) {
	t.Helper()
	if d != sqlstore.MySQL {
		return
	}
	t.Cleanup(func() {
		for _, n := range []string{"migrate_0002"} {
			_, err := db.Exec("DROP PROCEDURE IF EXISTS `" + prefix + n + "`")
			require.NoError(t, err)
		}
	})
}

// TestMigrateAfterEveryPartialMigration: every migration file, stopped
// after any number of its statements (a deploy that died, a host's tool
// that stopped half-way), must leave a database that Migrate completes —
// MySQL/MariaDB run DDL outside transactions, and Migrations() hands the
// files to hosts' own tools — to exactly the schema of a fresh Migrate.
func TestMigrateAfterEveryPartialMigration(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		ref := sqltest.NewStoreOn(t, db, d)
		want := schemaOf(t, db, d, ref.TablePrefix())
		require.NotEmpty(t, want)
		names, err := fs.Glob(ref.Migrations(), "*.sql")
		require.NoError(t, err)
		require.Len(t, names, sqlstore.SchemaVersion)
		for v, name := range names {
			n := migrationStatements(t, db, ref, name)
			require.Positive(t, n, name)
			for k := 0; k < n; k++ {
				t.Run(fmt.Sprintf("%s_first_%d_of_%d", strings.TrimSuffix(name, ".sql"), k, n), func(t *testing.T) {
					s := unmigrated(t, db, d)
					dropRoutines(t, db, d, s.TablePrefix())
					for _, earlier := range names[:v] {
						applyFile(t, db, s, earlier)
					}
					applySome(t, db, s, name, func(i int, _ string) bool { return i < k })
					require.NoError(t, s.Migrate(ctx), "after %d statements of %s", k, name)
					require.Equal(t, wantVersions(), versions(t, db, s))
					require.Equal(t, want, schemaOf(t, db, d, s.TablePrefix()))
					require.NoError(t, s.Migrate(ctx), "and again")
					useMigrated(t, s)
				})
			}
		}
	})
}

// TestMigrateAfterOldHalfAppliedV2 is the deploy of the bug report: the
// ALTER TABLE of version 2 as releases before this fix wrote it ran, the
// process died before the rest of the file, and every later Migrate
// failed (MySQL error 1060, duplicate column name 'checkpoint_seq'; on
// SQLite "duplicate column name").
func TestMigrateAfterOldHalfAppliedV2(t *testing.T) {
	oldAlter := map[sqlstore.Dialect]string{
		sqlstore.MySQL:    "ALTER TABLE {p}audit_heads\n    ADD COLUMN checkpoint_seq BIGINT NOT NULL DEFAULT 0,\n    ADD COLUMN checkpoint_hash VARBINARY(64) NULL",
		sqlstore.SQLite:   "ALTER TABLE {p}audit_heads ADD COLUMN checkpoint_seq INTEGER NOT NULL DEFAULT 0",
		sqlstore.Postgres: "ALTER TABLE {p}audit_heads ADD COLUMN checkpoint_seq BIGINT NOT NULL DEFAULT 0",
	}
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		ref := sqltest.NewStoreOn(t, db, d)
		s := unmigrated(t, db, d)
		dropRoutines(t, db, d, s.TablePrefix())
		applyFile(t, db, s, "0001_init.sql")
		_, err := db.Exec(strings.ReplaceAll(oldAlter[d], "{p}", s.TablePrefix()))
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx))
		require.Equal(t, wantVersions(), versions(t, db, s))
		require.Equal(t, schemaOf(t, db, d, ref.TablePrefix()), schemaOf(t, db, d, s.TablePrefix()))
		useMigrated(t, s)
	})
}

// useMigrated checks that s works on what Migrate built: a grant, a purge
// of the audit trail (the checkpoint columns of version 2) and a verified
// chain.
func useMigrated(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
	require.NoError(t, err)
	require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: storetest.Epoch, Type: sa.EventSupportRequest,
		TenantID: "acme", Actor: storetest.Support, Attrs: map[string]string{sa.AttrSessionID: "sess-1"}}))
	rep, err := m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	require.EqualValues(t, 2, rep.Events)
	chain, err := s.AuditChain(ctx, "acme")
	require.NoError(t, err)
	require.EqualValues(t, 2, chain.Head.Seq)
}
