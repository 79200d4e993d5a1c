package storetest

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// testAuditRecordRefusesZeroTime: an event without a Time is refused with
// ErrInvalidInput and nothing is stored. Every event the Manager writes
// has one; a store that took one would keep an event whose time the trail
// cannot show, and a chain whose hash of "no time" an earlier canonical
// encoding shared with the Unix epoch.
func testAuditRecordRefusesZeroTime(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	a, ok := h.store.(sa.Auditor)
	if !ok {
		t.Skip("store does not implement Auditor")
	}
	h.fill("acme", 2)
	before, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	err = a.Record(h.ctx, sa.Event{ID: uuid.New(), Type: sa.EventSupportChange, TenantID: "acme", Actor: Support})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	after, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing stored")
	h.verify("acme")
}
