package supportaccess_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 133: access requests, approvals, delegation and notifications,
// attacked through the public API on memstore and on sqlstore over SQLite.

// r133Store is what the bundled stores are: a Store, a RequestStore and
// an audit log.
type r133Store interface {
	sa.Store
	sa.RequestStore
	sa.AuditLog
	sa.Auditor
}

// r133Each runs f on memstore and on sqlstore over one SQLite file, with n
// stores sharing the same data (replicas: one memstore n times, or n
// *sql.DB handles on the file).
func r133Each(t *testing.T, n int, f func(t *testing.T, sts []r133Store)) {
	t.Run("memstore", func(t *testing.T) {
		st := memstore.New()
		sts := make([]r133Store, n)
		for i := range sts {
			sts[i] = st
		}
		f(t, sts)
	})
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "r133.db")
		prefix := sqltest.NewPrefix()
		sts := make([]r133Store, n)
		for i := range sts {
			sts[i] = sqltest.NewStoreOn(t, sqltest.OpenSQLite(t, path), sqlstore.SQLite, sqlstore.WithTablePrefix(prefix))
		}
		f(t, sts)
	})
}

// r133Mgr is a Manager on st with clock c.
func r133Mgr(t *testing.T, st r133Store, c *storetest.Clock, opts ...sa.Option) *sa.Manager {
	t.Helper()
	m, err := sa.NewManager(st, append([]sa.Option{sa.WithNow(c.Now)}, opts...)...)
	require.NoError(t, err)
	return m
}

// r133State is everything a store holds, to prove what a call changed.
type r133State struct {
	grants   []sa.Grant
	requests []sa.AccessRequest
	events   []sa.Event
}

func r133Snap(t *testing.T, st r133Store) r133State {
	t.Helper()
	now := storetest.Epoch // statuses are not compared: stored values are
	gs, err := st.ListGrants(ctx, sa.ListFilter{}, now)
	require.NoError(t, err)
	rs, err := st.ListRequests(ctx, sa.RequestFilter{}, now)
	require.NoError(t, err)
	evs, err := st.Events(ctx, sa.AuditFilter{})
	require.NoError(t, err)
	return r133State{gs, rs, evs}
}

// r133OnlyNewEvents asserts that after differs from before only by new
// events, and returns them.
func r133OnlyNewEvents(t *testing.T, before, after r133State) []sa.Event {
	t.Helper()
	require.Equal(t, before.grants, after.grants, "no grant changed")
	require.Equal(t, before.requests, after.requests, "no request changed")
	require.GreaterOrEqual(t, len(after.events), len(before.events))
	seen := map[uuid.UUID]bool{}
	for _, ev := range before.events {
		seen[ev.ID] = true
	}
	var out []sa.Event
	for _, ev := range after.events {
		if !seen[ev.ID] {
			out = append(out, ev)
		}
	}
	require.Len(t, out, len(after.events)-len(before.events), "no event removed")
	return out
}

func r133Types(evs []sa.Event) []sa.EventType {
	out := []sa.EventType{}
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func r133Allow(context.Context, sa.Action, sa.Actor, string) error { return nil }

// TestReview133SupportNeverDecidesARequest: support asks for access and
// then tries to approve (or deny) the request itself, as another support
// principal, and as the system, under a host Authorizer that says yes to
// everything. "Only customers decide access requests, whatever the
// Authorizer says": each attempt is refused with ErrForbidden, writes
// exactly one action.refused naming the actor and the request, and
// changes nothing else; the requester still has no access.
func TestReview133SupportNeverDecidesARequest(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		m := r133Mgr(t, sts[0], c, sa.WithAuthorizer(r133Allow))
		r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Scopes: []sa.Scope{sa.ScopeWrite}})
		require.NoError(t, err)
		before := r133Snap(t, sts[0])
		for _, by := range []sa.Actor{engineer, support, system, {Kind: sa.ActorSupport, ID: engineer.ID, Name: "Ada Admin"}} {
			_, err := m.Approve(ctx, r.ID, by, sa.ApproveInput{})
			require.ErrorIs(t, err, sa.ErrForbidden, by)
			_, err = m.Deny(ctx, r.ID, by, "")
			require.ErrorIs(t, err, sa.ErrForbidden, by)
		}
		evs := r133OnlyNewEvents(t, before, r133Snap(t, sts[0]))
		require.Len(t, evs, 8)
		for i, ev := range evs {
			require.Equal(t, sa.EventActionRefused, ev.Type)
			require.Equal(t, "acme", ev.TenantID)
			require.Equal(t, r.ID.String(), ev.Attrs[sa.AttrRequestID])
			want := sa.ActionApprove
			if i%2 == 1 {
				want = sa.ActionDeny
			}
			require.Equal(t, string(want), ev.Attrs[sa.AttrAction])
			require.NotEqual(t, sa.ActorCustomer, ev.Actor.Kind)
		}
		_, err = m.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		got, err := m.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestPending, got.Status)
	})
}

// TestReview133ImpersonatedAdminCannotDecideOrDelegate: support, admitted
// by the middleware and browsing the customer's admin UI, approves its
// own pending request for write access in the administrator's name,
// denies it, approves it as itself, and adds itself to a colleague's
// grant in the administrator's name. SECURITY.md: a call made with an
// impersonated request's context is refused unless it names that support
// principal, and only customers decide. Every attempt is refused, audited
// with the support principal as actor and the session's ids, and nothing
// else changes.
func TestReview133ImpersonatedAdminCannotDecideOrDelegate(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read access for the session
	colleague := e.grant(sa.GrantInput{Grantees: []string{"bob@vendor.example"}})
	eve := sa.Actor{Kind: sa.ActorSupport, ID: mwEve}
	r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: eve, Scopes: []sa.Scope{sa.ScopeWrite}, Reason: "fix config"})
	require.NoError(t, err)
	evsBefore := len(e.events())

	var errs []error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, err := e.m.Approve(req.Context(), r.ID, mwCustomer, sa.ApproveInput{})
		errs = append(errs, err)
		_, err = e.m.Deny(req.Context(), r.ID, mwCustomer, "")
		errs = append(errs, err)
		_, err = e.m.Approve(req.Context(), r.ID, eve, sa.ApproveInput{})
		errs = append(errs, err)
		_, err = e.m.AddGrantee(req.Context(), colleague.ID, mwEve, mwCustomer)
		errs = append(errs, err)
		w.WriteHeader(http.StatusNoContent)
	}))
	require.Equal(t, http.StatusNoContent, mwDo(h, mwReq(http.MethodGet, "/admin/requests", "eve")).Code)
	require.Len(t, errs, 4)
	for _, err := range errs {
		require.ErrorIs(t, err, sa.ErrForbidden)
	}
	all := e.events()
	var added []sa.Event
	for _, ev := range all[evsBefore:] {
		if ev.Type != sa.EventSupportRequest {
			added = append(added, ev)
		}
	}
	require.Len(t, added, 4, "one refusal per attempt: %v", r133Types(added))
	for _, ev := range added {
		require.Equal(t, sa.EventActionRefused, ev.Type)
		require.Equal(t, eve.ID, ev.Actor.ID, "the refusal names who acted")
		require.Equal(t, sa.ActorSupport, ev.Actor.Kind)
		require.Equal(t, "s-eve", ev.Attrs[sa.AttrSessionID])
	}
	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
	cur, err := e.m.Get(ctx, colleague.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"bob@vendor.example"}, cur.Grantees)
	_, err = e.m.Check(ctx, "acme", mwEve, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
}

// TestReview133ApproveNeverWidens: the approver's input may only narrow
// the request (ApproveInput doc). A longer duration, an unlimited one for
// a finite request, write for a read request, a host scope that was not
// asked for, a misspelt built-in scope: each is refused with nothing
// stored (malformed or wider input writes no event). Narrowing write to
// read gives read only: a write check is refused.
func TestReview133ApproveNeverWidens(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		p := sa.DefaultPolicy()
		p.AllowUnlimited = true
		m := r133Mgr(t, sts[0], c, sa.WithPolicy(p))
		r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: 2 * sa.Day})
		require.NoError(t, err)
		before := r133Snap(t, sts[0])
		for name, in := range map[string]sa.ApproveInput{
			"longer":          {Duration: 2*sa.Day + time.Microsecond},
			"unlimited":       {Duration: sa.Unlimited},
			"write":           {Scopes: []sa.Scope{sa.ScopeWrite}},
			"read and write":  {Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeWrite}},
			"host scope":      {Scopes: []sa.Scope{"messages:read"}},
			"misspelt":        {Scopes: []sa.Scope{"Read"}},
			"too many scopes": {Scopes: slices.Repeat([]sa.Scope{sa.ScopeRead}, sa.MaxScopes+1)},
			"negative":        {Duration: -time.Hour},
			"min int":         {Duration: time.Duration(-1 << 63)},
		} {
			_, err := m.Approve(ctx, r.ID, customer, in)
			require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		}
		require.Empty(t, r133OnlyNewEvents(t, before, r133Snap(t, sts[0])))

		w, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Scopes: []sa.Scope{sa.ScopeWrite, "messages:read"}})
		require.NoError(t, err)
		g, err := m.Approve(ctx, w.ID, customer, sa.ApproveInput{Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeRead}})
		require.NoError(t, err)
		require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes)
		_, err = m.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
		require.NoError(t, err)
		_, err = m.Check(ctx, "acme", engineer.ID, sa.ScopeWrite)
		require.ErrorIs(t, err, sa.ErrScopeNotGranted)
		_, err = m.Check(ctx, "acme", engineer.ID, "messages:read")
		require.ErrorIs(t, err, sa.ErrScopeNotGranted)
		_, err = m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the grant names the requester only")
	})
}

// TestReview133ApproveRacesSweepAcrossReplicas: a customer approves on a
// replica whose clock reads a microsecond before the request's ExpiresAt
// while another replica, at ExpiresAt, sweeps. Exactly one wins: the
// request is approved (a grant exists, no request.expired), or it is
// expired (Approve fails with ErrInvalidInput, no grant, no
// request.approved). Never both, never neither.
func TestReview133ApproveRacesSweepAcrossReplicas(t *testing.T) {
	r133Each(t, 2, func(t *testing.T, sts []r133Store) {
		ca, cb := storetest.NewClock(storetest.Epoch), storetest.NewClock(storetest.Epoch)
		a, b := r133Mgr(t, sts[0], ca), r133Mgr(t, sts[1], cb)
		wins := map[string]int{}
		for i := range 12 {
			base := storetest.Epoch.Add(time.Duration(i) * 100 * time.Hour)
			ca.Set(base)
			r, err := a.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: sa.Day})
			require.NoError(t, err)
			ca.Set(r.ExpiresAt.Add(-time.Microsecond))
			cb.Set(r.ExpiresAt)
			var wg sync.WaitGroup
			var appErr, swErr error
			var g sa.Grant
			start := make(chan struct{})
			wg.Add(2)
			swept := make(chan struct{})
			go func() {
				defer wg.Done()
				<-start
				if i%3 == 1 { // the sweep first: both outcomes are exercised
					<-swept
				}
				g, appErr = a.Approve(ctx, r.ID, customer, sa.ApproveInput{})
			}()
			go func() { defer wg.Done(); defer close(swept); <-start; _, swErr = b.Sweep(ctx) }()
			close(start)
			wg.Wait()
			require.NoError(t, swErr)
			evs, err := sts[0].Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventRequestApproved, sa.EventRequestExpired}})
			require.NoError(t, err)
			var mine []sa.EventType
			for _, ev := range evs {
				if ev.Attrs[sa.AttrRequestID] == r.ID.String() {
					mine = append(mine, ev.Type)
				}
			}
			stored, err := sts[0].GetRequest(ctx, r.ID)
			require.NoError(t, err)
			if appErr == nil {
				wins["approve"]++
				require.Equal(t, []sa.EventType{sa.EventRequestApproved}, mine)
				require.Equal(t, sa.RequestApproved, stored.Status)
				require.Equal(t, g.ID, stored.GrantID)
			} else {
				wins["sweep"]++
				require.ErrorIs(t, appErr, sa.ErrInvalidInput)
				require.Equal(t, []sa.EventType{sa.EventRequestExpired}, mine)
				require.Equal(t, sa.RequestExpired, stored.Status)
				gs, err := sts[0].ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, ca.Now())
				require.NoError(t, err)
				for _, x := range gs {
					require.NotEqual(t, r.ID, x.RequestID, "no grant for an expired request")
				}
			}
		}
		t.Logf("wins: %v", wins)
		require.Positive(t, wins["sweep"])
		rep, err := a.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.True(t, rep.OK())
	})
}

// TestReview133LaggingReplicaCannotDecideSweptRequest: a replica whose
// clock is an hour behind tries to approve (or deny) a request another
// replica already recorded as expired. The stored status is final: both
// are refused (ErrInvalidInput) and nothing is written.
func TestReview133LaggingReplicaCannotDecideSweptRequest(t *testing.T) {
	r133Each(t, 2, func(t *testing.T, sts []r133Store) {
		ca, cb := storetest.NewClock(storetest.Epoch), storetest.NewClock(storetest.Epoch)
		a, b := r133Mgr(t, sts[0], ca), r133Mgr(t, sts[1], cb)
		r, err := a.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
		require.NoError(t, err)
		cb.Set(r.ExpiresAt.Add(time.Hour))
		_, err = b.Sweep(ctx)
		require.NoError(t, err)
		ca.Set(r.ExpiresAt.Add(-time.Hour))
		before := r133Snap(t, sts[0])
		_, err = a.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = a.Deny(ctx, r.ID, customer, "late")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Empty(t, r133OnlyNewEvents(t, before, r133Snap(t, sts[0])))
		got, err := a.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestExpired, got.Status, "the lagging replica reads the recorded expiry")
	})
}

// TestReview133RevokedApprovalCannotBeReapproved: the customer approves,
// then revokes the grant; approving (or denying) the same request again
// would reopen access without a new request. It is refused: the request
// is approved, not pending; nothing is written; access stays closed.
func TestReview133RevokedApprovalCannotBeReapproved(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		m := r133Mgr(t, sts[0], c)
		r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T-1"})
		require.NoError(t, err)
		g, err := m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		c.Advance(time.Minute)
		_, err = m.Revoke(ctx, g.ID, customer, "done")
		require.NoError(t, err)
		before := r133Snap(t, sts[0])
		_, err = m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = m.Deny(ctx, r.ID, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = m.Extend(ctx, g.ID, c.Now().Add(sa.Day), customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = m.AddGrantee(ctx, g.ID, support.ID, customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Empty(t, r133OnlyNewEvents(t, before, r133Snap(t, sts[0])))
		_, err = m.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	})
}

// TestReview133DelegationRefusals: support delegates what it does not
// hold (a grant naming a colleague, a grant of another tenant), what has
// ended (revoked, expired) or not begun (scheduled), a generic grant,
// beyond MaxGrantees; the system delegates under DefaultAuthorizer.
// AddGrantee's doc: each is refused, only the authorisation refusals are
// audited (one action.refused each, naming the actor), and no grant
// changes; adding oneself again is a no-op that records nothing.
func TestReview133DelegationRefusals(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		m := r133Mgr(t, sts[0], c)
		grant := func(in sa.GrantInput) sa.Grant {
			t.Helper()
			in.By = customer
			if in.TenantID == "" {
				in.TenantID = "acme"
			}
			if in.Duration == 0 {
				in.Duration = sa.Day
			}
			g, err := m.Grant(ctx, in)
			require.NoError(t, err)
			return g
		}
		mine := grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		colleagues := grant(sa.GrantInput{Grantees: []string{support.ID}})
		otherTenant := grant(sa.GrantInput{TenantID: "globex", Grantees: []string{support.ID}})
		scheduled := grant(sa.GrantInput{Grantees: []string{engineer.ID}, StartsAt: c.Now().Add(time.Hour)})
		generic := grant(sa.GrantInput{})
		many := []string{engineer.ID}
		for i := 1; i < sa.MaxGrantees; i++ {
			many = append(many, fmt.Sprintf("p%03d@vendor.example", i))
		}
		full := grant(sa.GrantInput{Grantees: many})
		revoked := grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		_, err := m.Revoke(ctx, revoked.ID, customer, "")
		require.NoError(t, err)
		short := grant(sa.GrantInput{Grantees: []string{engineer.ID}, Duration: time.Minute})
		c.Advance(time.Minute) // short has expired (no Sweep yet)

		before := r133Snap(t, sts[0])
		const carol = "carol@vendor.example"
		forbidden := []struct {
			g  sa.Grant
			by sa.Actor
		}{
			{colleagues, engineer},
			{otherTenant, engineer},
			{mine, system},
		}
		for _, x := range forbidden {
			_, err := m.AddGrantee(ctx, x.g.ID, carol, x.by)
			require.ErrorIs(t, err, sa.ErrForbidden, x.g.TenantID)
		}
		for name, id := range map[string]uuid.UUID{
			"scheduled": scheduled.ID, "generic": generic.ID, "full": full.ID, "revoked": revoked.ID, "expired": short.ID,
		} {
			_, err := m.AddGrantee(ctx, id, carol, engineer)
			require.ErrorIs(t, err, sa.ErrInvalidInput, name)
			require.NotErrorIs(t, err, sa.ErrForbidden, name)
		}
		got, err := m.AddGrantee(ctx, mine.ID, engineer.ID, engineer)
		require.NoError(t, err, "adding oneself is a no-op")
		require.Equal(t, []string{engineer.ID}, got.Grantees)
		_, err = m.AddGrantee(ctx, mine.ID, "", engineer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = m.AddGrantee(ctx, mine.ID, "carol@vendor.example\u200b", engineer)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "an invisible character in the principal")

		evs := r133OnlyNewEvents(t, before, r133Snap(t, sts[0]))
		require.Len(t, evs, len(forbidden), "%v", r133Types(evs))
		for _, x := range forbidden {
			i := slices.IndexFunc(evs, func(ev sa.Event) bool { return ev.GrantID == x.g.ID && ev.Actor == x.by })
			require.GreaterOrEqual(t, i, 0, "the refusal of %s on %s is recorded", x.by.ID, x.g.TenantID)
			require.Equal(t, sa.EventActionRefused, evs[i].Type)
			require.Equal(t, x.g.TenantID, evs[i].TenantID)
			require.Equal(t, string(sa.ActionAddGrantee), evs[i].Attrs[sa.AttrAction])
		}
		_, err = m.Check(ctx, "globex", carol, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		for _, g := range []sa.Grant{mine, colleagues, otherTenant, scheduled, full, revoked, short} {
			cur, err := m.Get(ctx, g.ID)
			require.NoError(t, err)
			require.NotContains(t, cur.Grantees, carol)
		}
	})
}

// TestReview133DelegationAfterRecordedExpiryOnLaggingReplica: a grant
// naming the engineer expired and a replica recorded its expiry; on a
// replica whose clock is behind (the grant still looks active there) the
// engineer delegates to a colleague and the customer extends and
// revokes. SECURITY.md: "A recorded expiry is final: no replica can
// extend, revoke or delegate the grant afterwards, whatever its clock
// says". All refused, nothing written.
func TestReview133DelegationAfterRecordedExpiryOnLaggingReplica(t *testing.T) {
	r133Each(t, 2, func(t *testing.T, sts []r133Store) {
		ca, cb := storetest.NewClock(storetest.Epoch), storetest.NewClock(storetest.Epoch)
		a, b := r133Mgr(t, sts[0], ca), r133Mgr(t, sts[1], cb)
		r, err := a.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: sa.Day})
		require.NoError(t, err)
		g, err := a.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		cb.Set(g.ExpiresAt.Add(time.Second))
		n, err := b.Sweep(ctx)
		require.NoError(t, err)
		require.Positive(t, n)
		ca.Set(g.ExpiresAt.Add(-time.Hour))
		before := r133Snap(t, sts[0])
		_, err = a.AddGrantee(ctx, g.ID, "carol@vendor.example", engineer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = a.AddGrantee(ctx, g.ID, "carol@vendor.example", customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = a.Extend(ctx, g.ID, g.ExpiresAt.Add(sa.Day), customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = a.Revoke(ctx, g.ID, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Empty(t, r133OnlyNewEvents(t, before, r133Snap(t, sts[0])))
	})
}

// TestReview133ScheduledApprovalLifecycleOnce: an approved request that
// asked for a later start creates a scheduled grant; its start and expiry
// must be recorded exactly once by sweeping replicas (the approval path
// writes the grant outside Manager.Grant, so it must also register the
// due transitions), and access must hold only inside the window.
func TestReview133ScheduledApprovalLifecycleOnce(t *testing.T) {
	r133Each(t, 2, func(t *testing.T, sts []r133Store) {
		ca, cb := storetest.NewClock(storetest.Epoch), storetest.NewClock(storetest.Epoch)
		a, b := r133Mgr(t, sts[0], ca), r133Mgr(t, sts[1], cb)
		starts := ca.Now().Add(6 * time.Hour)
		r, err := a.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: sa.Day, StartsAt: starts})
		require.NoError(t, err)
		ca.Advance(time.Hour)
		g, err := a.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		require.Equal(t, r.StartsAt, g.StartsAt)
		require.Equal(t, g.StartsAt.Add(sa.Day), g.ExpiresAt)
		sweepBoth := func(at time.Time) {
			t.Helper()
			ca.Set(at)
			cb.Set(at)
			var wg sync.WaitGroup
			for _, m := range []*sa.Manager{a, b} {
				wg.Add(1)
				go func() { defer wg.Done(); _, err := m.Sweep(ctx); require.NoError(t, err) }()
			}
			wg.Wait()
		}
		count := func(typ sa.EventType) int {
			evs, err := sts[0].Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{typ}})
			require.NoError(t, err)
			return len(evs)
		}
		sweepBoth(g.StartsAt.Add(-time.Microsecond))
		require.Zero(t, count(sa.EventGrantStarted))
		_, err = a.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		sweepBoth(g.StartsAt)
		sweepBoth(g.StartsAt.Add(time.Minute))
		require.Equal(t, 1, count(sa.EventGrantStarted))
		_, err = a.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
		require.NoError(t, err)
		sweepBoth(g.ExpiresAt.Add(-time.Microsecond))
		require.Zero(t, count(sa.EventGrantExpired))
		sweepBoth(g.ExpiresAt)
		sweepBoth(g.ExpiresAt.Add(time.Hour))
		require.Equal(t, 1, count(sa.EventGrantExpired))
		_, err = a.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	})
}

// TestReview133NotifierFailuresNeverUndoDecisions: the Notifier panics on
// every call. Notifier's doc: it is called after the change committed, an
// error (a panic counts) never undoes the change and is recorded as
// notify.failed naming the notification type and, for a request, the
// request. The request, the approval and its grant, the delegation and
// the denial all stand.
func TestReview133NotifierFailuresNeverUndoDecisions(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		var handled []error
		var mu sync.Mutex
		m := r133Mgr(t, sts[0], c,
			sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
				panic("smtp down for " + string(n.Type))
			})),
			sa.WithErrorHandler(func(_ context.Context, err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
		r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "case 1"})
		require.NoError(t, err)
		g, err := m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		_, err = m.AddGrantee(ctx, g.ID, "carol@vendor.example", engineer)
		require.NoError(t, err)
		d, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
		require.NoError(t, err)
		_, err = m.Deny(ctx, d.ID, customer, "no")
		require.NoError(t, err)

		_, err = m.Check(ctx, "acme", "carol@vendor.example", sa.ScopeRead)
		require.NoError(t, err, "the delegation stands")
		failed, err := sts[0].Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventNotifyFailed}})
		require.NoError(t, err)
		want := []struct {
			typ     sa.EventType
			grant   uuid.UUID
			request uuid.UUID
		}{
			{sa.EventRequestCreated, uuid.Nil, r.ID},
			{sa.EventRequestApproved, g.ID, r.ID},
			{sa.EventGrantDelegated, g.ID, r.ID},
			{sa.EventRequestCreated, uuid.Nil, d.ID},
			{sa.EventRequestDenied, uuid.Nil, d.ID},
		}
		require.Len(t, failed, len(want))
		for i, w := range want {
			require.Equal(t, string(w.typ), failed[i].Attrs[sa.AttrAction], i)
			require.Equal(t, w.grant, failed[i].GrantID, i)
			require.Equal(t, w.request.String(), failed[i].Attrs[sa.AttrRequestID], i)
			require.Equal(t, "acme", failed[i].TenantID)
			require.Contains(t, failed[i].Attrs[sa.AttrError], "smtp down for "+string(w.typ))
		}
		mu.Lock()
		require.Len(t, handled, len(want))
		mu.Unlock()
		rep, err := m.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.True(t, rep.OK())
	})
}

// TestReview133BlockingNotifierAfterCommit: the Notifier blocks until the
// caller's context ends (a mail server that hangs; the admin closed the
// tab). The approval committed before it was called: the grant exists
// while the Notifier still blocks, Approve returns it once the Notifier
// gives up, and the failure is recorded although the context had ended.
func TestReview133BlockingNotifierAfterCommit(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		inside := make(chan sa.Notification, 1)
		m := r133Mgr(t, sts[0], c, sa.WithNotifier(sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
			if n.Type != sa.EventRequestApproved {
				return nil
			}
			inside <- n
			<-ctx.Done()
			return ctx.Err()
		})))
		r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
		require.NoError(t, err)
		actx, cancel := context.WithCancel(ctx)
		defer cancel()
		type result struct {
			g   sa.Grant
			err error
		}
		done := make(chan result, 1)
		go func() { g, err := m.Approve(actx, r.ID, customer, sa.ApproveInput{}); done <- result{g, err} }()
		n := <-inside
		stored, err := m.Get(ctx, n.GrantID)
		require.NoError(t, err, "committed before the Notifier was called")
		_, err = m.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
		require.NoError(t, err)
		cancel()
		var res result
		select {
		case res = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Approve did not return after its context ended")
		}
		require.NoError(t, res.err)
		require.Equal(t, stored, res.g)
		failed, err := sts[0].Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventNotifyFailed}})
		require.NoError(t, err)
		require.Len(t, failed, 1)
		require.Equal(t, string(sa.EventRequestApproved), failed[0].Attrs[sa.AttrAction])
	})
}

// TestReview133NotifierReentersTheManager: a host Notifier that acts on
// what it hears (auto-denies requests from a blocked principal, revokes
// a grant as soon as it is delegated) calls back into the Manager. It is
// called after the commit, outside any store lock or transaction, so it
// neither deadlocks nor loses its own change, on memstore and on SQLite.
func TestReview133NotifierReentersTheManager(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		var m *sa.Manager
		var inner []error
		var mu sync.Mutex
		m = r133Mgr(t, sts[0], c, sa.WithNotifier(sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
			var err error
			switch {
			case n.Type == sa.EventRequestCreated && n.Grantees[0] == support.ID:
				_, err = m.Deny(ctx, n.RequestID, customer, "blocked principal")
			case n.Type == sa.EventGrantDelegated:
				_, err = m.Revoke(ctx, n.GrantID, customer, "no delegation here")
			default:
				return nil
			}
			mu.Lock()
			inner = append(inner, err)
			mu.Unlock()
			return nil
		})))
		done := make(chan struct{})
		var r sa.AccessRequest
		var g sa.Grant
		go func() {
			defer close(done)
			var err error
			r, err = m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
			require.NoError(t, err)
			ok, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
			require.NoError(t, err)
			g, err = m.Approve(ctx, ok.ID, customer, sa.ApproveInput{})
			require.NoError(t, err)
			_, err = m.AddGrantee(ctx, g.ID, "carol@vendor.example", engineer)
			require.NoError(t, err)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("deadlock: a Notifier calling the Manager never returned")
		}
		mu.Lock()
		require.Equal(t, []error{nil, nil}, inner)
		mu.Unlock()
		got, err := m.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestDenied, got.Status)
		cur, err := m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, sa.StatusRevoked, cur.Status(c.Now()))
		rep, err := m.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.True(t, rep.OK())
	})
}

// TestReview133NotificationsStayInTheirTenant: requests, approvals,
// denials and delegations in two tenants, interleaved. Each notification
// names its own tenant and carries only that tenant's request or grant:
// its reason, ticket, grantees and window are the ones stored for it, and
// no text of the other tenant appears in it.
func TestReview133NotificationsStayInTheirTenant(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		n := &notes{}
		m := r133Mgr(t, sts[0], c, sa.WithNotifier(n))
		customer := sa.Actor{Kind: sa.ActorCustomer, ID: "admin@example.com"}
		for i := range 3 {
			for _, tenant := range []string{"acme", "globex"} {
				by := sa.Actor{Kind: sa.ActorSupport, ID: fmt.Sprintf("%s-%d@vendor.example", tenant, i)}
				r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: tenant, By: by, Reason: "secret of " + tenant, TicketRef: tenant + "-T"})
				require.NoError(t, err)
				c.Advance(time.Microsecond)
				if i == 1 {
					_, err = m.Deny(ctx, r.ID, customer, "denied in "+tenant)
					require.NoError(t, err)
					continue
				}
				g, err := m.Approve(ctx, r.ID, customer, sa.ApproveInput{Reason: "approved in " + tenant})
				require.NoError(t, err)
				_, err = m.AddGrantee(ctx, g.ID, tenant+"-colleague@vendor.example", by)
				require.NoError(t, err)
			}
		}
		n.mu.Lock()
		all := slices.Clone(n.all)
		n.mu.Unlock()
		require.Len(t, all, 2*(3+2+1+2)) // per tenant: 3 created, 2 approved, 1 denied, 2 delegated
		for _, x := range all {
			other := "globex"
			if x.TenantID == "globex" {
				other = "acme"
			}
			require.Contains(t, []string{"acme", "globex"}, x.TenantID)
			require.NotContains(t, fmt.Sprintf("%v", x), other, "notification %s of %s mentions %s", x.Type, x.TenantID, other)
			if x.RequestID != uuid.Nil {
				r, err := m.GetRequest(ctx, x.RequestID)
				require.NoError(t, err)
				require.Equal(t, x.TenantID, r.TenantID)
				require.Equal(t, r.TicketRef, x.TicketRef)
			}
			if x.GrantID != uuid.Nil {
				g, err := m.Get(ctx, x.GrantID)
				require.NoError(t, err)
				require.Equal(t, x.TenantID, g.TenantID)
				require.Equal(t, g.StartsAt, x.StartsAt)
				require.Equal(t, g.ExpiresAt, x.ExpiresAt)
				require.Subset(t, g.Grantees, x.Grantees)
			}
		}
	})
}

// TestReview133RevokeTicketEndsApprovedGrantsOfThatTicketOnly: approvals
// carry the request's ticket reference, so RevokeTicket (the ticket is
// closed) ends them; it must not touch another ticket's grant, another
// tenant's grant of the same ticket, or, for a support actor, a grant
// that does not cover it. A look-alike ticket ("T-1 " or "t-1") selects
// nothing.
func TestReview133RevokeTicketEndsApprovedGrantsOfThatTicketOnly(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		m := r133Mgr(t, sts[0], c)
		approve := func(tenant, ticket string, by sa.Actor) sa.Grant {
			t.Helper()
			r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: tenant, By: by, TicketRef: ticket})
			require.NoError(t, err)
			g, err := m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
			require.NoError(t, err)
			require.Equal(t, ticket, g.TicketRef)
			return g
		}
		t1 := approve("acme", "T-1", engineer)
		t1b := approve("acme", "T-1", support)
		t2 := approve("acme", "T-2", engineer)
		gx := approve("globex", "T-1", engineer)

		for _, look := range []string{"t-1", "T-1 ", "T-"} {
			got, err := m.RevokeTicket(ctx, "acme", look, customer, "")
			if err == nil {
				require.Empty(t, got, look)
			} else {
				require.ErrorIs(t, err, sa.ErrInvalidInput, look)
			}
		}
		got, err := m.RevokeTicket(ctx, "acme", "T-1", engineer, "done")
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, t1.ID, got[0].ID, "support gives back only what covers it")
		got, err = m.RevokeTicket(ctx, "acme", "T-1", customer, "ticket closed")
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, t1b.ID, got[0].ID)
		for _, g := range []sa.Grant{t2, gx} {
			cur, err := m.Get(ctx, g.ID)
			require.NoError(t, err)
			require.Equal(t, sa.StatusActive, cur.Status(c.Now()), g.TenantID+" "+g.TicketRef)
		}
	})
}

// TestReview133TenantAuthorizerGuardsDecisionsAndDelegation: with a host
// Authorizer that binds each customer to its tenant, acme's administrator
// takes a request ID and a grant ID of globex (from a URL) and approves,
// denies, delegates. authz.go: the Authorizer judges the stored record's
// tenant, so each is refused, audited in globex's trail, and globex's
// request and grant are untouched.
func TestReview133TenantAuthorizerGuardsDecisionsAndDelegation(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		acmeAdmin := sa.Actor{Kind: sa.ActorCustomer, ID: "admin@acme.example"}
		globexAdmin := sa.Actor{Kind: sa.ActorCustomer, ID: "admin@globex.example"}
		m := r133Mgr(t, sts[0], c, sa.WithAuthorizer(func(ctx context.Context, a sa.Action, by sa.Actor, tenant string) error {
			if by.Kind == sa.ActorCustomer && !strings.HasSuffix(by.ID, "@"+tenant+".example") {
				return errors.New("not an administrator of " + tenant)
			}
			return sa.DefaultAuthorizer(ctx, a, by, tenant)
		}))
		r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: engineer})
		require.NoError(t, err)
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: globexAdmin, Grantees: []string{support.ID}})
		require.NoError(t, err)
		before := r133Snap(t, sts[0])
		_, err = m.Approve(ctx, r.ID, acmeAdmin, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrForbidden)
		_, err = m.Deny(ctx, r.ID, acmeAdmin, "")
		require.ErrorIs(t, err, sa.ErrForbidden)
		_, err = m.AddGrantee(ctx, g.ID, engineer.ID, acmeAdmin)
		require.ErrorIs(t, err, sa.ErrForbidden)
		evs := r133OnlyNewEvents(t, before, r133Snap(t, sts[0]))
		require.Len(t, evs, 3)
		for _, ev := range evs {
			require.Equal(t, sa.EventActionRefused, ev.Type)
			require.Equal(t, "globex", ev.TenantID)
			require.Equal(t, acmeAdmin, ev.Actor)
		}
		_, err = m.Approve(ctx, r.ID, globexAdmin, sa.ApproveInput{})
		require.NoError(t, err, "the tenant's own administrator decides")
	})
}

// TestReview133ApproveExpiryEdgeToTheMicrosecond: with the clock a
// nanosecond, then a microsecond, before the request's ExpiresAt the
// request is still pending and may be approved; at ExpiresAt it is not
// (StatusAt: expired from ExpiresAt on), before any Sweep, on both stores.
func TestReview133ApproveExpiryEdgeToTheMicrosecond(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		m := r133Mgr(t, sts[0], c)
		mk := func() sa.AccessRequest {
			t.Helper()
			c.Set(storetest.Epoch)
			r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
			require.NoError(t, err)
			return r
		}
		r1, r2, r3 := mk(), mk(), mk()
		c.Set(r1.ExpiresAt.Add(-time.Nanosecond))
		_, err := m.Approve(ctx, r1.ID, customer, sa.ApproveInput{})
		require.NoError(t, err)
		c.Set(r2.ExpiresAt.Add(-time.Microsecond))
		_, err = m.Deny(ctx, r2.ID, customer, "")
		require.NoError(t, err)
		c.Set(r3.ExpiresAt)
		before := r133Snap(t, sts[0])
		_, err = m.Approve(ctx, r3.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = m.Deny(ctx, r3.ID, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Empty(t, r133OnlyNewEvents(t, before, r133Snap(t, sts[0])))
		n, err := m.Sweep(ctx)
		require.NoError(t, err)
		_ = n
		evs, err := sts[0].Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventRequestExpired}})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Equal(t, r3.ID.String(), evs[0].Attrs[sa.AttrRequestID])
	})
}

// TestReview133DelegationJudgedAtLockTime: AddGrantee's doc and
// SECURITY.md: "Extend, Revoke and AddGrantee judge a grant at the time
// the store locked it". A grant that expires while the Authorizer runs is
// not delegated (nothing written); a scheduled grant that starts while it
// runs may be delegated by support, whose rule needs it active.
func TestReview133DelegationJudgedAtLockTime(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		var moveTo time.Time
		m := r133Mgr(t, sts[0], c, sa.WithAuthorizer(func(ctx context.Context, a sa.Action, by sa.Actor, tenant string) error {
			if a == sa.ActionAddGrantee && !moveTo.IsZero() {
				c.Set(moveTo) // time passes while the host looks up roles
			}
			return sa.DefaultAuthorizer(ctx, a, by, tenant)
		}))
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Grantees: []string{engineer.ID}, Duration: time.Hour})
		require.NoError(t, err)
		moveTo = g.ExpiresAt
		before := r133Snap(t, sts[0])
		_, err = m.AddGrantee(ctx, g.ID, "carol@vendor.example", customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.ErrorContains(t, err, "expired")
		require.Empty(t, r133OnlyNewEvents(t, before, r133Snap(t, sts[0])))

		c.Set(moveTo.Add(time.Minute))
		s, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Grantees: []string{engineer.ID}, Duration: time.Hour, StartsAt: c.Now().Add(time.Minute)})
		require.NoError(t, err)
		moveTo = s.StartsAt
		got, err := m.AddGrantee(ctx, s.ID, "carol@vendor.example", engineer)
		require.NoError(t, err, "active when the store locked it")
		require.Contains(t, got.Grantees, "carol@vendor.example")
	})
}

// TestReview133DecisionRaceAcrossSQLiteReplicas: two replicas (two
// handles on one SQLite file) approve and deny one request at once.
// Approve's doc: exactly one decision succeeds, the others fail with
// ErrInvalidInput (or ErrConflict); never two grants, never a grant for a
// denied request, never "database is locked".
func TestReview133DecisionRaceAcrossSQLiteReplicas(t *testing.T) {
	r133Each(t, 2, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		ms := []*sa.Manager{r133Mgr(t, sts[0], c), r133Mgr(t, sts[1], c)}
		for round := range 5 {
			r, err := ms[0].RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
			require.NoError(t, err)
			const n = 6
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					m := ms[i%2]
					if (i+round)%3 == 0 {
						_, errs[i] = m.Deny(ctx, r.ID, customer, "no")
					} else {
						_, errs[i] = m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
					}
				}()
			}
			close(start)
			wg.Wait()
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
					continue
				}
				if !errors.Is(err, sa.ErrConflict) {
					require.ErrorIs(t, err, sa.ErrInvalidInput)
				}
			}
			require.Equal(t, 1, ok, "exactly one decision: %v", errs)
			stored, err := sts[0].GetRequest(ctx, r.ID)
			require.NoError(t, err)
			gs, err := sts[0].ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, c.Now())
			require.NoError(t, err)
			mine := 0
			for _, g := range gs {
				if g.RequestID == r.ID {
					mine++
					require.Equal(t, stored.GrantID, g.ID)
				}
			}
			if stored.Status == sa.RequestApproved {
				require.Equal(t, 1, mine)
			} else {
				require.Equal(t, sa.RequestDenied, stored.Status)
				require.Zero(t, mine)
			}
			evs, err := sts[0].Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventRequestApproved, sa.EventRequestDenied}})
			require.NoError(t, err)
			decided := 0
			for _, ev := range evs {
				if ev.Attrs[sa.AttrRequestID] == r.ID.String() {
					decided++
				}
			}
			require.Equal(t, 1, decided)
		}
	})
}

// TestReview133DelegationRaceAtMaxGrantees: a grant names 99 principals;
// two of them delegate to two different colleagues at once on two
// replicas. AddGrantee's limit is MaxGrantees: exactly one succeeds, the
// other is refused (ErrInvalidInput), and the grant never names more than
// MaxGrantees principals.
func TestReview133DelegationRaceAtMaxGrantees(t *testing.T) {
	r133Each(t, 2, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		ms := []*sa.Manager{r133Mgr(t, sts[0], c), r133Mgr(t, sts[1], c)}
		many := []string{engineer.ID, support.ID}
		for i := 2; i < sa.MaxGrantees-1; i++ {
			many = append(many, fmt.Sprintf("p%03d@vendor.example", i))
		}
		g, err := ms[0].Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Grantees: many, Duration: sa.Day})
		require.NoError(t, err)
		require.Len(t, g.Grantees, sa.MaxGrantees-1)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, by := range []sa.Actor{engineer, support} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = ms[i].AddGrantee(ctx, g.ID, fmt.Sprintf("new%d@vendor.example", i), by)
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				require.ErrorIs(t, err, sa.ErrInvalidInput)
			}
		}
		require.Equal(t, 1, ok, "%v", errs)
		cur, err := ms[0].Get(ctx, g.ID)
		require.NoError(t, err)
		require.Len(t, cur.Grantees, sa.MaxGrantees)
		evs, err := sts[0].Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventGrantDelegated}})
		require.NoError(t, err)
		require.Len(t, evs, 1)
	})
}

// r133PanicAuditor panics on the events of one type.
type r133PanicAuditor struct{ typ sa.EventType }

func (a r133PanicAuditor) Record(_ context.Context, e sa.Event) error {
	if e.Type == a.typ {
		panic("auditor down on " + string(e.Type))
	}
	return nil
}

// TestReview133ApprovePanickingAuditorLeavesNothing: a second auditor
// panics while the approval's events are recorded (inside the store's
// lock or transaction). "A grant whose audit event cannot be written is
// not created": the panic reaches the caller, the request stays pending,
// no grant or event is stored, the store is not left locked, and the
// request can be approved once the auditor is healthy.
func TestReview133ApprovePanickingAuditorLeavesNothing(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		bad := r133Mgr(t, sts[0], c, sa.WithAuditor(sa.MultiAuditor(sts[0], r133PanicAuditor{sa.EventGrantCreated})))
		good := r133Mgr(t, sts[0], c)
		r, err := good.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
		require.NoError(t, err)
		before := r133Snap(t, sts[0])
		require.Panics(t, func() { _, _ = bad.Approve(ctx, r.ID, customer, sa.ApproveInput{}) })
		require.Empty(t, r133OnlyNewEvents(t, before, r133Snap(t, sts[0])))
		done := make(chan error, 1)
		go func() { _, err := good.Approve(ctx, r.ID, customer, sa.ApproveInput{}); done <- err }()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("the store stayed locked after the auditor's panic")
		}
	})
}

// TestReview133ListRequestsAtExpiresAt: at exactly a request's ExpiresAt
// it is expired (StatusAt), so a support console listing pending requests
// must not show it as still answerable, and the store must agree with the
// Manager's re-check: nothing is dropped and reported as a store
// returning what the filter does not select.
func TestReview133ListRequestsAtExpiresAt(t *testing.T) {
	r133Each(t, 1, func(t *testing.T, sts []r133Store) {
		c := storetest.NewClock(storetest.Epoch)
		var reported []error
		m := r133Mgr(t, sts[0], c, sa.WithErrorHandler(func(_ context.Context, err error) { reported = append(reported, err) }))
		r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer})
		require.NoError(t, err)
		ids := func(st sa.RequestStatus) []uuid.UUID {
			t.Helper()
			rs, err := m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", Statuses: []sa.RequestStatus{st}})
			require.NoError(t, err)
			out := []uuid.UUID{}
			for _, x := range rs {
				require.Equal(t, st, x.Status)
				out = append(out, x.ID)
			}
			return out
		}
		c.Set(r.ExpiresAt.Add(-time.Microsecond))
		require.Equal(t, []uuid.UUID{r.ID}, ids(sa.RequestPending))
		require.Empty(t, ids(sa.RequestExpired))
		c.Set(r.ExpiresAt)
		require.Empty(t, ids(sa.RequestPending))
		require.Equal(t, []uuid.UUID{r.ID}, ids(sa.RequestExpired))
		require.Empty(t, reported, "the store filters as the Manager re-checks")
	})
}
