package sqlstore

import (
	"strings"

	sa "github.com/supportaccess/supportaccess"
)

// grantCols are the columns of a grant, in the order grantRow reads them.
// A SELECT names them by the token {grantCols} (see listTokens), which
// reads the times as text on MySQL.
const grantCols = `id, tenant_id, grantees, scopes, reason, ticket_ref, ` +
	`granted_by_kind, granted_by_id, granted_by_name, request_id, ` +
	`created_at, starts_at, expires_at, revoked_at, ` +
	`revoked_by_kind, revoked_by_id, revoked_by_name, revoke_reason`

// eventCols are the columns of an audit event that map to its fields, in
// the order eventRow reads them (Events reads eventSelectCols: these and
// session_id).
const eventCols = `tenant_id, seq, id, occurred_at, event_type, grant_id, ` +
	`actor_kind, actor_id, actor_name, reason, attrs, before_value, after_value, chain_hash`

// eventInsertCols are the columns written for an event: eventCols and
// session_id, a copy of Attrs[supportaccess.AttrSessionID] for the
// SessionID filter.
const eventInsertCols = eventCols + `, session_id`

// findActive is the Check query (arguments: tenant, now, now, needle): the
// grants of a tenant that are active at a time and cover a principal.
//
// {unexpired} is the dialect's "expires_at NULL or after now" in the form
// its (tenant_id, …) index answers as one range, so that only unexpired and
// unlimited grants are read however many expired ones the tenant has: on
// PostgreSQL and SQLite the index is on (tenant_id, COALESCE(expires_at,
// +infinity)) and the test is on that expression; MySQL/MariaDB's range
// optimizer turns the plain OR into two ranges of (tenant_id, expires_at).
//
// {covers} is the dialect's test that the grantees column is NULL (any
// principal), empty, or holds the bound needle "\n"+escaped principal+"\n"
// in "\n"+grantees — exact element matching, since an escaped element never
// contains a newline. The GrantSelector applies every rule again; the test
// only spares reading grants that name other principals.
const findActive = `SELECT {grantCols} FROM {p}grants ` +
	`WHERE tenant_id = ? AND {unexpired} AND revoked_at IS NULL AND starts_at <= ? AND {covers}`

// claimQuery is the claim statement of ClaimTransitions for transition tr.
//
// On PostgreSQL and SQLite (dialect.dueTable) pending transitions are rows
// of grant_due (migration 5), and a claim deletes them (arguments: the
// transition, now, limit). An unlimited grant's expiry is pending with the
// due time "never", so that a missing row always means claimed or revoked.
//
// On PostgreSQL it is one statement: it locks up to limit due rows in
// order of the due time with SKIP LOCKED, so that concurrent claimers take
// disjoint rows and never wait for one another; share-locks their
// unrevoked grants, skipping a grant a writer holds (its due row stays for
// a later claim; claimers of the two transitions share); deletes the due
// rows of the grants it locked and of grants that are revoked or gone (due
// rows a writer that does not keep grant_due left behind: a replica of an
// older release, or the host's own SQL; the foreign key deletes those of
// deleted grants already); and returns the grants it locked, in no
// particular order, followed by the revoked grants whose rows it dropped
// (as of the statement's snapshot, so revoked), which claimDue tells
// apart by RevokedAt: a batch of only those is not the end of the due
// rows. Revoke and Extend change the grant's due rows after
// locking the grant, so they wait for a claim, never the other way round.
//
// On SQLite, where the write lock serialises claimers, it is the SELECT
// of the unrevoked grants of the first limit due rows; claimDelete then
// deletes those rows (see claimDue).
//
// On MySQL/MariaDB it is the plain (non-locking) SELECT of the IDs of the
// grants whose flag (started_recorded, expired_recorded) is unset and
// whose due time has come (arguments: now, limit), in due order; the
// caller locks them by primary key with SKIP LOCKED (lockClaimQuery, see
// Store.lockFlagged) and sets the flags (markClaimedQuery). (A delete-based
// claim on a narrow table, as elsewhere, deadlocked concurrent MariaDB
// claimers in its DELETE … IN (…); so did a locking SELECT through the flag
// index, see lockFlagged.)
//
// An expiry is claimed only once the grant's start is (startClaimed): a
// claim of starts skips a grant a writer holds, and the same Sweep's claim
// of expiries must not then record the expiry before the start.
func claimQuery(d *dialect, tr sa.Transition) string {
	if d.dueTable {
		wait := ""
		if tr == sa.TransitionExpired {
			wait = ` AND ` + startClaimed(d)
		}
		pick := `FROM {p}grant_due AS x WHERE transition = ? AND due_at <= ?` + wait + ` ORDER BY due_at, grant_id LIMIT ?` + d.skipLocked
		if d.Dialect != Postgres {
			return `SELECT {grantCols} FROM {p}grants WHERE revoked_at IS NULL AND id IN (SELECT grant_id ` + pick + `)`
		}
		// c and g are MATERIALIZED so that each runs (and locks) exactly
		// once; ctid = ANY(ARRAY(…)) deletes by a TID scan. e, the
		// unrevoked grants that exist, runs only when a due row's grant
		// is not in g (held by a writer, revoked, or deleted), as a
		// primary-key lookup: NOT EXISTS became a hashed scan of the whole
		// grants table.
		return `WITH c AS MATERIALIZED (SELECT ctid AS tid, grant_id ` + pick + `), ` +
			`g AS MATERIALIZED (SELECT {grantCols} FROM {p}grants WHERE id = ANY(ARRAY(SELECT grant_id FROM c)) AND revoked_at IS NULL FOR SHARE SKIP LOCKED), ` +
			`e AS MATERIALIZED (SELECT id FROM {p}grants WHERE id = ANY(ARRAY(SELECT grant_id FROM c)) AND revoked_at IS NULL), ` +
			`d AS (DELETE FROM {p}grant_due WHERE ctid = ANY(ARRAY(SELECT tid FROM c WHERE grant_id IN (SELECT id FROM g) ` +
			`OR grant_id NOT IN (SELECT id FROM e))) RETURNING grant_id) ` +
			`SELECT {grantCols} FROM g WHERE id IN (SELECT grant_id FROM d) ` +
			`UNION ALL SELECT {grantCols} FROM {p}grants WHERE id = ANY(ARRAY(SELECT grant_id FROM d WHERE grant_id NOT IN (SELECT id FROM g)))`
	}
	flag, due := claimFlag(tr)
	// The due-order index of tr's flag, named: with the expiry's condition
	// on started_recorded the planner took the start's index and sorted.
	return `SELECT id FROM {p}grants FORCE INDEX (` + claimIndex(tr) + `) WHERE ` + flag + ` = FALSE AND revoked_at IS NULL AND ` + due +
		` IS NOT NULL AND ` + due + ` <= ?` + startFlag(tr) + ` ORDER BY ` + due + `, id LIMIT ?`
}

// startClaimed is the condition, true of a grant_due row x, that its
// grant's start is not pending (PostgreSQL and SQLite; see claimQuery): a
// look-up of grant_due_grant per due row the claim reads in due order,
// which stops at the limit. On PostgreSQL OFFSET 0 keeps the subquery
// from becoming an anti-join, which the planner ran as a hash join over
// every pending start. "transition + 0" keeps the planners off the
// primary key (transition, due_at, grant_id): once a Sweep has claimed
// the starts, the statistics say no start is pending, and PostgreSQL
// probed the primary key's range of starts — every claimed start's dead
// entry, per due row (40 s instead of 2 for 100 k expiries).
func startClaimed(d *dialect) string {
	q := `NOT EXISTS (SELECT 1 FROM {p}grant_due AS s WHERE s.grant_id = x.grant_id AND s.transition + 0 = 1`
	if d.Dialect == Postgres {
		q += ` OFFSET 0`
	}
	return q + `)`
}

// startFlag is the condition of a claim of tr on MySQL/MariaDB that the
// grant's start is claimed: for expiries only (see claimQuery).
func startFlag(tr sa.Transition) string {
	if tr == sa.TransitionExpired {
		return ` AND started_recorded = TRUE`
	}
	return ""
}

// lockClaimQuery locks, through the primary key only, those of n candidate
// grants (arguments: the n IDs, now) whose transition tr is still due and
// unclaimed, skipping rows others hold (MySQL, see claimQuery).
func lockClaimQuery(d *dialect, tr sa.Transition, n int) string {
	flag, due := claimFlag(tr)
	return `SELECT {grantCols} FROM {p}grants` + d.byPK + ` WHERE id IN (` + placeholders(n) + `) AND ` + flag +
		` = FALSE AND revoked_at IS NULL AND ` + due + ` IS NOT NULL AND ` + due + ` <= ?` + startFlag(tr) + d.skipLocked
}

// markClaimedQuery sets the claim flag of tr on n grants by ID (MySQL, see
// claimQuery), through the primary key (dialect.byPK).
func markClaimedQuery(d *dialect, tr sa.Transition, n int) string {
	flag, _ := claimFlag(tr)
	return `UPDATE {p}grants` + d.byPK + ` SET ` + flag + ` = TRUE WHERE id IN (` + placeholders(n) + `)`
}

// claimIndex returns the index of the grants in due order of tr's
// unclaimed transitions (MySQL/MariaDB).
func claimIndex(tr sa.Transition) string {
	if tr == sa.TransitionStarted {
		return "{p}grants_start_due"
	}
	return "{p}grants_expire_due"
}

// claimFlag returns the grants' claim flag column of tr and its due-time
// column (MySQL/MariaDB, see claimQuery).
func claimFlag(tr sa.Transition) (flag, due string) {
	if tr == sa.TransitionStarted {
		return "started_recorded", "starts_at"
	}
	return "expired_recorded", "expires_at"
}

// queries are the store's fixed statements, rendered for its dialect and
// prefix once in New.
type queries struct {
	getGrant, getGrantForUpdate, grantExists string
	findActive                               string
	// findActiveSession: on MySQL, findActive also selecting the
	// session's state, for each sessionVars.
	findActiveSession                       [2 * len(isolationVars)]string
	insertGrant, updateGrant                string
	claimStarted, claimExpired, claimDelete string
	insertDue, moveDue, dropDues            string
	expiryRecorded                          string
	lockHead, insertHead, updateHead        string
	readHead                                string
	insertEvent, insertEventsUnnest         string
	writeLock                               string
}

func newQueries(s *Store) queries {
	d := s.d
	q := queries{
		getGrant:          `SELECT {grantCols} FROM {p}grants WHERE id = ?`,
		getGrantForUpdate: `SELECT {grantCols} FROM {p}grants WHERE id = ?` + d.forUpdate,
		grantExists:       `SELECT 1 FROM {p}grants WHERE id = ?`,
		findActive:        strings.NewReplacer("{unexpired}", d.unexpired, "{covers}", d.covers).Replace(findActive),
		insertGrant:       `INSERT INTO {p}grants (` + grantCols + `) VALUES (` + placeholders(18) + `)`,
		updateGrant: `UPDATE {p}grants SET grantees = ?, scopes = ?, reason = ?, ticket_ref = ?, ` +
			`granted_by_kind = ?, granted_by_id = ?, granted_by_name = ?, request_id = ?, ` +
			`starts_at = ?, expires_at = ?, revoked_at = ?, ` +
			`revoked_by_kind = ?, revoked_by_id = ?, revoked_by_name = ?, revoke_reason = ? WHERE id = ?`,
		claimStarted: claimQuery(d, sa.TransitionStarted),
		claimExpired: claimQuery(d, sa.TransitionExpired),
		lockHead:     `SELECT seq, chain_hash FROM {p}audit_heads WHERE tenant_id = ?` + d.forUpdate,
		readHead:     `SELECT seq, chain_hash FROM {p}audit_heads WHERE tenant_id = ?`,
		insertHead:   d.insertHeads(1),
		updateHead:   `UPDATE {p}audit_heads SET seq = ?, chain_hash = ? WHERE tenant_id = ?`,
		insertEvent:  `INSERT INTO {p}audit_events (` + eventInsertCols + `) VALUES (` + placeholders(15) + `)`,
		writeLock:    d.writeLock,
		// After getGrantForUpdate, so that it sees a claim that committed
		// while the grant's lock was awaited (MySQL: a locking read reads
		// the latest version).
		expiryRecorded: `SELECT expired_recorded FROM {p}grants WHERE id = ?` + d.forUpdate,
	}
	if d.dueTable {
		// The old claim flags are set on every grant written since
		// version 5, so that migration 5's copy, applied again, finds
		// nothing of it to copy back into grant_due.
		q.insertGrant = `INSERT INTO {p}grants (` + grantCols + `, started_recorded, expired_recorded) VALUES (` + placeholders(18) + `, TRUE, TRUE)`
		q.insertDue = `INSERT INTO {p}grant_due (transition, due_at, grant_id) VALUES (?, ?, ?), (?, ` + d.dueOrNever + `, ?)`
		q.moveDue = `UPDATE {p}grant_due SET due_at = ` + d.dueOrNever + ` WHERE grant_id = ? AND transition = ?`
		q.dropDues = `DELETE FROM {p}grant_due WHERE grant_id = ?`
		// An unrevoked grant's expiry is pending exactly while its row is
		// there (unlimited: due "never").
		q.expiryRecorded = `SELECT NOT EXISTS (SELECT 1 FROM {p}grant_due WHERE grant_id = ? AND transition = 2)`
		q.claimDelete = `DELETE FROM {p}grant_due WHERE rowid IN (SELECT rowid FROM {p}grant_due AS x ` +
			`WHERE transition = ? AND due_at <= ? AND (transition = 1 OR ` + startClaimed(d) + `) ORDER BY due_at, grant_id LIMIT ?)` // SQLite (see claimQuery)
	}
	if d.Dialect == Postgres {
		q.insertEventsUnnest = insertEventsUnnestQuery
		// The grant and its due rows (see insertDue) in one statement.
		q.insertGrant = `WITH g AS (` + q.insertGrant + ` RETURNING id, starts_at, expires_at, revoked_at) ` +
			`INSERT INTO {p}grant_due (transition, due_at, grant_id) ` +
			`SELECT 1, starts_at, id FROM g WHERE revoked_at IS NULL ` +
			`UNION ALL SELECT 2, COALESCE(expires_at, 'infinity'::timestamptz), id FROM g WHERE revoked_at IS NULL`
	}
	if d.Dialect == MySQL {
		for v := range q.findActiveSession {
			q.findActiveSession[v] = strings.Replace(q.findActive, ` FROM `, `, `+sessionVars(v).columns()+` FROM `, 1)
		}
	}
	for _, p := range []*string{
		&q.findActiveSession[0], &q.findActiveSession[1], &q.findActiveSession[2], &q.findActiveSession[3],
		&q.getGrant, &q.getGrantForUpdate, &q.grantExists, &q.findActive, &q.insertGrant, &q.updateGrant,
		&q.claimStarted, &q.claimExpired, &q.claimDelete, &q.insertDue, &q.moveDue, &q.dropDues, &q.expiryRecorded, &q.lockHead, &q.readHead, &q.insertHead, &q.updateHead, &q.insertEvent, &q.insertEventsUnnest, &q.writeLock,
	} {
		*p = s.sql(*p)
	}
	return q
}
