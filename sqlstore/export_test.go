package sqlstore

import (
	"context"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

// CheckQuery returns the SQL of FindActiveGrant as sent to the database
// (for EXPLAIN tests and the baseline benchmark).
func (s *Store) CheckQuery() string { return s.q.findActive }

// CheckArgs returns the arguments of CheckQuery.
func (s *Store) CheckArgs(tenantID, principal string, now time.Time) []any {
	n := s.d.timeArg(now)
	return []any{tenantID, n, n, needle(principal)}
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
			q := s.sql(`INSERT INTO {p}grants (` + grantCols + `) VALUES ` + strings.Repeat(row+", ", n-1) + row)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				_ = tx.Rollback()
				return err
			}
			gs = gs[n:]
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// InsertEventForTest stores e as given (Seq and Hash included) without
// touching the chain head, as someone with write access to the table would.
func (s *Store) InsertEventForTest(ctx context.Context, e sa.Event) error {
	return s.inTx(ctx, "insert event", func(t *txn) error { return s.insertEvents(t, []sa.Event{e}) })
}
