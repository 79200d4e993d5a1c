package main

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	sa "github.com/supportaccess/supportaccess"
)

// accessMiddleware is the library's middleware around the tenant pages:
// every request of an impersonated session needs an active grant (read for
// GET, write for POST), is audited as support.request, and is cut off as
// soon as the grant ends. Customer requests pass through untouched.
//
// denied renders the middleware's refusals (accessDenied on the tenant
// pages).
func (a *app) accessMiddleware(denied func(http.ResponseWriter, *http.Request, sa.Denial)) func(http.Handler) http.Handler {
	mw := a.m.Middleware(a.resolveSession,
		sa.WithDeniedHandler(denied),
		sa.OnSessionEnded(a.sessionEnded),
		sa.WithMiddlewareErrorHandler(a.logError),
	)
	return func(next http.Handler) http.Handler {
		return mw(a.markAdmitted(next))
	}
}

// requireScope demands a host-defined scope from impersonated requests
// (the library's RequireScope; customers pass).
func requireScope(s sa.Scope) func(http.Handler) http.Handler { return sa.RequireScope(s) }

// resolveSession tells the middleware whether r is an impersonated request
// and of which support session. The session ID recorded in the audit trail
// is a separate random ID of the server-side session, never a cookie value.
func (a *app) resolveSession(r *http.Request) (sa.Session, bool) {
	v := viewerFrom(r.Context())
	if !v.Impersonating() {
		return sa.Session{}, false
	}
	return sa.Session{
		TenantID: v.Imp.TenantID, Principal: v.Imp.Principal, SubjectUserID: v.Imp.SubjectUserID,
		SessionID: v.Imp.AuditID,
		MFA:       true, // the demo login stands in for the vendor's MFA-protected staff login
	}, true
}

// markAdmitted remembers that the support session got in, so that a later
// refusal reads "access ended" rather than "no access", and when: a
// request admitted on a grant that started after the session's access
// had ended (its grant expired, was revoked or shortened, and a new one
// was given before a Sweep told the Notifier) ends the session instead of
// reviving it (see coveredSince).
func (a *app) markAdmitted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		if g, ok := grantFromContext(r.Context()); ok && v.Impersonating() {
			now := a.m.Now()
			covered, err := a.coveredSince(r.Context(), *v.Imp, g, now)
			if err != nil {
				// Not known (the store is down): nothing is served, and
				// the session is judged again at its next request.
				a.logError(r.Context(), err)
				a.accessDenied(w, r, sa.Denial{Status: http.StatusServiceUnavailable, Code: sa.DeniedUnavailable})
				return
			}
			if !covered {
				a.sessions.endImpersonation(v.Imp.ID)
				clearCookie(w, r, impersonationCookie)
				a.renderAccessEnded(w, r, v, "The customer's grant for this tenant ended before this request, so your support session was ended. A new grant needs a new support session: sign in to the tenant again.")
				return
			}
			a.sessions.admitted(v.Imp.ID, now, g.ID)
		}
		next.ServeHTTP(w, r)
	})
}

// coveredSince reports whether grants covered support session imp without
// a gap from its last admitted request until now, g being a grant that
// covers it now. A session never admitted is new: nothing to continue.
// When g also admitted that request, g itself covered the whole time (a
// grant's window has no hole, and g is not revoked: it covers now). A
// clock that went back before that request leaves the time between
// unknown: not covered (fail closed). Otherwise the tenant's grants are
// listed (see coverage).
func (a *app) coveredSince(ctx context.Context, imp impersonation, g sa.Grant, now time.Time) (bool, error) {
	switch {
	case !imp.Admitted || g.ID == imp.LastGrantID:
		return true, nil
	case now.Before(imp.LastAdmitted):
		return false, nil
	}
	gs, err := a.m.List(ctx, sa.ListFilter{TenantID: imp.TenantID})
	if err != nil {
		return false, err
	}
	return !coveredUntil(gs, imp.Principal, imp.LastAdmitted, uuid.Nil).Before(now), nil
}

// coveredUntil returns how far from the time from the grants gs cover
// principal without a gap (from itself when none covers it then), each
// from its start to its end or revocation, leaving out the grant except
// (when not zero). One pass over the grants in order of their start.
func coveredUntil(gs []sa.Grant, principal string, from time.Time, except uuid.UUID) time.Time {
	type span struct{ start, end time.Time }
	var spans []span
	for _, c := range gs {
		end := grantEnd(c)
		if !c.RevokedAt.IsZero() && c.RevokedAt.Before(end) {
			end = c.RevokedAt
		}
		if c.ID != except && c.Covers(principal) && end.After(from) {
			spans = append(spans, span{c.StartsAt, end})
		}
	}
	slices.SortFunc(spans, func(x, y span) int { return x.start.Compare(y.start) })
	t := from
	for _, s := range spans {
		if s.start.After(t) {
			break
		}
		if s.end.After(t) {
			t = s.end
		}
	}
	return t
}

// grantEnd is g's end, an unlimited grant's as far in the future as a
// grant's time may be.
func grantEnd(g sa.Grant) time.Time {
	if g.ExpiresAt.IsZero() {
		return time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	}
	return g.ExpiresAt
}

// sessionEnded is the middleware's OnSessionEnded hook: the support session
// is dropped on the server (the cookie is cleared by the denied page).
func (a *app) sessionEnded(s sa.Session, reason string) {
	a.sessions.endImpersonationByAuditID(s.SessionID)
}

// notifyCheckTimeout bounds the Notifier's checks of a tenant's sessions.
const notifyCheckTimeout = 5 * time.Second

// notified is the Manager's Notifier: when a grant is revoked or expires,
// the tenant's support sessions that no active grant continues (see
// coveredSince) end at once — and when a principal is added to a grant,
// its sessions whose access had ended before — also those whose next request
// would not pass through the middleware (the support console): a later
// grant starts new sessions, it does not revive these. It fails closed: a
// session whose check fails (the store is down) ends too. The checks do
// not use the caller's context, which may have ended by now (the
// administrator who revoked closed the tab), only its values.
func (a *app) notified(ctx context.Context, n sa.Notification) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyCheckTimeout)
	defer cancel()
	switch n.Type {
	case sa.EventGrantRevoked, sa.EventGrantExpired:
		for _, imp := range a.sessions.impersonationsOf(n.TenantID) {
			g, err := a.m.Check(ctx, imp.TenantID, imp.Principal, sa.ScopeRead)
			covered := false
			if err == nil {
				covered, err = a.coveredSince(ctx, imp, g, a.m.Now())
			}
			if err != nil || !covered {
				a.sessions.endImpersonation(imp.ID)
			}
		}
	case sa.EventGrantDelegated:
		// The principal added is covered by the grant from now on, not
		// from the grant's start: its sessions whose access had ended
		// before (no grant but this one would have covered them since
		// their last admitted request) end, rather than go on under it.
		var gs []sa.Grant
		var err error
		for _, imp := range a.sessions.impersonationsOf(n.TenantID) {
			if imp.Principal != n.Principal || !imp.Admitted {
				continue
			}
			if gs == nil && err == nil {
				gs, err = a.m.List(ctx, sa.ListFilter{TenantID: n.TenantID})
			}
			if err != nil || coveredUntil(gs, imp.Principal, imp.LastAdmitted, n.GrantID).Before(a.m.Now()) {
				a.sessions.endImpersonation(imp.ID)
			}
		}
	}
	return nil
}

// supportMayWrite reports whether the impersonating viewer's access allows
// changes (to tell support before it tries).
func (a *app) supportMayWrite(r *http.Request) bool {
	v := viewerFrom(r.Context())
	_, err := a.m.Check(r.Context(), v.Imp.TenantID, v.Imp.Principal, sa.ScopeWrite)
	return err == nil
}

// grantFromContext returns the grant that admitted an impersonated request.
var grantFromContext = sa.GrantFromContext

// recordChange audits a change made by support with its before and after
// values; it does nothing for customers.
var recordChange = sa.RecordChange

// accessDenied renders the middleware's refusals as pages: a missing scope
// is a 403 that keeps the session; no active grant (never, or not any
// more) ends the support session; an outage is a 503.
func (a *app) accessDenied(w http.ResponseWriter, r *http.Request, d sa.Denial) {
	v := viewerFrom(r.Context())
	switch {
	case d.Code == sa.DeniedUnavailable:
		w.Header().Set("Retry-After", "5")
		a.render(w, r, d.Status, "message", page{Title: "Try again", Data: messageData{
			Kind: "denied", Title: "Support access cannot be verified right now",
			Message: "The request was refused because access could not be checked or recorded. Try again in a moment.",
			Back:    "/app/", BackLabel: "Back",
		}})
		return
	case scopeDenial(d):
		a.render(w, r, http.StatusForbidden, "message", page{Title: "Not allowed", Data: messageData{
			Kind: "denied", Title: "Not allowed with your current access",
			Message: "The customer granted support access without this permission, so this action was refused. Ask the customer to grant the scope it needs.",
			Back:    "/app/", BackLabel: "Back",
		}})
		return
	}
	clearCookie(w, r, impersonationCookie)
	if v.Impersonating() {
		a.sessions.endImpersonation(v.Imp.ID)
	}
	if d.Code == sa.DeniedSessionEnded || (v.Impersonating() && v.Imp.Admitted) {
		a.renderAccessEnded(w, r, v, "The customer's grant for this tenant was revoked or has expired, so your support session was ended.")
		return
	}
	a.render(w, r, http.StatusForbidden, "message", page{Title: "No active support access", Viewer: &viewer{Login: v.Login, User: v.User}, Data: messageData{
		Kind: "denied", Title: "No active support access",
		Message: v.Tenant.Name + " has not granted support access (or it has not started yet). Ask the customer's administrator to grant access, then sign in again.",
		Back:    "/support/", BackLabel: "Back to the support console",
	}})
}

// scopeDenial reports whether d refused a scope the grant lacks (the
// session goes on).
func scopeDenial(d sa.Denial) bool {
	return errors.Is(d.Err, sa.ErrScopeNotGranted) || strings.HasPrefix(d.Reason, "scope not granted")
}

// adminDenied renders the middleware's refusals on the customer admin
// pages: the "Customers only" page whatever scope was missing — support
// never gets in there, so no scope is worth asking the customer for —
// and otherwise (no active grant, an outage) what the tenant pages show.
func (a *app) adminDenied(w http.ResponseWriter, r *http.Request, d sa.Denial) {
	if scopeDenial(d) {
		a.renderCustomersOnly(w, r)
		return
	}
	a.accessDenied(w, r, d)
}

// renderCustomersOnly refuses support on the customer admin pages.
func (a *app) renderCustomersOnly(w http.ResponseWriter, r *http.Request) {
	a.renderError(w, r, http.StatusForbidden, "Customers only",
		"Support access is managed by the customer's administrators; support staff cannot see or change it.")
}

// renderAccessEnded tells support its session is over.
func (a *app) renderAccessEnded(w http.ResponseWriter, r *http.Request, v *viewer, msg string) {
	a.render(w, r, http.StatusForbidden, "message", page{Title: "Support access ended", Viewer: &viewer{Login: v.Login, User: v.User}, Data: messageData{
		Kind: "ended", Title: "Support access ended", Message: msg,
		Back: "/support/", BackLabel: "Back to the support console",
	}})
}
