package supportaccess_test

import (
	"context"
	"fmt"
	"time"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Support asks for three days of write access for a ticket; the customer
// approves one day, read-only. The window starts at the approval; the
// engineer then brings in a colleague.
func ExampleManager_RequestAccess() {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	m, err := sa.NewManager(memstore.New(), sa.WithNow(func() time.Time { return now }))
	if err != nil {
		panic(err)
	}
	eve := sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example"}
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}

	r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: eve, Duration: 3 * sa.Day,
		Scopes: []sa.Scope{sa.ScopeWrite}, Reason: "import fails", TicketRef: "SUP-7"})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Status, "until", r.ExpiresAt.Format(time.RFC3339))

	now = now.Add(5 * time.Hour) // the admin answers in the afternoon
	g, err := m.Approve(ctx, r.ID, admin, sa.ApproveInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeRead}})
	if err != nil {
		panic(err)
	}
	fmt.Println("grant", g.Grantees, g.Scopes, g.StartsAt.Format(time.RFC3339), "to", g.ExpiresAt.Format(time.RFC3339))

	if _, err := m.AddGrantee(ctx, g.ID, "carol@vendor.example", eve); err != nil {
		panic(err)
	}
	_, err = m.Check(ctx, "acme", "carol@vendor.example", sa.ScopeRead)
	fmt.Println("colleague:", err)
	// Output:
	// pending until 2026-12-01T09:00:00Z
	// grant [eve@vendor.example] [read] 2026-11-28T14:00:00Z to 2026-11-29T14:00:00Z
	// colleague: <nil>
}

// An expiry hook deletes the generic support user when a grant expires.
// Sweep (run by RunExpiry in production) records the expiry once and runs
// the hook once, whatever the number of replicas.
func ExampleOnExpire() {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	deleteUser := func(_ context.Context, g sa.Grant) error {
		fmt.Println("delete user support+" + g.TenantID + "@vendor.example")
		return nil
	}
	m, err := sa.NewManager(memstore.New(), sa.WithNow(func() time.Time { return now }), sa.OnExpire(deleteUser))
	if err != nil {
		panic(err)
	}
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}
	if _, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: admin, Duration: time.Hour}); err != nil {
		panic(err)
	}
	now = now.Add(time.Hour)
	n, err := m.Sweep(ctx)
	fmt.Println("expired:", n, err)
	n, err = m.Sweep(ctx)
	fmt.Println("again:", n, err)
	// Output:
	// delete user support+acme@vendor.example
	// expired: 1 <nil>
	// again: 0 <nil>
}
