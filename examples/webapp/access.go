package main

import (
	"context"
	"errors"
	"net/http"

	sa "github.com/supportaccess/supportaccess"
)

// TEMPORARY stand-in until the library's middleware lands: it applies the
// same rule (safe methods need read, others write) with Manager.Check.

type grantKey struct{}

// accessMiddleware checks every request of an impersonated session against
// the tenant's grants.
func (a *app) accessMiddleware() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, ok := a.resolveSession(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			scope := sa.ScopeWrite
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
				scope = sa.ScopeRead
			}
			g, err := a.m.Check(r.Context(), s.TenantID, s.Principal, scope)
			if err != nil {
				a.accessDenied(w, r, err)
				return
			}
			a.sessions.admitted(s.SessionID)
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, g)))
		})
	}
}

func requireScope(s sa.Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if g, ok := grantFromContext(r.Context()); ok && !g.Allows(s) {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func grantFromContext(ctx context.Context) (sa.Grant, bool) {
	g, ok := ctx.Value(grantKey{}).(sa.Grant)
	return g, ok
}

func recordChange(ctx context.Context, what string, before, after any) error { return nil }

// resolveSession tells the middleware whether r is an impersonated request
// and of which support session.
func (a *app) resolveSession(r *http.Request) (accessSession, bool) {
	v := viewerFrom(r.Context())
	if !v.Impersonating() {
		return accessSession{}, false
	}
	return accessSession{TenantID: v.Imp.TenantID, Principal: v.Imp.Principal, SubjectUserID: v.Imp.SubjectUserID, SessionID: v.Imp.ID}, true
}

// supportMayWrite reports whether the impersonating viewer's access allows
// changes.
func (a *app) supportMayWrite(r *http.Request) bool {
	v := viewerFrom(r.Context())
	_, err := a.m.Check(r.Context(), v.Imp.TenantID, v.Imp.Principal, sa.ScopeWrite)
	return err == nil
}

// accessDenied renders the middleware's refusal: a missing scope is a 403
// that keeps the session; no active grant ends the support session.
func (a *app) accessDenied(w http.ResponseWriter, r *http.Request, err error) {
	v := viewerFrom(r.Context())
	if errors.Is(err, sa.ErrScopeNotGranted) {
		a.render(w, r, http.StatusForbidden, "message", page{Title: "Not allowed", Data: messageData{
			Kind: "denied", Title: "Not allowed with your current access",
			Message: "The customer granted support access without this permission, so this action was refused. Ask the customer to grant the scope it needs.",
			Back:    "/app/", BackLabel: "Back",
		}})
		return
	}
	if !errors.Is(err, sa.ErrNoActiveGrant) {
		a.log.ErrorContext(r.Context(), "access check", "err", err)
	}
	clearCookie(w, r, impersonationCookie)
	a.sessions.endImpersonation(v.Imp.ID)
	if v.Imp.Admitted {
		a.renderAccessEnded(w, r, v, "The customer's grant for this tenant was revoked or has expired, so your support session was ended.")
		return
	}
	a.render(w, r, http.StatusForbidden, "message", page{Title: "No active support access", Viewer: &viewer{Login: v.Login, User: v.User}, Data: messageData{
		Kind: "denied", Title: "No active support access",
		Message: v.Tenant.Name + " has not granted support access (or it has not started yet). Ask the customer's administrator to grant access, then sign in again.",
		Back:    "/support/", BackLabel: "Back to the support console",
	}})
}

// renderAccessEnded tells support its session is over.
func (a *app) renderAccessEnded(w http.ResponseWriter, r *http.Request, v *viewer, msg string) {
	a.render(w, r, http.StatusForbidden, "message", page{Title: "Support access ended", Viewer: &viewer{Login: v.Login, User: v.User}, Data: messageData{
		Kind: "ended", Title: "Support access ended", Message: msg,
		Back: "/support/", BackLabel: "Back to the support console",
	}})
}

type accessSession struct{ TenantID, Principal, SubjectUserID, SessionID string }
