package supportaccess_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestRevokeTicketKeepsOtherTickets(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	open1 := e.grant(sa.GrantInput{TicketRef: "T-1", Grantees: []string{engineer.ID}})
	sched1 := e.grant(sa.GrantInput{TicketRef: "T-1", StartsAt: e.now().Add(time.Hour)})
	short1 := e.grant(sa.GrantInput{TicketRef: "T-1", Duration: time.Minute})
	other := e.grant(sa.GrantInput{TicketRef: "T-2", Grantees: []string{engineer.ID}, Scopes: []sa.Scope{sa.ScopeWrite}})
	globex := e.grant(sa.GrantInput{TenantID: "globex", TicketRef: "T-1", Grantees: []string{engineer.ID}})
	e.clock.Advance(2 * time.Minute) // short1 expired

	got, err := e.m.RevokeTicket(ctx, "acme", "T-1", customer, "ticket closed")
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{open1.ID, sched1.ID}, ids(got), "active and scheduled grants of the ticket")
	for _, g := range got {
		require.Equal(t, "ticket closed", g.RevokeReason)
	}
	c, err := e.m.Check(ctx, "acme", engineer.ID, sa.ScopeWrite)
	require.NoError(t, err, "T-2 keeps its access")
	require.Equal(t, other.ID, c.ID)
	c, err = e.m.Check(ctx, "globex", engineer.ID, sa.ScopeRead)
	require.NoError(t, err, "the same ticket reference of another tenant is untouched")
	require.Equal(t, globex.ID, c.ID)
	exp, err := e.m.Get(ctx, short1.ID)
	require.NoError(t, err)
	require.Equal(t, sa.StatusExpired, exp.Status(e.now()), "an expired grant stays expired")

	listed, err := e.m.List(ctx, sa.ListFilter{TenantID: "acme", TicketRef: "T-1", Statuses: []sa.Status{sa.StatusRevoked}})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{open1.ID, sched1.ID}, ids(listed))
	require.Len(t, e.events(sa.EventGrantRevoked), 2)
	require.Equal(t, 2, countType(n.types(), sa.EventGrantRevoked))

	again, err := e.m.RevokeTicket(ctx, "acme", "T-1", customer, "")
	require.NoError(t, err)
	require.Empty(t, again, "nothing left to revoke")

	t.Run("support gives back only its own", func(t *testing.T) {
		e := newEnv(t)
		mine := e.grant(sa.GrantInput{TicketRef: "T-5", Grantees: []string{engineer.ID}})
		theirs := e.grant(sa.GrantInput{TicketRef: "T-5", Grantees: []string{colleague}})
		got, err := e.m.RevokeTicket(ctx, "acme", "T-5", engineer, "done")
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{mine.ID}, ids(got))
		_, err = e.m.Check(ctx, "acme", colleague, sa.ScopeRead)
		require.NoError(t, err)
		_ = theirs
	})
	t.Run("approved request grants carry the ticket", func(t *testing.T) {
		e := newEnv(t)
		r := e.request(sa.RequestInput{TicketRef: "T-8"})
		g, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		got, err := e.m.RevokeTicket(ctx, "acme", "T-8", customer, "closed")
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{g.ID}, ids(got))
	})
	t.Run("bad input", func(t *testing.T) {
		e := newEnv(t)
		e.grant(sa.GrantInput{TicketRef: "T-1"})
		before := e.snapshot()
		for _, tc := range []struct{ tenant, ticket string }{{"acme", ""}, {"", "T-1"}, {"acme", "T\x00"}} {
			_, err := e.m.RevokeTicket(ctx, tc.tenant, tc.ticket, customer, "")
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		}
		require.Equal(t, before, e.snapshot())
	})
}
