package supportaccess_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// review88PurgingLog is the store as the Manager's AuditLog; after the
// first page an export reads, a retention purge runs (another replica's
// scheduled job, say).
type review88PurgingLog struct {
	*memstore.Store
	once  sync.Once
	purge func()
}

func (l *review88PurgingLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	evs, err := l.Store.Events(ctx, f)
	if err == nil && f.Limit == sa.ExportPageSize {
		defer l.once.Do(l.purge)
	}
	return evs, err
}

// TestReview88ExportDuringPurgeIsSilentlyIncomplete: ExportAudit pages the
// chain; a PurgeAudit that runs between two pages deletes events the export
// has not written yet. ExportAudit carries on from its cursor, skips them
// and returns success — the export that VerifyAudit's doc recommends for
// keeping "what a purge removed" provable lacks exactly the purged events,
// and VerifyJSONL reports the honest store's export as tampered (a gap).
// VerifyAudit restarts when the checkpoint moves under it; ExportAudit
// neither notices nor fails.
func TestReview88ExportDuringPurgeIsSilentlyIncomplete(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	base := storetest.Epoch.Truncate(time.Microsecond)
	const n = 2500
	for i := 1; i <= n; i++ {
		require.NoError(t, st.Record(ctx, sa.Event{ID: uuid.New(), Time: base.Add(time.Duration(i) * time.Second),
			Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
	}
	clock := storetest.NewClock(base.Add(n * time.Hour))
	purger, err := sa.NewManager(st, sa.WithNow(clock.Now))
	require.NoError(t, err)
	log := &review88PurgingLog{Store: st, purge: func() {
		_, err := purger.PurgeAudit(ctx, "acme", base.Add(2000*time.Second))
		require.NoError(t, err)
	}}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditLog(log))
	require.NoError(t, err)

	var out bytes.Buffer
	written, err := m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.ErrorIs(t, err, sa.ErrConflict, "the export lost the events the purge deleted (%d lines written)", written)
	out.Reset()
	_, err = m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err, "exported again, after the purge")
	rep, err := sa.VerifyJSONL(bytes.NewReader(out.Bytes()))
	require.NoError(t, err, "complete: %v", rep.Break)
}

// TestReview88ExportOfKeptFarTimeIsUnreadable: memstore keeps an event
// whose Time lies after year 9999 or before year 0 exactly (the
// conformance case AuditFarTimesNeverBreakChain allows "refused or kept
// exactly"), and VerifyAudit verifies it. ExportAudit writes its time as
// "10000-01-01T00:00:00.000000Z" — not RFC 3339, which its doc promises —
// and returns success, but ReadJSONL and VerifyJSONL refuse that very line
// (ErrInvalidInput): the honest export of an intact chain can neither be
// re-verified nor loaded elsewhere.
func TestReview88ExportOfKeptFarTimeIsUnreadable(t *testing.T) {
	ctx := context.Background()
	for _, at := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC)} {
		st := memstore.New()
		if err := st.Record(ctx, sa.Event{ID: uuid.New(), Time: at, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}); err != nil {
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			continue
		}
		m, err := sa.NewManager(st)
		require.NoError(t, err)
		_, err = m.VerifyAudit(ctx, "acme")
		require.NoError(t, err, "the store kept the event and its chain verifies")
		var out bytes.Buffer
		_, err = m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
		if err != nil {
			continue // refusing to export it is fine
		}
		_, err = sa.VerifyJSONL(bytes.NewReader(out.Bytes()))
		require.NoError(t, err, "ExportAudit wrote %q at %s and VerifyJSONL refuses it", out.String(), at)
	}
}
