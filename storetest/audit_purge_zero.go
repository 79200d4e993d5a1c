package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// testAuditPurgeZeroBefore: no event is older than the zero time, so a
// purge with a zero before (a retention job with an unset cutoff calling
// the store directly; Manager.PurgeAudit refuses it) deletes nothing and
// does not call event.
func testAuditPurgeZeroBefore(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	p, ok := h.store.(sa.AuditPurger)
	if !ok {
		t.Skip("store does not implement AuditPurger")
	}
	h.fill("acme", 3)
	called := false
	res, err := p.PurgeAudit(h.ctx, "acme", time.Time{}, func(r sa.AuditPurge) (sa.Event, error) {
		called = true
		return sa.Event{ID: uuid.New(), Time: h.clock.Now(), Type: sa.EventAuditPurged, TenantID: "acme", Actor: sa.SystemActor}, nil
	})
	require.NoError(t, err)
	require.False(t, called, "no event is older than the zero time")
	require.Zero(t, res.Deleted)
	evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventSupportRequest}})
	require.NoError(t, err)
	require.Len(t, evs, 3, "the tenant's audit trail is intact")
	h.verify("acme")
}
