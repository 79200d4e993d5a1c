package sqlstore

import "strings"

// grantCols are the columns of a grant, in the order scanGrant reads them.
const grantCols = `id, tenant_id, grantees, scopes, reason, ticket_ref, ` +
	`granted_by_kind, granted_by_id, granted_by_name, request_id, ` +
	`created_at, starts_at, expires_at, revoked_at, ` +
	`revoked_by_kind, revoked_by_id, revoked_by_name, revoke_reason`

// eventCols are the columns of an audit event, in the order scanEvent reads
// them.
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
const findActive = `SELECT ` + grantCols + ` FROM {p}grants ` +
	`WHERE tenant_id = ? AND {unexpired} AND revoked_at IS NULL AND starts_at <= ? AND {covers}`

// claimQuery is the claim statement of ClaimTransitions for the
// transition whose marker column is flag (arguments: now, limit): the
// unclaimed, unrevoked grants that satisfy due, in order of the due time
// dueCol, up to limit, skipping rows other transactions hold. On PostgreSQL and SQLite
// (dialect.claimReturning) it is one UPDATE that marks them and returns
// them, in no particular order; on MySQL/MariaDB, which has no RETURNING,
// it is the locking SELECT, and the caller marks the rows.
func claimQuery(d *dialect, flag, due, dueCol string) string {
	pick := ` FROM {p}grants WHERE ` + flag + ` = FALSE AND revoked_at IS NULL AND ` + due +
		` ORDER BY ` + dueCol + `, id LIMIT ?` + d.skipLocked
	switch {
	case d.claimReturning && d.Dialect == Postgres:
		// = ANY(ARRAY(…)) makes the planner look the picked IDs up in the
		// primary key; IN (SELECT …) may hash-join a scan of the table.
		return `UPDATE {p}grants SET ` + flag + ` = TRUE WHERE id = ANY(ARRAY(SELECT id` + pick + `)) RETURNING ` + grantCols
	case d.claimReturning:
		return `UPDATE {p}grants SET ` + flag + ` = TRUE WHERE id IN (SELECT id` + pick + `) RETURNING ` + grantCols
	}
	return `SELECT ` + grantCols + pick
}

// queries are the store's fixed statements, rendered for its dialect and
// prefix once in New.
type queries struct {
	getGrant, getGrantForUpdate, grantExists string
	findActive                               string
	insertGrant, updateGrant                 string
	claimStarted, claimExpired               string
	lockHead, insertHead, updateHead         string
	readHead                                 string
	insertEvent, insertEventsUnnest          string
	writeLock                                string
}

func newQueries(s *Store) queries {
	d := s.d
	q := queries{
		getGrant:          `SELECT ` + grantCols + ` FROM {p}grants WHERE id = ?`,
		getGrantForUpdate: `SELECT ` + grantCols + ` FROM {p}grants WHERE id = ?` + d.forUpdate,
		grantExists:       `SELECT 1 FROM {p}grants WHERE id = ?`,
		findActive:        strings.NewReplacer("{unexpired}", d.unexpired, "{covers}", d.covers).Replace(findActive),
		insertGrant:       `INSERT INTO {p}grants (` + grantCols + `) VALUES (` + placeholders(18) + `)`,
		updateGrant: `UPDATE {p}grants SET grantees = ?, scopes = ?, reason = ?, ticket_ref = ?, ` +
			`granted_by_kind = ?, granted_by_id = ?, granted_by_name = ?, request_id = ?, ` +
			`starts_at = ?, expires_at = ?, revoked_at = ?, ` +
			`revoked_by_kind = ?, revoked_by_id = ?, revoked_by_name = ?, revoke_reason = ? WHERE id = ?`,
		claimStarted: claimQuery(d, "started_recorded", `starts_at <= ?`, `starts_at`),
		claimExpired: claimQuery(d, "expired_recorded", `expires_at IS NOT NULL AND expires_at <= ?`, `expires_at`),
		lockHead:     `SELECT seq, chain_hash FROM {p}audit_heads WHERE tenant_id = ?` + d.forUpdate,
		readHead:     `SELECT seq, chain_hash FROM {p}audit_heads WHERE tenant_id = ?`,
		insertHead:   d.insertHeads(1),
		updateHead:   `UPDATE {p}audit_heads SET seq = ?, chain_hash = ? WHERE tenant_id = ?`,
		insertEvent:  `INSERT INTO {p}audit_events (` + eventInsertCols + `) VALUES (` + placeholders(15) + `)`,
		writeLock:    d.writeLock,
	}
	if d.Dialect == Postgres {
		q.insertEventsUnnest = insertEventsUnnestQuery
	}
	for _, p := range []*string{
		&q.getGrant, &q.getGrantForUpdate, &q.grantExists, &q.findActive, &q.insertGrant, &q.updateGrant,
		&q.claimStarted, &q.claimExpired, &q.lockHead, &q.readHead, &q.insertHead, &q.updateHead, &q.insertEvent, &q.insertEventsUnnest, &q.writeLock,
	} {
		*p = s.sql(*p)
	}
	return q
}
