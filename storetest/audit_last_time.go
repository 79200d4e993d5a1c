package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// testAuditBoundsAfterLastTime: an event at the last microsecond of year
// 9999 (the latest time every store keeps) is inside a filter whose Until
// is later, outside one whose Since is later, and older than a purge's
// later before — as AuditFilter.Match says. A store that clamped such a
// bound onto the last time it keeps dropped the event from "Until: far
// future" (a common way to say "no upper bound") and kept it in a purge.
func testAuditBoundsAfterLastTime(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	a := h.auditor()
	l := h.auditLog()
	last := time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)
	beyond := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	e := sa.Event{ID: uuid.New(), Time: last, Type: sa.EventSupportRequest, TenantID: "acme", Actor: Support}
	if err := a.Record(h.ctx, e); err != nil {
		require.ErrorIs(t, err, sa.ErrInvalidInput) // a store may keep less
		t.Skip("the store does not keep year 9999's last microsecond")
	}
	for _, c := range []struct {
		f    sa.AuditFilter
		want int
	}{
		{sa.AuditFilter{TenantID: "acme", Until: beyond}, 1},
		{sa.AuditFilter{TenantID: "acme", Until: last.Add(time.Microsecond)}, 1},
		{sa.AuditFilter{TenantID: "acme", Until: last}, 0},
		{sa.AuditFilter{TenantID: "acme", Since: last}, 1},
		{sa.AuditFilter{TenantID: "acme", Since: last.Add(time.Microsecond)}, 0},
		{sa.AuditFilter{TenantID: "acme", Since: beyond}, 0},
		{sa.AuditFilter{Since: beyond}, 0},
		{sa.AuditFilter{Until: beyond}, 1},
	} {
		require.Equal(t, c.want == 1, c.f.Match(&e), "sanity: Match of %+v", c.f)
		evs, err := l.Events(h.ctx, c.f)
		require.NoError(t, err)
		require.Len(t, evs, c.want, "Since %s, Until %s", c.f.Since, c.f.Until)
	}
	res, err := h.m.PurgeAudit(h.ctx, "acme", beyond)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Deleted, "the event is older than before")
	h.verify("acme")
}

// testAuditCursorsOutsideStoredTimes: a paging cursor (AuditFilter.After)
// whose time is after year 9999's last microsecond, or before year 1000
// (times no store is asked to keep), compares as AuditFilter.Match says:
// no stored event is after the first, every one is after the second. A
// store that clamped the cursor's time onto the range returned the event
// of year 9999's last microsecond after a cursor of year 10000, and
// dropped an event of year 1000 after a cursor of year 999.
func testAuditCursorsOutsideStoredTimes(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	a := h.auditor()
	l := h.auditLog()
	last := time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)
	beyond := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	first := time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	before := time.Date(999, 12, 31, 0, 0, 0, 0, time.UTC)
	evLast := sa.Event{ID: uuid.New(), Time: last, Type: sa.EventSupportRequest, TenantID: "acme", Actor: Support}
	evFirst := sa.Event{ID: uuid.New(), Time: first, Type: sa.EventSupportRequest, TenantID: "beta", Actor: Support}
	for _, e := range []sa.Event{evLast, evFirst} {
		if err := a.Record(h.ctx, e); err != nil {
			require.ErrorIs(t, err, sa.ErrInvalidInput) // a store may keep less
			t.Skip("the store does not keep years 1000 and 9999")
		}
	}
	for _, c := range []struct {
		name string
		f    sa.AuditFilter
		ev   sa.Event
	}{
		{"beyond, own tenant", sa.AuditFilter{TenantID: "acme", After: &sa.AuditCursor{Time: beyond, TenantID: "acme"}}, evLast},
		{"beyond, earlier tenant", sa.AuditFilter{TenantID: "acme", After: &sa.AuditCursor{Time: beyond, TenantID: "a"}}, evLast},
		{"beyond, all tenants", sa.AuditFilter{After: &sa.AuditCursor{Time: beyond, TenantID: "a"}}, evLast},
		{"before, own tenant", sa.AuditFilter{TenantID: "beta", After: &sa.AuditCursor{Time: before, TenantID: "beta", Seq: 5}}, evFirst},
		{"before, later tenant", sa.AuditFilter{TenantID: "beta", After: &sa.AuditCursor{Time: before, TenantID: "zeta"}}, evFirst},
		{"before, all tenants", sa.AuditFilter{After: &sa.AuditCursor{Time: before, TenantID: "zeta"}}, evFirst},
	} {
		evs, err := l.Events(h.ctx, c.f)
		require.NoError(t, err)
		got := slices.ContainsFunc(evs, func(e sa.Event) bool { return e.ID == c.ev.ID })
		require.Equal(t, c.f.Match(&c.ev), got, "%s: Events returned the event at %s", c.name, c.ev.Time)
	}
}
