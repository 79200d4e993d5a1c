package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/stored"
)

// Expiry hook tasks live in the hook_tasks table (schema version 2), one
// row per expired grant whose hooks have not all succeeded.

var _ sa.HookStore = (*Store)(nil)

// hookCols are the columns of a hook task read by ClaimHookTasks (by the
// token {hookCols}, see listTokens).
const hookCols = `grant_id, done, attempts, next_at, last_error`

// Fixed hook task statements.
const (
	qClaimHooksSel = `SELECT {hookCols} FROM {p}hook_tasks ` +
		`WHERE next_at <= ? AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_at, grant_id LIMIT ?`
	qRetryHook = `UPDATE {p}hook_tasks SET done = ?, attempts = ?, next_at = ?, last_error = ?, lease_token = '', lease_until = NULL ` +
		`WHERE grant_id = ? AND lease_token = ?`
)

// maxTaskRowsPerStatement bounds multi-row INSERTs and IN lists of hook
// tasks (7 parameters per inserted row).
const maxTaskRowsPerStatement = 2000

// qInsertHooksUnnest is PostgreSQL's INSERT of the hook tasks of a claim
// (arguments: next_at, lease token, lease until, the grant IDs as a uuid
// array literal).
const qInsertHooksUnnest = `INSERT INTO {p}hook_tasks (grant_id, done, attempts, next_at, last_error, lease_token, lease_until) ` +
	`SELECT g, 0, 0, CAST(? AS timestamptz), '', CAST(? AS text), CAST(? AS timestamptz) FROM unnest(CAST(? AS uuid[])) AS g`

// ClaimExpirations implements supportaccess.HookStore: ClaimTransitions
// for TransitionExpired that also inserts one hook task per claimed grant,
// leased to lease, in the same transaction (on PostgreSQL one INSERT from
// an array of the grant IDs, elsewhere one multi-row INSERT per 2000
// grants).
func (s *Store) ClaimExpirations(ctx context.Context, now time.Time, limit int, lease sa.Lease, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if err := stored.CheckLease(lease); err != nil {
		return nil, fmt.Errorf("sqlstore: claim expirations: %w", err)
	}
	if err := checkTaskTime("claim expirations: now", now); err != nil {
		return nil, err
	}
	return s.claimTransitions(ctx, sa.TransitionExpired, now, limit, events, func(t *txn, claimed []sa.Grant) error {
		next, until := s.d.timeArg(now), s.d.timeArg(lease.Until)
		if s.d.Dialect == Postgres {
			var ids arrayLiteral
			for _, g := range claimed {
				ids.raw(g.ID.String())
			}
			if _, err := t.exec(s.sql(qInsertHooksUnnest), next, lease.Token, until, ids.String()); err != nil {
				return wrap(ctx, "claim expirations: insert hook tasks", err)
			}
			return nil
		}
		for len(claimed) > 0 {
			n := min(len(claimed), maxTaskRowsPerStatement)
			args := make([]any, 0, 7*n)
			for _, g := range claimed[:n] {
				args = append(args, g.ID, 0, 0, next, "", lease.Token, until)
			}
			row := "(?, ?, ?, ?, ?, ?, ?)"
			q := `INSERT INTO {p}hook_tasks (grant_id, done, attempts, next_at, last_error, lease_token, lease_until) VALUES ` +
				strings.Repeat(row+", ", n-1) + row
			if _, err := t.execDynamic(s.sql(q), args...); err != nil {
				return wrap(ctx, "claim expirations: insert hook tasks", err)
			}
			claimed = claimed[n:]
		}
		return nil
	})
}

// ClaimHookTasks implements supportaccess.HookStore. In one transaction it
// selects up to limit due, unleased tasks with FOR UPDATE SKIP LOCKED (on
// SQLite the write lock serialises claimers), leases them and reads their
// grants. Round trips (PostgreSQL): 5 — BEGIN, SELECT, UPDATE, SELECT
// grants, COMMIT. Errors: limit <= 0 or an empty lease token wrap
// supportaccess.ErrInvalidInput.
func (s *Store) ClaimHookTasks(ctx context.Context, now time.Time, limit int, lease sa.Lease) ([]sa.HookTask, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: claim hook tasks: %w: limit %d", sa.ErrInvalidInput, limit)
	}
	if err := stored.CheckLease(lease); err != nil {
		return nil, fmt.Errorf("sqlstore: claim hook tasks: %w", err)
	}
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("sqlstore: claim hook tasks: %w", err)
	}
	var out []sa.HookTask
	err := s.inClaimTx(ctx, "claim hook tasks", func(t *txn) error {
		out = out[:0]
		n := s.d.timeArg(now)
		rows, err := t.query(s.sql(qClaimHooksSel+s.d.skipLocked), n, n, limit)
		if err != nil {
			return wrap(ctx, "claim hook tasks", err)
		}
		for rows.Next() {
			var task sa.HookTask
			if err := rows.Scan(&task.Grant.ID, &task.Done, &task.Attempts, &timeScanner{s.d.Dialect, &task.NextAt}, &task.LastError); err != nil {
				rows.Close()
				return wrap(ctx, "claim hook tasks", err)
			}
			task.LeaseToken = lease.Token
			task.LeaseUntil = lease.Until.UTC().Truncate(time.Microsecond)
			out = append(out, task)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap(ctx, "claim hook tasks", err)
		}
		if len(out) == 0 {
			return nil
		}
		ids := make([]any, len(out))
		for i := range out {
			ids[i] = out[i].Grant.ID
		}
		mark := s.sql(`UPDATE {p}hook_tasks` + s.d.byPK + ` SET lease_token = ?, lease_until = ? WHERE grant_id IN (` + placeholders(len(ids)) + `)`)
		if _, err := t.execDynamic(mark, append([]any{lease.Token, s.d.timeArg(lease.Until)}, ids...)...); err != nil {
			return wrap(ctx, "claim hook tasks", err)
		}
		grants, err := s.grantsByID(t, ids)
		if err != nil {
			return wrap(ctx, "claim hook tasks: read grants", err)
		}
		for i := range out {
			if g, ok := grants[out[i].Grant.ID]; ok {
				out[i].Grant = g
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// inClaimTx runs fn, which calls no caller code, in a claim transaction
// (READ COMMITTED on MySQL, see dialect.claimTx) and retries it when the
// server aborts it to break a deadlock, like inTxRetry.
func (s *Store) inClaimTx(ctx context.Context, op string, fn func(t *txn) error) error {
	var err error
	for i := 0; i <= maxDeadlockRetries; i++ {
		err = s.inTxOpts(ctx, op, s.d.claimTx, fn)
		if err == nil || !isDeadlock(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// grantsByID reads the grants with the given IDs in t.
func (s *Store) grantsByID(t *txn, ids []any) (map[uuid.UUID]sa.Grant, error) {
	out := make(map[uuid.UUID]sa.Grant, len(ids))
	q := s.sql(`SELECT {grantCols} FROM {p}grants WHERE id IN (` + placeholders(len(ids)) + `)`)
	rows, err := t.tx.QueryContext(t.ctx, q, ids...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		r := s.newGrantRow()
		if err := r.scan(rows.Scan); err != nil {
			return nil, err
		}
		out[r.g.ID] = r.g
	}
	return out, rows.Err()
}

// FinishHookTasks implements supportaccess.HookStore: in one transaction
// it deletes the completed tasks still leased to token (one statement),
// stores the retry state of the others (one statement each) and appends
// events. It returns how many tasks it finished.
func (s *Store) FinishHookTasks(ctx context.Context, token string, tasks []sa.HookTask, events []sa.Event) (int, error) {
	for i := range tasks {
		if err := stored.CheckHookTask(&tasks[i]); err != nil {
			return 0, fmt.Errorf("sqlstore: finish hook tasks: %w", err)
		}
	}
	var n int
	err := s.inTxRetry(ctx, "finish hook tasks", func(t *txn) error {
		n = 0
		if token != "" {
			var done []any
			for i := range tasks {
				task := &tasks[i]
				if task.Complete {
					done = append(done, task.Grant.ID)
					continue
				}
				k, err := affected(t.exec(s.sql(qRetryHook), task.Done, task.Attempts, s.d.timeArg(task.NextAt), task.LastError, task.Grant.ID, token))
				if err != nil {
					return wrap(ctx, "finish hook tasks", err)
				}
				n += int(k)
			}
			for len(done) > 0 {
				c := min(len(done), maxTaskRowsPerStatement)
				q := s.sql(`DELETE FROM {p}hook_tasks WHERE lease_token = ? AND grant_id IN (` + placeholders(c) + `)`)
				k, err := affected(t.execDynamic(q, append([]any{token}, done[:c]...)...))
				if err != nil {
					return wrap(ctx, "finish hook tasks", err)
				}
				n += int(k)
				done = done[c:]
			}
		}
		return s.appendEvents(t, events)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
