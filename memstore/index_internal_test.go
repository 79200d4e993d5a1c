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

// TestTenantTimeIndexFollowsTrail holds the invariant of each chain's time
// index (chain.byTime), which serves a tenant's pages in time order: after
// out-of-order times, several tenants, a purge and the test hooks' tampering,
// it holds exactly the tenant's events of the store-wide index, in the same
// order. (BenchmarkEventsTenantPage shows the page's cost no longer grows
// with other tenants' events.)
func TestTenantTimeIndexFollowsTrail(t *testing.T) {
	ctx := context.Background()
	s := New()
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for i := range 60 {
		tenant := []string{"acme", "beta", "acm"}[i%3]
		at := base.Add(time.Duration((i*37)%60) * time.Second) // out of time order
		require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: at, Type: sa.EventSupportRequest, TenantID: tenant, Actor: sa.SystemActor}))
	}
	check := func() {
		t.Helper()
		for tenant, c := range s.audit.chains {
			var want []*sa.Event
			for _, e := range s.audit.byTime {
				if e.TenantID == tenant {
					want = append(want, e)
				}
			}
			require.Equal(t, want, c.byTime, "tenant %q", tenant)
		}
	}
	check()
	_, err := s.PurgeAudit(ctx, "beta", base.Add(30*time.Second), func(p sa.AuditPurge) (sa.Event, error) {
		return sa.Event{ID: uuid.New(), Time: base.Add(time.Hour), Type: sa.EventAuditPurged, TenantID: "beta", Actor: sa.SystemActor}, nil
	})
	require.NoError(t, err)
	check()
	require.NoError(t, TamperDelete(s, "acme", 3))
	require.NoError(t, TamperSeq(s, "acme", 5, 500))
	forged := sa.Event{ID: uuid.New(), Time: base.Add(-time.Minute), Type: sa.EventGrantRevoked, TenantID: "acm", Actor: sa.SystemActor, Seq: 999}
	require.NoError(t, TamperInsert(s, forged))
	check()

	// A page of "acm" after its last event in time order is empty,
	// whatever other tenants recorded later.
	last := s.audit.chains["acm"].byTime[len(s.audit.chains["acm"].byTime)-1]
	for i := range 1000 {
		require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: base.Add(2*time.Hour + time.Duration(i)*time.Second), Type: sa.EventSupportRequest, TenantID: "acme", Actor: sa.SystemActor}))
	}
	c := last.Cursor()
	evs, err := s.Events(ctx, sa.AuditFilter{TenantID: "acm", After: &c, Limit: 10})
	require.NoError(t, err)
	require.Empty(t, evs)
	require.Len(t, s.audit.chains["acm"].byTime, 21, "20 recorded and the forged one")
}
