package supportaccess_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Review 62: a first integration into a net/http product.

// Policy.RequireReason and RequireTicketRef make the reason and the ticket
// "mandatory on every grant (ErrInvalidInput when missing)", but only the
// empty string counts as missing: an admin who types a space into the
// reason field (or a no-break or ideographic space, which a reason may
// hold) satisfies the policy, and the trail records a grant whose reason
// reads as blank. The same holds for access requests.
func TestReview62RequiredTextsRefuseBlank(t *testing.T) {
	p := sa.DefaultPolicy()
	p.RequireReason, p.RequireTicketRef = true, true
	for _, tc := range []struct{ name, reason, ticket string }{
		{"reason space", " ", "SUP-1"},
		{"reason spaces and tab", "  \t ", "SUP-1"},
		{"reason no-break space", "\u00a0", "SUP-1"},
		{"reason ideographic space", "\u3000", "SUP-1"},
		{"ticket space", "invoice export fails", " "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sa.WithPolicy(p))
			before := e.snapshot()
			_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer,
				Duration: 24 * time.Hour, Reason: tc.reason, TicketRef: tc.ticket})
			require.ErrorIs(t, err, sa.ErrInvalidInput, "a blank text satisfied the policy's requirement")
			require.Equal(t, before, e.snapshot())

			_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support,
				Duration: 24 * time.Hour, Reason: tc.reason, TicketRef: tc.ticket})
			require.ErrorIs(t, err, sa.ErrInvalidInput, "a blank text satisfied the policy's requirement (request)")
		})
	}
}

// SECURITY.md (Input hygiene) and validate.go: identifiers, ticket refs
// included, may not hold invisible characters "so two identifiers cannot
// differ only by something an audit view does not show". Leading and
// trailing ASCII spaces are accepted, though, and are exactly that: a
// ticket reference pasted as "SUP-1042 " reads as SUP-1042 in every view,
// yet RevokeTicket(…, "SUP-1042", …) — the customer's "end all access for
// this ticket" — leaves that grant active.
func TestReview62TicketRefWithInvisibleSpaceEscapesRevokeTicket(t *testing.T) {
	e := newEnv(t)
	g1 := e.grant(sa.GrantInput{Duration: 24 * time.Hour, TicketRef: "SUP-1042"})
	g2, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 24 * time.Hour, TicketRef: "SUP-1042 "})
	if err != nil {
		// Refusing the padded identifier is one acceptable fix.
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		return
	}
	revoked, err := e.m.RevokeTicket(ctx, "acme", "SUP-1042", customer, "ticket closed")
	require.NoError(t, err)
	ids := make([]string, 0, len(revoked))
	for _, g := range revoked {
		ids = append(ids, g.ID.String())
	}
	require.Contains(t, ids, g1.ID.String())
	require.Contains(t, ids, g2.ID.String(),
		"a grant whose ticket reference differs from SUP-1042 only by a trailing space stayed active after RevokeTicket")
}
