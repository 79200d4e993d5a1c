package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// testAuditRecordRefusesZeroTime: an event without a Time (also one in the
// first microsecond of year 1, which kept to the microsecond has none) is
// refused with ErrInvalidInput and nothing is stored. Every event the Manager writes
// has one; a store that took one would keep an event whose time the trail
// cannot show, and a chain whose hash of "no time" an earlier canonical
// encoding shared with the Unix epoch.
func testAuditRecordRefusesZeroTime(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	a := h.auditor()
	h.fill("acme", 2)
	before, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	err = a.Record(h.ctx, sa.Event{ID: uuid.New(), Type: sa.EventSupportChange, TenantID: "acme", Actor: Support})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	// A Time kept to the microsecond (see AuditRecordKeepsMicroseconds)
	// that would be none.
	err = a.Record(h.ctx, sa.Event{ID: uuid.New(), Time: time.Time{}.Add(500 * time.Nanosecond), Type: sa.EventSupportChange, TenantID: "acme", Actor: Support})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	after, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing stored")
	h.verify("acme")
}

// testAuditRecordKeepsMicroseconds: a store keeps an event's Time in UTC
// to the microsecond (what the chain hash covers and cursors carry), even
// when the event comes with nanoseconds: read back, the events show the
// truncated time, every page of a walk by time returns each event once
// (a cursor of a nanosecond time would sort before its own event and the
// walk would repeat it forever) and the chain verifies.
func testAuditRecordKeepsMicroseconds(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	base := Epoch.Add(time.Hour).Truncate(time.Microsecond)
	loc := time.FixedZone("x", 5*3600)
	var want []time.Time
	for i := range 3 {
		at := base.Add(time.Duration(i)*time.Second + 500*time.Nanosecond)
		h.record(sa.Event{Time: at.In(loc), Reason: fmt.Sprint("event ", i+1)})
		want = append(want, at.Truncate(time.Microsecond))
	}
	evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Len(t, evs, 3)
	for i, e := range evs {
		require.Equal(t, want[i], e.Time, "event %d: UTC, to the microsecond", i+1)
	}
	var seqs []int64
	for _, e := range h.pageAll(sa.AuditFilter{Limit: 1}) {
		seqs = append(seqs, e.Seq)
	}
	require.Equal(t, []int64{1, 2, 3}, seqs, "every event once, in order")
	h.verify("acme")
}
