package supportaccess_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

func TestRevoke(t *testing.T) {
	t.Run("by customer, effective at once", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{})
		r, err := e.m.Revoke(ctx, g.ID, customer, "case closed")
		require.NoError(t, err)
		require.Equal(t, e.now(), r.RevokedAt)
		require.Equal(t, customer, r.RevokedBy)
		_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		evs := e.events(sa.EventGrantRevoked)
		require.Len(t, evs, 1)
		require.Equal(t, "case closed", evs[0].Reason)
		require.NotEmpty(t, evs[0].Before)
		require.NotEmpty(t, evs[0].After)
	})
	t.Run("scheduled grant", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{StartsAt: e.now().Add(time.Hour)})
		_, err := e.m.Revoke(ctx, g.ID, customer, "")
		require.NoError(t, err)
		e.clock.Advance(2 * time.Hour)
		_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "a revoked scheduled grant never starts")
	})
	t.Run("by system", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{})
		_, err := e.m.Revoke(ctx, g.ID, system, "offboarding")
		require.NoError(t, err)
	})
	t.Run("support gives back its own access", func(t *testing.T) {
		e := newEnv(t)
		named := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		open := e.grant(sa.GrantInput{})
		_, err := e.m.Revoke(ctx, named.ID, engineer, "done")
		require.NoError(t, err)
		_, err = e.m.Revoke(ctx, open.ID, support, "done")
		require.NoError(t, err, "an any-principal grant covers every support principal")
	})
	t.Run("support may not revoke someone else's grant", func(t *testing.T) {
		e := newEnv(t)
		named := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		before := e.snapshot()
		_, err := e.m.Revoke(ctx, named.ID, support, "")
		require.ErrorIs(t, err, sa.ErrForbidden)
		after := e.snapshot()
		require.Equal(t, before.grants, after.grants)
		require.Len(t, after.events, len(before.events)+1, "only the refusal is recorded")
		ref := after.events[len(after.events)-1]
		require.Equal(t, sa.EventActionRefused, ref.Type)
		require.Equal(t, "revoke", ref.Attrs[sa.AttrAction])
		require.Equal(t, support, ref.Actor)
		require.Equal(t, named.ID, ref.GrantID)
	})
	t.Run("expired or already revoked changes nothing", func(t *testing.T) {
		e := newEnv(t)
		exp := e.grant(sa.GrantInput{Duration: time.Hour})
		rev := e.grant(sa.GrantInput{Duration: 3 * time.Hour})
		_, err := e.m.Revoke(ctx, rev.ID, customer, "")
		require.NoError(t, err)
		e.clock.Advance(time.Hour)
		before := e.snapshot()
		_, err = e.m.Revoke(ctx, exp.ID, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Contains(t, err.Error(), "expired")
		_, err = e.m.Revoke(ctx, rev.ID, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Contains(t, err.Error(), "revoked")
		require.Equal(t, before, e.snapshot())
	})
	t.Run("bad input", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{})
		before := e.snapshot()
		_, err := e.m.Revoke(ctx, uuid.Nil, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.Revoke(ctx, g.ID, sa.Actor{Kind: sa.ActorCustomer}, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.Revoke(ctx, g.ID, customer, "bad\x00reason")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.Revoke(ctx, uuid.New(), customer, "")
		require.ErrorIs(t, err, sa.ErrNotFound)
		require.Equal(t, before, e.snapshot())
	})
	t.Run("store failure leaves the grant active and a retry succeeds", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{})
		fs := &faultyStore{Store: e.store, failUpdate: true}
		m, err := sa.NewManager(fs, sa.WithNow(e.clock.Now))
		require.NoError(t, err)
		_, err = m.Revoke(ctx, g.ID, customer, "")
		require.ErrorIs(t, err, errBoom)
		_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.NoError(t, err)
		fs.failUpdate = false
		_, err = m.Revoke(ctx, g.ID, customer, "")
		require.NoError(t, err)
		_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	})
}

func TestRevokeTenant(t *testing.T) {
	e := newEnv(t)
	a := e.grant(sa.GrantInput{})
	b := e.grant(sa.GrantInput{StartsAt: e.now().Add(time.Hour)})
	old := e.grant(sa.GrantInput{Duration: time.Minute})
	other := e.grant(sa.GrantInput{TenantID: "globex"})
	e.clock.Advance(time.Minute)
	got, err := e.m.RevokeTenant(ctx, "acme", customer, "security incident")
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{a.ID, b.ID}, ids(got))
	for _, id := range []uuid.UUID{a.ID, b.ID} {
		g, err := e.m.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, sa.StatusRevoked, g.Status(e.now()))
	}
	g, err := e.m.Get(ctx, old.ID)
	require.NoError(t, err)
	require.Equal(t, sa.StatusExpired, g.Status(e.now()), "expired grants stay expired")
	_, err = e.m.Check(ctx, "globex", support.ID, sa.ScopeRead)
	require.NoError(t, err, "other tenants keep access")
	_ = other
	_, err = e.m.RevokeTenant(ctx, "acme", support, "")
	require.NoError(t, err)
	_, err = e.m.RevokeTenant(ctx, "", customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.RevokeTenant(ctx, "globex", sa.Actor{Kind: "x", ID: "y"}, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// RevokeTenant skips a grant that ended between its listing and its
// revocation — revoked meanwhile, or its expiry recorded by a replica
// whose clock is ahead (the store refuses it as final) — and revokes the
// others without an error. Only such refusals are skipped (see
// TestReview57RevokeTenantAuditRefusalNotReportedAsSuccess).
func TestRevokeTenantSkipsGrantsEndedMeanwhile(t *testing.T) {
	st := memstore.New()
	lst := &listHookStore{Store: st}
	e := newEnvOn(t, st)
	m, err := sa.NewManager(lst, sa.WithNow(e.clock.Now))
	require.NoError(t, err)
	ahead := storetest.NewClock(e.now().Add(2 * time.Hour))
	replica, err := sa.NewManager(st, sa.WithNow(ahead.Now))
	require.NoError(t, err)

	keep := e.grant(sa.GrantInput{Duration: 24 * time.Hour})
	revokedMeanwhile := e.grant(sa.GrantInput{Duration: 24 * time.Hour})
	expiredMeanwhile := e.grant(sa.GrantInput{Duration: time.Hour})
	lst.afterList = func() {
		_, err := e.m.Revoke(ctx, revokedMeanwhile.ID, customer, "")
		require.NoError(t, err)
		n, err := replica.Sweep(ctx)
		require.NoError(t, err)
		require.Positive(t, n)
	}
	got, err := m.RevokeTenant(ctx, "acme", customer, "incident")
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{keep.ID}, ids(got))
	for _, id := range []uuid.UUID{keep.ID, revokedMeanwhile.ID} {
		g, err := e.m.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, sa.StatusRevoked, g.Status(e.now()))
	}
	g, err := e.m.Get(ctx, expiredMeanwhile.ID)
	require.NoError(t, err)
	require.True(t, g.RevokedAt.IsZero(), "a grant the trail says expired is not revoked")
}

// listHookStore calls afterList once, after the first ListGrants.
type listHookStore struct {
	*memstore.Store
	afterList func()
}

func (s *listHookStore) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	gs, err := s.Store.ListGrants(ctx, f, now)
	if s.afterList != nil {
		s.afterList()
		s.afterList = nil
	}
	return gs, err
}

func TestRevokeTicket(t *testing.T) {
	e := newEnv(t)
	t1 := e.grant(sa.GrantInput{TicketRef: "T-1"})
	t1b := e.grant(sa.GrantInput{TicketRef: "T-1", Scopes: []sa.Scope{sa.ScopeWrite}})
	t2 := e.grant(sa.GrantInput{TicketRef: "T-2"})
	got, err := e.m.RevokeTicket(ctx, "acme", "T-1", customer, "ticket closed")
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{t1.ID, t1b.ID}, ids(got))
	c, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err, "the other ticket keeps its access")
	require.Equal(t, t2.ID, c.ID)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = e.m.RevokeTicket(ctx, "acme", "", customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

func ids(gs []sa.Grant) []uuid.UUID {
	var out []uuid.UUID
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func TestExtend(t *testing.T) {
	t.Run("moves the end", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		x, err := e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
		require.NoError(t, err)
		require.Equal(t, g.ExpiresAt.Add(time.Hour), x.ExpiresAt)
		evs := e.events(sa.EventGrantExtended)
		require.Len(t, evs, 1)
		require.Contains(t, string(evs[0].Before), g.ExpiresAt.Format("2006-01-02T15:04:05.999999Z07:00"))
		require.Contains(t, string(evs[0].After), x.ExpiresAt.Format("2006-01-02T15:04:05.999999Z07:00"))
	})
	t.Run("may shorten", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Duration: 2 * time.Hour})
		x, err := e.m.Extend(ctx, g.ID, e.now().Add(time.Minute), customer)
		require.NoError(t, err)
		e.clock.Advance(time.Minute)
		require.Equal(t, sa.StatusExpired, x.Status(e.now()))
	})
	t.Run("scheduled grant, max counted from its start", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{StartsAt: e.now().Add(10 * sa.Day), Duration: sa.Day})
		_, err := e.m.Extend(ctx, g.ID, g.StartsAt.Add(120*sa.Day), customer)
		require.NoError(t, err)
		_, err = e.m.Extend(ctx, g.ID, g.StartsAt.Add(120*sa.Day+time.Microsecond), customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	})
	t.Run("refusals change nothing", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		exp := e.grant(sa.GrantInput{Duration: time.Minute})
		rev := e.grant(sa.GrantInput{})
		_, err := e.m.Revoke(ctx, rev.ID, customer, "")
		require.NoError(t, err)
		e.clock.Advance(time.Minute)
		before := e.snapshot()
		for name, c := range map[string]struct {
			id   uuid.UUID
			to   time.Time
			by   sa.Actor
			want error
		}{
			"expired":         {exp.ID, e.now().Add(time.Hour), customer, sa.ErrInvalidInput},
			"revoked":         {rev.ID, e.now().Add(time.Hour), customer, sa.ErrInvalidInput},
			"end in the past": {g.ID, e.now().Add(-time.Second), customer, sa.ErrInvalidInput},
			"end now":         {g.ID, e.now(), customer, sa.ErrInvalidInput},
			"over maximum":    {g.ID, e.now().Add(121 * sa.Day), customer, sa.ErrInvalidInput},
			"unlimited":       {g.ID, time.Time{}, customer, sa.ErrForbidden},
			"nil id":          {uuid.Nil, e.now().Add(time.Hour), customer, sa.ErrInvalidInput},
			"unknown id":      {uuid.New(), e.now().Add(time.Hour), customer, sa.ErrNotFound},
			"bad actor":       {g.ID, e.now().Add(time.Hour), sa.Actor{Kind: sa.ActorCustomer}, sa.ErrInvalidInput},
		} {
			_, err := e.m.Extend(ctx, c.id, c.to, c.by)
			require.ErrorIs(t, err, c.want, name)
		}
		require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused))
		refused := e.events(sa.EventActionRefused)
		require.Len(t, refused, 1, "only the policy's refusal (unlimited) is audited, not malformed input")
		require.Equal(t, "extend", refused[0].Attrs[sa.AttrAction])
		require.Equal(t, g.ID, refused[0].GrantID)
		require.Equal(t, g.TenantID, refused[0].TenantID)
	})
	t.Run("to the end it has: a no-op", func(t *testing.T) {
		// A retried Extend, or one to the same date, changes nothing: it
		// records no grant.extended whose Before equals its After and
		// tells nobody, as AddGrantee of a name the grant has.
		p := sa.DefaultPolicy()
		p.AllowUnlimited = true
		n := &notes{}
		e := newEnv(t, sa.WithPolicy(p), sa.WithNotifier(n))
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		x, err := e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
		require.NoError(t, err)
		u := e.grant(sa.GrantInput{Duration: sa.Unlimited})
		before, notified := e.snapshot(), len(n.types())
		for name, c := range map[string]struct {
			g  sa.Grant
			to time.Time
		}{
			"retry":                  {x, x.ExpiresAt},
			"another zone":           {x, x.ExpiresAt.In(time.FixedZone("x", 3600))},
			"within the microsecond": {x, x.ExpiresAt.Add(999 * time.Nanosecond)},
			"unlimited again":        {u, time.Time{}},
		} {
			got, err := e.m.Extend(ctx, c.g.ID, c.to, customer)
			require.NoError(t, err, name)
			require.Equal(t, c.g, got, name)
		}
		require.Equal(t, before, e.snapshot(), "nothing recorded")
		require.Len(t, n.types(), notified, "nobody told")
		// The policy still judges a no-op: a refused end stays refused.
		e.clock.Advance(2 * time.Hour)
		_, err = e.m.Extend(ctx, x.ID, x.ExpiresAt, customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "an expired grant")
	})
	t.Run("support may not extend", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		_, err := e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), support)
		require.ErrorIs(t, err, sa.ErrForbidden)
		got, err := e.m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got)
		require.Len(t, e.events(sa.EventActionRefused), 1)
	})
}

func TestAuthorization(t *testing.T) {
	t.Run("default: only customers grant", func(t *testing.T) {
		for _, by := range []sa.Actor{support, system} {
			e := newEnv(t)
			_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: by})
			require.ErrorIs(t, err, sa.ErrForbidden, by.Kind)
			s := e.snapshot()
			require.Empty(t, s.grants)
			require.Len(t, s.events, 1)
			require.Equal(t, sa.EventActionRefused, s.events[0].Type)
			require.Equal(t, "grant", s.events[0].Attrs[sa.AttrAction])
			require.Equal(t, by, s.events[0].Actor)
		}
	})
	t.Run("host rule: only admins of the tenant", func(t *testing.T) {
		admins := map[string]string{"admin@acme.example": "acme"}
		rule := func(_ context.Context, a sa.Action, by sa.Actor, tenant string) error {
			if by.Kind == sa.ActorCustomer && admins[by.ID] == tenant {
				return nil
			}
			if a == sa.ActionRevoke && by.Kind == sa.ActorSupport {
				return nil
			}
			return errors.New("not an admin of this tenant")
		}
		e := newEnv(t, sa.WithAuthorizer(rule))
		e.grant(sa.GrantInput{TenantID: "acme"})
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: customer})
		require.ErrorIs(t, err, sa.ErrForbidden)
		require.Contains(t, err.Error(), "not an admin")
		e.clock.Advance(time.Second)
		viewer := sa.Actor{Kind: sa.ActorCustomer, ID: "viewer@acme.example"}
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: viewer})
		require.ErrorIs(t, err, sa.ErrForbidden)
		refused := e.events(sa.EventActionRefused)
		require.Len(t, refused, 2)
		require.Equal(t, "globex", refused[0].TenantID)
		require.Equal(t, viewer, refused[1].Actor)
	})
	t.Run("the self-revoke rule holds whatever the authorizer says", func(t *testing.T) {
		e := newEnv(t, sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error { return nil }))
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		_, err := e.m.Revoke(ctx, g.ID, support, "")
		require.ErrorIs(t, err, sa.ErrForbidden)
	})
}

func TestAuditing(t *testing.T) {
	t.Run("failing auditor: no grant", func(t *testing.T) {
		e := newEnv(t, sa.WithAuditor(failingAuditor{}))
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.ErrorIs(t, err, errBoom)
		require.Empty(t, e.snapshot().grants)
	})
	t.Run("failing auditor next to the store: no grant, no event", func(t *testing.T) {
		e := newEnv(t)
		m, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithAuditor(sa.MultiAuditor(e.store, failingAuditor{})))
		require.NoError(t, err)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, snapshot{}, e.snapshot())
	})
	t.Run("failing auditor: revoke and extend do not happen", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Duration: time.Hour})
		m, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithAuditor(sa.MultiAuditor(e.store, failingAuditor{})))
		require.NoError(t, err)
		before := e.snapshot()
		_, err = m.Revoke(ctx, g.ID, customer, "")
		require.ErrorIs(t, err, errBoom)
		_, err = m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, before, e.snapshot())
	})
	t.Run("store and a second auditor both record", func(t *testing.T) {
		e := newEnv(t)
		rec := &recordingAuditor{}
		m, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithAuditor(sa.MultiAuditor(e.store, rec)))
		require.NoError(t, err)
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.NoError(t, err)
		_, err = m.Revoke(ctx, g.ID, customer, "")
		require.NoError(t, err)
		want := []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked}
		require.Equal(t, want, rec.types())
		require.Len(t, e.snapshot().events, 2)
	})
	t.Run("an external auditor alone", func(t *testing.T) {
		e := newEnv(t)
		rec := &recordingAuditor{}
		m, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithAuditor(rec))
		require.NoError(t, err)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.NoError(t, err)
		require.Equal(t, []sa.EventType{sa.EventGrantCreated}, rec.types())
		require.Empty(t, e.snapshot().events, "the store is not the auditor")
	})
	t.Run("store failure after auditing: no grant", func(t *testing.T) {
		e := newEnv(t)
		fs := &faultyStore{Store: e.store, failCreate: true}
		m, err := sa.NewManager(fs, sa.WithNow(e.clock.Now))
		require.NoError(t, err)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, snapshot{}, e.snapshot())
	})
}

func TestNewManager(t *testing.T) {
	_, err := sa.NewManager(nil)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = sa.NewManager(storeOnly{newEnv(t).store})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "no auditor")
	m, err := sa.NewManager(storeOnly{newEnv(t).store}, sa.WithAuditor(&recordingAuditor{}), nil)
	require.NoError(t, err, "nil options are ignored")
	require.NotNil(t, m)
	bad := sa.DefaultPolicy()
	bad.DefaultDuration = 200 * sa.Day
	_, err = sa.NewManager(newEnv(t).store, sa.WithPolicy(bad))
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// storeOnly hides the Auditor and AuditLog methods of a store.
type storeOnly struct{ sa.Store }

func TestPolicyValidate(t *testing.T) {
	ok := sa.DefaultPolicy()
	require.NoError(t, ok.Validate())
	require.Equal(t, 7*sa.Day, ok.DefaultDuration)
	require.Equal(t, 120*sa.Day, ok.MaxDuration)
	require.False(t, ok.AllowUnlimited)
	require.Empty(t, ok.Presets)
	long := ok
	long.Presets, long.DefaultDuration = sa.PresetsLong, 7*sa.Day
	require.NoError(t, long.Validate())
	for name, mut := range map[string]func(*sa.Policy){
		"zero max":             func(p *sa.Policy) { p.MaxDuration = 0 },
		"zero default":         func(p *sa.Policy) { p.DefaultDuration = 0 },
		"default over max":     func(p *sa.Policy) { p.DefaultDuration = p.MaxDuration + 1 },
		"default not a preset": func(p *sa.Policy) { p.Presets = sa.PresetsShort; p.DefaultDuration = 2 * sa.Day },
		// Each preset list below holds the default (7 days), so that only
		// the preset named is what Validate refuses.
		"preset over max":          func(p *sa.Policy) { p.Presets = []sa.Preset{{"week", 7 * sa.Day}, {"long", 200 * sa.Day}} },
		"unlimited preset refused": func(p *sa.Policy) { p.Presets = []sa.Preset{{"week", 7 * sa.Day}, {"forever", sa.Unlimited}} },
		"preset without label":     func(p *sa.Policy) { p.Presets = []sa.Preset{{"week", 7 * sa.Day}, {"", 14 * sa.Day}} },
		"bad default scope":        func(p *sa.Policy) { p.DefaultScopes = []sa.Scope{"a b"} },
		"negative ttl":             func(p *sa.Policy) { p.RequestTTL = -1 },
	} {
		p := sa.DefaultPolicy()
		mut(&p)
		require.ErrorIs(t, p.Validate(), sa.ErrInvalidInput, name)
	}
}

func TestDefaultScopesFromPolicy(t *testing.T) {
	p := sa.DefaultPolicy()
	p.DefaultScopes = []sa.Scope{sa.ScopeWrite}
	e := newEnv(t, sa.WithPolicy(p))
	g := e.grant(sa.GrantInput{})
	require.Equal(t, []sa.Scope{sa.ScopeWrite}, g.Scopes)
	require.True(t, g.Allows(sa.ScopeRead))
}

// retryingStore runs UpdateGrant's change twice, as a store retrying its
// transaction would: the first attempt is thrown away, and before the
// second between changes the grant as another replica's commit left it.
type retryingStore struct {
	*memstore.Store
	between func(*sa.Grant) // what a concurrent writer changed before the retry
}

func (s *retryingStore) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	return s.Store.UpdateGrant(ctx, id, func(g *sa.Grant) ([]sa.Event, error) {
		first := g.Clone()
		if _, err := change(&first); err != nil {
			return nil, err
		}
		if s.between != nil {
			s.between(g)
		}
		return change(g)
	})
}

// TestExtendRetriedByStoreNotifiesOnlyWhatItDid: the last call of the
// change function decides whether Extend moved the grant. Here the retried
// call finds the grant already at the end asked for: nothing is recorded,
// and nobody is told of a change this call did not make.
func TestExtendRetriedByStoreNotifiesOnlyWhatItDid(t *testing.T) {
	st := &retryingStore{Store: memstore.New()}
	n := &notes{}
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithNotifier(n))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	to := g.ExpiresAt.Add(time.Hour)
	st.between = func(g *sa.Grant) { g.ExpiresAt = to } // another replica's Extend
	notified := len(n.types())
	x, err := m.Extend(ctx, g.ID, to, customer)
	require.NoError(t, err)
	require.Equal(t, to, x.ExpiresAt)
	require.Len(t, n.types(), notified, "no notification of a change this call did not make")
	evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExtended}})
	require.NoError(t, err)
	require.Empty(t, evs)
}
