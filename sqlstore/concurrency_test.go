package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
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

// The concurrency tests run on every backend, memstore included (it is the
// reference the SQL stores must match), each with two stores on one
// database playing two replicas of the host: two *sql.DB pools (two handles
// on one SQLite file), or two Managers sharing one memstore.

// replicas returns the two stores of a backend.
type replicas func(t *testing.T) (a, b sa.Store)

func forEachBackend(t *testing.T, f func(t *testing.T, open replicas)) {
	t.Run("memstore", func(t *testing.T) {
		f(t, func(*testing.T) (sa.Store, sa.Store) { s := memstore.New(); return s, s })
	})
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			f(t, func(t *testing.T) (sa.Store, sa.Store) { return sqlReplicas(t, d) })
		})
	}
}

// sqlReplicas returns two stores on one database through separate pools.
func sqlReplicas(t *testing.T, d sqlstore.Dialect) (*sqlstore.Store, *sqlstore.Store) {
	t.Helper()
	var dbA, dbB = sqltest.Open, sqltest.Open
	if d == sqlstore.SQLite {
		path := filepath.Join(t.TempDir(), "replicas.db")
		dbA = func(t testing.TB, _ sqlstore.Dialect) *sql.DB { return sqltest.OpenSQLite(t, path) }
		dbB = dbA
	}
	a := sqltest.NewStoreOn(t, dbA(t, d), d)
	b, err := sqlstore.New(dbB(t, d), d, sqlstore.WithTablePrefix(a.TablePrefix()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return a, b
}

// span is when an operation ran, by the monotonic clock.
type span struct{ start, end time.Time }

// checkRec is one Check of the history.
type checkRec struct {
	span
	id      uuid.UUID // the grant that allowed; uuid.Nil: denied
	expires time.Time
}

// extendRec is one successful Extend.
type extendRec struct {
	span
	id uuid.UUID
	to time.Time
}

// history records the operations of TestLinearizableRevoke.
type history struct {
	mu      sync.Mutex
	grants  map[uuid.UUID]span
	revokes map[uuid.UUID]span
	extends []extendRec
	checks  []checkRec
}

// TestLinearizableRevoke: many goroutines grant, revoke, extend and check
// one tenant at once through two replicas, on every backend, while the
// history of each operation (start and end by the monotonic clock) is
// recorded. Afterwards the history must be explainable by one order of the
// operations consistent with real time:
//
//   - no Check that started after Revoke(g) returned allows with g;
//   - no Check that started after Extend(g, t) returned sees g end before t
//     (extensions only lengthen, one at a time);
//   - no Check denies while some grant was certainly active for its whole
//     duration (created before it started, not revoked before it ended);
//   - every Check that allows names a grant that exists.
func TestLinearizableRevoke(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open replicas) {
		a, b := open(t)
		var ms []*sa.Manager
		for _, s := range []sa.Store{a, b} {
			m, err := sa.NewManager(s) // the real clock: the history is in real time
			require.NoError(t, err)
			ms = append(ms, m)
		}
		runHistory(t, ms)
	})
}

func runHistory(t *testing.T, ms []*sa.Manager) {
	const (
		tenant     = "acme"
		granters   = 2
		perGranter = 10
		revokers   = 2
		checkers   = 4
	)
	ctx := context.Background()
	h := &history{grants: map[uuid.UUID]span{}, revokes: map[uuid.UUID]span{}}
	var live sync.Map // granted, not yet known to be revoked: for the extender
	toRevoke := make(chan uuid.UUID, granters*perGranter)
	stop := make(chan struct{})
	var failed atomic.Bool
	// checksDone counts finished Checks. Revokers and the end of the run wait
	// for a few more so that the history always holds checks that overlap a
	// live grant and checks after the last revoke, however the scheduler
	// runs the goroutines (a vacuous history proves nothing).
	var checksDone atomic.Int64
	awaitChecks := func(n int64) {
		target := checksDone.Load() + n
		for checksDone.Load() < target && !failed.Load() {
			runtime.Gosched()
		}
	}
	fail := func(format string, args ...any) {
		failed.Store(true)
		t.Errorf(format, args...)
	}
	manager := func(i int) *sa.Manager { return ms[i%len(ms)] }

	var writers, readers sync.WaitGroup
	for w := 0; w < granters; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; i < perGranter && !failed.Load(); i++ {
				start := time.Now()
				g, err := manager(w+i).Grant(ctx, sa.GrantInput{TenantID: tenant, By: storetest.Customer, Duration: time.Hour})
				end := time.Now()
				if err != nil {
					fail("grant: %v", err)
					return
				}
				h.mu.Lock()
				h.grants[g.ID] = span{start, end}
				h.mu.Unlock()
				live.Store(g.ID, struct{}{})
				toRevoke <- g.ID
			}
		}()
	}
	var revokersDone sync.WaitGroup
	for w := 0; w < revokers; w++ {
		revokersDone.Add(1)
		go func() {
			defer revokersDone.Done()
			i := 0
			for id := range toRevoke {
				i++
				awaitChecks(2 * checkers)
				for {
					start := time.Now()
					_, err := manager(w+i).Revoke(ctx, id, storetest.Customer, "")
					end := time.Now()
					if errors.Is(err, sa.ErrConflict) {
						continue // a deadlock victim: nothing changed, try again
					}
					if err != nil {
						fail("revoke: %v", err)
						return
					}
					live.Delete(id)
					h.mu.Lock()
					h.revokes[id] = span{start, end}
					h.mu.Unlock()
					break
				}
			}
		}()
	}
	readers.Add(1)
	go func() { // one extender: each extension ends later than the one before
		defer readers.Done()
		base := time.Now().Add(2 * time.Hour).Truncate(time.Microsecond)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var id uuid.UUID
			live.Range(func(k, _ any) bool { id = k.(uuid.UUID); return rand.IntN(3) != 0 })
			if id == uuid.Nil {
				continue
			}
			to := base.Add(time.Duration(i) * time.Millisecond)
			start := time.Now()
			_, err := manager(i).Extend(ctx, id, to, storetest.Customer)
			end := time.Now()
			switch {
			case err == nil:
				h.mu.Lock()
				h.extends = append(h.extends, extendRec{span{start, end}, id, to})
				h.mu.Unlock()
			case errors.Is(err, sa.ErrInvalidInput) || errors.Is(err, sa.ErrConflict): // revoked meanwhile
			default:
				fail("extend: %v", err)
				return
			}
		}
	}()
	for w := 0; w < checkers; w++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				g, err := manager(w+i).Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead)
				end := time.Now()
				if err != nil && !errors.Is(err, sa.ErrNoActiveGrant) {
					fail("check: %v", err)
					return
				}
				h.mu.Lock()
				h.checks = append(h.checks, checkRec{span{start, end}, g.ID, g.ExpiresAt})
				h.mu.Unlock()
				checksDone.Add(1)
			}
		}()
	}
	writers.Wait()
	close(toRevoke)
	revokersDone.Wait()
	awaitChecks(2 * checkers)
	close(stop)
	readers.Wait()
	require.False(t, failed.Load())
	_, err := ms[0].Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "every grant is revoked")
	h.verify(t)
}

// verify checks the history (see TestLinearizableRevoke).
func (h *history) verify(t *testing.T) {
	t.Helper()
	allowed := 0
	for _, c := range h.checks {
		if c.id == uuid.Nil {
			for id, g := range h.grants {
				r, revoked := h.revokes[id]
				if g.end.Before(c.start) && (!revoked || r.start.After(c.end)) {
					t.Errorf("a Check denied while grant %s was active throughout (granted %v before, revoked %v after)",
						id, c.start.Sub(g.end), r.start.Sub(c.end))
				}
			}
			continue
		}
		allowed++
		if _, ok := h.grants[c.id]; !ok {
			t.Errorf("a Check allowed with grant %s, which was never created", c.id)
		}
		if r, ok := h.revokes[c.id]; ok && c.start.After(r.end) {
			t.Errorf("a Check that started %v after Revoke(%s) returned allowed with it", c.start.Sub(r.end), c.id)
		}
		for _, e := range h.extends {
			if e.id == c.id && e.end.Before(c.start) && c.expires.Before(e.to) {
				t.Errorf("a Check that started after Extend(%s, %v) returned saw it end at %v", c.id, e.to, c.expires)
			}
		}
	}
	t.Logf("%d grants, %d revokes, %d extends, %d checks (%d allowed)", len(h.grants), len(h.revokes), len(h.extends), len(h.checks), allowed)
	require.NotZero(t, allowed, "the history has checks that allowed")
	require.Less(t, allowed, len(h.checks), "and checks that denied")
}

// TestReplicasRevokeOnADeniesOnB: a revocation through one replica is seen
// by the next Check through the other, and so is an extension.
func TestReplicasRevokeOnADeniesOnB(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open replicas) {
		a, b := open(t)
		ma, err := sa.NewManager(a)
		require.NoError(t, err)
		mb, err := sa.NewManager(b)
		require.NoError(t, err)
		ctx := context.Background()
		for i, pair := range [][2]*sa.Manager{{ma, mb}, {mb, ma}} {
			x, y := pair[0], pair[1]
			tenant := fmt.Sprint("t", i)
			g, err := x.Grant(ctx, sa.GrantInput{TenantID: tenant, By: storetest.Customer, Duration: time.Hour})
			require.NoError(t, err)
			got, err := y.Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead)
			require.NoError(t, err)
			require.Equal(t, g.ID, got.ID)
			e, err := x.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), storetest.Customer)
			require.NoError(t, err)
			got, err = y.Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead)
			require.NoError(t, err)
			require.Equal(t, e.ExpiresAt, got.ExpiresAt, "the extension is seen by the other replica")
			_, err = x.Revoke(ctx, g.ID, storetest.Customer, "")
			require.NoError(t, err)
			_, err = y.Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the next Check on the other replica denies")
			_, err = y.Revoke(ctx, g.ID, storetest.Customer, "")
			require.ErrorIs(t, err, sa.ErrInvalidInput, "and the other replica cannot revoke it again")
		}
	})
}

// bulkInserter is implemented by sqlstore.Store (export_test.go).
type bulkInserter interface {
	InsertGrantsForTest(ctx context.Context, gs []sa.Grant) error
}

// TestReplicasSweepSplitWork: several sweeps on two replicas run at once
// over more expiries than one batch holds; together they record each
// grant's expiry exactly once.
func TestReplicasSweepSplitWork(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open replicas) {
		a, b := open(t)
		clock := storetest.NewClock(storetest.Epoch)
		ctx := context.Background()
		n := sa.SweepBatchSize + 100
		now := clock.Now().UTC().Truncate(time.Microsecond)
		gs := make([]sa.Grant, n)
		for i := range gs {
			gs[i] = sa.Grant{ID: uuid.New(), TenantID: fmt.Sprintf("t%d", i%7), Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer,
				CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Duration(i+1) * time.Second)}
		}
		if bi, ok := a.(bulkInserter); ok {
			require.NoError(t, bi.InsertGrantsForTest(ctx, gs))
		} else {
			for _, g := range gs {
				require.NoError(t, a.CreateGrant(ctx, g, nil))
			}
		}
		clock.Set(gs[n-1].ExpiresAt)
		var ms []*sa.Manager
		for _, s := range []sa.Store{a, b} {
			m, err := sa.NewManager(s, sa.WithNow(clock.Now))
			require.NoError(t, err)
			ms = append(ms, m)
		}
		const sweepers = 4
		counts := make([]int, sweepers)
		var wg sync.WaitGroup
		for w := 0; w < sweepers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := ms[w%2].Sweep(ctx)
				if err != nil {
					t.Errorf("sweep: %v", err)
				}
				counts[w] = c
			}()
		}
		wg.Wait()
		total := 0
		for _, c := range counts {
			total += c
		}
		t.Logf("expiries recorded per sweeper: %v", counts)
		require.Equal(t, n, total, "the sweeps together expired every grant once")
		evs, err := ms[1].Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExpired}})
		require.NoError(t, err)
		seen := make(map[uuid.UUID]int, n)
		for _, e := range evs {
			seen[e.GrantID]++
		}
		require.Len(t, evs, n, "one grant.expired event per grant")
		require.Len(t, seen, n)
		more, err := ms[0].Sweep(ctx)
		require.NoError(t, err)
		require.Zero(t, more, "nothing left")
	})
}
