package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
)

// txn is one write transaction. Its fixed statements go through the
// store's prepared statements, bound to the transaction's connection.
type txn struct {
	s   *Store
	ctx context.Context
	tx  *sql.Tx
	// missed are fixed statements that were not prepared yet; they ran
	// unprepared on the transaction's connection and are prepared after
	// the transaction ends. Preparing one on the *sql.DB inside the
	// transaction would need a second connection, and a pool whose
	// connections all hold such transactions (or SetMaxOpenConns(1))
	// would deadlock.
	missed []string
	// heads are the chain heads the transaction leaves (PostgreSQL, MySQL), put
	// into the store's head cache once it committed.
	heads map[string]head
	// eventIDs are the IDs of events whose insert failed on what may be a
	// duplicate key: once the transaction is rolled back, inTxOpts looks
	// for them in the trail (see eventConflict).
	eventIDs []uuid.UUID
}

// prepared returns the store's prepared statement for q bound to the
// transaction, or nil (q is then noted in missed).
func (t *txn) prepared(q string) *sql.Stmt {
	if st := t.s.cachedStmt(q); st != nil {
		return t.tx.StmtContext(t.ctx, st)
	}
	t.missed = append(t.missed, q)
	return nil
}

// exec runs a fixed statement (rendered).
func (t *txn) exec(q string, args ...any) (sql.Result, error) {
	if err := t.s.refuseNUL(args); err != nil {
		return nil, err
	}
	if st := t.prepared(q); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, q, args...)
}

// query runs a fixed query (rendered).
func (t *txn) query(q string, args ...any) (*sql.Rows, error) {
	if err := t.s.refuseNUL(args); err != nil {
		return nil, err
	}
	if st := t.prepared(q); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, q, args...)
}

// queryRow runs a fixed query (rendered) expected to return at most one
// row. The error is refuseNUL's.
func (t *txn) queryRow(q string, args ...any) (*sql.Row, error) {
	if err := t.s.refuseNUL(args); err != nil {
		return nil, err
	}
	if st := t.prepared(q); st != nil {
		return st.QueryRowContext(t.ctx, args...), nil
	}
	return t.tx.QueryRowContext(t.ctx, q, args...), nil
}

// execDynamic runs a statement whose text varies (IN lists, multi-row
// INSERTs); it is not kept prepared. q is rendered already.
func (t *txn) execDynamic(q string, args ...any) (sql.Result, error) {
	if err := t.s.refuseNUL(args); err != nil {
		return nil, err
	}
	return t.tx.ExecContext(t.ctx, q, args...)
}

// begin starts a write transaction. On SQLite it first makes sure the file
// is in WAL mode, then takes the write lock with the transaction's first
// statement, retrying while another connection holds it: from then on the
// transaction cannot fail with SQLITE_BUSY, and no caller code has run
// before the lock is held, so the retry is always safe.
func (s *Store) begin(ctx context.Context, opts *sql.TxOptions) (*txn, error) {
	if err := s.readyForUse(ctx); err != nil {
		return nil, err
	}
	if s.q.writeLock == "" {
		tx, err := s.db.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		return &txn{s: s, ctx: ctx, tx: tx}, nil
	}
	if err := s.ensureWAL(ctx); err != nil {
		return nil, err
	}
	var t *txn
	err := s.retryBusy(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, opts)
		if err != nil {
			return err
		}
		c := &txn{s: s, ctx: ctx, tx: tx}
		if _, err := c.exec(s.q.writeLock); err != nil {
			_ = tx.Rollback()
			return err
		}
		t = c
		return nil
	})
	return t, err
}

// inTx runs fn in a write transaction and commits it. An error of fn is
// returned unchanged (fn wraps its own database errors) after rolling back;
// errors of begin and commit are wrapped with op.
func (s *Store) inTx(ctx context.Context, op string, fn func(t *txn) error) error {
	return s.inTxOpts(ctx, op, nil, fn)
}

// inTxOpts is inTx with transaction options (nil: the dialect's default,
// txDefault).
func (s *Store) inTxOpts(ctx context.Context, op string, opts *sql.TxOptions, fn func(t *txn) error) error {
	if opts == nil {
		opts = s.d.txDefault
	}
	t, err := s.begin(ctx, opts)
	if err != nil {
		return wrap(ctx, op, err)
	}
	defer s.prepareMissed(ctx, t)
	// Ends the transaction when fn fails or panics (caller code, such as
	// an extra auditor, runs in it: its locks and connection must not be
	// held for as long as ctx lives); after Commit it does nothing.
	defer func() { _ = t.tx.Rollback() }()
	if err := fn(t); err != nil {
		if t.eventIDs != nil {
			_ = t.tx.Rollback()
			return s.eventConflict(ctx, op, t.eventIDs, err)
		}
		return err
	}
	if err := t.tx.Commit(); err != nil {
		return wrap(ctx, op+": commit", err)
	}
	for tenant, h := range t.heads {
		s.heads.Store(tenant, h)
	}
	return nil
}

// prepareMissed prepares, now that t no longer holds a connection, the
// statements t ran unprepared, for the next transactions. Failures are
// ignored: the statements then run unprepared again.
func (s *Store) prepareMissed(ctx context.Context, t *txn) {
	if ctx.Err() != nil {
		return
	}
	for _, q := range t.missed {
		_, _ = s.stmt(ctx, q)
	}
}

// maxDeadlockRetries bounds inTxRetry.
const maxDeadlockRetries = 5

// inTxRetry is inTx for transactions that call no caller code and may
// therefore be run again: a transaction the server aborted to break a
// deadlock is retried a few times, after a short random pause that grows
// with each retry (run again at once, the same transactions tend to meet
// in the same deadlock: MySQL under eight concurrent sweeps did, four
// times in a row).
func (s *Store) inTxRetry(ctx context.Context, op string, fn func(t *txn) error) error {
	var err error
	for i := 0; i <= maxDeadlockRetries; i++ {
		if i > 0 {
			pause := time.NewTimer(time.Duration(rand.Int64N(int64(time.Millisecond<<i))) + time.Millisecond)
			select {
			case <-ctx.Done():
				pause.Stop()
				return err
			case <-pause.C:
			}
		}
		err = s.inTx(ctx, op, fn)
		if err == nil || !isDeadlock(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// read runs a read-only operation, on SQLite retrying while the database is
// busy.
func (s *Store) read(ctx context.Context, fn func() error) error {
	if err := s.readyForUse(ctx); err != nil {
		return err
	}
	return s.whileBusy(ctx, fn)
}

// whileBusy runs fn, on SQLite retrying it while the database is busy
// (retryBusy), elsewhere once.
func (s *Store) whileBusy(ctx context.Context, fn func() error) error {
	if !s.d.busyRetry {
		return fn()
	}
	return s.retryBusy(ctx, fn)
}

// retryBusy calls fn until it returns something other than a busy/locked
// error, sleeping with jittered exponential backoff (1 ms doubling to
// 50 ms) between attempts, for at most the busy timeout and never past the
// context's end.
func (s *Store) retryBusy(ctx context.Context, fn func() error) error {
	const minDelay, maxDelay = time.Millisecond, 50 * time.Millisecond
	var deadline time.Time
	delay := minDelay
	for {
		err := fn()
		if !isBusy(err) {
			return err
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(s.busyTimeout)
		}
		if now.After(deadline) {
			return fmt.Errorf("database still busy after %s: %w", s.busyTimeout, err)
		}
		sleep := delay/2 + rand.N(delay/2+1)
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		delay = min(2*delay, maxDelay)
	}
}

// ensureWAL switches an SQLite database to WAL mode (once per Store; the
// mode is stored in the file), so that readers do not block writers and a
// commit never waits for readers. An in-memory database keeps its mode.
func (s *Store) ensureWAL(ctx context.Context) error {
	if s.d.Dialect != SQLite || s.walDone.Load() {
		return nil
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.walDone.Load() {
		return nil
	}
	err := s.retryBusy(ctx, func() error {
		var mode string
		return s.db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
	})
	if err != nil {
		return fmt.Errorf("set journal_mode=WAL: %w", err)
	}
	s.walDone.Store(true)
	return nil
}
