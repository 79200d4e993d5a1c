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

// queries are the store's fixed statements, rendered for its dialect and
// prefix once in New.
type queries struct {
	getGrant, getGrantForUpdate, grantExists string
	findActive                               string
	insertGrant, updateGrant                 string
	claimStarted, claimExpired               string
	lockHead, insertHead, updateHead         string
	readHead                                 string
	insertEvent                              string
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
		claimStarted: `SELECT ` + grantCols + ` FROM {p}grants ` +
			`WHERE started_recorded = FALSE AND revoked_at IS NULL AND starts_at <= ? ` +
			`ORDER BY starts_at, id LIMIT ?` + d.skipLocked,
		claimExpired: `SELECT ` + grantCols + ` FROM {p}grants ` +
			`WHERE expired_recorded = FALSE AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ? ` +
			`ORDER BY expires_at, id LIMIT ?` + d.skipLocked,
		lockHead:    `SELECT seq, chain_hash FROM {p}audit_heads WHERE tenant_id = ?` + d.forUpdate,
		readHead:    `SELECT seq, chain_hash FROM {p}audit_heads WHERE tenant_id = ?`,
		insertHead:  d.insertHead,
		updateHead:  `UPDATE {p}audit_heads SET seq = ?, chain_hash = ? WHERE tenant_id = ?`,
		insertEvent: `INSERT INTO {p}audit_events (` + eventInsertCols + `) VALUES (` + placeholders(15) + `)`,
		writeLock:   d.writeLock,
	}
	for _, p := range []*string{
		&q.getGrant, &q.getGrantForUpdate, &q.grantExists, &q.findActive, &q.insertGrant, &q.updateGrant,
		&q.claimStarted, &q.claimExpired, &q.lockHead, &q.readHead, &q.insertHead, &q.updateHead, &q.insertEvent, &q.writeLock,
	} {
		*p = s.sql(*p)
	}
	return q
}
