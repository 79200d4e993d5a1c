package supportaccess_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Kills requests.go RequestAccess `r.StartsAt = g.StartsAt` replaced by
// `r.StartsAt = in.StartsAt`: the requested start is kept as the grant it
// would become would hold it — in UTC, to the microsecond, and a start a
// moment in the past (within the second Grant tolerates) is now — so the
// returned request, the stored one and the notification agree, whatever
// zone and precision the caller's clock used.
func TestReview120RequestedStartIsCanonical(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	zone := time.FixedZone("UTC+5", 5*3600)
	want := e.now().Add(2 * time.Hour)
	r := e.request(sa.RequestInput{StartsAt: want.Add(789 * time.Nanosecond).In(zone)})
	require.Equal(t, want, r.StartsAt, "UTC, truncated to the microsecond")
	require.Equal(t, time.UTC, r.StartsAt.Location())
	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got)
	require.Equal(t, want, n.last(t).StartsAt)

	late := e.request(sa.RequestInput{StartsAt: e.now().Add(-500 * time.Millisecond)})
	require.Equal(t, e.now(), late.StartsAt, "a start a moment ago is now, as for Grant")
}

// Kills requests.go narrow's `in.Duration > r.Duration` turned into `>=`:
// approving exactly the requested duration is not wider than the request.
func TestReview120ApproveExactlyTheRequestedDuration(t *testing.T) {
	e := newEnv(t)
	r := e.request(sa.RequestInput{Duration: 3 * sa.Day})
	g, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Duration: 3 * sa.Day})
	require.NoError(t, err)
	require.Equal(t, e.now().Add(3*sa.Day), g.ExpiresAt)
}

// Kills requests.go Approve's `if in.Duration < 0` check (removed): a
// negative duration is malformed input, refused before the request is
// looked up or the approver judged — not ErrNotFound for an unknown ID,
// not ErrForbidden and an action.refused event for a support actor.
func TestReview120ApproveNegativeDurationIsMalformedInput(t *testing.T) {
	e := newEnv(t)
	r := e.request(sa.RequestInput{})
	before := e.snapshot()
	_, err := e.m.Approve(ctx, uuid.New(), customer, sa.ApproveInput{Duration: -time.Hour})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.NotErrorIs(t, err, sa.ErrNotFound)
	_, err = e.m.Approve(ctx, r.ID, engineer, sa.ApproveInput{Duration: -time.Hour})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.NotErrorIs(t, err, sa.ErrForbidden)
	require.Equal(t, before, e.snapshot(), "nothing recorded, no refusal audited")
}

// Kills notify.go notifyRequest's `if reason == "" { reason = r.Reason }`
// (removed): a Deny without a reason tells the Notifier the request's
// reason, as Notification.Reason documents ("else the grant's or
// request's reason").
func TestReview120DenyWithoutReasonNotifiesRequestReason(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	r := e.request(sa.RequestInput{Reason: "export broken"})
	_, err := e.m.Deny(ctx, r.ID, customer, "")
	require.NoError(t, err)
	x := n.last(t)
	require.Equal(t, sa.EventRequestDenied, x.Type)
	require.Equal(t, "export broken", x.Reason)
}

// Kills delegate.go's support-only rule widened to every non-customer
// (`by.Kind == ActorSupport` turned into `by.Kind != ActorCustomer`) and
// the scheduled case narrowed to customers (`by.Kind != ActorSupport`
// turned into `by.Kind == ActorCustomer`): AddGrantee judges a system
// actor as a customer, so with an Authorizer that allows it, it delegates
// a grant it is not named on, active or scheduled.
func TestReview120SystemDelegatesAsACustomerWhenAuthorized(t *testing.T) {
	e := newEnv(t, sa.WithAuthorizer(func(ctxT, sa.Action, sa.Actor, string) error { return nil }))
	act := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
	sch := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, StartsAt: e.now().Add(time.Hour)})
	for _, id := range []uuid.UUID{act.ID, sch.ID} {
		g, err := e.m.AddGrantee(ctx, id, colleague, system)
		require.NoError(t, err)
		require.Equal(t, []string{colleague, engineer.ID}, g.Grantees)
	}
	require.Len(t, e.events(sa.EventGrantDelegated), 2)
	require.Empty(t, e.events(sa.EventActionRefused))
}

// Kills delegate.go's `changed = false` at the start of the change
// function (removed): the last call decides. Here the retried call finds
// the principal already added (by a concurrent AddGrantee that committed
// in between): the call is a no-op, so nothing is recorded and nobody is
// told of a delegation this call did not make.
func TestReview120AddGranteeRetriedByStoreNotifiesOnlyWhatItDid(t *testing.T) {
	st := &retryingStore{Store: memstore.New()}
	n := &notes{}
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithNotifier(n))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Grantees: []string{engineer.ID}})
	require.NoError(t, err)
	st.between = func(g *sa.Grant) { g.Grantees = []string{colleague, engineer.ID} }
	notified := len(n.types())
	d, err := m.AddGrantee(ctx, g.ID, colleague, customer)
	require.NoError(t, err)
	require.Equal(t, []string{colleague, engineer.ID}, d.Grantees)
	require.Len(t, n.types(), notified, "no notification of a delegation this call did not make")
	evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantDelegated}})
	require.NoError(t, err)
	require.Empty(t, evs)
}

// Kills requests.go sweepRequests' `ev.Attrs["expires_at"]` (removed):
// request.expired, recorded by a Sweep that may run long after the
// request's ExpiresAt, keeps when it expired, as grant.expired does.
func TestReview120RequestExpiredEventKeepsExpiresAt(t *testing.T) {
	e := newEnv(t)
	r := e.request(sa.RequestInput{})
	e.clock.Set(r.ExpiresAt.Add(5 * time.Hour))
	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	evs := e.events(sa.EventRequestExpired)
	require.Len(t, evs, 1)
	require.Equal(t, e.now(), evs[0].Time)
	at, err := time.Parse(time.RFC3339Nano, evs[0].Attrs[sa.AttrExpiresAt])
	require.NoError(t, err)
	require.True(t, r.ExpiresAt.Equal(at), "expires_at %s, want %s", at, r.ExpiresAt)
}

// Kills notify.go deliver's `n.Scopes = slices.Clone(n.Scopes)` (removed):
// a Notifier that writes to the notification's Scopes cannot widen the
// grant the call returns (the Grantees twin is in
// TestNotifierFailureNeverUndoes).
func TestReview120NotificationScopesAreCopies(t *testing.T) {
	e := newEnv(t, sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
		if len(n.Scopes) > 0 {
			n.Scopes[0] = "admin"
		}
		return nil
	})))
	g := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
	require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes)
	d, err := e.m.AddGrantee(ctx, g.ID, colleague, customer)
	require.NoError(t, err)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, d.Scopes)
	r := e.request(sa.RequestInput{})
	require.Equal(t, []sa.Scope{sa.ScopeRead}, r.Scopes)
	a, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	require.Equal(t, []sa.Scope{sa.ScopeRead}, a.Scopes)
	for _, id := range []uuid.UUID{g.ID, a.ID} {
		got, err := e.m.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, []sa.Scope{sa.ScopeRead}, got.Scopes)
	}
}

// review120TenantAuthorizer is a host rule that knows which tenant each
// customer administers (customer: acme; gina: globex) and keeps support
// out of initech; otherwise DefaultAuthorizer decides.
func review120TenantAuthorizer(gina sa.Actor) sa.Authorizer {
	return func(c ctxT, a sa.Action, by sa.Actor, tenant string) error {
		switch {
		case by == customer && tenant != "acme", by == gina && tenant != "globex":
			return errors.New("not an admin of " + tenant)
		case by.Kind == sa.ActorSupport && tenant == "initech":
			return errors.New("no support for " + tenant)
		}
		return sa.DefaultAuthorizer(c, a, by, tenant)
	}
}

// Kills the tenant passed to the Authorizer replaced by "" in
// decisionTarget (Approve, Deny), RequestAccess and AddGrantee: the
// Authorizer judges the stored request's or grant's tenant (the one named
// in the call for RequestAccess), so an admin of one tenant cannot decide
// a request of another, nor delegate its grant, by naming its ID — and
// can act on its own tenant's.
func TestReview120AuthorizerJudgesTheStoredTenant(t *testing.T) {
	gina := sa.Actor{Kind: sa.ActorCustomer, ID: "gina@globex.example"}
	e := newEnv(t, sa.WithAuthorizer(review120TenantAuthorizer(gina)))

	_, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "initech", By: engineer})
	require.ErrorIs(t, err, sa.ErrForbidden, "the tenant named in the call is judged")
	require.Empty(t, e.requests())

	foreign := e.request(sa.RequestInput{TenantID: "globex"})
	own := e.request(sa.RequestInput{TenantID: "acme"})
	before := e.snapshotWithout(sa.EventActionRefused)
	_, err = e.m.Approve(ctx, foreign.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Deny(ctx, foreign.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused), "nothing decided")
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 3)
	tenants := map[string]int{}
	for _, ev := range refused {
		tenants[ev.TenantID]++
	}
	require.Equal(t, map[string]int{"initech": 1, "globex": 2}, tenants, "each refusal names the tenant judged")
	got, err := e.m.GetRequest(ctx, foreign.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)

	g, err := e.m.Approve(ctx, own.ID, customer, sa.ApproveInput{})
	require.NoError(t, err, "an admin decides its own tenant's request")
	d, err := e.m.Deny(ctx, foreign.ID, gina, "")
	require.NoError(t, err)
	require.Equal(t, sa.RequestDenied, d.Status)

	gg, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: gina, Grantees: []string{engineer.ID}})
	require.NoError(t, err)
	_, err = e.m.AddGrantee(ctx, gg.ID, colleague, customer)
	require.ErrorIs(t, err, sa.ErrForbidden, "the stored grant's tenant is judged")
	_, err = e.m.AddGrantee(ctx, g.ID, colleague, customer)
	require.NoError(t, err)
	stored, err := e.m.Get(ctx, gg.ID)
	require.NoError(t, err)
	require.Equal(t, []string{engineer.ID}, stored.Grantees)
}

// review120NilErr is a host error type whose methods read the receiver: a
// typed nil *review120NilErr returned as an error panics in Error (a
// runtime error) and in Unwrap.
type review120NilErr struct{ cause error }

func (e *review120NilErr) Error() string { return "smtp: " + e.cause.Error() }
func (e *review120NilErr) Unwrap() error { return e.cause }

// Kills notify.go innerPanicText's runtime.Error case (its message
// replaced by its type) and newHostError's exposable check (removed): a
// Notifier returning a typed nil error still leaves a notify.failed event
// that says what went wrong (the nil pointer dereference), and the error
// handler gets an error whose chain errors.Is can walk without a panic.
func TestReview120NotifierTypedNilErrorIsRecordedAndWalkable(t *testing.T) {
	var handled []error
	walkPanicked := false
	e := newEnv(t,
		sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error {
			var err *review120NilErr
			return err
		})),
		sa.WithErrorHandler(func(_ context.Context, err error) {
			handled = append(handled, err)
			func() {
				defer func() { walkPanicked = walkPanicked || recover() != nil }()
				_ = errors.Is(err, errBoom)
			}()
		}))
	e.grant(sa.GrantInput{})
	failed := e.events(sa.EventNotifyFailed)
	require.Len(t, failed, 1)
	require.Contains(t, failed[0].Attrs[sa.AttrError], "*supportaccess_test.review120NilErr")
	require.Contains(t, failed[0].Attrs[sa.AttrError], "nil pointer dereference")
	require.Len(t, handled, 1)
	require.Contains(t, handled[0].Error(), "nil pointer dereference")
	require.False(t, walkPanicked, "errors.Is on the handled error panicked")
}
