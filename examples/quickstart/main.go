// Command quickstart walks through supportaccess step by step on the
// console: a customer admin grants support 24 hours of read access, support
// reads (allowed) and tries to write (denied) through the host's HTTP
// handlers wrapped in the access middleware, the admin revokes, support is
// denied again, and the audit trail — grants, requests and denials — is
// printed.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

func main() {
	if err := run(context.Background(), os.Stdout, time.Now); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run performs the walkthrough, writing to w, with the given clock.
func run(ctx context.Context, w io.Writer, now func() time.Time) error {
	store := memstore.New()
	m, err := sa.NewManager(store, sa.WithNow(now))
	if err != nil {
		return err
	}
	defer m.Close()
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example", Name: "Ada (admin, Acme)"}
	support := "support+acme@vendor.example"
	step := func(format string, a ...any) { fmt.Fprintf(w, "\n==> "+format+"\n", a...) }

	// The host's application: two routes, wrapped in the access
	// middleware. A request with the support session's cookie is support
	// impersonating Ada in tenant acme (the host's own session lookup).
	app := http.NewServeMux()
	app.HandleFunc("GET /invoices", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "3 invoices") })
	app.HandleFunc("POST /settings", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "settings saved") })
	resolve := func(r *http.Request) (sa.Session, bool) {
		if c, err := r.Cookie("sid"); err != nil || c.Value != "support-1" {
			return sa.Session{}, false // not support: passes through untouched
		}
		return sa.Session{TenantID: "acme", Principal: support, SubjectUserID: "ada", SessionID: "support-1"}, true
	}
	h := m.Middleware(resolve)(app)
	request := func(method, path string) {
		req := httptest.NewRequestWithContext(ctx, method, path, nil)
		req.AddCookie(&http.Cookie{Name: "sid", Value: "support-1"})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		verdict := "ALLOWED"
		if rec.Code >= 400 {
			verdict = "DENIED"
		}
		body, _, _ := strings.Cut(strings.TrimSpace(rec.Body.String()), "\n")
		fmt.Fprintf(w, "    %s %s %s: %d %s (%s)\n", support, method, path, rec.Code, verdict, body)
	}

	step("Support tries to read tenant acme before any grant")
	request(http.MethodGet, "/invoices")

	step("Ada grants support 24 hours of read-only access")
	g, err := m.Grant(ctx, sa.GrantInput{
		TenantID: "acme", By: admin, Duration: 24 * time.Hour,
		Reason: "Investigate failed invoice export", TicketRef: "SUP-1042",
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    grant %s: scopes %v, %s → %s, status %s\n", short(g.ID.String()), g.Scopes,
		g.StartsAt.Format(time.RFC3339), g.ExpiresAt.Format(time.RFC3339), g.Status(m.Now()))

	step("Support reads (GET needs scope %q)", sa.ScopeRead)
	request(http.MethodGet, "/invoices")

	step("Support tries to change a setting (POST needs scope %q)", sa.ScopeWrite)
	request(http.MethodPost, "/settings")

	step("Ada revokes the grant")
	if _, err := m.Revoke(ctx, g.ID, admin, "Issue resolved"); err != nil {
		return err
	}
	fmt.Fprintln(w, "    revoked")

	step("Support tries to read again")
	request(http.MethodGet, "/invoices")

	step("Audit trail of tenant acme")
	evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	if err != nil {
		return err
	}
	for _, e := range evs {
		what := e.Reason
		if p := e.Attrs[sa.AttrPath]; p != "" {
			what = strings.TrimSpace(e.Attrs[sa.AttrMethod] + " " + p + " " + e.Attrs[sa.AttrStatus] + " " + e.Reason)
		}
		fmt.Fprintf(w, "    #%d %s  %-15s by %s %s  %q\n", e.Seq, e.Time.Format(time.RFC3339), e.Type, e.Actor.Kind, e.Actor.ID, what)
	}
	return nil
}

func short(id string) string { return id[:8] }
