package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// auditCases are the conformance cases of the audit trail (Auditor and
// AuditLog).
var auditCases = []testCase{
	{"AuditEventsWithChanges", testAuditWithChanges},
	{"AuditFilter", testAuditFilter},
	{"AuditOrderAndLimit", testAuditOrder},
	{"AuditChain", testAuditChain},
	{"AuditRoundTrip", testAuditRoundTrip},
}

func testAuditWithChanges(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	g := h.grant(sa.GrantInput{Reason: "why not", Duration: time.Hour})
	_, err := h.m.Extend(h.ctx, g.ID, g.ExpiresAt.Add(time.Hour), Customer)
	require.NoError(t, err)
	_, err = h.m.Revoke(h.ctx, g.ID, Support, "done")
	require.NoError(t, err)
	evs, err := l.Events(h.ctx, sa.AuditFilter{GrantID: g.ID})
	require.NoError(t, err)
	require.Len(t, evs, 3)
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantExtended, sa.EventGrantRevoked},
		[]sa.EventType{evs[0].Type, evs[1].Type, evs[2].Type})
	require.Equal(t, "why not", evs[0].Reason)
	require.Empty(t, evs[0].Before)
	require.JSONEq(t, string(mustJSON(t, g)), string(evs[0].After))
	require.Equal(t, Support, evs[2].Actor)
	require.Equal(t, "done", evs[2].Reason)
	var after sa.Grant
	require.NoError(t, jsonUnmarshal(evs[2].After, &after))
	require.False(t, after.RevokedAt.IsZero())
}

func testAuditFilter(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	g1 := h.grant(sa.GrantInput{TenantID: "acme"})
	h.clock.Advance(time.Second)
	t1 := h.clock.Now().Truncate(time.Microsecond)
	g2 := h.grant(sa.GrantInput{TenantID: "globex"})
	h.clock.Advance(time.Second)
	t2 := h.clock.Now().Truncate(time.Microsecond)
	_, err := h.m.Revoke(h.ctx, g1.ID, Support, "")
	require.NoError(t, err)
	sup := sa.Actor{Kind: sa.ActorSupport, ID: "other@vendor.example"}
	require.NoError(t, h.store.(sa.Auditor).Record(h.ctx, sa.Event{ID: uuid.New(), Time: t2, Type: sa.EventSupportRequest, TenantID: "globex", Actor: sup,
		Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/settings"}}))

	q := func(f sa.AuditFilter) []sa.EventType {
		t.Helper()
		evs, err := l.Events(h.ctx, f)
		require.NoError(t, err)
		out := []sa.EventType{}
		for _, e := range evs {
			out = append(out, e.Type)
		}
		return out
	}
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked}, q(sa.AuditFilter{TenantID: "acme"}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventSupportRequest}, q(sa.AuditFilter{TenantID: "globex"}))
	require.Equal(t, []sa.EventType{sa.EventGrantRevoked, sa.EventSupportRequest}, q(sa.AuditFilter{ActorKind: sa.ActorSupport}))
	require.Equal(t, []sa.EventType{sa.EventSupportRequest}, q(sa.AuditFilter{ActorID: sup.ID}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantCreated}, q(sa.AuditFilter{Types: []sa.EventType{sa.EventGrantCreated}}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked, sa.EventSupportRequest},
		q(sa.AuditFilter{Types: []sa.EventType{sa.EventGrantRevoked, sa.EventSupportRequest, sa.EventGrantCreated}, Since: t1}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated}, q(sa.AuditFilter{GrantID: g2.ID}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated}, q(sa.AuditFilter{Since: t1, Until: t2}), "Since inclusive, Until exclusive")
	require.Equal(t, []sa.EventType{sa.EventGrantRevoked, sa.EventSupportRequest}, q(sa.AuditFilter{Since: t2}))
	require.Equal(t, []sa.EventType{}, q(sa.AuditFilter{TenantID: "acme", ActorKind: sa.ActorSystem}))
	require.Equal(t, []sa.EventType{}, q(sa.AuditFilter{TenantID: "initech"}))
}

func testAuditOrder(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	// Several events at the same instant keep their insertion order (Seq).
	var want []uuid.UUID
	for i := 0; i < 6; i++ {
		e := sa.Event{ID: uuid.New(), Time: h.clock.Now().Truncate(time.Microsecond), Type: sa.EventSupportRequest, TenantID: "acme", Actor: Support,
			Attrs: map[string]string{"i": fmt.Sprint(i)}}
		require.NoError(t, h.store.(sa.Auditor).Record(h.ctx, e))
		want = append(want, e.ID)
	}
	evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	var got []uuid.UUID
	for i, e := range evs {
		got = append(got, e.ID)
		require.EqualValues(t, i+1, e.Seq)
	}
	require.Equal(t, want, got)
	lim, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Limit: 4})
	require.NoError(t, err)
	require.Len(t, lim, 4)
	require.Equal(t, want[:4], grantEventIDs(lim))
}

func grantEventIDs(evs []sa.Event) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func testAuditChain(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	g := h.grant(sa.GrantInput{TenantID: "acme"})
	h.grant(sa.GrantInput{TenantID: "globex"})
	_, err := h.m.Revoke(h.ctx, g.ID, Customer, "x")
	require.NoError(t, err)
	for _, tenant := range []string{"acme", "globex"} {
		evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: tenant})
		require.NoError(t, err)
		var prev []byte
		for i, e := range evs {
			require.EqualValues(t, i+1, e.Seq, "per-tenant sequence")
			require.Equal(t, e.ChainHash(prev), e.Hash, "hash chain of %s at %d", tenant, e.Seq)
			prev = e.Hash
		}
	}
}

func testAuditRoundTrip(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	e := sa.Event{
		ID: uuid.New(), Time: Epoch.Add(123 * time.Microsecond), Type: sa.EventSupportChange, TenantID: "acme",
		GrantID: uuid.New(), Actor: sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example", Name: "Ève “E” O'Neil"},
		Reason: "línea 1\nline 2\t'; DROP TABLE x; --", Attrs: map[string]string{sa.AttrWhat: "settings.theme", "empty": ""},
		Before: []byte(`{"theme":"dark","n":1.50}`), After: []byte(`{"n":2, "theme":"light"}`),
	}
	require.NoError(t, h.store.(sa.Auditor).Record(h.ctx, e))
	evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	got := evs[0]
	require.NotEmpty(t, got.Hash)
	require.EqualValues(t, 1, got.Seq)
	got.Seq, got.Hash = 0, nil
	require.Equal(t, e, got, "events round-trip byte for byte (Before/After too)")
}
