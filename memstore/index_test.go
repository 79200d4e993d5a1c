package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// TestFindActiveGrantMatchesGrantSelector checks memstore's compact Check
// index against the reference rules of sa.GrantSelector on random tenants:
// windows on and off whole microseconds, unlimited, revoked and scheduled
// grants, named grantees, built-in and host-defined scopes, ties on the
// expiry, and grants changed after creation (revoked, extended, delegated),
// queried at instants on and next to the window edges.
func TestFindActiveGrantMatchesGrantSelector(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	principals := []string{"alice@vendor.example", "bob@vendor.example", "carol@vendor.example"}
	scopes := []sa.Scope{sa.ScopeRead, sa.ScopeWrite, "messages:read", "billing:write"}
	instant := func() time.Time {
		t := base.Add(time.Duration(rng.IntN(20)) * time.Microsecond)
		if rng.IntN(4) == 0 {
			t = t.Add(time.Duration(rng.IntN(999)+1) * time.Nanosecond)
		}
		return t
	}
	for round := range 300 {
		s := memstore.New()
		tenant := fmt.Sprintf("t%d", round)
		var grants []sa.Grant
		for range rng.IntN(6) {
			g := sa.Grant{ID: uuid.New(), TenantID: tenant, CreatedAt: base.Add(-time.Duration(rng.IntN(3)) * time.Second), StartsAt: instant()}
			if rng.IntN(5) > 0 {
				g.ExpiresAt = instant()
			}
			for _, p := range principals {
				if rng.IntN(3) == 0 {
					g.Grantees = append(g.Grantees, p)
				}
			}
			for _, sc := range scopes {
				if rng.IntN(2) == 0 {
					g.Scopes = append(g.Scopes, sc)
				}
			}
			if rng.IntN(6) == 0 {
				g.RevokedAt = base
			}
			require.NoError(t, s.CreateGrant(ctx, g, nil))
			if rng.IntN(4) == 0 { // change it after creation: the index must follow
				_, err := s.UpdateGrant(ctx, g.ID, func(g *sa.Grant) ([]sa.Event, error) {
					switch rng.IntN(3) {
					case 0:
						g.RevokedAt = base
					case 1:
						g.ExpiresAt = instant()
					default:
						g.Grantees = append(g.Grantees, principals[rng.IntN(len(principals))])
					}
					return nil, nil
				})
				require.NoError(t, err)
			}
			g, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			grants = append(grants, g)
		}
		for range 40 {
			now, p, sc := instant(), principals[rng.IntN(len(principals))], scopes[rng.IntN(len(scopes))]
			sel := sa.GrantSelector{Principal: p, Scope: sc, Now: now}
			for i := range grants {
				sel.Offer(&grants[i])
			}
			want, wantErr := sel.Result()
			got, err := s.FindActiveGrant(ctx, tenant, p, sc, now)
			if wantErr != nil {
				require.True(t, errors.Is(err, wantErr), "round %d at %v for %s/%s: got %v, want %v", round, now, p, sc, err, wantErr)
				continue
			}
			require.NoError(t, err, "round %d at %v for %s/%s", round, now, p, sc)
			require.Equal(t, want.ID, got.ID, "round %d at %v for %s/%s", round, now, p, sc)
		}
	}
}
