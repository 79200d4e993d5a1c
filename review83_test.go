package supportaccess_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/supportaccess/supportaccess/memstore"

	sa "github.com/supportaccess/supportaccess"
)

// GenericSupportUser's doc: "it reports whether the session's principal is
// pattern with every "{tenant}" replaced by the session's TenantID".
func TestReview83GenericSupportUserEveryPlaceholder(t *testing.T) {
	generic := sa.GenericSupportUser("support+{tenant}@{tenant}.vendor.example")
	s := sa.Session{TenantID: "acme", Principal: "support+acme@acme.vendor.example"}
	require.True(t, generic(s), "principal equals the pattern with every {tenant} replaced")
	require.False(t, generic(sa.Session{TenantID: "acme", Principal: "support+acme@other.vendor.example"}))
}

// WithAuditor: "if any of them fails the change is not made", and the
// other auditors that recorded its events before the failure hold events of
// a change that did not happen; the store's trail holds exactly what
// happened. A refused Approve (its second event refused by the other
// auditor) leaves the request pending and the store's trail without the
// approval.
func TestReview83ApproveRefusedByAuditorLeavesStoreTrailExact(t *testing.T) {
	st := memstore.New()
	aud := &reviewAuditor{fail: sa.EventGrantCreated}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)))
	r := e.request(sa.RequestInput{})
	_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.Error(t, err)
	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status, "the approval did not happen")
	evs, err := st.Events(ctx, sa.AuditFilter{TenantID: r.TenantID, Types: []sa.EventType{sa.EventRequestApproved, sa.EventGrantCreated}})
	require.NoError(t, err)
	require.Empty(t, evs, "the store's trail holds no approval")
	var approved int
	for _, ev := range aud.events {
		if ev.Type == sa.EventRequestApproved {
			approved++
		}
	}
	require.Equal(t, 1, approved, "as WithAuditor documents, the other auditor recorded the first event before refusing the second")
}

// Input limits (validate.go): identifiers "given to Grant, Check, access
// requests, delegation and the middleware may not contain invisible
// characters ... U+0020 at either end"; only filters, cursors, VerifyAudit,
// PurgeAudit, RevokeTenant and RevokeTicket accept them, "so that data
// stored before this rule stays reachable". Approve creates a new grant
// from a request stored before the rule without applying it: the grant's
// ticket "SUP-1042 " reads as SUP-1042 yet escapes RevokeTicket("SUP-1042").
func TestReview83ApproveOfLegacyRequestCreatesGrantGrantWouldRefuse(t *testing.T) {
	e := newEnv(t)
	now := e.now()
	legacy := sa.AccessRequest{
		ID: uuid.New(), TenantID: "acme", RequestedBy: engineer, Duration: sa.Day,
		Scopes: []sa.Scope{sa.ScopeRead}, TicketRef: "SUP-1042 ", Status: sa.RequestPending,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	require.NoError(t, e.store.CreateRequest(ctx, legacy, nil))
	_, gerr := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, TicketRef: legacy.TicketRef})
	require.ErrorIs(t, gerr, sa.ErrInvalidInput, "Grant refuses the ticket")

	g, err := e.m.Approve(ctx, legacy.ID, customer, sa.ApproveInput{})
	revoked, rerr := e.m.RevokeTicket(ctx, "acme", "SUP-1042", customer, "ticket closed")
	require.NoError(t, rerr)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "Approve created grant %v with ticket %q; RevokeTicket(SUP-1042) revoked %d grants", g.ID, g.TicketRef, len(revoked))
}
