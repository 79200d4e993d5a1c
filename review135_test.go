package supportaccess_test

import (
	"context"
	"math"
	"sync"
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

// Review 135: the Manager's grant lifecycle API misused by a host
// developer or attacked with extreme values (times at the edges of the
// representable range, overflowing durations, hostile scopes and
// principals, support acting on others' grants, lying stores, Close
// racing the background work).

// r135End is the last instant a grant may hold (the end of year 9999).
var r135End = time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)

// r135Allow is an Authorizer that allows everything: the built-in rules
// must hold whatever the host's Authorizer says.
func r135Allow(context.Context, sa.Action, sa.Actor, string) error { return nil }

// refusals returns the action.refused events of action.
func (e *env) r135Refusals(action sa.Action) []sa.Event {
	e.t.Helper()
	var out []sa.Event
	for _, ev := range e.events(sa.EventActionRefused) {
		if ev.Attrs[sa.AttrAction] == string(action) {
			out = append(out, ev)
		}
	}
	return out
}

// TestReview135ExtendWindowBounds attacks "the remaining window (from now,
// or from StartsAt for a scheduled grant) may not exceed
// Policy.MaxDuration" (Manager.Extend): an end one microsecond beyond the
// maximum, counted from now for an active grant and from StartsAt for a
// scheduled one, is refused and changes nothing; an end exactly at the
// maximum is accepted. An end at StartsAt, at now or in the past is
// refused too.
func TestReview135ExtendWindowBounds(t *testing.T) {
	e := newEnv(t)
	max := sa.DefaultPolicy().MaxDuration

	// Active grant, an hour into its window: the maximum counts from now,
	// not from StartsAt nor from CreatedAt.
	active := e.grant(sa.GrantInput{Duration: time.Hour * 2})
	e.clock.Advance(time.Hour)
	now := e.m.Now()
	before := e.snapshot()
	for _, end := range []time.Time{
		now.Add(max + time.Microsecond),
		now,                        // not after now
		now.Add(-time.Microsecond), // the past
		active.StartsAt,            // not after StartsAt
		r135End.Add(time.Microsecond),
	} {
		_, err := e.m.Extend(ctx, active.ID, end, customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "end %s", end)
	}
	require.Equal(t, before, e.snapshot(), "refused extensions change nothing")
	g, err := e.m.Extend(ctx, active.ID, now.Add(max), customer)
	require.NoError(t, err)
	require.Equal(t, now.Add(max), g.ExpiresAt)

	// Scheduled grant starting in ten days: the maximum counts from its
	// start, so an end max after now (well within max of now) is fine,
	// and one max+1µs after StartsAt is not.
	starts := now.Add(10 * sa.Day)
	sched := e.grant(sa.GrantInput{StartsAt: starts, Duration: time.Hour})
	before = e.snapshot()
	for _, end := range []time.Time{
		starts.Add(max + time.Microsecond),
		starts,                           // a window of nothing
		starts.Add(-time.Microsecond),    // ends before it starts (but after now)
		now.Add(time.Hour),               // after now, before StartsAt
		time.Time{}.Add(time.Nanosecond), // year 1, not the zero time
	} {
		_, err := e.m.Extend(ctx, sched.ID, end, customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "end %s", end)
	}
	require.Equal(t, before, e.snapshot(), "refused extensions change nothing")
	g, err = e.m.Extend(ctx, sched.ID, starts.Add(max), customer)
	require.NoError(t, err)
	require.Equal(t, starts.Add(max), g.ExpiresAt)
	require.Equal(t, sa.StatusScheduled, g.Status(e.m.Now()), "still scheduled: Extend does not move the start")
	require.Equal(t, starts, g.StartsAt)
}

// TestReview135ExtendTruncatesNeverLengthens attacks "Times are UTC,
// truncated to microseconds" with a new end that has a nanosecond part
// and a non-UTC location: 999 ns past the maximum is truncated to the
// maximum (the grant ends early, not late), stored in UTC, and an Extend
// to the same instant in another zone is the documented no-op.
func TestReview135ExtendTruncatesNeverLengthens(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	now := e.m.Now()
	max := sa.DefaultPolicy().MaxDuration
	tokyo := time.FixedZone("JST", 9*3600)
	end := now.Add(max).Add(999 * time.Nanosecond).In(tokyo)
	x, err := e.m.Extend(ctx, g.ID, end, customer)
	require.NoError(t, err)
	require.Equal(t, now.Add(max), x.ExpiresAt)
	require.Equal(t, time.UTC, x.ExpiresAt.Location())
	stored, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, now.Add(max), stored.ExpiresAt)
	n := len(e.events(sa.EventGrantExtended))
	require.Equal(t, 1, n)

	// The same instant in yet another zone: a retry, nothing recorded.
	y, err := e.m.Extend(ctx, g.ID, now.Add(max).In(time.FixedZone("X", -11*3600)), customer)
	require.NoError(t, err)
	require.Equal(t, x.ExpiresAt, y.ExpiresAt)
	require.Len(t, e.events(sa.EventGrantExtended), n, "no-op extend records nothing")

	// One microsecond past, whatever the zone: refused.
	_, err = e.m.Extend(ctx, g.ID, now.Add(max+time.Microsecond).In(tokyo), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// TestReview135UnlimitedRefusedOnEveryPath attacks "unlimited only when
// the policy allows it" through every way a grant can get or keep no end:
// Grant with Unlimited, Extend to the zero time (also the zero time in
// another location), Extend of a grant to the end it already has when
// that end is none, and Approve of an unlimited request that a
// permissive replica recorded. Each is refused with ErrForbidden,
// audited as action.refused, and writes nothing else.
func TestReview135UnlimitedRefusedOnEveryPath(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	permissive := sa.DefaultPolicy()
	permissive.AllowUnlimited = true
	loose, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithPolicy(permissive))
	require.NoError(t, err)
	strict, err := sa.NewManager(st, sa.WithNow(clock.Now))
	require.NoError(t, err)
	e := &env{t: t, store: st, clock: clock, m: strict}

	// An unlimited grant and request the permissive replica made.
	open, err := loose.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Unlimited})
	require.NoError(t, err)
	require.True(t, open.Unlimited())
	req, err := loose.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: sa.Unlimited})
	require.NoError(t, err)
	require.Equal(t, sa.Unlimited, req.Duration)
	finite, err := strict.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)

	before := e.snapshotWithout(sa.EventActionRefused)
	_, err = strict.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Unlimited})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = strict.Extend(ctx, finite.ID, time.Time{}, customer)
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = strict.Extend(ctx, finite.ID, time.Time{}.In(time.FixedZone("X", 3600)), customer)
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = strict.Extend(ctx, open.ID, time.Time{}, customer)
	require.ErrorIs(t, err, sa.ErrForbidden, "keeping no end is judged by the policy too")
	_, err = strict.Approve(ctx, req.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = strict.Approve(ctx, req.ID, customer, sa.ApproveInput{Duration: sa.Unlimited})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = strict.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: sa.Unlimited})
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused), "refusals change nothing")
	for _, a := range []sa.Action{sa.ActionGrant, sa.ActionExtend, sa.ActionApprove, sa.ActionRequest} {
		require.NotEmpty(t, e.r135Refusals(a), "refused %s is audited", a)
	}
	for _, ev := range e.r135Refusals(sa.ActionExtend) {
		require.Equal(t, "acme", ev.TenantID)
	}

	// Approving the unlimited request with a finite duration is a
	// narrowing the strict policy accepts.
	g, err := strict.Approve(ctx, req.ID, customer, sa.ApproveInput{Duration: sa.Day})
	require.NoError(t, err)
	require.False(t, g.Unlimited())
	require.Equal(t, g.StartsAt.Add(sa.Day), g.ExpiresAt)

	// Even where unlimited grants are allowed, an approver cannot widen a
	// finite request to no end, and delegating a grant leaves its end.
	finiteReq, err := loose.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: sa.Day})
	require.NoError(t, err)
	_, err = loose.Approve(ctx, finiteReq.ID, customer, sa.ApproveInput{Duration: sa.Unlimited})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = loose.Approve(ctx, finiteReq.ID, customer, sa.ApproveInput{Duration: sa.Day + time.Microsecond})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	d, err := loose.AddGrantee(ctx, g.ID, engineer.ID, support)
	require.NoError(t, err)
	require.Equal(t, g.ExpiresAt, d.ExpiresAt)
	require.Equal(t, []string{engineer.ID, support.ID}, d.Grantees)
}

// TestReview135DurationExtremes attacks Policy.duration with durations
// that overflow or underflow: negative ones (math.MinInt64 included),
// sub-microsecond ones, one nanosecond below Unlimited and one above the
// maximum. Every one is ErrInvalidInput and writes nothing; the maximum
// itself is accepted, and a nanosecond part is dropped (the grant ends
// early).
func TestReview135DurationExtremes(t *testing.T) {
	e := newEnv(t)
	max := sa.DefaultPolicy().MaxDuration
	before := e.snapshot()
	for _, d := range []time.Duration{-1, math.MinInt64, -sa.Day, 1, 999, math.MaxInt64 - 1, max + 1, max + time.Microsecond} {
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: d})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "duration %d", int64(d))
		_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: d})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "request duration %d", int64(d))
	}
	require.Equal(t, before, e.snapshot())

	g := e.grant(sa.GrantInput{Duration: max})
	require.Equal(t, g.StartsAt.Add(max), g.ExpiresAt)
	g = e.grant(sa.GrantInput{Duration: time.Microsecond + 999})
	require.Equal(t, g.StartsAt.Add(time.Microsecond), g.ExpiresAt, "the nanosecond part is dropped")

	// A grant of one microsecond is active at its start only.
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
}

// TestReview135PolicyExtremes attacks Policy.Validate with values at the
// edges of time.Duration: a default or preset of Unlimited without
// AllowUnlimited, zero and negative presets, a negative default. A huge
// (but finite) maximum is valid: a grant that long from now ends in
// year 2318, and Extend's window arithmetic does not overflow (an end at
// the end of year 9999 is within the maximum, an end beyond it refused
// as a time no store keeps).
func TestReview135PolicyExtremes(t *testing.T) {
	for name, p := range map[string]sa.Policy{
		"default unlimited":     {DefaultDuration: sa.Unlimited, MaxDuration: sa.Unlimited},
		"preset unlimited":      {DefaultDuration: sa.Day, MaxDuration: sa.Day, Presets: []sa.Preset{{"1d", sa.Day}, {"forever", sa.Unlimited}}},
		"preset zero":           {DefaultDuration: sa.Day, MaxDuration: sa.Day, Presets: []sa.Preset{{"1d", sa.Day}, {"none", 0}}},
		"preset negative":       {DefaultDuration: sa.Day, MaxDuration: sa.Day, Presets: []sa.Preset{{"1d", sa.Day}, {"neg", -sa.Day}}},
		"preset sub-µs":         {DefaultDuration: sa.Day, MaxDuration: sa.Day, Presets: []sa.Preset{{"1d", sa.Day}, {"ns", 1}}},
		"default negative":      {DefaultDuration: -1, MaxDuration: sa.Day},
		"max negative":          {DefaultDuration: sa.Day, MaxDuration: math.MinInt64},
		"schedule negative":     {DefaultDuration: sa.Day, MaxDuration: sa.Day, MaxScheduleAhead: -1},
		"ttl sub-µs":            {DefaultDuration: sa.Day, MaxDuration: sa.Day, RequestTTL: 1},
		"default scopes Write":  {DefaultDuration: sa.Day, MaxDuration: sa.Day, DefaultScopes: []sa.Scope{"Write"}},
		"default scopes empty":  {DefaultDuration: sa.Day, MaxDuration: sa.Day, DefaultScopes: []sa.Scope{""}},
		"default not a preset":  {DefaultDuration: sa.Day, MaxDuration: 2 * sa.Day, Presets: []sa.Preset{{"2d", 2 * sa.Day}}},
		"unlabelled preset":     {DefaultDuration: sa.Day, MaxDuration: sa.Day, Presets: []sa.Preset{{"", sa.Day}}},
		"default above maximum": {DefaultDuration: 2 * sa.Day, MaxDuration: sa.Day},
	} {
		_, err := sa.NewManager(memstore.New(), sa.WithPolicy(p))
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
	}

	huge := sa.Policy{DefaultDuration: sa.Day, MaxDuration: math.MaxInt64 - 1}
	e := newEnv(t, sa.WithPolicy(huge))
	g := e.grant(sa.GrantInput{Duration: math.MaxInt64 - 1})
	require.False(t, g.Unlimited(), "one below Unlimited is a finite grant")
	require.Equal(t, g.StartsAt.Add(math.MaxInt64-1).Truncate(time.Microsecond), g.ExpiresAt)
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Unlimited})
	require.ErrorIs(t, err, sa.ErrForbidden, "MaxDuration of 292 years does not allow Unlimited")
	_, err = e.m.Extend(ctx, g.ID, r135End.Add(time.Microsecond), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.Extend(ctx, g.ID, r135End, customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "8000 years exceed a maximum of 292 (Sub saturates, it does not wrap)")
	x, err := e.m.Extend(ctx, g.ID, g.StartsAt.Add(math.MaxInt64-1), customer)
	require.NoError(t, err)
	require.Equal(t, g.ExpiresAt, x.ExpiresAt)
}

// TestReview135ClockNearEndOfTime attacks "Neither [StartsAt] nor the end
// it gives may lie after the end of year 9999" with a clock at the last
// microsecond of year 9999 and beyond: a finite grant would end after it
// and is refused; with the clock past year 9999 nothing is stored either
// (the grant's start, now, is a time no store keeps), and Check denies.
func TestReview135ClockNearEndOfTime(t *testing.T) {
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	e := newEnv(t, sa.WithPolicy(p))
	e.clock.Set(r135End)
	before := e.snapshot()
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Microsecond})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Equal(t, before, e.snapshot())

	// At the last microsecond an unlimited grant can start, and is active.
	g := e.grant(sa.GrantInput{Duration: sa.Unlimited})
	require.Equal(t, r135End, g.StartsAt)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	_, err = e.m.Revoke(ctx, g.ID, customer, "")
	require.NoError(t, err)

	// Past year 9999.
	e.clock.Set(r135End.Add(time.Hour))
	before = e.snapshot()
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Unlimited})
	require.Error(t, err, "a grant starting after year 9999 is not stored")
	require.Equal(t, before, e.snapshot())
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.Error(t, err)
}

// TestReview135BrokenClocks attacks the Manager with a host clock that is
// the zero time, before year 1000, or in another zone with a monotonic
// reading. A zero or ancient clock must not create a grant (whose
// CreatedAt/StartsAt would read as "none") nor admit anyone; a zoned,
// monotonic clock gives UTC microsecond times that compare equal with
// ==.
func TestReview135BrokenClocks(t *testing.T) {
	for name, at := range map[string]time.Time{
		"zero":     {},
		"year 1":   time.Time{}.Add(time.Microsecond),
		"year 999": time.Date(999, 12, 31, 23, 59, 59, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			p := sa.DefaultPolicy()
			p.AllowUnlimited = true
			e := newEnv(t, sa.WithPolicy(p))
			good := e.grant(sa.GrantInput{Duration: sa.Unlimited})
			before := e.snapshot()
			good0 := e.clock.Now()
			e.clock.Set(at)
			for _, d := range []time.Duration{0, sa.Unlimited} {
				_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: customer, Duration: d})
				require.Error(t, err, "a grant at %s", at)
			}
			_, err := e.m.Check(ctx, "globex", support.ID, sa.ScopeRead)
			require.Error(t, err)
			// The good grant's window (from 2026) has not begun by this
			// clock: no access.
			_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
			require.Error(t, err)
			_, err = e.m.Extend(ctx, good.ID, time.Time{}.Add(time.Hour), customer)
			require.Error(t, err)
			e.clock.Set(good0) // the snapshot's store query needs a sane now
			require.Equal(t, before, e.snapshot(), "a broken clock writes nothing")
		})
	}

	t.Run("zoned monotonic", func(t *testing.T) {
		zone := time.FixedZone("X", -(3*3600 + 1800))
		base := time.Now() // carries a monotonic reading
		st := memstore.New()
		m, err := sa.NewManager(st, sa.WithNow(func() time.Time { return base.In(zone) }))
		require.NoError(t, err)
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: base.Add(time.Minute + 123)})
		require.NoError(t, err)
		for _, x := range []time.Time{g.CreatedAt, g.StartsAt, g.ExpiresAt} {
			require.Equal(t, time.UTC, x.Location())
			require.Zero(t, x.Nanosecond()%1000)
			require.True(t, x == x.Round(0), "no monotonic reading")
		}
		require.True(t, g.CreatedAt == m.Now())
		stored, err := m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, stored)
	})
}

// TestReview135ClockBackwards attacks the window with a clock that steps
// back between calls (an NTP correction): a grant created at T is
// scheduled, not active, at T-1h (fail closed), can still be revoked
// there, and stays revoked when the clock comes back.
func TestReview135ClockBackwards(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Advance(-time.Hour)
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "before its start by this clock")
	r, err := e.m.Revoke(ctx, g.ID, customer, "clock went back")
	require.NoError(t, err)
	require.Equal(t, sa.StatusRevoked, r.Status(e.m.Now()))
	e.clock.Advance(90 * time.Minute)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	_, err = e.m.Extend(ctx, g.ID, e.m.Now().Add(time.Hour), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a revoked grant is not extended")
}

// TestReview135StartsAtEdges attacks GrantInput.StartsAt: "It may not be
// in the past by more than a second (a StartsAt up to a second in the
// past is now)", the MaxScheduleAhead limit to the microsecond, and
// StartsAt at year 1 and with a nanosecond part.
func TestReview135StartsAtEdges(t *testing.T) {
	p := sa.DefaultPolicy()
	p.MaxScheduleAhead = sa.Day
	e := newEnv(t, sa.WithPolicy(p))
	now := e.m.Now()
	before := e.snapshot()
	for _, s := range []time.Time{
		now.Add(-time.Second - time.Microsecond),
		time.Time{}.Add(time.Nanosecond),
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
		now.Add(sa.Day + time.Microsecond),
		r135End,
	} {
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: s})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "StartsAt %s", s)
	}
	require.Equal(t, before, e.snapshot())

	g := e.grant(sa.GrantInput{StartsAt: now.Add(-time.Second)})
	require.Equal(t, now, g.StartsAt, "up to a second in the past is now")
	require.Equal(t, now.Add(sa.DefaultPolicy().DefaultDuration), g.ExpiresAt, "the window counts from now")
	g = e.grant(sa.GrantInput{StartsAt: now.Add(sa.Day + 999).In(time.FixedZone("X", 7200))})
	require.Equal(t, now.Add(sa.Day), g.StartsAt, "nanoseconds are dropped, then the limit applies")
}

// TestReview135HostileScopes attacks scope handling: other spellings of
// the built-ins, blanks, look-alikes, too many, duplicates, and host
// scopes named like built-ins ("write:all", "read/") — none may be taken
// for read or write.
func TestReview135HostileScopes(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	many := make([]sa.Scope, sa.MaxScopes+1)
	for i := range many {
		many[i] = sa.Scope("s" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	for _, scopes := range [][]sa.Scope{
		{"Read"}, {"WRITE"}, {"wrIte"}, {"read "}, {" write"}, {""}, {"re ad"},
		{"rеad"}, // Cyrillic е
		{"write\x00"}, {"read", "Write"}, many,
	} {
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Scopes: scopes})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "scopes %q", scopes)
	}
	require.Equal(t, before, e.snapshot())

	dup := make([]sa.Scope, sa.MaxScopes)
	for i := range dup {
		dup[i] = sa.ScopeWrite
	}
	g := e.grant(sa.GrantInput{TenantID: "dup", Scopes: dup})
	require.Equal(t, []sa.Scope{sa.ScopeWrite}, g.Scopes)

	g = e.grant(sa.GrantInput{TenantID: "lookalike", Scopes: []sa.Scope{"write:all", "read/", "writes"}})
	for _, s := range []sa.Scope{sa.ScopeRead, sa.ScopeWrite} {
		_, err := e.m.Check(ctx, "lookalike", support.ID, s)
		require.ErrorIs(t, err, sa.ErrScopeNotGranted, "%s from host scopes", s)
	}
	_, err := e.m.Check(ctx, "lookalike", support.ID, "write:all")
	require.NoError(t, err)
	for _, s := range []sa.Scope{"Write", "READ", "", "write:*", "write:al"} {
		_, err := e.m.Check(ctx, "lookalike", support.ID, s)
		require.Error(t, err, "scope %q", s)
	}
	require.Equal(t, []sa.Scope{"read/", "write:all", "writes"}, g.Scopes)

	// Nor does write imply a host scope, on a grant of read and write.
	rw := e.grant(sa.GrantInput{TenantID: "rw", Scopes: []sa.Scope{sa.ScopeWrite, sa.ScopeRead}})
	for _, s := range []sa.Scope{"messages:read", "write:all", "read/"} {
		_, err := e.m.Check(ctx, "rw", support.ID, s)
		require.ErrorIs(t, err, sa.ErrScopeNotGranted, "%s from write", s)
		require.False(t, rw.Allows(s), "%s from write", s)
	}
	require.True(t, g.Allows("write:all"))
	require.False(t, g.Allows(sa.ScopeWrite))
}

// TestReview135PrincipalsCompareBytes attacks "Tenant and principal IDs
// compare byte for byte": principals that are a prefix, a suffix, a
// case variant or a superstring of a grantee, and tenants likewise, are
// denied; duplicated grantees collapse to one; an empty principal is
// malformed even when an open grant exists.
func TestReview135PrincipalsCompareBytes(t *testing.T) {
	e := newEnv(t)
	bob := "bob@vendor.example"
	g := e.grant(sa.GrantInput{Grantees: []string{bob, bob, bob}})
	require.Equal(t, []string{bob}, g.Grantees)
	for _, p := range []string{"bob@vendor.exampl", "ob@vendor.example", "bob@vendor.example.evil", "xbob@vendor.example",
		"BOB@vendor.example", "bob@vendor.example ", "bob@vendor.example\u200b", "bob@vendor.examplе"} {
		_, err := e.m.Check(ctx, "acme", p, sa.ScopeRead)
		require.Error(t, err, "principal %q", p)
	}
	for _, tenant := range []string{"acm", "acme2", "ACME", "acme\u00a0", "xacme"} {
		_, err := e.m.Check(ctx, tenant, bob, sa.ScopeRead)
		require.Error(t, err, "tenant %q", tenant)
	}
	_, err := e.m.Check(ctx, "acme", bob, sa.ScopeRead)
	require.NoError(t, err)

	e.grant(sa.GrantInput{TenantID: "open"})
	_, err = e.m.Check(ctx, "open", "", sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "an empty principal is not 'any support principal'")
	_, err = e.m.Check(ctx, "", bob, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// TestReview135SupportCannotTouchOthersGrants attacks "Support never lets
// itself in" with an Authorizer that allows everything: support cannot
// grant, cannot extend (not even its own grant), and revokes only a grant
// that covers it — not a colleague's named grant, not another tenant's
// named grant; RevokeTenant by support leaves the grants that do not
// name it. Every refusal is audited and changes nothing.
func TestReview135SupportCannotTouchOthersGrants(t *testing.T) {
	e := newEnv(t, sa.WithAuthorizer(r135Allow))
	mine := e.grant(sa.GrantInput{Grantees: []string{support.ID}})
	colleague := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
	other := e.grant(sa.GrantInput{TenantID: "globex", Grantees: []string{engineer.ID}})
	before := e.snapshotWithout(sa.EventActionRefused)

	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support, Grantees: []string{support.ID}})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Extend(ctx, mine.ID, e.m.Now().Add(sa.Day), support)
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Extend(ctx, mine.ID, time.Time{}, support)
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Revoke(ctx, colleague.ID, support, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Revoke(ctx, other.ID, support, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	// A support actor whose ID is a prefix of the grantee's.
	_, err = e.m.Revoke(ctx, colleague.ID, sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.exampl"}, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused))
	require.Len(t, e.r135Refusals(sa.ActionGrant), 1)
	require.Len(t, e.r135Refusals(sa.ActionExtend), 2)
	require.Len(t, e.r135Refusals(sa.ActionRevoke), 3)

	revoked, err := e.m.RevokeTenant(ctx, "acme", support, "done")
	require.NoError(t, err)
	require.Len(t, revoked, 1)
	require.Equal(t, mine.ID, revoked[0].ID)
	for _, id := range []uuid.UUID{colleague.ID, other.ID} {
		g, err := e.m.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, sa.StatusActive, g.Status(e.m.Now()))
	}
	revoked, err = e.m.RevokeTenant(ctx, "globex", support, "")
	require.NoError(t, err)
	require.Empty(t, revoked)

	// The system actor may not extend by default.
	d := newEnv(t)
	g := d.grant(sa.GrantInput{})
	_, err = d.m.Extend(ctx, g.ID, d.m.Now().Add(sa.Day), system)
	require.ErrorIs(t, err, sa.ErrForbidden)
}

// TestReview135LyingStoreNearMisses attacks "The Manager re-checks the
// grants a store returns to Check" with near misses the existing tests do
// not cover: a grant whose grantee is a prefix of the principal, a grant
// of a tenant that differs by case, a grant that expires at exactly now,
// one that starts one microsecond after now, and a grant revoked in the
// future (revocation wins whatever the time).
func TestReview135LyingStoreNearMisses(t *testing.T) {
	st := memstore.New()
	now := time.Date(2030, 5, 6, 7, 8, 9, 10_000, time.UTC)
	ls := &lyingStore{Store: st}
	m, err := sa.NewManager(ls, sa.WithNow(func() time.Time { return now }))
	require.NoError(t, err)
	base := sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeWrite},
		CreatedAt: now.Add(-time.Hour), StartsAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)}
	ls.answer = base
	_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err, "the honest answer is accepted")
	for name, mod := range map[string]func(g *sa.Grant){
		"grantee prefix":   func(g *sa.Grant) { g.Grantees = []string{support.ID[:len(support.ID)-1]} },
		"grantee superstr": func(g *sa.Grant) { g.Grantees = []string{support.ID + "x"} },
		"tenant case":      func(g *sa.Grant) { g.TenantID = "ACME" },
		"expires now":      func(g *sa.Grant) { g.ExpiresAt = now },
		"starts after now": func(g *sa.Grant) { g.StartsAt = now.Add(time.Microsecond) },
		"revoked later":    func(g *sa.Grant) { g.RevokedAt = now.Add(time.Hour) },
		"host scope only":  func(g *sa.Grant) { g.Scopes = []sa.Scope{"read:all"} },
		"no scopes":        func(g *sa.Grant) { g.Scopes = nil },
	} {
		g := base.Clone()
		mod(&g)
		ls.answer = g
		got, err := m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.Error(t, err, name)
		require.Zero(t, got.ID, name)
	}
}

// TestReview135ReturnedGrantsAreCopies attacks "Grants are values": a
// host that edits the slices of the input or of the grant returned by
// Grant, Extend, Get or Check must not change the stored grant (a
// grantee appended there would be let in).
func TestReview135ReturnedGrantsAreCopies(t *testing.T) {
	e := newEnv(t)
	grantees := []string{engineer.ID}
	scopes := []sa.Scope{sa.ScopeRead}
	g := e.grant(sa.GrantInput{Grantees: grantees, Scopes: scopes})
	grantees[0] = support.ID
	scopes[0] = sa.ScopeWrite
	g.Grantees[0] = support.ID
	g.Scopes[0] = sa.ScopeWrite
	x, err := e.m.Extend(ctx, g.ID, e.m.Now().Add(sa.Day), customer)
	require.NoError(t, err)
	x.Grantees[0] = support.ID
	x.Scopes[0] = sa.ScopeWrite
	c, err := e.m.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
	require.NoError(t, err)
	c.Grantees[0] = support.ID
	c.Scopes[0] = sa.ScopeWrite
	got, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	got.Grantees[0] = support.ID

	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	_, err = e.m.Check(ctx, "acme", engineer.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	stored, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, []string{engineer.ID}, stored.Grantees)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, stored.Scopes)
}

// TestReview135ExtendEndedGrants attacks "ErrInvalidInput for a grant
// that is expired or revoked": a grant past ExpiresAt that no Sweep has
// recorded yet, a revoked one and (after Sweep) a recorded expiry are
// not brought back by Extend, also not by a clock set back before the
// recorded expiry.
func TestReview135ExtendEndedGrants(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	r := e.grant(sa.GrantInput{Duration: time.Hour})
	_, err := e.m.Revoke(ctx, r.ID, customer, "")
	require.NoError(t, err)
	e.clock.Advance(time.Hour)
	before := e.snapshot()
	for _, id := range []uuid.UUID{g.ID, r.ID} {
		_, err := e.m.Extend(ctx, id, e.m.Now().Add(time.Hour), customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	}
	require.Equal(t, before, e.snapshot())
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	e.clock.Advance(-30 * time.Minute) // the clock steps back into the window
	before = e.snapshot()
	_, err = e.m.Extend(ctx, g.ID, e.m.Now().Add(time.Hour), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a recorded expiry is final whatever the clock says")
	_, err = e.m.Revoke(ctx, g.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Equal(t, before, e.snapshot())
}

// TestReview135RunExpiryBadIntervalsAndClose attacks RunExpiry and Close:
// a zero, negative or minimal interval; Close racing RunExpiry loops,
// Sweeps and Checks from several goroutines; RunExpiry after Close; a
// Sweep with a cancelled context. Nothing hangs, every loop returns
// ErrClosed or the context's error, and no goroutine outlives the test
// (TestMain runs goleak).
func TestReview135RunExpiryBadIntervalsAndClose(t *testing.T) {
	e := newEnv(t)
	for _, d := range []time.Duration{0, -1, math.MinInt64} {
		require.ErrorIs(t, e.m.RunExpiry(ctx, d), sa.ErrInvalidInput)
	}
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Advance(time.Hour)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	n, err := e.m.Sweep(cctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, n)
	require.Empty(t, e.events(sa.EventGrantExpired), "a cancelled sweep records nothing")

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 4 {
		wg.Go(func() {
			interval := time.Nanosecond
			if i%2 == 1 {
				interval = time.Duration(math.MaxInt64)
			}
			errs <- e.m.RunExpiry(ctx, interval)
		})
		wg.Go(func() {
			for range 20 {
				_, _ = e.m.Sweep(ctx)
				_, _ = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let the loops start (not for expiry)
	closeErrs := make(chan error, 3)
	for range 3 {
		wg.Go(func() { closeErrs <- e.m.Close() })
	}
	wg.Wait()
	close(errs)
	close(closeErrs)
	for err := range errs {
		require.ErrorIs(t, err, sa.ErrClosed)
	}
	for err := range closeErrs {
		require.NoError(t, err)
	}
	require.ErrorIs(t, e.m.RunExpiry(ctx, time.Second), sa.ErrClosed)
	require.ErrorIs(t, e.m.RunExpiry(ctx, 0), sa.ErrInvalidInput, "argument checked first")
	exp := e.events(sa.EventGrantExpired)
	require.Len(t, exp, 1, "expired once however many sweeps ran")
	require.Equal(t, g.ID, exp[0].GrantID)
}

// TestReview135SQLEdgeTimes runs the edge times through sqlstore on
// every backend (SQLite, PostgreSQL, MariaDB; a server that does not
// answer is skipped): a grant that ends at the last microsecond of year
// 9999, an unlimited one, one with a duration of a microsecond, each read
// back exactly, checked at the microsecond boundaries, extended and
// revoked; and a recorded expiry stays final when the clock is set back
// into the window ("no replica can extend, revoke or delegate the grant
// afterwards, whatever its clock says").
func TestReview135SQLEdgeTimes(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) { r135SQLEdgeTimes(t, d) })
	}
}

func r135SQLEdgeTimes(t *testing.T, d sqlstore.Dialect) {
	st := sqltest.NewStore(t, d)
	clock := storetest.NewClock(r135End.Add(-sa.Day))
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithPolicy(p))
	require.NoError(t, err)
	now := clock.Now()
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Day})
	require.NoError(t, err)
	require.Equal(t, r135End, g.ExpiresAt)
	got, err := m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got)
	clock.Set(r135End.Add(-time.Microsecond))
	_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	clock.Set(r135End)
	_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "ends at the last microsecond of 9999")

	clock.Set(now)
	u, err := m.Grant(ctx, sa.GrantInput{TenantID: "u", By: customer, Duration: sa.Unlimited, Grantees: []string{engineer.ID}})
	require.NoError(t, err)
	got, err = m.Get(ctx, u.ID)
	require.NoError(t, err)
	require.True(t, got.Unlimited())
	x, err := m.Extend(ctx, u.ID, r135End, customer)
	require.NoError(t, err)
	require.Equal(t, r135End, x.ExpiresAt)
	_, err = m.Extend(ctx, u.ID, r135End.Add(time.Microsecond), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Contains(t, err.Error(), "expiresAt", "refused by the Manager, not only by the store")
	x, err = m.Extend(ctx, u.ID, time.Time{}, customer)
	require.NoError(t, err)
	require.True(t, x.Unlimited())

	tiny, err := m.Grant(ctx, sa.GrantInput{TenantID: "tiny", By: customer, Duration: time.Microsecond})
	require.NoError(t, err)
	_, err = m.Check(ctx, "tiny", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	clock.Set(now.Add(time.Microsecond))
	_, err = m.Check(ctx, "tiny", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	_, err = m.Revoke(ctx, tiny.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput, "already expired")
	_, err = m.Revoke(ctx, u.ID, customer, "")
	require.NoError(t, err)
	_, err = m.Check(ctx, "u", engineer.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)

	// The tiny grant's expiry is recorded; a clock set back into its
	// window neither extends nor revokes it.
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	clock.Set(now)
	_, err = m.Extend(ctx, tiny.ID, now.Add(time.Hour), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = m.Revoke(ctx, tiny.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	got, err = m.Get(ctx, tiny.ID)
	require.NoError(t, err)
	require.Equal(t, tiny, got)
}

// TestGrantRefusesABrokenClock: the Manager itself refuses to create a
// grant at a clock reading no record may hold (before year 1000, the zero
// time, after 9999), before any auditor hears of it — it used to leave
// that to the bundled stores, so a host auditor got a grant.created the
// store then refused (review 135's note).
func TestGrantRefusesABrokenClock(t *testing.T) {
	for name, at := range map[string]time.Time{
		"zero":       {},
		"year 999":   time.Date(999, 12, 31, 23, 59, 59, 0, time.UTC),
		"year 10000": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			host := &recordingAuditor{}
			m, err := sa.NewManager(st, sa.WithNow(func() time.Time { return at }), sa.WithAuditor(sa.MultiAuditor(st, host)))
			require.NoError(t, err)
			_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.ErrorContains(t, err, "the clock reads")
			require.Empty(t, host.types(), "no auditor hears of a grant made at a broken clock")
			gs, err := st.ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, storetest.Epoch)
			require.NoError(t, err)
			require.Empty(t, gs)
		})
	}
}

// swappingStore hands UpdateGrant's change another grant than the one
// asked for (a store with a bug in its key handling).
type swappingStore struct {
	*memstore.Store
	other uuid.UUID
}

func (s *swappingStore) UpdateGrant(ctx context.Context, _ uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	return s.Store.UpdateGrant(ctx, s.other, change)
}

// TestUpdateRefusesAnotherGrantFromTheStore: Revoke, Extend and the rest
// authorise on the grant GetGrant returned; a store whose UpdateGrant then
// hands over another grant (of another tenant) gets no change made to it
// and no event recorded (review 135's note: the Manager re-checked the
// store's answers for Check and List, not here).
func TestUpdateRefusesAnotherGrantFromTheStore(t *testing.T) {
	e := newEnv(t)
	mine := e.grant(sa.GrantInput{TenantID: "acme"})
	theirs := e.grant(sa.GrantInput{TenantID: "globex"})
	m, err := sa.NewManager(&swappingStore{Store: e.store, other: theirs.ID}, sa.WithNow(e.clock.Now))
	require.NoError(t, err)
	before := e.snapshot()
	_, err = m.Revoke(ctx, mine.ID, customer, "done")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.ErrorContains(t, err, "the store handed over grant "+theirs.ID.String())
	_, err = m.Extend(ctx, mine.ID, mine.ExpiresAt.Add(time.Hour), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Equal(t, before, e.snapshot(), "globex's grant unchanged, nothing recorded")
}
