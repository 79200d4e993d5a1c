package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the host's choice of driver: pure-Go SQLite

	"github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
)

func ExampleNew() {
	dir, err := os.MkdirTemp("", "supportaccess-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The host opens the database with its driver; a plain file path will do.
	db, err := sql.Open("sqlite", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	store, err := sqlstore.New(db, sqlstore.SQLite)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	if err := store.Migrate(ctx); err != nil { // at start-up; idempotent
		log.Fatal(err)
	}

	m, err := supportaccess.NewManager(store) // the store is also the audit log
	if err != nil {
		log.Fatal(err)
	}
	admin := supportaccess.Actor{Kind: supportaccess.ActorCustomer, ID: "admin@acme.example"}
	g, err := m.Grant(ctx, supportaccess.GrantInput{TenantID: "acme", By: admin, Duration: 24 * time.Hour, Reason: "ticket 42"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("granted for", g.ExpiresAt.Sub(g.StartsAt), "with scopes", g.Scopes)

	c, err := m.Check(ctx, "acme", "support+acme@vendor.example", supportaccess.ScopeRead)
	fmt.Println("support may read:", err == nil && c.ID == g.ID)
	// Every error is a denial (a store outage too); ErrScopeNotGranted
	// only says why.
	_, err = m.Check(ctx, "acme", "support+acme@vendor.example", supportaccess.ScopeWrite)
	fmt.Println("support may write:", err == nil, "- scope not granted:", errors.Is(err, supportaccess.ErrScopeNotGranted))

	if _, err := m.Revoke(ctx, g.ID, admin, "done"); err != nil {
		log.Fatal(err)
	}
	_, err = m.Check(ctx, "acme", "support+acme@vendor.example", supportaccess.ScopeRead)
	fmt.Println("after revoke:", err != nil && errors.Is(err, supportaccess.ErrNoActiveGrant))

	evs, err := m.Events(ctx, supportaccess.AuditFilter{TenantID: "acme"})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range evs {
		fmt.Println(e.Seq, e.Type, e.Actor.ID)
	}
	// Output:
	// granted for 24h0m0s with scopes [read]
	// support may read: true
	// support may write: false - scope not granted: true
	// after revoke: true
	// 1 grant.created admin@acme.example
	// 2 grant.revoked admin@acme.example
}
