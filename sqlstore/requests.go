package sqlstore

import (
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

// Access requests live in the access_requests table (schema version 2).

var _ sa.RequestStore = (*Store)(nil)

// requestCols are the columns of an access request, in the order
// requestRow reads them. A SELECT names them by the token {requestCols}
// (see listTokens).
const requestCols = `id, tenant_id, requested_by_kind, requested_by_id, requested_by_name, ` +
	`duration_ns, scopes, reason, ticket_ref, starts_at, status, created_at, expires_at, ` +
	`decided_at, decided_by_kind, decided_by_id, decided_by_name, decision_reason, grant_id`

// Fixed request statements (rendered by Store.sql and prepared on first
// use).
const (
	qInsertRequest    = `INSERT INTO {p}access_requests (` + requestCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetRequest       = `SELECT {requestCols} FROM {p}access_requests WHERE id = ?`
	qRequestExists    = `SELECT 1 FROM {p}access_requests WHERE id = ?`
	qUpdateRequest    = `UPDATE {p}access_requests SET requested_by_kind = ?, requested_by_id = ?, requested_by_name = ?, duration_ns = ?, scopes = ?, reason = ?, ticket_ref = ?, starts_at = ?, status = ?, expires_at = ?, decided_at = ?, decided_by_kind = ?, decided_by_id = ?, decided_by_name = ?, decision_reason = ?, grant_id = ? WHERE id = ?`
	qClaimRequestsSel = `SELECT {requestCols} FROM {p}access_requests WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at, id LIMIT ?`
)

// requestRow holds the scan destinations of one request row.
type requestRow struct {
	r                                 sa.AccessRequest
	scopes                            nullText
	byKind, decKind, status           string
	starts, created, expires, decided timeScanner
	dest                              [19]any
}

func (s *Store) newRequestRow() *requestRow {
	x := &requestRow{}
	r := &x.r
	d := s.d.Dialect
	x.starts = timeScanner{d, &r.StartsAt}
	x.created = timeScanner{d, &r.CreatedAt}
	x.expires = timeScanner{d, &r.ExpiresAt}
	x.decided = timeScanner{d, &r.DecidedAt}
	x.dest = [19]any{
		&r.ID, &r.TenantID, &x.byKind, &r.RequestedBy.ID, &r.RequestedBy.Name,
		&r.Duration, &x.scopes, &r.Reason, &r.TicketRef, &x.starts, &x.status, &x.created, &x.expires,
		&x.decided, &x.decKind, &r.DecidedBy.ID, &r.DecidedBy.Name, &r.DecisionReason, &r.GrantID,
	}
	return x
}

func (x *requestRow) scan(scan func(dest ...any) error) error {
	if err := scan(x.dest[:]...); err != nil {
		return err
	}
	r := &x.r
	r.RequestedBy.Kind = sa.ActorKind(x.byKind)
	r.DecidedBy.Kind = sa.ActorKind(x.decKind)
	r.Status = sa.RequestStatus(x.status)
	if x.scopes.valid {
		var err error
		if r.Scopes, err = decodeList[sa.Scope](x.scopes.s); err != nil {
			return err
		}
	}
	return nil
}

// requestArgs are the values of requestCols for r.
func (s *Store) requestArgs(r *sa.AccessRequest) []any {
	t := s.d.timeArg
	return []any{
		r.ID, r.TenantID, string(r.RequestedBy.Kind), r.RequestedBy.ID, r.RequestedBy.Name,
		int64(r.Duration), encodeList(r.Scopes), r.Reason, r.TicketRef, t(r.StartsAt), string(r.Status), t(r.CreatedAt), t(r.ExpiresAt),
		t(r.DecidedAt), string(r.DecidedBy.Kind), r.DecidedBy.ID, r.DecidedBy.Name, r.DecisionReason, uuidArg(r.GrantID),
	}
}

// CreateRequest implements supportaccess.RequestStore: it inserts r and
// appends events in one transaction. A request with r.ID that exists
// already is an error wrapping supportaccess.ErrConflict.
func (s *Store) CreateRequest(ctx context.Context, r sa.AccessRequest, events []sa.Event) error {
	if err := checkRequest(&r); err != nil {
		return err
	}
	insertFailed := false
	err := s.inTxRetry(ctx, "create request", func(t *txn) error {
		insertFailed = false
		if _, err := t.exec(s.sql(qInsertRequest), s.requestArgs(&r)...); err != nil {
			insertFailed = true
			return wrap(ctx, "create request", err)
		}
		return s.appendEvents(t, events)
	})
	if err != nil && insertFailed && ctx.Err() == nil {
		if exists, xerr := s.exists(ctx, s.sql(qRequestExists), r.ID); xerr == nil && exists {
			return fmt.Errorf("sqlstore: create request %s: %w", r.ID, sa.ErrConflict)
		}
	}
	return err
}

// GetRequest implements supportaccess.RequestStore. One round trip.
func (s *Store) GetRequest(ctx context.Context, id uuid.UUID) (sa.AccessRequest, error) {
	x := s.newRequestRow()
	err := s.queryByID(ctx, s.sql(qGetRequest), id, x.scan)
	if errors.Is(err, sql.ErrNoRows) {
		return sa.AccessRequest{}, fmt.Errorf("sqlstore: request %s: %w", id, sa.ErrNotFound)
	}
	if err != nil {
		return sa.AccessRequest{}, wrap(ctx, "get request", err)
	}
	return x.r, nil
}

// ListRequests implements supportaccess.RequestStore: one query, filtering
// and ordering in the database. One round trip.
func (s *Store) ListRequests(ctx context.Context, f sa.RequestFilter, now time.Time) ([]sa.AccessRequest, error) {
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("sqlstore: list requests: %w", err)
	}
	var where []string
	var args []any
	if f.TenantID != "" {
		where = append(where, `tenant_id = ?`)
		args = append(args, f.TenantID)
	}
	if f.RequestedBy != "" {
		where = append(where, `requested_by_id = ?`)
		args = append(args, f.RequestedBy)
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
			case sa.RequestPending:
				or = append(or, `(status = ? AND expires_at > ?)`)
				args = append(args, string(sa.RequestPending), n)
			case sa.RequestExpired:
				or = append(or, `(status = ? OR (status = ? AND expires_at <= ?))`)
				args = append(args, string(sa.RequestExpired), string(sa.RequestPending), n)
			case sa.RequestApproved, sa.RequestDenied:
				or = append(or, `(status = ?)`)
				args = append(args, string(st))
			default:
				return nil, fmt.Errorf("sqlstore: list requests: %w: unknown status %q", sa.ErrInvalidInput, string(st))
			}
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	q, args := s.listQuery(`SELECT {requestCols} FROM {p}access_requests`, where, args, f.Limit)
	return queryAll(ctx, s, "list requests", q, args, func(scan func(...any) error) (sa.AccessRequest, error) {
		x := s.newRequestRow()
		err := x.scan(scan)
		return x.r, err
	})
}

// UpdateRequest implements supportaccess.RequestStore: in one transaction
// it reads the request with SELECT … FOR UPDATE (on SQLite the transaction
// holds the write lock), calls change, and writes the request and the
// events. Round trips (PostgreSQL, one event): 7, as UpdateGrant.
func (s *Store) UpdateRequest(ctx context.Context, id uuid.UUID, change func(r *sa.AccessRequest) ([]sa.Event, error)) (sa.AccessRequest, error) {
	r, _, err := s.changeRequest(ctx, "update request", id, func(r *sa.AccessRequest) (*sa.Grant, []sa.Event, error) {
		evs, err := change(r)
		return nil, evs, err
	})
	return r, err
}

// ApproveRequest implements supportaccess.RequestStore: UpdateRequest that
// also inserts the grant approve returns, in the same transaction. A grant
// ID that exists already is an error wrapping supportaccess.ErrConflict.
// Round trips (PostgreSQL, two events of one tenant): 9.
func (s *Store) ApproveRequest(ctx context.Context, id uuid.UUID, approve func(r *sa.AccessRequest) (sa.Grant, []sa.Event, error)) (sa.AccessRequest, sa.Grant, error) {
	r, g, err := s.changeRequest(ctx, "approve request", id, func(r *sa.AccessRequest) (*sa.Grant, []sa.Event, error) {
		g, evs, err := approve(r)
		return &g, evs, err
	})
	if err != nil {
		return sa.AccessRequest{}, sa.Grant{}, err
	}
	return r, *g, nil
}

// changeRequest locks the request, calls change and stores the request,
// the grant change may return and the events in one transaction.
func (s *Store) changeRequest(ctx context.Context, op string, id uuid.UUID, change func(*sa.AccessRequest) (*sa.Grant, []sa.Event, error)) (sa.AccessRequest, *sa.Grant, error) {
	var out sa.AccessRequest
	var grant *sa.Grant
	insertFailed := false
	err := s.inTx(ctx, op, func(t *txn) error {
		x := s.newRequestRow()
		row, err := t.queryRow(s.sql(qGetRequest+s.d.forUpdate), id)
		if err == nil {
			err = x.scan(row.Scan)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlstore: request %s: %w", id, sa.ErrNotFound)
		}
		if err != nil {
			return wrap(ctx, op, err)
		}
		cur := x.r
		r := cur.Clone()
		g, events, err := change(&r)
		if err != nil {
			return err
		}
		if err := stored.CheckRequestUpdate(&cur, &r); err != nil {
			return fmt.Errorf("sqlstore: %s: %w", op, err)
		}
		if g != nil {
			if err := checkGrant(g); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ts := s.d.timeArg
		if _, err := t.exec(s.sql(qUpdateRequest),
			string(r.RequestedBy.Kind), r.RequestedBy.ID, r.RequestedBy.Name, int64(r.Duration), encodeList(r.Scopes), r.Reason, r.TicketRef, ts(r.StartsAt), string(r.Status), ts(r.ExpiresAt),
			ts(r.DecidedAt), string(r.DecidedBy.Kind), r.DecidedBy.ID, r.DecidedBy.Name, r.DecisionReason, uuidArg(r.GrantID), id,
		); err != nil {
			return wrap(ctx, op, err)
		}
		if g != nil {
			if _, err := t.exec(s.q.insertGrant, s.grantArgs(g)...); err != nil {
				insertFailed = true
				grant = g
				return wrap(ctx, op+": insert grant", err)
			}
			if err := s.insertDue(t, g); err != nil {
				return wrap(ctx, op+": insert grant", err)
			}
			c := g.Clone()
			stored.Grant(&c) // as stored
			grant = &c
		}
		if err := s.appendEvents(t, events); err != nil {
			return err
		}
		out = r.Clone()
		stored.Request(&out) // as stored
		return nil
	})
	if err != nil {
		if insertFailed && ctx.Err() == nil {
			if exists, xerr := s.grantExists(ctx, grant.ID); xerr == nil && exists {
				return sa.AccessRequest{}, nil, fmt.Errorf("sqlstore: %s: grant %s: %w", op, grant.ID, sa.ErrConflict)
			}
		}
		return sa.AccessRequest{}, nil, err
	}
	return out, grant, nil
}

// ClaimExpiredRequests implements supportaccess.RequestStore. In one
// transaction (READ COMMITTED on MySQL, as ClaimTransitions) it selects up
// to limit pending requests past ExpiresAt in order of expiry with FOR
// UPDATE SKIP LOCKED (on SQLite the write lock serialises claimers), sets
// their status to expired and appends the events. Errors: limit <= 0 wraps
// supportaccess.ErrInvalidInput.
func (s *Store) ClaimExpiredRequests(ctx context.Context, now time.Time, limit int, events func(sa.AccessRequest) ([]sa.Event, error)) ([]sa.AccessRequest, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: claim expired requests: %w: limit %d", sa.ErrInvalidInput, limit)
	}
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("sqlstore: claim expired requests: %w", err)
	}
	var out []sa.AccessRequest
	err := s.inTxOpts(ctx, "claim expired requests", s.d.claimTx, func(t *txn) error {
		// Not prepared: most sweeps find nothing, and preparing would take
		// a second pooled connection while t holds one.
		rows, err := t.tx.QueryContext(ctx, s.sql(qClaimRequestsSel+s.d.skipLocked), s.d.timeArg(now), limit)
		if err != nil {
			return wrap(ctx, "claim expired requests", err)
		}
		var claimed []sa.AccessRequest
		for rows.Next() {
			x := s.newRequestRow()
			if err := x.scan(rows.Scan); err != nil {
				rows.Close()
				return wrap(ctx, "claim expired requests", err)
			}
			claimed = append(claimed, x.r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap(ctx, "claim expired requests", err)
		}
		if len(claimed) == 0 {
			return nil
		}
		args := make([]any, 0, len(claimed)+1)
		args = append(args, string(sa.RequestExpired))
		for i := range claimed {
			args = append(args, claimed[i].ID)
			claimed[i].Status = sa.RequestExpired
		}
		mark := s.sql(`UPDATE {p}access_requests` + s.d.byPK + ` SET status = ? WHERE id IN (` + placeholders(len(claimed)) + `)`)
		if _, err := t.execDynamic(mark, args...); err != nil {
			return wrap(ctx, "claim expired requests", err)
		}
		var evs []sa.Event
		if events != nil {
			for _, r := range claimed {
				ev, err := events(r.Clone())
				if err != nil {
					return err // the claim is abandoned (rolled back)
				}
				evs = append(evs, ev...)
			}
		}
		if err := s.appendEvents(t, evs); err != nil {
			return err
		}
		out = claimed
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
