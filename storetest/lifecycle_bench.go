package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
)

// NewBenchStore returns a fresh, empty store for one benchmark. It
// registers its own clean-up with b.Cleanup.
type NewBenchStore func(b *testing.B) sa.Store

// SweepBench configures BenchmarkSweep.
type SweepBench struct {
	// N is the number of due grants one Sweep records.
	N int
	// Hooks adds a no-op OnExpire hook, run through the store's hook tasks.
	Hooks bool
	// AfterSeed, if set, runs after the grants are stored and before the
	// timer starts (for example to ANALYZE the tables, as the database's
	// maintenance would before a real burst of expiries).
	AfterSeed func(b *testing.B, s sa.Store)
}

// BenchmarkSweep measures one Manager.Sweep that records c.N due expiries
// (grant.expired events committed with the claims, in batches of
// supportaccess.SweepBatchSize, over 50 tenants) and, with c.Hooks, runs a
// no-op OnExpire hook for each. Every iteration seeds c.N fresh expired
// grants into a fresh store with the timer stopped; their grant.started
// transitions are claimed beforehand, as earlier sweeps would have. It
// reports grants/s.
func BenchmarkSweep(b *testing.B, newStore NewBenchStore, c SweepBench) {
	ctx := context.Background()
	n, hooks := c.N, c.Hooks
	var opts []sa.Option
	if hooks {
		opts = append(opts, sa.OnExpire(func(context.Context, sa.Grant) error { return nil }))
	}
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := newStore(b)
		if _, ok := s.(sa.HookStore); hooks && !ok {
			b.Skip("store does not implement HookStore")
		}
		clock := NewClock(Epoch)
		seedExpired(b, s, n, clock.Now().Truncate(time.Microsecond))
		if c.AfterSeed != nil {
			c.AfterSeed(b, s)
		}
		clock.Advance(48 * time.Hour)
		m, err := sa.NewManager(s, append([]sa.Option{sa.WithNow(clock.Now)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		got, err := m.Sweep(ctx)
		total += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("swept %d grants, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "grants/s")
}

// seedExpired stores n grants that expire within a day of now, spread over
// 50 tenants, from 8 goroutines, and claims their start transitions.
func seedExpired(b *testing.B, s sa.Store, n int, now time.Time) {
	b.Helper()
	ctx := context.Background()
	const workers = 8
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := w; i < n; i += workers {
				starts := now.Add(-time.Hour)
				g := sa.Grant{
					ID: uuid.Must(uuid.NewV7()), TenantID: fmt.Sprintf("tenant-%02d", i%50), Scopes: []sa.Scope{sa.ScopeRead},
					GrantedBy: Customer, CreatedAt: starts, StartsAt: starts,
					ExpiresAt: now.Add(time.Duration(i%86400) * time.Second),
				}
				if err := s.CreateGrant(ctx, g, nil); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	for {
		gs, err := s.ClaimTransitions(ctx, sa.TransitionStarted, now, 5000, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
		if err != nil {
			b.Fatal(err)
		}
		if len(gs) == 0 {
			return
		}
	}
}
