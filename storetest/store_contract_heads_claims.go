package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Conformance cases of review 128 (sqlstore audit SQL, chain heads and
// claims), registered in contractCases.

// testContractEmptyPurgeLeavesZeroChain pins that a purge of a tenant
// without events (a retention job run over every tenant) leaves its
// AuditChain the zero state, as AuditChainReader documents for a tenant
// without events. Kills: sqlstore's AuditChain reporting the empty head
// row the purge's head lock created (seq 0, an empty non-nil hash) as the
// Head.
func testContractEmptyPurgeLeavesZeroChain(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	h.auditLog()
	p, ok := h.store.(sa.AuditPurger)
	if !ok {
		t.Skip("store does not implement AuditPurger")
	}
	cr, ok := h.store.(sa.AuditChainReader)
	if !ok {
		t.Skip("store does not implement AuditChainReader")
	}
	called := false
	res, err := p.PurgeAudit(h.ctx, "initech", h.clock.Now(), func(sa.AuditPurge) (sa.Event, error) {
		called = true
		return sa.Event{ID: uuid.New(), Time: h.clock.Now(), Type: sa.EventAuditPurged, TenantID: "initech", Actor: sa.SystemActor}, nil
	})
	require.NoError(t, err)
	require.False(t, called, "nothing to purge")
	require.Equal(t, sa.AuditPurge{}, res)
	st, err := cr.AuditChain(h.ctx, "initech")
	require.NoError(t, err)
	require.Equal(t, sa.AuditChainState{}, st, "a tenant without events has the zero state")
	require.Zero(t, h.verify("initech").Events)
}

// testContractRevokedGrantsDoNotCrowdOutClaims pins that revoked grants
// due before an unrevoked one never take the places of a small claim
// batch: ClaimTransitions(limit 1) still returns the unrevoked grant, for
// starts and for expiries. Kills: MySQL's candidate SELECT without
// "revoked_at IS NULL" (its 2×limit candidates all revoked, the claim
// returned nothing and the Sweep stopped with a transition due).
func testContractRevokedGrantsDoNotCrowdOutClaims(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	now := h.clock.Now()
	revoke := func(id uuid.UUID) {
		t.Helper()
		_, err := h.m.Revoke(h.ctx, id, Customer, "")
		require.NoError(t, err)
	}
	claim := func(tr sa.Transition, at time.Time, limit int) []uuid.UUID {
		t.Helper()
		gs, err := h.store.ClaimTransitions(h.ctx, tr, at, limit, nil)
		require.NoError(t, err)
		return grantIDs(gs)
	}
	// Starts: three revoked grants due a minute before the unrevoked one.
	for range 3 {
		revoke(h.grant(sa.GrantInput{StartsAt: now.Add(time.Minute), Duration: time.Hour}).ID)
	}
	u := h.grant(sa.GrantInput{StartsAt: now.Add(2 * time.Minute), Duration: 2 * time.Hour})
	// Expiries: three grants started (their starts claimed), then revoked,
	// due an hour before the unrevoked one.
	var started []uuid.UUID
	for range 3 {
		started = append(started, h.grant(sa.GrantInput{Duration: time.Hour}).ID)
	}
	require.ElementsMatch(t, started, claim(sa.TransitionStarted, now, 10))
	for _, id := range started {
		revoke(id)
	}
	require.Equal(t, []uuid.UUID{u.ID}, claim(sa.TransitionStarted, now.Add(3*time.Minute), 1), "start")
	require.Equal(t, []uuid.UUID{u.ID}, claim(sa.TransitionExpired, now.Add(3*time.Hour), 1), "expiry")
	require.Empty(t, claim(sa.TransitionExpired, now.Add(3*time.Hour), 10))
}
