package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Regression tests of the twelfth review round: commit af4e52d to the
// middleware's watcher and establish (prefix TestReview12).

// rw12BigTenant gives tenant bigco more grants than the end log keeps
// (endLogSize, 256): its RevokeTenant overflows the log.
func rw12BigTenant(e *mwEnv) {
	for range 260 {
		e.grant(sa.GrantInput{TenantID: "bigco", Duration: sa.Day})
	}
}

// TestReview12EndLogOverflowEndsRequireScopeRequest: while RequireScope's
// Check of messages:read runs, this Manager ends 260 grants of another
// tenant (RevokeTenant of bigco). The end log overflows, so establish is
// "unsure" about grant s — which nobody touched — and since af4e52d marks
// it with grantEnded: endedGrants and grantGone, exactly as if this
// Manager had revoked it. The watcher's re-check is then urgent (100 ms)
// and, with a store taking 150 ms (one the ordinary poll, 250 ms at least,
// waits for), unanswered takes grantGone as "the Manager ended a grant it
// uses" and ends the request (lost scope) — although no grant of acme
// ended, and unanswered's doc promises that a briefly slow store does not
// end requests.
func TestReview12EndLogOverflowEndsRequireScopeRequest(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: sa.Day}) // read: admits the request
	e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	rw12BigTenant(e)
	store.slowWatch.Store(int64(150 * time.Millisecond))
	route := &mwOK{}
	var code int
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoke := func() { // inside RequireScope's Check: bigco's grants end
			_, err := e.m.RevokeTenant(context.Background(), "bigco", mwCustomer, "contract ended")
			require.NoError(t, err)
		}
		store.after.Store(&revoke)
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(route).ServeHTTP(rec, r)
		code = rec.Code
		cause = mwWaitEnd(r, 600*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, cause, "the request was ended though no grant of its tenant ended (end-log overflow taken for an end)")
}

// TestReview12EndLogOverflowAtAdmissionReportedRevoked: the same at
// admission (serveSupport marks the admitting grant with grantEnded when
// the log overflowed during its Check): with the briefly slow store the
// urgent re-check gets no answer, unanswered finds grantGone and
// grantWasEnded(needs[0].id) and ends the request as SessionEndRevoked —
// OnSessionEnded tells the host that the session was revoked while its
// only grant is active and was never touched.
func TestReview12EndLogOverflowAtAdmissionReportedRevoked(t *testing.T) {
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: sa.Day})
	rw12BigTenant(e)
	store.slowWatch.Store(int64(150 * time.Millisecond))
	revoke := func() { // inside the admission Check: bigco's grants end
		_, err := e.m.RevokeTenant(context.Background(), "bigco", mwCustomer, "contract ended")
		require.NoError(t, err)
	}
	store.after.Store(&revoke)
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cause = mwWaitEnd(r, 600*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.NotContains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked, "reported revoked: its grant is active and untouched")
	require.NoError(t, cause, "the request was ended though no grant of its tenant ended")
}
