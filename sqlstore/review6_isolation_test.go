package sqlstore_test

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestUpdateAfterClaimRepeatableReadDefault: on a PostgreSQL server (or
// role) whose default_transaction_isolation is REPEATABLE READ, an
// UpdateGrant that waited for the grant's lock while a claim recorded its
// expiry must still see that claim: a recorded expiry is final. (At that
// level a waiting statement used to read the snapshot from before the
// claim committed, so a delegation could follow grant.expired.)
func TestUpdateAfterClaimRepeatableReadDefault(t *testing.T) {
	if err := sqltest.Available(sqlstore.Postgres); err != nil {
		t.Skip(err)
	}
	u, err := url.Parse(sqltest.DSN(sqlstore.Postgres))
	require.NoError(t, err, "this test needs a URL DSN")
	q := u.Query()
	q.Set("default_transaction_isolation", "repeatable read")
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx reads no "+" as a space
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s := sqltest.NewStoreOn(t, db, sqlstore.Postgres)
	ctx := context.Background()
	now := storetest.Epoch.UTC().Truncate(time.Microsecond)
	g := sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
		Grantees: []string{storetest.Engineer.ID}, CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	_, err = storetest.ClaimStarts(ctx, s, now)
	require.NoError(t, err)

	inClaim, release := make(chan struct{}), make(chan struct{})
	claimDone := make(chan error, 1)
	go func() {
		_, err := s.ClaimTransitions(ctx, sa.TransitionExpired, now.Add(2*time.Hour), 10, func(sa.Grant) ([]sa.Event, error) {
			close(inClaim)
			<-release
			return nil, nil
		})
		claimDone <- err
	}()
	<-inClaim
	updDone := make(chan error, 1)
	go func() {
		_, err := s.UpdateGrant(ctx, g.ID, func(g *sa.Grant) ([]sa.Event, error) {
			g.Grantees = append(g.Grantees, "mallory@vendor.example")
			return nil, nil
		})
		updDone <- err
	}()
	// Wait until the update waits for the grant's lock, then let the
	// claim commit.
	require.Eventually(t, func() bool {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || 'grants WHERE id = $1 FOR UPDATE%'`,
			s.TablePrefix()).Scan(&n)
		return err == nil && n > 0
	}, 10*time.Second, 10*time.Millisecond)
	close(release)
	require.NoError(t, <-claimDone)
	require.ErrorIs(t, <-updDone, sa.ErrInvalidInput, "the expiry was recorded before the update got the lock")
	got, err := s.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, []string{storetest.Engineer.ID}, got.Grantees, "no grantee added after grant.expired")
}
