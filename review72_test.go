package supportaccess_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// review72NanoLog is a host's AuditLog + AuditPurger (+ Auditor) that keeps
// what it is given, nanoseconds included ("every backend returns what it
// was given"), and purges exactly as AuditPurger's contract says: "every
// event up to (not including) the first one whose Time is not before
// before". Chain hashes cover Time in Unix microseconds (Event.ChainHash),
// so such a log chains and verifies like the bundled ones.
type review72NanoLog struct {
	mu        sync.Mutex
	events    []sa.Event
	gotBefore time.Time
}

func (l *review72NanoLog) Record(_ context.Context, e sa.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	return nil
}

func (l *review72NanoLog) Events(_ context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sa.Event
	for i := range l.events {
		if f.Match(&l.events[i]) {
			out = append(out, l.events[i])
		}
	}
	return out, nil
}

func (l *review72NanoLog) PurgeAudit(_ context.Context, tenantID string, before time.Time, event func(sa.AuditPurge) (sa.Event, error)) (sa.AuditPurge, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gotBefore = before
	var res sa.AuditPurge
	k := 0
	for _, e := range l.events {
		if e.TenantID != tenantID {
			continue
		}
		if !e.Time.Before(before) {
			break
		}
		k++
	}
	if k == 0 {
		return res, nil
	}
	res.Deleted = int64(k)
	ev, err := event(res)
	if err != nil {
		return sa.AuditPurge{}, err
	}
	n := 0
	l.events = slices.DeleteFunc(l.events, func(e sa.Event) bool {
		if e.TenantID == tenantID && n < k {
			n++
			return true
		}
		return false
	})
	l.events = append(l.events, ev)
	return res, nil
}

// TestReview72PurgeAuditRoundsBeforeForEveryPurger: Manager.PurgeAudit
// "deletes tenantID's audit events older than before". Since 64ad1f7 it
// rounds before UP to the microsecond (canon.Ceil) before handing it to
// the AuditPurger, on the assumption that "stored times are whole
// microseconds". That holds for memstore and sqlstore (which need no such
// help: memstore compares exactly, sqlstore already applies ceilMicro
// itself), but not for an AuditPurger of the host's that keeps the
// nanoseconds it was given. There, an event whose Time lies in
// [before, Ceil(before)) — NOT older than before, and not listed by
// Events(Until: before), which the Manager passes on unrounded — is
// deleted from the audit trail. Before the change (truncation) such a
// log kept too much; now it deletes an event that retention does not
// allow to delete yet.
//
// Severity: low (an error under a microsecond, only for third-party logs
// holding sub-microsecond times). Fix: pass before to the AuditPurger as
// given (UTC), as Events passes its bounds, and let each store round as
// sqlstore's PurgeAudit already does; record the caller's before in
// AttrPurgeBefore.
func TestReview72PurgeAuditRoundsBeforeForEveryPurger(t *testing.T) {
	log := &review72NanoLog{}
	e := newEnv(t, sa.WithAuditor(log), sa.WithAuditLog(log))
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	// The host records its own events straight into its log.
	for _, d := range []time.Duration{0, 300} {
		require.NoError(t, log.Record(ctx, sa.Event{ID: uuid.New(), Time: at.Add(d), Type: sa.EventSupportRequest,
			TenantID: "acme", Actor: support}))
	}
	before := at.Add(200 * time.Nanosecond) // the event at +300ns is not older than this

	older, err := e.m.Events(ctx, sa.AuditFilter{TenantID: "acme", Until: before})
	require.NoError(t, err)
	require.Len(t, older, 1, "Events: one event is older than before")

	res, err := e.m.PurgeAudit(ctx, "acme", before)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Deleted,
		"PurgeAudit deleted an event that is not older than before: the purger was handed before %s for %s",
		log.gotBefore.Format(time.RFC3339Nano), before.Format(time.RFC3339Nano))
}
