package sqlstore

import (
	"context"
	"errors"

	sa "github.com/supportaccess/supportaccess"
)

// Record's one-round-trip append: from the chain head this store cached
// for the tenant (s.heads, refreshed by every committed append), it chains
// the event in Go and sends one statement that moves the head by
// compare-and-set and inserts the event only if the head was still there —
// both or neither. The head compared is the whole link, sequence number
// and hash: after the database came back without its last commits (a
// failover to a lagging replica, a point-in-time restore) another writer
// may have appended at the cached sequence number with another hash, and
// an append chained from the cached hash would fork the chain. A miss
// (another writer, replica or grant change moved the head; or the head is
// not cached yet) changes nothing and Record takes the locking
// transaction, which refreshes the cache.

// casAppend reports whether the dialect has the one-round-trip append:
// PostgreSQL (a data-modifying CTE) and MySQL/MariaDB (the stored
// procedure {p}audit_append of migration 6, which replaced migration 4's). SQLite runs in-process, where
// round trips cost little, and always takes the transaction.
func (s *Store) casAppend() bool { return s.d.Dialect == Postgres || s.d.Dialect == MySQL }

// recordCASQuery is PostgreSQL's one-statement append (arguments: new seq,
// new hash, tenant, expected seq and hash, then the event's other columns): the
// UPDATE of the head is the condition of the INSERT, so both happen or
// neither does, and the head's row lock orders concurrent writers.
const recordCASQuery = `WITH h AS (UPDATE {p}audit_heads SET seq = ?, chain_hash = ? WHERE tenant_id = ? AND seq = ? AND chain_hash = ? ` +
	`RETURNING tenant_id, seq, chain_hash) ` +
	`INSERT INTO {p}audit_events (tenant_id, seq, chain_hash, id, occurred_at, event_type, grant_id, ` +
	`actor_kind, actor_id, actor_name, reason, attrs, before_value, after_value, session_id) ` +
	`SELECT h.tenant_id, h.seq, h.chain_hash, CAST(? AS uuid), CAST(? AS timestamptz), CAST(? AS text), CAST(? AS uuid), ` +
	`CAST(? AS text), CAST(? AS text), CAST(? AS text), CAST(? AS text), CAST(? AS text), CAST(? AS bytea), CAST(? AS bytea), ` +
	`CAST(? AS text) FROM h`

// recordCASCall is MySQL's: one CALL of the procedure of migration 6
// (arguments: tenant, expected seq and hash, new hash, then the event's
// other columns), which runs the UPDATE of the head and, if it changed the
// row, the INSERT in one transaction and returns one row, applied (1 or 0).
const recordCASCall = `CALL {p}audit_append(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// recordCAS tries the one-round-trip append from the cached head of e's
// tenant. done reports whether e was recorded; false with a nil error means
// the head is unknown or moved (or, on MySQL, the procedure is missing),
// and the caller must take the locking path.
func (s *Store) recordCAS(ctx context.Context, e sa.Event) (done bool, err error) {
	v, ok := s.heads.Load(e.TenantID)
	if !ok {
		return false, nil
	}
	h := v.(head)
	e.Seq = h.seq + 1
	e.Hash = e.ChainHash(h.hash)
	var session any
	if v, ok := e.Attrs[sa.AttrSessionID]; ok {
		session = v
	}
	applied := false
	err = s.read(ctx, func() error {
		if s.d.Dialect == MySQL {
			st, err := s.stmt(ctx, s.sql(recordCASCall))
			if err != nil {
				return err
			}
			return st.QueryRowContext(ctx, e.TenantID, h.seq, h.hash, e.Hash,
				e.ID, s.d.timeArg(e.Time), string(e.Type), uuidArg(e.GrantID), string(e.Actor.Kind), e.Actor.ID, e.Actor.Name,
				e.Reason, encodeAttrs(e.Attrs), bytesArg(e.Before), bytesArg(e.After), session).Scan(&applied)
		}
		st, err := s.stmt(ctx, s.sql(recordCASQuery))
		if err != nil {
			return err
		}
		n, err := affected(st.ExecContext(ctx, e.Seq, e.Hash, e.TenantID, h.seq, h.hash,
			e.ID, s.d.timeArg(e.Time), string(e.Type), uuidArg(e.GrantID), string(e.Actor.Kind), e.Actor.ID, e.Actor.Name,
			e.Reason, encodeAttrs(e.Attrs), bytesArg(e.Before), bytesArg(e.After), session))
		applied = n == 1
		return err
	})
	if err != nil {
		s.heads.Delete(e.TenantID)
		if !casFallback(s.d.Dialect, err) {
			return false, wrap(ctx, "record event", err)
		}
		if s.d.Dialect == MySQL && !mysqlBeforeCommit(err) {
			// A server error can also come after the procedure's COMMIT (a
			// KILL QUERY or statement timeout landing between the COMMIT
			// and the end of the CALL): then the event is there, as this
			// call chained it, and must not be appended again.
			committed, cerr := s.appendedAs(ctx, e)
			if cerr != nil {
				return false, wrap(ctx, "record event", errors.Join(err, cerr))
			}
			if committed {
				return true, nil
			}
		}
		return false, nil // nothing was written: take the locking path
	}
	if !applied {
		s.heads.Delete(e.TenantID)
		return false, nil
	}
	s.heads.Store(e.TenantID, head{seq: e.Seq, hash: e.Hash})
	return true, nil
}

// casFallback reports whether the append failed without writing anything
// in a way the locking transaction handles or reports as it always does.
// On PostgreSQL: a deadlock or serialisation failure, or a duplicate key.
// On MySQL every error the server returns qualifies: the procedure's
// handler rolls its transaction back before raising it again (or the CALL
// failed before it started: a value too long for its parameter, no such
// procedure, no EXECUTE privilege — a database migrated by a tool that did
// not create it, where every Record then costs the failed CALL and the
// transaction). A server error that may have come after the COMMIT is
// checked first (mysqlBeforeCommit, appendedAs), so a committed event is
// neither appended twice nor reported as failed. An error without a server
// error number (a lost connection) is returned: the event may have been
// committed.
func casFallback(d Dialect, err error) bool {
	if d == MySQL {
		return mysqlNumber(err) != 0
	}
	return isDeadlock(err) || isUniqueViolation(err)
}

// appendedAsQuery finds an event by ID at the chain position and hash a
// compare-and-set append gave it.
const appendedAsQuery = `SELECT 1 FROM {p}audit_events WHERE id = ? AND tenant_id = ? AND seq = ? AND chain_hash = ?`

// appendedAs reports whether e (chained by recordCAS) is in the trail
// exactly as that append wrote it — not merely an event with the same ID,
// which the locking path must still refuse as a duplicate.
func (s *Store) appendedAs(ctx context.Context, e sa.Event) (bool, error) {
	return s.exists(ctx, s.sql(appendedAsQuery), e.ID, e.TenantID, e.Seq, e.Hash)
}

// mysqlBeforeCommit reports a MySQL error that the CALL of audit_append
// can only raise before its COMMIT: the procedure could not start (missing,
// not executable, wrong arguments, a value too long for its parameter) or
// its INSERT or lock failed inside the transaction its handler rolls back.
// Any other server error (an interrupted statement, a timeout) may have
// come after the COMMIT.
func mysqlBeforeCommit(err error) bool {
	switch mysqlNumber(err) {
	case 1305, // ER_SP_DOES_NOT_EXIST
		1370, // ER_PROCACCESS_DENIED_ERROR
		1318, // ER_SP_WRONG_NO_OF_ARGS
		1406, // ER_DATA_TOO_LONG
		1048, // ER_BAD_NULL_ERROR
		1062, // ER_DUP_ENTRY
		1213, // ER_LOCK_DEADLOCK
		1205: // ER_LOCK_WAIT_TIMEOUT
		return true
	}
	return false
}
