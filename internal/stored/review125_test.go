package stored

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// review125Actor is an actor as wide as every store keeps.
func review125Actor(kind sa.ActorKind) sa.Actor {
	return sa.Actor{Kind: kind, ID: strings.Repeat("i", MaxActorID), Name: strings.Repeat("é", MaxActorName)}
}

// TestReview125CheckNowBoundary pins CheckNow's bounds: MinTime itself is
// the earliest now accepted, the microsecond before it and the zero time
// (no now) are refused.
func TestReview125CheckNowBoundary(t *testing.T) {
	require.NoError(t, CheckNow(MinTime), "MinTime is the earliest now a store accepts")
	require.NoError(t, CheckNow(MinTime.In(time.FixedZone("X", -3600))), "the same instant in another zone")
	require.ErrorIs(t, CheckNow(MinTime.Add(-time.Microsecond)), sa.ErrInvalidInput)
	require.ErrorIs(t, CheckNow(time.Time{}), sa.ErrInvalidInput, "a zero now is refused, not answered as of year 1")
}

// TestReview125HookCountsAtMaxKept pins that a hook task's Done and
// Attempts of exactly MaxHookCount are kept (only above is refused).
func TestReview125HookCountsAtMaxKept(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, CheckHookTask(&sa.HookTask{Done: MaxHookCount, Attempts: MaxHookCount, NextAt: at}))
	require.NoError(t, CheckHookTask(&sa.HookTask{NextAt: MaxTime}), "NextAt at MaxTime")
	require.ErrorIs(t, CheckHookTask(&sa.HookTask{Done: MaxHookCount + 1, NextAt: at}), sa.ErrInvalidInput)
	require.ErrorIs(t, CheckHookTask(&sa.HookTask{Attempts: MaxHookCount + 1, NextAt: at}), sa.ErrInvalidInput)
}

// TestReview125GrantFieldWidths pins that every text field of a grant,
// the revocation's included, is refused one unit wider than a store keeps.
func TestReview125GrantFieldWidths(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fits := sa.Grant{ID: uuid.New(), TenantID: strings.Repeat("t", MaxTenantID), TicketRef: strings.Repeat("r", MaxTicketRef),
		Reason: strings.Repeat("x", MaxText), RevokeReason: strings.Repeat("x", MaxText),
		GrantedBy: review125Actor(sa.ActorCustomer), RevokedBy: review125Actor(sa.ActorCustomer),
		CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour), RevokedAt: now.Add(time.Minute)}
	require.NoError(t, CheckGrant(&fits))
	for name, spoil := range map[string]func(*sa.Grant){
		"TenantID":       func(g *sa.Grant) { g.TenantID += "t" },
		"TicketRef":      func(g *sa.Grant) { g.TicketRef += "r" },
		"Reason":         func(g *sa.Grant) { g.Reason += "x" },
		"RevokeReason":   func(g *sa.Grant) { g.RevokeReason += "x" },
		"GrantedBy.Kind": func(g *sa.Grant) { g.GrantedBy.Kind = sa.ActorKind(strings.Repeat("k", MaxActorKind+1)) },
		"GrantedBy.ID":   func(g *sa.Grant) { g.GrantedBy.ID += "i" },
		"GrantedBy.Name": func(g *sa.Grant) { g.GrantedBy.Name += "é" },
		"RevokedBy.Kind": func(g *sa.Grant) { g.RevokedBy.Kind = sa.ActorKind(strings.Repeat("k", MaxActorKind+1)) },
		"RevokedBy.ID":   func(g *sa.Grant) { g.RevokedBy.ID += "i" },
		"RevokedBy.Name": func(g *sa.Grant) { g.RevokedBy.Name += "é" },
	} {
		g := fits
		spoil(&g)
		require.ErrorIs(t, CheckGrant(&g), sa.ErrInvalidInput, name)
	}
}

// TestReview125RequestFieldWidths pins that every text field of a request,
// the decision's included, is refused one unit wider than a store keeps.
func TestReview125RequestFieldWidths(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fits := sa.AccessRequest{ID: uuid.New(), TenantID: strings.Repeat("t", MaxTenantID), TicketRef: strings.Repeat("r", MaxTicketRef),
		Reason: strings.Repeat("x", MaxText), DecisionReason: strings.Repeat("x", MaxText), Status: sa.RequestDenied,
		RequestedBy: review125Actor(sa.ActorSupport), DecidedBy: review125Actor(sa.ActorCustomer),
		CreatedAt: now, ExpiresAt: now.Add(time.Hour), DecidedAt: now.Add(time.Minute)}
	require.NoError(t, CheckRequest(&fits))
	for name, spoil := range map[string]func(*sa.AccessRequest){
		"TenantID":         func(r *sa.AccessRequest) { r.TenantID += "t" },
		"TicketRef":        func(r *sa.AccessRequest) { r.TicketRef += "r" },
		"Reason":           func(r *sa.AccessRequest) { r.Reason += "x" },
		"DecisionReason":   func(r *sa.AccessRequest) { r.DecisionReason += "x" },
		"RequestedBy.Kind": func(r *sa.AccessRequest) { r.RequestedBy.Kind = sa.ActorKind(strings.Repeat("k", MaxActorKind+1)) },
		"RequestedBy.ID":   func(r *sa.AccessRequest) { r.RequestedBy.ID += "i" },
		"RequestedBy.Name": func(r *sa.AccessRequest) { r.RequestedBy.Name += "é" },
		"DecidedBy.Kind":   func(r *sa.AccessRequest) { r.DecidedBy.Kind = sa.ActorKind(strings.Repeat("k", MaxActorKind+1)) },
		"DecidedBy.ID":     func(r *sa.AccessRequest) { r.DecidedBy.ID += "i" },
		"DecidedBy.Name":   func(r *sa.AccessRequest) { r.DecidedBy.Name += "é" },
	} {
		r := fits
		spoil(&r)
		require.ErrorIs(t, CheckRequest(&r), sa.ErrInvalidInput, name)
	}
}

// TestReview125EventChecks pins CheckEvent's refusals: no Time, a Time
// outside years 1000 to 9999 (a SQL store would keep a clamped time the
// hash does not cover), and each text field one unit wider than kept.
func TestReview125EventChecks(t *testing.T) {
	fits := sa.Event{ID: uuid.New(), Time: MinTime, Type: sa.EventType(strings.Repeat("y", MaxEventType)),
		TenantID: strings.Repeat("t", MaxTenantID), Reason: strings.Repeat("x", MaxText), Actor: review125Actor(sa.ActorSupport),
		Attrs: map[string]string{sa.AttrSessionID: strings.Repeat("s", MaxActorID)}}
	require.NoError(t, CheckEvent(&fits), "MinTime")
	last := fits
	last.Time = MaxTime
	require.NoError(t, CheckEvent(&last), "MaxTime")
	for name, spoil := range map[string]func(*sa.Event){
		"no Time":           func(e *sa.Event) { e.Time = time.Time{} },
		"before year 1000":  func(e *sa.Event) { e.Time = MinTime.Add(-time.Microsecond) },
		"after year 9999":   func(e *sa.Event) { e.Time = MaxTime.Add(time.Microsecond) },
		"far before":        func(e *sa.Event) { e.Time = time.Date(999, 6, 1, 0, 0, 0, 0, time.UTC) },
		"TenantID":          func(e *sa.Event) { e.TenantID += "t" },
		"Type":              func(e *sa.Event) { e.Type += "y" },
		"Reason":            func(e *sa.Event) { e.Reason += "x" },
		"Actor.Kind":        func(e *sa.Event) { e.Actor.Kind = sa.ActorKind(strings.Repeat("k", MaxActorKind+1)) },
		"Actor.ID":          func(e *sa.Event) { e.Actor.ID += "i" },
		"Actor.Name":        func(e *sa.Event) { e.Actor.Name += "é" },
		"Attrs[session_id]": func(e *sa.Event) { e.Attrs = map[string]string{sa.AttrSessionID: strings.Repeat("s", MaxActorID+1)} },
	} {
		e := fits
		spoil(&e)
		require.ErrorIs(t, CheckEvent(&e), sa.ErrInvalidInput, name)
	}
}
