package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

// auditPageSize is how many events one audit page shows.
const auditPageSize = 20

// auditEventTypes are the event types the filter offers.
var auditEventTypes = []sa.EventType{
	sa.EventSupportRequest, sa.EventSupportChange, sa.EventSupportScope, sa.EventAccessDenied,
	sa.EventGrantCreated, sa.EventGrantExtended, sa.EventGrantRevoked, sa.EventGrantExpired, sa.EventGrantStarted,
	sa.EventGrantDelegated, sa.EventRequestCreated, sa.EventRequestApproved, sa.EventRequestDenied,
	sa.EventRequestExpired, sa.EventActionRefused, sa.EventNotifyFailed, sa.EventExpireHookFailed,
	sa.EventExpireHookSucceeded, sa.EventAuditPurged,
}

// auditFilterForm is the filter form's state; it round-trips through the
// query string (filters are not secrets).
type auditFilterForm struct {
	SupportOnly bool
	Type        string
	Since       string // datetime-local, UTC
	Until       string
}

// auditRow is one event as the page shows it.
type auditRow struct {
	sa.Event
	Support       bool
	Method, Path  string
	Status        string
	What          string
	Before, After string
	// Attrs are the event's other attributes, by name: every one the
	// library records is shown (the session, a method override, the
	// request target, the grants that allowed an elevated scope, what a
	// purge deleted, …), not a subset an auditor would have to trust.
	Attrs []auditAttr
}

// auditAttr is one attribute of an event as the page lists it.
type auditAttr struct{ Name, Value string }

// shownAttrs are the attributes a row shows in its own place.
var shownAttrs = []string{sa.AttrMethod, sa.AttrPath, sa.AttrStatus, sa.AttrWhat}

// auditData is the model of the audit page.
type auditData struct {
	Filter     auditFilterForm
	Types      []sa.EventType
	Rows       []auditRow
	Total      int
	Page       int
	Pages      int
	PrevURL    string
	NextURL    string
	FirstIndex int
	LastIndex  int
	// More: older events than the Total shown may match (see
	// newestEvents); the admin narrows the filter to reach them.
	More bool
	// TooMany: the From–To range holds more events than one view reads
	// (see rangeEvents); none is listed.
	TooMany bool
}

// rangeEvents returns the newest (at most auditKeep) events matching f,
// which has a From time, newest first, reading the range forward in at
// most auditReads pages of auditWindow events; tooMany when the range
// holds more than that.
// A From time is the admin's way to reach events older than the backward
// scan of newestEvents goes.
func (a *app) rangeEvents(r *http.Request, f sa.AuditFilter) (newest []sa.Event, more, tooMany bool, err error) {
	f.Limit = int(auditWindow)
	var kept []sa.Event
	cursor := ""
	for range auditReads {
		page, next, err := a.m.AuditPage(r.Context(), f, cursor)
		if err != nil {
			return nil, false, false, err
		}
		kept = append(kept, page...)
		if over := len(kept) - auditKeep; over > 0 {
			kept, more = append(kept[:0], kept[over:]...), true
		}
		if next == "" {
			slices.Reverse(kept)
			return kept, more, false, nil
		}
		cursor = next
	}
	// The last page read was full: the range may end right there.
	f.Limit = 1
	if rest, _, err := a.m.AuditPage(r.Context(), f, cursor); err != nil || len(rest) > 0 {
		return nil, false, err == nil, err
	}
	slices.Reverse(kept)
	return kept, more, false, nil
}

// newestEvents returns the newest (at most auditKeep) events of f's
// tenant matching f, newest first, and whether older ones may match too
// (not read: the keep or the read budget ran out). Each window's query
// returns matches past the window's top too (the filter has no upper
// sequence number), which are dropped: at most auditReads × auditWindow
// events per view.
func (a *app) newestEvents(r *http.Request, f sa.AuditFilter) ([]sa.Event, bool, error) {
	if a.chains == nil {
		return nil, false, fmt.Errorf("audit page: the store keeps no chain state")
	}
	st, err := a.chains.AuditChain(r.Context(), f.TenantID)
	if err != nil {
		return nil, false, err
	}
	f.Order, f.Limit = sa.AuditByChain, int(auditWindow)
	var newest []sa.Event
	hi, lo := st.Head.Seq, st.Checkpoint.Seq // the chain holds (lo, hi]
	for range auditReads {
		if hi <= lo || len(newest) >= auditKeep {
			break
		}
		from := max(lo, hi-auditWindow)
		f.After = &sa.AuditCursor{TenantID: f.TenantID, Seq: from}
		evs, err := a.m.Events(r.Context(), f)
		if err != nil {
			return nil, false, err
		}
		// At most auditWindow events lie in (from, hi], all before the
		// rest in chain order; later ones (appended since the head was
		// read, or already kept) are dropped.
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Seq <= hi {
				newest = append(newest, evs[i])
			}
		}
		hi = from
	}
	more := hi > lo
	if len(newest) > auditKeep {
		newest, more = newest[:auditKeep], true
	}
	return newest, more, nil
}

// auditKeep is how many of the newest matching events the audit page can
// page through; older ones are reached by narrowing the filter.
var auditKeep = sa.MaxListLimit

// auditReads bounds the reads of one audit page view: each looks at a
// window of auditWindow sequence numbers of the tenant's chain (at most
// sa.MaxListLimit).
var (
	auditReads  = 10
	auditWindow = int64(sa.MaxListLimit)
)

// auditPage lists the tenant's audit trail, newest first, with filters and
// numbered pages. The library pages oldest first; an admin wants the
// newest events, so the page reads the tenant's chain backwards from its
// head in windows of sequence numbers (each one query, filtered by the
// store) until it has auditKeep matching events or has read auditReads
// windows, and slices what it kept. Work per view is bounded whatever the
// trail's size; what lies beyond is reached by narrowing the filter.
func (a *app) auditPage(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r.Context())
	q := r.URL.Query()
	form := auditFilterForm{
		SupportOnly: q.Get("support") == "1",
		Type:        q.Get("type"),
		Since:       q.Get("since"),
		Until:       q.Get("until"),
	}
	f := sa.AuditFilter{TenantID: v.Tenant.ID}
	more, tooMany := false, false
	var errMsg string
	if form.SupportOnly {
		f.ActorKind = sa.ActorSupport
	}
	if form.Type != "" {
		if !slices.Contains(auditEventTypes, sa.EventType(form.Type)) {
			errMsg = "Unknown event type; showing all types."
			form.Type = ""
		} else {
			f.Types = []sa.EventType{sa.EventType(form.Type)}
		}
	}
	for _, x := range []struct {
		text *string
		dst  *time.Time
		name string
	}{{&form.Since, &f.Since, "From"}, {&form.Until, &f.Until, "To"}} {
		if *x.text == "" {
			continue
		}
		t, err := time.Parse(formTimeLayout, *x.text)
		if err != nil {
			errMsg = x.name + " is not a valid date and time; ignored."
			*x.text = ""
			continue
		}
		if x.dst == &f.Until {
			// The page shows minutes: a To names the last minute listed,
			// all of it (the library's Until is exclusive).
			t = t.Add(time.Minute)
		}
		*x.dst = t
	}
	var evs []sa.Event
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		errMsg = "The time range ends before it starts; nothing matches."
	} else {
		var err error
		if !f.Since.IsZero() {
			evs, more, tooMany, err = a.rangeEvents(r, f)
		} else {
			evs, more, err = a.newestEvents(r, f)
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
	}
	d := auditData{Filter: form, Types: auditEventTypes, Total: len(evs), More: more, TooMany: tooMany}
	d.Pages = max(1, (len(evs)+auditPageSize-1)/auditPageSize)
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = min(max(d.Page, 1), d.Pages)
	lo := (d.Page - 1) * auditPageSize
	hi := min(lo+auditPageSize, len(evs))
	for _, e := range evs[lo:hi] {
		d.Rows = append(d.Rows, auditRowFor(e))
	}
	if len(d.Rows) > 0 {
		d.FirstIndex, d.LastIndex = lo+1, hi
	}
	pageURL := func(n int) string {
		vals := url.Values{}
		if form.SupportOnly {
			vals.Set("support", "1")
		}
		for k, s := range map[string]string{"type": form.Type, "since": form.Since, "until": form.Until} {
			if s != "" {
				vals.Set(k, s)
			}
		}
		vals.Set("page", strconv.Itoa(n))
		return "/admin/audit?" + vals.Encode()
	}
	if d.Page > 1 {
		d.PrevURL = pageURL(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.NextURL = pageURL(d.Page + 1)
	}
	a.render(w, r, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", Error: errMsg, Data: d})
}

func auditRowFor(e sa.Event) auditRow {
	row := auditRow{Event: e, Support: e.Actor.Kind == sa.ActorSupport}
	row.Method, row.Path = e.Attrs[sa.AttrMethod], e.Attrs[sa.AttrPath]
	row.Status, row.What = e.Attrs[sa.AttrStatus], e.Attrs[sa.AttrWhat]
	row.Before, row.After = prettyJSON(e.Before), prettyJSON(e.After)
	for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
		if !slices.Contains(shownAttrs, k) {
			row.Attrs = append(row.Attrs, auditAttr{k, e.Attrs[k]})
		}
	}
	return row
}
