package supportaccess_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview21RefusedOwnWriteAuditedAsTaken (5508257): a POST admitted
// with write on its only grant g passes a nested Middleware of the same
// Manager (the usual two-layer setup). Before the inner layer runs, g's
// end passes by the Manager's clock, so the inner layer's establish(write)
// finds no grant and refuses write on the middleware's writer: the refusal
// is the response, the inner handler never runs. recordedElsewhere now
// adds needs[0] (write, g) because it is write — although the
// access.denied event just recorded names that very scope and grant
// (refused), the case its own comment excludes ("when the access.denied
// event does not say it already"). The trail then holds, at the same
// instant after g ended, access.denied(write, g) and support.scope(write,
// g): support "took" write on an expired grant for a request whose handler
// never ran.
func TestReview21RefusedOwnWriteAuditedAsTaken(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}})
	inner := &mwOK{}
	innerMW := e.wrap(inner)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.clock.Advance(2 * time.Hour) // g's end passes before the inner layer
		innerMW.ServeHTTP(w, r)
	}))
	rec := mwDo(h, mwReq(http.MethodPost, "/messages", "generic"))
	require.Zero(t, inner.calls.Load(), "precondition: the inner handler never ran")
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, e.events(sa.EventSupportRequest), "precondition: the refusal is the response")
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, 1)
	require.Equal(t, string(sa.ScopeWrite), denied[0].Attrs[sa.AttrScope], "precondition: write itself was refused")
	require.Empty(t, e.events(sa.EventSupportScope),
		"write on grant %s was refused (access.denied names it) and nothing ran on it, yet a support.scope event says it was taken (events: %s)",
		g.ID, mwJSON(t, e.events()))
}
