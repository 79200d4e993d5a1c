package sqlstore

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
)

// CheckQuery returns the SQL of FindActiveGrant as sent to the database
// (for EXPLAIN tests and the baseline benchmark).
func (s *Store) CheckQuery() string { return s.checkQuery() }

// CheckArgs returns the arguments of CheckQuery.
func (s *Store) CheckArgs(tenantID, principal string, now time.Time) []any {
	n := s.d.timeArg(now)
	return []any{tenantID, n, n, needle(principal)}
}

// ClaimQuery returns the first statement of a claim of tr (the whole claim
// on PostgreSQL) and its arguments.
func (s *Store) ClaimQuery(tr sa.Transition, now time.Time, limit int) (string, []any) {
	q := s.q.claimExpired
	if tr == sa.TransitionStarted {
		q = s.q.claimStarted
	}
	if !s.d.dueTable {
		return q, []any{s.d.timeArg(now), limit}
	}
	return q, []any{int(tr), s.d.timeArg(now), limit}
}

// MarkClaimedQuery returns MySQL's statement that sets the claim flag of tr
// on n grants.
func (s *Store) MarkClaimedQuery(tr sa.Transition, n int) string {
	return s.sql(markClaimedQuery(s.d, tr, n))
}

// LockClaimQuery returns MySQL's statement that locks n candidate grants
// of a claim of tr by primary key (arguments: the IDs, then now).
func (s *Store) LockClaimQuery(tr sa.Transition, n int) string {
	return s.sql(lockClaimQuery(s.d, tr, n))
}

// GrantColumns lists the grant columns in the order of CheckQuery.
const GrantColumns = grantCols

// TimeArg encodes t as the store sends it to the database.
func (s *Store) TimeArg(t time.Time) any { return s.d.timeArg(t) }

// InsertGrantsForTest bulk-inserts fixture grants with multi-row INSERTs,
// several per transaction, without audit events.
func (s *Store) InsertGrantsForTest(ctx context.Context, gs []sa.Grant) error {
	const rowsPerStmt, stmtsPerTx = 500, 20
	row := "(" + placeholders(18) + ")"
	for len(gs) > 0 {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for i := 0; i < stmtsPerTx && len(gs) > 0; i++ {
			n := min(len(gs), rowsPerStmt)
			args := make([]any, 0, 18*n)
			for j := range gs[:n] {
				args = append(args, s.grantArgs(&gs[j])...)
			}
			cols, row := grantCols, row
			if s.d.dueTable { // as insertGrant writes them since version 5
				cols, row = grantCols+`, started_recorded, expired_recorded`, row[:len(row)-1]+", TRUE, TRUE)"
			}
			q := s.sql(`INSERT INTO {p}grants (` + cols + `) VALUES ` + strings.Repeat(row+", ", n-1) + row)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				_ = tx.Rollback()
				return err
			}
			// Their pending transitions, as insertDue stores them.
			var due []any
			for j := range gs[:n] {
				g := &gs[j]
				if g.RevokedAt.IsZero() {
					due = append(due, s.d.timeArg(g.StartsAt), g.ID, s.d.timeArg(g.ExpiresAt), g.ID)
				}
			}
			if len(due) > 0 && s.d.dueTable {
				pair := "(1, ?, ?), (2, " + s.d.dueOrNever + ", ?)"
				q = s.sql(`INSERT INTO {p}grant_due (transition, due_at, grant_id) VALUES ` +
					strings.Repeat(pair+", ", len(due)/4-1) + pair)
				if _, err := tx.ExecContext(ctx, q, due...); err != nil {
					_ = tx.Rollback()
					return err
				}
			}
			gs = gs[n:]
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// InsertV4GrantsForTest inserts grants into a database at schema version
// 4, with the claim flags flags[id] (started, expired) — false when absent.
func (s *Store) InsertV4GrantsForTest(ctx context.Context, gs []sa.Grant, flags map[uuid.UUID][2]bool) error {
	q := s.sql(`INSERT INTO {p}grants (` + grantCols + `, started_recorded, expired_recorded) VALUES (` + placeholders(20) + `)`)
	for i := range gs {
		f := flags[gs[i].ID]
		if _, err := s.db.ExecContext(ctx, q, append(s.grantArgs(&gs[i]), f[0], f[1])...); err != nil {
			return err
		}
	}
	return nil
}

// ExecForTest runs q as a host's own SQL would change the tables: written
// as the store writes its SQL ("?" placeholders, {p} for the table
// prefix), with time.Time arguments bound as the store binds them.
func (s *Store) ExecForTest(ctx context.Context, q string, args ...any) error {
	for i, a := range args {
		if at, ok := a.(time.Time); ok {
			args[i] = s.d.timeArg(at)
		}
	}
	_, err := s.db.ExecContext(ctx, s.sql(q), args...)
	return err
}

// InsertEventForTest stores e as given (Seq and Hash included) without
// touching the chain head, as someone with write access to the table would.
func (s *Store) InsertEventForTest(ctx context.Context, e sa.Event) error {
	return s.inTx(ctx, "insert event", func(t *txn) error { return s.insertEvents(t, []sa.Event{e}) })
}

// HeadsTxForTest is a claim transaction that takes chain heads as a
// sweep's batch does (lockHeads), or one phase at a time, so that a test
// can interleave two such transactions.
type HeadsTxForTest struct {
	s *Store
	t *txn
}

// BeginHeadsForTest starts a transaction with the options of a claim.
func (s *Store) BeginHeadsForTest(ctx context.Context) (*HeadsTxForTest, error) {
	t, err := s.begin(ctx, s.d.claimTx)
	if err != nil {
		return nil, err
	}
	return &HeadsTxForTest{s: s, t: t}, nil
}

// SessionID returns the server's ID of the transaction's connection
// (pg_backend_pid on PostgreSQL, CONNECTION_ID on MySQL).
func (h *HeadsTxForTest) SessionID() (int64, error) {
	q := `SELECT pg_backend_pid()`
	if h.s.d.Dialect == MySQL {
		q = `SELECT CONNECTION_ID()`
	}
	var id int64
	err := h.t.tx.QueryRowContext(h.t.ctx, q).Scan(&id)
	return id, err
}

// CreateHeads runs lockHeads' first phase on tenants (sorted, distinct).
func (h *HeadsTxForTest) CreateHeads(tenants []string) error { return h.s.createHeads(h.t, tenants) }

// LockExisting runs lockHeads' second phase on tenants.
func (h *HeadsTxForTest) LockExisting(tenants []string) error {
	_, err := h.s.lockExisting(h.t, tenants)
	return err
}

// LockHeads runs lockHeads on tenants.
func (h *HeadsTxForTest) LockHeads(tenants []string) error {
	_, err := h.s.lockHeads(h.t, tenants)
	return err
}

// Commit commits the transaction.
func (h *HeadsTxForTest) Commit() error { return h.t.tx.Commit() }

// Rollback rolls the transaction back (nothing after Commit).
func (h *HeadsTxForTest) Rollback() { _ = h.t.tx.Rollback() }

// InInsertForTest reports whether the server session id (SessionID) is
// stuck in an INSERT: on PostgreSQL waiting for a lock (pg_locks); on
// MySQL running one (processlist) — MariaDB does not list a transaction
// whose first write waits for a row lock in innodb_trx, so the test
// arranges that the INSERT must wait.
func (s *Store) InInsertForTest(ctx context.Context, id int64) (bool, error) {
	q := `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)`
	if s.d.Dialect == MySQL {
		q = `SELECT EXISTS (SELECT 1 FROM information_schema.processlist WHERE id = ? AND info LIKE 'INSERT%')`
	}
	var waits bool
	err := s.db.QueryRowContext(ctx, q, id).Scan(&waits)
	return waits, err
}

// MaxHeadsPerStatement is the number of tenants of one batched head
// statement.
const MaxHeadsPerStatement = maxHeadsPerStatement

// AssumeSchemaForTest skips the store's check of the schema version
// (checkSchema), for tests of a database a host's tool left between two
// versions.
func (s *Store) AssumeSchemaForTest() { s.schemaOK.Store(true) }
