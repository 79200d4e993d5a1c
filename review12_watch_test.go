package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Regression tests of the twelfth review round: commit af4e52d to the
// middleware's watcher and establish (prefix TestReview12).

// rw12Store is a memstore that is briefly slow to answer the watcher (its
// Checks have a deadline): slow before each such answer, giving up when the
// context ends — a healthy store under some load, which the watcher's
// ordinary polls (at least minRecheckTimeout, 250 ms) wait for. after runs
// once, right after the store read a Check's grant.
type rw12Store struct {
	*mwStore
	slow  atomic.Int64 // time.Duration
	after atomic.Pointer[func()]
}

func (s *rw12Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if _, watcher := ctx.Deadline(); watcher {
		if d := time.Duration(s.slow.Load()); d > 0 {
			select {
			case <-ctx.Done():
				return sa.Grant{}, ctx.Err()
			case <-time.After(d):
			}
		}
	}
	g, err := s.mwStore.FindActiveGrant(ctx, tenantID, principal, scope, now)
	if f := s.after.Swap(nil); f != nil {
		(*f)()
	}
	return g, err
}

func newRW12Env(t *testing.T) (*mwEnv, *rw12Store) {
	e := newMWEnv(t)
	store := &rw12Store{mwStore: &mwStore{Store: memstore.New()}}
	m, err := sa.NewManager(store, sa.WithNow(e.clock.Now), sa.WithErrorHandler(e.errs.handle))
	require.NoError(t, err)
	e.m, e.store = m, store.mwStore
	return e, store
}

// rw12BigTenant gives tenant bigco more grants than the end log keeps
// (endLogSize, 256): its RevokeTenant overflows the log.
func rw12BigTenant(e *mwEnv) {
	for range 260 {
		e.grant(sa.GrantInput{TenantID: "bigco", Duration: sa.Day})
	}
}

// rw12Wait waits (real time, well under 1 s) for r's context to end and
// returns its cause (nil if it did not end).
func rw12Wait(r *http.Request) error {
	select {
	case <-r.Context().Done():
	case <-time.After(600 * time.Millisecond):
	}
	return context.Cause(r.Context())
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
	e, store := newRW12Env(t)
	e.grant(sa.GrantInput{Duration: sa.Day}) // read: admits the request
	e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	rw12BigTenant(e)
	store.slow.Store(int64(150 * time.Millisecond))
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
		cause = rw12Wait(r)
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
	e, store := newRW12Env(t)
	e.grant(sa.GrantInput{Duration: sa.Day})
	rw12BigTenant(e)
	store.slow.Store(int64(150 * time.Millisecond))
	revoke := func() { // inside the admission Check: bigco's grants end
		_, err := e.m.RevokeTenant(context.Background(), "bigco", mwCustomer, "contract ended")
		require.NoError(t, err)
	}
	store.after.Store(&revoke)
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cause = rw12Wait(r)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.NotContains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked, "reported revoked: its grant is active and untouched")
	require.NoError(t, cause, "the request was ended though no grant of its tenant ended")
}
