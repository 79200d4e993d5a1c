package supportaccess_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Reading a tenant's trail page by page, verifying its hash chain and
// exporting it for an auditor, who verifies the export on their own.
func ExampleManager_VerifyAudit() {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	m, err := sa.NewManager(memstore.New(), sa.WithNow(func() time.Time { return now }))
	if err != nil {
		panic(err)
	}
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: admin, Reason: "SUP-1042"})
	if err != nil {
		panic(err)
	}
	if _, err := m.Revoke(ctx, g.ID, admin, "resolved"); err != nil {
		panic(err)
	}

	cursor := ""
	for {
		evs, next, err := m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme", Limit: 1}, cursor)
		if err != nil {
			panic(err)
		}
		for _, e := range evs {
			fmt.Println(e.Seq, e.Type, e.Actor.ID, e.Reason)
		}
		if next == "" {
			break
		}
		cursor = next
	}

	rep, err := m.VerifyAudit(ctx, "acme")
	fmt.Println("verified:", rep.Events, "events, intact:", rep.OK(), err)

	var export bytes.Buffer
	if _, err := m.ExportAudit(ctx, &export, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain}); err != nil {
		panic(err)
	}
	again, err := sa.VerifyJSONL(&export)
	fmt.Println("export verified:", again.Events, "events, same head:",
		bytes.Equal(again.Chains["acme"].Head.Hash, rep.Chains["acme"].Head.Hash), err)
	// Output:
	// 1 grant.created ada@acme.example SUP-1042
	// 2 grant.revoked ada@acme.example resolved
	// verified: 2 events, intact: true <nil>
	// export verified: 2 events, same head: true <nil>
}

// Keeping the audit trail in the store (in the transaction of each change)
// and in the application's structured log.
func ExampleNewSlogAuditor() {
	store := memstore.New()
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 1 && (a.Key == "id" || a.Key == "grant_id" || a.Key == "after") {
				return slog.Attr{} // random IDs, left out of this example's output
			}
			return a
		},
	}))
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	m, err := sa.NewManager(store, sa.WithAuditor(sa.MultiAuditor(store, sa.NewSlogAuditor(logger))),
		sa.WithNow(func() time.Time { return now }))
	if err != nil {
		panic(err)
	}
	_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}})
	if err != nil {
		panic(err)
	}
	// Output:
	// {"time":"2026-11-28T09:00:00Z","level":"INFO","msg":"supportaccess audit","event":{"time":"2026-11-28T09:00:00.000000Z","type":"grant.created","tenant_id":"acme","actor":{"kind":"customer","id":"ada@acme.example","name":""},"reason":"","before":null}}
}
