package supportaccess_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// A customer admin grants support a day of read access; support may read
// but not write; after the revocation support is denied.
func ExampleManager_Grant() {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	m, err := sa.NewManager(memstore.New(), sa.WithNow(func() time.Time { return now }))
	if err != nil {
		panic(err)
	}
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: admin, Duration: 24 * time.Hour, Reason: "SUP-1042"})
	if err != nil {
		panic(err)
	}
	fmt.Println("status:", g.Status(now), "until", g.ExpiresAt.Format(time.RFC3339))

	_, err = m.Check(ctx, "acme", "support+acme@vendor.example", sa.ScopeRead)
	fmt.Println("read:", err)
	_, err = m.Check(ctx, "acme", "support+acme@vendor.example", sa.ScopeWrite)
	fmt.Println("write denied:", errors.Is(err, sa.ErrScopeNotGranted))

	if _, err := m.Revoke(ctx, g.ID, admin, "resolved"); err != nil {
		panic(err)
	}
	_, err = m.Check(ctx, "acme", "support+acme@vendor.example", sa.ScopeRead)
	fmt.Println("after revoke:", errors.Is(err, sa.ErrNoActiveGrant))
	// Output:
	// status: active until 2026-11-29T09:00:00Z
	// read: <nil>
	// write denied: true
	// after revoke: true
}

// A policy with the duration presets a grant dialog offers; durations
// outside them are refused.
func ExampleWithPolicy() {
	p := sa.DefaultPolicy()
	p.Presets = sa.PresetsShort // 24 hours, 3 days, 7 days
	p.DefaultDuration = 24 * time.Hour
	p.RequireReason = true
	m, err := sa.NewManager(memstore.New(), sa.WithPolicy(p))
	if err != nil {
		panic(err)
	}
	for _, pr := range m.Policy().Presets {
		fmt.Println(pr.Label, pr.Duration)
	}
	_, err = m.Grant(context.Background(), sa.GrantInput{
		TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"},
		Duration: 2 * time.Hour, Reason: "quick look",
	})
	fmt.Println(errors.Is(err, sa.ErrInvalidInput))
	// Output:
	// 24 hours 24h0m0s
	// 3 days 72h0m0s
	// 7 days 168h0m0s
	// true
}

// Hosts plug their own role model: here only the tenant's owners may grant.
func ExampleWithAuthorizer() {
	owners := map[string]string{"olga@acme.example": "acme"}
	m, err := sa.NewManager(memstore.New(), sa.WithAuthorizer(
		func(ctx context.Context, action sa.Action, by sa.Actor, tenantID string) error {
			if action == sa.ActionRevoke && by.Kind != sa.ActorCustomer {
				return sa.DefaultAuthorizer(ctx, action, by, tenantID)
			}
			if by.Kind == sa.ActorCustomer && owners[by.ID] == tenantID {
				return nil
			}
			return errors.New("only tenant owners manage support access")
		}))
	if err != nil {
		panic(err)
	}
	_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "bob@acme.example"}})
	fmt.Println(errors.Is(err, sa.ErrForbidden))
	_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "olga@acme.example"}})
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}
