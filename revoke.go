package supportaccess

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Revoke ends an active or scheduled grant at once: the next Check denies.
// Customers and the system may revoke any grant of the tenant (subject to
// the Authorizer); a support actor only a grant that covers it (giving back
// its own access). It records grant.revoked with the grant before and after.
// With the SQL store it takes two round trips: a read and one transaction.
//
// Errors: ErrNotFound; ErrInvalidInput when the grant already expired or was
// revoked (nothing changes; of two concurrent revokes exactly one succeeds);
// ErrForbidden (audited); the store's or auditor's error, in which case the
// grant is unchanged and a retry may succeed — except when the database
// committed but its reply was lost (the connection dropped during the
// commit): then the grant is revoked, with its event, and a retry returns
// ErrInvalidInput ("already revoked"). Get tells which.
func (m *Manager) Revoke(ctx context.Context, id uuid.UUID, by Actor, reason string) (g Grant, err error) {
	ctx, span := m.startSpan(ctx, "Revoke", append(m.actorAttrs(by), AttrKeyGrant.String(id.String()))...)
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		if err == nil {
			setTenant(span, g.TenantID)
		}
	})
	if err := validateActor("by", by); err != nil {
		return Grant{}, fmt.Errorf("revoke: %w", err)
	}
	if err := validateReason("reason", reason); err != nil {
		return Grant{}, fmt.Errorf("revoke: %w", err)
	}
	if id == uuid.Nil {
		return Grant{}, fmt.Errorf("revoke: %w: grant id is empty", ErrInvalidInput)
	}
	g, err = m.revoke(ctx, id, by, reason)
	if err != nil {
		return Grant{}, fmt.Errorf("revoke: %w", err)
	}
	return g, nil
}

func (m *Manager) revoke(ctx context.Context, id uuid.UUID, by Actor, reason string) (Grant, error) {
	g, err := m.revokeQuietly(ctx, id, by, reason, nil)
	if err != nil {
		return Grant{}, err
	}
	m.notify(ctx, EventGrantRevoked, g, by, reason)
	return g, nil
}

// revokeQuietly is revoke without the Notifier: it commits the revocation
// and tells the middleware (in-flight requests end), and leaves telling
// the customer to the caller.
//
// sel, when not nil, is the bulk revocation's selection (see update).
func (m *Manager) revokeQuietly(ctx context.Context, id uuid.UUID, by Actor, reason string, sel func(*Grant) bool) (Grant, error) {
	g, err := m.update(ctx, id, ActionRevoke, by, sel, func(g *Grant) (Event, error) {
		now, err := m.changeNow() // after the store locked the grant: see Manager.update
		if err != nil {
			return Event{}, err
		}
		switch st := g.Status(now); st {
		case StatusActive, StatusScheduled:
		default:
			return Event{}, &endedError{fmt.Errorf("%w: grant is already %s", ErrInvalidInput, st)}
		}
		before := grantJSON(*g)
		g.RevokedAt, g.RevokedBy, g.RevokeReason = now, by, reason
		ev := m.newEvent(now, EventGrantRevoked, g.TenantID, g.ID, by, reason)
		ev.Before, ev.After = before, grantJSON(*g)
		tagSession(ctx, &ev)
		return ev, nil
	})
	if err != nil {
		return Grant{}, err
	}
	m.revoked(g) // first: in-flight requests end now, before host code (the meter, the Notifier) runs
	m.tel.revoked.Add(ctx, 1)
	return g, nil
}

// RevokeTenant revokes every active and scheduled grant of tenantID and
// returns the grants it revoked. Each revocation is atomic on its own;
// grants that end concurrently are skipped (and only those: an auditor's
// refusal stops it like any other error). A grant the store lists that is
// not of tenantID is left alone and reported to the error handler (see
// WithErrorHandler). On the first error it stops and
// returns what it revoked so far with the error. In-flight requests of a
// revoked grant end as each revocation commits; the Notifier hears of the
// revoked grants after the last one, under a context that outlives ctx by
// up to one second. A support actor (giving back its own access) revokes
// only the grants that cover it; the others are left. Pending access
// requests of the tenant stay pending (an administrator may still approve
// one, which grants access again): a host's "end all support access"
// action denies them too (ListRequests with the TenantID and
// RequestPending, then Deny). Errors: invalid
// arguments wrap ErrInvalidInput, a refusal of the Authorizer ErrForbidden
// (audited), a store failure is returned as it is.
func (m *Manager) RevokeTenant(ctx context.Context, tenantID string, by Actor, reason string) ([]Grant, error) {
	return m.revokeMatching(ctx, "revoke tenant", "RevokeTenant", ListFilter{TenantID: tenantID}, false, by, reason)
}

// RevokeTicket revokes the active and scheduled grants of tenantID linked to
// ticketRef (for example when the ticket is closed); grants of other tickets
// keep their access. Pending access requests of the ticket stay pending
// (an administrator may still approve one): a host closing the ticket
// denies them too (ListRequests with the TicketRef, then Deny). Errors as
// RevokeTenant; an empty ticketRef is ErrInvalidInput.
func (m *Manager) RevokeTicket(ctx context.Context, tenantID, ticketRef string, by Actor, reason string) ([]Grant, error) {
	return m.revokeMatching(ctx, "revoke ticket", "RevokeTicket", ListFilter{TenantID: tenantID, TicketRef: ticketRef}, true, by, reason)
}

// endedError refuses to change a grant that has ended: it had expired or
// was revoked when the store locked it, or the store refused it as final
// (its expiry recorded, see Store.UpdateGrant). It wraps ErrInvalidInput.
// The bulk revocations skip such a grant — and only such a one: an
// auditor's or the store's error that happens to wrap ErrInvalidInput
// too stops them and is returned, as Revoke returns it, since the grant
// kept its access.
type endedError struct{ err error }

func (e *endedError) Error() string { return e.err.Error() }
func (e *endedError) Unwrap() error { return e.err }

// revokeMatching revokes the active and scheduled grants f selects; op
// names the operation in errors, spanOp in its span; byTicket: f must name
// a ticket (RevokeTicket).
func (m *Manager) revokeMatching(ctx context.Context, op, spanOp string, f ListFilter, byTicket bool, by Actor, reason string) (out []Grant, err error) {
	ctx, span := m.startSpan(ctx, spanOp, m.actorAttrs(by)...)
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		span.SetAttributes(AttrKeyCount.Int(len(out)))
	})
	if err := validateTenantRef("tenantID", f.TenantID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if byTicket && f.TicketRef == "" { // under the span, as every other refusal
		return nil, fmt.Errorf("%s: %w: ticketRef is required", op, ErrInvalidInput)
	}
	if err := validateTicketRef("ticketRef", f.TicketRef); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := validateActor("by", by); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := validateReason("reason", reason); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := m.authorize(ctx, ActionRevoke, by, f.TenantID, target{}); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	f.Statuses = []Status{StatusActive, StatusScheduled}
	gs, lerr := m.store.ListGrants(ctx, f, m.now()) // not err: see errNotReturned
	if lerr != nil {
		return nil, fmt.Errorf("%s: %w", op, lerr)
	}
	// A grant of another tenant or ticket is left alone (its status is
	// judged again as it is revoked).
	gs = keepSelected(ctx, m, op, "grant", gs, 0, func(g *Grant) (bool, uuid.UUID) { return f.selects(g), g.ID })
	// Every revocation commits (and ends its in-flight requests) before
	// the first Notifier call, so that no grant of the tenant keeps access
	// for the length of another's notification.
	defer func() {
		// Committed revocations are told also when the caller's context
		// ended meanwhile (up to lateRecordTimeout after it).
		// A panic of host code while one is told (the error handler that
		// hears of its failure) does not leave the others untold: it is
		// raised once every revoked grant has been told, as in Sweep.
		nctx, cancel := lateContext(ctx, lateRecordTimeout)
		defer cancel()
		var kept firstPanic
		for _, g := range out {
			kept.keep(func() { m.notify(nctx, EventGrantRevoked, g, by, reason) })
		}
		kept.raise()
	}()
	for _, g := range gs {
		if by.Kind == ActorSupport && !g.Covers(by.ID) {
			continue
		}
		r, err := m.revokeQuietly(ctx, g.ID, by, reason, f.selects)
		var ended *endedError
		if errors.As(err, &ended) { // ended meanwhile
			continue
		}
		if errors.Is(err, errNotSelected) {
			// The store listed it, but the grant stored under its ID is
			// another tenant's or ticket's: left alone (review 165).
			m.reportError(ctx, fmt.Errorf("%s: the store listed grant %s, which the stored grant of that ID does not match: left alone", op, g.ID))
			continue
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, r)
	}
	return out, nil
}
