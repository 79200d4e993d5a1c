package supportaccess_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// requestFilterBlindStore is a memstore whose ListRequests ignores the
// RequestFilter (a host store, or a future backend, with a broken filter),
// the request counterpart of review59's listBlindStore.
type requestFilterBlindStore struct{ *memstore.Store }

func (s requestFilterBlindStore) ListRequests(ctx context.Context, _ sa.RequestFilter, now time.Time) ([]sa.AccessRequest, error) {
	return s.Store.ListRequests(ctx, sa.RequestFilter{}, now)
}

// TestReview70ListRequestsRechecksStoreRequests: Manager.List never trusts a
// store to have applied its filter (grant.go: "Never trust a store to have
// applied the filter"; review59) — a grant of another tenant, ticket or
// status is left out and reported. Manager.ListRequests (requests.go) has no
// such check: it returns whatever RequestStore.ListRequests hands back,
// only re-evaluating Status. A request list is what a customer's admin page
// shows as "pending requests for your tenant" (the example webapp's
// pendingRequests filters by TenantID and RequestPending only through
// ListRequests): with a store whose filter is broken, acme's administrator
// sees globex's request — its requester, reason and ticket — and the
// approve form that goes with it (DefaultAuthorizer lets any customer
// approve any tenant's request), as well as requests that are no longer
// pending. Expected, as for List: only requests the filter selects, at
// most Limit, each one left out reported to the error handler.
func TestReview70ListRequestsRechecksStoreRequests(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	var mu sync.Mutex
	var reported []error
	m, err := sa.NewManager(requestFilterBlindStore{memstore.New()}, sa.WithNow(clock.Now),
		sa.WithErrorHandler(func(_ context.Context, err error) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, err)
		}))
	require.NoError(t, err)

	mine, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T-1", Reason: "export broken"})
	require.NoError(t, err)
	clock.Advance(time.Second)
	_, err = m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: engineer, TicketRef: "T-1", Reason: "globex's secret incident"})
	require.NoError(t, err)
	clock.Advance(time.Second)
	denied, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T-1"})
	require.NoError(t, err)
	_, err = m.Deny(ctx, denied.ID, customer, "no")
	require.NoError(t, err)

	rs, err := m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", Statuses: []sa.RequestStatus{sa.RequestPending}})
	require.NoError(t, err)
	for _, r := range rs {
		require.Equal(t, "acme", r.TenantID, "ListRequests(acme) returned request %s of tenant %s (reason %q)", r.ID, r.TenantID, r.Reason)
		require.Equal(t, sa.RequestPending, r.Status, "ListRequests(pending) returned a %s request", r.Status)
	}
	require.Len(t, rs, 1)
	require.Equal(t, mine.ID, rs[0].ID)
	mu.Lock()
	require.Len(t, reported, 2, "each request left out is reported")
	mu.Unlock()

	rs, err = m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", Limit: 1})
	require.NoError(t, err)
	require.Len(t, rs, 1, "no more than Limit")
}
