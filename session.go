package supportaccess

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Session describes the support session a request belongs to, as the
// host's resolver (see Manager.Middleware) reports it. The middleware
// copies it into the audit trail, so it must hold no secret.
type Session struct {
	// TenantID is the tenant the support principal acts in: the tenant
	// whose data the request reads or changes. Required. The middleware
	// checks this tenant's grants and nothing else — not the tenant a
	// handler serves — so when one user can reach several tenants, the
	// resolver must take it from what the request addresses (as the
	// handlers do), not from the user.
	TenantID string
	// Principal is the support principal, usually an e-mail address: the
	// generic support+<tenant>@vendor.example user or a named colleague.
	// Required.
	Principal string
	// SubjectUserID is the customer user being impersonated, if any.
	SubjectUserID string
	// SessionID identifies the host's login session in the audit trail. Use
	// an identifier or a hash of the token, never the cookie or bearer
	// token itself: it is recorded verbatim.
	SessionID string
	// MFA reports whether the support principal logged in with a second
	// factor. See RequireMFA.
	MFA bool
}

// Reasons passed to the OnSessionEnded function.
const (
	// SessionEndRevoked: the grant that admitted an in-flight request was
	// revoked and no other active grant covers the session.
	SessionEndRevoked = "revoked"
	// SessionEndExpired: that grant reached ExpiresAt and no other active
	// grant covers the session.
	SessionEndExpired = "expired"
	// SessionEndNoGrant: a new request of the session found no active grant
	// (the grant ended between requests, or never existed for this tenant
	// and principal).
	SessionEndNoGrant = "no active grant"
)

// ErrSessionEnded is the cause (context.Cause) of the request context of an
// impersonated request whose support access ended while it ran, and the
// error RecordChange and the response writer return from then on. The
// wrapping error names the reason: grant revoked, grant expired, access
// check failed, audit failed, or a scope the request uses no longer
// granted (which also wraps ErrScopeNotGranted: the session keeps its
// other access).
var ErrSessionEnded = errors.New("supportaccess: support session ended")

// Causes with which a request context is cancelled. They are allocated
// once: ending a session allocates nothing.
var (
	errEndRevoked     = fmt.Errorf("%w: grant revoked", ErrSessionEnded)
	errEndExpired     = fmt.Errorf("%w: grant expired", ErrSessionEnded)
	errEndCheckFailed = fmt.Errorf("%w: access check failed", ErrSessionEnded)
	errEndAuditFailed = fmt.Errorf("%w: audit failed", ErrSessionEnded)
	errEndScopeLost   = fmt.Errorf("%w: a scope the request uses is no longer granted: %w", ErrSessionEnded, ErrScopeNotGranted)
)

// errRefused is what the response writer returns to a handler that writes
// on after a RequireScope refusal (or a nested middleware's) became the
// response: those bytes would reach support without a support.request
// event.
var errRefused = fmt.Errorf("%w: the response is a refusal of access", ErrForbidden)

// endReasonCheckFailed and endReasonAuditFailed end a request (fail closed)
// without telling the host to drop the session: the cause is an outage, not
// the end of the grant. endReasonScopeLost ends a request that used a scope
// no active grant allows any more (a grant carrying an elevated scope, or
// write, ended) while a grant still covers the session: its next request
// is admitted, so the host is not told to drop it either.
const (
	endReasonCheckFailed = "check failed"
	endReasonAuditFailed = "audit failed"
	endReasonScopeLost   = "scope no longer granted"
)

// endCause maps an end reason to the context cause.
func endCause(reason string) error {
	switch reason {
	case SessionEndRevoked:
		return errEndRevoked
	case SessionEndExpired:
		return errEndExpired
	case endReasonAuditFailed:
		return errEndAuditFailed
	case endReasonScopeLost:
		return errEndScopeLost
	default:
		return errEndCheckFailed
	}
}

// GenericSupportUser returns a RequireMFA exemption for the generic
// support user of each tenant: it reports whether the session's principal
// is pattern with every "{tenant}" replaced by the session's TenantID (for
// example "support+{tenant}@vendor.example"). Every other principal is a
// named one and must log in with a second factor.
func GenericSupportUser(pattern string) func(Session) bool {
	const ph = "{tenant}"
	// The text before the first placeholder and after the last one: a
	// quick test before the comparison with the pattern filled in.
	first, last := strings.Index(pattern, ph), strings.LastIndex(pattern, ph)
	templated := first >= 0
	var before, after string
	if templated {
		before, after = pattern[:first], pattern[last+len(ph):]
	}
	return func(s Session) bool {
		if !templated {
			return s.Principal == pattern
		}
		p := s.Principal
		if !strings.HasPrefix(p, before) || !strings.HasSuffix(p, after) || len(p) < len(before)+len(after) {
			return false
		}
		return strings.ReplaceAll(pattern, ph, s.TenantID) == p
	}
}

// stateKey is the context key of the *reqState of an impersonated request.
type stateKey struct{}

// stateFrom returns the state the middleware put in ctx, or nil.
func stateFrom(ctx context.Context) *reqState {
	if ctx == nil {
		return nil
	}
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// SessionFromContext returns the support session of an impersonated request
// admitted by Manager.Middleware, and false for any other request.
func SessionFromContext(ctx context.Context) (Session, bool) {
	st := stateFrom(ctx)
	if st == nil {
		return Session{}, false
	}
	return st.sess, true
}

// GrantFromContext returns the grant that admitted an impersonated request
// (Manager.Check's answer for the request's method scope; its ExpiresAt is
// what a "support access is active until …" banner shows), and false for
// any other request. The grant is a copy the caller may keep, as it was
// when the request was admitted: an Extend, a shortening or a revocation
// while the request runs does not change it (the middleware itself ends
// the request when its grant ends; ask Manager.Check for the current end).
func GrantFromContext(ctx context.Context) (Grant, bool) {
	st := stateFrom(ctx)
	if st == nil {
		return Grant{}, false
	}
	return st.grant.Clone(), true
}
