package supportaccess_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 69: errNotReturned (3f58d5b), notOwn (eb47e48).

// review69NotReturned reports whether err is (or wraps) the sentinel the
// operations' deferred telemetry starts from.
func review69NotReturned(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), "did not return") {
			return true
		}
	}
	return err != nil && strings.Contains(err.Error(), "did not return")
}

type review69FailWriter struct{}

func (review69FailWriter) Write([]byte) (int, error) { return 0, errBoom }

// TestReview69NoOperationReturnsErrNotReturned calls every public Manager
// operation on its success path and its main error paths (invalid input,
// refusal, store failure, auditor failure, canceled context, no audit log,
// no request store), with a TracerProvider, a MeterProvider and check
// spans on (so the instrumented Check runs), and asserts that none
// returns the errNotReturned sentinel to a caller that saw no panic.
func TestReview69NoOperationReturnsErrNotReturned(t *testing.T) {
	var results []error
	note := func(err error) { results = append(results, err) }
	check := func(name string) {
		t.Helper()
		var ok, failed int
		for _, err := range results {
			if err == nil {
				ok++
			} else {
				failed++
			}
		}
		t.Logf("%s: %d calls succeeded, %d failed", name, ok, failed)
		for i, err := range results {
			require.False(t, review69NotReturned(err), "%s: call %d returned the errNotReturned sentinel: %v", name, i, err)
		}
		results = nil
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	run := func(name string, o *otel68, fs *faultyStore) {
		t.Run(name, func(t *testing.T) {
			m := o.m
			pctx, parent := o.tp.Tracer("test").Start(ctx, "request")
			defer parent.End()
			for _, c := range []context.Context{ctx, pctx, canceled} {
				// Grants.
				g, err := m.Grant(c, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Grantees: []string{support.ID}, TicketRef: "T-1"})
				note(err)
				_, err = m.Grant(c, sa.GrantInput{TenantID: "", By: customer, Duration: time.Hour})
				note(err)
				_, err = m.Grant(c, sa.GrantInput{TenantID: "acme", By: support, Duration: time.Hour})
				note(err)
				_, err = m.Grant(c, sa.GrantInput{TenantID: "acme", By: customer, Duration: 1000 * time.Hour})
				note(err)
				_, err = m.Grant(c, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: o.now().Add(time.Hour), Duration: time.Hour})
				note(err)
				id := g.ID
				if id == uuid.Nil {
					id = uuid.New()
				}
				for _, x := range []uuid.UUID{id, uuid.Nil, uuid.New()} {
					_, err = m.Get(c, x)
					note(err)
					_, err = m.Extend(c, x, o.now().Add(2*time.Hour), customer)
					note(err)
					_, err = m.Extend(c, x, o.now().Add(-time.Hour), customer)
					note(err)
					_, err = m.Extend(c, x, o.now().Add(2*time.Hour), support)
					note(err)
					_, err = m.AddGrantee(c, x, engineer.ID, customer)
					note(err)
					_, err = m.AddGrantee(c, x, support.ID, customer)
					note(err)
					_, err = m.AddGrantee(c, x, "", customer)
					note(err)
					_, err = m.AddGrantee(c, x, engineer.ID, support)
					note(err)
				}
				for _, s := range []sa.Scope{sa.ScopeRead, "nope:x", ""} {
					_, err = m.Check(c, "acme", support.ID, s)
					note(err)
					_, err = m.Check(c, "other", support.ID, s)
					note(err)
					_, err = m.Check(c, "", "", s)
					note(err)
					_, err = m.CheckUninstrumented(c, "acme", support.ID, s)
					note(err)
				}
				_, err = m.List(c, sa.ListFilter{TenantID: "acme"})
				note(err)
				_, err = m.List(c, sa.ListFilter{Limit: -1})
				note(err)
				_, err = m.List(c, sa.ListFilter{Statuses: []sa.Status{"bogus"}})
				note(err)

				// Requests.
				r, err := m.RequestAccess(c, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour, Reason: "ticket"})
				note(err)
				_, err = m.RequestAccess(c, sa.RequestInput{TenantID: "acme", By: customer, Duration: time.Hour})
				note(err)
				_, err = m.RequestAccess(c, sa.RequestInput{TenantID: "", By: support, Duration: time.Hour})
				note(err)
				_, err = m.RequestAccess(c, sa.RequestInput{TenantID: "acme", By: support, Duration: 1000 * time.Hour})
				note(err)
				r2, err := m.RequestAccess(c, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour})
				note(err)
				rid, rid2 := r.ID, r2.ID
				if rid == uuid.Nil {
					rid = uuid.New()
				}
				if rid2 == uuid.Nil {
					rid2 = uuid.New()
				}
				_, err = m.Approve(c, rid, support, sa.ApproveInput{})
				note(err)
				_, err = m.Approve(c, rid, customer, sa.ApproveInput{Duration: 100 * time.Hour})
				note(err)
				_, err = m.Approve(c, rid, customer, sa.ApproveInput{Duration: -1})
				note(err)
				_, err = m.Approve(c, rid, customer, sa.ApproveInput{Scopes: []sa.Scope{"nope:x"}})
				note(err)
				_, err = m.Approve(c, rid, customer, sa.ApproveInput{})
				note(err)
				_, err = m.Approve(c, rid, customer, sa.ApproveInput{}) // not pending any more
				note(err)
				_, err = m.Approve(c, uuid.Nil, customer, sa.ApproveInput{})
				note(err)
				_, err = m.Deny(c, rid2, support, "no")
				note(err)
				_, err = m.Deny(c, rid2, customer, "no")
				note(err)
				_, err = m.Deny(c, rid2, customer, "no") // not pending any more
				note(err)
				_, err = m.Deny(c, uuid.New(), customer, "no")
				note(err)
				_, err = m.GetRequest(c, rid)
				note(err)
				_, err = m.ListRequests(c, sa.RequestFilter{TenantID: "acme"})
				note(err)
				_, err = m.ListRequests(c, sa.RequestFilter{Limit: -1})
				note(err)

				// Revocations.
				_, err = m.Revoke(c, id, support, "")
				note(err)
				_, err = m.Revoke(c, id, customer, "done")
				note(err)
				_, err = m.Revoke(c, id, customer, "again")
				note(err)
				_, err = m.Revoke(c, uuid.Nil, customer, "")
				note(err)
				_, err = m.RevokeTenant(c, "acme", customer, "all")
				note(err)
				_, err = m.RevokeTenant(c, "", customer, "all")
				note(err)
				_, err = m.RevokeTenant(c, "acme", support, "mine")
				note(err)
				_, err = m.RevokeTicket(c, "acme", "T-1", customer, "closed")
				note(err)
				_, err = m.RevokeTicket(c, "acme", "", customer, "closed")
				note(err)

				// Expiry.
				_, err = m.Grant(c, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
				note(err)
				o.clock.Advance(2 * time.Hour)
				_, err = m.Sweep(c)
				note(err)
				_, err = m.Sweep(c)
				note(err)

				// Audit.
				_, err = m.Events(c, sa.AuditFilter{TenantID: "acme"})
				note(err)
				_, err = m.Events(c, sa.AuditFilter{Limit: -1})
				note(err)
				_, _, err = m.AuditPage(c, sa.AuditFilter{TenantID: "acme", Limit: 2}, "")
				note(err)
				_, _, err = m.AuditPage(c, sa.AuditFilter{}, "garbage")
				note(err)
				_, _, err = m.AuditPage(c, sa.AuditFilter{After: &sa.AuditCursor{}}, "x")
				note(err)
				_, err = m.ExportAudit(c, io.Discard, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
				note(err)
				_, err = m.ExportAudit(c, &bytes.Buffer{}, sa.AuditFilter{})
				note(err)
				_, err = m.ExportAudit(c, review69FailWriter{}, sa.AuditFilter{})
				note(err)
				_, err = m.ExportAudit(c, io.Discard, sa.AuditFilter{Limit: -1})
				note(err)
				_, err = m.VerifyAudit(c, "acme")
				note(err)
				_, err = m.VerifyAudit(c, "")
				note(err)
				_, err = m.VerifyAudit(c, "nobody")
				note(err)
				_, err = m.PurgeAudit(c, "acme", o.now().Add(-time.Minute))
				note(err)
				_, err = m.PurgeAudit(c, "acme", time.Time{})
				note(err)
				_, err = m.PurgeAudit(c, "", o.now())
				note(err)
				_, err = m.VerifyAudit(c, "acme")
				note(err)
			}
			check(name)
			// No span of a call that returned ends as "did not return".
			for _, s := range o.spans.Ended() {
				require.NotContains(t, s.Status().Description, "did not return", "span %s", s.Name())
			}
		})
	}

	o := newOtel68(t, memstore.New(), sa.WithCheckSpans(true))
	run("memstore", o, nil)

	fs := &faultyStore{Store: memstore.New()}
	fo := newOtel68(t, fs.Store, sa.WithCheckSpans(true))
	fm, err := sa.NewManager(fs, sa.WithNow(fo.clock.Now), sa.WithTracerProvider(fo.tp), sa.WithMeterProvider(fo.mp), sa.WithCheckSpans(true))
	require.NoError(t, err)
	fo.m = fm
	run("faulty-ok", fo, fs)
	fs.failFind, fs.failCreate, fs.failUpdate, fs.failGet = true, true, true, true
	run("faulty-failing", fo, fs)

	st := memstore.New()
	ao := newOtel68(t, st, sa.WithAuditor(sa.MultiAuditor(st, failingAuditor{})), sa.WithCheckSpans(true))
	run("failing-auditor", ao, nil)

	refusing := newOtel68(t, memstore.New(), sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error { return errBoom }))
	run("refusing-authorizer", refusing, nil)

	// No AuditLog, no RequestStore: a store that is neither.
	plain, err := sa.NewManager(review69PlainStore{memstore.New()}, sa.WithAuditor(&recordingAuditor{}), sa.WithNow(o.clock.Now), sa.WithTracerProvider(o.tp), sa.WithMeterProvider(o.mp))
	require.NoError(t, err)
	po := &otel68{otelEnv: &otelEnv{env: &env{t: t, store: memstore.New(), clock: o.clock, m: plain}, spans: o.spans, tp: o.tp, reader: o.reader}, mp: o.mp}
	t.Run("plain-store", func(t *testing.T) {
		_, err := plain.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		note(err)
		_, err = plain.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour})
		note(err)
		_, err = plain.Approve(ctx, uuid.New(), customer, sa.ApproveInput{})
		note(err)
		_, err = plain.Deny(ctx, uuid.New(), customer, "x")
		note(err)
		_, err = plain.ListRequests(ctx, sa.RequestFilter{})
		note(err)
		_, err = plain.Events(ctx, sa.AuditFilter{})
		note(err)
		_, _, err = plain.AuditPage(ctx, sa.AuditFilter{}, "")
		note(err)
		_, err = plain.ExportAudit(ctx, io.Discard, sa.AuditFilter{})
		note(err)
		_, err = plain.VerifyAudit(ctx, "acme")
		note(err)
		_, err = plain.PurgeAudit(ctx, "acme", po.now())
		note(err)
		_, err = plain.Sweep(ctx)
		note(err)
		check("plain-store")
	})
}

// review69PlainStore is a Store and nothing else: no AuditLog, no
// RequestStore, no HookStore.
type review69PlainStore struct{ s *memstore.Store }

func (p review69PlainStore) CreateGrant(ctx context.Context, g sa.Grant, evs []sa.Event) error {
	return p.s.CreateGrant(ctx, g, evs)
}
func (p review69PlainStore) GetGrant(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
	return p.s.GetGrant(ctx, id)
}
func (p review69PlainStore) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	return p.s.UpdateGrant(ctx, id, change)
}
func (p review69PlainStore) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	return p.s.ListGrants(ctx, f, now)
}
func (p review69PlainStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	return p.s.FindActiveGrant(ctx, tenantID, principal, scope, now)
}
func (p review69PlainStore) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	return p.s.ClaimTransitions(ctx, t, now, limit, events)
}

// TestReview69LegacyCopyWithEqualCheckpointHidesOwnPurge: eb47e48's
// notOwn takes an unmarked audit.purged event whose checkpoint is not
// past the one an earlier "own" purge event records for a copy. But the
// earlier one may itself be a legacy copy of A's purge (the very events
// notOwn exists for) that happens to record the same sequence number as
// B's own purge later does — with A's hash at that seq, not B's: B's chain
// diverged from A's at B's first own purge event, which A does not have.
// The walk then keeps A's copy as B's latest own purge, drops B's real one
// (its seq is not past the copy's), and reports B's untouched chain as
// tampered (BreakCheckpoint: the recorded hash is A's). Before eb47e48 the
// latest unmarked event not past B's start — B's own — vouched, and B
// verified.
func TestReview69LegacyCopyWithEqualCheckpointHidesOwnPurge(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	a, b := memstore.New(), memstore.New()
	ma, err := sa.NewManager(a, sa.WithNow(clock.Now), sa.WithAuditor(sa.MultiAuditor(a, review64LegacyMirror{b})))
	require.NoError(t, err)
	mb, err := sa.NewManager(b, sa.WithNow(clock.Now))
	require.NoError(t, err)

	grant := func() time.Time {
		at := ma.Now() // the time the grant's event is stamped with
		_, err := ma.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 24 * time.Hour})
		require.NoError(t, err)
		clock.Advance(time.Second)
		return at
	}
	var times []time.Time
	for range 6 {
		times = append(times, grant()) // A 1-6 = B 1-6
	}
	// B's retention: deletes B 1-2; B's own audit.purged at B 7 (A has no
	// such event: the chains differ from here on).
	res, err := mb.PurgeAudit(ctx, "acme", times[2])
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Checkpoint.Seq)
	clock.Advance(time.Second)
	grant()       // A 7, B 8
	t8 := grant() // A 8, B 9
	clock.Advance(time.Second)

	// A's retention (the old release): deletes A 1-8, checkpoint (8, A's
	// hash of its event 8); its unmarked copy lands in B at 10.
	res, err = ma.PurgeAudit(ctx, "acme", t8.Add(time.Millisecond))
	require.NoError(t, err)
	require.EqualValues(t, 8, res.Checkpoint.Seq)
	_, err = ma.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "A intact")
	rep, err := mb.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "B before its second purge; reported: %v", rep.Break)
	clock.Advance(time.Second)

	// B's retention: deletes B 3-8 (up to the event before t8), checkpoint
	// (8, B's hash of its event 8); B's own audit.purged at B 11.
	res, err = mb.PurgeAudit(ctx, "acme", t8)
	require.NoError(t, err)
	require.EqualValues(t, 8, res.Checkpoint.Seq)

	rep, err = mb.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "nobody touched B's chain; its own purge event (seq 11) records its checkpoint exactly; reported: %v", rep.Break)
}

// TestReview69PanicAfterFirstAssignmentIsOK: 3f58d5b sets each operation's
// named err to errNotReturned so that deferred telemetry sees a panic as a
// fault and counts nothing — but several operations assign err themselves
// long before they return (rs, err := m.decisionTarget(...) in Approve and
// Deny; rs, err := m.requestStore() in RequestAccess; cur, err :=
// m.store.GetGrant(...) in AddGrantee; gs, err := ListGrants in
// RevokeTenant; _, err = m.sweep(...) in Sweep), leaving err nil while
// host code still runs. A panic there (an extra auditor's, in the store's
// transaction) ends the span "ok" — and Approve adds 1 to
// supportaccess.grants.created for a grant that was never created, the
// very miscount the commit says it fixed for Grant and Approve.
func TestReview69PanicAfterFirstAssignmentIsOK(t *testing.T) {
	st := memstore.New()
	o := newOtel68(t, st, sa.WithAuditor(sa.MultiAuditor(st, review69PanicOn{sa.EventRequestApproved})))
	r, err := o.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour})
	require.NoError(t, err)
	require.PanicsWithValue(t, "auditor bug", func() { _, _ = o.m.Approve(ctx, r.ID, customer, sa.ApproveInput{}) })
	gs, err := st.ListGrants(ctx, sa.ListFilter{}, o.now())
	require.NoError(t, err)
	require.Empty(t, gs, "no grant was created")

	s := o.span("supportaccess.Approve")
	require.Zero(t, o.metrics()["supportaccess.grants.created"], "no grant was created, none may be counted")
	require.NotEqual(t, sa.OutcomeOK, attrs(s)[sa.AttrKeyOutcome], "a panicking Approve is not an ok outcome")
	require.Equal(t, codes.Error, s.Status().Code)
}

// TestReview69SweepPanicAfterExpirySweepIsOK: the same for Sweep: err is
// set by the expiry sweep (nil), then the request sweep runs host code (an
// extra auditor that panics on request.expired); the panicking Sweep's
// span ends "ok".
func TestReview69SweepPanicAfterExpirySweepIsOK(t *testing.T) {
	st := memstore.New()
	o := newOtel68(t, st, sa.WithAuditor(sa.MultiAuditor(st, review69PanicOn{sa.EventRequestExpired})))
	_, err := o.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour})
	require.NoError(t, err)
	o.clock.Advance(30 * 24 * time.Hour)
	require.PanicsWithValue(t, "auditor bug", func() { _, _ = o.m.Sweep(ctx) })
	var s sdktrace.ReadOnlySpan = o.span("supportaccess.Sweep")
	require.NotEqual(t, sa.OutcomeOK, attrs(s)[sa.AttrKeyOutcome], "a panicking Sweep is not an ok outcome")
	require.Equal(t, codes.Error, s.Status().Code)
}

// review69PanicOn is an extra auditor that panics on one event type.
type review69PanicOn struct{ typ sa.EventType }

func (p review69PanicOn) Record(_ context.Context, e sa.Event) error {
	if e.Type == p.typ {
		panic("auditor bug")
	}
	return nil
}
