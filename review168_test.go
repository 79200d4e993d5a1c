package supportaccess_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 168: second read of the fixes since 9a586e5 and of review 165's
// "never trust a store" hardening (update's sel, committed/committedAs,
// Approve's made, Deny's left, the Sweep's claimedOnce/dueTasks, NewManager's
// BestEffortAuditor checks, recordDenial at a broken clock) with HONEST
// stores whose transactions are retried (a deadlock or serialisation
// failure makes a SQL store call the change function again, on a grant
// another writer changed in between).
//
// Promises attacked:
//
//   - Store.UpdateGrant (store.go): the change may be called again; update
//     (manager.go): "the last call decides: a store may retry a
//     transaction"; committed: "A store that reports success without
//     having called the change (left is zero) gets an error" - must not
//     fire for a retried, honest one, nor for a no-op change.
//   - AddGrantee (delegate.go): the Notifier hears of a delegation only
//     when the last call changed the grant.
//   - RevokeTenant (revoke.go): "A grant the store lists that is not of
//     tenantID is left alone and reported" - an honest store must get no
//     report.
//   - NewManager (manager.go): "ErrInvalidInput when ... an auditor
//     (WithAuditor, also one inside BestEffortAuditor) ... is a nil
//     pointer"; BestEffortAuditor (audit_slog.go): "NewManager refuses a
//     BestEffortAuditor of nil (or of a nil pointer)".

// r168RetryStore is a memstore whose writes behave as a SQL store's under
// a deadlock retry: each change (UpdateGrant, UpdateRequest,
// ApproveRequest, and the claims' events) is first called on a copy in an
// attempt that is then abandoned; between the attempts, between (when
// set) runs, as another replica's write would; then the real call runs.
type r168RetryStore struct {
	*memstore.Store
	mu      sync.Mutex
	between func()
	retries int
}

func (s *r168RetryStore) gap() {
	s.mu.Lock()
	f := s.between
	s.between = nil
	s.retries++
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

var errR168Abort = errors.New("r168: transaction aborted (deadlock), retried")

func (s *r168RetryStore) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	if g, err := s.Store.GetGrant(ctx, id); err == nil {
		_, _ = change(&g) // the abandoned attempt
		s.gap()
	}
	return s.Store.UpdateGrant(ctx, id, change)
}

func (s *r168RetryStore) UpdateRequest(ctx context.Context, id uuid.UUID, change func(*sa.AccessRequest) ([]sa.Event, error)) (sa.AccessRequest, error) {
	if r, err := s.Store.GetRequest(ctx, id); err == nil {
		_, _ = change(&r)
		s.gap()
	}
	return s.Store.UpdateRequest(ctx, id, change)
}

func (s *r168RetryStore) ApproveRequest(ctx context.Context, id uuid.UUID, approve func(*sa.AccessRequest) (sa.Grant, []sa.Event, error)) (sa.AccessRequest, sa.Grant, error) {
	if r, err := s.Store.GetRequest(ctx, id); err == nil {
		_, _, _ = approve(&r)
		s.gap()
	}
	return s.Store.ApproveRequest(ctx, id, approve)
}

func (s *r168RetryStore) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	_, err := s.Store.ClaimTransitions(ctx, t, now, limit, func(g sa.Grant) ([]sa.Event, error) {
		if _, err := events(g); err != nil {
			return nil, err
		}
		return nil, errR168Abort
	})
	if err != nil && !errors.Is(err, errR168Abort) {
		return nil, err
	}
	s.gap()
	return s.Store.ClaimTransitions(ctx, t, now, limit, events)
}

func (s *r168RetryStore) ClaimExpirations(ctx context.Context, now time.Time, limit int, lease sa.Lease, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	_, err := s.Store.ClaimExpirations(ctx, now, limit, lease, func(g sa.Grant) ([]sa.Event, error) {
		if _, err := events(g); err != nil {
			return nil, err
		}
		return nil, errR168Abort
	})
	if err != nil && !errors.Is(err, errR168Abort) {
		return nil, err
	}
	s.gap()
	return s.Store.ClaimExpirations(ctx, now, limit, lease, events)
}

// r168Notes records the Notifier's calls.
type r168Notes struct {
	mu    sync.Mutex
	types []sa.EventType
}

func (n *r168Notes) Notify(_ context.Context, x sa.Notification) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.types = append(n.types, x.Type)
	return nil
}

func (n *r168Notes) count(typ sa.EventType) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, t := range n.types {
		if t == typ {
			c++
		}
	}
	return c
}

// r168Reports collects the error handler's reports.
type r168Reports struct {
	mu   sync.Mutex
	errs []string
}

func (r *r168Reports) handle(_ context.Context, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err.Error())
}

func (r *r168Reports) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// TestReview168RetriedTransactionsHonestStore: every write of the store is
// retried once, as a SQL store retries after a deadlock; every operation
// whose code changed since 9a586e5 must behave as without the retry: the
// result is the committed record, nothing is reported to the error
// handler, the Notifier hears of each change once, and Sweep records,
// counts and hooks each expiry once.
func TestReview168RetriedTransactionsHonestStore(t *testing.T) {
	st := &r168RetryStore{Store: memstore.New()}
	rep := &r168Reports{}
	notes := &r168Notes{}
	var hooked []uuid.UUID
	e := &env{t: t, store: st.Store}
	e.clock = storetest.NewClock(storetestEpoch)
	m, err := sa.NewManager(st, sa.WithNow(e.clock.Now), sa.WithErrorHandler(rep.handle), sa.WithNotifier(notes),
		sa.OnExpire(func(_ context.Context, g sa.Grant) error { hooked = append(hooked, g.ID); return nil }))
	require.NoError(t, err)
	e.m = m

	a := e.grant(sa.GrantInput{Grantees: []string{support.ID}, Duration: time.Hour, TicketRef: "T-1"})
	b := e.grant(sa.GrantInput{Grantees: []string{support.ID}, Duration: 2 * time.Hour, TicketRef: "T-2"})
	c := e.grant(sa.GrantInput{TenantID: "globex", Duration: time.Hour})

	// Extend: committed is the grant as stored.
	x, err := m.Extend(ctx, a.ID, a.ExpiresAt.Add(time.Hour), customer)
	require.NoError(t, err)
	require.Equal(t, a.ExpiresAt.Add(time.Hour), x.ExpiresAt)

	// AddGrantee: the first attempt would add the colleague, but another
	// replica added them before the retry: the last call (no change)
	// decides - no error, no notification.
	st.between = func() {
		_, err := st.Store.UpdateGrant(ctx, a.ID, func(g *sa.Grant) ([]sa.Event, error) {
			g.Grantees = append(g.Grantees, engineer.ID)
			return nil, nil
		})
		require.NoError(t, err)
	}
	g, err := m.AddGrantee(ctx, a.ID, engineer.ID, customer)
	require.NoError(t, err, "the no-op last call is a success")
	require.Contains(t, g.Grantees, engineer.ID)
	require.Zero(t, notes.count(sa.EventGrantDelegated), "no delegation by this call: not told")
	// And one that the retry does apply is told once.
	g, err = m.AddGrantee(ctx, b.ID, engineer.ID, customer)
	require.NoError(t, err)
	require.Contains(t, g.Grantees, engineer.ID)
	require.Equal(t, 1, notes.count(sa.EventGrantDelegated))

	// Revoke, where another replica revoked between the attempts: the
	// last call finds it ended.
	st.between = func() {
		_, err := e.m.Revoke(ctx, c.ID, customer, "other replica")
		require.NoError(t, err)
	}
	_, err = m.Revoke(ctx, c.ID, customer, "mine")
	require.ErrorIs(t, err, sa.ErrInvalidInput, "already revoked by the other replica")
	require.Equal(t, 1, notes.count(sa.EventGrantRevoked), "told once, by the replica that revoked")

	// RevokeTicket (sel), retried: exactly the ticket's grant, no report.
	out, err := m.RevokeTicket(ctx, "acme", "T-2", customer, "ticket closed")
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, b.ID, out[0].ID)
	require.False(t, out[0].RevokedAt.IsZero())

	// Requests: Deny and Approve, retried.
	r1, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Reason: "case 1", Duration: time.Hour})
	require.NoError(t, err)
	r2, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Reason: "case 2", Duration: time.Hour})
	require.NoError(t, err)
	d, err := m.Deny(ctx, r1.ID, customer, "no")
	require.NoError(t, err)
	require.Equal(t, sa.RequestDenied, d.Status)
	ag, err := m.Approve(ctx, r2.ID, customer, sa.ApproveInput{})
	require.NoError(t, err)
	require.Equal(t, r2.ID, ag.RequestID)
	got, err := m.Get(ctx, ag.ID)
	require.NoError(t, err)
	require.Equal(t, ag.ID, got.ID, "the grant returned is the one committed")
	grants, err := m.List(ctx, sa.ListFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, grants, 3, "a, b and the approved one; the retry's abandoned grant was never stored")

	// Sweep, every claim retried: a (extended to 2 h) and the approved
	// grant expire once each.
	e.clock.Advance(3 * time.Hour)
	n, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.ElementsMatch(t, []uuid.UUID{a.ID, ag.ID}, hooked)
	n, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Len(t, hooked, 2)
	for _, id := range []uuid.UUID{a.ID, ag.ID} {
		evs, err := st.Store.Events(ctx, sa.AuditFilter{GrantID: id, Types: []sa.EventType{sa.EventGrantExpired}})
		require.NoError(t, err)
		require.Len(t, evs, 1)
	}
	require.Equal(t, 2, notes.count(sa.EventGrantExpired))
	require.Greater(t, st.retries, 8, "the retries ran")
	require.Empty(t, rep.all(), "an honest store that retries gets no report")
}

// TestReview168BestEffortNestedNilPointer attacks NewManager's "ErrInvalidInput
// when ... an auditor (WithAuditor, also one inside BestEffortAuditor) ...
// is a nil pointer" and BestEffortAuditor's "NewManager refuses a
// BestEffortAuditor of nil (or of a nil pointer)" with the nil pointer one
// level deeper: BestEffortAuditor(MultiAuditor(shipper, nilPtr)) - two
// secondary destinations made best-effort together, the second one's
// constructor error dropped - and BestEffortAuditor(BestEffortAuditor(nilPtr)).
// The store keeps the trail. Correct: NewManager refuses them, or the
// Manager it returns never panics (a best-effort auditor "never fails").
// Found by review 168; now NewManager looks at every depth.
func TestReview168BestEffortNestedNilPointer(t *testing.T) {
	var secondary *memstore.Store // sqlstore.New's error dropped, say
	for name, inner := range map[string]sa.Auditor{
		"multi":       sa.MultiAuditor(&recordingAuditor{}, secondary),
		"best-effort": sa.BestEffortAuditor(secondary, nil),
	} {
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			m, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, sa.BestEffortAuditor(inner, nil))))
			if err != nil {
				require.ErrorIs(t, err, sa.ErrInvalidInput)
				return
			}
			require.NotPanics(t, func() {
				_, _ = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
			}, "a Manager NewManager accepted must not panic at its first change")
		})
	}
}

// TestReview168BestEffortCompositions: the compositions the docs recommend
// still pass NewManager and record (no regression of the new checks): the
// store plus best-effort secondaries; a non-auditing store with one auditor
// that must succeed plus a best-effort one, in either order; and the
// all-best-effort set over a non-auditing store is refused.
func TestReview168BestEffortCompositions(t *testing.T) {
	st := memstore.New()
	ship := &recordingAuditor{}
	m, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, sa.BestEffortAuditor(ship, nil), sa.BestEffortAuditor(failingAuditor{}, func(context.Context, error) {}))))
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	require.Equal(t, []sa.EventType{sa.EventGrantCreated}, ship.types())

	type plain struct{ sa.Store } // not an Auditor
	for _, order := range []string{"must-first", "best-effort-first"} {
		must, be := &recordingAuditor{}, sa.BestEffortAuditor(failingAuditor{}, func(context.Context, error) {})
		as := []sa.Auditor{must, be}
		if order == "best-effort-first" {
			as = []sa.Auditor{be, must}
		}
		m, err := sa.NewManager(plain{memstore.New()}, sa.WithAuditor(sa.MultiAuditor(as...)))
		require.NoError(t, err, order)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.NoError(t, err, order)
		require.Equal(t, []sa.EventType{sa.EventGrantCreated}, must.types(), order)
	}
	_, err = sa.NewManager(plain{memstore.New()}, sa.WithAuditor(sa.MultiAuditor(
		sa.BestEffortAuditor(&recordingAuditor{}, nil), sa.BestEffortAuditor(&recordingAuditor{}, nil))))
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// TestReview168DenialAtBrokenClockNotFlooded: the middleware at a clock
// before year 1000 denies support (Check fails closed), does not audit the
// denial (recordDenial's new check), and tells the error handler once per
// request, not more; once the clock is repaired, denials are audited again.
func TestReview168DenialAtBrokenClockNotFlooded(t *testing.T) {
	rep := &r168Reports{}
	e := newEnv(t, sa.WithErrorHandler(rep.handle))
	e.grant(sa.GrantInput{Grantees: []string{support.ID}, Duration: time.Hour})
	h := e.m.Middleware(func(*http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: "acme", Principal: support.ID, SessionID: "s1"}, true
	})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	good := e.clock.Now()
	e.clock.Set(time.Time{})
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
		require.NotEqual(t, http.StatusOK, w.Code, "fail closed at a broken clock")
	}
	require.Empty(t, e.events(sa.EventAccessDenied), "no record stamped year 1")
	broken := 0
	for _, s := range rep.all() {
		if strings.Contains(s, "broken clock") {
			broken++
		}
	}
	require.Equal(t, 3, broken, "one report per denied request: %q", rep.all())
	e.clock.Set(good)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/x", nil)) // read-only grant: denied
	require.Equal(t, http.StatusForbidden, w.Code)
	require.Len(t, e.events(sa.EventAccessDenied), 1, "audited again at a sane clock")
}
