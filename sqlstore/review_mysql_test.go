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

// Review of MySQL/MariaDB's one-CALL Record (migration 4's audit_append
// procedure, audit_cas.go) and of the migration runner around it.

func reviewMyEvent(tenant string) sa.Event {
	return sa.Event{ID: uuid.Must(uuid.NewV7()), Time: storetest.Epoch.UTC().Truncate(time.Microsecond), Type: "x",
		TenantID: tenant, Actor: storetest.Customer}
}

// reviewMyStore opens a MySQL store with a fresh prefix on its own pool
// (maxOpen > 0 limits the pool) and returns it with its database.
func reviewMyStore(t *testing.T, maxOpen int) (*sqlstore.Store, *sql.DB) {
	t.Helper()
	db := sqltest.Open(t, sqlstore.MySQL)
	if maxOpen > 0 {
		db.SetMaxOpenConns(maxOpen)
	}
	return sqltest.NewStoreOn(t, db, sqlstore.MySQL), db
}

// reviewMyProcCount counts the procedures named name (case-insensitively,
// as MySQL resolves routine names) in the current database.
func reviewMyProcCount(t *testing.T, db *sql.DB, name string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM information_schema.routines
		WHERE routine_schema = DATABASE() AND routine_type = 'PROCEDURE' AND LOWER(routine_name) = LOWER(?)`, name).Scan(&n))
	return n
}

// reviewMyCreateProc returns the CREATE PROCEDURE statement of the store's
// rendered migration 4, split as Migrate splits it.
func reviewMyCreateProc(t *testing.T, s *sqlstore.Store) string {
	t.Helper()
	b, err := fs.ReadFile(s.Migrations(), "0004_record_cas.sql")
	require.NoError(t, err)
	for _, st := range reviewSplitAtLineEnds(string(b)) {
		if strings.HasPrefix(strings.TrimSpace(st), "CREATE PROCEDURE") {
			return st
		}
	}
	t.Fatal("no CREATE PROCEDURE in 0004")
	return ""
}

// reviewSplitAtLineEnds splits a rendered migration file as the docs tell
// a host's tool to: a line ending in ";" ends a statement (comment lines
// are sent along; the server ignores them).
func reviewSplitAtLineEnds(text string) []string {
	var out []string
	var cur []string
	for _, line := range strings.Split(text, "\n") {
		cur = append(cur, line)
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			st := strings.TrimSuffix(strings.TrimSpace(strings.Join(cur, "\n")), ";")
			out = append(out, st)
			cur = nil
		}
	}
	if st := strings.TrimSpace(strings.Join(cur, "\n")); st != "" && !reviewOnlyComments(st) {
		out = append(out, st)
	}
	return out
}

func reviewOnlyComments(s string) bool {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			return false
		}
	}
	return true
}

// reviewInTransaction reports @@in_transaction of the (only) connection of
// db.
func reviewInTransaction(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(`SELECT @@in_transaction`).Scan(&n))
	return n
}

// MySQL resolves routine names case-insensitively while table names are
// case-sensitive (lower_case_table_names=0, the Linux default): two stores
// whose prefixes differed only in case would have separate tables but one
// audit_append procedure, and one store's Record would commit its event
// into the other's chain. New therefore refuses a prefix with upper-case
// letters on MySQL (and only there).
func TestReviewMySQLPrefixMustBeLowerCase(t *testing.T) {
	db := sqltest.Open(t, sqlstore.MySQL)
	for _, p := range []string{"T_", "Support_", "t_X_"} {
		_, err := sqlstore.New(db, sqlstore.MySQL, sqlstore.WithTablePrefix(p))
		require.ErrorIs(t, err, sa.ErrInvalidInput, p)
		require.Contains(t, err.Error(), "lower case")
	}
	s, err := sqlstore.New(db, sqlstore.MySQL, sqlstore.WithTablePrefix("t_x_"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// Elsewhere upper case stays allowed (PostgreSQL folds it, SQLite
	// compares names case-insensitively, no procedure exists).
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.SQLite} {
		s, err := sqlstore.New(db, d, sqlstore.WithTablePrefix("T_X_"))
		require.NoError(t, err, d)
		require.NoError(t, s.Close())
	}
}

// reviewErrorAfterCommit replaces the store's audit_append with the same
// procedure raising a server error right after its COMMIT — standing in
// for a KILL QUERY or max_statement_time that lands between the COMMIT and
// the end of the CALL — and records an event through the CALL. It returns
// the store's events of the tenant, the store and Record's error.
func reviewErrorAfterCommit(t *testing.T) ([]sa.Event, *sqlstore.Store, error) {
	t.Helper()
	ctx := context.Background()
	s, db := reviewMyStore(t, 0)
	proc := reviewMyCreateProc(t, s)
	faulty := strings.Replace(proc, "; COMMIT\n", "; COMMIT\n      ; SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'after commit'\n", 1)
	require.NotEqual(t, proc, faulty)
	_, err := db.Exec("DROP PROCEDURE " + s.TablePrefix() + "audit_append")
	require.NoError(t, err)
	_, err = db.Exec(faulty)
	require.NoError(t, err)

	require.NoError(t, s.Record(ctx, reviewMyEvent("acme"))) // locking path: caches the head
	e := reviewMyEvent("acme")
	recErr := s.Record(ctx, e) // CALL commits, then fails with error 1644
	evs, err := s.Events(ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain, Limit: 10})
	require.NoError(t, err)
	n := 0
	for _, x := range evs {
		if x.ID == e.ID {
			n++
		}
	}
	require.Equal(t, 1, n, "the event is in the trail exactly once (UNIQUE(id) stops the fallback's second append)")
	return evs, s, recErr
}

// A server error after the procedure's COMMIT must not append the event a
// second time through the fallback transaction, and the chain and its head
// must stay intact: the UNIQUE key on audit_events.id is what prevents the
// duplicate.
func TestReviewMySQLErrorAfterCommitExactlyOnce(t *testing.T) {
	evs, s, recErr := reviewErrorAfterCommit(t)
	t.Logf("Record: %v", recErr)
	require.Len(t, evs, 2)
	reviewVerifyChains(t, s)
}

// An error raised after the procedure's COMMIT (KILL QUERY,
// max_statement_time) comes with a server error number too. Record must
// see that its event is in the trail, exactly as it chained it, and report
// success — not fall back and fail on the duplicate id.
func TestReviewMySQLErrorAfterCommitReportedAsSuccess(t *testing.T) {
	_, _, recErr := reviewErrorAfterCommit(t)
	require.NoError(t, recErr, "the event was recorded")
}

// A failed CALL (the head moved by the UPDATE, then the INSERT failing;
// or a parameter the procedure refuses) must leave no transaction open on
// the pooled connection and must not move the head: the next statements
// on that connection would otherwise run inside it, and a later START
// TRANSACTION would commit the head without its event.
func TestReviewMySQLFailedCallLeavesNoTransaction(t *testing.T) {
	ctx := context.Background()
	s, db := reviewMyStore(t, 1) // one connection: every statement reuses it
	e1 := reviewMyEvent("acme")
	require.NoError(t, s.Record(ctx, e1))
	require.NoError(t, s.Record(ctx, reviewMyEvent("acme"))) // CALL from the cached head

	// The UPDATE of the head matches, the INSERT fails on the duplicate id.
	dup := reviewMyEvent("acme")
	dup.ID = e1.ID
	require.Error(t, s.Record(ctx, dup))
	require.Equal(t, 0, reviewInTransaction(t, db))
	reviewVerifyChains(t, s)

	require.NoError(t, s.Record(ctx, reviewMyEvent("acme"))) // re-caches the head
	// A value too long for its parameter/column.
	long := reviewMyEvent("acme")
	long.Actor.Name = strings.Repeat("n", 1001)
	require.Error(t, s.Record(ctx, long))
	require.Equal(t, 0, reviewInTransaction(t, db))

	// NULL into a NOT NULL column, straight through the procedure from the
	// current head.
	st, err := s.AuditChain(ctx, "acme")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "CALL "+s.TablePrefix()+"audit_append(?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, NULL, NULL, NULL, NULL)",
		"acme", st.Head.Seq, []byte("forged"), uuid.NewString(), "2026-01-01 00:00:00", "customer", "x", "x", "r")
	require.Error(t, err)
	require.Equal(t, 0, reviewInTransaction(t, db))
	st2, err := s.AuditChain(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, st.Head, st2.Head, "a failed CALL moved the head")

	require.NoError(t, s.Record(ctx, reviewMyEvent("acme")))
	require.NoError(t, s.Record(ctx, reviewMyEvent("acme")))
	require.Equal(t, 0, reviewInTransaction(t, db))
	evs := reviewVerifyChains(t, s)["acme"]
	require.Len(t, evs, 5)
}

// A CALL killed while its INSERT waits for a lock (after the UPDATE moved
// the head inside the procedure's transaction) — by KILL QUERY or by
// killing the connection — must leave neither a head without its event nor
// an open transaction; if Record returns nil the event is there once.
func TestReviewMySQLKillDuringCall(t *testing.T) {
	for _, kill := range []string{"KILL QUERY", "KILL"} {
		t.Run(strings.ReplaceAll(kill, " ", ""), func(t *testing.T) {
			ctx := context.Background()
			s, _ := reviewMyStore(t, 2)
			admin := sqltest.Open(t, sqlstore.MySQL)
			require.NoError(t, s.Record(ctx, reviewMyEvent("acme")))
			require.NoError(t, s.Record(ctx, reviewMyEvent("acme"))) // the CALL is prepared, the head cached

			locker, err := admin.BeginTx(ctx, nil)
			require.NoError(t, err)
			defer func() { _ = locker.Rollback() }()
			rows, err := locker.QueryContext(ctx, "SELECT seq FROM "+s.TablePrefix()+"audit_events WHERE tenant_id = ? AND seq > 0 FOR UPDATE", "acme")
			require.NoError(t, err)
			for rows.Next() {
			}
			require.NoError(t, rows.Close())

			e := reviewMyEvent("acme")
			done := make(chan error, 1)
			go func() { done <- s.Record(ctx, e) }()
			var id int64
			require.Eventually(t, func() bool {
				err := admin.QueryRow(`SELECT id FROM information_schema.processlist WHERE info LIKE ? LIMIT 1`,
					"INSERT INTO "+s.TablePrefix()+"audit_events%").Scan(&id)
				return err == nil
			}, 10*time.Second, 10*time.Millisecond, "the CALL's INSERT never waited")
			_, err = admin.Exec(fmt.Sprintf("%s %d", kill, id))
			require.NoError(t, err)
			time.Sleep(200 * time.Millisecond)
			require.NoError(t, locker.Rollback())
			recErr := <-done
			t.Logf("Record after %s: %v", kill, recErr)

			require.NoError(t, s.Record(ctx, reviewMyEvent("acme")))
			evs := reviewVerifyChains(t, s)["acme"]
			n := 0
			for _, x := range evs {
				if x.ID == e.ID {
					n++
				}
			}
			if recErr == nil {
				require.Equal(t, 1, n)
			} else {
				require.LessOrEqual(t, n, 1)
			}
			// On the connection the CALL ran on (the server's other
			// transactions belong to other tests).
			var open int
			require.NoError(t, admin.QueryRow(`SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_rows_modified > 0 AND trx_mysql_thread_id = ?`, id).Scan(&open))
			require.Equal(t, 0, open, "a transaction with changes is still open")
		})
	}
}

// Three replicas (separate pools, separate head caches) append to one
// tenant at once through Record (the CALL from stale caches), Grant and
// Revoke: one linear chain whose head is its last event, every successful
// Record in it once.
func TestReviewMySQLReplicasMixedWritersOneChain(t *testing.T) {
	ctx := context.Background()
	a := sqltest.NewStoreOn(t, sqltest.Open(t, sqlstore.MySQL), sqlstore.MySQL)
	stores := []*sqlstore.Store{a}
	for range 2 {
		s, err := sqlstore.New(sqltest.Open(t, sqlstore.MySQL), sqlstore.MySQL, sqlstore.WithTablePrefix(a.TablePrefix()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	var mu sync.Mutex
	recorded := map[uuid.UUID]bool{}
	grants := 0
	var wg sync.WaitGroup
	for w := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[w%3]
			if w < 6 {
				for range 60 {
					e := reviewMyEvent("acme")
					if err := s.Record(ctx, e); err != nil {
						t.Errorf("record: %v", err)
						return
					}
					mu.Lock()
					recorded[e.ID] = true
					mu.Unlock()
				}
				return
			}
			m, err := sa.NewManager(s)
			if err != nil {
				t.Error(err)
				return
			}
			for range 15 {
				g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
				if err != nil {
					t.Errorf("grant: %v", err)
					return
				}
				if _, err := m.Revoke(ctx, g.ID, storetest.Customer, "done"); err != nil {
					t.Errorf("revoke: %v", err)
					return
				}
				mu.Lock()
				grants++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	evs := reviewVerifyChains(t, a)["acme"]
	seen := map[uuid.UUID]int{}
	others := 0
	for _, e := range evs {
		if e.Type == "x" {
			seen[e.ID]++
		} else {
			others++
		}
	}
	require.Len(t, seen, len(recorded))
	for id := range recorded {
		require.Equal(t, 1, seen[id], "event %s", id)
	}
	require.GreaterOrEqual(t, others, 2*grants)
}

// Tampering stays evident when the next event is appended by the CALL from
// a head cached before the tampering.
func TestReviewMySQLTamperThenCallAppend(t *testing.T) {
	for _, tc := range []struct {
		name string
		sql  string
	}{
		{"DeleteLastRow", "DELETE FROM {p}audit_events WHERE tenant_id = 'acme' AND seq = 5"},
		{"UpdateLastReason", "UPDATE {p}audit_events SET reason = 'nothing' WHERE tenant_id = 'acme' AND seq = 5"},
		{"UpdateMiddleReason", "UPDATE {p}audit_events SET reason = 'nothing' WHERE tenant_id = 'acme' AND seq = 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, db := reviewMyStore(t, 0)
			m, err := sa.NewManager(s)
			require.NoError(t, err)
			for range 5 {
				require.NoError(t, s.Record(ctx, reviewMyEvent("acme")))
			}
			_, err = m.VerifyAudit(ctx, "acme")
			require.NoError(t, err)
			_, err = db.Exec(strings.ReplaceAll(tc.sql, "{p}", s.TablePrefix()))
			require.NoError(t, err)
			require.NoError(t, s.Record(ctx, reviewMyEvent("acme"))) // CALL from the cached seq 5
			_, err = m.VerifyAudit(ctx, "acme")
			require.ErrorIs(t, err, sa.ErrTampered)
		})
	}
}

// Migration 4 from two replicas at once (GET_LOCK), applied by a host's
// tool from the rendered files split at lines ending in ";", re-run after
// a crash before its version row, then Migrate; DropTables removes the
// procedure.
func TestReviewMySQLMigration4(t *testing.T) {
	ctx := context.Background()
	t.Run("Concurrent", func(t *testing.T) {
		prefix := sqltest.NewPrefix()
		dbA, dbB := sqltest.Open(t, sqlstore.MySQL), sqltest.Open(t, sqlstore.MySQL)
		t.Cleanup(func() { require.NoError(t, sqltest.DropTables(context.Background(), dbA, sqlstore.MySQL, prefix)) })
		var stores []*sqlstore.Store
		for _, db := range []*sql.DB{dbA, dbB} {
			s, err := sqlstore.New(db, sqlstore.MySQL, sqlstore.WithTablePrefix(prefix))
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			stores = append(stores, s)
		}
		errs := make(chan error, 2)
		for _, s := range stores {
			go func() { errs <- s.Migrate(ctx) }()
		}
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
		require.Equal(t, 1, reviewMyProcCount(t, dbA, prefix+"audit_append"))
		for range 3 {
			require.NoError(t, stores[0].Record(ctx, reviewMyEvent("acme")))
			require.NoError(t, stores[1].Record(ctx, reviewMyEvent("acme")))
		}
		require.Len(t, reviewVerifyChains(t, stores[0])["acme"], 6)
		require.NoError(t, sqltest.DropTables(ctx, dbA, sqlstore.MySQL, prefix))
		require.Equal(t, 0, reviewMyProcCount(t, dbA, prefix+"audit_append"), "DropTables left the procedure")
	})
	t.Run("RenderedFiles", func(t *testing.T) {
		prefix := sqltest.NewPrefix()
		db := sqltest.Open(t, sqlstore.MySQL)
		t.Cleanup(func() { require.NoError(t, sqltest.DropTables(context.Background(), db, sqlstore.MySQL, prefix)) })
		s, err := sqlstore.New(db, sqlstore.MySQL, sqlstore.WithTablePrefix(prefix))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		files := s.Migrations()
		names, err := fs.Glob(files, "*.sql")
		require.NoError(t, err)
		require.Len(t, names, sqlstore.SchemaVersion)
		for _, name := range names {
			b, err := fs.ReadFile(files, name)
			require.NoError(t, err)
			for _, st := range reviewSplitAtLineEnds(string(b)) {
				_, err := db.ExecContext(ctx, st)
				require.NoError(t, err, "%s: %s", name, st)
			}
		}
		// 0004 again, as after a crash before its version row.
		b, err := fs.ReadFile(files, "0004_record_cas.sql")
		require.NoError(t, err)
		for _, st := range reviewSplitAtLineEnds(string(b)) {
			if strings.Contains(st, "schema_version") {
				continue
			}
			_, err := db.ExecContext(ctx, st)
			require.NoError(t, err, st)
		}
		require.NoError(t, s.Migrate(ctx))
		var v int
		require.NoError(t, db.QueryRow("SELECT MAX(version) FROM "+prefix+"schema_version").Scan(&v))
		require.Equal(t, sqlstore.SchemaVersion, v)
		for range 3 {
			require.NoError(t, s.Record(ctx, reviewMyEvent("acme")))
		}
		require.Len(t, reviewVerifyChains(t, s)["acme"], 3)
	})
	t.Run("DefaultPrefixRendering", func(t *testing.T) {
		b, err := fs.ReadFile(sqlstore.Migrations(sqlstore.MySQL), "0004_record_cas.sql")
		require.NoError(t, err)
		sts := reviewSplitAtLineEnds(string(b))
		require.Len(t, sts, 3)
		require.Contains(t, sts[1], "CREATE PROCEDURE "+sqlstore.DefaultTablePrefix+"audit_append(")
		require.NotContains(t, string(b), "{p}")
	})
}
