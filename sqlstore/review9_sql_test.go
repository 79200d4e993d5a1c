package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/storetest"
)

// Tests of the ninth review round (sqlstore).

// TestReview9SQLMySQLClaimSecondWindowKeepsFirstCandidate: lockFlagged
// (18f009c) cuts window := cand[:k], moves cand past it, then locks with
// append(window, now). window shares cand's backing array and has spare
// capacity, so the append writes the time argument over the next
// candidate (the new cand[0]). When the first window comes back short
// (rows a concurrent claimer or writer holds), the second window's first
// ID — the earliest due grant not held by anyone — has become a time
// string, matches no row, and is silently not claimed: the claim returns
// fewer grants than it could and not the earliest due ones. With limit 1
// it returns nothing at all while a due, unlocked grant remains, and
// Manager.sweep's claimer then stops ("stop at an empty batch").
//
// Here grants g0..g5 expire in that order; another transaction holds g0
// and g1 (the first window of a limit-2 claim). The claim must take g2 and
// g3; it takes only g3 (g2's ID was overwritten by the time argument).
func TestReview9SQLMySQLClaimSecondWindowKeepsFirstCandidate(t *testing.T) {
	// Another writer holds g0 and g1 (as a concurrent claimer of the batch
	// in flight would).
	ids, claimed := rw9ClaimAroundHeld(t, 6, 2, 2)
	require.Equal(t, []uuid.UUID{ids[2], ids[3]}, claimed, "the two earliest due grants nobody holds")
}

// TestReview9SQLMySQLClaimLimitOneSkipsHeld: the same with limit 1 (the
// batch of a Manager whose store keeps no events): g0 is held, g1 is due and free, and the
// claim returns nothing, so a Sweep's claimer stops with g1 still due.
func TestReview9SQLMySQLClaimLimitOneSkipsHeld(t *testing.T) {
	ids, claimed := rw9ClaimAroundHeld(t, 2, 1, 1)
	require.Equal(t, []uuid.UUID{ids[1]}, claimed, "g1 is due and nobody holds it")
}

// rw9ClaimAroundHeld creates n grants of acme on MySQL that expired in
// the order of their index, has another transaction lock the first held
// ones (one primary-key lookup each), and returns the grants' IDs and
// those an expiry claim with limit returns meanwhile.
func rw9ClaimAroundHeld(t *testing.T, n, held, limit int) (ids, claimed []uuid.UUID) {
	s, db := reviewMyStore(t, 0)
	ctx := context.Background()
	now := storetest.Epoch.UTC().Truncate(time.Microsecond)
	for i := 0; i < n; i++ {
		created := now.Add(-48 * time.Hour)
		g := sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer,
			CreatedAt: created, StartsAt: created, ExpiresAt: now.Add(-time.Duration(10-i) * time.Minute)}
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		ids = append(ids, g.ID)
	}
	_, err := storetest.ClaimStarts(ctx, s, now)
	require.NoError(t, err)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	for _, id := range ids[:held] {
		var got string
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT id FROM `+s.TablePrefix()+`grants WHERE id = ? FOR UPDATE`, id.String()).Scan(&got))
	}
	gs, err := s.ClaimTransitions(ctx, sa.TransitionExpired, now, limit, nil)
	require.NoError(t, err)
	for _, g := range gs {
		claimed = append(claimed, g.ID)
	}
	return ids, claimed
}
