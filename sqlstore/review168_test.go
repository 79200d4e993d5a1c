package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 168: second read of the fixes since 9a586e5 (and of the review
// 165 hardening before them) against HONEST stores: the bundled sqlstore
// on SQLite, PostgreSQL and MariaDB, several replicas whose clocks
// disagree, several claimers per Sweep, one transition per claim (the
// store not among the auditors), hooks that fail and are retried, and
// purges running on another replica while VerifyAudit walks.
//
// Promises attacked:
//
//   - expiry.go, claimedOnce: a grant a claim returns is handled "each
//     once, and not handed over before by this claimer"; the fix must not
//     leave out (and report) anything an honest store claimed, nor stop
//     or loop an honest Sweep ("Stop at an empty batch, not at a short
//     one").
//   - hooks.go, dueTasks: "each grant's task once, and only of a grant
//     that has expired by the Manager's clock"; "a replica whose clock
//     lags the one that recorded the expiry so leaves the task to the next
//     claim" - with honest stores no task may be left out for ever.
//   - Sweep (expiry.go): "Sweep records the lifecycle transitions that are
//     due, each exactly once, also when several replicas sweep the same
//     store at the same moment"; OnExpire (hooks.go): "each once per expiry
//     when it succeeds".
//   - VerifyAudit (audit_verify.go): "ErrConflict when purges running on
//     other replicas kept cutting the chain where the walk was, three
//     walks in a row"; verifyTenant: "one beyond it is reported whatever
//     purges ran, so that moving the checkpoint cannot hide it".

// r168Sink is the auditor that keeps the whole trail when the store is
// left out of the auditors (shared by every replica, as a log shipper is).
type r168Sink struct {
	mu     sync.Mutex
	events []sa.Event
}

func (s *r168Sink) Record(_ context.Context, e sa.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

func (s *r168Sink) count(typ sa.EventType, id uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if e.Type == typ && e.GrantID == id {
			n++
		}
	}
	return n
}

// r168Errs collects what the error handlers of all replicas were told.
type r168Errs struct {
	mu   sync.Mutex
	errs []error
}

func (r *r168Errs) handle(_ context.Context, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

// unexpected returns the reported errors that are not the hooks' own
// planned failures.
func (r *r168Errs) unexpected() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, err := range r.errs {
		if errors.Is(err, errR168Hook) {
			continue
		}
		out = append(out, err.Error())
	}
	return out
}

var errR168Hook = errors.New("r168 hook: first attempt fails")

// TestReview168SkewedReplicasSweepExactlyOnce: three replicas on one
// database, clocks at -2 s, 0 and +2 s of a shared test clock, three
// claimers each, sweep together minute after minute while grants (some
// scheduled, one extended, two revoked) expire; every third grant's hook
// fails its first attempt (retried after 1µs, so by runHookTasks and
// dueTasks on whichever replica claims it). With the store keeping the
// trail (batches of up to SweepBatchSize) and without it (one transition
// per claim, many claims per claimer: the per-claimer seen map is used
// across claims). Every expiry must be recorded exactly once, counted
// once by the Sweeps, its hooks completed exactly once and never called
// by a replica whose clock says the grant is still active; no Sweep may
// fail, and nothing may be "left out" (reported) by claimedOnce or
// dueTasks: the stores are honest.
func TestReview168SkewedReplicasSweepExactlyOnce(t *testing.T) {
	for _, storeAudits := range []bool{true, false} {
		t.Run(fmt.Sprintf("storeAudits=%v", storeAudits), func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
				r168SweepExactlyOnce(t, d, storeAudits)
			})
		})
	}
}

func r168SweepExactlyOnce(t *testing.T, d sqlstore.Dialect, storeAudits bool) {
	ctx := context.Background()
	rs := r163Replicas(t, d, 3)
	base := storetest.NewClock(r163Base)
	offsets := []time.Duration{0, 2 * time.Second, -2 * time.Second}
	sink := &r168Sink{}
	errs := &r168Errs{}

	var mu sync.Mutex
	completed := map[uuid.UUID]int{} // hook runs that succeeded
	attempts := map[uuid.UUID]int{}
	var early []string
	failFirst := map[uuid.UUID]bool{}

	ms := make([]*sa.Manager, len(rs))
	for i, s := range rs {
		off := offsets[i]
		now := func() time.Time { return base.Now().Add(off) }
		hook := func(_ context.Context, g sa.Grant) error {
			mu.Lock()
			defer mu.Unlock()
			if g.ExpiresAt.IsZero() || g.ExpiresAt.After(now()) {
				early = append(early, fmt.Sprintf("replica %d ran the hook of %s (expires %s) at %s", i, g.ID, g.ExpiresAt, now()))
			}
			attempts[g.ID]++
			if failFirst[g.ID] && attempts[g.ID] == 1 {
				return errR168Hook
			}
			completed[g.ID]++
			return nil
		}
		opts := []sa.Option{sa.WithNow(now), sa.OnExpire(hook), sa.WithSweepConcurrency(3),
			sa.WithExpireHookRetry(time.Microsecond, time.Millisecond), sa.WithErrorHandler(errs.handle)}
		if !storeAudits {
			opts = append(opts, sa.WithAuditor(sink))
		}
		m, err := sa.NewManager(s, opts...)
		require.NoError(t, err)
		ms[i] = m
	}

	var grants []sa.Grant
	for i := range 24 {
		in := sa.GrantInput{TenantID: []string{"acme", "globex"}[i%2], By: storetest.Customer,
			Duration: time.Duration(1+i%7) * time.Minute, Reason: "case " + fmt.Sprint(i)}
		if i%4 == 1 {
			in.StartsAt = base.Now().Add(time.Duration(1+i%3) * time.Minute)
		}
		g, err := ms[i%3].Grant(ctx, in)
		require.NoError(t, err)
		grants = append(grants, g)
		if i%3 == 0 {
			failFirst[g.ID] = true
		}
	}
	revoked := map[uuid.UUID]bool{}
	total := 0
	sweepAll := func() {
		var wg sync.WaitGroup
		ns := make([]int, len(ms))
		es := make([]error, len(ms))
		for i, m := range ms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				ns[i], es[i] = m.Sweep(sctx)
			}()
		}
		wg.Wait()
		for i := range ms {
			require.NoError(t, es[i], "replica %d", i)
			total += ns[i]
		}
	}
	for step := range 12 {
		base.Advance(40 * time.Second)
		switch step {
		case 2:
			_, err := ms[1].Revoke(ctx, grants[5].ID, storetest.Customer, "done")
			require.NoError(t, err)
			revoked[grants[5].ID] = true
		case 3:
			g := grants[6] // 1+6%7 = 7 minutes: still active at step 3
			_, err := ms[2].Extend(ctx, g.ID, g.ExpiresAt.Add(time.Minute), storetest.Customer)
			require.NoError(t, err)
		case 4:
			_, err := ms[2].Revoke(ctx, grants[13].ID, storetest.Customer, "done")
			require.NoError(t, err)
			revoked[grants[13].ID] = true
		}
		sweepAll()
	}
	base.Advance(time.Hour)
	for range 3 {
		sweepAll()
	}

	expired := 0
	for _, g := range grants {
		evs := r168Count(t, rs[0], sink, storeAudits, g.ID)
		if revoked[g.ID] {
			require.Zero(t, evs[sa.EventGrantExpired], "revoked grant %s expired", g.ID)
			require.Zero(t, completed[g.ID]+attempts[g.ID], "hook of revoked grant %s ran", g.ID)
			continue
		}
		expired++
		require.Equal(t, 1, evs[sa.EventGrantStarted], "grant %s started once", g.ID)
		require.Equal(t, 1, evs[sa.EventGrantExpired], "grant %s expired once", g.ID)
		require.Equal(t, 1, completed[g.ID], "hooks of grant %s completed once", g.ID)
		if failFirst[g.ID] {
			require.Equal(t, 2, attempts[g.ID], "grant %s: one failure, one retry", g.ID)
		}
	}
	require.Equal(t, expired, total, "every expiry counted once by the Sweeps")
	require.Empty(t, early, "no hook before the calling replica's clock reached the expiry")
	require.Empty(t, errs.unexpected(), "honest stores: nothing left out or reported")
}

// r168Count counts the trail's events of grant id by type: the store's
// when it keeps the trail, else the shared sink's.
func r168Count(t *testing.T, s *sqlstore.Store, sink *r168Sink, storeAudits bool, id uuid.UUID) map[sa.EventType]int {
	t.Helper()
	out := map[sa.EventType]int{}
	types := []sa.EventType{sa.EventGrantStarted, sa.EventGrantExpired}
	if !storeAudits {
		for _, typ := range types {
			out[typ] = sink.count(typ, id)
		}
		return out
	}
	evs, err := s.Events(context.Background(), sa.AuditFilter{GrantID: id, Types: types})
	require.NoError(t, err)
	for _, e := range evs {
		out[e.Type]++
	}
	return out
}

// r168PurgingLog is a replica's store as a Manager's AuditLog that runs
// hook after every walk page (an Events call in chain order of every
// type): another replica's purge landing while VerifyAudit walks.
type r168PurgingLog struct {
	*sqlstore.Store
	mu    sync.Mutex
	pages int
	hook  func(page int)
}

func (l *r168PurgingLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	evs, err := l.Store.Events(ctx, f)
	if f.Order == sa.AuditByChain && len(f.Types) == 0 && f.Limit > 1 {
		l.mu.Lock()
		l.pages++
		p := l.pages
		l.mu.Unlock()
		l.hook(p)
	}
	return evs, err
}

// TestReview168PurgesCannotTurnTamperingIntoConflict: an insider changed
// event 6 of acme in the database and can run PurgeAudit (retention) on
// another replica as often and as precisely as it likes, but wants event
// 6 kept (deleting it would be plain retention). It purges during every
// walk of VerifyAudit, each time as far as it can without deleting event
// 6 (up to 5, then nothing more is old enough). VerifyAudit must report
// ErrTampered at seq 6, not ErrConflict ("verify again") nor success. A
// control without tampering, with the same purges, verifies.
func TestReview168PurgesCannotTurnTamperingIntoConflict(t *testing.T) {
	for _, tampered := range []bool{true, false} {
		t.Run(fmt.Sprintf("tampered=%v", tampered), func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
				ctx := context.Background()
				rs := r163Replicas(t, d, 2)
				clock := storetest.NewClock(r163Base.Add(time.Hour))
				ms := r163Managers(t, rs, clock)
				for i := range 12 {
					require.NoError(t, rs[0].Record(ctx, r163Event("acme", int64(i+1))))
				}
				if tampered {
					require.NoError(t, rs[0].ExecForTest(ctx, `UPDATE {p}audit_events SET reason = 'nothing to see' WHERE tenant_id = ? AND seq = 6`, "acme"))
				}
				var purges []int64
				log := &r168PurgingLog{Store: rs[1], hook: func(int) {
					// Everything older than event 6 (at base+6µs): events 1-5.
					res, err := ms[0].PurgeAudit(ctx, "acme", r163Base.Add(6*time.Microsecond))
					require.NoError(t, err)
					purges = append(purges, res.Checkpoint.Seq)
				}}
				m1, err := sa.NewManager(rs[1], sa.WithNow(clock.Now), sa.WithAuditLog(log))
				require.NoError(t, err)
				rep, err := m1.VerifyAudit(ctx, "acme")
				require.NotEmpty(t, purges)
				require.EqualValues(t, 5, purges[0], "the first purge cut the chain under the walk")
				if !tampered {
					require.NoError(t, err)
					return
				}
				require.NotErrorIs(t, err, sa.ErrConflict, "moving the checkpoint must not hide the change")
				require.ErrorIs(t, err, sa.ErrTampered)
				require.NotNil(t, rep.Break)
				require.EqualValues(t, 6, rep.Break.Seq)
				// The evidence is still there: a plain verify finds it too.
				_, err = ms[0].VerifyAudit(ctx, "acme")
				require.ErrorIs(t, err, sa.ErrTampered)
			})
		})
	}
}

// TestReview168HookTaskOfDeletedGrant pins what happens to the hook task
// of a grant whose row the host's own SQL deleted (sqlstore's docs expect
// such rows: "rows a writer that does not keep grant_due left behind ...
// the host's own SQL; the foreign key deletes those of deleted grants
// already") while its hook was waiting for a retry. ClaimHookTasks hands
// the task over with a Grant holding only its ID; dueTasks (review 165)
// now leaves it out because its ExpiresAt is zero. The hook is never
// called with that empty grant (before, it was, with no tenant), but the
// task also never ends: it is leased, left out and reported again after
// every lease, for ever. Pinned, not reported as a bug: the library does
// not document deleting grants.
func TestReview168HookTaskOfDeletedGrant(t *testing.T) {
	ctx := context.Background()
	rs := r163Replicas(t, sqlstore.SQLite, 1)
	clock := storetest.NewClock(r163Base.Add(time.Hour))
	errs := &r168Errs{}
	var calls []sa.Grant
	m, err := sa.NewManager(rs[0], sa.WithNow(clock.Now), sa.WithErrorHandler(errs.handle),
		sa.WithExpireHookLease(time.Second), sa.WithExpireHookRetry(time.Microsecond, time.Microsecond),
		sa.OnExpire(func(_ context.Context, g sa.Grant) error {
			calls = append(calls, g)
			return errR168Hook
		}))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Minute})
	require.NoError(t, err)
	clock.Advance(2 * time.Minute)
	n, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, calls, 1)
	require.NoError(t, rs[0].ExecForTest(ctx, `DELETE FROM {p}grants WHERE id = ?`, g.ID.String()))
	for range 3 {
		clock.Advance(2 * time.Second) // past the retry and any lease
		_, err = m.Sweep(ctx)
		require.NoError(t, err)
	}
	require.Len(t, calls, 1, "never called with a grant that has no tenant")
	left := 0
	for _, e := range errs.unexpected() {
		if strings.Contains(e, "left out") {
			left++
		}
	}
	require.Equal(t, 3, left, "reported at every Sweep after the lease: the task never ends")
}
