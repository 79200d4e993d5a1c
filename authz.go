package supportaccess

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Action names what an actor tries to do, for the Authorizer.
type Action string

// Actions the Manager authorises.
const (
	ActionGrant      Action = "grant"
	ActionExtend     Action = "extend"
	ActionRevoke     Action = "revoke"
	ActionRequest    Action = "request"
	ActionApprove    Action = "approve"
	ActionDeny       Action = "deny"
	ActionAddGrantee Action = "add_grantee"
)

// Authorizer decides whether by may perform action on tenantID. It returns
// nil to allow; any error refuses (the Manager wraps it in ErrForbidden
// unless it already is). Hosts plug their role model here (owner, admin,
// authorised contact). It must be safe for concurrent use.
type Authorizer func(ctx context.Context, action Action, by Actor, tenantID string) error

// WithAuthorizer replaces DefaultAuthorizer. Whatever the Authorizer says,
// a support actor may not grant or extend access (it asks with
// RequestAccess), may only revoke a grant that covers it and may only
// delegate a grant that names it, and only customers approve or deny
// requests. Nil is ignored.
func WithAuthorizer(a Authorizer) Option {
	return optionFunc(func(m *Manager) {
		if a != nil {
			m.authorize_ = a
		}
	})
}

// DefaultAuthorizer allows customers to grant, extend, approve and deny;
// customers, the system and support (its own access only) to revoke;
// support to request access; support and customers to add grantees. It
// refuses everything else.
func DefaultAuthorizer(_ context.Context, action Action, by Actor, _ string) error {
	ok := false
	switch action {
	case ActionGrant, ActionExtend, ActionApprove, ActionDeny:
		ok = by.Kind == ActorCustomer
	case ActionRevoke:
		ok = by.Kind.Valid()
	case ActionRequest:
		ok = by.Kind == ActorSupport
	case ActionAddGrantee:
		ok = by.Kind == ActorSupport || by.Kind == ActorCustomer
	}
	if !ok {
		return fmt.Errorf("%s may not %s", by.Kind, action)
	}
	return nil
}

// authorize runs the Authorizer; a refusal is audited and returned wrapping
// ErrForbidden.
func (m *Manager) authorize(ctx context.Context, action Action, by Actor, tenantID string, grantID uuid.UUID) error {
	// Built-in rule whatever the Authorizer says: the vendor's support
	// never opens or lengthens its own way in; it asks (RequestAccess).
	if by.Kind == ActorSupport && (action == ActionGrant || action == ActionExtend) {
		return m.refuse(ctx, action, by, tenantID, grantID, "support may not "+string(action)+" access; it asks with RequestAccess")
	}
	err := m.authorize_(ctx, action, by, tenantID)
	if err == nil {
		return nil
	}
	return m.refuse(ctx, action, by, tenantID, grantID, err.Error())
}

// refuse records an action.refused event and returns the ErrForbidden error.
func (m *Manager) refuse(ctx context.Context, action Action, by Actor, tenantID string, grantID uuid.UUID, why string) error {
	ev := m.newEvent(m.now(), EventActionRefused, tenantID, grantID, by, why)
	ev.Attrs = map[string]string{AttrAction: string(action)}
	err := fmt.Errorf("%w: %s", ErrForbidden, why)
	if aerr := m.record(ctx, ev); aerr != nil {
		m.reportError(ctx, fmt.Errorf("audit of refused %s: %w", action, aerr))
	}
	return err
}

// auditPolicyRefusal records an action.refused event when err is (or
// wraps) a refusal by the policy of action by on tenantID (and grantID, if
// any), so that it is audited as an Authorizer's refusal is. Malformed
// input is not audited: nothing is stored for it.
func (m *Manager) auditPolicyRefusal(ctx context.Context, action Action, by Actor, tenantID string, grantID uuid.UUID, err error) {
	var pr *policyRefusal
	if tenantID != "" && errors.As(err, &pr) {
		_ = m.refuse(ctx, action, by, tenantID, grantID, pr.why) // its error is err's
	}
}
