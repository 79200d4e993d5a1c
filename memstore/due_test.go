package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

var errAbandon = errors.New("events failed")

// TestClaimTransitionsMatchesReference holds memstore's due queues to the
// contract of ClaimTransitions, computed by brute force over the grants:
// every due, unclaimed, unrevoked transition is claimed exactly once, in
// order of due time then ID, at most limit per call — with grants whose
// times change after creation (extended, shortened, made unlimited or
// limited), revoked grants, ties on the due time, and a clock that moves.
// Changes to a grant whose expiry was claimed are refused, and a claim
// whose events function fails part-way claims nothing.
func TestClaimTransitionsMatchesReference(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	at := func() time.Time { return base.Add(time.Duration(rng.IntN(12)) * time.Minute) }
	for round := range 100 {
		s := memstore.New()
		var ids []uuid.UUID
		for range 1 + rng.IntN(30) {
			g := sa.Grant{ID: uuid.New(), TenantID: fmt.Sprintf("t%d", rng.IntN(3)), Scopes: []sa.Scope{sa.ScopeRead}, CreatedAt: base, StartsAt: at()}
			if rng.IntN(5) > 0 {
				g.ExpiresAt = at()
			}
			require.NoError(t, s.CreateGrant(ctx, g, nil))
			ids = append(ids, g.ID)
		}
		claimed := map[sa.Transition]map[uuid.UUID]bool{sa.TransitionStarted: {}, sa.TransitionExpired: {}}
		for step := range 12 {
			now := base.Add(time.Duration(step) * time.Minute)
			// Change some grants between claims.
			for range rng.IntN(4) {
				id := ids[rng.IntN(len(ids))]
				_, err := s.UpdateGrant(ctx, id, func(g *sa.Grant) ([]sa.Event, error) {
					switch rng.IntN(4) {
					case 0:
						g.RevokedAt = now
					case 1:
						g.ExpiresAt = time.Time{}
					default:
						g.ExpiresAt = at()
					}
					return nil, nil
				})
				if claimed[sa.TransitionExpired][id] {
					require.ErrorIs(t, err, sa.ErrInvalidInput, "a grant whose expiry is recorded is final")
					continue
				}
				require.NoError(t, err)
			}
			for _, tr := range []sa.Transition{sa.TransitionStarted, sa.TransitionExpired} {
				limit := 1 + rng.IntN(5)
				// Reference: due now, not claimed, not revoked, and for an
				// expiry the start claimed; by (due, ID).
				all, err := s.ListGrants(ctx, sa.ListFilter{}, now)
				require.NoError(t, err)
				var want []sa.Grant
				for _, g := range all {
					due := g.StartsAt
					if tr == sa.TransitionExpired {
						due = g.ExpiresAt
					}
					waits := tr == sa.TransitionExpired && !claimed[sa.TransitionStarted][g.ID]
					if g.RevokedAt.IsZero() && !claimed[tr][g.ID] && !due.IsZero() && !due.After(now) && !waits {
						want = append(want, g)
					}
				}
				key := func(g sa.Grant) time.Time {
					if tr == sa.TransitionStarted {
						return g.StartsAt
					}
					return g.ExpiresAt
				}
				slices.SortFunc(want, func(a, b sa.Grant) int {
					if c := key(a).Compare(key(b)); c != 0 {
						return c
					}
					return bytes.Compare(a.ID[:], b.ID[:])
				})
				want = want[:min(limit, len(want))]
				if len(want) > 0 && rng.IntN(3) == 0 {
					// A claim whose events fail part-way claims nothing.
					failAt, calls := 1+rng.IntN(len(want)), 0
					_, err := s.ClaimTransitions(ctx, tr, now, limit, func(sa.Grant) ([]sa.Event, error) {
						if calls++; calls == failAt {
							return nil, errAbandon
						}
						return nil, nil
					})
					require.ErrorIs(t, err, errAbandon)
				}
				got, err := s.ClaimTransitions(ctx, tr, now, limit, nil)
				require.NoError(t, err)
				gotIDs, wantIDs := make([]uuid.UUID, len(got)), make([]uuid.UUID, len(want))
				for i := range got {
					gotIDs[i] = got[i].ID
					claimed[tr][got[i].ID] = true
				}
				for i := range want {
					wantIDs[i] = want[i].ID
				}
				require.Equal(t, wantIDs, gotIDs, "round %d step %d %v", round, step, tr)
			}
		}
	}
}
