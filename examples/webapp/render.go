package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// staticHandler serves the stylesheet.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// templates holds one parsed template set per page, each combining the
// layout with the page's "content" block.
type templates struct {
	pages map[string]*template.Template
}

// timeLayout is how the pages show instants. Everything is UTC.
const timeLayout = "2006-01-02 15:04 UTC"

// formTimeLayout is the value format of <input type="datetime-local">.
const formTimeLayout = "2006-01-02T15:04"

var funcs = template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(timeLayout)
	},
	"until": func(t time.Time) string {
		if t.IsZero() {
			return "further notice (no end date)"
		}
		return t.UTC().Format(timeLayout)
	},
	"scopes": func(ss []sa.Scope) string {
		parts := make([]string, len(ss))
		for i, s := range ss {
			parts[i] = string(s)
		}
		return strings.Join(parts, ", ")
	},
	"short": func(s fmt.Stringer) string {
		x := s.String()
		if len(x) > 8 {
			return x[len(x)-8:]
		}
		return x
	},
	"pretty": prettyJSON,
}

// prettyJSON indents a JSON document for display (as text: the template
// escapes it).
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func parseTemplates() (*templates, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	t := &templates{pages: make(map[string]*template.Template)}
	for _, name := range names {
		if path.Base(name) == "layout.html" {
			continue
		}
		p, err := template.Must(base.Clone()).ParseFS(templateFS, name)
		if err != nil {
			return nil, err
		}
		t.pages[strings.TrimSuffix(path.Base(name), ".html")] = p
	}
	return t, nil
}

// page is what the layout renders around every page.
type page struct {
	Title  string
	Nav    string // the highlighted navigation entry
	Viewer *viewer
	Flash  string
	Error  string
	// AccessBanner is set on customer pages while support access is active.
	AccessBanner *accessBanner
	// SupportBanner is set on pages support sees while impersonating.
	SupportBanner *supportBanner
	// Theme is the tenant's colour theme (tenant settings).
	Theme string
	Data  any
}

// accessBanner: "Support access is active until …".
type accessBanner struct {
	Until    time.Time // zero: no end date
	Grants   int
	Scopes   []sa.Scope
	Schedule string
}

// supportBanner: whom support impersonates and until when.
type supportBanner struct {
	Principal string
	Subject   user
	Tenant    tenant
	Until     time.Time
	Scopes    []sa.Scope
}

// render writes the named page with the layout. Banners and the flash
// message are filled in from the request.
func (a *app) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := a.pages.pages[name]
	if !ok {
		a.serverError(w, r, fmt.Errorf("no template %q", name))
		return
	}
	if p.Viewer == nil {
		p.Viewer = viewerFrom(r.Context())
	}
	a.fillBanners(r, &p)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		a.serverError(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fillBanners adds the flash message and the support-access banners.
func (a *app) fillBanners(r *http.Request, p *page) {
	v := p.Viewer
	if v == nil {
		return
	}
	if p.Flash == "" {
		p.Flash = a.sessions.takeFlash(v.Login.ID)
	}
	if v.Tenant.ID == "" {
		return
	}
	p.Theme = a.settings.get(v.Tenant.ID).Theme
	if v.Impersonating() {
		if p.SupportBanner == nil {
			p.SupportBanner = a.supportBannerFor(r, v)
		}
		return
	}
	if p.AccessBanner == nil {
		p.AccessBanner = a.accessBannerFor(r, v.Tenant.ID)
	}
}

// accessBannerFor summarises the active grants of a tenant, or returns nil
// when support has no access.
func (a *app) accessBannerFor(r *http.Request, tenantID string) *accessBanner {
	active, err := a.m.List(r.Context(), sa.ListFilter{TenantID: tenantID, Statuses: []sa.Status{sa.StatusActive}})
	if err != nil {
		a.log.ErrorContext(r.Context(), "banner", "err", err)
		return nil
	}
	if len(active) == 0 {
		return nil
	}
	b := &accessBanner{Grants: len(active)}
	unlimited := false
	for _, g := range active {
		if g.Unlimited() {
			unlimited = true
		}
		if g.ExpiresAt.After(b.Until) {
			b.Until = g.ExpiresAt
		}
		for _, s := range g.Scopes {
			if !containsScope(b.Scopes, s) {
				b.Scopes = append(b.Scopes, s)
			}
		}
	}
	if unlimited {
		b.Until = time.Time{}
	}
	return b
}

func containsScope(ss []sa.Scope, s sa.Scope) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// supportBannerFor describes the impersonation: whom, which tenant, until
// when (from the grant the access check admitted the request with).
func (a *app) supportBannerFor(r *http.Request, v *viewer) *supportBanner {
	b := &supportBanner{Principal: v.User.ID, Subject: v.Subject, Tenant: v.Tenant}
	if g, ok := grantFromContext(r.Context()); ok {
		b.Until, b.Scopes = g.ExpiresAt, g.Scopes
	}
	return b
}

// renderError shows a simple message page.
func (a *app) renderError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	a.render(w, r, status, "message", page{Title: title, Data: messageData{Title: title, Message: msg}})
}

// messageData is the model of the message page.
type messageData struct {
	Title, Message string
	// Kind selects the page's style: "", "denied" or "ended".
	Kind string
	// Back is a link to offer ("" for none).
	Back, BackLabel string
}

// serverError logs err and shows a generic 500 page (no internals leak).
func (a *app) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "webapp", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "Internal server error", http.StatusInternalServerError)
}
