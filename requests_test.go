package supportaccess_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestRequestAccess(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	r := e.request(sa.RequestInput{Reason: "customer reports broken export", TicketRef: "T-7"})
	require.NotEqual(t, uuid.Nil, r.ID)
	require.Equal(t, "acme", r.TenantID)
	require.Equal(t, engineer, r.RequestedBy)
	require.Equal(t, 7*sa.Day, r.Duration, "policy default")
	require.Equal(t, []sa.Scope{sa.ScopeRead}, r.Scopes, "policy default scopes")
	require.Equal(t, sa.RequestPending, r.Status)
	require.Equal(t, e.now(), r.CreatedAt)
	require.Equal(t, e.now().Add(72*time.Hour), r.ExpiresAt, "default RequestTTL")
	require.True(t, r.StartsAt.IsZero(), "starts at approval")

	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got)
	list, err := e.m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Equal(t, []sa.AccessRequest{r}, list)

	evs := e.events(sa.EventRequestCreated)
	require.Len(t, evs, 1)
	require.Equal(t, engineer, evs[0].Actor)
	require.Equal(t, r.ID.String(), evs[0].Attrs[sa.AttrRequestID])
	require.Equal(t, "customer reports broken export", evs[0].Reason)
	require.Equal(t, uuid.Nil, evs[0].GrantID)
	require.NotEmpty(t, evs[0].After)

	x := n.last(t)
	require.Equal(t, sa.EventRequestCreated, x.Type)
	require.Equal(t, r.ID, x.RequestID)
	require.Equal(t, []string{engineer.ID}, x.Grantees)
	require.Equal(t, r.ExpiresAt, x.RespondBy)
	require.Equal(t, 7*sa.Day, x.Duration)
	require.Equal(t, "T-7", x.TicketRef)

	t.Run("policy TTL and explicit fields", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.RequestTTL = 4 * time.Hour
		e := newEnv(t, sa.WithPolicy(p))
		starts := e.now().Add(2 * sa.Day)
		r := e.request(sa.RequestInput{Duration: sa.Day, Scopes: []sa.Scope{"messages:read", sa.ScopeWrite}, StartsAt: starts})
		require.Equal(t, e.now().Add(4*time.Hour), r.ExpiresAt)
		require.Equal(t, sa.Day, r.Duration)
		require.Equal(t, []sa.Scope{"messages:read", sa.ScopeWrite}, r.Scopes)
		require.Equal(t, starts, r.StartsAt)
	})
}

func TestRequestAccessRefusesBadInput(t *testing.T) {
	long := strings.Repeat("x", sa.MaxReasonLen+1)
	p := sa.DefaultPolicy()
	p.RequireTicketRef = true
	p.MaxScheduleAhead = sa.Day
	cases := []struct {
		name string
		in   sa.RequestInput
		want error
	}{
		{"no tenant", sa.RequestInput{By: engineer, TicketRef: "T"}, sa.ErrInvalidInput},
		{"bad actor", sa.RequestInput{TenantID: "acme", By: sa.Actor{Kind: "robot", ID: "x"}, TicketRef: "T"}, sa.ErrInvalidInput},
		{"customer asks", sa.RequestInput{TenantID: "acme", By: customer, TicketRef: "T"}, sa.ErrForbidden},
		{"system asks", sa.RequestInput{TenantID: "acme", By: system, TicketRef: "T"}, sa.ErrForbidden},
		{"too long", sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T", Duration: 121 * sa.Day}, sa.ErrInvalidInput},
		{"negative", sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T", Duration: -time.Hour}, sa.ErrInvalidInput},
		{"unlimited not allowed", sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T", Duration: sa.Unlimited}, sa.ErrForbidden},
		{"bad scope", sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T", Scopes: []sa.Scope{"a b"}}, sa.ErrInvalidInput},
		{"start in the past", sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T", StartsAt: storetestEpoch.Add(-time.Hour)}, sa.ErrInvalidInput},
		{"start too far ahead", sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T", StartsAt: storetestEpoch.Add(2 * sa.Day)}, sa.ErrInvalidInput},
		{"reason too long", sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T", Reason: long}, sa.ErrInvalidInput},
		{"ticket required", sa.RequestInput{TenantID: "acme", By: engineer}, sa.ErrInvalidInput},
		{"ticket with control character", sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T\x00"}, sa.ErrInvalidInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, sa.WithPolicy(p))
			_, err := e.m.RequestAccess(ctx, c.in)
			require.ErrorIs(t, err, c.want)
			require.Empty(t, e.requests(), "nothing stored")
			for _, ev := range e.snapshot().events {
				require.Equal(t, sa.EventActionRefused, ev.Type, "only a refusal is audited")
			}
		})
	}
}

func TestApprove(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	r := e.request(sa.RequestInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}, Reason: "fix import", TicketRef: "T-9"})
	e.clock.Advance(10 * time.Hour) // a slow approval does not eat the window
	g, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Reason: "ok"})
	require.NoError(t, err)
	require.Equal(t, r.ID, g.RequestID)
	require.Equal(t, []string{engineer.ID}, g.Grantees)
	require.Equal(t, []sa.Scope{sa.ScopeWrite}, g.Scopes)
	require.Equal(t, e.now(), g.StartsAt, "starts at approval")
	require.Equal(t, e.now().Add(2*sa.Day), g.ExpiresAt)
	require.Equal(t, customer, g.GrantedBy)
	require.Equal(t, "fix import", g.Reason)
	require.Equal(t, "T-9", g.TicketRef)

	stored, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, stored)
	c, err := e.m.Check(ctx, "acme", engineer.ID, sa.ScopeWrite)
	require.NoError(t, err)
	require.Equal(t, g.ID, c.ID)

	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestApproved, got.Status)
	require.Equal(t, g.ID, got.GrantID)
	require.Equal(t, customer, got.DecidedBy)
	require.Equal(t, e.now(), got.DecidedAt)
	require.Equal(t, "ok", got.DecisionReason)

	evs := e.events(sa.EventRequestApproved, sa.EventGrantCreated)
	require.Len(t, evs, 2)
	require.Equal(t, sa.EventRequestApproved, evs[0].Type)
	require.Equal(t, g.ID, evs[0].GrantID)
	require.Equal(t, r.ID.String(), evs[0].Attrs[sa.AttrRequestID])
	require.Equal(t, customer, evs[0].Actor)
	require.Equal(t, sa.EventGrantCreated, evs[1].Type)
	require.Equal(t, r.ID.String(), evs[1].Attrs[sa.AttrRequestID])
	require.Equal(t, evs[0].Time, evs[1].Time, "one step")

	x := n.last(t)
	require.Equal(t, sa.EventRequestApproved, x.Type)
	require.Equal(t, g.ID, x.GrantID)
	require.Equal(t, r.ID, x.RequestID)
	require.Equal(t, g.ExpiresAt, x.ExpiresAt)
	require.Equal(t, []sa.EventType{sa.EventRequestCreated, sa.EventRequestApproved}, n.types(), "no separate grant.created notification")
}

func TestApproveNarrows(t *testing.T) {
	e := newEnv(t)
	r := e.request(sa.RequestInput{Duration: 3 * sa.Day, Scopes: []sa.Scope{"messages:read", sa.ScopeWrite}})
	for name, in := range map[string]sa.ApproveInput{
		"longer":         {Duration: 3*sa.Day + time.Microsecond},
		"unasked scope":  {Scopes: []sa.Scope{"billing:write"}},
		"one of several": {Scopes: []sa.Scope{sa.ScopeRead, "admin"}},
		"negative":       {Duration: -time.Hour},
		"bad scope":      {Scopes: []sa.Scope{""}},
	} {
		before := e.snapshot()
		_, err := e.m.Approve(ctx, r.ID, customer, in)
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		require.Equal(t, before, e.snapshot(), "%s: nothing changed", name)
		got, err := e.m.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestPending, got.Status)
	}
	_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Duration: sa.Unlimited})
	require.ErrorContains(t, err, "Duration unlimited is longer than the requested 72h0m0s", "named, not printed as 292 years")
	g, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeRead}})
	require.NoError(t, err)
	require.Equal(t, e.now().Add(sa.Day), g.ExpiresAt, "shorter")
	require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes, "read is narrower than the write asked for")
	_, err = e.m.Check(ctx, "acme", engineer.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)

	t.Run("unlimited request, finite approval", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.AllowUnlimited = true
		e := newEnv(t, sa.WithPolicy(p))
		r := e.request(sa.RequestInput{Duration: sa.Unlimited})
		g, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Duration: 120 * sa.Day})
		require.NoError(t, err)
		require.False(t, g.Unlimited())
	})
	t.Run("presets apply to the approved duration", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.Presets = sa.PresetsShort
		e := newEnv(t, sa.WithPolicy(p))
		r := e.request(sa.RequestInput{Duration: 7 * sa.Day})
		_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Duration: 2 * sa.Day})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		g, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Duration: 3 * sa.Day})
		require.NoError(t, err)
		require.Equal(t, e.now().Add(3*sa.Day), g.ExpiresAt)
	})
}

func TestApproveRequestedStart(t *testing.T) {
	e := newEnv(t)
	starts := e.now().Add(2 * sa.Day)
	early := e.request(sa.RequestInput{StartsAt: starts, Duration: sa.Day})
	late := e.request(sa.RequestInput{StartsAt: e.now().Add(time.Hour), Duration: sa.Day})
	e.clock.Advance(3 * time.Hour)
	g, err := e.m.Approve(ctx, early.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	require.Equal(t, starts, g.StartsAt, "the requested start is later than the approval")
	require.Equal(t, starts.Add(sa.Day), g.ExpiresAt)
	require.Equal(t, sa.StatusScheduled, g.Status(e.now()))
	g2, err := e.m.Approve(ctx, late.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	require.Equal(t, e.now(), g2.StartsAt, "the approval is later than the requested start")
	require.Equal(t, e.now().Add(sa.Day), g2.ExpiresAt)
}

func TestApproveRefusals(t *testing.T) {
	t.Run("only customers decide", func(t *testing.T) {
		e := newEnv(t, sa.WithAuthorizer(func(_ ctxT, _ sa.Action, _ sa.Actor, _ string) error { return nil }))
		r := e.request(sa.RequestInput{})
		for _, by := range []sa.Actor{engineer, support, system} {
			_, err := e.m.Approve(ctx, r.ID, by, sa.ApproveInput{})
			require.ErrorIs(t, err, sa.ErrForbidden, by.ID)
			_, err = e.m.Deny(ctx, r.ID, by, "")
			require.ErrorIs(t, err, sa.ErrForbidden, by.ID)
		}
		refused := e.events(sa.EventActionRefused)
		require.Len(t, refused, 6)
		require.Equal(t, string(sa.ActionApprove), refused[0].Attrs[sa.AttrAction])
		require.Equal(t, string(sa.ActionDeny), refused[1].Attrs[sa.AttrAction])
		require.Empty(t, e.snapshot().grants)
	})
	t.Run("authorizer refuses", func(t *testing.T) {
		e := newEnv(t, sa.WithAuthorizer(func(_ ctxT, a sa.Action, by sa.Actor, _ string) error {
			if a == sa.ActionApprove {
				return errors.New("viewers may not approve")
			}
			return sa.DefaultAuthorizer(ctx, a, by, "")
		}))
		r := e.request(sa.RequestInput{})
		_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrForbidden)
		require.Contains(t, err.Error(), "viewers")
	})
	t.Run("not pending", func(t *testing.T) {
		e := newEnv(t)
		r := e.request(sa.RequestInput{})
		_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "approved already")
		_, err = e.m.Deny(ctx, r.ID, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput, "approved already")
		d := e.request(sa.RequestInput{})
		_, err = e.m.Deny(ctx, d.ID, customer, "no")
		require.NoError(t, err)
		_, err = e.m.Approve(ctx, d.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "denied")
		require.Len(t, e.snapshot().grants, 1)
	})
	t.Run("expired", func(t *testing.T) {
		e := newEnv(t)
		r := e.request(sa.RequestInput{})
		e.clock.Set(r.ExpiresAt.Add(-time.Microsecond))
		r2 := e.request(sa.RequestInput{})
		e.clock.Set(r.ExpiresAt)
		_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "at ExpiresAt, before any sweep")
		_, err = e.m.Deny(ctx, r.ID, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.Approve(ctx, r2.ID, customer, sa.ApproveInput{})
		require.NoError(t, err, "a younger request is still pending")
	})
	t.Run("bad arguments", func(t *testing.T) {
		e := newEnv(t)
		r := e.request(sa.RequestInput{})
		_, err := e.m.Approve(ctx, uuid.New(), customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrNotFound)
		_, err = e.m.Deny(ctx, uuid.New(), customer, "")
		require.ErrorIs(t, err, sa.ErrNotFound)
		_, err = e.m.Approve(ctx, uuid.Nil, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.Approve(ctx, r.ID, sa.Actor{}, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Reason: "a\x00"})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.Deny(ctx, r.ID, customer, strings.Repeat("x", sa.MaxReasonLen+1))
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.GetRequest(ctx, uuid.Nil)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.GetRequest(ctx, uuid.New())
		require.ErrorIs(t, err, sa.ErrNotFound)
		got, err := e.m.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, r, got)
	})
	t.Run("failing auditor: nothing approved", func(t *testing.T) {
		e := newEnv(t)
		r := e.request(sa.RequestInput{})
		m, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithAuditor(sa.MultiAuditor(e.store, failingAuditor{})))
		require.NoError(t, err)
		before := e.snapshot()
		_, err = m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, before, e.snapshot())
		got, err := e.m.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestPending, got.Status)
	})
}

func TestDeny(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	r := e.request(sa.RequestInput{TicketRef: "T-3"})
	e.clock.Advance(time.Minute)
	d, err := e.m.Deny(ctx, r.ID, customer, "not needed")
	require.NoError(t, err)
	require.Equal(t, sa.RequestDenied, d.Status)
	require.Equal(t, customer, d.DecidedBy)
	require.Equal(t, e.now(), d.DecidedAt)
	require.Equal(t, "not needed", d.DecisionReason)
	require.Equal(t, uuid.Nil, d.GrantID)
	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, d, got)
	evs := e.events(sa.EventRequestDenied)
	require.Len(t, evs, 1)
	require.Equal(t, "not needed", evs[0].Reason)
	require.Equal(t, r.ID.String(), evs[0].Attrs[sa.AttrRequestID])
	require.NotEmpty(t, evs[0].Before)
	x := n.last(t)
	require.Equal(t, sa.EventRequestDenied, x.Type)
	require.Equal(t, "not needed", x.Reason)
	require.Equal(t, r.ID, x.RequestID)
	require.Empty(t, e.snapshot().grants)
	_, err = e.m.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
}

func TestRequestExpiry(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	r := e.request(sa.RequestInput{})
	e.clock.Set(r.ExpiresAt.Add(-time.Microsecond))
	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
	e.clock.Set(r.ExpiresAt)
	got, err = e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestExpired, got.Status, "computed at read, before any sweep")
	exp, err := e.m.ListRequests(ctx, sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestExpired}})
	require.NoError(t, err)
	require.Len(t, exp, 1)
	pend, err := e.m.ListRequests(ctx, sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestPending}})
	require.NoError(t, err)
	require.Empty(t, pend)
	require.Empty(t, e.events(sa.EventRequestExpired))

	for i := 0; i < 2; i++ {
		_, err = e.m.Sweep(ctx)
		require.NoError(t, err)
	}
	evs := e.events(sa.EventRequestExpired)
	require.Len(t, evs, 1, "recorded once")
	require.Equal(t, sa.ActorSystem, evs[0].Actor.Kind)
	require.Equal(t, r.ID.String(), evs[0].Attrs[sa.AttrRequestID])
	stored, err := e.store.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestExpired, stored.Status)
	require.Equal(t, []sa.EventType{sa.EventRequestCreated}, n.types(), "expiry of a request is not notified")
}

func TestListRequests(t *testing.T) {
	e := newEnv(t)
	a := e.request(sa.RequestInput{TicketRef: "T-1"})
	e.clock.Advance(time.Microsecond)
	b := e.request(sa.RequestInput{TenantID: "globex", By: support})
	e.clock.Advance(time.Microsecond)
	c := e.request(sa.RequestInput{TicketRef: "T-1"})
	_, err := e.m.Deny(ctx, c.ID, customer, "")
	require.NoError(t, err)
	q := func(f sa.RequestFilter) []uuid.UUID {
		t.Helper()
		rs, err := e.m.ListRequests(ctx, f)
		require.NoError(t, err)
		out := []uuid.UUID{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	require.Equal(t, []uuid.UUID{c.ID, b.ID, a.ID}, q(sa.RequestFilter{}), "newest first")
	require.Equal(t, []uuid.UUID{c.ID, a.ID}, q(sa.RequestFilter{TenantID: "acme"}))
	require.Equal(t, []uuid.UUID{b.ID}, q(sa.RequestFilter{RequestedBy: support.ID}))
	require.Equal(t, []uuid.UUID{c.ID, a.ID}, q(sa.RequestFilter{TicketRef: "T-1"}))
	require.Equal(t, []uuid.UUID{b.ID, a.ID}, q(sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestPending}}))
	require.Equal(t, []uuid.UUID{c.ID}, q(sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestDenied, sa.RequestApproved}}))
	require.Equal(t, []uuid.UUID{c.ID}, q(sa.RequestFilter{Limit: 1}))
	require.Equal(t, []uuid.UUID{}, q(sa.RequestFilter{TenantID: "initech"}))

	for name, f := range map[string]sa.RequestFilter{
		"status":   {Statuses: []sa.RequestStatus{"open"}},
		"limit":    {Limit: -1},
		"too many": {Limit: sa.MaxListLimit + 1},
		"tenant":   {TenantID: "a\nb"},
		"ticket":   {TicketRef: strings.Repeat("t", sa.MaxTicketRefLen+1)},
		"by":       {RequestedBy: "x\x00"},
	} {
		_, err := e.m.ListRequests(ctx, f)
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
	}
}

func TestRequestsNeedRequestStore(t *testing.T) {
	e := newEnv(t)
	m, err := sa.NewManager(plainStore{e.store}, sa.WithAuditor(&recordingAuditor{}))
	require.NoError(t, err)
	_, err = m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = m.Approve(ctx, uuid.New(), customer, sa.ApproveInput{})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = m.Deny(ctx, uuid.New(), customer, "")
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = m.GetRequest(ctx, uuid.New())
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = m.ListRequests(ctx, sa.RequestFilter{})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = m.Sweep(ctx)
	require.NoError(t, err, "Sweep skips what the store cannot do")
}

func TestApproveConcurrentOneWins(t *testing.T) {
	e := newEnv(t)
	r := e.request(sa.RequestInput{})
	res := make(chan error, 10)
	for i := 0; i < 10; i++ {
		go func() {
			var err error
			if i%3 == 0 {
				_, err = e.m.Deny(ctx, r.ID, customer, "")
			} else {
				_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
			}
			res <- err
		}()
	}
	ok := 0
	for i := 0; i < 10; i++ {
		if err := <-res; err == nil {
			ok++
		} else {
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		}
	}
	require.Equal(t, 1, ok, "exactly one decision")
	require.Len(t, e.events(sa.EventRequestApproved, sa.EventRequestDenied), 1)
	require.LessOrEqual(t, len(e.snapshot().grants), 1)
}
