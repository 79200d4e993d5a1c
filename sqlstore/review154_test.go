package sqlstore_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 154: the rolling upgrade to schema version 6
// (migrations/*/0006_head_hash_tenant_list.sql, audit_cas.go) while
// replicas of the previous release (commit faa02a5, schema version 5)
// keep running. Promises attacked (SECURITY.md, "Upgrade all replicas
// together"; the migration files' comments; doc.go; errors.go):
//
//   - "an older replica's call of it fails before it starts, and its
//     Record takes the locking transaction (correct, one round trip
//     more) until it is upgraded";
//   - "so the file can be applied again after stopping anywhere";
//   - "Until schema_version records SchemaVersion …, every method but
//     Migrate refuses to work — with ErrSchemaTooOld";
//   - "On PostgreSQL, an older replica's one-statement append still
//     compares the sequence number only, which can fork the chain after
//     a failover that lost commits" (and only then).
//
// The previous release is driven through a binary built from its own
// worktree (see r154OldBin). .ci/run builds it from the clone's history
// and names it in SUPPORTACCESS_REVIEW154_OLD_BIN, which makes its absence
// a failure; elsewhere the tests that need it skip without it. By hand:
//
//	git -C <repo> worktree add /tmp/rev154old faa02a5
//	mkdir -p /tmp/rev154old/cmd/r154old
//	cp sqlstore/testdata/review154old/main.go /tmp/rev154old/cmd/r154old/main.go
//	cd /tmp/rev154old && go build -o /tmp/rev154old.bin ./cmd/r154old
//
// The driver speaks one command a line on stdin (version, migrate,
// record T R, grant T, revoke ID, check T, sweep, advance D, set TIME,
// verify T, mix T N, quit) and answers one JSON line (r154Reply).

// r154OldBin is the path of the previous release's driver binary
// (SUPPORTACCESS_REVIEW154_OLD_BIN overrides it).
func r154OldBin() string {
	if p := os.Getenv("SUPPORTACCESS_REVIEW154_OLD_BIN"); p != "" {
		return p
	}
	return "/tmp/rev154old.bin"
}

// r154Prefix returns a fresh table prefix of this review's own.
func r154Prefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "r154_" + hex.EncodeToString(b[:]) + "_"
}

// r154Drop drops the prefix's tables and procedures (migrate_0006 too: a
// migration stopped inside it leaves it behind).
func r154Drop(t *testing.T, db *sql.DB, d sqlstore.Dialect, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if d == sqlstore.MySQL {
		_, err := db.ExecContext(ctx, "DROP PROCEDURE IF EXISTS `"+prefix+"migrate_0006`")
		require.NoError(t, err)
	}
	require.NoError(t, sqltest.DropTables(ctx, db, d, prefix))
}

// r154Unmigrated returns a store on db with a fresh r154 prefix, not
// migrated; its tables are dropped at the end of the test.
func r154Unmigrated(t *testing.T, db *sql.DB, d sqlstore.Dialect) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(r154Prefix()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.Close()
		r154Drop(t, db, d, s.TablePrefix())
	})
	return s
}

// r154AtVersion5 returns a store whose tables migration files 1–5 created
// (the previous release's schema), as a host's tool would.
func r154AtVersion5(t *testing.T, db *sql.DB, d sqlstore.Dialect) *sqlstore.Store {
	t.Helper()
	s := r154Unmigrated(t, db, d)
	names, err := fs.Glob(s.Migrations(), "*.sql")
	require.NoError(t, err)
	for _, n := range names {
		if n < "0006" {
			applyFile(t, db, s, n)
		}
	}
	require.Equal(t, []int{1, 2, 3, 4, 5}, versions(t, db, s))
	return s
}

// r154File6 is the name of migration 6's file.
const r154File6 = "0006_head_hash_tenant_list.sql"

// r154Statements counts the statements of the store's migration 6 as
// applySome numbers them.
func r154Statements(t *testing.T, db *sql.DB, s *sqlstore.Store) int {
	t.Helper()
	n := 0
	applySome(t, db, s, r154File6, func(int, string) bool { n++; return false })
	return n
}

// r154Event is a support.request of tenant.
func r154Event(tenant, reason string) sa.Event {
	return sa.Event{ID: uuid.New(), Time: storetest.Epoch, Type: sa.EventSupportRequest, TenantID: tenant,
		Actor: storetest.Support, Reason: reason}
}

// r154RequireSchema6 checks what migration 6 leaves: versions 1–6, both
// new indexes (valid, on PostgreSQL), on MySQL an audit_append taking 16
// parameters and no migrate_0006 left behind.
func r154RequireSchema6(t *testing.T, db *sql.DB, d sqlstore.Dialect, s *sqlstore.Store) {
	t.Helper()
	p := s.TablePrefix()
	require.Equal(t, wantVersions(), versions(t, db, s))
	require.Equal(t, 6, sqlstore.SchemaVersion)
	for _, ix := range []string{p + "grants_tenant_created", p + "audit_events_actor"} {
		var n int
		var err error
		switch d {
		case sqlstore.Postgres:
			err = db.QueryRow(`SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
				WHERE c.relname = $1 AND i.indisvalid`, ix).Scan(&n)
		case sqlstore.MySQL:
			err = db.QueryRow(`SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS
				WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = ?`, ix).Scan(&n)
		default:
			err = db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, ix).Scan(&n)
		}
		require.NoError(t, err)
		require.Equal(t, 1, n, "index %s", ix)
	}
	if d == sqlstore.MySQL {
		var params int
		require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM information_schema.PARAMETERS
			WHERE SPECIFIC_SCHEMA = DATABASE() AND SPECIFIC_NAME = ? AND ROUTINE_TYPE = 'PROCEDURE'`, p+"audit_append").Scan(&params))
		require.Equal(t, 16, params, "audit_append of version 6")
		require.Equal(t, 0, reviewMyProcCount(t, db, p+"migrate_0006"), "migrate_0006 dropped")
	}
}

// TestReview154NewRefusesSchema5UntilMigrated: the new release on a
// database the previous release migrated (version 5) must refuse every
// method but Migrate with ErrSchemaTooOld — Check fails closed and nothing
// is written — and work once Migrate brought it to 6; Migrate again is a
// no-op.
func TestReview154NewRefusesSchema5UntilMigrated(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		s := r154AtVersion5(t, db, d)
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(s, sa.WithNow(clock.Now))
		require.NoError(t, err)

		_, err = m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
		require.ErrorIs(t, s.Record(ctx, r154Event("acme", "early")), sqlstore.ErrSchemaTooOld)
		_, err = m.Sweep(ctx)
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
		_, err = m.VerifyAudit(ctx, "acme")
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
		_, err = s.Events(ctx, sa.AuditFilter{})
		require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld)
		var rows int
		require.NoError(t, db.QueryRow(`SELECT (SELECT COUNT(*) FROM `+s.TablePrefix()+`grants) + (SELECT COUNT(*) FROM `+
			s.TablePrefix()+`audit_events) + (SELECT COUNT(*) FROM `+s.TablePrefix()+`audit_heads)`).Scan(&rows))
		require.Zero(t, rows, "nothing written at version 5")

		require.NoError(t, s.Migrate(ctx))
		r154RequireSchema6(t, db, d, s)
		require.NoError(t, s.Migrate(ctx), "idempotent")
		r154RequireSchema6(t, db, d, s)

		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
		_, err = m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.NoError(t, err)
		for i := 0; i < 3; i++ { // the second and third take the one-round-trip append
			require.NoError(t, s.Record(ctx, r154Event("acme", fmt.Sprint(i))))
		}
		reviewVerifyChains(t, s)
		rep, err := m.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.True(t, rep.OK(), "%+v", rep.Break)
		require.EqualValues(t, 4, rep.Events)
	})
}

// TestReview154Migrate6RerunnableAfterStop stops a host's tool after each
// statement of migration 6 (k statements applied, the version not
// recorded) and then runs Migrate: it must finish the file — both
// indexes, MySQL's 16-parameter audit_append, no helper procedure left —
// and the one-round-trip append must work and chain correctly.
func TestReview154Migrate6RerunnableAfterStop(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		probe := r154AtVersion5(t, db, d)
		n := r154Statements(t, db, probe)
		require.Greater(t, n, 1)
		for k := 0; k < n; k++ { // the last statement records the version
			t.Run(fmt.Sprint("after_", k), func(t *testing.T) {
				s := r154AtVersion5(t, db, d)
				applySome(t, db, s, r154File6, func(i int, _ string) bool { return i < k })
				// The stopped file again, by the host's tool, up to the same
				// point: every statement can be applied twice.
				applySome(t, db, s, r154File6, func(i int, _ string) bool { return i < k })
				require.Equal(t, []int{1, 2, 3, 4, 5}, versions(t, db, s))
				_, err := s.GetGrant(ctx, uuid.New())
				require.ErrorIs(t, err, sqlstore.ErrSchemaTooOld, "still refused at version 5")

				require.NoError(t, s.Migrate(ctx))
				r154RequireSchema6(t, db, d, s)
				other := db // SQLite: one file, the test's
				if d != sqlstore.SQLite {
					other = sqltest.Open(t, d)
				}
				b, err := sqlstore.New(other, d, sqlstore.WithTablePrefix(s.TablePrefix()))
				require.NoError(t, err)
				defer b.Close()
				for i := 0; i < 4; i++ {
					require.NoError(t, s.Record(ctx, r154Event("acme", fmt.Sprint("a", i))))
					require.NoError(t, b.Record(ctx, r154Event("acme", fmt.Sprint("b", i))))
					require.NoError(t, s.Record(ctx, r154Event("acme", fmt.Sprint("a", i, "+"))))
				}
				chains := reviewVerifyChains(t, s)
				require.Len(t, chains["acme"], 12)
			})
		}
	})
}

// r154MySQLNumber returns the server's error number of err (0: none).
func r154MySQLNumber(err error) int {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return int(me.Number)
	}
	return 0
}

// TestReview154OldCallShapeFailsBeforeStart: the previous release calls
// audit_append with 15 arguments (no p_prev_hash). Against version 6 that
// CALL must fail before the procedure starts — ER_SP_WRONG_NO_OF_ARGS,
// which the previous release's mysqlBeforeCommit lists, so it takes the
// locking path without looking for the event — and change nothing: no
// event, the head where it was, no transaction left open.
func TestReview154OldCallShapeFailsBeforeStart(t *testing.T) {
	d := sqlstore.MySQL
	ctx := context.Background()
	db := sqltest.Open(t, d)
	s := r154Unmigrated(t, db, d)
	require.NoError(t, s.Migrate(ctx))
	for i := 0; i < 3; i++ {
		require.NoError(t, s.Record(ctx, r154Event("acme", fmt.Sprint(i))))
	}
	p := s.TablePrefix()
	var seq int64
	var hash []byte
	require.NoError(t, db.QueryRow(`SELECT seq, chain_hash FROM `+p+`audit_heads WHERE tenant_id = ?`, "acme").Scan(&seq, &hash))
	e := r154Event("acme", "old shape")
	e.Seq = seq + 1
	e.Hash = e.ChainHash(hash)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	// Prepared, as the previous release's statement cache has it.
	st, err := conn.PrepareContext(ctx, `CALL `+p+`audit_append(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err == nil {
		defer st.Close()
		var applied bool
		err = st.QueryRowContext(ctx, e.TenantID, seq, e.Hash, e.ID.String(), e.Time.UTC().Format("2006-01-02 15:04:05.999999"),
			string(e.Type), nil, string(e.Actor.Kind), e.Actor.ID, e.Actor.Name, e.Reason, nil, nil, nil, nil).Scan(&applied)
	}
	require.Error(t, err)
	require.Equal(t, 1318, r154MySQLNumber(err), "ER_SP_WRONG_NO_OF_ARGS: %v", err)
	var seq2 int64
	var hash2 []byte
	require.NoError(t, db.QueryRow(`SELECT seq, chain_hash FROM `+p+`audit_heads WHERE tenant_id = ?`, "acme").Scan(&seq2, &hash2))
	require.Equal(t, seq, seq2)
	require.Equal(t, hash, hash2)
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM `+p+`audit_events WHERE id = ?`, e.ID.String()).Scan(&n))
	require.Zero(t, n)
	var open int
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()`).Scan(&open))
	require.Zero(t, open, "no transaction left open by the failed CALL")

	// The new shape with the right sequence number and a wrong hash of the
	// head: not applied, nothing changed.
	var applied bool
	bad := append([]byte(nil), hash...)
	bad[0] ^= 1
	require.NoError(t, conn.QueryRowContext(ctx, `CALL `+p+`audit_append(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.TenantID, seq, bad, e.ChainHash(bad), e.ID.String(), e.Time.UTC().Format("2006-01-02 15:04:05.999999"),
		string(e.Type), nil, string(e.Actor.Kind), e.Actor.ID, e.Actor.Name, e.Reason, nil, nil, nil, nil).Scan(&applied))
	require.False(t, applied)
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM `+p+`audit_events WHERE id = ?`, e.ID.String()).Scan(&n))
	require.Zero(t, n)
	// And the whole head: applied, so the compare is not a miss every time.
	require.NoError(t, conn.QueryRowContext(ctx, `CALL `+p+`audit_append(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.TenantID, seq, hash, e.Hash, e.ID.String(), e.Time.UTC().Format("2006-01-02 15:04:05.999999"),
		string(e.Type), nil, string(e.Actor.Kind), e.Actor.ID, e.Actor.Name, e.Reason, nil, nil, nil, nil).Scan(&applied))
	require.True(t, applied)
	require.NoError(t, s.Record(ctx, r154Event("acme", "after")))
	chains := reviewVerifyChains(t, s)
	require.Len(t, chains["acme"], 5)
	require.Equal(t, e.ID, chains["acme"][3].ID)
}

// r154Reply is one answer of the previous release's driver.
type r154Reply struct {
	OK       bool     `json:"ok"`
	Err      string   `json:"err"`
	TooNew   bool     `json:"too_new"`
	TooOld   bool     `json:"too_old"`
	IDs      []string `json:"ids"`
	N        int      `json:"n"`
	Verified bool     `json:"verified"`
	Events   int64    `json:"events"`
	Break    string   `json:"break"`
	Version  int      `json:"version"`
	Failures []string `json:"failures"`
}

// r154Old is a running replica of the previous release.
type r154Old struct {
	t   *testing.T
	in  io.WriteCloser
	out *bufio.Scanner
}

// r154Run is a database of dialect d under a fresh table prefix (its
// tables dropped at the end) with a replica of the previous release on
// it, migrated to version 5; recorded keeps the IDs of the events its
// writers were told they recorded.
type r154Run struct {
	t        *testing.T
	db       *sql.DB
	prefix   string
	old      *r154Old
	recorded []string
}

// r154OldWriting starts an r154Run.
func r154OldWriting(t *testing.T, d sqlstore.Dialect) *r154Run {
	t.Helper()
	db := sqltest.Open(t, d)
	prefix := r154Prefix()
	t.Cleanup(func() { r154Drop(t, db, d, prefix) })
	old := r154StartOld(t, d, prefix)
	require.True(t, old.do("migrate").OK)
	return &r154Run{t: t, db: db, prefix: prefix, old: old}
}

// note requires the old replica's reply r to be a success and keeps the
// IDs it recorded.
func (run *r154Run) note(r r154Reply) {
	run.t.Helper()
	require.True(run.t, r.OK, "old replica: %s %v", r.Err, r.Failures)
	run.recorded = append(run.recorded, r.IDs...)
}

// r154StartOld starts a replica of the previous release on the prefix, or
// skips the test when its binary is absent.
func r154StartOld(t *testing.T, d sqlstore.Dialect, prefix string) *r154Old {
	t.Helper()
	bin := r154OldBin()
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("SUPPORTACCESS_REVIEW154_OLD_BIN") != "" {
			t.Fatalf("previous release's driver %s, named by SUPPORTACCESS_REVIEW154_OLD_BIN, absent: %v", bin, err)
		}
		t.Skipf("previous release's driver %s absent (build it from commit faa02a5, see the file comment): %v", bin, err)
	}
	sqltest.Open(t, d) // skips when the server is unreachable
	cmd := exec.Command(bin, "-dialect", d.String(), "-dsn", sqltest.DSN(d), "-prefix", prefix)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	o := &r154Old{t: t, in: in, out: bufio.NewScanner(out)}
	o.out.Buffer(make([]byte, 1<<20), 16<<20)
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if v := o.do("version"); v.Version != 5 {
		if os.Getenv("SUPPORTACCESS_REVIEW154_OLD_BIN") != "" {
			t.Fatalf("%s, named by SUPPORTACCESS_REVIEW154_OLD_BIN, is not the previous release (schema version %d)", bin, v.Version)
		}
		t.Skipf("%s is not the previous release (schema version %d)", bin, v.Version)
	}
	return o
}

// send writes a command; recv reads its answer.
func (o *r154Old) send(cmd string) {
	_, err := io.WriteString(o.in, cmd+"\n")
	require.NoError(o.t, err)
}

func (o *r154Old) recv() r154Reply {
	if !o.out.Scan() {
		o.t.Fatalf("previous release's driver ended: %v", o.out.Err())
	}
	var r r154Reply
	require.NoError(o.t, json.Unmarshal(o.out.Bytes(), &r))
	return r
}

func (o *r154Old) do(cmd string) r154Reply {
	o.send(cmd)
	return o.recv()
}

// async runs cmd on the old replica while the caller goes on; the returned
// function waits for its answer.
func (o *r154Old) async(cmd string) func() r154Reply {
	o.send(cmd)
	ch := make(chan r154Reply, 1)
	go func() {
		if !o.out.Scan() {
			ch <- r154Reply{Err: fmt.Sprint("driver ended: ", o.out.Err())}
			return
		}
		var r r154Reply
		if err := json.Unmarshal(o.out.Bytes(), &r); err != nil {
			r.Err = err.Error()
		}
		ch <- r
	}()
	return func() r154Reply { return <-ch }
}

// r154NewMix is the new release's share of interleaved writes: Records,
// a Grant, a Revoke every other round and a Sweep, per round. It returns
// the IDs of the events it recorded.
func r154NewMix(ctx context.Context, s *sqlstore.Store, m *sa.Manager, clock *storetest.Clock, tenant string, rounds int) ([]string, error) {
	var ids []string
	for i := 0; i < rounds; i++ {
		for j := 0; j < 3; j++ {
			e := r154Event(tenant, fmt.Sprintf("new %d.%d", i, j))
			e.Time = clock.Now()
			if err := s.Record(ctx, e); err != nil {
				return ids, fmt.Errorf("record: %w", err)
			}
			ids = append(ids, e.ID.String())
		}
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: storetest.Customer, Duration: time.Hour, Reason: "new"})
		if err != nil {
			return ids, fmt.Errorf("grant: %w", err)
		}
		if i%2 == 1 {
			if _, err := m.Revoke(ctx, g.ID, storetest.Customer, "new"); err != nil {
				return ids, fmt.Errorf("revoke: %w", err)
			}
		}
		if _, err := m.Sweep(ctx); err != nil {
			return ids, fmt.Errorf("sweep: %w", err)
		}
		clock.Advance(20 * time.Minute)
	}
	return ids, nil
}

// r154RequireTrail checks the whole trail: every chain links and ends at
// its head (reviewVerifyChains), VerifyAudit of the new release says OK,
// every event ID a writer was told was recorded is there exactly once, and
// no grant has two starts or two expiries recorded.
func r154RequireTrail(t *testing.T, s *sqlstore.Store, m *sa.Manager, recorded []string) {
	t.Helper()
	chains := reviewVerifyChains(t, s)
	seen := map[string]int{}
	lifecycle := map[string]int{}
	for _, evs := range chains {
		for _, e := range evs {
			seen[e.ID.String()]++
			if e.Type == sa.EventGrantStarted || e.Type == sa.EventGrantExpired {
				lifecycle[string(e.Type)+" "+e.GrantID.String()]++
			}
		}
	}
	for id, n := range seen {
		require.Equal(t, 1, n, "event %s stored %d times", id, n)
	}
	for _, id := range recorded {
		require.Equal(t, 1, seen[id], "recorded event %s in the trail", id)
	}
	for k, n := range lifecycle {
		require.Equal(t, 1, n, "%s recorded %d times", k, n)
	}
	for tenant, evs := range chains {
		rep, err := m.VerifyAudit(context.Background(), tenant)
		require.NoError(t, err)
		require.True(t, rep.OK(), "new release's VerifyAudit of %s: %+v", tenant, rep.Break)
		require.EqualValues(t, len(evs), rep.Events)
	}
}

// TestReview154RollingUpgrade runs a replica of the previous release
// (schema 5) that keeps writing — Records (its one-round-trip append),
// Grants, Revokes, Sweeps — while the new release runs Migrate to 6 and
// then writes to the same tenant: no write of the old replica may fail or
// be lost or duplicated (its CALL of the replaced procedure fails and its
// Record takes the locking transaction), both releases' VerifyAudit say
// the chains hold, the old replica keeps working against version 6 and
// its Migrate refuses the newer schema (ErrSchemaTooNew).
func TestReview154RollingUpgrade(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			run := r154OldWriting(t, d)
			db, prefix, old, note := run.db, run.prefix, run.old, run.note
			note(old.do("mix acme 3"))
			note(old.do("mix beta 1"))

			s, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(prefix))
			require.NoError(t, err)
			defer s.Close()
			clock := storetest.NewClock(storetest.Epoch.Add(time.Minute))
			m, err := sa.NewManager(s, sa.WithNow(clock.Now))
			require.NoError(t, err)
			require.ErrorIs(t, s.Record(ctx, r154Event("acme", "too early")), sqlstore.ErrSchemaTooOld)

			// Migrate while the old replica writes.
			wait := old.async("mix acme 8")
			require.NoError(t, s.Migrate(ctx))
			note(wait())
			r154RequireSchema6(t, db, d, s)

			// The old replica against version 6: its own Record after
			// Record (the second from its cached head, the replaced CALL on
			// MySQL) and the rest of its writes.
			for i := 0; i < 4; i++ {
				note(old.do("record acme after" + fmt.Sprint(i)))
			}
			mig := old.do("migrate")
			require.False(t, mig.OK)
			require.True(t, mig.TooNew, "the previous release's Migrate refuses version 6: %s", mig.Err)

			// Interleaved writes of both releases to the same tenants.
			wait = old.async("mix acme 10")
			ids, err := r154NewMix(ctx, s, m, clock, "acme", 10)
			require.NoError(t, err)
			run.recorded = append(run.recorded, ids...)
			note(wait())
			wait = old.async("mix beta 5")
			ids, err = r154NewMix(ctx, s, m, clock, "beta", 5)
			require.NoError(t, err)
			run.recorded = append(run.recorded, ids...)
			note(wait())
			// Strict alternation, each from its cached head.
			for i := 0; i < 5; i++ {
				note(old.do("record acme alt" + fmt.Sprint(i)))
				e := r154Event("acme", "alt")
				require.NoError(t, s.Record(ctx, e))
				run.recorded = append(run.recorded, e.ID.String())
			}

			r154RequireTrail(t, s, m, run.recorded)
			for _, tenant := range []string{"acme", "beta"} {
				v := old.do("verify " + tenant)
				require.True(t, v.OK, v.Err)
				require.True(t, v.Verified, "previous release's VerifyAudit of %s: %s", tenant, v.Break)
			}
			// Clocks in sync (SECURITY.md: "Keep clocks in sync").
			require.True(t, old.do("set "+clock.Now().Format(time.RFC3339Nano)).OK)
			g, err := m.Grant(ctx, sa.GrantInput{TenantID: "gamma", By: storetest.Customer, Duration: time.Hour})
			require.NoError(t, err)
			require.True(t, old.do("check gamma").OK, "the old replica admits on the new release's grant")
			require.True(t, old.do("revoke "+g.ID.String()).OK)
			_, err = m.Check(ctx, "gamma", storetest.Support.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the old replica's revocation holds for the new release")
			require.False(t, old.do("check gamma").OK)
			r154RequireTrail(t, s, m, run.recorded)
		})
	}
}

// r154LoseLastCommit makes the database forget the tenant's last event,
// as a failover to a lagging replica would: the event is deleted and the
// head set back to the one before it.
func r154LoseLastCommit(t *testing.T, db *sql.DB, d sqlstore.Dialect, prefix, tenant string) {
	t.Helper()
	q := func(s string) string { return review148Placeholders(d, s) }
	var seq int64
	require.NoError(t, db.QueryRow(q(`SELECT seq FROM `+prefix+`audit_heads WHERE tenant_id = ?`), tenant).Scan(&seq))
	var prev []byte
	require.NoError(t, db.QueryRow(q(`SELECT chain_hash FROM `+prefix+`audit_events WHERE tenant_id = ? AND seq = ?`), tenant, seq-1).Scan(&prev))
	_, err := db.Exec(q(`DELETE FROM `+prefix+`audit_events WHERE tenant_id = ? AND seq = ?`), tenant, seq)
	require.NoError(t, err)
	_, err = db.Exec(q(`UPDATE `+prefix+`audit_heads SET seq = ?, chain_hash = ? WHERE tenant_id = ?`), seq-1, prev, tenant)
	require.NoError(t, err)
}

// TestReview154OldReplicaForksOnlyAfterLostCommits checks SECURITY.md's
// limit: "On PostgreSQL, an older replica's one-statement append still
// compares the sequence number only, which can fork the chain after a
// failover that lost commits". Without lost commits, old and new appends
// interleaved in every order (each from its cached head, and while the
// other moved it) never fork: the chain verifies. After a lost commit the
// old replica's append forks the chain on PostgreSQL, as documented; on
// MySQL its CALL of the replaced procedure fails, it takes the locking
// transaction, and the chain holds.
func TestReview154OldReplicaForksOnlyAfterLostCommits(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, d)
			prefix := r154Prefix()
			t.Cleanup(func() { r154Drop(t, db, d, prefix) })
			old := r154StartOld(t, d, prefix)
			s, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(prefix))
			require.NoError(t, err)
			defer s.Close()
			require.NoError(t, s.Migrate(ctx))
			m, err := sa.NewManager(s)
			require.NoError(t, err)
			rec := func() {
				t.Helper()
				require.NoError(t, s.Record(ctx, r154Event("acme", "new")))
			}
			// Every interleaving of two cached heads: old after old, new
			// after old, old after new, new after new, and each moved by the
			// other between its two Records.
			for _, step := range []string{"o", "o", "n", "n", "o", "n", "o", "o", "n", "o", "n", "n"} {
				if step == "o" {
					r := old.do("record acme x")
					require.True(t, r.OK, r.Err)
				} else {
					rec()
				}
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 30; i++ {
					if err := s.Record(ctx, r154Event("acme", "new concurrent")); err != nil {
						t.Errorf("new Record: %v", err)
						return
					}
				}
			}()
			for i := 0; i < 30; i++ {
				r := old.do("record acme concurrent")
				require.True(t, r.OK, r.Err)
			}
			wg.Wait()
			reviewVerifyChains(t, s)
			rep, err := m.VerifyAudit(ctx, "acme")
			require.NoError(t, err)
			require.True(t, rep.OK(), "no fork without lost commits: %+v", rep.Break)
			require.True(t, old.do("verify acme").Verified)

			// Now a lost commit: the old replica caches the head of its own
			// last append, which the database forgets; the new release
			// appends at that sequence number with another hash.
			require.True(t, old.do("record acme cached").OK)
			r154LoseLastCommit(t, db, d, prefix, "acme")
			rec()
			require.True(t, old.do("record acme stale").OK)
			rep, err = m.VerifyAudit(ctx, "acme")
			if d == sqlstore.Postgres {
				require.ErrorIs(t, err, sa.ErrTampered, "SECURITY.md: on PostgreSQL the old replica's append forks the chain after lost commits")
				require.NotNil(t, rep.Break)
				return
			}
			require.NoError(t, err, "MySQL: the old replica's CALL fails and it takes the locking transaction")
			require.True(t, rep.OK(), "%+v", rep.Break)
			reviewVerifyChains(t, s)
		})
	}
}

// TestReview154MigrateKilledInsideMySQL kills the migrating session on
// MySQL/MariaDB in the middle of migration 6 — inside CALL migrate_0006,
// its CREATE INDEX waiting for a table another session reads, after
// audit_append was already replaced — while a replica of the previous
// release keeps writing. The database stays at version 5 with the new
// procedure and the helper procedure left behind; the old replica's
// writes all succeed; Migrate again finishes the file; the trail holds.
func TestReview154MigrateKilledInsideMySQL(t *testing.T) {
	d := sqlstore.MySQL
	ctx := context.Background()
	run := r154OldWriting(t, d)
	db, prefix, old, note := run.db, run.prefix, run.old, run.note
	note(old.do("mix acme 2"))

	// A reader holds the grants table's metadata lock.
	reader, err := db.Conn(ctx)
	require.NoError(t, err)
	defer reader.Close()
	_, err = reader.ExecContext(ctx, `START TRANSACTION`)
	require.NoError(t, err)
	var n int
	require.NoError(t, reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+prefix+`grants`).Scan(&n))

	s, err := sqlstore.New(sqltest.Open(t, d), d, sqlstore.WithTablePrefix(prefix))
	require.NoError(t, err)
	defer s.Close()
	migrated := make(chan error, 1)
	go func() { migrated <- s.Migrate(ctx) }()
	var victim int64
	require.Eventually(t, func() bool {
		err := db.QueryRow(`SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND STATE LIKE '%metadata lock%'`,
			"%CREATE INDEX "+prefix+"grants_tenant_created%").Scan(&victim)
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "Migrate waiting inside migrate_0006")
	// The old replica's Records, whose audit tables the waiting index does
	// not block; its CALL now meets the 16-parameter procedure.
	for i := 0; i < 4; i++ {
		note(old.do("record acme during" + fmt.Sprint(i)))
	}
	_, err = db.Exec(fmt.Sprintf(`KILL %d`, victim))
	require.NoError(t, err)
	require.Error(t, <-migrated)
	_, err = reader.ExecContext(ctx, `COMMIT`)
	require.NoError(t, err)
	s2, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(prefix))
	require.NoError(t, err)
	defer s2.Close()
	require.Equal(t, []int{1, 2, 3, 4, 5}, versions(t, db, s2))
	// Killed where intended: audit_append replaced, the helper left behind.
	var params int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM information_schema.PARAMETERS
		WHERE SPECIFIC_SCHEMA = DATABASE() AND SPECIFIC_NAME = ? AND ROUTINE_TYPE = 'PROCEDURE'`, prefix+"audit_append").Scan(&params))
	require.Equal(t, 16, params)
	require.Equal(t, 1, reviewMyProcCount(t, db, prefix+"migrate_0006"))
	require.ErrorIs(t, s2.Record(ctx, r154Event("acme", "refused")), sqlstore.ErrSchemaTooOld)
	note(old.do("mix acme 3"))

	require.NoError(t, s2.Migrate(ctx))
	r154RequireSchema6(t, db, d, s2)
	note(old.do("mix acme 3"))
	m, err := sa.NewManager(s2)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		e := r154Event("acme", "after")
		require.NoError(t, s2.Record(ctx, e))
		run.recorded = append(run.recorded, e.ID.String())
	}
	r154RequireTrail(t, s2, m, run.recorded)
	require.True(t, old.do("verify acme").Verified)
}

// TestReview154MigrateCancelledInsidePostgres cancels Migrate on
// PostgreSQL while its CREATE INDEX of migration 6 waits for a writer of
// the grants table, with a replica of the previous release writing: the
// one transaction rolls back (version 5, no new index), the old
// replica's Grant queued behind the migration's lock completes, Migrate
// again finishes, and the trail holds.
func TestReview154MigrateCancelledInsidePostgres(t *testing.T) {
	d := sqlstore.Postgres
	ctx := context.Background()
	run := r154OldWriting(t, d)
	db, prefix, old, note := run.db, run.prefix, run.old, run.note
	note(old.do("mix acme 2"))

	// A writer of the grants table keeps its transaction open.
	writer, err := db.Conn(ctx)
	require.NoError(t, err)
	defer writer.Close()
	_, err = writer.ExecContext(ctx, `BEGIN`)
	require.NoError(t, err)
	_, err = writer.ExecContext(ctx, `UPDATE `+prefix+`grants SET reason = reason WHERE false`)
	require.NoError(t, err)

	s, err := sqlstore.New(sqltest.Open(t, d), d, sqlstore.WithTablePrefix(prefix))
	require.NoError(t, err)
	defer s.Close()
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	migrated := make(chan error, 1)
	go func() { migrated <- s.Migrate(mctx) }()
	require.Eventually(t, func() bool {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE $1 AND wait_event_type = 'Lock'`,
			"%CREATE INDEX IF NOT EXISTS "+prefix+"grants_tenant_created%").Scan(&n)
		return err == nil && n == 1
	}, 30*time.Second, 20*time.Millisecond, "Migrate waiting for the grants table")
	note(old.do("record acme during"))
	grant := old.async("grant acme") // queues behind the migration's lock request
	cancel()
	require.Error(t, <-migrated)
	_, err = writer.ExecContext(ctx, `COMMIT`)
	require.NoError(t, err)
	g := grant()
	require.True(t, g.OK, "old replica's Grant: %s", g.Err)
	require.Equal(t, []int{1, 2, 3, 4, 5}, versions(t, db, s))
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM pg_class WHERE relname = $1`, prefix+"grants_tenant_created").Scan(&n))
	require.Zero(t, n, "rolled back with the transaction")

	require.NoError(t, s.Migrate(ctx))
	r154RequireSchema6(t, db, d, s)
	note(old.do("mix acme 2"))
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	r154RequireTrail(t, s, m, run.recorded)
	require.True(t, old.do("verify acme").Verified)
}
