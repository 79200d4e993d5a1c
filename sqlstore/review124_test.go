package sqlstore_test

// Review 124: mutation testing of sqlstore's grant, request, hook and
// audit-chain SQL (grants.go, requests.go, hooks.go, audit_chain.go,
// queries.go). The backend-agnostic cases are storetest conformance cases
// (ApprovedGrantTransitionsPending,
// ClaimedBatchAsStored); the test below looks at the
// grant_due table itself.

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestReview124RevokeDropsDueRows pins that revoking a grant deletes its
// pending transitions from grant_due (PostgreSQL and SQLite; MySQL keeps
// claim flags on the grant instead). An unlimited grant's expiry row is
// due "never", so no claim ever removes it: left behind, it stays for
// good. Kills (grants.go, syncDue): the dropDues of a revocation skipped.
func TestReview124RevokeDropsDueRows(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		if d == sqlstore.MySQL {
			continue // MySQL/MariaDB keep claim flags on the grant: no grant_due table
		}
		t.Run(d.String(), func(t *testing.T) { review124RevokeDropsDueRows(t, d) })
	}
}

// review124RevokeDropsDueRows is TestReview124RevokeDropsDueRows on dialect d.
func review124RevokeDropsDueRows(t *testing.T, d sqlstore.Dialect) {
	ctx := context.Background()
	db := sqltest.Open(t, d)
	s := sqltest.NewStoreOn(t, db, d)
	now := storetest.Epoch.Truncate(time.Microsecond)
	due := func(id uuid.UUID) int {
		t.Helper()
		q := `SELECT COUNT(*) FROM ` + s.TablePrefix() + `grant_due WHERE grant_id = ?`
		if d == sqlstore.Postgres {
			q = dollar(q)
		}
		var n int
		require.NoError(t, db.QueryRowContext(ctx, q, id).Scan(&n))
		return n
	}
	for _, exp := range []time.Time{{}, now.Add(time.Hour)} { // unlimited, then limited
		g := sa.Grant{ID: uuid.New(), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
			CreatedAt: now, StartsAt: now.Add(time.Minute), ExpiresAt: exp}
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		require.Equal(t, 2, due(g.ID), "start and expiry pending")
		_, err := s.UpdateGrant(ctx, g.ID, func(g *sa.Grant) ([]sa.Event, error) {
			g.RevokedAt, g.RevokedBy = now, storetest.Customer
			return nil, nil
		})
		require.NoError(t, err)
		require.Zero(t, due(g.ID), "nothing pending once revoked (expires %v)", exp)
	}
}
