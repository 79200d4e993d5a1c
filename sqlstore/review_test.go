package sqlstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// reviewVerifyChains reads every event of the store in chain order and
// checks that each tenant's events are numbered 1, 2, … and hash-chained,
// and that the tenant's head matches its last event. It returns the events
// by tenant.
func reviewVerifyChains(t *testing.T, s *sqlstore.Store) map[string][]sa.Event {
	t.Helper()
	ctx := context.Background()
	byTenant := map[string][]sa.Event{}
	var after *sa.AuditCursor
	for {
		f := sa.AuditFilter{Order: sa.AuditByChain, Limit: sa.MaxListLimit, After: after}
		evs, err := s.Events(ctx, f)
		require.NoError(t, err)
		for _, e := range evs {
			byTenant[e.TenantID] = append(byTenant[e.TenantID], e)
		}
		if len(evs) < sa.MaxListLimit {
			break
		}
		c := evs[len(evs)-1].Cursor()
		after = &c
	}
	for tenant, evs := range byTenant {
		var prev []byte
		for i, e := range evs {
			require.Equal(t, int64(i+1), e.Seq, "tenant %q", tenant)
			require.Equal(t, e.ChainHash(prev), e.Hash, "chain of %q at %d", tenant, e.Seq)
			prev = e.Hash
		}
		st, err := s.AuditChain(ctx, tenant)
		require.NoError(t, err)
		require.Equal(t, int64(len(evs)), st.Head.Seq, "head of %q", tenant)
		require.Equal(t, prev, st.Head.Hash, "head of %q", tenant)
	}
	return byTenant
}

// Review of the batched chain heads and the unnest INSERT at their chunk
// boundaries: one claim whose events span more tenants than one head
// statement takes (maxHeadsPerStatement = 1000) and more events than one
// unnest INSERT takes (maxUnnestEvents = 5000, leaving a remainder below
// minUnnestEvents that takes the VALUES path), some tenants with a head
// already (one cached by the compare-and-set append on PostgreSQL), the
// others without. Every chain must come out numbered, linked and matching
// its head.
func TestReviewClaimChunkedHeadsAndEvents(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			s := sqltest.NewStore(t, d)
			now := storetest.Epoch.UTC().Truncate(time.Microsecond)
			const tenants = 1001
			gs := make([]sa.Grant, tenants)
			for i := range gs {
				gs[i] = sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: fmt.Sprintf("tenant-%04d", i), GrantedBy: storetest.Customer,
					Scopes: []sa.Scope{sa.ScopeRead}, CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Duration(i+1) * time.Millisecond)}
			}
			require.NoError(t, s.InsertGrantsForTest(ctx, gs))
			for i := 0; i < tenants; i += 100 {
				for range 2 { // the second Record takes the cached-head path on PostgreSQL
					require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.Must(uuid.NewV7()), Time: now, Type: "x", TenantID: gs[i].TenantID, Actor: storetest.Customer}))
				}
			}
			_, err := storetest.ClaimStarts(ctx, s, now)
			require.NoError(t, err)
			const perGrant = 5 // 5005 events: one unnest of 5000 and a VALUES of 5
			claimed, err := s.ClaimTransitions(ctx, sa.TransitionExpired, now.Add(time.Hour), 2000, func(g sa.Grant) ([]sa.Event, error) {
				evs := make([]sa.Event, perGrant)
				for k := range evs {
					evs[k] = sa.Event{ID: uuid.Must(uuid.NewV7()), Time: now.Add(time.Duration(k) * time.Microsecond), Type: sa.EventGrantExpired,
						TenantID: g.TenantID, GrantID: g.ID, Actor: sa.Actor{Kind: sa.ActorSystem, ID: "sweeper"}, Reason: fmt.Sprintf(`r"%d\,{}`, k)}
				}
				return evs, nil
			})
			require.NoError(t, err)
			require.Len(t, claimed, tenants)
			byTenant := reviewVerifyChains(t, s)
			require.Len(t, byTenant, tenants)
			for i, g := range gs {
				want := perGrant
				if i%100 == 0 {
					want += 2
				}
				require.Len(t, byTenant[g.TenantID], want, g.TenantID)
			}
			// the cached head must have followed the batch: one more Record chains on.
			require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.Must(uuid.NewV7()), Time: now, Type: "x", TenantID: gs[0].TenantID, Actor: storetest.Customer}))
			reviewVerifyChains(t, s)
		})
	}
}

// Review of exactly-once claims and chain-head locking across replicas:
// four sweepers on two stores (separate pools) expire a batch spread over
// more tenants than one head statement takes, while other goroutines keep
// appending to the same tenants through Record (the compare-and-set path
// on PostgreSQL) and grant changes. Every grant must be started and
// expired exactly once, no sweep may fail (a deadlock between the batched
// head locks and the single-tenant appends would), and every tenant's
// chain must stay linear.
func TestReviewConcurrentSweepsAndAppendsKeepChains(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			a, b := sqlReplicas(t, d)
			ctx := context.Background()
			clock := storetest.NewClock(storetest.Epoch)
			now := clock.Now().UTC().Truncate(time.Microsecond)
			const n, tenants = 3000, 1200
			gs := make([]sa.Grant, n)
			for i := range gs {
				gs[i] = sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: fmt.Sprintf("t%04d", i%tenants), GrantedBy: storetest.Customer,
					Scopes: []sa.Scope{sa.ScopeRead}, CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Duration(i+1) * time.Millisecond)}
			}
			require.NoError(t, a.InsertGrantsForTest(ctx, gs))
			clock.Set(now.Add(time.Hour))
			var ms []*sa.Manager
			for _, s := range []sa.Store{a, b} {
				m, err := sa.NewManager(s, sa.WithNow(clock.Now))
				require.NoError(t, err)
				ms = append(ms, m)
			}
			stop := make(chan struct{})
			var writers sync.WaitGroup
			appended := make([]int, 4)
			for w := range 4 {
				writers.Add(1)
				go func() {
					defer writers.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					st := []*sqlstore.Store{a, b}[w%2]
					for {
						select {
						case <-stop:
							return
						default:
						}
						tenant := fmt.Sprintf("t%04d", rng.IntN(tenants))
						err := st.Record(ctx, sa.Event{ID: uuid.Must(uuid.NewV7()), Time: now, Type: "x", TenantID: tenant, Actor: storetest.Customer})
						if err != nil {
							t.Errorf("record: %v", err)
							return
						}
						appended[w]++
					}
				}()
			}
			const sweepers = 4
			counts := make([]int, sweepers)
			var wg sync.WaitGroup
			for w := range sweepers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						c, err := ms[w%2].Sweep(ctx)
						if err != nil {
							t.Errorf("sweep %d: %v", w, err)
							return
						}
						counts[w] += c
						if c == 0 {
							return
						}
					}
				}()
			}
			wg.Wait()
			close(stop)
			writers.Wait()
			total := 0
			for _, c := range counts {
				total += c
			}
			t.Logf("expired per sweeper %v, appended per writer %v", counts, appended)
			require.Equal(t, n, total)
			byTenant := reviewVerifyChains(t, a)
			expired := map[uuid.UUID]int{}
			records := 0
			for _, evs := range byTenant {
				for _, e := range evs {
					if e.Type == sa.EventGrantExpired {
						expired[e.GrantID]++
					}
					if e.Type == "x" {
						records++
					}
				}
			}
			require.Len(t, expired, n)
			for id, c := range expired {
				require.Equal(t, 1, c, "grant %s expired %d times", id, c)
			}
			sum := 0
			for _, c := range appended {
				sum += c
			}
			require.Equal(t, sum, records, "every Record that returned nil is in the trail")
		})
	}
}
