package supportaccess_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 150: self-escalation by support. A support engineer impersonating
// the customer's administrator reaches the host's admin UI, which sits
// behind the middleware and passes the request's context to the Manager.
// The engineer tries to widen, prolong or launder its own access through
// the Manager's API. The promises attacked are those of WithAuthorizer
// ("Whatever the Authorizer says, a support actor may not grant or extend
// access …, may only revoke a grant that covers it and may only delegate a
// grant that names it, and only customers approve or deny requests; and a
// call made with the context of a request the middleware admitted for
// support … is refused unless by is that support principal"), SECURITY.md
// ("Support never lets itself in", "refusals audited with the support
// principal as actor", "A call on another tenant's grants made from the
// session is recorded in that tenant's trail under the support principal,
// without the session's id and user") and doc.go.

var (
	r150Eve   = sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example"}
	r150Bob   = sa.Actor{Kind: sa.ActorSupport, ID: "bob@vendor.example"}
	r150Admin = sa.Actor{Kind: sa.ActorCustomer, ID: "admin@acme.example"}
	// r150Session is eve's impersonation session in acme, as the host's
	// resolver reports it; u-42 is the customer user eve impersonates.
	r150Session = sa.Session{TenantID: "acme", Principal: r150Eve.ID, SubjectUserID: "u-42", SessionID: "s-eve"}
)

// r150AllowAll is a host Authorizer that allows everything: the built-in
// rules must hold whatever it says.
func r150AllowAll(context.Context, sa.Action, sa.Actor, string) error { return nil }

// r150Env is a Manager over a real store with an injected clock.
type r150Env struct {
	t     *testing.T
	m     *sa.Manager
	clock *storetest.Clock
}

func newR150Env(t *testing.T, st sa.Store, opts ...sa.Option) *r150Env {
	t.Helper()
	e := &r150Env{t: t, clock: storetest.NewClock(storetest.Epoch)}
	m, err := sa.NewManager(st, append([]sa.Option{sa.WithNow(e.clock.Now)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	e.m = m
	return e
}

func (e *r150Env) now() time.Time { return e.clock.Now().UTC().Truncate(time.Microsecond) }

// grant creates a grant (tenant acme, by the admin, one day, unless in
// says otherwise) outside any impersonated request.
func (e *r150Env) grant(in sa.GrantInput) sa.Grant {
	e.t.Helper()
	if in.Duration == 0 {
		in.Duration = 24 * time.Hour
	}
	return mustGrant(e.t, e.m, in, r150Admin)
}

func (e *r150Env) events(tenant string, types ...sa.EventType) []sa.Event {
	e.t.Helper()
	evs, err := e.m.Events(context.Background(), sa.AuditFilter{TenantID: tenant, Types: types})
	require.NoError(e.t, err)
	return evs
}

func (e *r150Env) get(id uuid.UUID) sa.Grant {
	e.t.Helper()
	g, err := e.m.Get(context.Background(), id)
	require.NoError(e.t, err)
	return g
}

// impersonate serves one request of sess through the Manager's middleware
// to the admin handler h, which gets the request (its context carries the
// session when the middleware admitted it). It returns the status.
func (e *r150Env) impersonate(sess sa.Session, method string, h func(w http.ResponseWriter, r *http.Request)) int {
	e.t.Helper()
	resolve := func(*http.Request) (sa.Session, bool) { return sess, true }
	ran := false
	mw := e.m.Middleware(resolve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		_, ok := sa.SessionFromContext(r.Context())
		require.True(e.t, ok, "an admitted request carries the session")
		h(w, r)
	}))
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				panic(p)
			}
		}()
		mw.ServeHTTP(rec, httptest.NewRequest(method, "/admin/support-access", nil))
	}()
	require.True(e.t, ran, "the middleware admitted the request (status %d)", rec.Code)
	return rec.Code
}

// requireRefusedBySession checks an action.refused event of a call made in
// eve's session on acme: its actor is eve (not the identity the call
// claimed), it names the action and carries the session's ids, and its
// reason names the claimed identity when claimed is not zero.
func requireRefusedBySession(t *testing.T, ev sa.Event, action sa.Action, claimed sa.Actor) {
	t.Helper()
	require.Equal(t, sa.EventActionRefused, ev.Type)
	require.Equal(t, "acme", ev.TenantID)
	require.Equal(t, r150Eve.Kind, ev.Actor.Kind, "the refusal names who acted: %+v", ev)
	require.Equal(t, r150Eve.ID, ev.Actor.ID, "the refusal names who acted: %+v", ev)
	require.Equal(t, string(action), ev.Attrs[sa.AttrAction])
	require.Equal(t, r150Session.SessionID, ev.Attrs[sa.AttrSessionID], "AuditFilter.SessionID finds it")
	require.Equal(t, r150Session.SubjectUserID, ev.Attrs[sa.AttrSubjectUserID])
	if !claimed.IsZero() {
		require.Contains(t, ev.Reason, claimed.ID, "the refusal also names the identity the call claimed")
	}
}

// r150Backends runs f on memstore and on every SQL backend available
// (SQLite always; PostgreSQL and MariaDB when their DSNs are set).
func r150Backends(t *testing.T, f func(t *testing.T, st sa.Store)) {
	t.Run("memstore", func(t *testing.T) { f(t, memstore.New()) })
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) { f(t, sqltest.NewStore(t, d)) })
	}
}

// TestReview150SupportAsItselfGainsNothingWhateverTheAuthorizer: eve, in
// her impersonation session, calls the admin UI's actions as herself (the
// one identity the session lets through) under an Authorizer that allows
// everything: she tries to grant herself write access, to lengthen (and to
// move at all) the end of her grant, to approve (or deny) her own pending
// request, to join and to revoke a colleague's grant, to purge the trail,
// and to bulk-revoke. Each attempt is refused with ErrForbidden and audited
// as action.refused naming eve and the session; bulk revocation gives back
// only what covers her; the colleague's grant, the request and the trail
// are untouched and the chain verifies.
func TestReview150SupportAsItselfGainsNothingWhateverTheAuthorizer(t *testing.T) {
	r150Backends(t, func(t *testing.T, st sa.Store) {
		e := newR150Env(t, st, sa.WithAuthorizer(r150AllowAll))
		mine := e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}, TicketRef: "T-1"})
		bobs := e.grant(sa.GrantInput{Grantees: []string{r150Bob.ID}, Scopes: []sa.Scope{sa.ScopeWrite}, TicketRef: "T-9"})
		req, err := e.m.RequestAccess(context.Background(), sa.RequestInput{TenantID: "acme", By: r150Eve,
			Scopes: []sa.Scope{sa.ScopeWrite}, Reason: "need write", TicketRef: "T-1"})
		require.NoError(t, err)

		type attempt struct {
			action sa.Action
			err    error
		}
		var tries []attempt
		var ticket, tenant []sa.Grant
		var ticketErr, tenantErr error
		e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
			c := r.Context()
			_, err := e.m.Grant(c, sa.GrantInput{TenantID: "acme", By: r150Eve, Grantees: []string{r150Eve.ID},
				Scopes: []sa.Scope{sa.ScopeWrite, "messages:read"}, Duration: time.Hour})
			tries = append(tries, attempt{sa.ActionGrant, err})
			_, err = e.m.Extend(c, mine.ID, mine.ExpiresAt.Add(time.Hour), r150Eve)
			tries = append(tries, attempt{sa.ActionExtend, err})
			_, err = e.m.Extend(c, mine.ID, mine.ExpiresAt.Add(-time.Hour), r150Eve) // even shortening
			tries = append(tries, attempt{sa.ActionExtend, err})
			_, err = e.m.Approve(c, req.ID, r150Eve, sa.ApproveInput{})
			tries = append(tries, attempt{sa.ActionApprove, err})
			_, err = e.m.Deny(c, req.ID, r150Eve, "withdrawn")
			tries = append(tries, attempt{sa.ActionDeny, err})
			_, err = e.m.AddGrantee(c, bobs.ID, r150Eve.ID, r150Eve) // join bob's write grant
			tries = append(tries, attempt{sa.ActionAddGrantee, err})
			_, err = e.m.Revoke(c, bobs.ID, r150Eve, "not mine")
			tries = append(tries, attempt{sa.ActionRevoke, err})
			_, err = e.m.PurgeAudit(c, "acme", e.now().Add(time.Hour))
			tries = append(tries, attempt{sa.ActionPurgeAudit, err})
			// Bulk revocations give back only what covers eve.
			ticket, ticketErr = e.m.RevokeTicket(c, "acme", "T-9", r150Eve, "closing bob's ticket")
			tenant, tenantErr = e.m.RevokeTenant(c, "acme", r150Eve, "done")
			w.WriteHeader(http.StatusNoContent)
		})
		require.Len(t, tries, 8)
		for i, a := range tries {
			require.ErrorIs(t, a.err, sa.ErrForbidden, "attempt %d (%s)", i, a.action)
		}
		require.NoError(t, ticketErr)
		require.Empty(t, ticket, "bob's ticket grant does not cover eve")
		require.NoError(t, tenantErr)
		require.Len(t, tenant, 1)
		require.Equal(t, mine.ID, tenant[0].ID, "eve gives back her own grant only")

		refused := e.events("acme", sa.EventActionRefused)
		require.Len(t, refused, len(tries), "every attempt is audited once")
		for i, a := range tries {
			requireRefusedBySession(t, refused[i], a.action, sa.Actor{})
		}
		require.Equal(t, mine.ID, refused[1].GrantID, "the refused extension names the grant")
		require.Equal(t, req.ID.String(), refused[3].Attrs[sa.AttrRequestID], "the refused approval names the request")
		require.Equal(t, bobs.ID, refused[5].GrantID)

		got := e.get(bobs.ID)
		require.Equal(t, []string{r150Bob.ID}, got.Grantees, "bob's grant does not name eve")
		require.True(t, got.RevokedAt.IsZero(), "bob's grant is not revoked")
		require.Equal(t, bobs.ExpiresAt, got.ExpiresAt)
		gotMine := e.get(mine.ID)
		require.Equal(t, mine.ExpiresAt, gotMine.ExpiresAt, "the end did not move")
		require.Equal(t, r150Eve, gotMine.RevokedBy)
		pending, err := e.m.GetRequest(context.Background(), req.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestPending, pending.Status, "the request waits for the customer")
		for _, typ := range []sa.EventType{sa.EventGrantExtended, sa.EventGrantDelegated, sa.EventRequestApproved,
			sa.EventRequestDenied, sa.EventAuditPurged} {
			require.Empty(t, e.events("acme", typ), typ)
		}
		require.Len(t, e.events("acme", sa.EventGrantCreated), 2, "only the customer's two grants")
		all, err := e.m.List(context.Background(), sa.ListFilter{TenantID: "acme"})
		require.NoError(t, err)
		require.Len(t, all, 2)
		rep, err := e.m.VerifyAudit(context.Background(), "acme")
		require.NoError(t, err)
		require.True(t, rep.OK(), "the trail is intact: %+v", rep.Break)
	})
}

// r150Key is a host's own context key, layered over the request context.
type r150Key struct{}

// TestReview150DerivedContextsStayImpersonated: the admin handler passes
// on contexts derived from the impersonated request — without its
// cancellation, under further values, with a deadline already past,
// cancelled, moved onto another *http.Request (a dispatch or a clone),
// and kept by a goroutine that acts after the request ended and after the
// grant that admitted it was revoked. Every one still "is" the request for
// the rule "a call made with the context of a request the middleware
// admitted for support … is refused unless by is that support principal"
// (WithAuthorizer), even under an Authorizer that allows everything, and
// each refusal is recorded although the context ended ("The event is
// recorded also when ctx is cancelled or past its deadline", refuse). The
// customer identity is taken from the session's SubjectUserID, as a host
// that trusts the impersonated user would build it.
func TestReview150DerivedContextsStayImpersonated(t *testing.T) {
	r150Backends(t, testReview150DerivedContexts)
}

func testReview150DerivedContexts(t *testing.T, st sa.Store) {
	e := newR150Env(t, st, sa.WithAuthorizer(r150AllowAll))
	admitting := e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}})
	bobs := e.grant(sa.GrantInput{Grantees: []string{r150Bob.ID}})
	spoofed := sa.Actor{Kind: sa.ActorCustomer, ID: r150Session.SubjectUserID}
	var kept context.Context
	var errs []error
	var changeErr error
	try := func(c context.Context) {
		_, err := e.m.Grant(c, sa.GrantInput{TenantID: "acme", By: spoofed, Grantees: []string{r150Eve.ID},
			Scopes: []sa.Scope{sa.ScopeWrite}, Duration: time.Hour})
		errs = append(errs, err)
	}
	e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		base := r.Context()
		try(base)
		try(context.WithoutCancel(base))
		try(context.WithValue(context.WithValue(base, r150Key{}, "x"), r150Key{}, nil))
		past, cancelPast := context.WithDeadline(base, e.clock.Now().Add(-time.Hour))
		defer cancelPast()
		try(past)
		cancelled, cancel := context.WithCancel(base)
		cancel()
		try(cancelled)
		other := httptest.NewRequest(http.MethodPost, "/admin/grants", nil).WithContext(base)
		try(other.Context())
		try(r.Clone(context.WithoutCancel(base)).Context())
		kept = context.WithoutCancel(base)
		w.WriteHeader(http.StatusNoContent)
	})
	// The request is over; the customer revokes the grant that admitted
	// it. A goroutine that kept the request's context acts afterwards.
	_, err := e.m.Revoke(context.Background(), admitting.ID, r150Admin, "done")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		try(kept)
		_, err := e.m.Revoke(kept, bobs.ID, spoofed, "as the customer")
		errs = append(errs, err)
		changeErr = sa.RecordChange(kept, "sso.enforced", true, false)
	}()
	<-done
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded, "no change is made in a session whose access ended")
	require.Empty(t, e.events("acme", sa.EventSupportChange))

	require.Len(t, errs, 9)
	for i, err := range errs {
		require.ErrorIs(t, err, sa.ErrForbidden, "call %d", i)
	}
	refused := e.events("acme", sa.EventActionRefused)
	require.Len(t, refused, len(errs), "every refusal is recorded, also under an ended context")
	for i, ev := range refused {
		action := sa.ActionGrant
		if i == len(refused)-1 {
			action = sa.ActionRevoke
		}
		requireRefusedBySession(t, ev, action, spoofed)
	}
	require.Len(t, e.events("acme", sa.EventGrantCreated), 2, "no grant was created")
	require.True(t, e.get(bobs.ID).RevokedAt.IsZero())
}

// TestReview150AnotherManagerAndANestedPassThroughRefuse: the request was
// admitted by Manager A's middleware; the admin handler is served through
// Manager B's middleware (another store; its resolver does not see the
// session, so it passes the request through untouched) and calls B with
// the customer's identity, and B's PurgeAudit. The session in the context
// is what counts, not which Manager admitted it: B refuses, in its own
// trail, with eve as the actor.
func TestReview150AnotherManagerAndANestedPassThroughRefuse(t *testing.T) {
	a := newR150Env(t, memstore.New())
	b := newR150Env(t, memstore.New(), sa.WithAuthorizer(r150AllowAll))
	a.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}})
	bg := b.grant(sa.GrantInput{})
	var errs []error
	inner := b.m.Middleware(func(*http.Request) (sa.Session, bool) { return sa.Session{}, false })(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := b.m.Grant(r.Context(), sa.GrantInput{TenantID: "acme", By: r150Admin, Grantees: []string{r150Eve.ID}})
			errs = append(errs, err)
			_, err = b.m.Extend(r.Context(), bg.ID, bg.ExpiresAt.Add(time.Hour), r150Admin)
			errs = append(errs, err)
			_, err = b.m.PurgeAudit(r.Context(), "acme", b.now().Add(time.Hour))
			errs = append(errs, err)
			w.WriteHeader(http.StatusNoContent)
		}))
	a.impersonate(r150Session, http.MethodGet, inner.ServeHTTP)
	require.Len(t, errs, 3)
	for i, err := range errs {
		require.ErrorIs(t, err, sa.ErrForbidden, "call %d", i)
	}
	refused := b.events("acme", sa.EventActionRefused)
	require.Len(t, refused, 3)
	requireRefusedBySession(t, refused[0], sa.ActionGrant, r150Admin)
	requireRefusedBySession(t, refused[1], sa.ActionExtend, r150Admin)
	requireRefusedBySession(t, refused[2], sa.ActionPurgeAudit, sa.Actor{})
	require.Len(t, b.events("acme", sa.EventGrantCreated), 1)
	require.Equal(t, bg.ExpiresAt, b.get(bg.ID).ExpiresAt)
	require.Empty(t, a.events("acme", sa.EventActionRefused), "A's trail holds nothing of B's refusals")
}

// TestReview150SessionOfOnePrincipalCannotActAsAnother: eve's session
// names eve; the handler calls as a colleague (bob), as the tenant's
// generic support user, as eve spelled in another case, and as eve under
// the customer or system kind. A session of principal A never acts as
// principal B: bob's grant is neither joined, revoked nor extended, no
// request is filed in a colleague's name (laundering a request under a
// name the customer trusts), and every refusal names eve.
func TestReview150SessionOfOnePrincipalCannotActAsAnother(t *testing.T) {
	e := newR150Env(t, memstore.New(), sa.WithAuthorizer(r150AllowAll))
	e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}})
	bobs := e.grant(sa.GrantInput{Grantees: []string{r150Bob.ID}})
	generic := sa.Actor{Kind: sa.ActorSupport, ID: "support+acme@vendor.example"}
	upper := sa.Actor{Kind: sa.ActorSupport, ID: strings.ToUpper(r150Eve.ID)}
	type call struct {
		action sa.Action
		by     sa.Actor
		err    error
	}
	var calls []call
	e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		c := r.Context()
		_, err := e.m.AddGrantee(c, bobs.ID, r150Eve.ID, r150Bob)
		calls = append(calls, call{sa.ActionAddGrantee, r150Bob, err})
		_, err = e.m.Revoke(c, bobs.ID, r150Bob, "as bob")
		calls = append(calls, call{sa.ActionRevoke, r150Bob, err})
		for _, by := range []sa.Actor{r150Bob, generic, upper} {
			_, err = e.m.RequestAccess(c, sa.RequestInput{TenantID: "acme", By: by, Scopes: []sa.Scope{sa.ScopeWrite}, Reason: "urgent"})
			calls = append(calls, call{sa.ActionRequest, by, err})
		}
		for _, kind := range []sa.ActorKind{sa.ActorCustomer, sa.ActorSystem} {
			by := sa.Actor{Kind: kind, ID: r150Eve.ID}
			_, err = e.m.Extend(c, bobs.ID, bobs.ExpiresAt.Add(time.Hour), by)
			calls = append(calls, call{sa.ActionExtend, by, err})
			_, err = e.m.RevokeTenant(c, "acme", by, "as "+string(kind))
			calls = append(calls, call{sa.ActionRevoke, by, err})
		}
		w.WriteHeader(http.StatusNoContent)
	})
	refused := e.events("acme", sa.EventActionRefused)
	require.Len(t, refused, len(calls))
	for i, c := range calls {
		require.ErrorIs(t, c.err, sa.ErrForbidden, "call %d (%s as %+v)", i, c.action, c.by)
		requireRefusedBySession(t, refused[i], c.action, c.by)
	}
	got := e.get(bobs.ID)
	require.Equal(t, []string{r150Bob.ID}, got.Grantees)
	require.True(t, got.RevokedAt.IsZero())
	require.Equal(t, bobs.ExpiresAt, got.ExpiresAt)
	rs, err := e.m.ListRequests(context.Background(), sa.RequestFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Empty(t, rs, "no request filed in anybody's name")
}

// TestReview150CrossTenantCallsFromTheSession: eve's session is in acme;
// from it she (a) tries, as globex's administrator, to grant herself
// access to globex, and (b) as herself gives back and (c) delegates a
// globex grant that names her. SECURITY.md: "A call on another tenant's
// grants made from the session is recorded in that tenant's trail under
// the support principal, without the session's id and user (one tenant's
// user IDs do not belong in another's trail)".
func TestReview150CrossTenantCallsFromTheSession(t *testing.T) {
	e := newR150Env(t, memstore.New(), sa.WithAuthorizer(r150AllowAll))
	e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}})
	gx := e.grant(sa.GrantInput{TenantID: "globex", Grantees: []string{r150Eve.ID}})
	gx2 := e.grant(sa.GrantInput{TenantID: "globex", Grantees: []string{r150Eve.ID}})
	globexAdmin := sa.Actor{Kind: sa.ActorCustomer, ID: "admin@globex.example"}
	var grantErr, revokeErr, delegateErr error
	e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		_, grantErr = e.m.Grant(r.Context(), sa.GrantInput{TenantID: "globex", By: globexAdmin, Grantees: []string{r150Eve.ID}, Scopes: []sa.Scope{sa.ScopeWrite}})
		_, revokeErr = e.m.Revoke(r.Context(), gx.ID, r150Eve, "done in globex")
		_, delegateErr = e.m.AddGrantee(r.Context(), gx2.ID, r150Bob.ID, r150Eve)
		w.WriteHeader(http.StatusNoContent)
	})
	require.ErrorIs(t, grantErr, sa.ErrForbidden)
	require.NoError(t, revokeErr)
	require.NoError(t, delegateErr)
	require.Empty(t, e.events("acme", sa.EventActionRefused), "the refusal is in globex's trail")
	refused := e.events("globex", sa.EventActionRefused)
	require.Len(t, refused, 1)
	require.Equal(t, r150Eve, refused[0].Actor)
	require.Contains(t, refused[0].Reason, globexAdmin.ID)
	for _, ev := range append(refused, append(e.events("globex", sa.EventGrantRevoked), e.events("globex", sa.EventGrantDelegated)...)...) {
		require.Equal(t, r150Eve, ev.Actor, ev.Type)
		require.NotContains(t, ev.Attrs, sa.AttrSessionID, ev.Type)
		require.NotContains(t, ev.Attrs, sa.AttrSubjectUserID, "acme's user u-42 is not in globex's trail (%s)", ev.Type)
	}
	require.Len(t, e.events("globex", sa.EventGrantRevoked), 1)
	require.Len(t, e.events("globex", sa.EventGrantDelegated), 1)
	require.Len(t, e.events("globex", sa.EventGrantCreated), 2, "no grant created in globex")
}

// TestReview150MalformedActorKindsChangeNothing: an admin UI that builds
// the actor's kind from text (case variants, empty, padded) while support
// impersonates gets an error, never a change: such kinds are not "that
// support principal", nor a customer.
func TestReview150MalformedActorKindsChangeNothing(t *testing.T) {
	e := newR150Env(t, memstore.New(), sa.WithAuthorizer(r150AllowAll))
	mine := e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}})
	var errs []error
	e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		for _, kind := range []sa.ActorKind{"Customer", "SUPPORT", "Support", "", " support", "support ", "customer\u200b"} {
			for _, id := range []string{r150Eve.ID, r150Admin.ID} {
				by := sa.Actor{Kind: kind, ID: id}
				_, err := e.m.Grant(r.Context(), sa.GrantInput{TenantID: "acme", By: by, Scopes: []sa.Scope{sa.ScopeWrite}})
				errs = append(errs, err)
				_, err = e.m.Extend(r.Context(), mine.ID, mine.ExpiresAt.Add(time.Hour), by)
				errs = append(errs, err)
				_, err = e.m.AddGrantee(r.Context(), mine.ID, r150Bob.ID, by)
				errs = append(errs, err)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	for i, err := range errs {
		require.Error(t, err, "call %d", i)
		require.True(t, isInvalidOrForbidden(err), "call %d: %v", i, err)
	}
	got := e.get(mine.ID)
	require.Equal(t, mine.ExpiresAt, got.ExpiresAt)
	require.Equal(t, []string{r150Eve.ID}, got.Grantees)
	require.Len(t, e.events("acme", sa.EventGrantCreated), 1)
}

func isInvalidOrForbidden(err error) bool {
	return errors.Is(err, sa.ErrInvalidInput) || errors.Is(err, sa.ErrForbidden)
}

// TestReview150ApproverCannotBeWidenedBySupport: support may only ask;
// what it asks for is what the customer approves. An approval outside any
// session (the real administrator) cannot be widened by the request's own
// content beyond what was asked: a longer duration or an extra scope in
// the ApproveInput is refused, and the grant names the requester only.
// Support's request for more than the policy's maximum is refused up front.
func TestReview150ApproverCannotBeWidenedBySupport(t *testing.T) {
	e := newR150Env(t, memstore.New())
	var req sa.AccessRequest
	var overErr error
	e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}})
	e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		var err error
		req, err = e.m.RequestAccess(r.Context(), sa.RequestInput{TenantID: "acme", By: r150Eve, Duration: 2 * time.Hour, Reason: "read logs"})
		require.NoError(t, err)
		_, overErr = e.m.RequestAccess(r.Context(), sa.RequestInput{TenantID: "acme", By: r150Eve, Duration: e.m.Policy().MaxDuration + time.Hour, Reason: "forever"})
		w.WriteHeader(http.StatusNoContent)
	})
	require.ErrorIs(t, overErr, sa.ErrInvalidInput)
	_, err := e.m.Approve(context.Background(), req.ID, r150Admin, sa.ApproveInput{Duration: 3 * time.Hour})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.Approve(context.Background(), req.ID, r150Admin, sa.ApproveInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	g, err := e.m.Approve(context.Background(), req.ID, r150Admin, sa.ApproveInput{})
	require.NoError(t, err)
	require.Equal(t, []string{r150Eve.ID}, g.Grantees)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes)
	require.Equal(t, e.now().Add(2*time.Hour), g.ExpiresAt)
	require.Equal(t, r150Admin, g.GrantedBy)
	created := e.events("acme", sa.EventRequestCreated)
	require.Len(t, created, 1)
	require.Equal(t, "s-eve", created[0].Attrs[sa.AttrSessionID], "support's request is tagged with its session")
}

// TestReview150PolicyRefusalOverMaximumIsAudited: doc.go, "Rules that hold
// everywhere", said "a policy refusal, such as a duration over the
// maximum, also wraps ErrInvalidInput and changes nothing but the trail:
// it is audited as action.refused", which no code did (review 150): a
// duration over the maximum is bad input, refused and not audited. The doc
// now says so, and that an unlimited grant the policy does not allow is
// refused with ErrForbidden and audited. Support, in its session, and an
// administrator each try both.
func TestReview150PolicyRefusalOverMaximumIsAudited(t *testing.T) {
	e := newR150Env(t, memstore.New())
	e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}})
	over := e.m.Policy().MaxDuration + time.Hour
	var reqErr, unlimitedErr error
	e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		_, reqErr = e.m.RequestAccess(r.Context(), sa.RequestInput{TenantID: "acme", By: r150Eve, Duration: over, Reason: "forever"})
		w.WriteHeader(http.StatusNoContent)
	})
	require.ErrorIs(t, reqErr, sa.ErrInvalidInput)
	_, err := e.m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: r150Admin, Duration: over})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Empty(t, e.events("acme", sa.EventActionRefused), "a duration over the maximum is bad input, not audited")

	e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		_, unlimitedErr = e.m.RequestAccess(r.Context(), sa.RequestInput{TenantID: "acme", By: r150Eve, Duration: sa.Unlimited, Reason: "forever"})
		w.WriteHeader(http.StatusNoContent)
	})
	require.ErrorIs(t, unlimitedErr, sa.ErrForbidden)
	_, err = e.m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: r150Admin, Duration: sa.Unlimited})
	require.ErrorIs(t, err, sa.ErrForbidden)
	refused := e.events("acme", sa.EventActionRefused)
	require.Len(t, refused, 2, "both refusals of an unlimited grant are in the trail")
	requireRefusedBySession(t, refused[0], sa.ActionRequest, sa.Actor{})
	require.Equal(t, r150Admin, refused[1].Actor)
	require.True(t, slices.ContainsFunc(refused, func(ev sa.Event) bool { return ev.Attrs[sa.AttrAction] == string(sa.ActionGrant) }))
}

// TestReview150SupportDelegatesOnlyWhileItsGrantIsActive: AddGrantee
// lets "a support actor that is itself a grantee of the grant, while the
// grant is active" add colleagues. Eve, in her session (admitted by an open
// grant), tries to add bob to grants that name her but are scheduled,
// revoked or expired — preparing or prolonging a colleague's way in past
// the window the customer chose. Each is refused and changes nothing.
func TestReview150SupportDelegatesOnlyWhileItsGrantIsActive(t *testing.T) {
	e := newR150Env(t, memstore.New(), sa.WithAuthorizer(r150AllowAll))
	e.grant(sa.GrantInput{Duration: 30 * 24 * time.Hour}) // open: admits eve's session throughout
	// Still scheduled after the advance below.
	scheduled := e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}, StartsAt: e.now().Add(2 * time.Hour)})
	revoked := e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}})
	_, err := e.m.Revoke(context.Background(), revoked.ID, r150Admin, "no")
	require.NoError(t, err)
	expiring := e.grant(sa.GrantInput{Grantees: []string{r150Eve.ID}, Duration: time.Hour})
	e.clock.Advance(time.Hour) // expiring's end, to the microsecond
	var errs []error
	e.impersonate(r150Session, http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		for _, g := range []sa.Grant{scheduled, revoked, expiring} {
			_, err := e.m.AddGrantee(r.Context(), g.ID, r150Bob.ID, r150Eve)
			errs = append(errs, err)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	for i, err := range errs {
		require.ErrorIs(t, err, sa.ErrInvalidInput, "grant %d", i)
	}
	for _, g := range []sa.Grant{scheduled, revoked, expiring} {
		require.Equal(t, []string{r150Eve.ID}, e.get(g.ID).Grantees)
	}
	require.Empty(t, e.events("acme", sa.EventGrantDelegated))
	c, err := e.m.Check(context.Background(), "acme", r150Bob.ID, sa.ScopeRead)
	require.NoError(t, err, "bob is covered by the open grant only")
	require.Empty(t, c.Grantees)
}
