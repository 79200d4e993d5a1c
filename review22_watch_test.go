// Review 22 of the middleware (38722e7, 5508257, 8dcbfae, ad76bc2 and the
// grants that take over an in-flight request) — prefix TestReview22.

package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// rw22Names reports whether a support.request, support.scope or
// support.change event names grant id (as its GrantID or in
// elevated_grant_ids) together with scope s.
func rw22Names(e *mwEnv, id string, s sa.Scope) bool {
	for _, ev := range e.events(sa.EventSupportRequest, sa.EventSupportScope, sa.EventSupportChange) {
		if !strings.Contains(","+ev.Attrs[sa.AttrScope]+",", ","+string(s)+",") {
			continue
		}
		if ev.GrantID.String() == id || strings.Contains(ev.Attrs[sa.AttrElevatedGrantIDs], id) {
			return true
		}
	}
	return false
}

// TestReview22RefusalForgetsScopeTakenOnAdmittingGrantThenReplaced:
// establish's admitting-grant shortcut (st.grant allows s, admittedEnd ok)
// sets the need and lets the part run with take(gr.ID, false): no markUsed.
// When a later check then replaces that need by another grant (here: A is
// revoked on this Manager and a second part behind the same scope Checks
// and finds B), nothing remembers that a part ran on A with s. A
// RequireScope refusal that then becomes the response makes
// recordedElsewhere return needs[1:] (s on B) and used (s on B) only: no
// support event names s on A, although the first part ran on it. (Without
// the refusal the support.request event would: GrantID A, scopes
// read,messages:write.) The same hole review19 closed for parts admitted
// by a Check (markUsed), left open on the shortcut path.
func TestReview22RefusalForgetsScopeTakenOnAdmittingGrantThenReplaced(t *testing.T) {
	const billing, msgs sa.Scope = "billing:read", "messages:write"
	e := newMWEnv(t)
	// A ends later: Check picks it for read (admission) and for msgs.
	a := e.grant(sa.GrantInput{Duration: 3 * time.Hour, Scopes: []sa.Scope{sa.ScopeRead, msgs}})
	b := e.grant(sa.GrantInput{Duration: 2 * time.Hour, Scopes: []sa.Scope{sa.ScopeRead, msgs}})
	first, second, summary := &mwOK{}, &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, _ := sa.GrantFromContext(r.Context())
		require.Equal(t, a.ID, g.ID, "precondition: A admitted the request")
		sa.RequireScope(msgs)(first).ServeHTTP(httptest.NewRecorder(), r) // runs on A (shortcut)
		_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "done")
		require.NoError(t, err)
		sa.RequireScope(msgs)(second).ServeHTTP(httptest.NewRecorder(), r) // runs on B
		sa.RequireScope(billing)(summary).ServeHTTP(w, r)                  // refused: the response
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), first.calls.Load(), "the first part ran on A with messages:write")
	require.Equal(t, int64(1), second.calls.Load(), "the second part ran on B with messages:write")
	require.Zero(t, summary.calls.Load())
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, e.events(sa.EventSupportRequest), "precondition: the refusal is the response")
	require.True(t, rw22Names(e, b.ID.String(), msgs), "precondition: messages:write on B is named")
	require.True(t, rw22Names(e, a.ID.String(), msgs),
		"a part ran on grant %s with messages:write and no support event names that grant with that scope (events: %s)",
		a.ID, mwJSON(t, e.events()))
}

// rw22ProbeKey marks the context of a probe: rw22Store fails its Checks,
// so a RequireScope probe runs only when the request already uses the
// scope (usesScope), without a Check, and changes nothing otherwise.
type rw22ProbeKey struct{}

type rw22Store struct{ *mwStore }

func (s *rw22Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if ctx.Value(rw22ProbeKey{}) != nil {
		return sa.Grant{}, errMWBoom
	}
	return s.mwStore.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

// newRW22Env is newMWEnv on a store whose Checks fail for probes.
func newRW22Env(t *testing.T) *mwEnv {
	t.Helper()
	base := newMWEnv(t)
	e := *base
	m, err := sa.NewManager(&rw22Store{e.store}, sa.WithNow(e.clock.Now), sa.WithErrorHandler(e.errs.handle))
	require.NoError(t, err)
	e.m = m
	return &e
}

// rw22AwaitUses waits until the request r uses scope s without a Check
// (the watcher adopted a grant for it): a probe behind RequireScope(s)
// then runs.
func rw22AwaitUses(t *testing.T, r *http.Request, s sa.Scope) {
	t.Helper()
	probe := &mwOK{}
	pr := r.WithContext(context.WithValue(r.Context(), rw22ProbeKey{}, true))
	require.Eventually(t, func() bool {
		sa.RequireScope(s)(probe).ServeHTTP(httptest.NewRecorder(), pr)
		return probe.calls.Load() > 0
	}, 5*time.Second, 5*time.Millisecond)
}

// TestReview22TakeoverGrantForgottenAfterSecondTakeover: a GET admitted by
// A (read) keeps running after A is revoked on this Manager: the watcher's
// re-check finds B and writes it into needs[0] (recheck's write-back by
// scope) — without recording it in used. The request runs on B (a part
// behind RequireScope(read) takes usesScope's shortcut on B). B is then
// revoked too and the watcher adopts C. When the handler commits, audit()
// names the admitting grant A (GrantID) and the grants now in needs (C in
// elevated_grant_ids) and used (empty): nothing names B, although the
// request ran on B alone for a while. review19 made a grant that took over
// the request's own scope part of the record (TookOverOwnScope); only the
// last one is.
func TestReview22TakeoverGrantForgottenAfterSecondTakeover(t *testing.T) {
	e := newRW22Env(t)
	a := e.grant(sa.GrantInput{Duration: 3 * time.Hour}) // ends last: admits
	b := e.grant(sa.GrantInput{Duration: 2 * time.Hour}) // takes over from A
	c := e.grant(sa.GrantInput{Duration: 1 * time.Hour}) // takes over from B
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, _ := sa.GrantFromContext(r.Context())
		require.Equal(t, a.ID, g.ID, "precondition: A admitted the request")
		_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed")
		require.NoError(t, err)
		rw22AwaitUses(t, r, sa.ScopeRead) // on B now: a part runs on it
		_, err = e.m.Revoke(context.Background(), b.ID, mwCustomer, "ticket 2 closed")
		require.NoError(t, err)
		rw22AwaitUses(t, r, sa.ScopeRead) // on C now
		_, _ = w.Write([]byte("page"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, http.StatusOK, rec.Code)
	reqs := e.events(sa.EventSupportRequest)
	require.Len(t, reqs, 1)
	require.Contains(t, reqs[0].Attrs[sa.AttrElevatedGrantIDs], c.ID.String(), "precondition: the last grant that took over is named")
	require.True(t, rw22Names(e, b.ID.String(), sa.ScopeRead),
		"the request ran on grant %s (after A's revocation, before its own) and no support event names it (events: %s)",
		b.ID, mwJSON(t, e.events(sa.EventSupportRequest, sa.EventSupportScope)))
}

// TestReview22ScopeEventOfRefusalDatedAfterRevocation: when a RequireScope
// refusal becomes the response, refuse records the scopes other parts took
// earlier as support.scope events (recordedElsewhere), each built by
// auditLateScope with the time of the refusal (st.m.now()), not the time
// the part ran (a support.request event carries st.start). A part ran on
// grant M with messages:write while M was active; M was then revoked; the
// trail now holds, after grant.revoked(M), a support.scope event saying
// support took messages:write on M — use of a revoked grant that never
// happened, which an auditor comparing events to grant windows flags as a
// breach.
func TestReview22ScopeEventOfRefusalDatedAfterRevocation(t *testing.T) {
	const billing, msgs sa.Scope = "billing:read", "messages:write"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: 3 * time.Hour})                            // read: admits
	m := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}}) // messages:write
	action, summary := &mwOK{}, &mwOK{}
	var revokedAt time.Time
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(action).ServeHTTP(httptest.NewRecorder(), r) // runs on M
		e.clock.Advance(time.Second)
		g, err := e.m.Revoke(context.Background(), m.ID, mwCustomer, "wrong ticket")
		require.NoError(t, err)
		revokedAt = g.RevokedAt
		e.clock.Advance(time.Second)
		sa.RequireScope(billing)(summary).ServeHTTP(w, r) // refused: the response
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), action.calls.Load())
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, e.events(sa.EventSupportRequest), "precondition: the refusal is the response")
	var onM []sa.Event
	for _, ev := range e.events(sa.EventSupportScope) {
		if ev.GrantID == m.ID {
			onM = append(onM, ev)
		}
	}
	require.NotEmpty(t, onM, "precondition: the part on M is audited")
	for _, ev := range onM {
		require.False(t, ev.Time.After(revokedAt),
			"support.scope(%s, %s) is dated %s, after the grant's revocation at %s: the trail says support used a revoked grant",
			ev.Attrs[sa.AttrScope], m.ID, ev.Time, revokedAt)
	}
}

// TestReview22StreamContinuesOnTakeoverGrantUnaudited: a stream admitted
// by A has its support.request event recorded at the first write (GrantID
// A). A is revoked on this Manager; the watcher's re-check finds B, which
// keeps the request alive, and writes it into needs[0] — nothing records
// it: a need taken after the response's record gets a support.scope event
// only when establish takes it (auditLateScope), never when the watcher
// adopts another grant. The stream goes on sending data to support on the
// strength of B alone, and no support event names B.
func TestReview22StreamContinuesOnTakeoverGrantUnaudited(t *testing.T) {
	e := newRW22Env(t)
	a := e.grant(sa.GrantInput{Duration: 3 * time.Hour}) // ends last: admits
	b := e.grant(sa.GrantInput{Duration: 2 * time.Hour}) // takes over
	var errLater error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := w.Write([]byte("event: one\n\n")) // the support.request event (A)
		require.NoError(t, err)
		_, err = e.m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed")
		require.NoError(t, err)
		rw22AwaitUses(t, r, sa.ScopeRead) // the watcher adopted B
		_, errLater = w.Write([]byte("event: two\n\n"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
	require.NoError(t, errLater, "precondition: the stream goes on, on B")
	require.Contains(t, rec.Body.String(), "event: two")
	reqs := e.events(sa.EventSupportRequest)
	require.Len(t, reqs, 1)
	require.Equal(t, a.ID, reqs[0].GrantID)
	require.True(t, rw22Names(e, b.ID.String(), sa.ScopeRead),
		"the stream sent data to support on grant %s after A's revocation and no support event names it (events: %s)",
		b.ID, mwJSON(t, e.events(sa.EventSupportRequest, sa.EventSupportScope)))
}
