package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/stored"
)

// The audit trail is two tables: audit_events holds the events, keyed by
// (tenant_id, seq), and audit_heads holds each tenant's chain head (the seq
// and hash of its last event). Appending locks the head row inside the
// writing transaction, so the events of one tenant get consecutive Seq
// values and each Hash covers the previous one, whatever the concurrency.

// head is a tenant's chain head.
type head struct {
	seq  int64
	hash []byte
}

// maxEventsPerInsert bounds a multi-row INSERT (15 parameters per row stays
// far below every database's parameter limit).
const maxEventsPerInsert = 200

// Record implements supportaccess.Auditor: it appends e to its tenant's
// hash chain. An event without a Time is refused with
// supportaccess.ErrInvalidInput, one whose ID is already recorded with an
// error wrapping supportaccess.ErrConflict.
//
// Round trips: on PostgreSQL and MySQL/MariaDB 1 in the steady state — one
// statement (PostgreSQL) or one CALL of the audit_append procedure (MySQL)
// that moves the tenant's chain head from the head this store last wrote or
// read (compare-and-set) and inserts the chained event only if the head was
// still there (see audit_cas.go). When the head moved (another writer,
// replica or a grant change appended meanwhile) or is not known yet, Record
// falls back to a transaction that locks the head: BEGIN, lock head, INSERT
// event, UPDATE head, COMMIT (5 on PostgreSQL, 6 on MySQL, which first
// ensures the head row exists); every committed append (grant changes
// included) refreshes the cached head. SQLite always uses the transaction
// (6 statements, in-process calls).
func (s *Store) Record(ctx context.Context, e sa.Event) error {
	if err := stored.CheckEvent(&e); err != nil {
		return fmt.Errorf("sqlstore: record event: %w", err)
	}
	if s.casAppend() {
		if done, err := s.recordCAS(ctx, e); done || err != nil {
			return err
		}
	}
	return s.inTxRetry(ctx, "record event", func(t *txn) error {
		return s.appendEvents(t, []sa.Event{e})
	})
}

// AuditChain implements supportaccess.AuditChainReader: it returns the
// tenant's chain head (the Seq and Hash of its last event) and purge
// checkpoint from the audit_heads row the writers keep. A tenant without
// events has the zero state. One round trip.
func (s *Store) AuditChain(ctx context.Context, tenantID string) (sa.AuditChainState, error) {
	var h, cp head
	err := s.queryByID(ctx, s.sql(chainStateQuery), tenantID, func(scan func(...any) error) error {
		h, cp = head{}, head{}
		return scan(&h.seq, bytesScanner{&h.hash}, &cp.seq, bytesScanner{&cp.hash})
	})
	if errors.Is(err, sql.ErrNoRows) {
		return sa.AuditChainState{}, nil
	}
	if err != nil {
		return sa.AuditChainState{}, wrap(ctx, "audit chain", err)
	}
	var st sa.AuditChainState
	if h.seq > 0 {
		st.Head = sa.ChainLink{Seq: h.seq, Hash: h.hash}
	}
	if cp.seq > 0 {
		st.Checkpoint = sa.ChainLink{Seq: cp.seq, Hash: cp.hash}
	}
	return st, nil
}

// appendEvents chains events and stores them in t. An event without a
// Time, or with the ID of another of events, is refused with
// supportaccess.ErrInvalidInput; one with the ID of an event already
// recorded makes the transaction fail with an error wrapping
// supportaccess.ErrConflict (see eventConflict). The heads of the
// tenants involved are locked in tenant order, so transactions that append
// to several tenants cannot deadlock each other.
func (s *Store) appendEvents(t *txn, events []sa.Event) error {
	if len(events) == 0 {
		return nil
	}
	var tenants []string
	for i := range events {
		if err := stored.CheckEvent(&events[i]); err != nil {
			return fmt.Errorf("sqlstore: append events: %w", err)
		}
		tenants = append(tenants, events[i].TenantID)
	}
	if err := stored.DistinctEventIDs(events); err != nil {
		return fmt.Errorf("sqlstore: append events: %w", err)
	}
	slices.Sort(tenants)
	tenants = slices.Compact(tenants)
	heads, err := s.lockHeads(t, tenants)
	if err != nil {
		return wrap(t.ctx, "append events: lock chain head", err)
	}
	chained := make([]sa.Event, len(events))
	for i, e := range events {
		h := heads[e.TenantID]
		e.Seq = h.seq + 1
		e.Hash = e.ChainHash(h.hash)
		heads[e.TenantID] = head{seq: e.Seq, hash: e.Hash}
		chained[i] = e
	}
	per := maxEventsPerInsert
	if s.unnests(len(chained)) {
		per = maxUnnestEvents
	}
	for len(chained) > 0 {
		n := min(len(chained), per)
		if err := s.insertEvents(t, chained[:n]); err != nil {
			if mayBeDuplicateKey(err) {
				for i := range chained[:n] {
					t.eventIDs = append(t.eventIDs, chained[i].ID)
				}
			}
			return wrap(t.ctx, "append events", err)
		}
		chained = chained[n:]
	}
	if err := s.updateHeads(t, tenants, heads); err != nil {
		return wrap(t.ctx, "append events: update chain head", err)
	}
	if s.casAppend() {
		if t.heads == nil {
			t.heads = make(map[string]head, len(tenants))
		}
		for _, tenant := range tenants {
			t.heads[tenant] = heads[tenant]
		}
	}
	return nil
}

// eventIDQuery finds an event by ID.
const eventIDQuery = `SELECT 1 FROM {p}audit_events WHERE id = ?`

// eventConflict returns err, the error of a rolled-back transaction whose
// insert of the events with the given IDs failed on what may be a
// duplicate key, wrapping supportaccess.ErrConflict when one of those IDs is
// already in the trail: a retried Record, say, whose first attempt
// committed. Any other collision (the chain position: a head row changed
// behind the store's back) is left as it was reported.
func (s *Store) eventConflict(ctx context.Context, op string, ids []uuid.UUID, err error) error {
	for _, id := range ids {
		found, xerr := s.exists(ctx, s.sql(eventIDQuery), id)
		if xerr != nil {
			return err
		}
		if found {
			return fmt.Errorf("sqlstore: %s: event %s is already recorded: %w (%w)", op, id, sa.ErrConflict, err)
		}
	}
	return err
}

// lockHead returns the tenant's chain head, locked for the rest of t,
// creating the row on a tenant's first event.
func (s *Store) lockHead(t *txn, tenant string) (head, error) {
	if s.d.insertHeadFirst {
		if _, err := t.exec(s.q.insertHead, tenant, []byte{}); err != nil {
			return head{}, err
		}
	}
	for attempt := 0; ; attempt++ {
		var h head
		row, err := t.queryRow(s.q.lockHead, tenant)
		if err == nil {
			err = row.Scan(&h.seq, bytesScanner{&h.hash})
		}
		if err == nil {
			return h, nil
		}
		if !errors.Is(err, sql.ErrNoRows) || attempt > 0 {
			return head{}, err
		}
		if _, err := t.exec(s.q.insertHead, tenant, []byte{}); err != nil {
			return head{}, err
		}
	}
}

// insertEvents inserts chained events with one statement: on PostgreSQL,
// from minUnnestEvents events on, the array form insertEventsUnnest.
func (s *Store) insertEvents(t *txn, evs []sa.Event) error {
	if s.unnests(len(evs)) {
		return s.insertEventsUnnest(t, evs)
	}
	args := make([]any, 0, 15*len(evs))
	for i := range evs {
		e := &evs[i]
		var session any
		if v, ok := e.Attrs[sa.AttrSessionID]; ok {
			session = v
		}
		args = append(args, e.TenantID, e.Seq, e.ID, s.d.timeArg(e.Time), string(e.Type), uuidArg(e.GrantID),
			string(e.Actor.Kind), e.Actor.ID, e.Actor.Name, e.Reason, encodeAttrs(e.Attrs),
			bytesArg(e.Before), bytesArg(e.After), e.Hash, session)
	}
	if len(evs) == 1 {
		_, err := t.exec(s.q.insertEvent, args...)
		return err
	}
	row := "(" + placeholders(15) + ")"
	q := `INSERT INTO {p}audit_events (` + eventInsertCols + `) VALUES ` + strings.Repeat(row+", ", len(evs)-1) + row
	_, err := t.execDynamic(s.sql(q), args...)
	return err
}

// eventRow holds the scan destinations of one event row: the columns
// eventSelectCols names.
type eventRow struct {
	e         sa.Event
	typ, kind string
	attrs     nullText
	session   nullText
	occurred  timeScanner
	grant     textUUID
	dest      [15]any
	// retyped names a column that filters compare whose value had another
	// storage class than the store writes (SQLite only, see
	// sqliteFilterCol); respelled one that held an ID spelled otherwise
	// than the store writes it (see textUUID).
	retyped, respelled string
}

// eventSelectCols are the columns an event is read from: eventCols and
// session_id. A SELECT names them by the token {eventSelectCols} (see
// listTokens).
//
// Every column of audit_events that an AuditFilter condition compares must
// be read back into the event, so that a row changed behind the store's
// back breaks the event's hash (Event.ChainHash), and VerifyAudit reports
// it at that event, instead of only changing what the filters find.
// tenant_id, seq, event_type, grant_id, actor_kind, actor_id and
// occurred_at are fields of the event. session_id is a copy of
// Attrs[supportaccess.AttrSessionID], which the hash covers through attrs,
// not the copy: scan folds it back into Attrs (see foldSession).
const eventSelectCols = eventCols + `, session_id`

func (s *Store) newEventRow() *eventRow {
	r := &eventRow{}
	e := &r.e
	r.occurred = timeScanner{s.d.Dialect, &e.Time}
	r.grant = textUUID{&e.GrantID, "grant_id", &r.respelled}
	r.dest = [15]any{
		&e.TenantID, &e.Seq, &e.ID, &r.occurred, &r.typ, &r.grant,
		&r.kind, &e.Actor.ID, &e.Actor.Name, &e.Reason, &r.attrs,
		bytesScanner{(*[]byte)(&e.Before)}, bytesScanner{(*[]byte)(&e.After)}, bytesScanner{&e.Hash},
		&r.session,
	}
	if s.d.Dialect == SQLite {
		for _, col := range [...]struct {
			i       int
			name    string
			integer bool
		}{{0, "tenant_id", false}, {1, "seq", true}, {3, "occurred_at", true}, {4, "event_type", false}, {5, "grant_id", false},
			{6, "actor_kind", false}, {7, "actor_id", false}, {14, "session_id", false}} {
			r.dest[col.i] = sqliteFilterCol{next: r.dest[col.i], name: col.name, integer: col.integer, retyped: &r.retyped}
		}
	}
	return r
}

// sqliteFilterCol scans, on SQLite, a column of audit_events that filters
// compare. The store writes each as TEXT or as an INTEGER, but SQLite keeps
// whatever storage class an UPDATE writes: a BLOB of the same bytes
// (UPDATE … SET actor_id = CAST(actor_id AS BLOB)), or a time as TEXT
// ('2026-03-14 15:09:28.535897') or REAL in occurred_at, reads back as the
// same value, so the event's hash still matches, but compares unlike the
// store's values (a BLOB equals no text argument; TEXT sorts after every
// integer), which hides the event from filters. A value of another class
// is recorded in *retyped (scan then fails the row).
type sqliteFilterCol struct {
	next    any // *string, *int64 or a sql.Scanner
	name    string
	integer bool // the store writes an INTEGER (else TEXT)
	retyped *string
}

// Scan implements sql.Scanner. A value of the wrong storage class scans
// without error whatever it holds, so that the row's other columns are
// read to locate the event.
func (c sqliteFilterCol) Scan(src any) error {
	ok := src == nil // NULL where the schema allows it
	switch src.(type) {
	case int64:
		ok = c.integer
	case string:
		ok = !c.integer
	}
	if !ok {
		if *c.retyped == "" {
			*c.retyped = c.name
		}
		_ = c.scan(src)
		return nil
	}
	return c.scan(src)
}

// textUUID scans an ID column that filters compare. Where the store writes
// it as text (SQLite, MySQL), uuid.UUID's own Scan reads every spelling
// uuid.Parse does — UPDATE … SET grant_id = UPPER(grant_id) reads back as
// the same ID, so the event's hash still matches, but the filter's text
// comparison no longer finds it. A text value other than the ID's canonical
// spelling is read all the same (so that the row's other columns locate the
// event) and its column recorded in *respelled (scan then fails the row).
type textUUID struct {
	dst       *uuid.UUID
	name      string
	respelled *string
}

// Scan implements sql.Scanner.
func (c *textUUID) Scan(src any) error {
	var err error
	canonical := true
	switch v := src.(type) {
	case nil:
		*c.dst = uuid.Nil
		return nil
	case string:
		*c.dst, err = uuid.Parse(v)
		canonical = canonicalUUID(v)
	case []byte:
		*c.dst, err = uuid.ParseBytes(v)
		canonical = canonicalUUID(v)
	default:
		return c.dst.Scan(src)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: column %s: %w", c.name, err)
	}
	if !canonical && *c.respelled == "" {
		*c.respelled = c.name
	}
	return nil
}

// canonicalUUID reports whether s, which uuid.Parse accepted, is spelled
// as uuid.UUID.String writes it: 36 characters, lower case.
func canonicalUUID[T string | []byte](s T) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; 'A' <= c && c <= 'F' {
			return false
		}
	}
	return true
}

func (c sqliteFilterCol) scan(src any) error {
	switch d := c.next.(type) {
	case sql.Scanner:
		return d.Scan(src)
	case *string:
		switch v := src.(type) {
		case string:
			*d = v
			return nil
		case []byte:
			*d = string(v)
			return nil
		}
	case *int64:
		var n sql.NullInt64
		if err := n.Scan(src); err != nil {
			return err
		}
		if n.Valid {
			*d = n.Int64
			return nil
		}
	}
	return fmt.Errorf("sqlstore: cannot scan %T into column %s", src, c.name)
}

func (r *eventRow) scan(scan func(dest ...any) error) error {
	if err := scan(r.dest[:]...); err != nil {
		return err
	}
	// A ChainBreak, like VerifyAudit's, locating the changed event.
	changed := func(col, what string) error {
		return &sa.ChainBreak{TenantID: r.e.TenantID, Kind: sa.BreakHashMismatch, Seq: r.e.Seq, EventID: r.e.ID,
			Detail: "column " + col + " was changed after the event was recorded: it holds " + what + ", which filters do not match"}
	}
	if r.retyped != "" {
		return changed(r.retyped, "a value of another storage class than the store writes (a BLOB, or TEXT or REAL where it writes an integer)")
	}
	if r.respelled != "" {
		return changed(r.respelled, "an ID spelled otherwise than the store writes it (upper case, braces, a urn:uuid: prefix, no dashes)")
	}
	r.e.Type = sa.EventType(r.typ)
	r.e.Actor.Kind = sa.ActorKind(r.kind)
	if r.attrs.valid {
		m, err := decodeAttrs(r.attrs.s)
		if err != nil {
			return err
		}
		r.e.Attrs = m
	}
	r.e.Attrs = foldSession(r.e.Attrs, r.session)
	return nil
}

// foldSession returns attrs with the session_id column col folded in: the
// Attrs[supportaccess.AttrSessionID] the row's session_id says the event
// has (col NULL: none). Both always agree as the store writes them; when
// they do not, the row was changed behind the store's back, and the event
// is returned as the SessionID filter saw it — the filter's answers stay
// consistent with AuditFilter.Match and memstore, and the event no longer
// matches its Hash, so VerifyAudit reports the change at this event. The
// map is changed in place (it is the row's own).
func foldSession(attrs map[string]string, col nullText) map[string]string {
	v, ok := attrs[sa.AttrSessionID]
	switch {
	case ok == col.valid && v == col.s:
	case !col.valid:
		delete(attrs, sa.AttrSessionID)
	default:
		if attrs == nil {
			attrs = make(map[string]string, 1)
		}
		attrs[sa.AttrSessionID] = col.s
	}
	return attrs
}

// Events implements supportaccess.AuditLog: one query that filters,
// orders and pages (f.After, keyset, see auditKeyset) in the database — by
// (occurred_at, tenant_id, seq) or, for AuditByChain, by (tenant_id, seq),
// each page an index range. One round trip. A row changed behind the
// store's back so that it cannot be read back as the store wrote it (a
// value of another type or storage class, malformed attrs) fails the call
// with a *supportaccess.ChainBreak at its event, which wraps ErrTampered.
func (s *Store) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	if err := stored.CheckFilterTypes(f); err != nil {
		return nil, fmt.Errorf("sqlstore: events: %w", err)
	}
	q, args := s.eventsQuery(f)
	return queryAll(ctx, s, "events", q, args, func(scan func(...any) error) (sa.Event, error) {
		r := s.newEventRow()
		err := r.scan(scan)
		if err != nil && ctx.Err() == nil {
			err = r.undecodable(err)
		}
		return r.e, err
	})
}

// undecodable turns err, a failure to read back a row of audit_events
// (while the query's context is alive: not a cancellation), into a
// ChainBreak at the row's event when its tenant and seq were read: every
// row the store writes reads back, so one that does not was changed
// behind the store's back, and VerifyAudit reports it as tampering
// (ErrTampered) at that event, not as the store being unavailable.
func (r *eventRow) undecodable(err error) error {
	var brk *sa.ChainBreak
	if errors.As(err, &brk) || r.e.TenantID == "" || r.e.Seq == 0 {
		return err
	}
	return &sa.ChainBreak{TenantID: r.e.TenantID, Kind: sa.BreakHashMismatch, Seq: r.e.Seq, EventID: r.e.ID,
		Detail: "the stored row cannot be read back (" + err.Error() + "): it was changed after the event was recorded"}
}

// eventsQuery returns the rendered SELECT of Events for f and its
// arguments.
func (s *Store) eventsQuery(f sa.AuditFilter) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if f.TenantID != "" {
		add(`tenant_id = ?`, f.TenantID)
	}
	if f.ActorKind != "" {
		add(`actor_kind = ?`, string(f.ActorKind))
	}
	if f.ActorID != "" {
		add(`actor_id = ?`, f.ActorID)
	}
	if len(f.Types) > 0 {
		// Each type once, as for ListFilter.Statuses: one placeholder per
		// distinct type.
		var types []any
		for _, t := range slices.Compact(slices.Sorted(slices.Values(f.Types))) {
			types = append(types, string(t))
		}
		add(`event_type IN (`+placeholders(len(types))+`)`, types...)
	}
	if f.GrantID != uuid.Nil {
		add(`grant_id = ?`, f.GrantID)
	}
	if f.SessionID != "" {
		add(`session_id = ?`, f.SessionID)
	}
	f.Since, f.Until = ceilMicro(f.Since), ceilMicro(f.Until)
	if !f.Since.IsZero() {
		add(`occurred_at `+s.d.notBefore(f.Since), s.d.timeArg(f.Since))
	}
	if !f.Until.IsZero() && !afterMax(f.Until) { // after maxTime: every event is before it
		add(`occurred_at < ?`, s.d.timeArg(f.Until))
	}
	order, after, afterArgs := s.auditKeyset(f)
	if after != "" {
		add(after, afterArgs...)
	}
	q := `SELECT {eventSelectCols} FROM {p}audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += order
	q, args = s.limit(q, args, f.Limit)
	return s.sql(q), args
}
