package sqlstore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// review99Backend is a named store for the cross-backend tests of round 99.
type review99Backend struct {
	name string
	new  func(t *testing.T) sa.Store
}

// review99Backends returns memstore and every SQL dialect (skipped like
// sqltest.Open when a server is not there).
func review99Backends() []review99Backend {
	bs := []review99Backend{{"memstore", func(*testing.T) sa.Store { return memstore.New() }}}
	for _, d := range sqltest.Dialects() {
		bs = append(bs, review99Backend{d.String(), func(t *testing.T) sa.Store { return sqltest.NewStore(t, d) }})
	}
	return bs
}

// review99MaxTime is the last microsecond of year 9999, the latest time the
// Manager gives a grant and every bundled store keeps.
var review99MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)

// TestReview99RequestNearYear9999 asks for access two days before the end
// of year 9999 (a grant of an hour would end well within it): the
// request's ExpiresAt, CreatedAt plus the default 72 h RequestTTL, lies in
// year 10000. Every backend must answer alike — keep a request whose
// times lie within the range the stores keep, with a request.created
// event that holds the request (After).
func TestReview99RequestNearYear9999(t *testing.T) {
	start := time.Date(9999, 12, 29, 12, 0, 0, 0, time.UTC)
	outcomes := map[string]bool{}
	for _, b := range review99Backends() {
		t.Run(b.name, func(t *testing.T) {
			st := b.new(t)
			clock := storetest.NewClock(start)
			m, err := sa.NewManager(st, sa.WithNow(clock.Now))
			require.NoError(t, err)
			ctx := context.Background()
			r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Duration: time.Hour, Reason: "case 1"})
			outcomes[b.name] = err == nil
			// The request is kept, answerable until the end of year 9999
			// (its ExpiresAt capped there, as the Manager caps the lease
			// ends and retry times it computes).
			require.NoError(t, err)
			require.Equal(t, review99MaxTime, r.ExpiresAt,
				"request ExpiresAt %s: capped at the end of year 9999, which every store keeps and JSON can encode", r.ExpiresAt)
			evs, err := st.(sa.AuditLog).Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventRequestCreated}})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			var got sa.AccessRequest
			require.NoError(t, json.Unmarshal(evs[0].After, &got), "request.created After %q", evs[0].After)
		})
	}
	var first *bool
	for name, ok := range outcomes {
		if first == nil {
			first = &ok
			continue
		}
		require.Equal(t, *first, ok, "backends disagree on the same RequestAccess: %v (%s)", outcomes, name)
	}
}
