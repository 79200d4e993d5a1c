package main

import (
	"context"
	"fmt"
	"net/http"
)

// viewer is who is looking at a page: the signed-in user and, for support
// acting inside a tenant, the impersonation.
type viewer struct {
	Login  loginSession
	User   user
	Tenant tenant // the tenant whose pages are shown (empty on the console)
	// Imp and Subject are set when support impersonates Subject.
	Imp     *impersonation
	Subject user
}

// Impersonating reports whether the viewer is support acting as a tenant
// admin.
func (v *viewer) Impersonating() bool { return v != nil && v.Imp != nil }

// ActingAs is the user whose view of the tenant the page shows.
func (v *viewer) ActingAs() user {
	if v.Impersonating() {
		return v.Subject
	}
	return v.User
}

type viewerKey struct{}

func withViewer(ctx context.Context, v *viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

func viewerFrom(ctx context.Context) *viewer {
	v, _ := ctx.Value(viewerKey{}).(*viewer)
	return v
}

// currentLogin returns the signed-in user of r.
func (a *app) currentLogin(r *http.Request) (loginSession, user, bool) {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		return loginSession{}, user{}, false
	}
	ls, ok := a.sessions.loginByID(c.Value)
	if !ok {
		return loginSession{}, user{}, false
	}
	u, ok := a.dir.user(ls.UserID)
	return ls, u, ok
}

// home sends each user to its start page.
func (a *app) home(w http.ResponseWriter, r *http.Request) {
	_, u, ok := a.currentLogin(r)
	switch {
	case !ok:
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	case u.IsSupport():
		http.Redirect(w, r, "/support/", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/admin/support-access", http.StatusSeeOther)
	}
}

// loginData is the login page's model.
type loginData struct {
	Customers, Support []user
}

func (a *app) loginPage(w http.ResponseWriter, r *http.Request) {
	var d loginData
	for _, u := range a.dir.users {
		if u.IsSupport() {
			d.Support = append(d.Support, u)
		} else {
			d.Customers = append(d.Customers, u)
		}
	}
	a.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Data: d})
}

// loginSubmit signs in the chosen demo user. There are no passwords: the
// page says so.
func (a *app) loginSubmit(w http.ResponseWriter, r *http.Request) {
	u, ok := a.dir.user(r.PostFormValue("user"))
	if !ok {
		a.renderError(w, r, http.StatusBadRequest, "Unknown user", "Pick one of the demo users.")
		return
	}
	if c, err := r.Cookie(loginCookie); err == nil {
		a.sessions.logout(c.Value) // no session fixation: always a fresh ID
	}
	ls := a.sessions.login(u.ID)
	setCookie(w, r, loginCookie, ls.ID, loginTTL)
	clearCookie(w, r, impersonationCookie)
	a.home(w, withCookie(r, loginCookie, ls.ID))
}

// withCookie returns a copy of r carrying only the cookie name=value, for
// redirect decisions right after setting it.
func withCookie(r *http.Request, name, value string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Header.Del("Cookie")
	r2.AddCookie(&http.Cookie{Name: name, Value: value})
	return r2
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(loginCookie); err == nil {
		a.sessions.logout(c.Value)
	}
	clearCookie(w, r, loginCookie)
	clearCookie(w, r, impersonationCookie)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// customerOnly serves h to signed-in customer admins; support staff get a
// 403 page (they never manage support access), everyone else the login page.
// Support's attempt during a support session goes through the library's
// middleware first, so that the tenant's audit trail shows it: as
// support.request with the 403, or as access.denied when the grant does
// not even allow the method.
//
// The form limit (limitForms) runs here, for customers only: support's
// form is never read, so an oversized one is refused — and audited — like
// any other.
func (a *app) customerOnly(h http.HandlerFunc) http.Handler {
	refuse := http.HandlerFunc(a.renderCustomersOnly)
	audited := a.adminAccess(refuse)
	limited := a.limitForms(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls, u, ok := a.currentLogin(r)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if u.IsSupport() {
			if v, ok := a.impersonating(r, ls, u); ok {
				audited.ServeHTTP(w, r.WithContext(withViewer(r.Context(), v)))
				return
			}
			refuse(w, r)
			return
		}
		t, ok := a.dir.tenant(u.TenantID)
		if !ok {
			a.serverError(w, r, fmt.Errorf("customer %s has no tenant", u.ID))
			return
		}
		limited.ServeHTTP(w, r.WithContext(withViewer(r.Context(), &viewer{Login: ls, User: u, Tenant: t})))
	})
}

// impersonating returns the viewer of support user u's live support
// session (its cookie), if there is one.
func (a *app) impersonating(r *http.Request, ls loginSession, u user) (*viewer, bool) {
	c, err := r.Cookie(impersonationCookie)
	if err != nil {
		return nil, false
	}
	imp, ok := a.sessions.impersonationByID(c.Value, ls.ID)
	if !ok {
		return nil, false
	}
	return a.impersonatedViewer(ls, u, imp)
}

// impersonatedViewer is the viewer of support user u in support session
// imp, and false when its tenant is unknown.
func (a *app) impersonatedViewer(ls loginSession, u user, imp impersonation) (*viewer, bool) {
	v := &viewer{Login: ls, User: u, Imp: &imp}
	v.Subject, _ = a.dir.user(imp.SubjectUserID)
	var ok bool
	v.Tenant, ok = a.dir.tenant(imp.TenantID)
	return v, ok
}

// supportOnly serves h to signed-in support staff.
func (a *app) supportOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls, u, ok := a.currentLogin(r)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if !u.IsSupport() {
			a.renderError(w, r, http.StatusForbidden, "Support staff only", "The support console is for the vendor's support staff.")
			return
		}
		h(w, r.WithContext(withViewer(r.Context(), &viewer{Login: ls, User: u})))
	})
}

// withTenantViewer resolves who sees a tenant page: a customer admin of its
// own tenant, or support through its impersonation cookie. Support without a
// live impersonation goes back to the console; one whose impersonation was
// ended meanwhile is told so.
func (a *app) withTenantViewer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls, u, ok := a.currentLogin(r)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		v := &viewer{Login: ls, User: u}
		var found bool
		if u.IsSupport() {
			c, err := r.Cookie(impersonationCookie)
			if err != nil {
				http.Redirect(w, r, "/support/", http.StatusSeeOther)
				return
			}
			imp, ok := a.sessions.impersonationByID(c.Value, ls.ID)
			if !ok {
				clearCookie(w, r, impersonationCookie)
				a.renderAccessEnded(w, r, v, "Your support session ended. Start a new one from the support console if access was granted again.")
				return
			}
			v, found = a.impersonatedViewer(ls, u, imp)
		} else {
			v.Tenant, found = a.dir.tenant(u.TenantID)
		}
		if !found { // never serve a page without its tenant (an empty ID selects no tenant)
			a.serverError(w, r, fmt.Errorf("viewer %s has no tenant", u.ID))
			return
		}
		next.ServeHTTP(w, r.WithContext(withViewer(r.Context(), v)))
	})
}

func (a *app) notFound(w http.ResponseWriter, r *http.Request) {
	// The path is not echoed: a page of this origin does not show text a
	// link chose ("your account is locked, call …", or one reordered by a
	// right-to-left override).
	a.renderError(w, r, http.StatusNotFound, "Not found", "There is no page at this address.")
}

func (a *app) csrfDenied(w http.ResponseWriter, r *http.Request) {
	a.renderError(w, r, http.StatusForbidden, "Request refused",
		"This form was submitted from another site. For your protection it was not processed (cross-site request forgery protection).")
}
