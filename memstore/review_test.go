package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Review of the compact Check index: the index must agree with
// sa.GrantSelector also for the times the existing randomised test does
// not reach — the zero time, times before 1970, times beyond the index's
// microsecond range (±146 000 years, clamped and marked inexact; since the
// stores keep only years 1000 to 9999, asked about only as a now), instants
// a nanosecond off a window edge, and time.Time values in other locations
// — for empty, duplicate and host-defined scopes, empty and duplicate
// grantees and the empty principal, after every kind of UpdateGrant.
func TestReviewIndexMatchesSelectorAtExtremeTimes(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	loc := time.FixedZone("x", 5*3600+1800)
	anchors := []time.Time{
		{}, // zero
		time.Unix(0, 0).UTC(),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
		time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
		time.Date(-200_000, 1, 1, 0, 0, 0, 0, time.UTC), // below the index range
		time.Date(200_000, 1, 1, 0, 0, 0, 0, time.UTC),  // above the index range
		time.Date(146_000, 1, 1, 0, 0, 0, 0, time.UTC),  // near its edge
		time.Date(1000, 1, 1, 0, 0, 0, 2_000, time.UTC), // near the first and last times a store keeps
		time.Date(9999, 12, 31, 23, 59, 59, 999_997_000, time.UTC),
	}
	// keepable reports whether a store keeps t: the zero time, or one in
	// years 1000 to 9999 (the stores refuse others; the times beyond are
	// still asked about as a Check's now).
	keepable := func(t time.Time) bool {
		y := t.UTC().Year()
		return t.IsZero() || y >= 1000 && y <= 9999
	}
	instant := func() time.Time {
		a := anchors[rng.IntN(len(anchors))]
		switch rng.IntN(5) {
		case 0:
			a = a.Add(time.Duration(rng.IntN(5)-2) * time.Nanosecond)
		case 1:
			a = a.Add(time.Duration(rng.IntN(5)-2) * time.Microsecond)
		case 2:
			a = a.In(loc)
		}
		return a
	}
	// set is an instant for a time every grant has (CreatedAt, StartsAt):
	// never the zero time, which stores refuse there.
	set := func() time.Time {
		for {
			if t := instant(); !t.IsZero() && keepable(t) {
				return t
			}
		}
	}
	// end is an instant for an ExpiresAt: the zero time (none) included.
	end := func() time.Time {
		for {
			if t := instant(); keepable(t) {
				return t
			}
		}
	}
	principals := []string{"", "alice", "bob"}
	scopes := []sa.Scope{sa.ScopeRead, sa.ScopeWrite, "messages:read", ""}
	pickScopes := func() []sa.Scope {
		var out []sa.Scope
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []sa.Scope{}
		}
		for range rng.IntN(4) + 1 {
			out = append(out, scopes[rng.IntN(len(scopes))]) // duplicates allowed
		}
		return out
	}
	pickGrantees := func() []string {
		switch rng.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		var out []string
		for range rng.IntN(3) + 1 {
			out = append(out, principals[rng.IntN(len(principals))])
		}
		return out
	}
	for round := range 400 {
		s := memstore.New()
		tenant := fmt.Sprintf("t%d", round)
		var ids []uuid.UUID
		for range rng.IntN(6) + 1 {
			g := sa.Grant{ID: uuid.New(), TenantID: tenant, CreatedAt: set(), StartsAt: set(), Grantees: pickGrantees(), Scopes: pickScopes()}
			if rng.IntN(4) > 0 {
				g.ExpiresAt = end()
			}
			if rng.IntN(8) == 0 {
				g.RevokedAt = set()
			}
			require.NoError(t, s.CreateGrant(ctx, g, nil))
			ids = append(ids, g.ID)
		}
		for range rng.IntN(6) {
			_, err := s.UpdateGrant(ctx, ids[rng.IntN(len(ids))], func(g *sa.Grant) ([]sa.Event, error) {
				switch rng.IntN(6) {
				case 0:
					g.RevokedAt = set() // a revocation is never undone
				case 1:
					g.ExpiresAt = end()
				case 2:
					g.ExpiresAt = time.Time{}
				case 3:
					g.StartsAt = set()
				case 4:
					g.Grantees = pickGrantees()
				default:
					g.Scopes = pickScopes()
				}
				return nil, nil
			})
			require.NoError(t, err)
		}
		var grants []sa.Grant
		for _, id := range ids {
			g, err := s.GetGrant(ctx, id)
			require.NoError(t, err)
			grants = append(grants, g)
		}
		for range 60 {
			now, p, sc := instant(), principals[rng.IntN(len(principals))], scopes[rng.IntN(len(scopes))]
			sel := sa.GrantSelector{Principal: p, Scope: sc, Now: now}
			for i := range grants {
				sel.Offer(&grants[i])
			}
			want, wantErr := sel.Result()
			got, err := s.FindActiveGrant(ctx, tenant, p, sc, now)
			if wantErr != nil {
				require.True(t, errors.Is(err, wantErr), "round %d at %v for %q/%q: got %v (%v), want %v", round, now, p, sc, err, got.ID, wantErr)
				continue
			}
			require.NoError(t, err, "round %d at %v for %q/%q", round, now, p, sc)
			require.Equal(t, want.ID, got.ID, "round %d at %v for %q/%q", round, now, p, sc)
			require.Equal(t, sa.StatusActive, got.Status(now))
		}
	}
}

// Review of the index under concurrency (run with -race): checks racing
// revocations, extensions and grantee changes never return a grant that is
// revoked, or not covering the principal, at the time of the check; once
// all changes are done, every check denies; and a caller mutating the
// slices of a returned grant does not change the store.
func TestReviewIndexConcurrentUpdatesAndCallerMutation(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	const n = 50
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
		require.NoError(t, s.CreateGrant(ctx, sa.Grant{
			ID: ids[i], TenantID: "acme", CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour),
			Grantees: []string{"alice"}, Scopes: []sa.Scope{sa.ScopeWrite, "messages:read"},
		}, nil))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				g, err := s.FindActiveGrant(ctx, "acme", "alice", sa.Scope([]sa.Scope{sa.ScopeRead, sa.ScopeWrite, "messages:read"}[w%3]), now)
				if err != nil {
					continue
				}
				if !g.RevokedAt.IsZero() || !g.Covers("alice") || g.Status(now) != sa.StatusActive {
					t.Errorf("check returned %+v", g)
					return
				}
				// the caller scribbles over what it got
				for i := range g.Grantees {
					g.Grantees[i] = "mallory"
				}
				for i := range g.Scopes {
					g.Scopes[i] = "admin"
				}
			}
		}()
	}
	for i, id := range ids {
		_, err := s.UpdateGrant(ctx, id, func(g *sa.Grant) ([]sa.Event, error) {
			switch i % 3 {
			case 0:
				g.RevokedAt = now
			case 1:
				g.ExpiresAt = now // expires at the check's instant
			default:
				g.Grantees = []string{"bob"}
			}
			return nil, nil
		})
		require.NoError(t, err)
	}
	close(stop)
	wg.Wait()
	for _, sc := range []sa.Scope{sa.ScopeRead, sa.ScopeWrite, "messages:read"} {
		_, err := s.FindActiveGrant(ctx, "acme", "alice", sc, now)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, sc)
		_, err = s.FindActiveGrant(ctx, "acme", "mallory", sc, now)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, sc)
	}
	// bob's grants are intact despite the scribbling
	g, err := s.FindActiveGrant(ctx, "acme", "bob", "messages:read", now)
	require.NoError(t, err)
	require.Equal(t, []string{"bob"}, g.Grantees)
	require.Equal(t, []sa.Scope{sa.ScopeWrite, "messages:read"}, g.Scopes)
	_, err = s.FindActiveGrant(ctx, "acme", "bob", "admin", now)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
}

// TestForgedEventBelowChainStartDetected: an event slipped into the chain
// with Seq 0 (or below) is listed by Events and caught by VerifyAudit.
func TestForgedEventBelowChainStartDetected(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}, Duration: time.Hour})
	require.NoError(t, err)
	evs, err := s.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	for _, seq := range []int64{0, -3} {
		forged := evs[0]
		forged.ID, forged.Seq, forged.Reason = uuid.New(), seq, "forged"
		require.NoError(t, memstore.TamperInsert(s, forged))
		_, err = m.VerifyAudit(ctx, "acme")
		var brk *sa.ChainBreak
		require.ErrorAs(t, err, &brk)
		require.Equal(t, sa.BreakForged, brk.Kind)
		require.Equal(t, seq, brk.Seq, "the lowest forged event")
		require.NoError(t, memstore.TamperDelete(s, "acme", seq))
	}
	_, err = m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
}
