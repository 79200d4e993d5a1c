package supportaccess_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Approve checks a stored request as Grant checks its input, so a policy
// whose DefaultScopes (granted to a grant or request given none) held more
// than MaxScopes entries made requests the Manager itself created
// unapprovable. Such a policy is refused; one with MaxScopes default
// scopes grants, requests and approves them all.
func TestReview84ApproveRefusesRequestWithPolicyDefaultScopes(t *testing.T) {
	p := sa.DefaultPolicy()
	p.DefaultScopes = nil
	for i := 0; i <= sa.MaxScopes; i++ {
		p.DefaultScopes = append(p.DefaultScopes, sa.Scope(fmt.Sprintf("area%02d:read", i)))
	}
	require.ErrorIs(t, p.Validate(), sa.ErrInvalidInput, "more default scopes than a grant may have")
	_, err := sa.NewManager(memstore.New(), sa.WithPolicy(p))
	require.ErrorIs(t, err, sa.ErrInvalidInput)

	p.DefaultScopes = p.DefaultScopes[:sa.MaxScopes]
	e := newEnv(t, sa.WithPolicy(p))
	g := e.grant(sa.GrantInput{})
	require.Len(t, g.Scopes, sa.MaxScopes, "Grant gives every default scope")
	r := e.request(sa.RequestInput{Reason: "case 42"})
	require.Len(t, r.Scopes, sa.MaxScopes, "the request asks for every default scope")
	ag, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err, "the request the Manager just created is approvable as asked")
	require.Equal(t, r.Scopes, ag.Scopes)
}

// tagSession tags any event whose actor equals the session's support
// principal, whatever its tenant: a named engineer impersonating user g-7
// of globex asks (in the same request) for access to acme, and acme's
// audit trail — which acme's admin reads and exports — now holds globex's
// session id and the id of the globex user being impersonated.
func TestReview84SessionTagDoesNotCrossTenants(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{TenantID: "globex", Grantees: []string{mwEve}})
	e.sessions.add("eve-globex", sa.Session{TenantID: "globex", Principal: mwEve, SubjectUserID: "g-7", SessionID: "s-eve-globex"})
	eve := sa.Actor{Kind: sa.ActorSupport, ID: mwEve}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := e.m.RequestAccess(r.Context(), sa.RequestInput{TenantID: "acme", By: eve, Reason: "same bug at acme"})
		require.NoError(t, err)
		w.WriteHeader(http.StatusNoContent)
	}))
	require.Equal(t, http.StatusNoContent, mwDo(h, mwReq(http.MethodGet, "/cases/42", "eve-globex")).Code)
	evs, err := e.m.Events(context.Background(), sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventRequestCreated}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.NotContains(t, evs[0].Attrs, sa.AttrSubjectUserID, "acme's trail names no globex user")
	require.NotContains(t, evs[0].Attrs, sa.AttrSessionID, "acme's trail names no globex session")
}
