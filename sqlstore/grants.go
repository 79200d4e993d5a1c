package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/stored"
)

// grantRow holds the scan destinations of one grant row.
type grantRow struct {
	g                                 sa.Grant
	grantees, scopes                  nullText
	grantedKind, revokedKind          string
	created, starts, expires, revoked timeScanner
	dest                              [18]any
}

func (s *Store) newGrantRow() *grantRow {
	r := &grantRow{}
	g := &r.g
	d := s.d.Dialect
	r.created = timeScanner{d, &g.CreatedAt}
	r.starts = timeScanner{d, &g.StartsAt}
	r.expires = timeScanner{d, &g.ExpiresAt}
	r.revoked = timeScanner{d, &g.RevokedAt}
	r.dest = [18]any{
		&g.ID, &g.TenantID, &r.grantees, &r.scopes, &g.Reason, &g.TicketRef,
		&r.grantedKind, &g.GrantedBy.ID, &g.GrantedBy.Name, &g.RequestID,
		&r.created, &r.starts, &r.expires, &r.revoked,
		&r.revokedKind, &g.RevokedBy.ID, &g.RevokedBy.Name, &g.RevokeReason,
	}
	return r
}

// scan reads one row (columns grantCols) with scan and decodes it.
func (r *grantRow) scan(scan func(dest ...any) error) error {
	if err := scan(r.dest[:]...); err != nil {
		return err
	}
	g := &r.g
	g.GrantedBy.Kind = sa.ActorKind(r.grantedKind)
	g.RevokedBy.Kind = sa.ActorKind(r.revokedKind)
	var err error
	if r.grantees.valid {
		if g.Grantees, err = decodeList[string](r.grantees.s); err != nil {
			return err
		}
	}
	if r.scopes.valid {
		if g.Scopes, err = decodeList[sa.Scope](r.scopes.s); err != nil {
			return err
		}
	}
	return nil
}

// grantArgs are the values of grantCols for g.
func (s *Store) grantArgs(g *sa.Grant) []any {
	t := s.d.timeArg
	return []any{
		g.ID, g.TenantID, encodeList(g.Grantees), encodeList(g.Scopes), g.Reason, g.TicketRef,
		string(g.GrantedBy.Kind), g.GrantedBy.ID, g.GrantedBy.Name, uuidArg(g.RequestID),
		t(g.CreatedAt), t(g.StartsAt), t(g.ExpiresAt), t(g.RevokedAt),
		string(g.RevokedBy.Kind), g.RevokedBy.ID, g.RevokedBy.Name, g.RevokeReason,
	}
}

// uuidArg encodes an optional ID: NULL for uuid.Nil.
func uuidArg(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}

// CreateGrant implements supportaccess.Store: it inserts g and appends
// events to their tenants' audit chains in one transaction. A grant with
// g.ID that exists already is an error wrapping supportaccess.ErrConflict.
//
// Round trips (PostgreSQL, one event of a tenant that has events already):
// 6 — BEGIN, INSERT grant (and its due transitions, one statement),
// SELECT chain head FOR UPDATE, INSERT event, UPDATE head, COMMIT. MySQL:
// 7 (the head row is upserted before it is locked). A tenant's first event
// costs two more on PostgreSQL.
func (s *Store) CreateGrant(ctx context.Context, g sa.Grant, events []sa.Event) error {
	if err := checkGrant(&g); err != nil {
		return err
	}
	insertFailed := false
	err := s.inTxRetry(ctx, "create grant", func(t *txn) error {
		insertFailed = false
		if _, err := t.exec(s.q.insertGrant, s.grantArgs(&g)...); err != nil {
			insertFailed = true
			return wrap(ctx, "create grant", err)
		}
		if err := s.insertDue(t, &g); err != nil {
			return wrap(ctx, "create grant", err)
		}
		return s.appendEvents(t, events)
	})
	if err != nil && insertFailed && ctx.Err() == nil {
		if exists, xerr := s.grantExists(ctx, g.ID); xerr == nil && exists {
			return fmt.Errorf("sqlstore: create grant %s: %w", g.ID, sa.ErrConflict)
		}
	}
	return err
}

// grantExists reports whether a grant with the given ID is stored.
func (s *Store) grantExists(ctx context.Context, id uuid.UUID) (bool, error) {
	return s.exists(ctx, s.q.grantExists, id)
}

// GetGrant implements supportaccess.Store. A missing grant is an error
// wrapping supportaccess.ErrNotFound. One round trip.
func (s *Store) GetGrant(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
	r := s.newGrantRow()
	err := s.queryByID(ctx, s.q.getGrant, id, r.scan)
	if errors.Is(err, sql.ErrNoRows) {
		return sa.Grant{}, fmt.Errorf("sqlstore: grant %s: %w", id, sa.ErrNotFound)
	}
	if err != nil {
		return sa.Grant{}, wrap(ctx, "get grant", err)
	}
	return r.g, nil
}

// ListGrants implements supportaccess.Store: one query, filtering by
// tenant, ticket and status (evaluated at now) and ordering by CreatedAt
// then ID, both descending, in the database. One round trip.
func (s *Store) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("sqlstore: list grants: %w", err)
	}
	var where []string
	var args []any
	if f.TenantID != "" {
		where = append(where, `tenant_id = ?`)
		args = append(args, f.TenantID)
	}
	if f.TicketRef != "" {
		where = append(where, `ticket_ref = ?`)
		args = append(args, f.TicketRef)
	}
	if len(f.Statuses) > 0 {
		n := s.d.timeArg(now)
		var or []string
		for _, st := range slices.Compact(slices.Sorted(slices.Values(f.Statuses))) {
			switch st {
			case sa.StatusActive:
				or = append(or, `(revoked_at IS NULL AND starts_at <= ? AND (expires_at IS NULL OR expires_at > ?))`)
				args = append(args, n, n)
			case sa.StatusScheduled:
				or = append(or, `(revoked_at IS NULL AND starts_at > ?)`)
				args = append(args, n)
			case sa.StatusExpired:
				or = append(or, `(revoked_at IS NULL AND starts_at <= ? AND expires_at IS NOT NULL AND expires_at <= ?)`)
				args = append(args, n, n)
			case sa.StatusRevoked:
				or = append(or, `(revoked_at IS NOT NULL)`)
			default:
				return nil, fmt.Errorf("sqlstore: list grants: %w: unknown status %q", sa.ErrInvalidInput, string(st))
			}
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	q, args := s.listQuery(`SELECT {grantCols} FROM {p}grants`, where, args, f.Limit)
	return queryAll(ctx, s, "list grants", q, args, func(scan func(...any) error) (sa.Grant, error) {
		r := s.newGrantRow()
		err := r.scan(scan)
		return r.g, err
	})
}

// FindActiveGrant implements supportaccess.Store. It is one round trip: a
// single statement reads the tenant's grants that are active at now from
// the (tenant_id, expires_at) index — only the unexpired and unlimited
// ones, however many expired grants the tenant has, and only those open to
// any principal or naming principal — and a supportaccess.GrantSelector
// picks among them, so every backend chooses alike. It writes nothing.
func (s *Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	var best *sa.Grant
	var selErr error
	err := s.read(ctx, func() error {
		mysql := s.d.Dialect == MySQL
		st, err := s.stmt(ctx, s.checkQuery())
		if err != nil {
			return err
		}
		n := s.d.timeArg(now)
		rows, err := st.QueryContext(ctx, tenantID, n, n, needle(principal))
		if err != nil {
			return err
		}
		defer rows.Close()
		scan := rows.Scan
		var check func() error
		if mysql {
			// Each row says the isolation level, autocommit and (MariaDB)
			// open transaction of the connection that read it: a grant
			// read at READ-UNCOMMITTED may not be committed, one read in
			// an old snapshot may be revoked since (see checkSession).
			var state []any
			state, check = sessionVars(s.sessionVars.Load()).scanState()
			scan = func(dest ...any) error { return rows.Scan(append(dest, state...)...) }
		}
		sel := sa.GrantSelector{Principal: principal, Scope: scope, Now: now}
		for rows.Next() {
			r := s.newGrantRow()
			if err := r.scan(scan); err != nil {
				return err
			}
			if mysql {
				if err := check(); err != nil {
					return err
				}
			}
			sel.Offer(&r.g)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		best, selErr = sel.Result()
		return nil
	})
	if err != nil {
		return sa.Grant{}, wrap(ctx, "find active grant", err)
	}
	if selErr != nil {
		return sa.Grant{}, selErr
	}
	return *best, nil
}

// checkQuery returns the statement of FindActiveGrant: findActive, on
// MySQL with the session's state (sessionVars.columns) as its last
// columns.
func (s *Store) checkQuery() string {
	if s.d.Dialect == MySQL {
		return s.q.findActiveSession[s.sessionVars.Load()]
	}
	return s.q.findActive
}

// UpdateGrant implements supportaccess.Store: in one transaction it reads
// the grant with SELECT … FOR UPDATE (on SQLite the transaction holds the
// write lock), calls change, and writes the grant and the events. A
// concurrent UpdateGrant of the same grant waits and then sees this one's
// result, so of two revokes exactly one finds the grant active. A missing
// grant is an error wrapping supportaccess.ErrNotFound; an error of change
// is returned unchanged and nothing is written.
//
// A grant whose expiry is recorded (claimed by ClaimTransitions) is final:
// UpdateGrant returns an error wrapping supportaccess.ErrInvalidInput
// without calling change. It reads that claim after locking the grant, so
// a claim that committed while it waited counts.
//
// On PostgreSQL and SQLite a change of StartsAt or ExpiresAt, or the
// revocation, also updates the grant's due transitions (see syncDue): one
// statement more for each.
//
// Round trips (PostgreSQL, one event): 8 — BEGIN, SELECT … FOR UPDATE,
// the expiry claim, UPDATE grant, lock the chain head, INSERT event,
// UPDATE head, COMMIT, and 9 for a revocation or an extension; MySQL 9.
// Manager.Revoke and Manager.Extend read the grant first (one more).
func (s *Store) UpdateGrant(ctx context.Context, id uuid.UUID, change func(g *sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	var out sa.Grant
	err := s.inTx(ctx, "update grant", func(t *txn) error {
		r := s.newGrantRow()
		row, err := t.queryRow(s.q.getGrantForUpdate, id)
		if err == nil {
			err = r.scan(row.Scan)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlstore: grant %s: %w", id, sa.ErrNotFound)
		}
		if err != nil {
			return wrap(ctx, "update grant", err)
		}
		cur := r.g
		if cur.RevokedAt.IsZero() {
			var recorded bool
			row, err := t.queryRow(s.q.expiryRecorded, id)
			if err == nil {
				err = row.Scan(&recorded)
			}
			if err != nil {
				return wrap(ctx, "update grant", err)
			}
			if recorded {
				return fmt.Errorf("sqlstore: grant %s: %w: its expiry is recorded", id, sa.ErrInvalidInput)
			}
		}
		g := cur.Clone()
		events, err := change(&g)
		if err != nil {
			return err
		}
		if err := stored.CheckGrantUpdate(&cur, &g); err != nil {
			return fmt.Errorf("sqlstore: update grant: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ts := s.d.timeArg
		if _, err := t.exec(s.q.updateGrant,
			encodeList(g.Grantees), encodeList(g.Scopes), g.Reason, g.TicketRef,
			string(g.GrantedBy.Kind), g.GrantedBy.ID, g.GrantedBy.Name, uuidArg(g.RequestID),
			ts(g.StartsAt), ts(g.ExpiresAt), ts(g.RevokedAt),
			string(g.RevokedBy.Kind), g.RevokedBy.ID, g.RevokedBy.Name, g.RevokeReason, id,
		); err != nil {
			return wrap(ctx, "update grant", err)
		}
		if err := s.syncDue(t, &cur, &g); err != nil {
			return wrap(ctx, "update grant", err)
		}
		if err := s.appendEvents(t, events); err != nil {
			return err
		}
		out = g.Clone()
		stored.Grant(&out) // as stored
		return nil
	})
	if err != nil {
		return sa.Grant{}, err
	}
	return out, nil
}

// ClaimTransitions implements supportaccess.Store. In one transaction it
// claims up to limit pending transitions t that are due, in order of the
// due time, and appends the events events returns (see claimQuery: rows a
// concurrent claimer or writer holds are skipped, not waited for; on
// SQLite the write lock serialises claimers; an expiry waits for the
// grant's start to be claimed). On PostgreSQL the claim is
// one statement that deletes the transitions' rows from grant_due; on
// SQLite it is two (the grants of the due rows, the DELETE of the rows); on
// MySQL/MariaDB it is a plain SELECT of candidate IDs, a SELECT that locks
// them by primary key (more than one when others hold rows) and an UPDATE
// of their claim flags, in a transaction at READ COMMITTED, so that a
// claimer locks only the rows it claims (no gap locks, no index entries
// that would make concurrent claimers deadlock). Round trips: BEGIN
// (MySQL: 2), the claim (MySQL: at least 3),
// the audit chain writes — for a batch over several tenants 3 statements
// for all their chain heads (create the missing ones, lock all in tenant
// order, update all), for one tenant 2 (lock, update), and the event
// INSERTs (PostgreSQL: one from column arrays, elsewhere one per 200
// events) — and COMMIT. Errors: limit <= 0 or an unknown transition wrap
// supportaccess.ErrInvalidInput; a deadlock the server breaks wraps
// supportaccess.ErrConflict.
func (s *Store) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	return s.claimTransitions(ctx, t, now, limit, events, nil)
}

// claimTransitions is ClaimTransitions with a hook that runs in the same
// transaction after the claim (for stores that create more rows per
// claimed grant, such as expiry hook tasks).
func (s *Store) claimTransitions(ctx context.Context, tr sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error),
	also func(t *txn, claimed []sa.Grant) error) ([]sa.Grant, error) {
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("sqlstore: claim transitions: %w", err)
	}
	var due func(g *sa.Grant) time.Time
	switch tr {
	case sa.TransitionStarted:
		due = func(g *sa.Grant) time.Time { return g.StartsAt }
	case sa.TransitionExpired:
		due = func(g *sa.Grant) time.Time { return g.ExpiresAt }
	default:
		return nil, fmt.Errorf("sqlstore: claim transitions: %w: unknown transition %v", sa.ErrInvalidInput, tr)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: claim transitions: %w: limit %d", sa.ErrInvalidInput, limit)
	}
	var out []sa.Grant
	err := s.inTxOpts(ctx, "claim transitions", s.d.claimTx, func(t *txn) error {
		claimed, err := s.claimDue(t, tr, now, limit)
		if err != nil {
			return wrap(ctx, "claim transitions", err)
		}
		if len(claimed) == 0 {
			return nil
		}
		claimed = sortClaimed(claimed, due) // the claim returns them in no order
		var evs []sa.Event
		if events != nil {
			for _, g := range claimed {
				ev, err := events(g.Clone())
				if err != nil {
					return err // the claim is abandoned (rolled back)
				}
				evs = append(evs, ev...)
			}
		}
		if err := s.appendEvents(t, evs); err != nil {
			return err
		}
		if also != nil {
			if err := also(t, claimed); err != nil {
				return err
			}
		}
		out = claimed
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lockFlagged is the MySQL/MariaDB claim's locking step (see claimQuery):
// it reads the IDs of the first 2×limit grants whose transition tr is due
// and unclaimed, without locking, then locks them through the primary key
// in windows of due order, skipping rows others hold, until it holds limit
// of them or has tried them all. Locks are taken on primary-key records
// only: a locking read through the claim-flag index (the earlier claim)
// let MariaDB wait, despite SKIP LOCKED, for a row whose index entry it
// had locked while the holder's flag UPDATE waited for that entry — a
// deadlock between two claimers. The second half of the candidates lets a
// concurrent claimer (the next claim of the same Sweep, another replica)
// take the batch after the one in flight instead of finding all of its
// rows held.
func (s *Store) lockFlagged(t *txn, tr sa.Transition, pick string, now time.Time, limit int) ([]sa.Grant, error) {
	rows, err := t.query(pick, s.d.timeArg(now), 2*limit)
	if err != nil {
		return nil, err
	}
	var cand []any
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		cand = append(cand, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var claimed []sa.Grant
	for len(cand) > 0 && len(claimed) < limit {
		window := cand[:min(len(cand), limit-len(claimed))]
		cand = cand[len(window):]
		args := append(slices.Clip(window), s.d.timeArg(now)) // window shares cand's array: never write into it
		got, err := s.selectGrants(t, s.sql(lockClaimQuery(s.d, tr, len(window))), len(window), args...)
		if err != nil {
			return nil, err
		}
		claimed = append(claimed, got...)
	}
	return claimed, nil
}

// claimDue claims up to limit due transitions tr in t (see claimQuery) and
// returns their grants, in no particular order.
func (s *Store) claimDue(t *txn, tr sa.Transition, now time.Time, limit int) ([]sa.Grant, error) {
	q := s.q.claimExpired
	if tr == sa.TransitionStarted {
		q = s.q.claimStarted
	}
	if !s.d.dueTable { // MySQL: pick, lock by primary key, then set the flags
		claimed, err := s.lockFlagged(t, tr, q, now, limit)
		if err != nil || len(claimed) == 0 {
			return nil, err
		}
		args := make([]any, len(claimed))
		for i := range claimed {
			args[i] = claimed[i].ID
		}
		_, err = t.execDynamic(s.sql(markClaimedQuery(s.d, tr, len(args))), args...)
		return claimed, err
	}
	// PostgreSQL and SQLite drop the due rows of grants revoked (or gone)
	// without claiming them (see claimQuery); a batch of only those is not
	// the end of the due rows, so the claim goes on.
	for {
		claimed, err := s.selectGrants(t, q, limit, int(tr), s.d.timeArg(now), limit)
		if err != nil {
			return nil, err
		}
		var gone int64
		if s.d.Dialect == Postgres {
			// The statement claimed and deleted; the revoked grants it
			// returned are the rows it dropped.
			n := len(claimed)
			claimed = slices.DeleteFunc(claimed, func(g sa.Grant) bool { return !g.RevokedAt.IsZero() })
			gone = int64(n - len(claimed))
		} else if gone, err = affected(t.exec(s.q.claimDelete, int(tr), s.d.timeArg(now), limit)); err != nil {
			// SQLite: the DELETE of the same rows, under the write lock.
			return nil, err
		}
		if len(claimed) > 0 || gone == 0 {
			return claimed, nil
		}
	}
}

// insertDue stores the pending transitions of a new grant in grant_due
// (see migration 5): its start, and its expiry — due "never" when the
// grant is unlimited, so that a grant given an end later has it pending;
// none for a grant stored revoked. On PostgreSQL the grant's INSERT stores
// them (queries.insertGrant).
func (s *Store) insertDue(t *txn, g *sa.Grant) error {
	if !s.d.dueTable || !g.RevokedAt.IsZero() || s.d.Dialect == Postgres {
		return nil
	}
	ts := s.d.timeArg
	_, err := t.exec(s.q.insertDue, int(sa.TransitionStarted), ts(g.StartsAt), g.ID, int(sa.TransitionExpired), ts(g.ExpiresAt), g.ID)
	return err
}

// syncDue brings the due rows of a grant changed from cur to g up to date,
// with one statement per changed time or the revocation. Each pending
// transition has a row (an unlimited grant's expiry is due "never"), so a
// missing row means claimed (or revoked), and moving a time never brings
// back a transition already claimed: each is claimed once, whatever
// changes later (as on memstore and MySQL). Revocation drops the pending
// ones for good.
func (s *Store) syncDue(t *txn, cur, g *sa.Grant) error {
	if !s.d.dueTable || !cur.RevokedAt.IsZero() {
		return nil // nothing pending since the revocation
	}
	if !g.RevokedAt.IsZero() {
		_, err := t.exec(s.q.dropDues, g.ID)
		return err
	}
	ts := s.d.timeArg
	if !g.StartsAt.Equal(cur.StartsAt) {
		if _, err := t.exec(s.q.moveDue, ts(g.StartsAt), g.ID, int(sa.TransitionStarted)); err != nil {
			return err
		}
	}
	if !g.ExpiresAt.Equal(cur.ExpiresAt) {
		if _, err := t.exec(s.q.moveDue, ts(g.ExpiresAt), g.ID, int(sa.TransitionExpired)); err != nil {
			return err
		}
	}
	return nil
}

// sortClaimed returns claimed in claim order (due time, then ID). It
// sorts a permutation on precomputed keys and copies each grant once:
// sorting the grants themselves moved and compared whole structs.
func sortClaimed(claimed []sa.Grant, due func(g *sa.Grant) time.Time) []sa.Grant {
	type key struct {
		due time.Time
		i   int
	}
	keys := make([]key, len(claimed))
	for i := range claimed {
		keys[i] = key{due(&claimed[i]), i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return bytes.Compare(claimed[a.i].ID[:], claimed[b.i].ID[:])
	})
	out := make([]sa.Grant, len(claimed))
	for i, k := range keys {
		out[i] = claimed[k.i]
	}
	return out
}

// selectGrants runs a fixed grant query in t and returns the grants, at
// most capHint of them expected.
func (s *Store) selectGrants(t *txn, q string, capHint int, args ...any) ([]sa.Grant, error) {
	rows, err := t.query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]sa.Grant, 0, min(capHint, 4096))
	r := s.newGrantRow()
	for rows.Next() {
		// One set of scan destinations serves every row: reset the
		// grant, as a NULL leaves some destinations (the request ID)
		// untouched; its slices are decoded afresh for each row.
		r.g = sa.Grant{}
		if err := r.scan(rows.Scan); err != nil {
			return nil, err
		}
		out = append(out, r.g)
	}
	return out, rows.Err()
}
