package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Stress, from the review of the grant_due claim: concurrent expiry claims (small
// batches) against Revoke / Extend-to-the-future / move-within-due /
// grantee changes. Every claimed grant is unrevoked and due as returned;
// per grant, in chain order: at most one grant.expired, none after a
// revocation, and exactly one for every grant that ends unrevoked and due.
func TestReviewDueStressClaimsVsWriters(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.SQLite} {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			s := sqltest.NewStore(t, d)
			t0 := storetest.Epoch.UTC().Truncate(time.Microsecond)
			tenants := []string{"t1", "t2", "t3"}
			var gs []sa.Grant
			for i := range 300 {
				gs = append(gs, sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: tenants[i%3], GrantedBy: storetest.Customer,
					Scopes: []sa.Scope{sa.ScopeRead}, CreatedAt: t0.Add(-2 * time.Hour), StartsAt: t0.Add(-time.Hour),
					ExpiresAt: t0.Add(-time.Duration(300-i) * time.Millisecond)})
			}
			require.NoError(t, s.InsertGrantsForTest(ctx, gs))
			_, err := storetest.ClaimStarts(ctx, s, t0) // expiries are claimed after starts
			require.NoError(t, err)
			ev := func(typ sa.EventType, g sa.Grant) sa.Event {
				return sa.Event{ID: uuid.New(), Time: t0, Type: typ, TenantID: g.TenantID, GrantID: g.ID, Actor: sa.SystemActor}
			}
			var bad atomic.Value
			var done atomic.Bool
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !done.Load() {
						claimed, err := s.ClaimTransitions(ctx, sa.TransitionExpired, t0, 3, func(g sa.Grant) ([]sa.Event, error) {
							return []sa.Event{ev(sa.EventGrantExpired, g)}, nil
						})
						if err != nil {
							bad.Store(fmt.Sprint("claim: ", err))
							return
						}
						for _, g := range claimed {
							if !g.RevokedAt.IsZero() || g.ExpiresAt.After(t0) {
								bad.Store(fmt.Sprintf("claimed %s revoked=%v expires=%v", g.ID, g.RevokedAt, g.ExpiresAt))
							}
						}
					}
				}()
			}
			errSkip := errors.New("skip")
			var wwg sync.WaitGroup
			for w := range 3 {
				wwg.Add(1)
				go func() {
					defer wwg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 7))
					for range 400 {
						id := gs[r.IntN(len(gs))].ID
						op := r.IntN(4)
						_, err := s.UpdateGrant(ctx, id, func(g *sa.Grant) ([]sa.Event, error) {
							if !g.RevokedAt.IsZero() {
								return nil, errSkip
							}
							switch op {
							case 0:
								g.RevokedAt, g.RevokedBy = t0, storetest.Customer
								return []sa.Event{ev(sa.EventGrantRevoked, *g)}, nil
							case 1:
								g.ExpiresAt = t0.Add(time.Hour)
							case 2:
								g.ExpiresAt = t0.Add(-time.Duration(r.IntN(1000)+1) * time.Millisecond)
							default:
								g.Grantees = append(g.Grantees, fmt.Sprint("p", r.IntN(1000)))
							}
							return []sa.Event{ev(sa.EventGrantExtended, *g)}, nil
						})
						// A grant whose expiry a claimer recorded is final
						// (fifth review): UpdateGrant refuses it.
						if err != nil && !errors.Is(err, errSkip) && !(errors.Is(err, sa.ErrInvalidInput) && strings.Contains(err.Error(), "expiry is recorded")) {
							bad.Store(fmt.Sprint("update: ", err))
							return
						}
					}
				}()
			}
			wwg.Wait()
			done.Store(true)
			wg.Wait()
			for {
				claimed, err := s.ClaimTransitions(ctx, sa.TransitionExpired, t0, 50, func(g sa.Grant) ([]sa.Event, error) {
					return []sa.Event{ev(sa.EventGrantExpired, g)}, nil
				})
				require.NoError(t, err)
				if len(claimed) == 0 {
					break
				}
			}
			if v := bad.Load(); v != nil {
				t.Fatal(v)
			}
			// Replay each grant's events in chain order.
			type st struct {
				revoked bool
				expired int
			}
			state := map[uuid.UUID]*st{}
			for _, g := range gs {
				state[g.ID] = &st{}
			}
			for _, tenant := range tenants {
				evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant, Order: sa.AuditByChain})
				require.NoError(t, err)
				slices.SortFunc(evs, func(a, b sa.Event) int { return int(a.Seq - b.Seq) })
				for _, e := range evs {
					x := state[e.GrantID]
					if e.Type != sa.EventGrantExpired {
						require.Zero(t, x.expired, "grant %s changed (%s) after its expiry was recorded", e.GrantID, e.Type)
					}
					switch e.Type {
					case sa.EventGrantRevoked:
						x.revoked = true
					case sa.EventGrantExpired:
						require.False(t, x.revoked, "grant %s expired after its revocation", e.GrantID)
						x.expired++
						require.Equal(t, 1, x.expired, "grant %s expired twice", e.GrantID)
					}
				}
			}
			for _, g := range gs {
				cur, err := s.GetGrant(ctx, g.ID)
				require.NoError(t, err)
				if cur.RevokedAt.IsZero() && !cur.ExpiresAt.After(t0) {
					require.Equal(t, 1, state[g.ID].expired, "grant %s is due and unrevoked: expired once", g.ID)
				}
			}
		})
	}
}
