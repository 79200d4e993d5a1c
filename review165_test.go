package supportaccess_test

// Review 165: a third-party Store (or AuditLog / RequestStore) that is
// buggy or lies. The Manager promises defence in depth ("never trust a
// store to have applied the rules", grant.go; sameGrant, manager.go;
// sameRequest, requests.go; keepSelected, List and RevokeTenant). Each
// test wraps a memstore (or a sqlstore) so that one method returns wrong
// data, and checks that the Manager refuses or filters it, reports it
// where documented, and never widens access, crosses tenants or corrupts
// the trail.
//
// The review found fourteen such bugs (the Manager checked what a store
// handed into its callbacks, not what it handed back); all were fixed in
// the same session. The comments of those tests describe the behaviour
// before the fix ("attacks …": what the store's wrong answer did).

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// r165Full is every interface the bundled stores implement that the
// Manager looks for.
type r165Full interface {
	sa.Store
	sa.RequestStore
	sa.HookStore
	sa.Auditor
	sa.AuditLog
	sa.AuditChainReader
}

// r165Store wraps a store; each non-nil function replaces the method of
// its name (it may call the inner store through s.r165Full).
type r165Store struct {
	r165Full
	getGrant       func(ctx context.Context, id uuid.UUID) (sa.Grant, error)
	listGrants     func(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error)
	find           func(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error)
	updateGrant    func(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error)
	claim          func(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error)
	claimExp       func(ctx context.Context, now time.Time, limit int, lease sa.Lease, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error)
	claimTasks     func(ctx context.Context, now time.Time, limit int, lease sa.Lease) ([]sa.HookTask, error)
	claimReqs      func(ctx context.Context, now time.Time, limit int, events func(sa.AccessRequest) ([]sa.Event, error)) ([]sa.AccessRequest, error)
	getRequest     func(ctx context.Context, id uuid.UUID) (sa.AccessRequest, error)
	listRequests   func(ctx context.Context, f sa.RequestFilter, now time.Time) ([]sa.AccessRequest, error)
	updateRequest  func(ctx context.Context, id uuid.UUID, change func(*sa.AccessRequest) ([]sa.Event, error)) (sa.AccessRequest, error)
	approveRequest func(ctx context.Context, id uuid.UUID, approve func(*sa.AccessRequest) (sa.Grant, []sa.Event, error)) (sa.AccessRequest, sa.Grant, error)
	events         func(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error)
}

func (s *r165Store) GetGrant(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
	if s.getGrant != nil {
		return s.getGrant(ctx, id)
	}
	return s.r165Full.GetGrant(ctx, id)
}

func (s *r165Store) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	if s.listGrants != nil {
		return s.listGrants(ctx, f, now)
	}
	return s.r165Full.ListGrants(ctx, f, now)
}

func (s *r165Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if s.find != nil {
		return s.find(ctx, tenantID, principal, scope, now)
	}
	return s.r165Full.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

func (s *r165Store) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	if s.updateGrant != nil {
		return s.updateGrant(ctx, id, change)
	}
	return s.r165Full.UpdateGrant(ctx, id, change)
}

func (s *r165Store) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if s.claim != nil {
		return s.claim(ctx, t, now, limit, events)
	}
	return s.r165Full.ClaimTransitions(ctx, t, now, limit, events)
}

func (s *r165Store) ClaimExpirations(ctx context.Context, now time.Time, limit int, lease sa.Lease, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if s.claimExp != nil {
		return s.claimExp(ctx, now, limit, lease, events)
	}
	return s.r165Full.ClaimExpirations(ctx, now, limit, lease, events)
}

func (s *r165Store) ClaimHookTasks(ctx context.Context, now time.Time, limit int, lease sa.Lease) ([]sa.HookTask, error) {
	if s.claimTasks != nil {
		return s.claimTasks(ctx, now, limit, lease)
	}
	return s.r165Full.ClaimHookTasks(ctx, now, limit, lease)
}

func (s *r165Store) ClaimExpiredRequests(ctx context.Context, now time.Time, limit int, events func(sa.AccessRequest) ([]sa.Event, error)) ([]sa.AccessRequest, error) {
	if s.claimReqs != nil {
		return s.claimReqs(ctx, now, limit, events)
	}
	return s.r165Full.ClaimExpiredRequests(ctx, now, limit, events)
}

func (s *r165Store) GetRequest(ctx context.Context, id uuid.UUID) (sa.AccessRequest, error) {
	if s.getRequest != nil {
		return s.getRequest(ctx, id)
	}
	return s.r165Full.GetRequest(ctx, id)
}

func (s *r165Store) ListRequests(ctx context.Context, f sa.RequestFilter, now time.Time) ([]sa.AccessRequest, error) {
	if s.listRequests != nil {
		return s.listRequests(ctx, f, now)
	}
	return s.r165Full.ListRequests(ctx, f, now)
}

func (s *r165Store) UpdateRequest(ctx context.Context, id uuid.UUID, change func(*sa.AccessRequest) ([]sa.Event, error)) (sa.AccessRequest, error) {
	if s.updateRequest != nil {
		return s.updateRequest(ctx, id, change)
	}
	return s.r165Full.UpdateRequest(ctx, id, change)
}

func (s *r165Store) ApproveRequest(ctx context.Context, id uuid.UUID, approve func(*sa.AccessRequest) (sa.Grant, []sa.Event, error)) (sa.AccessRequest, sa.Grant, error) {
	if s.approveRequest != nil {
		return s.approveRequest(ctx, id, approve)
	}
	return s.r165Full.ApproveRequest(ctx, id, approve)
}

func (s *r165Store) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	if s.events != nil {
		return s.events(ctx, f)
	}
	return s.r165Full.Events(ctx, f)
}

// r165Notes records notifications.
type r165Notes struct {
	mu sync.Mutex
	ns []sa.Notification
}

func (r *r165Notes) Notify(_ context.Context, n sa.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ns = append(r.ns, n)
	return nil
}

func (r *r165Notes) all() []sa.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ns)
}

// tenants returns the tenants notified of type typ, in order.
func (r *r165Notes) tenants(typ sa.EventType) []string {
	var out []string
	for _, n := range r.all() {
		if n.Type == typ {
			out = append(out, n.TenantID)
		}
	}
	return out
}

// grants returns the grants notified of type typ, in order.
func (r *r165Notes) grants(typ sa.EventType) []uuid.UUID {
	var out []uuid.UUID
	for _, n := range r.all() {
		if n.Type == typ {
			out = append(out, n.GrantID)
		}
	}
	return out
}

// r165Env is a Manager on a wrapped store (over inner, a memstore unless
// given), with a manual clock, a recording Notifier and an error log.
type r165Env struct {
	t     *testing.T
	inner r165Full
	st    *r165Store
	clock *storetest.Clock
	notes *r165Notes
	errs  *mwErrs
	m     *sa.Manager
}

func newR165Env(t *testing.T, inner r165Full, opts ...sa.Option) *r165Env {
	t.Helper()
	if inner == nil {
		inner = memstore.New()
	}
	e := &r165Env{t: t, inner: inner, st: &r165Store{r165Full: inner}, clock: storetest.NewClock(storetest.Epoch),
		notes: &r165Notes{}, errs: &mwErrs{}}
	m, err := sa.NewManager(e.st, append([]sa.Option{sa.WithNow(e.clock.Now), sa.WithNotifier(e.notes),
		sa.WithErrorHandler(e.errs.handle)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	e.m = m
	return e
}

func (e *r165Env) grant(in sa.GrantInput) sa.Grant {
	e.t.Helper()
	return mustGrant(e.t, e.m, in, customer)
}

// get reads a grant from the inner (honest) store.
func (e *r165Env) get(id uuid.UUID) sa.Grant {
	e.t.Helper()
	g, err := e.inner.GetGrant(ctx, id)
	require.NoError(e.t, err)
	return g
}

// trail is every event of the inner store.
func (e *r165Env) trail() []sa.Event {
	e.t.Helper()
	evs, err := e.inner.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(e.t, err)
	return evs
}

// reported reports whether an error handed to the error handler says s.
func (e *r165Env) reported(s string) bool {
	return slices.ContainsFunc(e.errs.all(), func(err error) bool { return strings.Contains(err.Error(), s) })
}

// tenantAware allows a customer only in tenant "acme" (its admin), as a
// host's Authorizer with more than one tenant does; support and the
// system as DefaultAuthorizer does.
func tenantAware(ctx context.Context, action sa.Action, by sa.Actor, tenantID string) error {
	if by.Kind == sa.ActorCustomer && tenantID != "acme" {
		return errors.New("not an admin of " + tenantID)
	}
	return sa.DefaultAuthorizer(ctx, action, by, tenantID)
}

// TestReview165UpdateGrantReturnsAnotherGrant attacks "Revoke ends an
// active or scheduled grant at once ... In-flight requests of a revoked
// grant end as each revocation commits" and the Notifier's "tells a
// tenant's contacts" (revoke.go, notify.go): the store changes the grant
// asked for (sameGrant passes) but returns another tenant's grant from
// UpdateGrant. The Manager hands what UpdateGrant returns to the caller,
// to the middleware's listeners (which cancel in-flight requests by the
// returned ID) and to the Notifier: globex is told its grant was revoked,
// and acme's streams are not cancelled.
func TestReview165UpdateGrantReturnsAnotherGrant(t *testing.T) {
	e := newR165Env(t, nil)
	mine := e.grant(sa.GrantInput{TenantID: "acme", Grantees: []string{support.ID}})
	theirs := e.grant(sa.GrantInput{TenantID: "globex"})
	e.st.updateGrant = func(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
		if _, err := e.inner.UpdateGrant(ctx, id, change); err != nil {
			return sa.Grant{}, err
		}
		return e.inner.GetGrant(ctx, theirs.ID)
	}
	x, xerr := e.m.Extend(ctx, mine.ID, mine.ExpiresAt.Add(-time.Hour), customer)
	d, derr := e.m.AddGrantee(ctx, mine.ID, engineer.ID, customer)
	r, rerr := e.m.Revoke(ctx, mine.ID, customer, "done")
	for _, n := range e.notes.all() {
		if n.Type != sa.EventGrantCreated {
			require.Equal(t, "acme", n.TenantID, "globex was notified of a change of acme's grant: %s", n.Type)
		}
	}
	if xerr == nil {
		require.Equal(t, mine.ID, x.ID, "Extend returned another grant")
	}
	if derr == nil {
		require.Equal(t, mine.ID, d.ID, "AddGrantee returned another grant")
	}
	if rerr == nil {
		require.Equal(t, mine.ID, r.ID, "Revoke returned another grant")
	}
	require.True(t, e.get(theirs.ID).RevokedAt.IsZero())
}

// TestReview165UpdateGrantReturnsZero: a store whose UpdateGrant returns
// the zero Grant with a nil error (a store that forgets to fill its
// result). Revoke's doc promises the revoked grant; the Manager returns
// the zero grant as a success, tells the listeners about grant uuid.Nil
// and the Notifier about tenant "".
func TestReview165UpdateGrantReturnsZero(t *testing.T) {
	e := newR165Env(t, nil)
	mine := e.grant(sa.GrantInput{TenantID: "acme"})
	e.st.updateGrant = func(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
		_, err := e.inner.UpdateGrant(ctx, id, change)
		return sa.Grant{}, err
	}
	r, err := e.m.Revoke(ctx, mine.ID, customer, "done")
	require.Equal(t, []string{"acme"}, e.notes.tenants(sa.EventGrantRevoked), "the Notifier is told of tenant \"\"")
	if err == nil {
		require.Equal(t, mine.ID, r.ID, "Revoke returned the zero grant as the revoked one")
		require.False(t, r.RevokedAt.IsZero())
	}
}

// TestReview165RevokeTenantListedGrantOfAnotherTenant attacks RevokeTenant's
// "A grant the store lists that is not of tenantID is left alone and
// reported to the error handler" (revoke.go): the store lists globex's
// grant under acme (its row's tenant column read wrong). keepSelected
// judges the listed copy, but the revocation acts on the ID, whose stored
// grant is globex's: with DefaultAuthorizer globex loses its access; with
// a tenant-aware Authorizer the call fails with ErrForbidden at that
// grant and acme's own grants keep their access.
func TestReview165RevokeTenantListedGrantOfAnotherTenant(t *testing.T) {
	r165RevokeTenantForged(t, nil)
}

// r165RevokeTenantForged runs the attack of
// TestReview165RevokeTenantListedGrantOfAnotherTenant on inner (a memstore
// when nil).
func r165RevokeTenantForged(t *testing.T, inner func() r165Full) {
	for _, authz := range []struct {
		name string
		a    sa.Authorizer
	}{{"default", sa.DefaultAuthorizer}, {"tenant-aware", tenantAware}} {
		t.Run(authz.name, func(t *testing.T) {
			var in r165Full
			if inner != nil {
				in = inner()
			}
			e := newR165Env(t, in, sa.WithAuthorizer(authz.a))
			a1 := e.grant(sa.GrantInput{TenantID: "acme"})
			// globex's grant, made by globex's admin (through a Manager
			// with the default Authorizer on the same store).
			globexAdmin, err := sa.NewManager(e.inner, sa.WithNow(e.clock.Now))
			require.NoError(t, err)
			theirs := mustGrant(t, globexAdmin, sa.GrantInput{TenantID: "globex"}, customer)
			a2 := e.grant(sa.GrantInput{TenantID: "acme"})
			e.st.listGrants = func(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
				gs, err := e.inner.ListGrants(ctx, f, now)
				if err != nil {
					return nil, err
				}
				forged := e.get(theirs.ID)
				forged.TenantID = f.TenantID
				return append([]sa.Grant{forged}, gs...), nil
			}
			revoked, err := e.m.RevokeTenant(ctx, "acme", customer, "end all")
			require.NoError(t, err)
			ids := []uuid.UUID{}
			for _, g := range revoked {
				ids = append(ids, g.ID)
			}
			require.ElementsMatch(t, []uuid.UUID{a1.ID, a2.ID}, ids)
			require.True(t, e.get(theirs.ID).RevokedAt.IsZero(), "globex's grant was revoked by acme's RevokeTenant")
			_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, "acme keeps support access after RevokeTenant")
			require.NotContains(t, e.notes.tenants(sa.EventGrantRevoked), "globex")
			require.True(t, e.reported(theirs.ID.String()), "the forged listing is reported")
		})
	}
}

// TestReview165RevokeTenantForgedListingSQL is the same attack over the
// SQL store on SQLite, PostgreSQL and MariaDB.
func TestReview165RevokeTenantForgedListingSQL(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			r165RevokeTenantForged(t, func() r165Full { return sqltest.NewStore(t, d) })
		})
	}
}

// TestReview165SupportChecksUseGetGrantOnly attacks AddGrantee's "a
// support actor that is itself a grantee of the grant" and Revoke's "a
// support actor only a grant that covers it" (delegate.go, revoke.go):
// both rules are judged on GetGrant's answer only ("Grantees never
// shrink, so checking before the transaction is safe"); the grant the
// store locks and hands to the change is never checked against them. A
// GetGrant that answers with the wrong grantee list (here: one naming
// the attacker) lets a support principal the grant does not name
// delegate it to a colleague — widening access — or revoke it.
func TestReview165SupportChecksUseGetGrantOnly(t *testing.T) {
	e := newR165Env(t, nil)
	g := e.grant(sa.GrantInput{TenantID: "acme", Grantees: []string{"alice@vendor.example"}})
	e.st.getGrant = func(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
		x, err := e.inner.GetGrant(ctx, id)
		x.Grantees = append(x.Grantees, engineer.ID)
		return x, err
	}
	_, err := e.m.AddGrantee(ctx, g.ID, "mallory@vendor.example", engineer)
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Check(ctx, "acme", "mallory@vendor.example", sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "an unnamed support principal delegated the grant")
	_, err = e.m.Revoke(ctx, g.ID, engineer, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.True(t, e.get(g.ID).RevokedAt.IsZero())
}

// TestReview165GetGrantReturnsAnotherGrant: GetGrant answers for another
// ID (another tenant's grant, or the zero Grant with a nil error) on the
// Extend, AddGrantee and Revoke paths: sameGrant refuses each change, the
// grants stay as they were and nothing is recorded. (Pins manager.go
// update and delegate.go.)
func TestReview165GetGrantReturnsAnotherGrant(t *testing.T) {
	for name, answer := range map[string]func(e *r165Env, mine, theirs sa.Grant) sa.Grant{
		"another tenant's": func(e *r165Env, _, theirs sa.Grant) sa.Grant { return e.get(theirs.ID) },
		"zero":             func(*r165Env, sa.Grant, sa.Grant) sa.Grant { return sa.Grant{} },
		"same ID, other tenant": func(e *r165Env, mine, _ sa.Grant) sa.Grant {
			g := e.get(mine.ID)
			g.TenantID = "globex"
			return g
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newR165Env(t, nil)
			mine := e.grant(sa.GrantInput{TenantID: "acme", Grantees: []string{support.ID}})
			theirs := e.grant(sa.GrantInput{TenantID: "globex", Grantees: []string{support.ID}})
			lie := answer(e, mine, theirs)
			e.st.getGrant = func(context.Context, uuid.UUID) (sa.Grant, error) { return lie, nil }
			before := e.trail()
			_, err := e.m.Extend(ctx, mine.ID, mine.ExpiresAt.Add(-time.Hour), customer)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			_, err = e.m.AddGrantee(ctx, mine.ID, engineer.ID, customer)
			require.ErrorIs(t, err, sa.ErrInvalidInput) // zero: "open to any support principal"
			_, err = e.m.Revoke(ctx, mine.ID, customer, "")
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			_, err = e.m.Revoke(ctx, mine.ID, support, "")
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Equal(t, before, e.trail(), "nothing recorded")
			require.Equal(t, mine, e.get(mine.ID))
			require.Equal(t, theirs, e.get(theirs.ID))
			for _, n := range e.notes.all() {
				require.Equal(t, sa.EventGrantCreated, n.Type, "only the creations were notified")
			}
		})
	}
}

// TestReview165GetReturnsAnotherGrant attacks Get's "returns the grant
// with the given ID, ErrNotFound when there is none" and GetRequest's
// "returns the access request with the given ID" (grant.go, requests.go):
// a store that answers with another tenant's grant or request (or the
// zero value and no error) has it returned to the host as the one asked
// for — unlike every other path, which sameGrant / sameRequest guard. An
// admin page that renders Get(id) for a URL's id shows globex's grant.
func TestReview165GetReturnsAnotherGrant(t *testing.T) {
	e := newR165Env(t, nil)
	mine := e.grant(sa.GrantInput{TenantID: "acme"})
	theirs := e.grant(sa.GrantInput{TenantID: "globex"})
	myReq, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	theirReq, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: support})
	require.NoError(t, err)
	for name, lie := range map[string]sa.Grant{"other": e.get(theirs.ID), "zero": {}} {
		e.st.getGrant = func(context.Context, uuid.UUID) (sa.Grant, error) { return lie, nil }
		g, err := e.m.Get(ctx, mine.ID)
		if err == nil {
			require.Equal(t, mine.ID, g.ID, name)
		}
	}
	stored, err := e.inner.GetRequest(ctx, theirReq.ID)
	require.NoError(t, err)
	for name, lie := range map[string]sa.AccessRequest{"other": stored, "zero": {}} {
		e.st.getRequest = func(context.Context, uuid.UUID) (sa.AccessRequest, error) { return lie, nil }
		r, err := e.m.GetRequest(ctx, myReq.ID)
		if err == nil {
			require.Equal(t, myReq.ID, r.ID, name)
		}
	}
}

// TestReview165CheckRefusesEveryWrongAnswer attacks "Defence in depth:
// never trust a store to have applied the rules" (grant.go check) with
// every way FindActiveGrant can answer wrongly with a nil error: a grant
// of the right tenant for another principal, without the scope, revoked,
// expired, scheduled, of another tenant, and the zero Grant.
func TestReview165CheckRefusesEveryWrongAnswer(t *testing.T) {
	e := newR165Env(t, nil)
	now := e.m.Now()
	named := e.grant(sa.GrantInput{TenantID: "acme", Grantees: []string{engineer.ID}, Scopes: []sa.Scope{sa.ScopeWrite}})
	readOnly := e.grant(sa.GrantInput{TenantID: "acme"})
	revoked := e.grant(sa.GrantInput{TenantID: "acme", Scopes: []sa.Scope{sa.ScopeWrite}})
	_, err := e.m.Revoke(ctx, revoked.ID, customer, "")
	require.NoError(t, err)
	scheduled := e.grant(sa.GrantInput{TenantID: "acme", StartsAt: now.Add(time.Hour), Scopes: []sa.Scope{sa.ScopeWrite}})
	theirs := e.grant(sa.GrantInput{TenantID: "globex", Scopes: []sa.Scope{sa.ScopeWrite}})
	expired := e.get(theirs.ID)
	expired.TenantID, expired.ExpiresAt = "acme", now
	for name, lie := range map[string]sa.Grant{
		"other principal": e.get(named.ID),
		"no write scope":  e.get(readOnly.ID),
		"revoked":         e.get(revoked.ID),
		"scheduled":       e.get(scheduled.ID),
		"other tenant":    e.get(theirs.ID),
		"expired":         expired,
		"zero":            {},
	} {
		e.st.find = func(context.Context, string, string, sa.Scope, time.Time) (sa.Grant, error) { return lie, nil }
		g, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeWrite)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, name)
		require.Zero(t, g.ID, name)
	}
}

// TestReview165ListFiltersWhatTheStoreShouldNot attacks List's "A grant
// the store returns that f does not select (another tenant, ticket or
// status) is left out and reported to the error handler" and the Limit
// (grant.go): the store returns every grant, whatever f says, and more
// than the limit.
func TestReview165ListFiltersWhatTheStoreShouldNot(t *testing.T) {
	e := newR165Env(t, nil)
	a1 := e.grant(sa.GrantInput{TenantID: "acme", TicketRef: "T-1"})
	a2 := e.grant(sa.GrantInput{TenantID: "acme", TicketRef: "T-2"})
	g1 := e.grant(sa.GrantInput{TenantID: "globex", TicketRef: "T-1"})
	a3 := e.grant(sa.GrantInput{TenantID: "acme", TicketRef: "T-1"})
	_, err := e.m.Revoke(ctx, a3.ID, customer, "")
	require.NoError(t, err)
	e.st.listGrants = func(ctx context.Context, _ sa.ListFilter, now time.Time) ([]sa.Grant, error) {
		return e.inner.ListGrants(ctx, sa.ListFilter{}, now)
	}
	ids := func(gs []sa.Grant) []uuid.UUID {
		out := []uuid.UUID{}
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}
	gs, err := e.m.List(ctx, sa.ListFilter{TenantID: "acme", Statuses: []sa.Status{sa.StatusActive}})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{a2.ID, a1.ID}, ids(gs))
	require.True(t, e.reported(g1.ID.String()))
	require.True(t, e.reported(a3.ID.String()))
	gs, err = e.m.List(ctx, sa.ListFilter{TenantID: "acme", TicketRef: "T-1"})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{a3.ID, a1.ID}, ids(gs))
	gs, err = e.m.List(ctx, sa.ListFilter{TenantID: "acme", Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{a3.ID}, ids(gs), "at most Limit")

	// RevokeTenant over the lying list revokes acme's only.
	revoked, err := e.m.RevokeTenant(ctx, "acme", customer, "all")
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{a1.ID, a2.ID}, ids(revoked))
	require.True(t, e.get(g1.ID).RevokedAt.IsZero())
	require.Equal(t, []string{"acme", "acme", "acme"}, e.notes.tenants(sa.EventGrantRevoked))
	// RevokeTicket likewise leaves the other ticket and tenant alone.
	b1 := e.grant(sa.GrantInput{TenantID: "acme", TicketRef: "T-1"})
	b2 := e.grant(sa.GrantInput{TenantID: "acme", TicketRef: "T-2"})
	revoked, err = e.m.RevokeTicket(ctx, "acme", "T-1", customer, "")
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{b1.ID}, ids(revoked))
	require.True(t, e.get(b2.ID).RevokedAt.IsZero())
	require.True(t, e.get(g1.ID).RevokedAt.IsZero())
}

// TestReview165ListDuplicatesHideGrants attacks List's "at most Limit"
// and "newest first" with a store that lists a grant twice (a join that
// fans out): each copy takes a place of the page, so the grant after it
// is not shown — an administrator paging the active grants does not see
// one that is active.
func TestReview165ListDuplicatesHideGrants(t *testing.T) {
	e := newR165Env(t, nil)
	a1 := e.grant(sa.GrantInput{TenantID: "acme"})
	a2 := e.grant(sa.GrantInput{TenantID: "acme"})
	e.st.listGrants = func(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
		f.Limit = 0
		gs, err := e.inner.ListGrants(ctx, f, now)
		if err != nil {
			return nil, err
		}
		var out []sa.Grant
		for _, g := range gs {
			out = append(out, g, g.Clone())
		}
		return out, nil
	}
	gs, err := e.m.List(ctx, sa.ListFilter{TenantID: "acme", Limit: 2})
	require.NoError(t, err)
	require.Len(t, gs, 2)
	require.Equal(t, []uuid.UUID{a2.ID, a1.ID}, []uuid.UUID{gs[0].ID, gs[1].ID})
}

// TestReview165ListRequestsFiltersWhatTheStoreShouldNot: ListRequests
// keeps only what f selects (another tenant's, requester's, ticket's or
// status's request is left out and reported), at most Limit.
func TestReview165ListRequestsFiltersWhatTheStoreShouldNot(t *testing.T) {
	e := newR165Env(t, nil)
	mine, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, TicketRef: "T-1"})
	require.NoError(t, err)
	theirs, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: support, TicketRef: "T-1"})
	require.NoError(t, err)
	other, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, TicketRef: "T-2"})
	require.NoError(t, err)
	denied, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, TicketRef: "T-1"})
	require.NoError(t, err)
	_, err = e.m.Deny(ctx, denied.ID, customer, "no")
	require.NoError(t, err)
	e.st.listRequests = func(ctx context.Context, _ sa.RequestFilter, now time.Time) ([]sa.AccessRequest, error) {
		return e.inner.ListRequests(ctx, sa.RequestFilter{}, now)
	}
	rs, err := e.m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", RequestedBy: support.ID, Statuses: []sa.RequestStatus{sa.RequestPending}})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.Equal(t, mine.ID, rs[0].ID)
	for _, id := range []uuid.UUID{theirs.ID, other.ID, denied.ID} {
		require.True(t, e.reported(id.String()), "left out and reported")
	}
	rs, err = e.m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", Limit: 1})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	// A pending request past ExpiresAt that the store lists as pending
	// is not shown as pending.
	e.clock.Advance(e.m.Policy().RequestTTL + time.Second)
	rs, err = e.m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", Statuses: []sa.RequestStatus{sa.RequestPending}})
	require.NoError(t, err)
	require.Empty(t, rs)
}

// TestReview165DecisionsOnAnotherRequest: Approve and Deny whose store
// hands over (GetRequest or the locked copy) another tenant's request are
// refused (sameRequest); a store whose ApproveRequest or UpdateRequest
// decides the right request but returns another is checked too: the
// Notifier must hear of acme's request only.
func TestReview165DecisionsOnAnotherRequest(t *testing.T) {
	e := newR165Env(t, nil)
	mine, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	theirs, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: support})
	require.NoError(t, err)
	stored, err := e.inner.GetRequest(ctx, theirs.ID)
	require.NoError(t, err)
	for name, lie := range map[string]sa.AccessRequest{"other": stored, "zero": {}} {
		e.st.getRequest = func(context.Context, uuid.UUID) (sa.AccessRequest, error) { return lie, nil }
		_, err = e.m.Approve(ctx, mine.ID, customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		_, err = e.m.Deny(ctx, mine.ID, customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
	}
	e.st.getRequest = nil
	// The locked copy is another tenant's.
	e.st.approveRequest = func(ctx context.Context, _ uuid.UUID, approve func(*sa.AccessRequest) (sa.Grant, []sa.Event, error)) (sa.AccessRequest, sa.Grant, error) {
		return e.inner.ApproveRequest(ctx, theirs.ID, approve)
	}
	_, err = e.m.Approve(ctx, mine.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	e.st.updateRequest = func(ctx context.Context, _ uuid.UUID, change func(*sa.AccessRequest) ([]sa.Event, error)) (sa.AccessRequest, error) {
		return e.inner.UpdateRequest(ctx, theirs.ID, change)
	}
	_, err = e.m.Deny(ctx, mine.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	got, err := e.inner.GetRequest(ctx, theirs.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
	for _, n := range e.notes.all() {
		require.NotEqual(t, sa.EventRequestApproved, n.Type)
		require.NotEqual(t, sa.EventRequestDenied, n.Type)
	}
}

// TestReview165DecisionReturnsAnotherRequest attacks Approve's "The
// Notifier is told (request.approved, with the grant's window)" and
// Deny's "returns the denied request": the store decides the right
// request but its ApproveRequest returns another tenant's grant and its
// UpdateRequest another tenant's request. The Manager returns and
// notifies what the store returned: globex hears that acme's support
// access was approved (with globex's grant), or that its own request was
// denied.
func TestReview165DecisionReturnsAnotherRequest(t *testing.T) {
	e := newR165Env(t, nil)
	mine, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	mine2, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	theirs, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: support})
	require.NoError(t, err)
	theirGrant := e.grant(sa.GrantInput{TenantID: "globex"})
	e.st.approveRequest = func(ctx context.Context, id uuid.UUID, approve func(*sa.AccessRequest) (sa.Grant, []sa.Event, error)) (sa.AccessRequest, sa.Grant, error) {
		r, _, err := e.inner.ApproveRequest(ctx, id, approve)
		return r, e.get(theirGrant.ID), err
	}
	e.st.updateRequest = func(ctx context.Context, id uuid.UUID, change func(*sa.AccessRequest) ([]sa.Event, error)) (sa.AccessRequest, error) {
		if _, err := e.inner.UpdateRequest(ctx, id, change); err != nil {
			return sa.AccessRequest{}, err
		}
		return e.inner.GetRequest(ctx, theirs.ID)
	}
	g, err := e.m.Approve(ctx, mine.ID, customer, sa.ApproveInput{})
	if err == nil {
		require.Equal(t, "acme", g.TenantID)
		require.Equal(t, mine.ID, g.RequestID)
	}
	r, err := e.m.Deny(ctx, mine2.ID, customer, "no")
	if err == nil {
		require.Equal(t, mine2.ID, r.ID)
	}
	for _, n := range e.notes.all() {
		if n.Type == sa.EventRequestApproved || n.Type == sa.EventRequestDenied {
			require.Equal(t, "acme", n.TenantID, "%+v", n)
		}
	}
}

// TestReview165AuditViewsRefuseForeignEvents attacks Events' "It does not
// trust the log to have applied f: an answer holding an event f does not
// select (another tenant's, say), events out of f's order or more than
// f.Limit of them is an error" (audit.go) through Events, AuditPage and
// ExportAudit: acme's views must never show globex's events.
func TestReview165AuditViewsRefuseForeignEvents(t *testing.T) {
	e := newR165Env(t, nil)
	e.grant(sa.GrantInput{TenantID: "globex", Reason: "globex secret"})
	e.clock.Advance(time.Second) // globex's event comes first in time order
	a := e.grant(sa.GrantInput{TenantID: "acme"})
	e.grant(sa.GrantInput{TenantID: "acme"})
	_, err := e.m.Revoke(ctx, a.ID, customer, "")
	require.NoError(t, err)
	lies := map[string]func(f sa.AuditFilter) ([]sa.Event, error){
		"every tenant": func(f sa.AuditFilter) ([]sa.Event, error) {
			f.TenantID = ""
			return e.inner.Events(ctx, f)
		},
		"other types": func(f sa.AuditFilter) ([]sa.Event, error) {
			f.Types = []sa.EventType{sa.EventGrantRevoked}
			return e.inner.Events(ctx, f)
		},
		"over the limit": func(f sa.AuditFilter) ([]sa.Event, error) {
			f.Limit = 0
			return e.inner.Events(ctx, f)
		},
		"reversed": func(f sa.AuditFilter) ([]sa.Event, error) {
			evs, err := e.inner.Events(ctx, f)
			slices.Reverse(evs)
			return evs, err
		},
	}
	for name, lie := range lies {
		t.Run(name, func(t *testing.T) {
			e.st.events = func(_ context.Context, f sa.AuditFilter) ([]sa.Event, error) { return lie(f) }
			f := sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventGrantCreated}, Limit: 1}
			if name == "reversed" {
				f = sa.AuditFilter{TenantID: "acme"}
			}
			evs, err := e.m.Events(ctx, f)
			require.Error(t, err)
			require.Empty(t, evs)
			evs, _, err = e.m.AuditPage(ctx, f, "")
			require.Error(t, err)
			require.Empty(t, evs)
			var buf bytes.Buffer
			_, err = e.m.ExportAudit(ctx, &buf, f)
			require.Error(t, err)
			require.NotContains(t, buf.String(), "globex")
		})
	}
}

// TestReview165AuditViewsRefuseDuplicates attacks Events' promise with a
// log that returns an event twice (a join that fans out; a page retried
// and appended): Compare treats the two copies as one position and lets
// them through, so AuditPage shows the event twice and ExportAudit
// writes it twice, an export VerifyJSONL then calls forged.
func TestReview165AuditViewsRefuseDuplicates(t *testing.T) {
	e := newR165Env(t, nil)
	e.grant(sa.GrantInput{TenantID: "acme"})
	e.grant(sa.GrantInput{TenantID: "acme"})
	e.st.events = func(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
		evs, err := e.inner.Events(ctx, f)
		if err != nil || len(evs) == 0 {
			return evs, err
		}
		return append([]sa.Event{evs[0].Clone()}, evs...), nil
	}
	evs, err := e.m.Events(ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	if err == nil {
		seen := map[uuid.UUID]bool{}
		for _, ev := range evs {
			require.False(t, seen[ev.ID], "event %s shown twice", ev.ID)
			seen[ev.ID] = true
		}
	}
}

// TestReview165VerifyAuditFedBadPages attacks VerifyAudit's "reports the
// first broken link" with a log that returns a page reordered, with an
// event twice, or with an event missing: each is a break, never an
// intact report.
func TestReview165VerifyAuditFedBadPages(t *testing.T) {
	for name, mangle := range map[string]func([]sa.Event) []sa.Event{
		"swapped":    func(evs []sa.Event) []sa.Event { evs[1], evs[2] = evs[2], evs[1]; return evs },
		"duplicated": func(evs []sa.Event) []sa.Event { return slices.Insert(evs, 2, evs[1]) },
		"dropped":    func(evs []sa.Event) []sa.Event { return slices.Delete(evs, 1, 2) },
		"dropped last": func(evs []sa.Event) []sa.Event {
			return evs[:len(evs)-1]
		},
		"reversed": func(evs []sa.Event) []sa.Event { slices.Reverse(evs); return evs },
	} {
		t.Run(name, func(t *testing.T) {
			e := newR165Env(t, nil)
			for range 4 {
				e.grant(sa.GrantInput{TenantID: "acme"})
			}
			rep, err := e.m.VerifyAudit(ctx, "acme")
			require.NoError(t, err)
			require.EqualValues(t, 4, rep.Events)
			e.st.events = func(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
				evs, err := e.inner.Events(ctx, f)
				if err != nil || len(evs) < 4 {
					return evs, err
				}
				return mangle(evs), nil
			}
			rep, err = e.m.VerifyAudit(ctx, "acme")
			require.ErrorIs(t, err, sa.ErrTampered, name)
			require.False(t, rep.OK())
		})
	}
}

// TestReview165VerifyAuditForeignChainInPage attacks VerifyAudit of acme
// ("walks tenantID's hash chain") with a log that ignores the tenant
// filter: globex's chain (intact) comes after acme's in chain order.
// VerifyAudit of acme reports globex's chain and counts its events as
// acme's verified ones: an auditor reading "Events: 5" for acme's 2, with
// globex's head in Chains.
func TestReview165VerifyAuditForeignChainInPage(t *testing.T) {
	e := newR165Env(t, nil)
	e.grant(sa.GrantInput{TenantID: "acme"})
	e.grant(sa.GrantInput{TenantID: "acme"})
	for range 3 {
		e.grant(sa.GrantInput{TenantID: "globex"})
	}
	e.st.events = func(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
		f.TenantID = "" // acme's chain, then globex's (chain order)
		return e.inner.Events(ctx, f)
	}
	rep, err := e.m.VerifyAudit(ctx, "acme")
	if err == nil {
		require.EqualValues(t, 2, rep.Events, "globex's events counted as acme's")
		require.NotContains(t, rep.Chains, "globex")
	}
}

// r165Hooked is a hook that records the grants it ran for.
type r165Hooked struct {
	mu  sync.Mutex
	ids []uuid.UUID
}

func (h *r165Hooked) hook(_ context.Context, g sa.Grant) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ids = append(h.ids, g.ID)
	return nil
}

func (h *r165Hooked) ran() []uuid.UUID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids)
}

// TestReview165SweepClaimsNotDue attacks Sweep's "grant.expired ... for
// grants that reached ExpiresAt, then the Notifier is told, and the
// OnExpire hooks run" (expiry.go) with a store whose claim of expiries
// also returns a grant that is still active (another tenant's): the
// Manager tells the middleware's listeners it ended (in-flight requests
// cancelled), notifies globex that its support access expired, runs the
// expiry hooks (deleting the generic support user while the grant is
// active) and counts it.
func TestReview165SweepClaimsNotDue(t *testing.T) {
	for _, hooked := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "hooks"}[hooked], func(t *testing.T) {
			h := &r165Hooked{}
			var opts []sa.Option
			if hooked {
				opts = append(opts, sa.OnExpire(h.hook))
			}
			e := newR165Env(t, nil, opts...)
			due := e.grant(sa.GrantInput{TenantID: "acme", Duration: time.Hour})
			active := e.grant(sa.GrantInput{TenantID: "globex", Duration: 7 * sa.Day})
			_, err := e.m.Sweep(ctx)
			require.NoError(t, err)
			e.clock.Advance(2 * time.Hour)
			extra := func(gs []sa.Grant, err error) ([]sa.Grant, error) {
				if err != nil || len(gs) == 0 {
					return gs, err
				}
				return append(gs, e.get(active.ID)), nil
			}
			e.st.claim = func(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
				gs, err := e.inner.ClaimTransitions(ctx, t, now, limit, events)
				if t != sa.TransitionExpired {
					return gs, err
				}
				return extra(gs, err)
			}
			e.st.claimExp = func(ctx context.Context, now time.Time, limit int, lease sa.Lease, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
				return extra(e.inner.ClaimExpirations(ctx, now, limit, lease, events))
			}
			n, err := e.m.Sweep(ctx)
			require.NoError(t, err)
			if hooked {
				require.Equal(t, []uuid.UUID{due.ID}, h.ran(), "a hook ran for an active grant")
			}
			require.Equal(t, []uuid.UUID{due.ID}, e.notes.grants(sa.EventGrantExpired), "globex told its active grant expired")
			require.Equal(t, 1, n, "Sweep counts the active grant as expired")
			_, err = e.m.Check(ctx, "globex", support.ID, sa.ScopeRead)
			require.NoError(t, err)
		})
	}
}

// TestReview165SweepClaimReturnsGrantAgain attacks "Sweep records the
// lifecycle transitions that are due, each exactly once" and the
// Notifier's one grant.expired per expiry, with a store whose claim of
// expiries breaks "never returned twice": it returns the same expired
// grant twice in one batch, then again in the next claims (it never
// marks it claimed). The Manager notifies once per copy, and since it
// stops only at an empty claim, a store that keeps returning the grant
// would keep one Sweep notifying for ever (here the store gives up after
// five claims).
func TestReview165SweepClaimReturnsGrantAgain(t *testing.T) {
	e := newR165Env(t, nil, sa.WithSweepConcurrency(1))
	g := e.grant(sa.GrantInput{TenantID: "acme", Duration: time.Hour})
	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	e.clock.Advance(2 * time.Hour)
	var mu sync.Mutex
	calls := 0
	e.st.claim = func(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
		gs, err := e.inner.ClaimTransitions(ctx, t, now, limit, events)
		if t != sa.TransitionExpired || err != nil {
			return gs, err
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls > 5 {
			return nil, nil
		}
		x, gerr := e.inner.GetGrant(ctx, g.ID)
		return []sa.Grant{x, x.Clone()}, gerr
	}
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{g.ID}, e.notes.grants(sa.EventGrantExpired), "one expiry, notified once")
	require.Equal(t, 1, n)
}

// TestReview165HookTaskTwiceRunsOnce attacks OnExpire's "each once per
// expiry when it succeeds" (hooks.go) with a store whose ClaimHookTasks
// returns one task twice in a batch (and a task of a grant that is still
// active): the hook runs twice for the expired grant and once for the
// active one.
func TestReview165HookTaskTwiceRunsOnce(t *testing.T) {
	h := &r165Hooked{}
	fails := true
	var mu sync.Mutex
	e := newR165Env(t, nil, sa.OnExpire(func(ctx context.Context, g sa.Grant) error {
		mu.Lock()
		f := fails
		mu.Unlock()
		if f {
			return errBoom
		}
		return h.hook(ctx, g)
	}), sa.WithExpireHookRetry(time.Second, time.Second))
	g := e.grant(sa.GrantInput{TenantID: "acme", Duration: time.Hour})
	active := e.grant(sa.GrantInput{TenantID: "globex", Duration: 7 * sa.Day})
	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	e.clock.Advance(2 * time.Hour)
	_, err = e.m.Sweep(ctx) // the hook fails: its task is due again in 1 s
	require.NoError(t, err)
	mu.Lock()
	fails = false
	mu.Unlock()
	e.clock.Advance(2 * time.Second)
	e.st.claimTasks = func(ctx context.Context, now time.Time, limit int, lease sa.Lease) ([]sa.HookTask, error) {
		ts, err := e.inner.ClaimHookTasks(ctx, now, limit, lease)
		if err != nil || len(ts) == 0 {
			return ts, err
		}
		fake := sa.HookTask{Grant: e.get(active.ID), NextAt: now, LeaseToken: lease.Token, LeaseUntil: lease.Until}
		return append(ts, ts[0], fake), nil
	}
	_, err = e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{g.ID}, h.ran())
}

// TestReview165ExpiredRequestsClaimNotDue: a store whose claim of expired
// requests returns (and asks events for) a request that is not due. The
// Manager's part is the event of each request the store passes to
// events: it must not record request.expired for a pending request
// before its ExpiresAt. (The store still decides what it claims.)
func TestReview165ExpiredRequestsClaimNotDue(t *testing.T) {
	e := newR165Env(t, nil)
	r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	var asked []sa.Event
	e.st.claimReqs = func(ctx context.Context, now time.Time, limit int, events func(sa.AccessRequest) ([]sa.Event, error)) ([]sa.AccessRequest, error) {
		if len(asked) > 0 {
			return nil, nil
		}
		x, err := e.inner.GetRequest(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		evs, err := events(x)
		if err != nil {
			return nil, err
		}
		asked = append(asked, evs...)
		return nil, nil
	}
	_, err = e.m.Sweep(ctx)
	require.NoError(t, err)
	// Pinned: the Manager builds the event for whatever the store asks
	// (its events callback does not judge due-ness); the store writes it.
	require.Len(t, asked, 1)
	require.Equal(t, sa.EventRequestExpired, asked[0].Type)
	// Access is not affected: the request is still pending and can be
	// approved, and nothing was stored.
	_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
}

// TestReview165StoreKeepsReferences attacks "callers may not be able to
// change stored state through a value they passed in or got back"
// (store.go) from the other side: a store that keeps the very slices the
// Manager handed it (no copy) must not see them change when the host
// edits what Grant, Extend or AddGrantee returned.
func TestReview165StoreKeepsReferences(t *testing.T) {
	e := newR165Env(t, nil)
	var kept []sa.Grant
	var mu sync.Mutex
	e.st.updateGrant = func(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
		return e.inner.UpdateGrant(ctx, id, func(g *sa.Grant) ([]sa.Event, error) {
			evs, err := change(g)
			mu.Lock()
			kept = append(kept, *g) // the slices, not copies
			mu.Unlock()
			return evs, err
		})
	}
	g := e.grant(sa.GrantInput{TenantID: "acme", Grantees: []string{engineer.ID}})
	d, err := e.m.AddGrantee(ctx, g.ID, "zed@vendor.example", customer)
	require.NoError(t, err)
	d.Grantees[0] = support.ID
	d.Scopes[0] = sa.ScopeWrite
	x, err := e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(-time.Hour), customer)
	require.NoError(t, err)
	x.Grantees[0] = support.ID
	x.Scopes[0] = sa.ScopeWrite
	mu.Lock()
	for _, k := range kept {
		require.Equal(t, []string{engineer.ID, "zed@vendor.example"}, k.Grantees)
		require.Equal(t, []sa.Scope{sa.ScopeRead}, k.Scopes)
	}
	mu.Unlock()
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
}

// r165StreamEndsOnRevoke serves a stream of acme's generic support user
// through the middleware (polling once an hour, so only the Manager's own
// listeners can end it), revokes its grant — through a store whose
// UpdateGrant returns the zero Grant when lie is set — and reports
// whether the stream's context ended within 500 ms.
func r165StreamEndsOnRevoke(t *testing.T, lie bool) bool {
	e := newR165Env(t, nil)
	sessions := &mwSessions{}
	sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-generic"})
	g := e.grant(sa.GrantInput{TenantID: "acme"})
	s := &mwStreams{t: t, streaming: make(chan *http.Request, 1), finish: make(chan struct{})}
	s.h = e.m.Middleware(sessions.resolve, sa.WithPollInterval(time.Hour), sa.WithMiddlewareErrorHandler(e.errs.handle))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := w.Write([]byte("event: one\n\n")); err != nil {
				return
			}
			s.streaming <- r
			select {
			case <-r.Context().Done():
			case <-s.finish:
			}
		}))
	defer s.stop()
	r := s.serve("generic")
	if lie {
		e.st.updateGrant = func(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
			_, err := e.inner.UpdateGrant(ctx, id, change)
			return sa.Grant{}, err
		}
	}
	_, err := e.m.Revoke(ctx, g.ID, customer, "now")
	require.NoError(t, err)
	require.False(t, e.get(g.ID).RevokedAt.IsZero(), "the store revoked it")
	select {
	case <-r.Context().Done():
		return true
	case <-time.After(500 * time.Millisecond): // the listener ends it at once; a poll would take an hour
		return false
	}
}

// TestReview165StreamEndsOnRevoke pins the control case of
// TestReview165StreamOutlivesRevokeWhenUpdateReturnsZero: with an honest
// store, the revocation ends the in-flight stream at once.
func TestReview165StreamEndsOnRevoke(t *testing.T) {
	require.True(t, r165StreamEndsOnRevoke(t, false))
}

// TestReview165StreamOutlivesRevokeWhenUpdateReturnsZero attacks Revoke's
// "In-flight requests of a revoked grant end" / DESIGN "in-flight long
// requests (streams) are cancelled": the store revokes the grant but its
// UpdateGrant returns the zero Grant (nil error). The Manager tells the
// middleware's listeners that grant uuid.Nil ended, and the stream of the
// revoked grant runs on until the next poll (here an hour; by default up
// to about a second), with Revoke having reported success.
func TestReview165StreamOutlivesRevokeWhenUpdateReturnsZero(t *testing.T) {
	require.True(t, r165StreamEndsOnRevoke(t, true), "the revoked grant's stream was not cancelled")
}
