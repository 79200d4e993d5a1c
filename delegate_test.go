package supportaccess_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

const colleague = "carol@vendor.example"

func TestAddGrantee(t *testing.T) {
	t.Run("support on the grant adds a colleague", func(t *testing.T) {
		n := &notes{}
		e := newEnv(t, sa.WithNotifier(n))
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, Duration: time.Hour, Reason: "case 5"})
		_, err := e.m.Check(ctx, "acme", colleague, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		d, err := e.m.AddGrantee(ctx, g.ID, colleague, engineer)
		require.NoError(t, err)
		require.Equal(t, []string{colleague, engineer.ID}, d.Grantees, "sorted")
		require.Equal(t, g.ExpiresAt, d.ExpiresAt, "the window does not change")
		c, err := e.m.Check(ctx, "acme", colleague, sa.ScopeRead)
		require.NoError(t, err)
		require.Equal(t, g.ID, c.ID)
		stored, err := e.m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, d, stored)

		evs := e.events(sa.EventGrantDelegated)
		require.Len(t, evs, 1)
		require.Equal(t, engineer, evs[0].Actor)
		require.Equal(t, g.ID, evs[0].GrantID)
		require.Equal(t, colleague, evs[0].Attrs[sa.AttrPrincipal])
		require.JSONEq(t, string(mustJSON(t, g)), string(evs[0].Before))
		require.JSONEq(t, string(mustJSON(t, d)), string(evs[0].After))

		x := n.last(t)
		require.Equal(t, sa.EventGrantDelegated, x.Type)
		require.Equal(t, colleague, x.Principal)
		require.Equal(t, engineer, x.By)
		require.Equal(t, d.Grantees, x.Grantees)
		require.Equal(t, g.ExpiresAt, x.ExpiresAt)
		require.Equal(t, "case 5", x.Reason)
	})
	t.Run("customer adds to an active or scheduled grant", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		s := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, StartsAt: e.now().Add(time.Hour)})
		_, err := e.m.AddGrantee(ctx, g.ID, colleague, customer)
		require.NoError(t, err)
		d, err := e.m.AddGrantee(ctx, s.ID, colleague, customer)
		require.NoError(t, err)
		require.Contains(t, d.Grantees, colleague)
	})
	t.Run("duplicate is a no-op", func(t *testing.T) {
		n := &notes{}
		e := newEnv(t, sa.WithNotifier(n))
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		_, err := e.m.AddGrantee(ctx, g.ID, colleague, engineer)
		require.NoError(t, err)
		before := e.snapshot()
		notified := len(n.types())
		d, err := e.m.AddGrantee(ctx, g.ID, colleague, customer)
		require.NoError(t, err)
		require.Equal(t, []string{colleague, engineer.ID}, d.Grantees)
		d, err = e.m.AddGrantee(ctx, g.ID, engineer.ID, engineer)
		require.NoError(t, err)
		require.Len(t, d.Grantees, 2)
		require.Equal(t, before, e.snapshot(), "nothing recorded")
		require.Len(t, n.types(), notified, "nobody notified")
	})
	t.Run("after an approval the requester brings a colleague", func(t *testing.T) {
		e := newEnv(t)
		r := e.request(sa.RequestInput{})
		g, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		_, err = e.m.AddGrantee(ctx, g.ID, colleague, engineer)
		require.NoError(t, err)
		_, err = e.m.Check(ctx, "acme", colleague, sa.ScopeRead)
		require.NoError(t, err)
	})
}

func TestAddGranteeRefusals(t *testing.T) {
	t.Run("generic grant", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{})
		before := e.snapshot()
		for _, by := range []sa.Actor{support, customer} {
			_, err := e.m.AddGrantee(ctx, g.ID, colleague, by)
			require.ErrorIs(t, err, sa.ErrInvalidInput, by.Kind)
		}
		require.Equal(t, before, e.snapshot())
	})
	t.Run("support not on the grant", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		_, err := e.m.AddGrantee(ctx, g.ID, support.ID, support)
		require.ErrorIs(t, err, sa.ErrForbidden)
		refused := e.events(sa.EventActionRefused)
		require.Len(t, refused, 1)
		require.Equal(t, string(sa.ActionAddGrantee), refused[0].Attrs[sa.AttrAction])
		require.Equal(t, g.ID, refused[0].GrantID)
		got, err := e.m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got)
	})
	t.Run("the rule holds whatever the authorizer says", func(t *testing.T) {
		e := newEnv(t, sa.WithAuthorizer(func(ctxT, sa.Action, sa.Actor, string) error { return nil }))
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		_, err := e.m.AddGrantee(ctx, g.ID, support.ID, support)
		require.ErrorIs(t, err, sa.ErrForbidden)
	})
	t.Run("system may not by default", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		_, err := e.m.AddGrantee(ctx, g.ID, colleague, system)
		require.ErrorIs(t, err, sa.ErrForbidden)
	})
	t.Run("ended or not yet started", func(t *testing.T) {
		e := newEnv(t)
		exp := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, Duration: time.Hour})
		rev := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, Duration: 3 * time.Hour})
		sch := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, StartsAt: e.now().Add(2 * time.Hour)})
		_, err := e.m.Revoke(ctx, rev.ID, customer, "")
		require.NoError(t, err)
		e.clock.Advance(time.Hour)
		before := e.snapshot()
		for _, id := range []uuid.UUID{exp.ID, rev.ID} {
			for _, by := range []sa.Actor{engineer, customer} {
				_, err := e.m.AddGrantee(ctx, id, colleague, by)
				require.ErrorIs(t, err, sa.ErrInvalidInput)
			}
		}
		_, err = e.m.AddGrantee(ctx, sch.ID, colleague, engineer)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "support delegates only access it has now")
		require.Equal(t, before, e.snapshot())
	})
	t.Run("bad arguments", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		_, err := e.m.AddGrantee(ctx, uuid.New(), colleague, customer)
		require.ErrorIs(t, err, sa.ErrNotFound)
		_, err = e.m.AddGrantee(ctx, uuid.Nil, colleague, customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.AddGrantee(ctx, g.ID, "", customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.AddGrantee(ctx, g.ID, "a\nb", customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = e.m.AddGrantee(ctx, g.ID, colleague, sa.Actor{Kind: sa.ActorCustomer})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	})
	t.Run("at most MaxGrantees", func(t *testing.T) {
		e := newEnv(t)
		names := make([]string, sa.MaxGrantees)
		for i := range names {
			names[i] = fmt.Sprintf("p%03d@vendor.example", i)
		}
		g := e.grant(sa.GrantInput{Grantees: names})
		_, err := e.m.AddGrantee(ctx, g.ID, colleague, customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	})
	t.Run("failing auditor: unchanged", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		m, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithAuditor(sa.MultiAuditor(e.store, failingAuditor{})))
		require.NoError(t, err)
		_, err = m.AddGrantee(ctx, g.ID, colleague, customer)
		require.ErrorIs(t, err, errBoom)
		got, err := e.m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got)
	})
}
