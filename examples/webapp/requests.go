package main

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

// requestRow is one access request as the pages show it.
type requestRow struct {
	sa.AccessRequest
	// DurationLabel names the requested duration ("3 days").
	DurationLabel string
	// RequestedValue is the requested duration as a form value.
	RequestedValue string
	// Durations are the presets an approver may choose: the requested one
	// and the shorter ones.
	Durations []presetOption
	// AskedWrite and AskedMessages say which optional scopes were asked.
	AskedWrite, AskedMessages bool
}

// newRequestRow prepares r for display.
func (a *app) newRequestRow(r sa.AccessRequest) requestRow {
	row := requestRow{
		AccessRequest:  r,
		DurationLabel:  r.Duration.String(),
		RequestedValue: r.Duration.String(),
		AskedWrite:     slices.Contains(r.Scopes, sa.ScopeWrite),
		AskedMessages:  slices.Contains(r.Scopes, scopeMessages),
	}
	for _, p := range a.m.Policy().Presets {
		if p.Duration == r.Duration {
			row.DurationLabel = p.Label
		}
		if p.Duration <= r.Duration {
			row.Durations = append(row.Durations, presetOption{Label: p.Label, Value: p.Duration.String()})
		}
	}
	return row
}

// shownPendingRequests is how many pending access requests the
// support-access page shows.
const shownPendingRequests = 100

// pendingRequests returns the tenant's newest pending access requests. The
// second result is true when older pending requests were left out (the
// page says so); the third is false when the store keeps no access
// requests.
func (a *app) pendingRequests(r *http.Request, tenantID string) ([]requestRow, bool, bool, error) {
	rs, err := a.m.ListRequests(r.Context(), sa.RequestFilter{TenantID: tenantID, Statuses: []sa.RequestStatus{sa.RequestPending}, Limit: shownPendingRequests + 1})
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, true, err
	}
	rs, cut := cutAt(rs, shownPendingRequests)
	rows := make([]requestRow, 0, len(rs))
	for _, x := range rs {
		rows = append(rows, a.newRequestRow(x))
	}
	return rows, cut, true, nil
}

// supportRequests returns the recent access requests of support user u.
func (a *app) supportRequests(r *http.Request, u user) ([]requestRow, bool, error) {
	rs, err := a.m.ListRequests(r.Context(), sa.RequestFilter{RequestedBy: u.ID, Limit: 20})
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	rows := make([]requestRow, 0, len(rs))
	for _, x := range rs {
		rows = append(rows, a.newRequestRow(x))
	}
	return rows, true, nil
}

// requestSubmit lets support ask a tenant for access.
func (a *app) requestSubmit(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	tenantID := r.PostFormValue("tenant")
	unknown := func() {
		a.renderError(w, r, http.StatusForbidden, "Unknown tenant", "You cannot ask that tenant for access.")
	}
	// A made-up tenant ID is refused here (no audit chain for it). A
	// tenant the user may not ask goes to RequestAccess, whose Authorizer
	// refuses it and audits that in the tenant's trail; whatever the
	// outcome, the user sees the page of a made-up ID, so that it cannot
	// tell which tenants exist.
	_, exists := a.dir.tenant(tenantID)
	mine := slices.ContainsFunc(a.dir.tenantsFor(v.User), func(t tenant) bool { return t.ID == tenantID })
	if !exists {
		unknown()
		return
	}
	in := sa.RequestInput{
		TenantID: tenantID, By: v.User.actor(),
		Scopes:    formScopes(r),
		Reason:    strings.TrimSpace(r.PostFormValue("reason")),
		TicketRef: strings.TrimSpace(r.PostFormValue("ticket_ref")),
	}
	d, parseErr := time.ParseDuration(r.PostFormValue("duration"))
	var err error
	if parseErr == nil {
		in.Duration = d
		_, err = a.m.RequestAccess(r.Context(), in)
	}
	switch {
	case !mine: // refused by the Authorizer (audited), or malformed (not audited): the same page
		unknown()
		return
	case parseErr != nil:
		a.renderError(w, r, http.StatusBadRequest, "Request not sent", "Choose one of the durations.")
		return
	case err != nil:
		a.renderError(w, r, statusFor(err), "Request not sent", userMessage(err))
		return
	}
	a.sessions.setFlash(v.Login.ID, "Access requested. The customer's administrators decide; the request expires if nobody does.")
	http.Redirect(w, r, "/support/", http.StatusSeeOther)
}

// formScopes reads the scope checkboxes: read always, write and
// messages:read when ticked.
func formScopes(r *http.Request) []sa.Scope {
	s := []sa.Scope{sa.ScopeRead}
	if r.PostFormValue("scope_write") != "" {
		s = append(s, sa.ScopeWrite)
	}
	if r.PostFormValue("scope_messages") != "" {
		s = append(s, scopeMessages)
	}
	return s
}

// approveSubmit approves a pending request of the admin's tenant, possibly
// shorter or narrower than asked.
func (a *app) approveSubmit(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	req, ok := a.tenantRequest(w, r, v)
	if !ok {
		return
	}
	in := sa.ApproveInput{Scopes: formScopes(r), Reason: strings.TrimSpace(r.PostFormValue("comment"))}
	if s := r.PostFormValue("duration"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			a.renderSupportAccess(w, r, http.StatusBadRequest, defaultGrantForm(), "Choose one of the durations.")
			return
		}
		in.Duration = d
	}
	g, err := a.m.Approve(r.Context(), req.ID, v.User.actor(), in)
	if err != nil {
		a.renderSupportAccess(w, r, statusFor(err), defaultGrantForm(), "Not approved: "+userMessage(err))
		return
	}
	a.sessions.setFlash(v.Login.ID, "Request approved: "+req.RequestedBy.ID+" has access until "+g.ExpiresAt.Format(timeLayout)+".")
	http.Redirect(w, r, "/admin/support-access", http.StatusSeeOther)
}

// denySubmit denies a pending request of the admin's tenant.
func (a *app) denySubmit(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	req, ok := a.tenantRequest(w, r, v)
	if !ok {
		return
	}
	if _, err := a.m.Deny(r.Context(), req.ID, v.User.actor(), strings.TrimSpace(r.PostFormValue("comment"))); err != nil {
		a.renderSupportAccess(w, r, statusFor(err), defaultGrantForm(), "Not denied: "+userMessage(err))
		return
	}
	a.sessions.setFlash(v.Login.ID, "Request denied.")
	http.Redirect(w, r, "/admin/support-access", http.StatusSeeOther)
}

// tenantRequest loads the request named in the URL if it belongs to the
// viewer's tenant (404 otherwise, as for grants).
func (a *app) tenantRequest(w http.ResponseWriter, r *http.Request, v *viewer) (sa.AccessRequest, bool) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		a.renderError(w, r, http.StatusNotFound, "Not found", "There is no such request.")
		return sa.AccessRequest{}, false
	}
	req, err := a.m.GetRequest(r.Context(), id)
	if errors.Is(err, sa.ErrNotFound) || (err == nil && req.TenantID != v.Tenant.ID) {
		a.renderError(w, r, http.StatusNotFound, "Not found", "There is no such request.")
		return sa.AccessRequest{}, false
	}
	if errors.Is(err, errors.ErrUnsupported) {
		a.renderError(w, r, http.StatusNotFound, "Not found", "This store keeps no access requests.")
		return sa.AccessRequest{}, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return sa.AccessRequest{}, false
	}
	return req, true
}
