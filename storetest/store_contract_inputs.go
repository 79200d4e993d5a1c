package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Review 119 (mutation testing of memstore): cases on what a store keeps
// of its callers' values, its claims' limits, a context that ends inside a
// change, and a claim whose events are refused. Each failed for a memstore
// mutant that the rest of the suite let pass.

// inputsGrant is contractGrant naming alice, with three scopes (more than
// memstore keeps inline).
func inputsGrant(tenant string) sa.Grant {
	g := contractGrant(tenant)
	g.Grantees = []string{"alice"}
	g.Scopes = []sa.Scope{sa.ScopeRead, "messages:read", "billing:read"}
	return g
}

// inputsRequest is contractRequest with two scopes.
func inputsRequest(tenant string) sa.AccessRequest {
	r := contractRequest(tenant)
	r.Scopes = []sa.Scope{sa.ScopeRead, "messages:read"}
	return r
}

// testContractStoreKeepsCopiesOfItsInputs: a caller that reuses the slices
// of a grant or request after handing it to the store changes nothing
// stored — in particular not whom a grant covers or what it allows. Kills:
// memstore's CreateGrant keeping the caller's Grantees, or its Scopes when
// they do not fit inline; CreateRequest keeping the caller's Scopes.
func testContractStoreKeepsCopiesOfItsInputs(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	g := inputsGrant("acme")
	want := g.Clone()
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	g.Grantees[0] = "mallory"
	g.Scopes[1] = "admin"

	got, err := s.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, want.Grantees, got.Grantees)
	require.Equal(t, want.Scopes, got.Scopes)
	_, err = s.FindActiveGrant(ctx, "acme", "mallory", sa.ScopeRead, contractNow)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the caller's later write must not name mallory")
	_, err = s.FindActiveGrant(ctx, "acme", "alice", "admin", contractNow)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	c, err := s.FindActiveGrant(ctx, "acme", "alice", "messages:read", contractNow)
	require.NoError(t, err)
	require.Equal(t, g.ID, c.ID)

	rs, ok := s.(sa.RequestStore)
	if !ok {
		return
	}
	r := inputsRequest("acme")
	wantR := r.Clone()
	require.NoError(t, rs.CreateRequest(ctx, r, nil))
	r.Scopes[0] = sa.ScopeWrite
	gotR, err := rs.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, wantR.Scopes, gotR.Scopes)
}

// testContractWriteResultsAreCopies: the grant UpdateGrant returns and the
// requests UpdateRequest and ApproveRequest return are the caller's own.
// Kills: memstore's UpdateGrant returning the stored grant; its
// changeRequest storing the request it returns.
func testContractWriteResultsAreCopies(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	g := inputsGrant("acme")
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	upd, err := s.UpdateGrant(ctx, g.ID, func(g *sa.Grant) ([]sa.Event, error) {
		g.ExpiresAt = g.ExpiresAt.Add(time.Hour)
		return nil, nil
	})
	require.NoError(t, err)
	upd.Grantees[0] = "mallory"
	upd.Scopes[0] = sa.ScopeWrite
	got, err := s.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"alice"}, got.Grantees)
	require.Equal(t, g.Scopes, got.Scopes)
	_, err = s.FindActiveGrant(ctx, "acme", "mallory", sa.ScopeRead, contractNow)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)

	rs, ok := s.(sa.RequestStore)
	if !ok {
		return
	}
	for _, approve := range []bool{false, true} {
		r := inputsRequest("acme")
		require.NoError(t, rs.CreateRequest(ctx, r, nil))
		var ret sa.AccessRequest
		if approve {
			ret, _, err = rs.ApproveRequest(ctx, r.ID, func(r *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
				r.Status = sa.RequestApproved
				return inputsGrant("acme"), nil, nil
			})
		} else {
			ret, err = rs.UpdateRequest(ctx, r.ID, func(r *sa.AccessRequest) ([]sa.Event, error) {
				r.Reason = "more detail"
				return nil, nil
			})
		}
		require.NoError(t, err)
		ret.Scopes[0] = sa.ScopeWrite
		got, err := rs.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, r.Scopes, got.Scopes, "approve=%v", approve)
	}
}

// testContractClaimLimitZeroRefused: a claim of no items is a caller's
// mistake (a batch size computed as 0 would otherwise sweep nothing, ever,
// without a word): every claim method refuses a limit of 0 or less with
// ErrInvalidInput. Kills: memstore's limit checks weakened to limit < 0.
func testContractClaimLimitZeroRefused(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	now := contractNow.Add(2 * time.Hour)
	lease := sa.Lease{Token: "a", Until: now.Add(time.Minute)}
	hs, hooks := s.(sa.HookStore)
	rs, requests := s.(sa.RequestStore)
	for _, limit := range []int{0, -1} {
		_, err := s.ClaimTransitions(ctx, sa.TransitionStarted, now, limit, nil)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "ClaimTransitions %d", limit)
		if hooks {
			_, err = hs.ClaimExpirations(ctx, now, limit, lease, nil)
			require.ErrorIs(t, err, sa.ErrInvalidInput, "ClaimExpirations %d", limit)
			_, err = hs.ClaimHookTasks(ctx, now, limit, lease)
			require.ErrorIs(t, err, sa.ErrInvalidInput, "ClaimHookTasks %d", limit)
		}
		if requests {
			_, err = rs.ClaimExpiredRequests(ctx, now, limit, nil)
			require.ErrorIs(t, err, sa.ErrInvalidInput, "ClaimExpiredRequests %d", limit)
		}
	}
}

// testContractCanceledDuringChangeWritesNothing: a context cancelled while
// change runs (a SQL store's transaction is rolled back then) writes
// nothing — not the grant's change, not the request's, not the approved
// grant, not the events — and the call returns the context's error.
// Kills: memstore's context checks before the write in UpdateGrant and
// changeRequest.
func testContractCanceledDuringChangeWritesNothing(t *testing.T, ns NewStore) {
	s := ns(t)
	bg := context.Background()
	g := inputsGrant("acme")
	require.NoError(t, s.CreateGrant(bg, g, nil))
	want, err := s.GetGrant(bg, g.ID)
	require.NoError(t, err)
	ev := func() []sa.Event { return []sa.Event{contractEvent("acme", contractNow)} }

	ctx, cancel := context.WithCancel(bg)
	_, err = s.UpdateGrant(ctx, g.ID, func(g *sa.Grant) ([]sa.Event, error) {
		g.RevokedAt = contractNow
		cancel()
		return ev(), nil
	})
	require.ErrorIs(t, err, context.Canceled)
	got, err := s.GetGrant(bg, g.ID)
	require.NoError(t, err)
	require.Equal(t, want, got, "the revocation is not stored")

	if rs, ok := s.(sa.RequestStore); ok {
		r := inputsRequest("acme")
		require.NoError(t, rs.CreateRequest(bg, r, nil))
		wantR, err := rs.GetRequest(bg, r.ID)
		require.NoError(t, err)
		ctx, cancel = context.WithCancel(bg)
		_, err = rs.UpdateRequest(ctx, r.ID, func(r *sa.AccessRequest) ([]sa.Event, error) {
			r.Status = sa.RequestDenied
			cancel()
			return ev(), nil
		})
		require.ErrorIs(t, err, context.Canceled)
		ctx, cancel = context.WithCancel(bg)
		approved := inputsGrant("acme")
		_, _, err = rs.ApproveRequest(ctx, r.ID, func(r *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
			r.Status = sa.RequestApproved
			cancel()
			return approved, ev(), nil
		})
		require.ErrorIs(t, err, context.Canceled)
		gotR, err := rs.GetRequest(bg, r.ID)
		require.NoError(t, err)
		require.Equal(t, wantR, gotR, "the request is still pending")
		_, err = s.GetGrant(bg, approved.ID)
		require.ErrorIs(t, err, sa.ErrNotFound, "the approved grant is not created")
	}

	if evs, ok := contractEvents(t, s, "acme"); ok {
		require.Empty(t, evs)
	}
}

// testContractClaimWithRefusedEventsClaimsNothing: when the events a
// claim's events function returns are refused (here an event without a
// Time), the claim is abandoned like one whose events function failed:
// an error wrapping ErrInvalidInput, and the transitions stay due. Kills:
// memstore's claimLocked committing the claim before checking the events.
func testContractClaimWithRefusedEventsClaimsNothing(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	g := inputsGrant("acme")
	require.NoError(t, s.CreateGrant(ctx, g, nil))
	bad := func(g sa.Grant) ([]sa.Event, error) {
		e := contractEvent(g.TenantID, contractNow)
		e.ID, e.Time = uuid.New(), time.Time{}
		return []sa.Event{e}, nil
	}
	for _, tr := range []sa.Transition{sa.TransitionStarted, sa.TransitionExpired} {
		_, err := s.ClaimTransitions(ctx, tr, g.ExpiresAt, 10, bad)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%v", tr)
		got, err := s.ClaimTransitions(ctx, tr, g.ExpiresAt, 10, nil)
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{g.ID}, grantIDs(got), "%v stays due", tr)
	}
	_, err := s.UpdateGrant(ctx, g.ID, func(*sa.Grant) ([]sa.Event, error) { return nil, nil })
	require.ErrorIs(t, err, sa.ErrInvalidInput, "the expiry is recorded now")
}
