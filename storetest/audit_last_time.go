package storetest

import (
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
	a, ok := h.store.(sa.Auditor)
	if !ok {
		t.Skip("store does not implement Auditor")
	}
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
