package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// config says how to build the app. Zero fields get demo defaults, so tests
// can inject exactly what they control (clock, store, manager).
type config struct {
	// Store keeps grants and the audit trail. Default: memstore.New().
	Store sa.Store
	// Now is the clock for the Manager, sessions and pages. Default: time.Now.
	Now func() time.Time
	// Logger receives server-side errors. Default: slog.Default().
	Logger *slog.Logger
	// Closer, if set, is closed by app.Close (for example the database).
	Closer io.Closer
}

// app is the demo SaaS product: a customer admin area, tenant pages that
// support can enter by impersonation, and a support console.
type app struct {
	m        *sa.Manager
	dir      directory
	sessions *sessionStore
	settings *settingsStore
	pages    *templates
	now      func() time.Time
	log      *slog.Logger
	closer   io.Closer
	// chains reads a tenant's chain head, for the audit page's
	// newest-first reads (nil when the store keeps no chain state).
	chains sa.AuditChainReader
	// access and adminAccess are the library's middleware (see
	// accessMiddleware) around the tenant pages and, for support, the
	// admin pages; made once by routes.
	access, adminAccess func(http.Handler) http.Handler
}

// demoPolicy is the grant policy of the demo: 24 hours, 3 days or 7 days,
// 24 hours by default, read-only unless the admin ticks more scopes, and a
// start at most 30 days ahead.
func demoPolicy() sa.Policy {
	p := sa.DefaultPolicy()
	p.Presets = sa.PresetsShort
	p.DefaultDuration = sa.Day
	p.MaxDuration = 7 * sa.Day
	p.MaxScheduleAhead = 30 * sa.Day
	return p
}

// scopeMessages is the elevated, host-defined scope that lets support read
// the tenant's messages.
const scopeMessages sa.Scope = "messages:read"

// newApp builds the app and its HTTP handler.
func newApp(cfg config) (*app, http.Handler, error) {
	if cfg.Store == nil {
		cfg.Store = memstore.New()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &app{
		dir:    seedDirectory(),
		now:    func() time.Time { return cfg.Now().UTC() },
		log:    cfg.Logger,
		closer: cfg.Closer,
	}
	a.chains, _ = cfg.Store.(sa.AuditChainReader)
	a.sessions = newSessionStore(a.now)
	a.settings = newSettingsStore(a.dir)
	m, err := sa.NewManager(cfg.Store,
		sa.WithPolicy(demoPolicy()),
		sa.WithNow(a.now),
		sa.WithAuthorizer(a.authorize),
		sa.WithErrorHandler(a.logError),
		sa.WithNotifier(sa.NotifierFunc(a.notified)),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("webapp: %w", err)
	}
	a.m = m
	if a.pages, err = parseTemplates(); err != nil {
		return nil, nil, fmt.Errorf("webapp: %w", err)
	}
	return a, a.routes(), nil
}

// logError logs an error the library could not return to a caller.
func (a *app) logError(ctx context.Context, err error) {
	a.log.ErrorContext(ctx, "supportaccess", "err", err)
}

// Close releases the app's resources: the Manager's, then the store's.
// It is safe to call more than once.
func (a *app) Close() error {
	err := a.m.Close()
	if a.closer != nil {
		c := a.closer
		a.closer = nil
		err = errors.Join(err, c.Close())
	}
	return err
}

// authorize is the host's role model plugged into the Manager: a customer
// may manage support access only for its own tenant, and a generic support
// user may only ask for access to the tenant it serves.
func (a *app) authorize(ctx context.Context, action sa.Action, by sa.Actor, tenantID string) error {
	u, ok := a.dir.user(by.ID)
	switch {
	case by.Kind == sa.ActorSystem:
	case !ok || u.Kind != by.Kind:
		return errors.New("unknown user")
	case u.TenantID != "" && u.TenantID != tenantID:
		return fmt.Errorf("%s does not belong to tenant %s", u.ID, tenantID)
	}
	return sa.DefaultAuthorizer(ctx, action, by, tenantID)
}

// routes wires every page. CSRF protection (cross-origin refusal of unsafe
// methods) and security headers wrap the whole site.
func (a *app) routes() http.Handler {
	a.access = a.accessMiddleware(a.accessDenied)
	a.adminAccess = a.accessMiddleware(a.adminDenied)
	mux := http.NewServeMux()
	mux.Handle("GET /static/", staticHandler())
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.loginPage)
	mux.HandleFunc("POST /login", a.loginSubmit)
	mux.HandleFunc("POST /logout", a.logout)

	// Tenant pages: customers use them directly; support only through an
	// impersonated session, checked by the library's middleware.
	tenantPages := http.NewServeMux()
	tenantPages.HandleFunc("GET /app/{$}", a.dashboard)
	tenantPages.HandleFunc("GET /app/settings", a.settingsPage)
	tenantPages.Handle("POST /app/settings", requireScope(sa.ScopeWrite)(http.HandlerFunc(a.settingsSubmit)))
	tenantPages.Handle("GET /app/messages", requireScope(scopeMessages)(http.HandlerFunc(a.messagesPage)))
	// The form limit runs inside the middleware here, so that support's
	// refused oversized or malformed form is audited too.
	mux.Handle("/app/", a.withTenantViewer(a.access(a.limitForms(tenantPages))))

	// Customer admin area.
	mux.Handle("GET /admin/support-access", a.customerOnly(a.supportAccessPage))
	mux.Handle("POST /admin/support-access/grants", a.customerOnly(a.grantSubmit))
	mux.Handle("POST /admin/support-access/grants/{id}/revoke", a.customerOnly(a.revokeSubmit))
	mux.Handle("POST /admin/support-access/requests/{id}/approve", a.customerOnly(a.approveSubmit))
	mux.Handle("POST /admin/support-access/requests/{id}/deny", a.customerOnly(a.denySubmit))
	mux.Handle("GET /admin/audit", a.customerOnly(a.auditPage))
	// Any other admin URL or method: not found, but through customerOnly,
	// so that support probing the admin area during a support session is
	// refused by the middleware and lands in the tenant's trail too.
	mux.Handle("/admin/", a.customerOnly(a.notFound))

	// Support console.
	mux.Handle("GET /support/{$}", a.supportOnly(a.consolePage))
	mux.Handle("POST /support/impersonate", a.supportOnly(a.impersonateSubmit))
	mux.Handle("POST /support/stop", a.supportOnly(a.stopSubmit))
	mux.Handle("POST /support/requests", a.supportOnly(a.requestSubmit))

	mux.HandleFunc("/", a.notFound)

	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(a.csrfDenied))
	limited := a.limitForms(mux)
	return securityHeaders(csrf.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/app/") || strings.HasPrefix(r.URL.Path, "/admin/") {
			// limited inside the middleware (above), or for customers
			// only (customerOnly)
			mux.ServeHTTP(w, r)
			return
		}
		limited.ServeHTTP(w, r)
	})))
}

// maxFormBytes bounds a request body: the app's forms are a few kilobytes
// (a reason is at most 2000 bytes).
const maxFormBytes = 64 << 10

// limitForms reads the form of a request with a body, at most maxFormBytes
// of it, before any handler runs: a larger body is refused with 413 as
// soon as the limit is reached (net/http would otherwise read a multipart
// body of any size, spilling it to disk), a malformed one with 400.
func (a *app) limitForms(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			var err error
			if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
				err = r.ParseMultipartForm(maxFormBytes)
			} else {
				err = r.ParseForm()
			}
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				a.renderError(w, r, http.StatusRequestEntityTooLarge, "Too large", "The form is larger than this site accepts.")
				return
			case err != nil:
				a.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders adds headers that make the pages harder to abuse: no
// framing, no inline scripts, no referrer leaks.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
