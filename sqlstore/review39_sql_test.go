package sqlstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Tests of the 39th review round (audit trail across backends).

// (TestReview39BoundBeyondMaxTime became the conformance case
// AuditBoundsAfterLastTime.)

// TestReview39RefusalWithAuthorizerTextIsAudited: an Authorizer's error is
// caller text (authz.go:93 copies err.Error() into the action.refused
// event's Reason unchanged). One byte of it that is not UTF-8 makes
// PostgreSQL and MySQL refuse the event, so the refusal is not in the
// trail (only the error handler hears of it), while memstore and SQLite
// keep it. notify.go's errorText already cleans hook and Notifier errors
// for exactly this reason.
func TestReview39RefusalWithAuthorizerTextIsAudited(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, s sa.Store) {
		clock := storetest.NewClock(storetest.Epoch)
		var handled []error
		var mu sync.Mutex
		m, err := sa.NewManager(s, sa.WithNow(clock.Now),
			sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error {
				return errors.New("directory says: role \xff\xfe is not admin: \xff")
			}),
			sa.WithErrorHandler(func(_ context.Context, err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
		require.NoError(t, err)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: sa.Day})
		require.ErrorIs(t, err, sa.ErrForbidden)
		evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventActionRefused}})
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, evs, 1, "the refusal is in the trail (error handler got: %v)", handled)
	}
	t.Run("memstore", func(t *testing.T) { run(t, memstore.New()) })
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) { run(t, sqltest.NewStore(t, d)) })
}
