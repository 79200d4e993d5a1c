// Command quickstart walks through supportaccess step by step on the
// console: a customer admin grants support 24 hours of read access, support
// reads (allowed) and tries to write (denied), the admin revokes, support is
// denied again, and the audit trail is printed.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example", Name: "Ada (admin, Acme)"}
	support := "support+acme@vendor.example"
	step := func(format string, a ...any) { fmt.Fprintf(w, "\n==> "+format+"\n", a...) }
	check := func(scope sa.Scope) {
		g, err := m.Check(ctx, "acme", support, scope)
		switch {
		case err == nil:
			fmt.Fprintf(w, "    %s %s: ALLOWED (grant %s, until %s)\n", support, scope, short(g.ID.String()), g.ExpiresAt.Format(time.RFC3339))
		case errors.Is(err, sa.ErrNoActiveGrant), errors.Is(err, sa.ErrScopeNotGranted):
			fmt.Fprintf(w, "    %s %s: DENIED (%v)\n", support, scope, err)
		default:
			fmt.Fprintf(w, "    %s %s: DENIED, check failed (%v)\n", support, scope, err)
		}
	}

	step("Support tries to read tenant acme before any grant")
	check(sa.ScopeRead)

	step("Ada grants support 24 hours of read-only access")
	g, err := m.Grant(ctx, sa.GrantInput{
		TenantID: "acme", By: admin, Duration: 24 * time.Hour,
		Reason: "Investigate failed invoice export", TicketRef: "SUP-1042",
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "    grant %s: scopes %v, %s → %s, status %s\n", short(g.ID.String()), g.Scopes,
		g.StartsAt.Format(time.RFC3339), g.ExpiresAt.Format(time.RFC3339), g.Status(now()))

	step("Support reads (GET needs scope %q)", sa.ScopeRead)
	check(sa.ScopeRead)

	step("Support tries to change a setting (POST needs scope %q)", sa.ScopeWrite)
	check(sa.ScopeWrite)

	step("Ada revokes the grant")
	if _, err := m.Revoke(ctx, g.ID, admin, "Issue resolved"); err != nil {
		return err
	}
	fmt.Fprintln(w, "    revoked")

	step("Support tries to read again")
	check(sa.ScopeRead)

	step("Audit trail of tenant acme")
	evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	if err != nil {
		return err
	}
	for _, e := range evs {
		fmt.Fprintf(w, "    #%d %s  %-14s by %s %s  %q\n", e.Seq, e.Time.Format(time.RFC3339), e.Type, e.Actor.Kind, e.Actor.ID, e.Reason)
	}
	return nil
}

func short(id string) string { return id[:8] }
