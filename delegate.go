package supportaccess

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// AddGrantee adds the support principal to the named grant with the given
// ID (delegation), audited as grant.delegated (Attrs["principal"], the grant
// before and after), and tells the Notifier. It returns the grant.
//
// Who may delegate: a support actor that is itself a grantee of the grant,
// while the grant is active (support may add further personnel to a case
// it works on); a customer, while the grant is active or scheduled; in both
// cases only if the Authorizer allows ActionAddGrantee. Another actor (an
// ActorSystem automation) is judged as a customer is, so only a host
// Authorizer that allows it lets it delegate; DefaultAuthorizer does not. A grant open to any
// support principal (empty Grantees) cannot be delegated: it covers
// everyone already, and adding a name would narrow it.
//
// Adding a principal the grant already names is a no-op: the grant is
// returned unchanged, nothing is recorded and nobody is notified, so a
// retry is safe.
//
// Errors: ErrInvalidInput for malformed arguments, a generic grant, a grant
// that is expired or revoked (or scheduled, for support), or a grant that
// already names MaxGrantees principals; ErrNotFound; ErrForbidden when the
// Authorizer refuses or a support actor is not a grantee (audited); the
// store's or auditor's error, in which case the grant is unchanged.
func (m *Manager) AddGrantee(ctx context.Context, grantID uuid.UUID, principal string, by Actor) (g Grant, err error) {
	ctx, span := m.startSpan(ctx, "AddGrantee", append(m.actorAttrs(by), AttrKeyGrant.String(grantID.String()))...)
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		if err == nil {
			setTenant(span, g.TenantID)
		}
	})
	if err := validateActor("by", by); err != nil {
		return Grant{}, fmt.Errorf("add grantee: %w", err)
	}
	if err := validatePrincipal("principal", principal); err != nil {
		return Grant{}, fmt.Errorf("add grantee: %w", err)
	}
	if grantID == uuid.Nil {
		return Grant{}, fmt.Errorf("add grantee: %w: grant id is empty", ErrInvalidInput)
	}
	cur, gerr := m.getGrant(ctx, grantID) // not err: see errNotReturned
	if gerr != nil {
		return Grant{}, fmt.Errorf("add grantee: %w", gerr)
	}
	// Authorised first, as Revoke, Extend, Approve and Deny are: an actor
	// the Authorizer refuses learns nothing of the grant but that it
	// exists (ErrForbidden, not ErrNotFound: the tenant to authorise for
	// is the stored grant's), and the refusal is audited.
	if err := m.authorize(ctx, ActionAddGrantee, by, cur.TenantID, onGrant(grantID)); err != nil {
		return Grant{}, fmt.Errorf("add grantee: %w", err)
	}
	if len(cur.Grantees) == 0 {
		return Grant{}, fmt.Errorf("add grantee: %w: the grant is open to any support principal and cannot be delegated", ErrInvalidInput)
	}
	// Built-in rule whatever the Authorizer says: support delegates only
	// access it holds (judged again on the locked grant: a store's copy is
	// not trusted).
	if by.Kind == ActorSupport && !slices.Contains(cur.Grantees, by.ID) {
		err := m.refuse(ctx, ActionAddGrantee, by, cur.TenantID, onGrant(grantID), "support may only delegate a grant that names it")
		return Grant{}, fmt.Errorf("add grantee: %w", err)
	}
	changed := false
	var left Grant // the grant as the last call of the change left it
	// not err: see errNotReturned (host code runs after it)
	g, uerr := m.store.UpdateGrant(ctx, grantID, func(g *Grant) ([]Event, error) {
		changed, left = false, Grant{} // the last call decides: a store may retry a transaction
		if err := sameGrant(g, &cur); err != nil {
			return nil, err
		}
		if by.Kind == ActorSupport && !slices.Contains(g.Grantees, by.ID) {
			return nil, fmt.Errorf("%w: support may only delegate a grant that names it", ErrForbidden)
		}
		now, err := m.changeNow() // after the store locked the grant: see Manager.update
		if err != nil {
			return nil, err
		}
		st := g.Status(now)
		switch {
		case st == StatusActive:
		case st == StatusScheduled && by.Kind != ActorSupport:
		default:
			return nil, fmt.Errorf("%w: grant is %s", ErrInvalidInput, st)
		}
		if slices.Contains(g.Grantees, principal) {
			left = g.Clone()
			return nil, nil
		}
		if len(g.Grantees) >= MaxGrantees {
			return nil, fmt.Errorf("%w: the grant already names %d principals", ErrInvalidInput, MaxGrantees)
		}
		before := grantJSON(*g)
		g.Grantees = append(g.Grantees, principal)
		slices.Sort(g.Grantees)
		ev := m.newEvent(now, EventGrantDelegated, g.TenantID, g.ID, by, "")
		ev.Attrs = map[string]string{AttrPrincipal: principal}
		ev.Before, ev.After = before, grantJSON(*g)
		tagSession(ctx, &ev)
		if err := m.recordExtra(ctx, ev); err != nil {
			return nil, err
		}
		changed, left = true, g.Clone()
		return m.storeEvents(ev), nil
	})
	if uerr != nil {
		return Grant{}, fmt.Errorf("add grantee: %w", uerr)
	}
	if g, uerr = m.committed(ctx, "grant", grantID, g, left); uerr != nil {
		return Grant{}, fmt.Errorf("add grantee: %w", uerr)
	}
	if changed && m.notifier != nil {
		n := grantNotification(EventGrantDelegated, g, by, "")
		n.Principal = principal
		m.deliver(ctx, n)
	}
	return g, nil
}
