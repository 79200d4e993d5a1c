package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

// Retention and paging of the audit trail. PurgeAudit deletes the oldest
// events of a tenant's chain and keeps the last deleted event's seq and
// hash in the tenant's audit_heads row (checkpoint_seq, checkpoint_hash,
// schema version 2), from which VerifyAudit continues the chain.

var (
	_ sa.AuditChainReader = (*Store)(nil)
	_ sa.AuditPurger      = (*Store)(nil)
)

// chainStateQuery reads a tenant's chain head and checkpoint.
const chainStateQuery = `SELECT seq, chain_hash, checkpoint_seq, checkpoint_hash FROM {p}audit_heads WHERE tenant_id = ?`

// auditKeyset returns the ORDER BY clause of an Events query and the
// condition (with its arguments) that starts the page after f.After. The
// shapes make every page one index range on every database:
//
//   - one tenant (f.TenantID): the tenant's (tenant_id, seq) key in chain
//     order, its (tenant_id, occurred_at, seq) index in time order; the
//     cursor's tenant is compared here, so the condition only bounds seq
//     or (occurred_at, seq);
//   - all tenants: PostgreSQL and SQLite compare row values,
//     (occurred_at, tenant_id, seq) > (?, ?, ?), which they answer as an
//     index range; MySQL/MariaDB do not (they scan from the start) but do
//     answer the equivalent OR form as a range.
//
// Tenant IDs compare in byte order (COLLATE "C", VARBINARY, SQLite's
// BINARY), as Go's < does.
func (s *Store) auditKeyset(f sa.AuditFilter) (order, cond string, args []any) {
	rows := s.d.Dialect != MySQL
	c := f.After
	if f.Order == sa.AuditByChain {
		if f.TenantID != "" {
			// ORDER BY seq, not tenant_id, seq: MariaDB sorts the whole
			// range for the latter.
			order = ` ORDER BY seq`
			switch {
			case c == nil || c.TenantID < f.TenantID:
			case c.TenantID > f.TenantID:
				cond = `1 = 0`
			default:
				cond, args = `seq > ?`, []any{c.Seq}
			}
			return order, cond, args
		}
		order = ` ORDER BY tenant_id, seq`
		switch {
		case c == nil:
		case rows:
			cond, args = `(tenant_id, seq) > (?, ?)`, []any{c.TenantID, c.Seq}
		default:
			cond, args = `(tenant_id > ? OR (tenant_id = ? AND seq > ?))`, []any{c.TenantID, c.TenantID, c.Seq}
		}
		return order, cond, args
	}
	if c != nil && !c.Time.Truncate(time.Microsecond).Equal(c.Time) {
		// Between two microseconds: every stored event at the later one
		// or after it sorts after the cursor, whatever its tenant and seq.
		c = &sa.AuditCursor{Time: ceilMicro(c.Time)}
	}
	if c != nil && c.Time.Truncate(time.Microsecond).Before(minTime) {
		// Every stored event has a Time, from minTime on, so every one
		// is after it (timeArg would clamp it onto minTime).
		c = nil
	}
	if f.TenantID != "" {
		order = ` ORDER BY occurred_at, seq`
		if c == nil {
			return order, "", nil
		}
		if afterMax(c.Time) {
			return order, `1 = 0`, nil // no stored event is after it
		}
		t := s.d.timeArg(c.Time)
		switch {
		case c.TenantID < f.TenantID:
			cond, args = `occurred_at >= ?`, []any{t}
		case c.TenantID > f.TenantID:
			cond, args = `occurred_at > ?`, []any{t}
		case rows:
			cond, args = `(occurred_at, seq) > (?, ?)`, []any{t, c.Seq}
		default:
			cond, args = `occurred_at >= ? AND (occurred_at > ? OR seq > ?)`, []any{t, t, c.Seq}
		}
		return order, cond, args
	}
	order = ` ORDER BY occurred_at, tenant_id, seq`
	switch {
	case c == nil:
	case afterMax(c.Time):
		cond = `1 = 0` // no stored event is after it
	case rows:
		cond, args = `(occurred_at, tenant_id, seq) > (?, ?, ?)`, []any{s.d.timeArg(c.Time), c.TenantID, c.Seq}
	default:
		t := s.d.timeArg(c.Time)
		cond = `(occurred_at > ? OR (occurred_at = ? AND (tenant_id > ? OR (tenant_id = ? AND seq > ?))))`
		args = []any{t, t, c.TenantID, c.TenantID, c.Seq}
	}
	return order, cond, args
}

// PurgeAudit implements supportaccess.AuditPurger in one transaction that
// holds the tenant's chain head locked, so that nothing is appended
// meanwhile: it finds the first event of the chain that is not older than
// before (MIN(seq) over the tenant's events), deletes the events before it,
// calls event, saves the checkpoint and appends the event. An error from
// event rolls everything back. Round trips (PostgreSQL): 9.
func (s *Store) PurgeAudit(ctx context.Context, tenantID string, before time.Time, event func(sa.AuditPurge) (sa.Event, error)) (sa.AuditPurge, error) {
	before = ceilMicro(before) // see ceilMicro
	var res sa.AuditPurge
	err := s.inTx(ctx, "purge audit", func(t *txn) error {
		res = sa.AuditPurge{}
		h, err := s.lockHead(t, tenantID)
		if err != nil {
			return wrap(ctx, "purge audit: lock chain head", err)
		}
		row, err := t.queryRow(s.sql(`SELECT checkpoint_seq, checkpoint_hash FROM {p}audit_heads WHERE tenant_id = ?`), tenantID)
		if err == nil {
			err = row.Scan(&res.Previous.Seq, bytesScanner{&res.Previous.Hash})
		}
		if err != nil {
			return wrap(ctx, "purge audit: read checkpoint", err)
		}
		if res.Previous.Seq == 0 {
			res.Previous = sa.ChainLink{}
		}
		var first sql.NullInt64
		row, err = t.queryRow(s.sql(`SELECT MIN(seq) FROM {p}audit_events WHERE tenant_id = ? AND occurred_at `+s.d.notBefore(before)),
			tenantID, s.d.timeArg(before))
		if err == nil {
			err = row.Scan(&first)
		}
		if err != nil {
			return wrap(ctx, "purge audit: find the first event to keep", err)
		}
		cut := h.seq // every event is older
		switch {
		case before.IsZero():
			cut = 0 // no event is older than the zero time (timeArg made it NULL)
		case first.Valid:
			cut = first.Int64 - 1
		}
		if cut <= res.Previous.Seq {
			return nil
		}
		// The last event to delete: seq cut itself unless rows are missing.
		var last head
		row, err = t.queryRow(s.sql(`SELECT seq, chain_hash FROM {p}audit_events WHERE tenant_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1`),
			tenantID, cut)
		if err == nil {
			err = row.Scan(&last.seq, bytesScanner{&last.hash})
		}
		if errors.Is(err, sql.ErrNoRows) || err == nil && last.seq <= res.Previous.Seq {
			return nil
		}
		if err != nil {
			return wrap(ctx, "purge audit: read the last event to delete", err)
		}
		res.Checkpoint = sa.ChainLink{Seq: last.seq, Hash: last.hash}
		res.Deleted, err = affected(t.exec(s.sql(`DELETE FROM {p}audit_events WHERE tenant_id = ? AND seq <= ?`), tenantID, last.seq))
		if err != nil {
			return wrap(ctx, "purge audit: delete", err)
		}
		ev, err := event(res)
		if err != nil {
			return err
		}
		if _, err := t.exec(s.sql(`UPDATE {p}audit_heads SET checkpoint_seq = ?, checkpoint_hash = ? WHERE tenant_id = ?`),
			last.seq, last.hash, tenantID); err != nil {
			return wrap(ctx, "purge audit: save checkpoint", err)
		}
		return s.appendEvents(t, []sa.Event{ev})
	})
	if err != nil {
		return sa.AuditPurge{}, err
	}
	return res, nil
}
