package memstore

import (
	"context"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestTenantIDSharedByIndex holds the layout Check's speed rests on: a
// tenant's key in the Check index and the TenantID of each of its grants
// are one copy of the ID, not the caller's strings, also after an update
// that hands back an equal ID in other memory. (Check compares the
// returned grant's TenantID with the one asked for; sharing the map key's
// bytes saves it a read of memory elsewhere in the heap.)
func TestTenantIDSharedByIndex(t *testing.T) {
	ctx := context.Background()
	s := New()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var ids []uuid.UUID
	for range 3 {
		g := sa.Grant{ID: uuid.New(), TenantID: strings.Clone("acme"), Scopes: []sa.Scope{sa.ScopeRead}, CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		ids = append(ids, g.ID)
	}
	_, err := s.UpdateGrant(ctx, ids[1], func(g *sa.Grant) ([]sa.Event, error) {
		g.TenantID = strings.Clone("acme")
		g.ExpiresAt = g.ExpiresAt.Add(time.Hour)
		return nil, nil
	})
	require.NoError(t, err)

	var key string
	for k := range s.byTenant {
		key = k
	}
	require.Equal(t, "acme", key)
	for _, id := range ids {
		e := s.grants[id]
		require.Equal(t, "acme", e.g.TenantID)
		require.Same(t, unsafe.StringData(key), unsafe.StringData(e.g.TenantID), "grant %s", id)
	}
	got, err := s.FindActiveGrant(ctx, "acme", "alice@vendor.example", sa.ScopeRead, now)
	require.NoError(t, err)
	require.Equal(t, ids[1], got.ID, "the extended grant expires last")
}
