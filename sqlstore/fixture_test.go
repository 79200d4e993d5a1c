package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// fixtureNow is the time at which fixture grants are evaluated.
var fixtureNow = storetest.Epoch.Truncate(time.Microsecond)

// fixtureTenant names tenant i.
func fixtureTenant(i int) string { return fmt.Sprintf("tenant-%07d", i) }

// fixtureGrants returns perTenant grants for each of tenants tenants, in
// the mix a long-running product accumulates: per tenant one active grant
// open to any support principal (read+write), one active grant for a named
// engineer, one scheduled, two revoked and the rest expired.
func fixtureGrants(tenants, perTenant int) []sa.Grant {
	now := fixtureNow
	out := make([]sa.Grant, 0, tenants*perTenant)
	for i := 0; i < tenants; i++ {
		tenant := fixtureTenant(i)
		for j := 0; j < perTenant; j++ {
			// Created j+1 weeks ago: a week-long grant (the default case)
			// has expired.
			created := now.Add(-time.Duration(j+1) * 7 * 24 * time.Hour)
			g := sa.Grant{
				ID: uuid.New(), TenantID: tenant, Scopes: []sa.Scope{sa.ScopeRead},
				Reason: "ticket work", TicketRef: fmt.Sprintf("T-%d-%d", i, j), GrantedBy: storetest.Customer,
				CreatedAt: created, StartsAt: created, ExpiresAt: created.Add(7 * 24 * time.Hour),
			}
			switch j {
			case 0:
				g.Scopes = []sa.Scope{sa.ScopeRead, sa.ScopeWrite}
				g.StartsAt = now.Add(-time.Hour)
				g.ExpiresAt = now.Add(24 * time.Hour)
			case 1:
				g.Grantees = []string{storetest.Engineer.ID}
				g.StartsAt = now.Add(-time.Hour)
				g.ExpiresAt = now.Add(72 * time.Hour)
			case 2:
				g.StartsAt = now.Add(time.Hour)
				g.ExpiresAt = now.Add(25 * time.Hour)
			case 3, 4:
				g.ExpiresAt = now.Add(time.Hour)
				g.RevokedAt = created.Add(time.Hour)
				g.RevokedBy = storetest.Customer
			}
			out = append(out, g)
		}
	}
	return out
}

// seed inserts the fixture into s.
func seed(tb testing.TB, s *sqlstore.Store, tenants, perTenant int) {
	tb.Helper()
	require.NoError(tb, s.InsertGrantsForTest(context.Background(), fixtureGrants(tenants, perTenant)))
}
