package main

import (
	"errors"
	"net/http"
	"slices"

	sa "github.com/supportaccess/supportaccess"
)

// consoleTenant is one tenant as the support console lists it.
type consoleTenant struct {
	Tenant tenant
	Admin  user
	// Grant is the grant that currently lets this support user in.
	Grant  *sa.Grant
	Status string
}

// consoleData is the model of the support console.
type consoleData struct {
	Tenants         []consoleTenant
	Requests        []requestRow
	RequestsEnabled bool
	Presets         []presetOption
}

// consolePage lists the tenants the support user may try to enter, with the
// access it currently holds on each.
func (a *app) consolePage(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	var d consoleData
	for _, t := range a.dir.tenantsFor(v.User) {
		ct := consoleTenant{Tenant: t}
		ct.Admin, _ = a.dir.admin(t.ID)
		g, err := a.m.Check(r.Context(), t.ID, v.User.ID, sa.ScopeRead)
		switch {
		case err == nil:
			ct.Grant, ct.Status = &g, "active"
		case errors.Is(err, sa.ErrNoActiveGrant), errors.Is(err, sa.ErrScopeNotGranted):
			ct.Status = "none"
		default:
			a.serverError(w, r, err)
			return
		}
		d.Tenants = append(d.Tenants, ct)
	}
	for _, p := range a.m.Policy().Presets {
		d.Presets = append(d.Presets, presetOption{Label: p.Label, Value: p.Duration.String()})
	}
	var err error
	if d.Requests, d.RequestsEnabled, err = a.supportRequests(r, v.User); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "console", page{Title: "Support console", Nav: "console", Data: d})
}

// impersonateSubmit starts a support session as the chosen tenant's admin.
// Whether it may see anything is decided on every request by the access
// middleware, not here.
func (a *app) impersonateSubmit(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	tenantID := r.PostFormValue("tenant")
	if !slices.ContainsFunc(a.dir.tenantsFor(v.User), func(t tenant) bool { return t.ID == tenantID }) {
		a.renderError(w, r, http.StatusForbidden, "Unknown tenant", "You cannot sign in to that tenant.")
		return
	}
	admin, ok := a.dir.admin(tenantID)
	if !ok {
		a.renderError(w, r, http.StatusNotFound, "No administrator", "That tenant has no administrator to act as.")
		return
	}
	imp := a.sessions.impersonate(v.Login, tenantID, admin.ID)
	setCookie(w, r, impersonationCookie, imp.ID, impersonationTTL)
	http.Redirect(w, r, "/app/", http.StatusSeeOther)
}

// stopSubmit ends the support session and returns to the console.
func (a *app) stopSubmit(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(impersonationCookie); err == nil {
		a.sessions.endImpersonation(c.Value)
	}
	clearCookie(w, r, impersonationCookie)
	http.Redirect(w, r, "/support/", http.StatusSeeOther)
}
