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
	// ActionPurgeAudit names Manager.PurgeAudit in refusal events; it is
	// not passed to the Authorizer.
	ActionPurgeAudit Action = "purge_audit"
)

// Authorizer decides whether by may perform action on tenantID. It returns
// nil to allow; any error refuses: the Manager returns an error that
// wraps ErrForbidden and, for errors.Is and errors.As, the Authorizer's
// error — except the library's other sentinels that error may wrap (an
// ErrNotFound of a membership lookup, say), so that a refusal is never
// taken for another outcome. Hosts plug their role model here (owner, admin,
// authorised contact). It must be safe for concurrent use.
//
// tenantID is the tenant the action changes, as stored: for Grant,
// RequestAccess, RevokeTenant and RevokeTicket the one named in the call;
// for Extend, Revoke and AddGrantee the stored grant's; for Approve and
// Deny the stored request's. So an Authorizer that checks by's rights in
// tenantID also refuses a grant or request ID of another tenant taken
// from a URL.
type Authorizer func(ctx context.Context, action Action, by Actor, tenantID string) error

// WithAuthorizer replaces DefaultAuthorizer. Whatever the Authorizer says,
// a support actor may not grant or extend access (it asks with
// RequestAccess), may only revoke a grant that covers it and may only
// delegate a grant that names it, and only customers approve or deny
// requests; and a call made with the context of a request the middleware
// admitted for support (an impersonated request, see SessionFromContext)
// is refused unless by is that support principal — support using the
// customer's admin UI cannot act in the customer's name. Pass the
// request's context to the Manager from admin handlers so that this rule
// can apply. Nil is ignored.
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
// refuses everything else. It does not look at tenantID: an Actor does not
// say which tenant a customer administers, so by default any customer
// actor may act on any tenant (and on any grant or request ID it names).
// Hosts with more than one tenant replace it (WithAuthorizer) with a rule
// that checks the actor's tenant.
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

// target is what a call that may be refused is about: a grant, an access
// request, or neither (a new grant or request). A refusal's action.refused
// event names it (GrantID; Attrs[AttrRequestID]).
type target struct{ grant, request uuid.UUID }

// onGrant is the target grant id; onRequest the access request id.
func onGrant(id uuid.UUID) target   { return target{grant: id} }
func onRequest(id uuid.UUID) target { return target{request: id} }

// authorize runs the Authorizer; a refusal is audited and returned wrapping
// ErrForbidden.
func (m *Manager) authorize(ctx context.Context, action Action, by Actor, tenantID string, on target) error {
	if err := m.refuseImpersonated(ctx, action, by, tenantID, on); err != nil {
		return err
	}
	// Built-in rule whatever the Authorizer says: the vendor's support
	// never opens or lengthens its own way in; it asks (RequestAccess).
	if by.Kind == ActorSupport && (action == ActionGrant || action == ActionExtend) {
		return m.refuse(ctx, action, by, tenantID, on, "support may not "+string(action)+" access; it asks with RequestAccess")
	}
	err := m.authorize_(ctx, action, by, tenantID)
	if err == nil {
		return nil
	}
	text := errorMessage(err) // host code, called once
	return m.refuseAs(ctx, action, by, tenantID, on, cleanText(text), authorizerError(err, text))
}

// authorizerError is the error of an Authorizer's refusal err, whose text
// was read once: a forbiddenError, whose message is err's text, prefixed
// with ErrForbidden's unless err already is ErrForbidden — or
// ErrForbidden with err's text only when walking err's chain panics (see
// newHostError).
func authorizerError(err error, text string) error {
	switch {
	case !exposable(err):
		return fmt.Errorf("%w: %s", ErrForbidden, text)
	case errors.Is(err, ErrForbidden):
		return &forbiddenError{msg: text, err: err}
	}
	return &forbiddenError{msg: ErrForbidden.Error() + ": " + text, err: err}
}

// forbiddenError wraps ErrForbidden and an Authorizer's own error err:
// errors.Is finds ErrForbidden and what err wraps but the library's other
// sentinels, errors.As what err's chain holds. So an error returned by
// the Manager wraps one sentinel only, whatever the host's says.
type forbiddenError struct {
	msg string
	err error
}

func (e *forbiddenError) Error() string { return e.msg }
func (e *forbiddenError) Unwrap() error { return ErrForbidden }

// Is reports whether err wraps target, unless target is a sentinel of the
// library (ErrForbidden is found through Unwrap).
func (e *forbiddenError) Is(target error) bool {
	return !isSentinel(target) && errors.Is(e.err, target)
}

// As finds target in err's chain.
func (e *forbiddenError) As(target any) bool { return errors.As(e.err, target) }

// refuseImpersonated is a built-in rule whatever the Authorizer says: a
// call made while serving a request that a Manager's middleware admitted
// for support (ctx carries its session) acts for that support principal,
// whoever by names. Support browsing the customer's admin UI while
// impersonating its administrator must not grant itself access, or revoke,
// decide or purge, in the customer's name: such a call is refused unless by
// is that very support principal (who may then do what support may), and
// the refusal is audited with the support principal as its actor.
func (m *Manager) refuseImpersonated(ctx context.Context, action Action, by Actor, tenantID string, on target) error {
	s, ok := SessionFromContext(ctx)
	if !ok || (by.Kind == ActorSupport && by.ID == s.Principal) {
		return nil
	}
	if tenantID == "" {
		tenantID = s.TenantID
	}
	return m.refuse(ctx, action, Actor{Kind: ActorSupport, ID: s.Principal}, tenantID, on,
		fmt.Sprintf("called in an impersonated support session as %s %q", by.Kind, by.ID))
}

// refuse records an action.refused event and returns the ErrForbidden error.
// The event is recorded also when ctx is cancelled or past its deadline
// (the client of an impersonated admin request went away), with ctx's
// values and up to lateRecordTimeout after ctx ends, as notify.failed is:
// the caller controls its context, and ending it must not keep a refused
// attempt out of the trail. It goes to every auditor whatever the others
// return (see Manager.recordFact); a failure goes to the error handler.
func (m *Manager) refuse(ctx context.Context, action Action, by Actor, tenantID string, on target, why string) error {
	return m.refuseAs(ctx, action, by, tenantID, on, why, fmt.Errorf("%w: %s", ErrForbidden, why))
}

// refuseAs is refuse returning err, which must wrap ErrForbidden. At a
// clock no record may hold it records nothing and returns checkClock's
// error instead (see WithNow): the change is refused all the same.
func (m *Manager) refuseAs(ctx context.Context, action Action, by Actor, tenantID string, on target, why string, err error) error {
	now, cerr := m.changeNow()
	if cerr != nil {
		return cerr
	}
	ev := m.newEvent(now, EventActionRefused, tenantID, on.grant, by, why)
	ev.Attrs = map[string]string{AttrAction: string(action)}
	if on.request != uuid.Nil {
		ev.Attrs[AttrRequestID] = on.request.String()
	}
	tagSession(ctx, &ev)
	rctx, cancel := lateContext(ctx, lateRecordTimeout)
	defer cancel()
	m.recordFact(rctx, ev, func(aerr error) {
		if aerr != nil {
			m.reportError(ctx, fmt.Errorf("audit of refused %s: %w", action, aerr))
		}
	})
	return err
}

// auditPolicyRefusal records an action.refused event when err is (or
// wraps) a refusal by the policy of action by on tenantID (and grantID, if
// any), so that it is audited as an Authorizer's refusal is. Malformed
// input is not audited: nothing is stored for it.
func (m *Manager) auditPolicyRefusal(ctx context.Context, action Action, by Actor, tenantID string, on target, err error) {
	var pr *policyRefusal
	if tenantID != "" && errors.As(err, &pr) {
		_ = m.refuse(ctx, action, by, tenantID, on, pr.why) // its error is err's
	}
}
