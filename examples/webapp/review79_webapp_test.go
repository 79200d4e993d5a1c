package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// review79Message is the message section of a rendered page (title and
// text), whitespace collapsed.
func review79Message(body string) string {
	if i := strings.Index(body, `id="message"`); i >= 0 {
		body = body[i:]
	}
	if i := strings.Index(body, "</section>"); i >= 0 {
		body = body[:i]
	}
	return strings.Join(strings.Fields(body), " ")
}

// TestReview79ForeignTenantRequestRevealsTenant: the README's user table
// promises that support+acme@vendor.example "sees acme only" (the console
// lists only its tenant, and "Sign in as" answers every other ID alike),
// and userMessage's doc says a page shows "the field-naming detail after
// the sentinel for input errors, a generic text otherwise". Since 7676f38
// requestSubmit (requests.go:84-92) refuses only made-up tenant IDs
// itself ("Unknown tenant", 403) and passes a real foreign tenant to
// RequestAccess, whose refusal is rendered with userMessage: the page
// carries the Authorizer's own error text ("Support+acme@vendor.example
// does not belong to tenant globex."), and a request that fails input
// validation first (RequestAccess validates before it authorizes) answers
// 400 "Reason contains a control character". Either way support+acme
// can tell which tenant IDs exist by their answers, which it could not
// before (every foreign ID was "Unknown tenant"). Expected: a foreign
// tenant is answered exactly as a made-up one (RequestAccess may still run
// first, so the refusal stays audited in that tenant's trail).
func TestReview79ForeignTenantRequestRevealsTenant(t *testing.T) {
	e := newTestEnv(t)
	c := e.login(supportAcme)
	for name, reason := range map[string]string{"refused": "let me in", "malformed": "let\x01me in"} {
		t.Run(name, func(t *testing.T) {
			form := func(tenant string) url.Values {
				return url.Values{"tenant": {tenant}, "duration": {"24h0m0s"}, "reason": {reason}}
			}
			madeUp := c.post("/support/requests", form("initech"))
			require.Equal(t, http.StatusForbidden, madeUp.StatusCode)
			require.Contains(t, madeUp.Body, "Unknown tenant")

			foreign := c.post("/support/requests", form("globex"))
			require.NotContains(t, foreign.Body, "does not belong to tenant",
				"the refusal page shows the Authorizer's own error text")
			require.Equal(t, madeUp.StatusCode, foreign.StatusCode,
				"support+acme tells the existing tenant globex from the made-up initech by the status")
			require.Equal(t, review79Message(madeUp.Body), review79Message(foreign.Body),
				"support+acme tells the existing tenant globex from the made-up initech by the page")
		})
	}
}
