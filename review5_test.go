package supportaccess_test

import (
	"bytes"
	"context"
	"fmt"
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

// Regression tests for the fifth review (root package: the time a change
// is judged at, and the range of grant times).

// A grant that ends while Extend, Revoke or AddGrantee waits (here in the
// Authorizer, standing for the read, the authorisation and the wait for
// the store's lock) is judged at the time the store locked it: expired,
// so the change is refused and nothing is written — no sweep needed.
func TestReview5ChangesJudgedAtLockTime(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *env, g sa.Grant) error
	}{
		{"extend", func(e *env, g sa.Grant) error {
			_, err := e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
			return err
		}},
		{"revoke", func(e *env, g sa.Grant) error {
			_, err := e.m.Revoke(ctx, g.ID, customer, "done")
			return err
		}},
		{"add grantee", func(e *env, g sa.Grant) error {
			_, err := e.m.AddGrantee(ctx, g.ID, support.ID, customer)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *env
			var ends time.Time
			e = newEnv(t, sa.WithAuthorizer(func(ctx context.Context, a sa.Action, by sa.Actor, tenant string) error {
				if a != sa.ActionGrant {
					e.clock.Set(ends) // the grant ends meanwhile
				}
				return sa.DefaultAuthorizer(ctx, a, by, tenant)
			}))
			g := e.grant(sa.GrantInput{Duration: time.Hour, Grantees: []string{engineer.ID}})
			ends = g.ExpiresAt
			before := e.snapshot()
			err := tc.change(e, g)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.ErrorContains(t, err, "expired")
			require.Equal(t, before, e.snapshot(), "nothing written")
		})
	}
}

// StartsAt and the end it gives may not lie after year 9999 — the last
// instant the audit trail's JSON can hold, and what every store keeps —
// through Grant, RequestAccess and Extend; the refusal writes nothing.
func TestReview5GrantTimesEndByYear9999(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	for _, starts := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(586580, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), // ends in year 10000
	} {
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: starts, Duration: 7 * 24 * time.Hour})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "grant starting %s", starts)
		_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, StartsAt: starts, Duration: 7 * 24 * time.Hour, Reason: "r"})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "request starting %s", starts)
	}
	require.Equal(t, before, e.snapshot(), "nothing written")

	// The last day that fits, then an extension past it.
	g := e.grant(sa.GrantInput{StartsAt: time.Date(9999, 12, 20, 0, 0, 0, 0, time.UTC), Duration: 7 * 24 * time.Hour})
	require.Equal(t, time.Date(9999, 12, 27, 0, 0, 0, 0, time.UTC), g.ExpiresAt)
	created := e.events(sa.EventGrantCreated)
	require.NotEmpty(t, created[len(created)-1].After, "the event holds the grant")
	before = e.snapshot()
	_, err := e.m.Extend(ctx, g.ID, time.Date(10000, 1, 2, 0, 0, 0, 0, time.UTC), customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Equal(t, before, e.snapshot(), "nothing written")
}

// leaseSpy is a memstore that records the lease of every claim of
// expirations.
type leaseSpy struct {
	*memstore.Store
	mu     sync.Mutex
	leases []sa.Lease
}

func (s *leaseSpy) ClaimExpirations(ctx context.Context, now time.Time, limit int, lease sa.Lease, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	s.mu.Lock()
	s.leases = append(s.leases, lease)
	s.mu.Unlock()
	return s.Store.ClaimExpirations(ctx, now, limit, lease, events)
}

// A batch's hook lease runs from its claim, not from the sweep's start: a
// batch claimed after slow hooks of earlier batches still holds its tasks
// for the whole lease, so no other replica runs them meanwhile.
func TestReview5SweepLeaseFromClaim(t *testing.T) {
	const lease = time.Minute
	clock := storetest.NewClock(storetest.Epoch)
	spy := &leaseSpy{Store: memstore.New()}
	slow := sync.OnceFunc(func() { clock.Advance(10 * lease) }) // the first hook takes ten leases
	m, err := sa.NewManager(spy, sa.WithNow(clock.Now), sa.WithSweepConcurrency(1), sa.WithExpireHookLease(lease),
		sa.OnExpire(func(context.Context, sa.Grant) error { slow(); return nil }))
	require.NoError(t, err)
	var ends time.Time
	for range 2*sa.SweepBatchSize + 1 { // three batches
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		require.NoError(t, err)
		ends = g.ExpiresAt
	}
	clock.Set(ends)
	n, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2*sa.SweepBatchSize+1, n)
	spy.mu.Lock()
	defer spy.mu.Unlock()
	require.GreaterOrEqual(t, len(spy.leases), 3)
	// The third claim waits for the first batch's hooks (one claimer, one
	// batch handed over at a time), so it starts ten leases later.
	require.Equal(t, ends.Add(10*lease+lease), spy.leases[2].Until, "lease of the batch claimed after the slow hook")
}

// Whatever the host's Authorizer allows, support never grants or extends
// access itself (it asks with RequestAccess): refused with ErrForbidden
// and audited as action.refused, nothing else written — as Approve and
// Deny stay customer-only.
func TestReview5SupportNeverGrantsOrExtends(t *testing.T) {
	allowAll := sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error { return nil })
	e := newEnv(t, allowAll)
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	before := e.snapshot()
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support, Duration: time.Hour})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), support)
	require.ErrorIs(t, err, sa.ErrForbidden)
	after := e.snapshot()
	require.Equal(t, before.grants, after.grants, "no grant created or changed")
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 2)
	for i, action := range []sa.Action{sa.ActionGrant, sa.ActionExtend} {
		require.Equal(t, support, refused[i].Actor)
		require.Equal(t, string(action), refused[i].Attrs[sa.AttrAction])
	}
	require.Len(t, after.events, len(before.events)+2, "only the refusals are recorded")

	// The same Authorizer still lets the system and customers through.
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: system, Duration: time.Hour})
	require.NoError(t, err)
	_, err = e.m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
	require.NoError(t, err)
}

// A request that expires while Approve or Deny waits (here in the
// Authorizer) is judged at the time the store locked it: expired, so it is
// neither approved — no grant — nor denied.
func TestReview5DecisionJudgedAtLockTime(t *testing.T) {
	for _, action := range []sa.Action{sa.ActionApprove, sa.ActionDeny} {
		t.Run(string(action), func(t *testing.T) {
			var e *env
			var expires time.Time
			e = newEnv(t, sa.WithAuthorizer(func(ctx context.Context, a sa.Action, by sa.Actor, tenant string) error {
				if a == action {
					e.clock.Set(expires) // the request expires meanwhile
				}
				return sa.DefaultAuthorizer(ctx, a, by, tenant)
			}))
			r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: time.Hour, Reason: "ticket"})
			require.NoError(t, err)
			expires = r.ExpiresAt
			before := e.snapshot()
			if action == sa.ActionApprove {
				_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
			} else {
				_, err = e.m.Deny(ctx, r.ID, customer, "no")
			}
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.ErrorContains(t, err, "expired")
			require.Equal(t, before, e.snapshot(), "no grant, no event")
		})
	}
}

// cancelAfterCreate is a memstore that ends the caller's context right
// after a grant is committed (a browser tab closed at that moment).
type cancelAfterCreate struct {
	*memstore.Store
	cancel context.CancelFunc
}

func (s cancelAfterCreate) CreateGrant(ctx context.Context, g sa.Grant, events []sa.Event) error {
	err := s.Store.CreateGrant(ctx, g, events)
	s.cancel()
	return err
}

// A caller's context that ends after the change committed does not lose
// the notification without a trace: the Notifier still gets it (one that
// only queues may deliver it), and its failure is recorded as
// notify.failed, under a context of its own.
func TestReview5NotificationAfterCancelIsRecorded(t *testing.T) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := cancelAfterCreate{Store: memstore.New(), cancel: cancel}
	var called int
	var errs []error
	m, err := sa.NewManager(st, sa.WithNotifier(sa.NotifierFunc(func(ctx context.Context, _ sa.Notification) error { called++; return ctx.Err() })),
		sa.WithErrorHandler(func(_ context.Context, err error) { errs = append(errs, err) }))
	require.NoError(t, err)
	g, err := m.Grant(cctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Reason: "r"})
	require.NoError(t, err, "the grant committed")
	require.Equal(t, 1, called, "the Notifier is still called")
	evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventNotifyFailed}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, g.ID, evs[0].GrantID)
	require.Equal(t, string(sa.EventGrantCreated), evs[0].Attrs[sa.AttrAction])
	require.Equal(t, context.Canceled.Error(), evs[0].Attrs[sa.AttrError])
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], context.Canceled)
}

// chainFails is a memstore whose AuditChain fails for one tenant.
type chainFails struct {
	*memstore.Store
	tenant string
}

func (s chainFails) AuditChain(ctx context.Context, tenant string) (sa.AuditChainState, error) {
	if tenant == s.tenant {
		return sa.AuditChainState{}, errBoom
	}
	return s.Store.AuditChain(ctx, tenant)
}

// An export that fails in the middle of a page (here looking up the hash
// before tenant b's first exported event) leaves no partial line: each
// page is encoded in full before any of it is written.
func TestReview5ExportFailsBetweenLines(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("x", 500)
	for i := range 300 { // about 250 KiB of lines for tenant a
		e.clock.Advance(time.Millisecond)
		require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventSupportRequest,
			TenantID: "a", Actor: support, Reason: fmt.Sprint(i, long)}))
	}
	for range 3 {
		e.clock.Advance(time.Millisecond)
		require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventSupportRequest, TenantID: "b", Actor: support}))
	}
	_, err := e.m.PurgeAudit(ctx, "b", e.now()) // b's export starts after a checkpoint
	require.NoError(t, err)

	m, err := sa.NewManager(e.store, sa.WithAuditLog(chainFails{Store: e.store, tenant: "b"}))
	require.NoError(t, err)
	var out bytes.Buffer
	n, err := m.ExportAudit(ctx, &out, sa.AuditFilter{Order: sa.AuditByChain})
	require.ErrorIs(t, err, errBoom)
	require.Zero(t, n)
	require.Zero(t, out.Len(), "the failed page was not written, not even in part")
}

// maxWriter records the largest single Write.
type maxWriter struct{ max, total int }

func (w *maxWriter) Write(b []byte) (int, error) {
	w.max = max(w.max, len(b))
	w.total += len(b)
	return len(b), nil
}

// ExportAudit streams: w never gets more than its 64 KiB buffer at once
// (a page of 1 000 events may hold megabytes of Before/After values).
func TestReview5ExportStreams(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("y", 2000)
	for i := range 300 {
		e.clock.Advance(time.Millisecond)
		require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventSupportRequest,
			TenantID: "a", Actor: support, Reason: fmt.Sprint(i, long)}))
	}
	var w maxWriter
	n, err := e.m.ExportAudit(ctx, &w, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Equal(t, 300, n)
	require.Greater(t, w.total, 600_000)
	require.LessOrEqual(t, w.max, 64<<10)
}

// cancelDuringRecord is a memstore that ends the caller's context while a
// notify.failed event is being recorded, then records it if its own
// context still allows.
type cancelDuringRecord struct {
	*memstore.Store
	cancel context.CancelFunc
}

func (s cancelDuringRecord) Record(ctx context.Context, e sa.Event) error {
	if e.Type == sa.EventNotifyFailed {
		s.cancel()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Store.Record(ctx, e)
}

// The caller's context ending in the middle of recording notify.failed
// does not lose it either.
func TestReview5NotifyFailedSurvivesCancelDuringRecord(t *testing.T) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := cancelDuringRecord{Store: memstore.New(), cancel: cancel}
	m, err := sa.NewManager(st, sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error { return errBoom })),
		sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	_, err = m.Grant(cctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Reason: "r"})
	require.NoError(t, err)
	evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventNotifyFailed}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
}
