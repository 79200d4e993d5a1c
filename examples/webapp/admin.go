package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
)

// grantForm is the grant dialog's state (for re-rendering after an error).
type grantForm struct {
	Duration  string // a preset's duration, time.Duration text
	StartsAt  string // datetime-local value, UTC; empty: now
	Write     bool
	Messages  bool
	Grantee   string // "" (any support principal) or a named engineer's ID
	Reason    string
	TicketRef string
}

// grantRow is one line of the grants list.
type grantRow struct {
	sa.Grant
	Status    sa.Status
	Revocable bool
	// Requester is who asked for the grant when it came from an approved
	// access request: its reason is the requester's words, not the
	// approving admin's.
	Requester string
}

// presetOption is one duration choice of the grant dialog.
type presetOption struct {
	Label, Value string
}

// supportAccessData is the model of the support-access page.
type supportAccessData struct {
	Presets []presetOption
	Form    grantForm
	Grants  []grantRow
	Support []user // named engineers a grant may be limited to
	// GrantsCut is true when ended grants older than those shown exist
	// (every active and scheduled grant is always shown).
	GrantsCut bool
	Requests  []requestRow
	// RequestsCut is true when pending requests older than those shown
	// exist.
	RequestsCut bool
	// RequestsEnabled is false when the library has no access requests.
	RequestsEnabled bool
	Now             time.Time
	MaxStart        string
}

// supportAccessPage shows the grant dialog, the grants with their status and
// the pending access requests.
func (a *app) supportAccessPage(w http.ResponseWriter, r *http.Request) {
	a.renderSupportAccess(w, r, http.StatusOK, defaultGrantForm(), "")
}

// defaultGrantForm is the grant dialog's initial state.
func defaultGrantForm() grantForm {
	return grantForm{Duration: demoPolicy().DefaultDuration.String()}
}

func (a *app) renderSupportAccess(w http.ResponseWriter, r *http.Request, status int, form grantForm, errMsg string) {
	v := viewerFrom(r.Context())
	now := a.m.Now() // the status as the Manager judges it
	gs, cut, err := a.tenantGrants(r, v.Tenant.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	d := supportAccessData{Form: form, Support: a.dir.namedSupport(), Now: now, GrantsCut: cut}
	for _, p := range a.m.Policy().Presets {
		d.Presets = append(d.Presets, presetOption{Label: p.Label, Value: p.Duration.String()})
	}
	for _, g := range gs {
		st := g.Status(now)
		row := grantRow{Grant: g, Status: st, Revocable: st == sa.StatusActive || st == sa.StatusScheduled}
		if g.RequestID != uuid.Nil {
			// From the request, not the grant's Grantees: support may
			// add colleagues, and AddGrantee keeps the list sorted.
			req, err := a.m.GetRequest(r.Context(), g.RequestID)
			if err != nil {
				a.serverError(w, r, err)
				return
			}
			row.Requester = req.RequestedBy.ID
		}
		d.Grants = append(d.Grants, row)
	}
	if d.Requests, d.RequestsCut, d.RequestsEnabled, err = a.pendingRequests(r, v.Tenant.ID); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, status, "support_access", page{Title: "Support access", Nav: "access", Error: errMsg, Data: d})
}

// cutAt returns the first n of xs, a list asked for with a limit of n+1,
// and whether there were more.
func cutAt[T any](xs []T, n int) ([]T, bool) {
	if len(xs) > n {
		return xs[:n], true
	}
	return xs, false
}

// shownEndedGrants is how many expired or revoked grants the page shows.
const shownEndedGrants = 200

// tenantGrants returns the grants the support-access page lists, newest
// first: every active and scheduled grant (an admin must see, and be able
// to revoke, each grant that lets support in, however many ended ones came
// after it) and the newest ended ones. The second result is true when older
// ended grants were left out.
func (a *app) tenantGrants(r *http.Request, tenantID string) ([]sa.Grant, bool, error) {
	live, err := a.m.List(r.Context(), sa.ListFilter{TenantID: tenantID, Statuses: []sa.Status{sa.StatusActive, sa.StatusScheduled}})
	if err != nil {
		return nil, false, err
	}
	ended, err := a.m.List(r.Context(), sa.ListFilter{TenantID: tenantID, Statuses: []sa.Status{sa.StatusExpired, sa.StatusRevoked}, Limit: shownEndedGrants + 1})
	if err != nil {
		return nil, false, err
	}
	ended, cut := cutAt(ended, shownEndedGrants)
	gs := slices.Concat(live, ended)
	// A grant may have ended between the two calls and be in both.
	seen := make(map[uuid.UUID]bool, len(gs))
	gs = slices.DeleteFunc(gs, func(g sa.Grant) bool {
		dup := seen[g.ID]
		seen[g.ID] = true
		return dup
	})
	slices.SortStableFunc(gs, func(x, y sa.Grant) int { return y.CreatedAt.Compare(x.CreatedAt) })
	return gs, cut, nil
}

// grantSubmit creates a grant from the dialog.
func (a *app) grantSubmit(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	if err := r.ParseForm(); err != nil {
		a.renderError(w, r, http.StatusBadRequest, "Bad form", "The form could not be read.")
		return
	}
	f := grantForm{
		Duration:  r.PostFormValue("duration"),
		StartsAt:  strings.TrimSpace(r.PostFormValue("starts_at")),
		Write:     r.PostFormValue("scope_write") != "",
		Messages:  r.PostFormValue("scope_messages") != "",
		Grantee:   r.PostFormValue("grantee"),
		Reason:    strings.TrimSpace(r.PostFormValue("reason")),
		TicketRef: strings.TrimSpace(r.PostFormValue("ticket_ref")),
	}
	in := sa.GrantInput{TenantID: v.Tenant.ID, By: v.User.actor(), Reason: f.Reason, TicketRef: f.TicketRef}
	d, err := time.ParseDuration(f.Duration)
	if err != nil || !slices.ContainsFunc(a.m.Policy().Presets, func(p sa.Preset) bool { return p.Duration == d }) {
		a.renderSupportAccess(w, r, http.StatusBadRequest, f, "Choose one of the durations.")
		return
	}
	in.Duration = d
	if f.StartsAt != "" {
		if in.StartsAt, err = time.Parse(formTimeLayout, f.StartsAt); err != nil {
			a.renderSupportAccess(w, r, http.StatusBadRequest, f, "The start time is not a valid date and time.")
			return
		}
	}
	in.Scopes = []sa.Scope{sa.ScopeRead}
	if f.Write {
		in.Scopes = append(in.Scopes, sa.ScopeWrite)
	}
	if f.Messages {
		in.Scopes = append(in.Scopes, scopeMessages)
	}
	if f.Grantee != "" {
		if !slices.ContainsFunc(a.dir.namedSupport(), func(u user) bool { return u.ID == f.Grantee }) {
			a.renderSupportAccess(w, r, http.StatusBadRequest, f, "Choose who gets access.")
			return
		}
		in.Grantees = []string{f.Grantee}
	}
	g, err := a.m.Grant(r.Context(), in)
	if err != nil {
		a.renderSupportAccess(w, r, statusFor(err), f, userMessage(err))
		return
	}
	msg := "Support access granted until " + g.ExpiresAt.Format(timeLayout) + "."
	if g.Status(a.m.Now()) == sa.StatusScheduled {
		msg = fmt.Sprintf("Support access scheduled from %s until %s.", g.StartsAt.Format(timeLayout), g.ExpiresAt.Format(timeLayout))
	}
	a.sessions.setFlash(v.Login.ID, msg)
	http.Redirect(w, r, "/admin/support-access", http.StatusSeeOther)
}

// revokeSubmit revokes one grant of the admin's tenant.
func (a *app) revokeSubmit(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	g, ok := a.tenantGrant(w, r, v, r.PathValue("id"))
	if !ok {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if _, err := a.m.Revoke(r.Context(), g.ID, v.User.actor(), reason); err != nil {
		if errors.Is(err, sa.ErrInvalidInput) {
			a.renderSupportAccess(w, r, http.StatusConflict, defaultGrantForm(), "This grant cannot be revoked: "+userMessage(err))
			return
		}
		a.renderSupportAccess(w, r, statusFor(err), defaultGrantForm(), userMessage(err))
		return
	}
	a.sessions.setFlash(v.Login.ID, "Support access revoked. Support sessions using it end on their next request.")
	http.Redirect(w, r, "/admin/support-access", http.StatusSeeOther)
}

// tenantGrant loads the grant named in the URL and makes sure it belongs to
// the viewer's tenant (an admin must not touch another tenant's grants: the
// same 404 answers both "no such grant" and "not yours").
func (a *app) tenantGrant(w http.ResponseWriter, r *http.Request, v *viewer, idText string) (sa.Grant, bool) {
	id, ok := parseID(idText)
	if !ok {
		a.renderError(w, r, http.StatusNotFound, "Not found", "There is no such grant.")
		return sa.Grant{}, false
	}
	g, err := a.m.Get(r.Context(), id)
	if errors.Is(err, sa.ErrNotFound) || (err == nil && g.TenantID != v.Tenant.ID) {
		a.renderError(w, r, http.StatusNotFound, "Not found", "There is no such grant.")
		return sa.Grant{}, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return sa.Grant{}, false
	}
	return g, true
}

// parseID reads the ID of a URL path: a malformed or nil one is no ID the
// library knows (it refuses the nil UUID as input), answered as an unknown
// one.
func parseID(text string) (uuid.UUID, bool) {
	id, err := uuid.Parse(text)
	return id, err == nil && id != uuid.Nil
}

// statusFor maps a library error to an HTTP status.
func statusFor(err error) int {
	switch {
	case errors.Is(err, sa.ErrInvalidInput):
		return http.StatusBadRequest
	case errors.Is(err, sa.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, sa.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errors.ErrUnsupported):
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

// userMessage turns a library error into a sentence for the page: the
// field-naming detail after the sentinel for input errors, a generic text
// otherwise.
func userMessage(err error) string {
	for _, s := range []error{sa.ErrInvalidInput, sa.ErrForbidden, sa.ErrNotFound} {
		if !errors.Is(err, s) {
			continue
		}
		msg := err.Error()
		if i := strings.LastIndex(msg, s.Error()+": "); i >= 0 {
			msg = msg[i+len(s.Error())+2:]
		} else {
			msg = strings.TrimPrefix(s.Error(), "supportaccess: ")
		}
		if msg == "" {
			return "Refused."
		}
		return strings.ToUpper(msg[:1]) + msg[1:] + "."
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return "This store does not keep access requests."
	}
	return "Something went wrong; please try again."
}
