package main

import (
	"net/http"
	"strings"
)

// dashboardData is the model of the tenant home page.
type dashboardData struct {
	Settings tenantSettings
}

// dashboard is the tenant's home page.
func (a *app) dashboard(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	a.render(w, r, http.StatusOK, "dashboard", page{Title: "Home", Nav: "home", Data: dashboardData{Settings: a.settings.get(v.Tenant.ID)}})
}

// settingsData is the model of the settings page.
type settingsData struct {
	Settings tenantSettings
	Themes   []string
	// ReadOnly is set when support may look but not save.
	ReadOnly bool
}

func (a *app) settingsPage(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	a.renderSettings(w, r, http.StatusOK, a.settings.get(v.Tenant.ID), "")
}

func (a *app) renderSettings(w http.ResponseWriter, r *http.Request, status int, s tenantSettings, errMsg string) {
	v := viewerFrom(r.Context())
	d := settingsData{Settings: s, Themes: themes}
	if v.Impersonating() {
		d.ReadOnly = !a.supportMayWrite(r)
	}
	a.render(w, r, status, "settings", page{Title: "Settings", Nav: "settings", Error: errMsg, Data: d})
}

// settingsSubmit saves the tenant settings. For support the access
// middleware has already required the write scope; the change is recorded
// with its before and after values.
func (a *app) settingsSubmit(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	if t := r.PostFormValue("tenant"); t != "" && t != v.Tenant.ID {
		// A form rendered for another tenant (a tab left open from an
		// earlier support session): never saved into this one.
		a.renderSettings(w, r, http.StatusConflict, a.settings.get(v.Tenant.ID),
			"Not saved: that form was for another tenant ("+t+"). This page shows "+v.Tenant.Name+"'s settings.")
		return
	}
	next := tenantSettings{
		CompanyName: strings.TrimSpace(r.PostFormValue("company_name")),
		Theme:       r.PostFormValue("theme"),
		WeeklyEmail: r.PostFormValue("weekly_email") != "",
	}
	if err := next.validate(); err != nil {
		a.renderSettings(w, r, http.StatusBadRequest, next, "Not saved: "+err.Error()+".")
		return
	}
	err := a.settings.change(v.Tenant.ID, next, func(before, after tenantSettings) error {
		if !v.Impersonating() {
			return nil
		}
		return recordChange(r.Context(), "tenant settings", before, after)
	})
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.sessions.setFlash(v.Login.ID, "Settings saved.")
	http.Redirect(w, r, "/app/settings", http.StatusSeeOther)
}

// message is a customer message (the data the elevated scope protects).
type message struct {
	From, Subject string
}

// messagesPage shows the tenant's messages. Support needs the elevated
// messages:read scope; the route requires it.
func (a *app) messagesPage(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	msgs := []message{
		{From: "billing@" + v.Tenant.ID + ".example", Subject: "Invoice 2024-117 question"},
		{From: "ceo@" + v.Tenant.ID + ".example", Subject: "Confidential: merger timeline"},
	}
	a.render(w, r, http.StatusOK, "messages", page{Title: "Messages", Nav: "messages", Data: msgs})
}
