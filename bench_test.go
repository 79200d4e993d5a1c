package supportaccess_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// grantsPerTenant is how many grants each tenant of the Check benchmark has
// (a few: several tickets, one expired, one revoked).
const grantsPerTenant = 4

// seedMemstore fills a memstore with n grants spread over n/grantsPerTenant
// tenants directly through the Store (bypassing the Manager keeps setup of
// a million grants fast) and returns a Manager on it.
func seedMemstore(b *testing.B, n int, now time.Time) *sa.Manager {
	b.Helper()
	st := memstore.New()
	for i := 0; i < n; i++ {
		tenant := fmt.Sprintf("tenant-%d", i/grantsPerTenant)
		g := sa.Grant{
			ID: uuid.New(), TenantID: tenant, Scopes: []sa.Scope{sa.ScopeRead},
			GrantedBy: customer, CreatedAt: now.Add(-time.Hour), StartsAt: now.Add(-time.Hour),
			ExpiresAt: now.Add(time.Duration(i%grantsPerTenant+1) * time.Hour),
		}
		switch i % grantsPerTenant {
		case 0:
			g.ExpiresAt = now.Add(-time.Minute) // expired
		case 1:
			g.RevokedAt = now.Add(-time.Minute) // revoked
		}
		if err := st.CreateGrant(ctx, g, nil); err != nil {
			b.Fatal(err)
		}
	}
	m, err := sa.NewManager(st, sa.WithNow(func() time.Time { return now }))
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkCheck measures Manager.Check on memstore with 1 k, 100 k and 1 M
// grants (4 per tenant). Target: ≤ 150 ns/op, ≤ 1 alloc/op, flat across
// sizes.
func BenchmarkCheck(b *testing.B) {
	now := storetest.Epoch.Truncate(time.Microsecond)
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		// Seed once per size, and collect the seeding's garbage before
		// timing, so that neither the fixture nor its GC debt is measured.
		m := seedMemstore(b, n, now)
		runtime.GC()
		b.Run(fmt.Sprintf("memstore/grants=%d", n), func(b *testing.B) {
			tenants := n / grantsPerTenant
			names := make([]string, 1024)
			for i := range names {
				names[i] = fmt.Sprintf("tenant-%d", (i*7919)%tenants)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Check(ctx, names[i&1023], support.ID, sa.ScopeRead); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGrant measures Manager.Grant on memstore, including validation,
// the grant.created event and its hash-chain link.
func BenchmarkGrant(b *testing.B) {
	m, err := sa.NewManager(memstore.New())
	if err != nil {
		b.Fatal(err)
	}
	tenants := make([]string, 1000)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant-%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Grant(ctx, sa.GrantInput{TenantID: tenants[i%1000], By: customer, Duration: 24 * time.Hour, Reason: "ticket"}); err != nil {
			b.Fatal(err)
		}
	}
}
