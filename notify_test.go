package supportaccess_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestNotifierToldAfterCommit(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	// Inside Notify the change is already visible in the store.
	n.during = func(x sa.Notification) {
		switch x.Type {
		case sa.EventRequestCreated, sa.EventRequestDenied:
			r, err := e.store.GetRequest(ctx, x.RequestID)
			require.NoError(t, err)
			if x.Type == sa.EventRequestDenied {
				require.Equal(t, sa.RequestDenied, r.Status)
			}
		default:
			g, err := e.store.GetGrant(ctx, x.GrantID)
			require.NoError(t, err, x.Type)
			switch x.Type {
			case sa.EventGrantRevoked:
				require.False(t, g.RevokedAt.IsZero())
			case sa.EventGrantExtended:
				require.Equal(t, x.ExpiresAt, g.ExpiresAt)
			case sa.EventGrantDelegated:
				require.Contains(t, g.Grantees, x.Principal)
			}
		}
		require.NotEmpty(t, e.events(x.Type), "%s audited before the notification", x.Type)
	}
	g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, Duration: time.Hour, Reason: "r", TicketRef: "T-1"})
	_, err := e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
	require.NoError(t, err)
	_, err = e.m.AddGrantee(ctx, g.ID, colleague, engineer)
	require.NoError(t, err)
	r := e.request(sa.RequestInput{})
	_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	d := e.request(sa.RequestInput{})
	_, err = e.m.Deny(ctx, d.ID, customer, "no")
	require.NoError(t, err)
	_, err = e.m.Revoke(ctx, g.ID, customer, "done")
	require.NoError(t, err)
	x := e.grant(sa.GrantInput{Duration: time.Minute})
	e.clock.Set(x.ExpiresAt)
	e.sweep()
	require.Equal(t, []sa.EventType{
		sa.EventGrantCreated, sa.EventGrantExtended, sa.EventGrantDelegated,
		sa.EventRequestCreated, sa.EventRequestApproved, sa.EventRequestCreated, sa.EventRequestDenied,
		sa.EventGrantRevoked, sa.EventGrantCreated, sa.EventGrantExpired,
	}, n.types())
	first := n.all[0]
	require.Equal(t, "acme", first.TenantID)
	require.Equal(t, customer, first.By)
	require.Equal(t, []string{engineer.ID}, first.Grantees, "who got access")
	require.Equal(t, "r", first.Reason)
	require.Equal(t, "T-1", first.TicketRef)
	require.Equal(t, g.ExpiresAt, first.ExpiresAt, "until when")
	last := n.all[len(n.all)-1]
	require.Equal(t, sa.ActorSystem, last.By.Kind)
	require.Equal(t, x.ID, last.GrantID)
	require.Empty(t, e.events(sa.EventNotifyFailed))
}

func TestNotifierFailureNeverUndoes(t *testing.T) {
	n := &notes{fail: errors.New("smtp down")}
	handled := &errs{}
	e := newEnv(t, sa.WithNotifier(n), sa.WithErrorHandler(handled.handle))
	g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
	_, err := e.m.AddGrantee(ctx, g.ID, colleague, customer)
	require.NoError(t, err, "the change stands")
	r := e.request(sa.RequestInput{})
	_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	got, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Contains(t, got.Grantees, colleague)

	failed := e.events(sa.EventNotifyFailed)
	require.Len(t, failed, 4) // grant.created, grant.delegated, request.created, request.approved
	require.Equal(t, string(sa.EventGrantDelegated), failed[1].Attrs[sa.AttrAction])
	require.Equal(t, "smtp down", failed[1].Attrs[sa.AttrError])
	require.Equal(t, g.ID, failed[1].GrantID)
	require.Equal(t, string(sa.EventRequestCreated), failed[2].Attrs[sa.AttrAction])
	require.Equal(t, r.ID.String(), failed[2].Attrs[sa.AttrRequestID])
	require.Equal(t, sa.ActorSystem, failed[2].Actor.Kind)
	require.Len(t, handled.list(), 4)
	require.ErrorContains(t, handled.list()[1], "smtp down")

	t.Run("a panicking notifier is a failure", func(t *testing.T) {
		e := newEnv(t, sa.WithErrorHandler(func(context.Context, error) {}),
			sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error { panic("oops") })))
		e.grant(sa.GrantInput{})
		failed := e.events(sa.EventNotifyFailed)
		require.Len(t, failed, 1)
		require.Contains(t, failed[0].Attrs[sa.AttrError], "oops")
	})
	t.Run("NotifierFunc adapts a function", func(t *testing.T) {
		var got sa.Notification
		f := sa.NotifierFunc(func(_ context.Context, n sa.Notification) error { got = n; return nil })
		require.NoError(t, f.Notify(ctx, sa.Notification{TenantID: "acme"}))
		require.Equal(t, "acme", got.TenantID)
	})
	t.Run("notifications are copies", func(t *testing.T) {
		e := newEnv(t, sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
			n.Grantees[0] = "mallory@evil.example"
			return nil
		})))
		g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		got, err := e.m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, []string{engineer.ID}, got.Grantees)
		require.Equal(t, []string{engineer.ID}, g.Grantees)
	})
}
