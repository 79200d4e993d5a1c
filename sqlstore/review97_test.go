package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestReview97SimpleProtocolNULIsBareDriverError: with pgx's
// default_query_exec_mode=simple_protocol in the DSN (a pgx setting the
// package documentation does not exclude), a statement's first use inside
// a transaction runs unprepared, so pgx inlines its arguments into the query
// text. A grant whose TenantID holds a NUL byte is then refused by the server
// with SQLSTATE 08P01 (invalid message format), which the store passes on
// bare: not the supportaccess.ErrInvalidInput that the storetest contract
// (testTextKeptOrRefused, review82) demands and that the same call returns
// once the statement is prepared (SQLSTATE 22021). A host cannot tell the
// refusal from an outage.
func TestReview97SimpleProtocolNULIsBareDriverError(t *testing.T) {
	sqltest.Open(t, sqlstore.Postgres) // skips or fails with the how-to message
	db, err := sql.Open("pgx", sqltest.DSN(sqlstore.Postgres)+"?default_query_exec_mode=simple_protocol")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	s := sqltest.NewStoreOn(t, db, sqlstore.Postgres)
	ctx := context.Background()
	now := storetest.Epoch
	g := sa.Grant{ID: uuid.New(), TenantID: "acme\x00", GrantedBy: storetest.Customer,
		CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}
	err = s.CreateGrant(ctx, g, nil)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a NUL byte the database cannot keep is refused as invalid input, not with a bare protocol error")
	_, err = s.GetGrant(ctx, g.ID)
	require.ErrorIs(t, err, sa.ErrNotFound)

	// Reads with such text find nothing, or refuse it alike: never a bare
	// protocol error.
	readOK := func(err error, what string) {
		t.Helper()
		if err != nil {
			require.ErrorIs(t, err, sa.ErrInvalidInput, what)
		}
	}
	_, err = s.ListGrants(ctx, sa.ListFilter{TenantID: "acme\x00"}, now)
	readOK(err, "ListGrants")
	_, err = s.FindActiveGrant(ctx, "acme\x00", "a@vendor.example", sa.ScopeRead, now)
	if !errors.Is(err, sa.ErrNoActiveGrant) {
		readOK(err, "FindActiveGrant")
	}
	_, err = s.FindActiveGrant(ctx, "acme", "a\x00@vendor.example", sa.ScopeRead, now)
	if !errors.Is(err, sa.ErrNoActiveGrant) {
		readOK(err, "FindActiveGrant principal")
	}
	_, err = s.Events(ctx, sa.AuditFilter{TenantID: "acme\x00"})
	readOK(err, "Events")
}
