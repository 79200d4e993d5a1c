package main

// Review 141: adversarial tests of the webapp's rewritten support-session
// continuity rule (access.go markAdmitted, coveredSince, grantEnd and
// notified; sessions.go impersonation.LastAdmitted and admitted). The
// README promises: "a request admitted on a grant that started since then
// goes on only if grants covered the session without a gap meanwhile
// (each from its start to its end or revocation); otherwise ... it ends
// the session too." A session kept across a gap is a revival (the audit
// session of one access continues under another); a session ended
// although grants covered it all along is a denial of service for
// support. A passing test is an attack that failed.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// rv141Store is a memstore whose ListGrants a test can watch and bend:
// calls are counted; while fail is set it fails like a database outage;
// extra grants are appended to what it lists (a store that does not apply
// the filter); a non-nil only replaces the list altogether.
type rv141Store struct {
	*memstore.Store
	calls atomic.Int64
	fail  atomic.Bool
	extra atomic.Pointer[[]sa.Grant]
	only  atomic.Pointer[[]sa.Grant]
}

func (s *rv141Store) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return nil, errors.New("review141: database unreachable")
	}
	if p := s.only.Load(); p != nil {
		return append([]sa.Grant(nil), *p...), nil
	}
	gs, err := s.Store.ListGrants(ctx, f, now)
	if p := s.extra.Load(); err == nil && p != nil {
		gs = append(gs, *p...)
	}
	return gs, err
}

// rv141Env is newTestEnv on an rv141Store.
func rv141Env(t *testing.T) (*testEnv, *rv141Store) {
	t.Helper()
	st := &rv141Store{Store: memstore.New()}
	return newTestEnvOn(t, st, st.Store), st
}

// rv141Grant has alice grant access to acme through the Manager: to the
// named grantees (none: any support principal), from start (zero: now)
// for d.
func rv141Grant(t *testing.T, e *testEnv, start time.Time, d time.Duration, grantees ...string) sa.Grant {
	t.Helper()
	g, err := e.app.m.Grant(context.Background(), sa.GrantInput{
		TenantID: acmeTenantID, Grantees: grantees, StartsAt: start, Duration: d,
		Reason: "review 141", By: rv136Alice(t, e),
	})
	require.NoError(t, err)
	return g
}

// rv141Get has sam request a tenant page and reports whether his first
// support session served it (see review131SessionResumed).
func rv141Get(t *testing.T, e *testEnv, sam *client) (resp, bool) {
	t.Helper()
	r := sam.get("/app/settings")
	return r, review131SessionResumed(t, e, r)
}

// TestReview141DelegatedGrantDoesNotReviveTheSession attacks the rule's
// premise that "each [grant] covers the session's principal from its
// start": AddGrantee adds a principal to a running grant, and the grant's
// Grantees as listed (or as handed to the middleware) say nothing of when
// he was added. Sam's named grant G1 expires; an hour without access
// follows; then the generic acme support account (a grantee of Go, which
// support may delegate: "support may add further personnel to a case it
// works on") or alice adds sam to Go. Sam's old session must not resume:
// no grant covered him during that hour.
//
// "fast path": Go started before sam's last admitted request, so
// coveredSince does not even list ("g itself covered the whole time").
// "list path": Go started after it; the listed Go covers sam from its
// start.
func TestReview141DelegatedGrantDoesNotReviveTheSession(t *testing.T) {
	for _, tc := range []struct {
		name     string
		goAfter  time.Duration // Go's start, after sam's session was admitted
		delegate sa.Actor
	}{
		{"fast path", 0, sa.Actor{Kind: sa.ActorSupport, ID: supportAcme}},
		{"list path", time.Hour, sa.Actor{Kind: sa.ActorCustomer, ID: aliceAdmin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			rv141Grant(t, e, time.Time{}, sa.Day, samEngineer) // G1
			var gOther sa.Grant
			if tc.goAfter == 0 {
				gOther = rv141Grant(t, e, time.Time{}, 7*sa.Day, supportAcme)
			}
			sam := rv136Impersonate(t, e) // admitted at t0 on G1
			if tc.goAfter > 0 {
				e.clock.Advance(tc.goAfter)
				gOther = rv141Grant(t, e, time.Time{}, 7*sa.Day, supportAcme)
			}
			e.clock.Advance(26*time.Hour - tc.goAfter) // G1 ended two hours ago, not swept
			_, err := e.app.m.AddGrantee(context.Background(), gOther.ID, samEngineer, tc.delegate)
			require.NoError(t, err)
			r, resumed := rv141Get(t, e, sam)
			require.False(t, resumed, "the session resumed after two hours without access (status %d)", r.StatusCode)
		})
	}
}

// TestReview141ClockStepBackDoesNotReviveTheSession attacks admitted,
// which keeps the latest LastAdmitted, and coveredSince's fast path,
// which trusts any grant that started before it: the server's clock runs
// 19 hours fast while sam works (LastAdmitted lies in the future once it
// is corrected). After the correction alice shortens G1 (Extend), it
// ends, an hour passes without any grant, and alice grants G2. G2 started
// "before" the future LastAdmitted, so the old session resumes. Must
// fail: between G1's end and G2's start nothing covered the session.
func TestReview141ClockStepBackDoesNotReviveTheSession(t *testing.T) {
	e := newTestEnv(t)
	g1 := rv141Grant(t, e, time.Time{}, sa.Day)
	sam := rv136Impersonate(t, e)
	e.clock.Advance(20 * time.Hour) // the clock is 19 h fast
	_, resumed := rv141Get(t, e, sam)
	require.True(t, resumed)
	e.clock.Advance(-19 * time.Hour) // NTP steps it back: t0+1h
	_, err := e.app.m.Extend(context.Background(), g1.ID, e.clock.Now().Add(time.Hour), rv136Alice(t, e))
	require.NoError(t, err)
	e.clock.Advance(2 * time.Hour) // G1 ended an hour ago, not swept
	rv141Grant(t, e, time.Time{}, sa.Day)
	r, resumed := rv141Get(t, e, sam)
	require.False(t, resumed, "the session resumed after an hour without access (status %d)", r.StatusCode)
}

// TestReview141CoveredSinceTable attacks coveredSince itself with listed
// grants built to sit on its boundaries (microseconds, revocations before
// or at the start, unlimited grants, other principals, other tenants,
// order). L is the session's last admitted request, now is 30 hours
// later; g, the admitting grant, started after L (so the list is read).
// Each case says whether the session must go on.
func TestReview141CoveredSinceTable(t *testing.T) {
	e, st := rv141Env(t)
	L := t0
	now := t0.Add(30 * time.Hour)
	µs := time.Microsecond
	mk := func(start, end, revoked time.Time, grantees ...string) sa.Grant {
		return sa.Grant{
			ID: uuid.New(), TenantID: acmeTenantID, Grantees: grantees, Scopes: []sa.Scope{sa.ScopeRead},
			CreatedAt: start, StartsAt: start, ExpiresAt: end, RevokedAt: revoked,
		}
	}
	var none time.Time
	h := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }
	cur := mk(h(26), h(50), none) // the admitting grant (when listed)
	chain := func(n int) []sa.Grant {
		// n adjacent one-hour-ish grants from L to 26 h, newest first, as
		// List orders them: each pass of coveredSince moves one step.
		var gs []sa.Grant
		step := 26 * time.Hour / time.Duration(n)
		for i := n - 1; i >= 0; i-- {
			end := L.Add(step * time.Duration(i+1))
			if i == n-1 {
				end = h(26)
			}
			gs = append(gs, mk(L.Add(step*time.Duration(i)), end, none))
		}
		return gs
	}
	cases := []struct {
		name    string
		grants  []sa.Grant
		covered bool
	}{
		{"adjacent end == start", []sa.Grant{cur, mk(h(-1), h(26), none)}, true},
		{"one microsecond gap", []sa.Grant{cur, mk(h(-1), h(26).Add(-µs), none)}, false},
		{"grant ended exactly at L", []sa.Grant{cur, mk(h(-1), L, none), mk(L.Add(µs), h(27), none)}, false},
		{"grant starting exactly at L", []sa.Grant{cur, mk(L, h(26), none)}, true},
		{"revoked at its start bridges nothing", []sa.Grant{cur, mk(h(-1), h(2), none), mk(h(2), h(40), h(2))}, false},
		{"scheduled, revoked before its start", []sa.Grant{cur, mk(h(-1), h(2), none), mk(h(1), h(40), h(0.5))}, false},
		{"revoked the microsecond the next one starts", []sa.Grant{cur, mk(h(-1), h(40), h(26))}, true},
		{"revoked a microsecond before the next one starts", []sa.Grant{cur, mk(h(-1), h(40), h(26).Add(-µs))}, false},
		{"unlimited, revoked", []sa.Grant{cur, mk(h(-1), none, h(3))}, false},
		{"unlimited", []sa.Grant{cur, mk(h(-1), none, none)}, true},
		{"another principal's grant", []sa.Grant{cur, mk(h(-1), h(2), none, samEngineer), mk(h(1), h(40), none, supportAcme)}, false},
		{"a grant open to any principal", []sa.Grant{cur, mk(h(-1), h(2), none, samEngineer), mk(h(1), h(40), none)}, true},
		{"revoked after its own end", []sa.Grant{cur, mk(h(-1), h(2), h(30))}, false},
		{"many out of order", append(chain(60), cur), true},
		{"many out of order, one missing", append(append(chain(60)[:30:30], chain(60)[31:]...), cur), false},
		{"nothing listed", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gs := tc.grants
			st.only.Store(&gs)
			imp := impersonation{ID: "x", TenantID: acmeTenantID, Principal: samEngineer, Admitted: true, LastAdmitted: L}
			got, err := e.app.coveredSince(context.Background(), imp, cur, now)
			require.NoError(t, err)
			require.Equal(t, tc.covered, got)
		})
	}

	// A store that lists another tenant's grant for acme (the filter not
	// applied) does not bridge the gap: the Manager leaves it out.
	t.Run("another tenant's grant listed", func(t *testing.T) {
		foreign := mk(h(-1), h(40), none)
		foreign.TenantID = "globex"
		gs := []sa.Grant{cur, mk(h(-1), h(2), none), foreign}
		st.only.Store(&gs)
		imp := impersonation{ID: "x", TenantID: acmeTenantID, Principal: samEngineer, Admitted: true, LastAdmitted: L}
		got, err := e.app.coveredSince(context.Background(), imp, cur, now)
		require.NoError(t, err)
		require.False(t, got)
	})
}

// TestReview141ForeignGrantListedOverHTTP is the table's last case end to
// end: sam's grant expires, a store that does not apply the tenant filter
// lists globex's long grant (open to any principal) for acme, alice
// grants again after a gap, and sam's old session must not resume.
func TestReview141ForeignGrantListedOverHTTP(t *testing.T) {
	e, st := rv141Env(t)
	rv141Grant(t, e, time.Time{}, sa.Day)
	sam := rv136Impersonate(t, e)
	foreign := []sa.Grant{{
		ID: uuid.New(), TenantID: "globex", Scopes: []sa.Scope{sa.ScopeRead},
		CreatedAt: t0.Add(-time.Hour), StartsAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(7 * sa.Day),
	}}
	st.extra.Store(&foreign)
	e.clock.Advance(26 * time.Hour)
	rv141Grant(t, e, time.Time{}, sa.Day)
	r, resumed := rv141Get(t, e, sam)
	require.False(t, resumed)
	require.Equal(t, http.StatusForbidden, r.StatusCode)
}

// TestReview141RevokeAtTheMicrosecondTheNextStarts attacks the Notifier's
// half at its boundary, both ways. Alice scheduled G2 to start at T and
// revokes G1 at exactly T: G2 took over without a gap, so the Notifier of
// the revocation keeps the session and its next request goes on (denial
// of service otherwise). G2 starting a microsecond after the revocation
// leaves a gap: the Notifier ends the session at once.
func TestReview141RevokeAtTheMicrosecondTheNextStarts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
		goes  bool
	}{{"adjacent", 0, true}, {"one microsecond later", time.Microsecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			g1 := rv141Grant(t, e, time.Time{}, sa.Day)
			sam := rv136Impersonate(t, e)
			T := t0.Add(5 * time.Hour)
			rv141Grant(t, e, T.Add(tc.delay), sa.Day)
			e.clock.Advance(5 * time.Hour)
			_, err := e.app.m.Revoke(context.Background(), g1.ID, rv136Alice(t, e), "done")
			require.NoError(t, err)
			require.Len(t, e.app.sessions.impersonationsOf(acmeTenantID), map[bool]int{true: 1, false: 0}[tc.goes])
			e.clock.Advance(time.Minute)
			r, resumed := rv141Get(t, e, sam)
			require.Equal(t, tc.goes, resumed, "status %d", r.StatusCode)
		})
	}
}

// TestReview141ListOnlyWhenTheAdmittingGrantIsNewer checks the rule's
// cost promise ("listed when the admitting grant is newer than that
// request"): requests under the grant that admitted the last one do not
// list; the first request admitted on a newer grant lists once, and the
// next ones do not (LastAdmitted moved past the new grant's start).
func TestReview141ListOnlyWhenTheAdmittingGrantIsNewer(t *testing.T) {
	e, st := rv141Env(t)
	rv141Grant(t, e, time.Time{}, sa.Day)
	sam := rv136Impersonate(t, e)
	base := st.calls.Load()
	for range 5 {
		e.clock.Advance(time.Minute)
		_, resumed := rv141Get(t, e, sam)
		require.True(t, resumed)
	}
	require.Equal(t, base, st.calls.Load(), "no List under the same grant")

	e.clock.Advance(time.Hour)
	rv141Grant(t, e, time.Time{}, 7*sa.Day) // ends last: admits from now on
	base = st.calls.Load()
	e.clock.Advance(time.Minute)
	_, resumed := rv141Get(t, e, sam)
	require.True(t, resumed)
	require.Equal(t, base+1, st.calls.Load(), "one List for the first request on the newer grant")
	for range 3 {
		e.clock.Advance(time.Minute)
		_, resumed = rv141Get(t, e, sam)
		require.True(t, resumed)
	}
	require.Equal(t, base+1, st.calls.Load(), "no List once the newer grant admitted a request")
}

// TestReview141ListOutageRefusesWithoutServing attacks markAdmitted when
// the List it needs fails: the request must not be served (fail closed;
// nothing of the tenant's shown): a 503 "try again", as for any outage.
// The session is judged again at its next request (review 141 found that
// ending it told support, wrongly, that the grant had ended); with the
// outage over, it goes on.
func TestReview141ListOutageRefusesWithoutServing(t *testing.T) {
	e, st := rv141Env(t)
	rv141Grant(t, e, time.Time{}, sa.Day)
	sam := rv136Impersonate(t, e)
	e.clock.Advance(time.Hour)
	rv141Grant(t, e, time.Time{}, 7*sa.Day) // newer, ends last: the List is needed
	e.clock.Advance(time.Minute)
	st.fail.Store(true)
	r := sam.get("/app/settings")
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
	require.NotContains(t, r.Body, "Settings</h1>")
	require.Contains(t, r.Body, "cannot be verified right now")
	require.Len(t, e.app.sessions.impersonationsOf(acmeTenantID), 1, "kept: judged again at the next request")
	st.fail.Store(false)
	r, resumed := rv141Get(t, e, sam)
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.True(t, resumed, "covered without a gap: the same session")
}

// TestReview141ExpiredUnsweptGrantCannotBeExtendedIntoContinuity attacks
// the list path through Extend: sam's only grant expired an hour ago (no
// Sweep yet); if alice could still extend it, the listed grant would
// cover the gap and the session would resume. Extend must refuse.
func TestReview141ExpiredUnsweptGrantCannotBeExtendedIntoContinuity(t *testing.T) {
	e := newTestEnv(t)
	g1 := rv141Grant(t, e, time.Time{}, sa.Day)
	sam := rv136Impersonate(t, e)
	e.clock.Advance(25 * time.Hour)
	_, err := e.app.m.Extend(context.Background(), g1.ID, e.clock.Now().Add(sa.Day), rv136Alice(t, e))
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	rv141Grant(t, e, time.Time{}, sa.Day)
	_, resumed := rv141Get(t, e, sam)
	require.False(t, resumed)
}

// TestReview141RacingRequestsAndSweep attacks the rule with concurrency:
// several requests of sam's session race a Sweep whose Notifier checks
// the same session. After a gap, none may be served in the old session
// (whichever of markAdmitted and the Notifier looks first). Covered
// without a gap, none may end it.
func TestReview141RacingRequestsAndSweep(t *testing.T) {
	for _, gap := range []bool{true, false} {
		t.Run(fmt.Sprintf("gap=%v", gap), func(t *testing.T) {
			e := newTestEnv(t)
			rv141Grant(t, e, time.Time{}, sa.Day)
			sam := rv136Impersonate(t, e)
			if gap {
				e.clock.Advance(25 * time.Hour)
				rv141Grant(t, e, time.Time{}, sa.Day)
			} else {
				e.clock.Advance(12 * time.Hour)
				rv141Grant(t, e, time.Time{}, sa.Day)
				e.clock.Advance(13 * time.Hour)
			}
			var wg sync.WaitGroup
			codes := make(chan int, 8)
			for range 6 {
				wg.Go(func() {
					r := sam.get("/app/settings")
					codes <- r.StatusCode
				})
			}
			wg.Go(func() {
				_, err := e.app.m.Sweep(context.Background())
				require.NoError(t, err)
			})
			wg.Wait()
			close(codes)
			evs := e.events(acmeTenantID, sa.EventSupportRequest)
			first := evs[0].Attrs[sa.AttrSessionID]
			if gap {
				// A request that arrives once another ended the session
				// is no longer one of the session (its cookie names none):
				// it may get the support console (200), never the page.
				for _, ev := range evs[1:] {
					require.NotEqual(t, "200", ev.Attrs[sa.AttrStatus], "served in the old session after the gap")
				}
				require.Empty(t, e.app.sessions.impersonationsOf(acmeTenantID))
				return
			}
			for c := range codes {
				require.Equal(t, http.StatusOK, c)
			}
			require.Len(t, e.app.sessions.impersonationsOf(acmeTenantID), 1)
			for _, ev := range evs {
				require.Equal(t, first, ev.Attrs[sa.AttrSessionID])
			}
		})
	}
}

// TestReview141LongChainCost measures coveredSince's worst case: the
// tenant's grants listed newest first, each adjacent to the next, so that
// each pass over the list moves the covered time one grant only (n
// passes of n grants). It must still answer correctly; the time is
// logged (see the report: quadratic in the tenant's grants).
func TestReview141LongChainCost(t *testing.T) {
	e, st := rv141Env(t)
	L := t0
	const n = 4000
	step := 26 * time.Hour / n
	gs := make([]sa.Grant, 0, n+1)
	for i := n - 1; i >= 0; i-- {
		s := L.Add(step * time.Duration(i))
		gs = append(gs, sa.Grant{ID: uuid.New(), TenantID: acmeTenantID, Scopes: []sa.Scope{sa.ScopeRead},
			CreatedAt: s, StartsAt: s, ExpiresAt: s.Add(step)})
	}
	cur := sa.Grant{ID: uuid.New(), TenantID: acmeTenantID, Scopes: []sa.Scope{sa.ScopeRead},
		CreatedAt: L.Add(step * n), StartsAt: L.Add(step * n), ExpiresAt: t0.Add(50 * time.Hour)}
	gs = append([]sa.Grant{cur}, gs...)
	st.only.Store(&gs)
	imp := impersonation{ID: "x", TenantID: acmeTenantID, Principal: samEngineer, Admitted: true, LastAdmitted: L}
	start := time.Now()
	got, err := e.app.coveredSince(context.Background(), imp, cur, t0.Add(30*time.Hour))
	took := time.Since(start)
	require.NoError(t, err)
	require.True(t, got)
	t.Logf("coveredSince over a chain of %d grants listed newest first: %v", n, took)
}
