package supportaccess_test

// Review 134: adversarial tests of the audit trail's integrity against a
// hostile host, support engineer or log reader (audit*.go, internal/canon,
// memstore/audit.go, sqlstore/audit*.go). Each test names the promise it
// attacks; a passing test is an attack that failed.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// r134Store is what the bundled stores are: a Store that keeps, reads,
// purges and reports the audit trail.
type r134Store interface {
	sa.Store
	sa.Auditor
	sa.AuditLog
	sa.AuditPurger
	sa.AuditChainReader
}

// r134Backends runs fn once per bundled store: memstore, SQLite, and
// PostgreSQL and MariaDB when their servers answer (skipped otherwise).
func r134Backends(t *testing.T, fn func(t *testing.T, st r134Store)) {
	t.Run("memstore", func(t *testing.T) { fn(t, memstore.New()) })
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) { fn(t, sqltest.NewStore(t, d)) })
	}
}

// r134Manager is a Manager on st by clock.
func r134Manager(t *testing.T, st sa.Store, clock *storetest.Clock, opts ...sa.Option) *sa.Manager {
	t.Helper()
	m, err := sa.NewManager(st, append([]sa.Option{sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {})}, opts...)...)
	require.NoError(t, err)
	return m
}

// r134Event is an event of tenant at time at, with a fresh ID.
func r134Event(tenant string, at time.Time, reason string) sa.Event {
	return sa.Event{ID: uuid.New(), Time: at, Type: sa.EventSupportRequest, TenantID: tenant, Actor: support, Reason: reason,
		Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/x"}}
}

// r134Verify requires tenant's chain to verify and returns the report.
func r134Verify(t *testing.T, m *sa.Manager, tenant string) sa.VerifyReport {
	t.Helper()
	rep, err := m.VerifyAudit(ctx, tenant)
	require.NoError(t, err)
	require.True(t, rep.OK())
	return rep
}

// r134All returns tenant's events in chain order, straight from the log.
func r134All(t *testing.T, l sa.AuditLog, tenant string) []sa.Event {
	t.Helper()
	evs, err := l.Events(ctx, sa.AuditFilter{TenantID: tenant, Order: sa.AuditByChain})
	require.NoError(t, err)
	return evs
}

// TestReview134PresetSeqAndHashAreIgnored attacks "Seq and Hash are
// assigned by the store that persists the event": a host (or a relay of
// another trail) hands Record events with a Seq and Hash of its choosing —
// a Seq that is taken, one far ahead, a negative one, a Hash copied from
// another event — hoping to overwrite a position, leave a hole the
// verifier reads as a purge, or plant a link. Every store must chain them
// as the next events and the chain must verify.
func TestReview134PresetSeqAndHashAreIgnored(t *testing.T) {
	r134Backends(t, func(t *testing.T, st r134Store) {
		clock := storetest.NewClock(storetest.Epoch)
		m := r134Manager(t, st, clock)
		at := storetest.Epoch.Truncate(time.Microsecond)
		first := r134Event("acme", at, "one")
		require.NoError(t, st.Record(ctx, first))
		stored := r134All(t, st, "acme")
		require.Len(t, stored, 1)
		for i, preset := range []struct {
			seq  int64
			hash []byte
		}{{1, stored[0].Hash}, {1000, nil}, {-5, []byte("x")}, {0, bytes.Repeat([]byte{0xff}, 32)}} {
			e := r134Event("acme", at.Add(time.Duration(i+1)*time.Second), fmt.Sprint("preset ", i))
			e.Seq, e.Hash = preset.seq, preset.hash
			require.NoError(t, st.Record(ctx, e))
		}
		evs := r134All(t, st, "acme")
		require.Len(t, evs, 5)
		var prev []byte
		for i, e := range evs {
			require.Equal(t, int64(i+1), e.Seq, "the store's Seq, not the caller's")
			require.Equal(t, e.ChainHash(prev), e.Hash, "the store's Hash, not the caller's")
			prev = e.Hash
		}
		require.Equal(t, first.ID, evs[0].ID, "the first event was not overwritten")
		rep := r134Verify(t, m, "acme")
		require.Equal(t, int64(5), rep.Events)
		require.Equal(t, sa.ChainLink{Seq: 5, Hash: evs[4].Hash}, rep.Chains["acme"].Head)
	})
}

// TestReview134EventIDReusedAcrossTenants attacks "the bundled stores
// refuse ... one whose ID they hold already (ErrConflict)": the same event
// ID recorded for another tenant (a relay that copies one tenant's event
// into another's trail, or a forged duplicate to confuse a reader who
// looks events up by ID) must be refused, leaving both chains as they were.
func TestReview134EventIDReusedAcrossTenants(t *testing.T) {
	r134Backends(t, func(t *testing.T, st r134Store) {
		clock := storetest.NewClock(storetest.Epoch)
		m := r134Manager(t, st, clock)
		at := storetest.Epoch.Truncate(time.Microsecond)
		e := r134Event("acme", at, "original")
		require.NoError(t, st.Record(ctx, e))
		dup := e
		dup.TenantID, dup.Reason = "globex", "copy"
		require.ErrorIs(t, st.Record(ctx, dup), sa.ErrConflict)
		dup.TenantID = "acme"
		require.ErrorIs(t, st.Record(ctx, dup), sa.ErrConflict, "the same tenant, too")
		require.Empty(t, r134All(t, st, "globex"))
		require.Len(t, r134All(t, st, "acme"), 1)
		gs, err := st.AuditChain(ctx, "globex")
		require.NoError(t, err)
		require.Zero(t, gs.Head.Seq, "no position taken in globex's chain")
		r134Verify(t, m, "acme")
		r134Verify(t, m, "globex")
	})
}

// TestReview134BackdatedAndFutureEventsKeepChainAndPurgeByChain attacks
// purge retention through event times: events with a Time far in the past
// (a host backdating an entry so that the next retention purge deletes it
// early, out of chain order) or far in the future (to make the chain look
// older or newer than it is). PurgeAudit deletes only a prefix of the chain
// — it stops at the first event that is not old enough — so a backdated
// event later in the chain outlives the cut, and every store agrees on it;
// the chain verifies before and after.
func TestReview134BackdatedAndFutureEventsKeepChainAndPurgeByChain(t *testing.T) {
	r134Backends(t, func(t *testing.T, st r134Store) {
		base := storetest.Epoch.Truncate(time.Microsecond)
		clock := storetest.NewClock(base.Add(10 * time.Hour))
		m := r134Manager(t, st, clock)
		times := []time.Time{
			base.Add(time.Hour),                               // 1: old
			base.Add(2 * time.Hour),                           // 2: old
			base.Add(5 * time.Hour),                           // 3: recent: the cut
			time.Date(1001, 1, 1, 0, 0, 0, 0, time.UTC),       // 4: backdated after the cut
			time.Date(9998, 12, 31, 0, 0, 0, 0, time.UTC),     // 5: far future
			base.Add(time.Hour).In(time.FixedZone("X", 3600)), // 6: old, another zone
		}
		for i, at := range times {
			require.NoError(t, st.Record(ctx, r134Event("acme", at, fmt.Sprint(i+1))))
		}
		r134Verify(t, m, "acme")
		res, err := m.PurgeAudit(ctx, "acme", base.Add(3*time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(2), res.Deleted, "only the chain's prefix up to the first recent event")
		require.Equal(t, int64(2), res.Checkpoint.Seq)
		evs := r134All(t, st, "acme")
		require.Len(t, evs, 5)
		var reasons []string
		for _, e := range evs {
			reasons = append(reasons, e.Reason)
		}
		require.Equal(t, []string{"3", "4", "5", "6", "retention"}, reasons, "the backdated events after the cut stay")
		rep := r134Verify(t, m, "acme")
		require.Equal(t, res.Checkpoint.Seq, rep.Chains["acme"].From.Seq)
	})
}

// TestReview134PurgeBoundaryBetweenMicroseconds attacks the purge bound's
// rounding: a before between two microseconds must delete exactly the
// events whose Time is before it on every store (memstore compares
// exactly, sqlstore rounds up), and the audit.purged event must record the
// bound rounded up, in UTC.
func TestReview134PurgeBoundaryBetweenMicroseconds(t *testing.T) {
	r134Backends(t, func(t *testing.T, st r134Store) {
		base := storetest.Epoch.Truncate(time.Microsecond)
		clock := storetest.NewClock(base.Add(time.Hour))
		m := r134Manager(t, st, clock)
		for i := 0; i < 4; i++ {
			require.NoError(t, st.Record(ctx, r134Event("acme", base.Add(time.Duration(i)*time.Microsecond), fmt.Sprint(i))))
		}
		zone := time.FixedZone("minus", -7*3600)
		// Just below event 2's time: events 0 and 1 go.
		res, err := m.PurgeAudit(ctx, "acme", base.Add(2*time.Microsecond-500).In(zone))
		require.NoError(t, err)
		require.Equal(t, int64(2), res.Deleted)
		// Just above event 2's time: event 2 goes.
		res, err = m.PurgeAudit(ctx, "acme", base.Add(2*time.Microsecond+1).In(zone))
		require.NoError(t, err)
		require.Equal(t, int64(1), res.Deleted)
		purges := r134Purges(t, st, "acme")
		require.Len(t, purges, 2)
		require.Equal(t, base.Add(2*time.Microsecond).Format("2006-01-02T15:04:05.000000Z07:00"), purges[0].Attrs[sa.AttrPurgeBefore])
		require.Equal(t, base.Add(3*time.Microsecond).Format("2006-01-02T15:04:05.000000Z07:00"), purges[1].Attrs[sa.AttrPurgeBefore])
		r134Verify(t, m, "acme")
	})
}

// r134Purges returns tenant's audit.purged events.
func r134Purges(t *testing.T, l sa.AuditLog, tenant string) []sa.Event {
	t.Helper()
	evs, err := l.Events(ctx, sa.AuditFilter{TenantID: tenant, Types: []sa.EventType{sa.EventAuditPurged}, Order: sa.AuditByChain})
	require.NoError(t, err)
	return evs
}

// TestReview134PurgeStaysInItsTenant attacks "a purge deletes the events
// of its own tenant": tenant IDs that are prefixes of one another, differ
// in case only, or hold SQL LIKE wildcards and quotes must not let a purge
// of one reach another's events or checkpoint.
func TestReview134PurgeStaysInItsTenant(t *testing.T) {
	r134Backends(t, func(t *testing.T, st r134Store) {
		base := storetest.Epoch.Truncate(time.Microsecond)
		clock := storetest.NewClock(base.Add(time.Hour))
		m := r134Manager(t, st, clock)
		tenants := []string{"ac%", "acme", "acme2", "ACME", "ac_e", "a'c", `a\c`}
		for _, tn := range tenants {
			for i := 0; i < 3; i++ {
				require.NoError(t, st.Record(ctx, r134Event(tn, base.Add(time.Duration(i)*time.Second), tn)))
			}
		}
		for _, victim := range []string{"ac%", "ac_e", `a\c`} {
			res, err := m.PurgeAudit(ctx, victim, clock.Now())
			require.NoError(t, err)
			require.Equal(t, int64(3), res.Deleted)
		}
		for _, tn := range tenants {
			evs := r134All(t, st, tn)
			switch tn {
			case "ac%", "ac_e", `a\c`:
				require.Len(t, evs, 1, tn)
				require.Equal(t, sa.EventAuditPurged, evs[0].Type)
			default:
				require.Len(t, evs, 3, "%s: untouched by the others' purges", tn)
				cs, err := st.AuditChain(ctx, tn)
				require.NoError(t, err)
				require.Zero(t, cs.Checkpoint.Seq, tn)
			}
			r134Verify(t, m, tn)
		}
	})
}

// TestReview134PurgeFromImpersonatedRequestRefused attacks "PurgeAudit ...
// ErrForbidden when called with the context of an impersonated request
// (audited)": support, inside the customer's admin UI, triggers the
// retention job to wipe the trail of what it just did. Nothing may be
// deleted and the refusal must be in the trail.
func TestReview134PurgeFromImpersonatedRequestRefused(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	var purgeErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, purgeErr = e.m.PurgeAudit(r.Context(), "acme", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, mwReq(http.MethodGet, "/admin/retention", "generic"))
	require.Equal(t, http.StatusNoContent, rec.Code, "the handler ran")
	require.ErrorIs(t, purgeErr, sa.ErrForbidden)
	require.NotEmpty(t, e.events(sa.EventGrantCreated), "nothing purged")
	require.Empty(t, e.events(sa.EventAuditPurged))
	refused := e.events(sa.EventActionRefused)
	require.NotEmpty(t, refused)
	require.Equal(t, string(sa.ActionPurgeAudit), refused[len(refused)-1].Attrs[sa.AttrAction])
	cs, err := e.store.AuditChain(ctx, "acme")
	require.NoError(t, err)
	require.Zero(t, cs.Checkpoint.Seq)
	r134Verify(t, e.m, "acme")
}

// TestReview134FuturePurgeIsRecordedAndVerifiable attacks hiding events by
// purging with a before in the future (a careless or hostile retention
// job): it may delete even the freshest events — PurgeAudit's contract —
// but never silently. The audit.purged event names the bound and the count,
// it is the chain's last event, the checkpoint is its predecessor, and a
// second such purge (deleting the first purge's record) is recorded too,
// with the previous checkpoint.
func TestReview134FuturePurgeIsRecordedAndVerifiable(t *testing.T) {
	r134Backends(t, func(t *testing.T, st r134Store) {
		base := storetest.Epoch.Truncate(time.Microsecond)
		clock := storetest.NewClock(base)
		m := r134Manager(t, st, clock)
		for i := 0; i < 5; i++ {
			require.NoError(t, st.Record(ctx, r134Event("acme", base.Add(time.Duration(i)*time.Second), fmt.Sprint(i))))
		}
		future := base.Add(100 * 365 * 24 * time.Hour)
		res, err := m.PurgeAudit(ctx, "acme", future)
		require.NoError(t, err)
		require.Equal(t, int64(5), res.Deleted)
		evs := r134All(t, st, "acme")
		require.Len(t, evs, 1)
		p := evs[0]
		require.Equal(t, sa.EventAuditPurged, p.Type)
		require.Equal(t, "5", p.Attrs[sa.AttrPurgeDeleted])
		require.Equal(t, future.Format("2006-01-02T15:04:05.000000Z07:00"), p.Attrs[sa.AttrPurgeBefore])
		require.Equal(t, "5", p.Attrs[sa.AttrCheckpointSeq])
		require.Equal(t, sa.SystemActor, p.Actor)
		r134Verify(t, m, "acme")

		res2, err := m.PurgeAudit(ctx, "acme", future)
		require.NoError(t, err)
		require.Equal(t, int64(1), res2.Deleted, "the first purge's record")
		require.Equal(t, int64(5), res2.Previous.Seq)
		evs = r134All(t, st, "acme")
		require.Len(t, evs, 1)
		require.Equal(t, "5", evs[0].Attrs[sa.AttrPreviousCheckpoint])
		require.Equal(t, "6", evs[0].Attrs[sa.AttrCheckpointSeq])
		r134Verify(t, m, "acme")
	})
}

// TestReview134ConcurrentPurgesRecordsAndVerifies attacks "can two purges
// race into an unverifiable chain": writers append, two purgers cut the
// chain with different bounds, and verifiers walk it, all at once. Every
// verification must succeed (a concurrent purge explains a moved start),
// and the final chain must verify with every purge recorded.
func TestReview134ConcurrentPurgesRecordsAndVerifies(t *testing.T) {
	r134Backends(t, func(t *testing.T, st r134Store) {
		base := storetest.Epoch.Truncate(time.Microsecond)
		clock := storetest.NewClock(base.Add(time.Hour))
		m := r134Manager(t, st, clock)
		for i := 0; i < 20; i++ {
			require.NoError(t, st.Record(ctx, r134Event("acme", base.Add(time.Duration(i)*time.Millisecond), "seed")))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		const rounds = 15
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < rounds; i++ {
					at := base.Add(time.Duration(20+w*rounds+i) * time.Millisecond)
					if err := st.Record(ctx, r134Event("acme", at, "w")); err != nil {
						errs <- err
					}
				}
			}()
		}
		for p := 0; p < 2; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < rounds; i++ {
					cut := base.Add(time.Duration(2*i+p) * time.Millisecond)
					if _, err := m.PurgeAudit(ctx, "acme", cut); err != nil && !errors.Is(err, sa.ErrConflict) {
						errs <- fmt.Errorf("purge: %w", err)
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if rep, err := m.VerifyAudit(ctx, "acme"); err != nil {
					errs <- fmt.Errorf("verify during purges: %w (%+v)", err, rep.Break)
				}
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			if errors.Is(err, sa.ErrTampered) {
				require.NoError(t, err)
			}
			t.Logf("non-integrity error under contention: %v", err)
		}
		rep := r134Verify(t, m, "acme")
		cs, err := st.AuditChain(ctx, "acme")
		require.NoError(t, err)
		require.Equal(t, cs.Head, rep.Chains["acme"].Head)
		require.Equal(t, cs.Checkpoint, rep.Chains["acme"].From)
	})
}

// r134Mutating is a host auditor that "redacts" what it logs by changing
// the event it is handed: it deletes the session and subject attributes,
// adds one of its own and scribbles over After.
type r134Mutating struct{}

func (r134Mutating) Record(_ context.Context, e sa.Event) error {
	if e.Attrs != nil {
		delete(e.Attrs, sa.AttrSessionID)
		delete(e.Attrs, sa.AttrSubjectUserID)
		e.Attrs["redacted_by"] = "host"
	}
	for i := range e.After {
		e.After[i] = ' '
	}
	return nil
}

// TestReview134OtherAuditorCannotRewriteTheStoresEvent attacks the store's
// trail through another auditor (a careless host auditor that redacts the
// event in place before shipping it, as Go lets a callee do with a map or
// slice it is handed): the store's tamper-evident copy must hold the event
// as the Manager built it — its session id (AuditFilter.SessionID must
// still find what support did in a session) and its After value — not the
// other auditor's edit.
func TestReview134OtherAuditorCannotRewriteTheStoresEvent(t *testing.T) {
	t.Run("grant", func(t *testing.T) {
		st := memstore.New()
		e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, r134Mutating{})))
		g := e.grant(sa.GrantInput{})
		evs := e.events(sa.EventGrantCreated)
		require.Len(t, evs, 1)
		require.NotContains(t, evs[0].Attrs, "redacted_by", "another auditor's edit reached the store's trail")
		var got sa.Grant
		require.NoError(t, json.Unmarshal(evs[0].After, &got), "After as the Manager wrote it: %q", evs[0].After)
		require.Equal(t, g.ID, got.ID)
	})
	t.Run("support request", func(t *testing.T) {
		e := newMWEnv(t)
		m, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithAuditor(sa.MultiAuditor(e.store, r134Mutating{})))
		require.NoError(t, err)
		e.m = m
		e.grant(sa.GrantInput{})
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
		h.ServeHTTP(httptest.NewRecorder(), mwReq(http.MethodGet, "/x", "generic"))
		got, err := e.m.Events(ctx, sa.AuditFilter{TenantID: "acme", SessionID: "s-generic"})
		require.NoError(t, err)
		require.NotEmpty(t, got, "the session's events are no longer found by AuditFilter.SessionID")
		for _, ev := range got {
			require.NotContains(t, ev.Attrs, "redacted_by")
			require.Equal(t, "u-42", ev.Attrs[sa.AttrSubjectUserID])
		}
	})
	t.Run("refusal", func(t *testing.T) {
		// A fact goes to every auditor, the store first: an auditor after
		// it must not edit the store's copy either (memstore keeps its
		// own), nor one after it see another's edit.
		st := memstore.New()
		seen := &r134Seeing{}
		e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, r134Mutating{}, seen)))
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support})
		require.ErrorIs(t, err, sa.ErrForbidden)
		evs := e.events(sa.EventActionRefused)
		require.Len(t, evs, 1)
		require.NotContains(t, evs[0].Attrs, "redacted_by")
		require.Len(t, seen.events, 1)
		require.NotContains(t, seen.events[0].Attrs, "redacted_by", "the next auditor saw the other's edit")
	})
	t.Run("MultiAuditor called directly", func(t *testing.T) {
		seen := &r134Seeing{}
		ev := r134Event("acme", storetest.Epoch, "direct")
		require.NoError(t, sa.MultiAuditor(r134Mutating{}, seen).Record(ctx, ev))
		require.Equal(t, "/x", ev.Attrs[sa.AttrPath])
		require.NotContains(t, ev.Attrs, "redacted_by", "the caller's event is untouched")
		require.NotContains(t, seen.events[0].Attrs, "redacted_by", "each auditor gets its own copy")
	})
}

// r134Seeing keeps the events it is handed, as handed.
type r134Seeing struct{ events []sa.Event }

func (s *r134Seeing) Record(_ context.Context, e sa.Event) error {
	s.events = append(s.events, e)
	return nil
}

// r134Wrapped is the store behind a host decorator (metrics, say): another
// value than the store, recording into the same store.
type r134Wrapped struct{ sa.Auditor }

// TestReview134PurgeCopyToTheSameStoreDoesNotHang attacks PurgeAudit with
// a configuration where an extra auditor writes to the log being purged
// (the store wrapped in a host decorator, next to the store itself).
// PurgeAudit's doc says such an auditor on SQLite "waits for the purge's
// write lock until it fails, and so does the purge"; on every store the
// purge must fail (at the latest when its context ends) or finish, never
// hang holding the store's lock — on memstore that lock stops every Check
// of the process.
//
// Not on memstore: it holds its lock while the Manager records on the
// other auditors, so such an auditor waits for ever there; WithAuditor
// documents that auditors must not call the Manager or the store.
func TestReview134PurgeCopyToTheSameStoreDoesNotHang(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) { review134PurgeCopyToTheSameStore(t, sqltest.NewStore(t, d)) })
	}
}

// review134PurgeCopyToTheSameStore is the test on one SQL store.
func review134PurgeCopyToTheSameStore(t *testing.T, st r134Store) {
	clock := storetest.NewClock(storetest.Epoch.Add(time.Hour))
	require.NoError(t, st.Record(ctx, r134Event("acme", storetest.Epoch, "old")))
	m := r134Manager(t, st, clock, sa.WithAuditor(sa.MultiAuditor(st, r134Wrapped{st})))
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := m.PurgeAudit(cctx, "acme", clock.Now())
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("purge returned: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("PurgeAudit hangs past its context's end")
	}
	cs, err := st.AuditChain(ctx, "acme")
	require.NoError(t, err)
	r134Verify(t, m, "acme")
	t.Logf("chain after: %+v", cs)
}

// r134Export returns the JSON Lines export of tenants' whole chains, in
// chain order, from m.
func r134Export(t *testing.T, m *sa.Manager, tenant string) []string {
	t.Helper()
	var buf bytes.Buffer
	_, err := m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: tenant, Order: sa.AuditByChain})
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

// r134VerifyLines runs VerifyJSONL on lines.
func r134VerifyLines(lines []string) (sa.VerifyReport, error) {
	return sa.VerifyJSONL(strings.NewReader(strings.Join(lines, "\n") + "\n"))
}

// r134Trail is a memstore with a Manager and two tenants' trails of n
// events each, with attrs, before/after values and a reason.
func r134Trail(t *testing.T, n int) (*memstore.Store, *sa.Manager) {
	t.Helper()
	st := memstore.New()
	base := storetest.Epoch.Truncate(time.Microsecond)
	m := r134Manager(t, st, storetest.NewClock(base.Add(time.Hour)))
	for i := 0; i < n; i++ {
		for _, tn := range []string{"acme", "globex"} {
			e := r134Event(tn, base.Add(time.Duration(i)*time.Second), fmt.Sprintf("%s reason %d", tn, i))
			e.Type = sa.EventSupportChange
			e.Attrs[sa.AttrWhat] = "settings"
			e.Before, e.After = json.RawMessage(`{"v":1}`), json.RawMessage(fmt.Sprintf(`{"v":%d}`, i+2))
			require.NoError(t, st.Record(ctx, e))
		}
	}
	return st, m
}

// r134EditLine decodes line, applies edit to its object and re-encodes it
// as ExportAudit does (compact, HTML not escaped, fields in the export's
// order), so that only the edited value differs.
func r134EditLine(t *testing.T, line string, edit func(e *sa.Event)) string {
	t.Helper()
	var got []sa.Event
	require.NoError(t, sa.ReadJSONL(strings.NewReader(line), func(e sa.Event) error { got = append(got, e); return nil }))
	require.Len(t, got, 1)
	e := got[0]
	edit(&e)
	var buf bytes.Buffer
	_, err := r134ManagerOnSlice(t, []sa.Event{e}).ExportAudit(ctx, &buf, sa.AuditFilter{})
	require.NoError(t, err)
	return strings.TrimSuffix(buf.String(), "\n")
}

// r134ManagerOnSlice is a Manager whose audit log is evs as given.
func r134ManagerOnSlice(t *testing.T, evs []sa.Event) *sa.Manager {
	t.Helper()
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(&sliceLog{evs: evs}))
	require.NoError(t, err)
	return m
}

// TestReview134JSONLTamperingIsCaught attacks VerifyJSONL with an export a
// log reader edited to hide or change what support did, without
// recomputing hashes: an edited reason, attr or After value (the line
// otherwise exactly as exported), a middle line dropped, a line
// duplicated, two lines swapped, a line moved to another tenant, the seq
// of a line changed, the hash of the edited line replaced by the next
// line's prev. Each must be a *ChainBreak wrapping ErrTampered.
func TestReview134JSONLTamperingIsCaught(t *testing.T) {
	_, m := r134Trail(t, 6)
	lines := r134Export(t, m, "acme")
	require.Len(t, lines, 6)
	rep, err := r134VerifyLines(lines)
	require.NoError(t, err)
	require.Equal(t, int64(6), rep.Events)

	edited := func(i int, edit func(e *sa.Event)) []string {
		out := append([]string(nil), lines...)
		out[i] = r134EditLine(t, lines[i], edit)
		require.NotEqual(t, lines[i], out[i])
		return out
	}
	cases := map[string][]string{
		"reason":       edited(2, func(e *sa.Event) { e.Reason = "nothing to see" }),
		"attr value":   edited(2, func(e *sa.Event) { e.Attrs[sa.AttrPath] = "/harmless" }),
		"attr dropped": edited(2, func(e *sa.Event) { delete(e.Attrs, sa.AttrWhat) }),
		"attr added":   edited(2, func(e *sa.Event) { e.Attrs["approved_by"] = "admin" }),
		"after":        edited(2, func(e *sa.Event) { e.After = json.RawMessage(`{"v":1}`) }),
		"before gone":  edited(2, func(e *sa.Event) { e.Before = nil }),
		"time":         edited(2, func(e *sa.Event) { e.Time = e.Time.Add(-time.Microsecond) }),
		"actor":        edited(2, func(e *sa.Event) { e.Actor = customer }),
		"type":         edited(2, func(e *sa.Event) { e.Type = sa.EventSupportRequest }),
		"grant":        edited(2, func(e *sa.Event) { e.GrantID = uuid.New() }),
		"id":           edited(2, func(e *sa.Event) { e.ID = uuid.New() }),
		"seq":          edited(2, func(e *sa.Event) { e.Seq = 30 }),
		"tenant":       edited(2, func(e *sa.Event) { e.TenantID = "globex" }),
		"dropped":      append(append([]string(nil), lines[:3]...), lines[4:]...),
		"duplicated":   append(append([]string(nil), lines[:4]...), lines[3:]...),
		"swapped":      {lines[0], lines[1], lines[3], lines[2], lines[4], lines[5]},
		"first edited": edited(0, func(e *sa.Event) { e.Reason = "x" }),
		"last edited":  edited(5, func(e *sa.Event) { e.Reason = "x" }),
	}
	for name, ls := range cases {
		rep, err := r134VerifyLines(ls)
		var brk *sa.ChainBreak
		require.ErrorAs(t, err, &brk, "%s: accepted (%+v)", name, rep)
		require.ErrorIs(t, err, sa.ErrTampered, name)
		require.False(t, rep.OK(), name)
	}
}

// TestReview134JSONLRespelledLinesRefused attacks VerifyJSONL (and
// ReadJSONL) with lines a reader takes otherwise than the verifier: the
// attrs object reordered, an unknown or repeated field, a key in another
// case, a time with nanoseconds or in another zone, an upper-case hash or
// ID, a value escaped otherwise (\u0041 for A), a second JSON value on
// the line, a byte-order mark. Every one must be refused with
// ErrInvalidInput, not verified as the event it decodes to.
func TestReview134JSONLRespelledLinesRefused(t *testing.T) {
	_, m := r134Trail(t, 2)
	lines := r134Export(t, m, "acme")
	l := lines[0]
	var obj map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(l), &obj))
	var when string
	require.NoError(t, json.Unmarshal(obj["time"], &when))
	var hash string
	require.NoError(t, json.Unmarshal(obj["hash"], &hash))
	var id string
	require.NoError(t, json.Unmarshal(obj["id"], &id))
	tm, err := time.Parse(time.RFC3339Nano, when)
	require.NoError(t, err)
	require.Contains(t, l, `"attrs":{"method":"GET","path":"/x","what":"settings"}`)

	variants := map[string]string{
		"attrs reordered": strings.Replace(l, `{"method":"GET","path":"/x","what":"settings"}`, `{"what":"settings","method":"GET","path":"/x"}`, 1),
		"unknown field":   strings.Replace(l, `"v":1,`, `"v":1,"approved":true,`, 1),
		"repeated field":  strings.Replace(l, `"reason":`, `"reason":"benign","reason":`, 1),
		"key case":        strings.Replace(l, `"reason":`, `"Reason":`, 1),
		"nanoseconds":     strings.Replace(l, when, tm.Add(1).Format(time.RFC3339Nano), 1),
		"zone":            strings.Replace(l, when, tm.In(time.FixedZone("", 3600)).Format("2006-01-02T15:04:05.000000Z07:00"), 1),
		"upper hash":      strings.Replace(l, hash, strings.ToUpper(hash), 1),
		"upper id":        strings.Replace(l, id, strings.ToUpper(id), 1),
		"escaped":         strings.Replace(l, `"acme reason 0"`, `"\u0061cme reason 0"`, 1),
		"two values":      l + ` {}`,
		"trailing brace":  l + `}`,
		"bom":             "\ufeff" + l,
		"base64 needless": r134Base64(t, l),
		"v2":              strings.Replace(l, `"v":1,`, `"v":2,`, 1),
	}
	for name, v := range variants {
		require.NotEqual(t, l, v, name)
		_, err := r134VerifyLines(append([]string{v}, lines[1:]...))
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		require.NotErrorIs(t, err, sa.ErrTampered, name)
		err = sa.ReadJSONL(strings.NewReader(v), func(sa.Event) error { return nil })
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
	}
}

// r134Base64 rewrites line with "encoding":"base64" and every string
// field base64-encoded, which ExportAudit writes only for invalid UTF-8.
func r134Base64(t *testing.T, line string) string {
	t.Helper()
	var obj map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &obj))
	enc := func(s string) string { return base64Std(s) }
	for _, k := range []string{"tenant_id", "type", "reason"} {
		obj[k] = enc(obj[k].(string))
	}
	actor := obj["actor"].(map[string]any)
	for k, v := range actor {
		actor[k] = enc(v.(string))
	}
	attrs := obj["attrs"].(map[string]any)
	na := map[string]any{}
	for k, v := range attrs {
		na[enc(k)] = enc(v.(string))
	}
	obj["attrs"] = na
	obj["encoding"] = "base64"
	b, err := json.Marshal(obj)
	require.NoError(t, err)
	return string(b)
}

// TestReview134JSONLSpliceAndTruncationAreVisible attacks VerifyJSONL with
// edits it documents as undetectable by the export alone — dropping the
// last lines, dropping the first lines (and the prev_hash that named the
// start), splicing another tenant's export in — and checks that the report
// shows them: a Head or From other than VerifyAudit's, a chain of another
// tenant listed separately and verified on its own.
func TestReview134JSONLSpliceAndTruncationAreVisible(t *testing.T) {
	_, m := r134Trail(t, 5)
	acme, globex := r134Export(t, m, "acme"), r134Export(t, m, "globex")
	truth := r134Verify(t, m, "acme").Chains["acme"]

	rep, err := r134VerifyLines(acme[:4])
	require.NoError(t, err)
	require.NotEqual(t, truth.Head, rep.Chains["acme"].Head, "a truncated export reports a shorter head")
	require.Equal(t, int64(4), rep.Chains["acme"].Head.Seq)

	rep, err = r134VerifyLines(acme[2:])
	require.NoError(t, err)
	require.NotEqual(t, truth.From, rep.Chains["acme"].From, "an export without its start reports another From")
	require.Equal(t, int64(3), rep.Chains["acme"].From.Seq)
	require.Equal(t, int64(2), rep.Events, "the anchor line itself is not counted as verified")

	// Interleaved tenants: each chain verified on its own.
	var mixed []string
	for i := range acme {
		mixed = append(mixed, globex[i], acme[i])
	}
	rep, err = r134VerifyLines(mixed)
	require.NoError(t, err)
	require.Equal(t, truth, rep.Chains["acme"])
	require.Len(t, rep.Chains, 2)
	// A globex line placed among acme's and relabelled acme fails.
	forged := append([]string(nil), acme...)
	forged[2] = r134EditLine(t, globex[2], func(e *sa.Event) { e.TenantID = "acme" })
	_, err = r134VerifyLines(forged)
	require.ErrorIs(t, err, sa.ErrTampered)
}

// TestReview134JSONLOverlongLineIsAnErrorNotAHang attacks VerifyJSONL with
// an unterminated line longer than the limit (a log reader feeding an
// endless stream): it must return an error once past the limit, without
// reading the rest.
func TestReview134JSONLOverlongLineIsAnErrorNotAHang(t *testing.T) {
	r := &r134Endless{limit: 80 << 20}
	_, err := sa.VerifyJSONL(r)
	require.Error(t, err)
	require.Less(t, r.read, int64(80<<20), "stopped at the line limit")
}

// r134Endless yields limit bytes of 'a' without a newline.
type r134Endless struct{ limit, read int64 }

func (r *r134Endless) Read(p []byte) (int, error) {
	if r.read >= r.limit {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.limit-r.read)
	for i := range p[:n] {
		p[i] = 'a'
	}
	r.read += n
	return int(n), nil
}

// TestReview134CanonicalEncodingSeparatesFields attacks Event.ChainHash's
// canonical encoding with pairs of different events whose fields
// concatenate to the same bytes: attrs split differently between key and
// value, or across two attrs; a reason moved into the actor's name; a
// Before moved into After; an attr key equal to another field. Each pair
// must hash differently. Nil and empty Attrs or Before are one value (both
// export and store as "none") and hash alike.
func TestReview134CanonicalEncodingSeparatesFields(t *testing.T) {
	base := chainOf(1)[0]
	with := func(f func(e *sa.Event)) sa.Event {
		e := base
		e.Attrs = map[string]string{}
		f(&e)
		return e
	}
	pairs := [][2]sa.Event{
		{with(func(e *sa.Event) { e.Attrs["ab"] = "c" }), with(func(e *sa.Event) { e.Attrs["a"] = "bc" })},
		{with(func(e *sa.Event) { e.Attrs["a"] = "b"; e.Attrs["c"] = "d" }), with(func(e *sa.Event) { e.Attrs["a"] = "bcd" })},
		{with(func(e *sa.Event) { e.Attrs["a"] = "" }), with(func(e *sa.Event) {})},
		{with(func(e *sa.Event) { e.Attrs[""] = "" }), with(func(e *sa.Event) {})},
		{with(func(e *sa.Event) { e.Reason = "xy"; e.Actor.Name = "" }), with(func(e *sa.Event) { e.Reason = "y"; e.Actor.Name = "x" })},
		{with(func(e *sa.Event) { e.Before = []byte("1") }), with(func(e *sa.Event) { e.After = []byte("1") })},
		{with(func(e *sa.Event) { e.TenantID = "acme"; e.Type = "x" }), with(func(e *sa.Event) { e.TenantID = "x"; e.Type = "acme" })},
		{with(func(e *sa.Event) { e.Time = time.Unix(0, 0) }), with(func(e *sa.Event) { e.Time = time.Time{} })},
		{with(func(e *sa.Event) { e.Seq = 1 }), with(func(e *sa.Event) { e.Seq = 2 })},
	}
	for i, p := range pairs {
		require.NotEqual(t, p[0].ChainHash(nil), p[1].ChainHash(nil), "pair %d hashes alike", i)
		require.NotEqual(t, p[0].ChainHash([]byte("p")), p[0].ChainHash(nil), "prev is covered")
	}
	a, b := base, base
	a.Attrs, b.Attrs = nil, map[string]string{}
	a.Before, b.Before = nil, []byte{}
	require.Equal(t, a.ChainHash(nil), b.ChainHash(nil), "nil and empty are one value")
	// And they export alike: nothing a reader sees tells them apart.
	la, lb := r134ExportOne(t, a), r134ExportOne(t, b)
	require.Equal(t, la, lb)
	// Prev of different lengths is length-prefixed.
	require.NotEqual(t, base.ChainHash([]byte{0}), base.ChainHash(nil))
}

// r134ExportOne returns ev's export line.
func r134ExportOne(t *testing.T, ev sa.Event) string {
	t.Helper()
	var buf bytes.Buffer
	_, err := r134ManagerOnSlice(t, []sa.Event{ev}).ExportAudit(ctx, &buf, sa.AuditFilter{})
	require.NoError(t, err)
	return buf.String()
}

// TestReview134SlogAuditorInjection attacks SlogAuditor with text a host
// passes through (its own events) or an attacker got into an event: line
// breaks, ANSI escapes, bidi overrides and fake key=value pairs in the
// reason, tenant ID, attrs keys and values. With the text handler the
// record must stay one line whose only event.reason key is the real one;
// with the JSON handler one valid JSON object whose fields equal the
// event's; and neither may drop an attribute (an empty key included).
func TestReview134SlogAuditorInjection(t *testing.T) {
	e := sa.Event{ID: uuid.New(), Time: storetest.Epoch, Type: sa.EventSupportChange,
		TenantID: "acme\nlevel=ERROR msg=\"fake\"", Actor: support,
		Reason: "ok\r\nevent.reason=benign \x1b[2K\u202e evil", GrantID: uuid.New(),
		Attrs:  map[string]string{"": "", "a=b c": "v\nevent.type=x", "k": "", "x\"y": "\x1b]0;title\x07"},
		Before: json.RawMessage(`{"a":"\n"}`), After: json.RawMessage("{\n\"a\": 1}"), Seq: 3, Hash: []byte{1, 2}}
	var text bytes.Buffer
	require.NoError(t, sa.NewSlogAuditor(slog.New(slog.NewTextHandler(&text, nil))).Record(ctx, e))
	out := text.String()
	require.Equal(t, 1, strings.Count(out, "\n"), "one line: %q", out)
	require.True(t, strings.HasSuffix(out, "\n"))
	require.NotContains(t, out, "\x1b", "no raw escape")
	require.NotContains(t, out, "\u202e", "no raw bidi override")
	require.NotContains(t, out, "\r")
	require.Equal(t, 1, strings.Count(out, " event.reason="), "no second reason key: %s", out)
	require.Equal(t, 1, strings.Count(out, " event.type="), "no second type key: %s", out)
	require.Contains(t, out, `"event.attrs."=""`, "the empty key is kept")

	var js bytes.Buffer
	require.NoError(t, sa.NewSlogAuditor(slog.New(slog.NewJSONHandler(&js, nil))).Record(ctx, e))
	require.Equal(t, 1, strings.Count(js.String(), "\n"))
	var rec struct {
		Event struct {
			TenantID string            `json:"tenant_id"`
			Reason   string            `json:"reason"`
			Attrs    map[string]string `json:"attrs"`
			Before   json.RawMessage   `json:"before"`
			After    json.RawMessage   `json:"after"`
			Seq      int64             `json:"seq"`
			Hash     string            `json:"hash"`
		} `json:"event"`
	}
	d := json.NewDecoder(&js)
	require.NoError(t, d.Decode(&rec))
	require.Equal(t, e.TenantID, rec.Event.TenantID)
	require.Equal(t, e.Reason, rec.Event.Reason)
	require.Equal(t, e.Attrs, rec.Event.Attrs)
	require.JSONEq(t, string(e.Before), string(rec.Event.Before))
	require.JSONEq(t, string(e.After), string(rec.Event.After))
	require.Equal(t, int64(3), rec.Event.Seq)
	require.Equal(t, "0102", rec.Event.Hash)
}

// TestReview134ManagerRefusesInjectionInReasons attacks the trail (and
// every log fed from it) through the Manager: a reason with an ANSI
// escape, a carriage return, a bidi override, a line separator, NUL or
// invalid UTF-8 is refused with ErrInvalidInput before anything is stored.
// A line feed is allowed in a reason (documented) — but with the text
// handler the SlogAuditor record stays one line with one event.reason key.
func TestReview134ManagerRefusesInjectionInReasons(t *testing.T) {
	for _, reason := range []string{"ok\rlevel=ERROR msg=fake", "ok\x1b[31m", "ok\u202eevil", "ok\u2028x", "ok\x00", "ok\xff"} {
		e := newEnv(t)
		before := e.snapshot()
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Reason: reason})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%q", reason)
		require.Equal(t, before, e.snapshot(), "%q: nothing stored", reason)
	}
	var out bytes.Buffer
	st := memstore.New()
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, sa.NewSlogAuditor(slog.New(slog.NewTextHandler(&out, nil))))))
	e.grant(sa.GrantInput{Reason: "ticket 1\nevent.reason=approved level=ERROR"})
	log := out.String()
	require.Equal(t, 1, strings.Count(log, "\n"), "one record, one line: %q", log)
	require.Equal(t, 1, strings.Count(log, " event.reason="), log)
}

// r134Failing fails every Record.
type r134Failing struct{}

func (r134Failing) Record(context.Context, sa.Event) error { return errBoom }

// TestReview134MultiAuditorPartialFailure attacks "no change without its
// audit event" with a MultiAuditor one of whose members fails: before,
// between or after the store. The change is refused, the store holds
// neither the grant nor its event, and its chain verifies; a refusal
// (a fact) still reaches the store. An empty MultiAuditor is no auditor.
func TestReview134MultiAuditorPartialFailure(t *testing.T) {
	layouts := map[string]func(st *memstore.Store, rec *recordingAuditor) sa.Auditor{
		"failing first": func(st *memstore.Store, rec *recordingAuditor) sa.Auditor {
			return sa.MultiAuditor(r134Failing{}, st, rec)
		},
		"failing middle": func(st *memstore.Store, rec *recordingAuditor) sa.Auditor {
			return sa.MultiAuditor(rec, r134Failing{}, st)
		},
		"failing last": func(st *memstore.Store, rec *recordingAuditor) sa.Auditor {
			return sa.MultiAuditor(st, rec, r134Failing{})
		},
		"nested": func(st *memstore.Store, rec *recordingAuditor) sa.Auditor {
			return sa.MultiAuditor(sa.MultiAuditor(st, nil), sa.MultiAuditor(rec, sa.MultiAuditor(r134Failing{})))
		},
	}
	for name, layout := range layouts {
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			rec := &recordingAuditor{}
			e := newEnvOn(t, st, sa.WithAuditor(layout(st, rec)), sa.WithErrorHandler(func(context.Context, error) {}))
			_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
			require.ErrorIs(t, err, errBoom)
			require.Empty(t, e.events(sa.EventGrantCreated))
			gs, err := st.ListGrants(ctx, sa.ListFilter{}, e.now())
			require.NoError(t, err)
			require.Empty(t, gs, "no grant without its event")
			_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support})
			require.ErrorIs(t, err, sa.ErrForbidden)
			require.Len(t, e.events(sa.EventActionRefused), 1, "the refusal reaches the store whatever the others say")
			r134Verify(t, e.m, "acme")
		})
	}
	_, err := sa.NewManager(memstore.New(), sa.WithAuditor(sa.MultiAuditor(nil, sa.MultiAuditor())))
	if err == nil {
		// An empty MultiAuditor leaves the store's default: still audited.
		st := memstore.New()
		e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor()))
		e.grant(sa.GrantInput{})
		require.Len(t, e.events(sa.EventGrantCreated), 1, "an empty MultiAuditor silenced the trail")
	}
}

// TestReview134PurgeCopyIsMarkedAndFailureKeepsEverything attacks the
// purge's copies: another auditor receives the audit.purged event marked
// AttrPurgeCopy (so that the copy's chain cannot take it for its own
// checkpoint), and when that auditor refuses, nothing is deleted and no
// checkpoint saved, on every store.
func TestReview134PurgeCopyIsMarkedAndFailureKeepsEverything(t *testing.T) {
	r134Backends(t, func(t *testing.T, st r134Store) {
		base := storetest.Epoch.Truncate(time.Microsecond)
		clock := storetest.NewClock(base.Add(time.Hour))
		for i := 0; i < 3; i++ {
			require.NoError(t, st.Record(ctx, r134Event("acme", base.Add(time.Duration(i)*time.Second), "x")))
		}
		failing := r134Manager(t, st, clock, sa.WithAuditor(sa.MultiAuditor(st, r134Failing{})))
		before := r134All(t, st, "acme")
		_, err := failing.PurgeAudit(ctx, "acme", clock.Now())
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, before, r134All(t, st, "acme"), "nothing deleted or appended")
		cs, err := st.AuditChain(ctx, "acme")
		require.NoError(t, err)
		require.Zero(t, cs.Checkpoint.Seq)

		rec := &recordingAuditor{}
		m := r134Manager(t, st, clock, sa.WithAuditor(sa.MultiAuditor(st, rec)))
		res, err := m.PurgeAudit(ctx, "acme", clock.Now())
		require.NoError(t, err)
		require.Equal(t, int64(3), res.Deleted)
		require.Len(t, rec.events, 1)
		require.Equal(t, "true", rec.events[0].Attrs[sa.AttrPurgeCopy])
		own := r134Purges(t, st, "acme")
		require.Len(t, own, 1)
		require.NotContains(t, own[0].Attrs, sa.AttrPurgeCopy, "the log's own record is not marked a copy")
		require.Equal(t, rec.events[0].ID, own[0].ID)
		r134Verify(t, m, "acme")
	})
}

// TestReview134ReturnedEventsAreCopies attacks the store through the
// values it hands out and takes in: changing an event's Attrs map, Before
// bytes or Hash after Record, or in what Events returned, must not change
// what the store keeps (memstore shares memory with its callers).
func TestReview134ReturnedEventsAreCopies(t *testing.T) {
	st := memstore.New()
	m := r134Manager(t, st, storetest.NewClock(storetest.Epoch))
	e := r134Event("acme", storetest.Epoch, "r")
	e.Before = []byte(`{"a":1}`)
	require.NoError(t, st.Record(ctx, e))
	e.Attrs[sa.AttrPath] = "/changed"
	e.Before[2] = 'b'
	got := r134All(t, st, "acme")
	got[0].Attrs[sa.AttrMethod] = "DELETE"
	got[0].Hash[0] ^= 1
	got[0].Before[2] = 'c'
	again := r134All(t, st, "acme")
	require.Equal(t, "/x", again[0].Attrs[sa.AttrPath])
	require.Equal(t, "GET", again[0].Attrs[sa.AttrMethod])
	require.Equal(t, `{"a":1}`, string(again[0].Before))
	r134Verify(t, m, "acme")
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestEventCloneIsDeep: Event.Clone shares nothing that can change with
// the original, and keeps nil as nil and empty as empty (the canonical
// encoding treats them alike, but a store round trip is compared with
// require.Equal).
func TestEventCloneIsDeep(t *testing.T) {
	e := sa.Event{ID: uuid.New(), TenantID: "acme", Attrs: map[string]string{sa.AttrPath: "/x"},
		Before: []byte(`{"a":1}`), After: []byte(`{"a":2}`), Hash: []byte{1, 2, 3}}
	c := e.Clone()
	require.Equal(t, e, c)
	c.Attrs[sa.AttrPath] = "/y"
	c.Before[0], c.After[0], c.Hash[0] = 'x', 'x', 9
	require.Equal(t, "/x", e.Attrs[sa.AttrPath])
	require.Equal(t, `{"a":1}`, string(e.Before))
	require.Equal(t, `{"a":2}`, string(e.After))
	require.Equal(t, []byte{1, 2, 3}, e.Hash)

	z := sa.Event{}.Clone()
	require.Nil(t, z.Attrs)
	require.Nil(t, z.Before)
	require.Nil(t, z.After)
	require.Nil(t, z.Hash)
	empty := sa.Event{Attrs: map[string]string{}, Before: []byte{}}.Clone()
	require.NotNil(t, empty.Attrs)
	require.NotNil(t, empty.Before)
}
