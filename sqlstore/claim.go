package sqlstore

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
)

// Batched chain-head work of appendEvents. An append to one tenant (every
// Grant, Revoke, Record…) locks and updates that tenant's head with the
// fixed, prepared statements of lockHead and updateHead. An append to
// several tenants (a sweep's batch of expiries) does the same for all of
// them with a fixed number of statements: create the missing head rows,
// lock all heads in one ordered SELECT … FOR UPDATE, and write them back in
// one UPDATE.

// maxHeadsPerStatement bounds the tenants of one batched head statement
// (3 parameters per tenant in the update).
const maxHeadsPerStatement = 1000

// lockHeads returns the chain heads of tenants (sorted, distinct), locked
// for the rest of t, creating missing head rows (createHeads, then
// lockExisting). All rows are created before any is locked, each phase in
// tenant order, so that transactions locking overlapping sets of heads
// cannot deadlock each other, however many statements a phase takes.
//
// Why the phases must not interleave per statement: on PostgreSQL a
// created row is locked by its creator until commit, while an existing one
// is locked only by the SELECT. Were a second chunk's rows created after
// the first chunk's existing rows were locked, transaction A could hold its
// new row b and wait in its SELECT for a, which B locked in its first
// chunk, while B waits to create b in its second chunk: a deadlock
// (TestLockHeadsPhasesDoNotDeadlock). With the phases apart, a transaction
// holds no existing row while it creates rows; whoever creates a row first
// owns it, and the other waits for it before locking anything.
func (s *Store) lockHeads(t *txn, tenants []string) (map[string]head, error) {
	if len(tenants) == 1 {
		h, err := s.lockHead(t, tenants[0])
		if err != nil {
			return nil, err
		}
		return map[string]head{tenants[0]: h}, nil
	}
	if err := s.createHeads(t, tenants); err != nil {
		return nil, err
	}
	return s.lockExisting(t, tenants)
}

// headChunks calls fn with tenants in consecutive chunks of at most
// maxHeadsPerStatement, stopping at the first error.
func headChunks(tenants []string, fn func(chunk []string) error) error {
	for rest := tenants; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxHeadsPerStatement)]
		rest = rest[len(chunk):]
		if err := fn(chunk); err != nil {
			return err
		}
	}
	return nil
}

// createHeads creates the missing head rows of tenants (sorted, distinct),
// in tenant order, leaving existing ones unchanged; the first phase of
// lockHeads.
func (s *Store) createHeads(t *txn, tenants []string) error {
	return headChunks(tenants, func(chunk []string) error {
		args := make([]any, 0, 2*len(chunk))
		for _, tenant := range chunk {
			args = append(args, tenant, []byte{})
		}
		_, err := t.execDynamic(s.sql(s.d.insertHeads(len(chunk))), args...)
		return err
	})
}

// lockExisting locks the head rows of tenants (sorted, distinct; all of
// them exist) in tenant order and returns them; the second phase of
// lockHeads.
func (s *Store) lockExisting(t *txn, tenants []string) (map[string]head, error) {
	heads := make(map[string]head, len(tenants))
	err := headChunks(tenants, func(chunk []string) error {
		args := make([]any, 0, len(chunk))
		for _, tenant := range chunk {
			args = append(args, tenant)
		}
		q := s.sql(`SELECT tenant_id, seq, chain_hash FROM {p}audit_heads WHERE tenant_id IN (` +
			placeholders(len(chunk)) + `) ORDER BY tenant_id` + s.d.forUpdate)
		rows, err := t.tx.QueryContext(t.ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tenant string
			var h head
			if err := rows.Scan(&tenant, &h.seq, bytesScanner{&h.hash}); err != nil {
				return err
			}
			heads[tenant] = h
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	for _, tenant := range tenants {
		if _, ok := heads[tenant]; !ok {
			// Cannot happen: createHeads made the row, and none is ever deleted.
			return nil, errMissingHead(tenant)
		}
	}
	return heads, nil
}

// updateHeads writes the heads of tenants (locked by lockHeads) back: one
// statement for a single tenant (updateHead), else one per
// maxHeadsPerStatement tenants.
func (s *Store) updateHeads(t *txn, tenants []string, heads map[string]head) error {
	if len(tenants) == 1 {
		h := heads[tenants[0]]
		_, err := t.exec(s.q.updateHead, h.seq, h.hash, tenants[0])
		return err
	}
	return headChunks(tenants, func(chunk []string) error {
		args := make([]any, 0, 3*len(chunk))
		for _, tenant := range chunk {
			h := heads[tenant]
			args = append(args, tenant, h.seq, h.hash)
		}
		_, err := t.execDynamic(s.sql(s.d.updateHeads(len(chunk))), args...)
		return err
	})
}

// insertHeads is the statement that creates the missing head rows of n
// tenants (arguments: tenant, empty hash, per tenant) and leaves existing
// ones unchanged; for n = 1 it is lockHead's queries.insertHead.
func (d *dialect) insertHeads(n int) string {
	rows := strings.Repeat("(?, 0, ?), ", n-1) + "(?, 0, ?)"
	q := `INSERT INTO {p}audit_heads (tenant_id, seq, chain_hash) VALUES ` + rows
	if d.Dialect == MySQL {
		return q + ` ON DUPLICATE KEY UPDATE seq = seq`
	}
	return q + ` ON CONFLICT (tenant_id) DO NOTHING`
}

// updateHeads is the statement that sets the heads of n tenants (arguments:
// tenant, seq, hash, per tenant), all of whose rows exist: an UPDATE … FROM
// (VALUES …) on PostgreSQL, an INSERT … ON DUPLICATE KEY UPDATE on
// MySQL/MariaDB and an UPDATE … FROM (VALUES …) on SQLite, whose VALUES
// columns are column1, column2, column3.
func (d *dialect) updateHeads(n int) string {
	switch d.Dialect {
	case Postgres:
		rows := strings.Repeat("(CAST(? AS text), CAST(? AS bigint), CAST(? AS bytea)), ", n-1) +
			"(CAST(? AS text), CAST(? AS bigint), CAST(? AS bytea))"
		return `UPDATE {p}audit_heads AS h SET seq = v.seq, chain_hash = v.chain_hash FROM (VALUES ` + rows +
			`) AS v (tenant_id, seq, chain_hash) WHERE h.tenant_id = v.tenant_id`
	case MySQL:
		rows := strings.Repeat("(?, ?, ?), ", n-1) + "(?, ?, ?)"
		return `INSERT INTO {p}audit_heads (tenant_id, seq, chain_hash) VALUES ` + rows +
			` ON DUPLICATE KEY UPDATE seq = VALUES(seq), chain_hash = VALUES(chain_hash)`
	}
	rows := strings.Repeat("(?, ?, ?), ", n-1) + "(?, ?, ?)"
	return `UPDATE {p}audit_heads SET seq = v.column2, chain_hash = v.column3 FROM (VALUES ` + rows +
		`) AS v WHERE {p}audit_heads.tenant_id = v.column1`
}

// errMissingHead reports a head row that lockHeads created but did not
// find.
func errMissingHead(tenant string) error {
	return fmt.Errorf("chain head of tenant %q not found", tenant)
}

// insertEventsUnnestQuery is PostgreSQL's INSERT of many chained events:
// one array parameter per column (each a text array literal, see
// arrayLiteral), turned into rows by unnest. The server parses 15
// parameters instead of 15 per event, and the statement text is the same
// for any number of events, so it stays prepared.
const insertEventsUnnestQuery = `INSERT INTO {p}audit_events (` + eventInsertCols + `) ` +
	`SELECT * FROM unnest(CAST(? AS text[]), CAST(? AS bigint[]), CAST(? AS uuid[]), CAST(? AS timestamptz[]), ` +
	`CAST(? AS text[]), CAST(? AS uuid[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]), ` +
	`CAST(? AS text[]), CAST(? AS bytea[]), CAST(? AS bytea[]), CAST(? AS bytea[]), CAST(? AS text[]))`

// minUnnestEvents is the number of events from which PostgreSQL appends
// with insertEventsUnnestQuery; fewer go through the multi-row VALUES.
const minUnnestEvents = 8

// maxUnnestEvents bounds the events of one insertEventsUnnestQuery.
const maxUnnestEvents = 5000

// unnests reports whether n events are inserted with
// insertEventsUnnestQuery (PostgreSQL, at least minUnnestEvents).
func (s *Store) unnests(n int) bool {
	return s.q.insertEventsUnnest != "" && n >= minUnnestEvents
}

// insertEventsUnnest inserts chained events with insertEventsUnnestQuery.
func (s *Store) insertEventsUnnest(t *txn, evs []sa.Event) error {
	var cols [15]arrayLiteral
	for i := range evs {
		e := &evs[i]
		cols[0].text(e.TenantID)
		cols[1].raw(strconv.FormatInt(e.Seq, 10))
		cols[2].raw(e.ID.String())
		cols[3].raw(e.Time.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.999999Z07:00"))
		cols[4].text(string(e.Type))
		if e.GrantID == uuid.Nil {
			cols[5].null()
		} else {
			cols[5].raw(e.GrantID.String())
		}
		cols[6].text(string(e.Actor.Kind))
		cols[7].text(e.Actor.ID)
		cols[8].text(e.Actor.Name)
		cols[9].text(e.Reason)
		if a, ok := encodeAttrs(e.Attrs).(string); ok {
			cols[10].text(a)
		} else {
			cols[10].null()
		}
		cols[11].bytes(e.Before)
		cols[12].bytes(e.After)
		cols[13].bytes(e.Hash)
		if v, ok := e.Attrs[sa.AttrSessionID]; ok {
			cols[14].text(v)
		} else {
			cols[14].null()
		}
	}
	args := make([]any, len(cols))
	for i := range cols {
		args[i] = cols[i].String()
	}
	_, err := t.exec(s.q.insertEventsUnnest, args...)
	return err
}

// arrayLiteral builds the text form of a PostgreSQL one-dimensional array.
type arrayLiteral struct {
	b strings.Builder
}

func (a *arrayLiteral) sep() {
	if a.b.Len() == 0 {
		a.b.WriteByte('{')
	} else {
		a.b.WriteByte(',')
	}
}

// null appends NULL.
func (a *arrayLiteral) null() {
	a.sep()
	a.b.WriteString("NULL")
}

// raw appends v, which needs no quoting (numbers, UUIDs, times without
// spaces).
func (a *arrayLiteral) raw(v string) {
	a.sep()
	a.b.WriteString(v)
}

// text appends v quoted: backslash and double quote are escaped with a
// backslash.
func (a *arrayLiteral) text(v string) {
	a.sep()
	a.b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' {
			a.b.WriteByte('\\')
		}
		a.b.WriteByte(v[i])
	}
	a.b.WriteByte('"')
}

// bytes appends v as a bytea in hex form (nil: NULL).
func (a *arrayLiteral) bytes(v []byte) {
	if v == nil {
		a.null()
		return
	}
	a.sep()
	a.b.WriteString(`"\\x`)
	var buf [64]byte
	for len(v) > 0 {
		n := min(len(v), len(buf)/2)
		hex.Encode(buf[:], v[:n])
		a.b.Write(buf[:2*n])
		v = v[n:]
	}
	a.b.WriteByte('"')
}

// String returns the literal ("{}" for no elements).
func (a *arrayLiteral) String() string {
	if a.b.Len() == 0 {
		return "{}"
	}
	return a.b.String() + "}"
}
