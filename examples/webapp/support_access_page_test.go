package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestSupportAccessPageShowsEveryLiveGrant pins that an active grant older
// than the page's 200 newest ended grants is still listed with its Revoke
// button (an admin must be able to see and end every grant that lets
// support in), that the page says older ended grants were left out, and
// that a grant shows once.
func TestSupportAccessPageShowsEveryLiveGrant(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	alice := sa.Actor{Kind: sa.ActorCustomer, ID: aliceAdmin}
	old, err := e.app.m.Grant(ctx, sa.GrantInput{TenantID: acmeTenantID, By: alice, Duration: 7 * sa.Day, Reason: "the old one"})
	require.NoError(t, err)
	for range shownEndedGrants + 1 {
		e.clock.Advance(time.Second)
		g, err := e.app.m.Grant(ctx, sa.GrantInput{TenantID: acmeTenantID, By: alice, Duration: sa.Day})
		require.NoError(t, err)
		_, err = e.app.m.Revoke(ctx, g.ID, alice, "done")
		require.NoError(t, err)
	}
	page := e.login(aliceAdmin).get("/admin/support-access")
	require.Equal(t, 200, page.StatusCode)
	require.Equal(t, 1, strings.Count(page.Body, `data-grant="`+old.ID.String()+`"`), "the old active grant is listed once")
	require.Contains(t, page.Body, `action="/admin/support-access/grants/`+old.ID.String()+`/revoke"`)
	require.Equal(t, 1+shownEndedGrants, strings.Count(page.Body, `data-grant="`), "every live grant and the newest ended ones")
	require.Equal(t, 1, strings.Count(page.Body, `data-status="active"`))
	require.Contains(t, page.Body, `id="grants-cut"`)
	// The active grant is the oldest: it is listed last.
	require.Greater(t, strings.Index(page.Body, old.ID.String()), strings.LastIndex(page.Body, `data-status="revoked"`))

	// With no more than 200 ended grants, the page says nothing is left out.
	e2 := newTestEnv(t)
	_, err = e2.app.m.Grant(ctx, sa.GrantInput{TenantID: acmeTenantID, By: alice, Duration: sa.Day})
	require.NoError(t, err)
	page = e2.login(aliceAdmin).get("/admin/support-access")
	require.Equal(t, 1, strings.Count(page.Body, `data-grant="`))
	require.NotContains(t, page.Body, `id="grants-cut"`)
}

// TestSupportAccessPageSaysPendingRequestsWereCut pins that with more
// pending access requests than the page shows, it shows the newest 100 and
// says that older ones were left out, and says nothing at exactly 100.
func TestSupportAccessPageSaysPendingRequestsWereCut(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	sam := sa.Actor{Kind: sa.ActorSupport, ID: samEngineer}
	var first sa.AccessRequest
	for i := range shownPendingRequests + 1 {
		e.clock.Advance(time.Second)
		r, err := e.app.m.RequestAccess(ctx, sa.RequestInput{TenantID: acmeTenantID, By: sam, Duration: sa.Day, Reason: "ticket work"})
		require.NoError(t, err)
		if i == 0 {
			first = r
		}
		if i == shownPendingRequests-1 {
			page := e.login(aliceAdmin).get("/admin/support-access")
			require.Equal(t, shownPendingRequests, strings.Count(page.Body, `data-request="`))
			require.NotContains(t, page.Body, `id="requests-cut"`)
		}
	}
	page := e.login(aliceAdmin).get("/admin/support-access")
	require.Equal(t, 200, page.StatusCode)
	require.Equal(t, shownPendingRequests, strings.Count(page.Body, `data-request="`))
	require.NotContains(t, page.Body, `data-request="`+first.ID.String()+`"`, "the oldest is the one left out")
	require.Contains(t, page.Body, `id="requests-cut"`)
}

// TestSupportAccessPageNamesTheRequester pins that a grant made by
// approving an access request shows its reason as the requester's words
// ("asked by …"), not under the approving admin's name alone, and that a
// grant the admin made shows no such label.
func TestSupportAccessPageNamesTheRequester(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	alice := sa.Actor{Kind: sa.ActorCustomer, ID: aliceAdmin}
	req, err := e.app.m.RequestAccess(ctx, sa.RequestInput{TenantID: acmeTenantID, By: sa.Actor{Kind: sa.ActorSupport, ID: samEngineer}, Duration: sa.Day, Reason: "please let me in"})
	require.NoError(t, err)
	approved, err := e.app.m.Approve(ctx, req.ID, alice, sa.ApproveInput{})
	require.NoError(t, err)
	e.clock.Advance(time.Second)
	own, err := e.app.m.Grant(ctx, sa.GrantInput{TenantID: acmeTenantID, By: alice, Duration: sa.Day, Reason: "my own words"})
	require.NoError(t, err)

	page := e.login(aliceAdmin).get("/admin/support-access")
	require.Equal(t, 200, page.StatusCode)
	row := func(id string) string {
		i := strings.Index(page.Body, `data-grant="`+id+`"`)
		require.GreaterOrEqual(t, i, 0)
		end := strings.Index(page.Body[i:], "</tr>")
		require.Greater(t, end, 0)
		return page.Body[i : i+end]
	}
	r := row(approved.ID.String())
	require.Contains(t, r, `asked by `+samEngineer+`:</span> please let me in`)
	require.Contains(t, r, `(approved a request)`)
	r = row(own.ID.String())
	require.Contains(t, r, `my own words`)
	require.NotContains(t, r, `asked by`)
	require.NotContains(t, r, `approved a request`)
}
