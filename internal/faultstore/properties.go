package faultstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/storetest"
)

// HangTimeout is the context timeout of the calls the properties make hang.
const HangTimeout = 50 * time.Millisecond

// NewInner returns a fresh, empty store to wrap. It registers its own
// clean-up with t.Cleanup.
type NewInner func(t *testing.T) Inner

// RunProperties runs the fault-injection properties against stores newInner
// returns, each wrapped in a Store, with a Manager that audits to the store
// and to an extra Auditor (both injectable):
//
//   - CheckDeniesOnEveryFault: a Check whose store call fails, hangs or
//     loses its reply denies (an error, a zero Grant).
//   - NoGrantWithoutItsEvent: after any fault in the store or an auditor
//     during Grant, Revoke, Extend or Sweep, every stored grant equals the
//     After of its last audit event and no event describes a grant that
//     does not exist; every chain verifies.
//   - RevokeIsNeverUndone: once Revoke returned success, no fault in any
//     later call (of any operation, any mode) makes the grant usable again.
//   - FailedRevokeRetried: after a Revoke that returned an error, a retry
//     either succeeds or reports the grant already revoked (the lost-reply
//     case: the first call did commit); either way the grant ends revoked
//     with exactly one grant.revoked event.
//   - DeadlinesHonoured: every Manager call whose store or auditor call
//     hangs returns an error wrapping context.DeadlineExceeded within
//     MaxOvershoot of its context's deadline.
func RunProperties(t *testing.T, newInner NewInner) {
	t.Helper()
	for _, p := range []struct {
		name string
		fn   func(t *testing.T, newInner NewInner)
	}{
		{"CheckDeniesOnEveryFault", testCheckDenies},
		{"NoGrantWithoutItsEvent", testNoGrantWithoutEvent},
		{"RevokeIsNeverUndone", testRevokeNeverUndone},
		{"FailedRevokeRetried", testFailedRevokeRetried},
		{"DeadlinesHonoured", testDeadlines},
	} {
		t.Run(p.name, func(t *testing.T) { p.fn(t, newInner) })
	}
}

// Harness is a Manager on a fault-injectable store and extra auditor, with
// a manual clock. RunProperties uses it; tests of other packages may too.
type Harness struct {
	T       *testing.T
	Store   *Store
	Auditor *Auditor
	Clock   *storetest.Clock
	M       *sa.Manager
}

// NewHarness wraps inner and builds the Manager (opts are added last).
func NewHarness(t *testing.T, inner Inner, opts ...sa.Option) *Harness {
	t.Helper()
	h := &Harness{T: t, Store: New(inner), Auditor: NewAuditor(nil), Clock: storetest.NewClock(storetest.Epoch)}
	m, err := sa.NewManager(h.Store, append([]sa.Option{
		sa.WithNow(h.Clock.Now),
		sa.WithAuditor(sa.MultiAuditor(h.Store, h.Auditor)),
		sa.WithErrorHandler(func(context.Context, error) {}), // failures are the point here
	}, opts...)...)
	require.NoError(t, err)
	h.M = m
	return h
}

// Clear removes every fault of the store and the auditor.
func (h *Harness) Clear() {
	h.Store.Clear()
	h.Auditor.Clear()
}

// Grant creates a grant of tenant (read and write, one hour) without faults.
func (h *Harness) Grant(tenant string) sa.Grant {
	h.T.Helper()
	g, err := h.M.Grant(context.Background(), grantInput(tenant))
	require.NoError(h.T, err)
	return g
}

func grantInput(tenant string) sa.GrantInput {
	return sa.GrantInput{TenantID: tenant, By: storetest.Customer, Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}}
}

// inner reads the wrapped store, bypassing faults.
func (h *Harness) inner() Inner { return h.Store.Inner() }

// Stored returns the grant as stored (no faults).
func (h *Harness) Stored(id uuid.UUID) sa.Grant {
	h.T.Helper()
	g, err := h.inner().GetGrant(context.Background(), id)
	require.NoError(h.T, err)
	return g
}

// Consistent asserts the audit invariant of the stored data (see
// AssertConsistent).
func (h *Harness) Consistent() {
	h.T.Helper()
	AssertConsistent(h.T, h.inner(), h.Clock.Now())
}

// AssertConsistent asserts the audit invariant of the data in store, read
// without faults: every grant equals the After of its last
// grant.created/extended/revoked/delegated event, every such event's grant
// exists, and every tenant's hash chain is intact (Seq 1, 2, … and each
// Hash the ChainHash of the previous one; the store must not have purged).
func AssertConsistent(t testing.TB, store Inner, now time.Time) {
	t.Helper()
	ctx := context.Background()
	gs, err := store.ListGrants(ctx, sa.ListFilter{}, now)
	require.NoError(t, err)
	evs, err := store.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	last := map[uuid.UUID]sa.Event{}
	heads := map[string]sa.ChainLink{}
	for _, e := range evs {
		h := heads[e.TenantID]
		require.Equal(t, h.Seq+1, e.Seq, "chain of %q: event %s out of sequence", e.TenantID, e.ID)
		require.Equal(t, e.ChainHash(h.Hash), e.Hash, "chain of %q broken at seq %d", e.TenantID, e.Seq)
		heads[e.TenantID] = sa.ChainLink{Seq: e.Seq, Hash: e.Hash}
		switch e.Type {
		case sa.EventGrantCreated, sa.EventGrantExtended, sa.EventGrantRevoked, sa.EventGrantDelegated:
			last[e.GrantID] = e
		}
	}
	for _, g := range gs {
		e, ok := last[g.ID]
		require.True(t, ok, "grant %s exists without its audit event", g.ID)
		b, err := json.Marshal(g)
		require.NoError(t, err)
		require.JSONEq(t, string(b), string(e.After), "grant %s differs from the After of its last event %s", g.ID, e.Type)
		delete(last, g.ID)
	}
	for id, e := range last {
		t.Errorf("event %s (%s) describes grant %s, which does not exist", e.ID, e.Type, id)
	}
}

// count returns the stored events of grant id of type typ.
func (h *Harness) count(id uuid.UUID, typ sa.EventType) int {
	h.T.Helper()
	evs, err := h.inner().Events(context.Background(), sa.AuditFilter{GrantID: id, Types: []sa.EventType{typ}})
	require.NoError(h.T, err)
	return len(evs)
}

// call runs fn under a HangTimeout context, asserting the deadline
// promise.
func (h *Harness) call(name string, fn func(ctx context.Context) error) error {
	h.T.Helper()
	return WithinDeadline(h.T, name, HangTimeout, nil, fn)
}

// target is where a fault is injected: a store operation or the extra
// auditor.
type target struct {
	op      Op   // store operation, or "" for the auditor
	auditor bool // the extra auditor's Record
}

func (tg target) String() string {
	if tg.auditor {
		return "auditor"
	}
	return string(tg.op)
}

func (h *Harness) inject(tg target, mode Mode) {
	if tg.auditor {
		h.Auditor.Set(mode)
	} else {
		h.Store.Set(tg.op, mode)
	}
}

func testCheckDenies(t *testing.T, ni NewInner) {
	h := NewHarness(t, ni(t))
	h.Grant("acme")
	for _, mode := range Modes {
		h.Store.Set(FindActiveGrant, mode)
		var got sa.Grant
		err := h.call("Check/"+mode.String(), func(ctx context.Context) error {
			var err error
			got, err = h.M.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
			return err
		})
		require.Error(t, err, "%s: a store fault denies", mode)
		require.Zero(t, got, "%s: no grant with a denial", mode)
		if mode.Hangs() {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		} else {
			require.ErrorIs(t, err, ErrInjected)
		}
		require.False(t, errors.Is(err, sa.ErrNoActiveGrant) || errors.Is(err, sa.ErrScopeNotGranted),
			"%s: an outage is not reported as a missing grant", mode)
		h.Clear()
	}
	_, err := h.M.Check(context.Background(), "acme", storetest.Support.ID, sa.ScopeRead)
	require.NoError(t, err, "allows again once the store answers")
}

func testNoGrantWithoutEvent(t *testing.T, ni NewInner) {
	h := NewHarness(t, ni(t))
	ctx := context.Background()
	n := 0
	tenant := func() string { n++; return fmt.Sprintf("t%d", n) }
	for _, mode := range Modes {
		// Grant: the store's create or the extra auditor fails.
		for _, tg := range []target{{op: CreateGrant}, {auditor: true}} {
			name := fmt.Sprintf("Grant/%s/%s", tg, mode)
			tn := tenant()
			h.inject(tg, mode)
			err := h.call(name, func(ctx context.Context) error { _, err := h.M.Grant(ctx, grantInput(tn)); return err })
			h.Clear()
			require.Error(t, err, name)
			gs, lerr := h.inner().ListGrants(ctx, sa.ListFilter{TenantID: tn}, h.Clock.Now())
			require.NoError(t, lerr)
			if !tg.auditor && mode.Reaches() {
				require.Len(t, gs, 1, "%s: the write committed before the reply was lost", name)
			} else {
				require.Empty(t, gs, "%s: a grant whose audit failed is not created", name)
			}
			h.Consistent()
		}
		// Revoke and Extend: the update or the extra auditor fails.
		for _, tg := range []target{{op: UpdateGrant}, {auditor: true}} {
			for _, op := range []string{"Revoke", "Extend"} {
				name := fmt.Sprintf("%s/%s/%s", op, tg, mode)
				g := h.Grant(tenant())
				h.inject(tg, mode)
				err := h.call(name, func(ctx context.Context) error {
					var err error
					if op == "Revoke" {
						_, err = h.M.Revoke(ctx, g.ID, storetest.Customer, "fault")
					} else {
						_, err = h.M.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Minute), storetest.Customer)
					}
					return err
				})
				h.Clear()
				require.Error(t, err, name)
				if tg.auditor || !mode.Reaches() {
					require.Equal(t, g, h.Stored(g.ID), "%s: the grant is unchanged", name)
				}
				h.Consistent()
			}
		}
		// Sweep: the claim or the extra auditor fails. A failed claim
		// records nothing; the store keeps the trail, so an extra
		// auditor's failure does not stop it recording the expiry.
		for _, tg := range []target{{op: ClaimTransitions}, {auditor: true}} {
			name := fmt.Sprintf("Sweep/%s/%s", tg, mode)
			h.Grant(tenant())
			h.Clock.Advance(2 * time.Hour)
			h.inject(tg, mode)
			_ = h.call(name, func(ctx context.Context) error { _, err := h.M.Sweep(ctx); return err })
			h.Clear()
			h.Consistent()
			_, err := h.M.Sweep(ctx)
			require.NoError(t, err, "%s: the next sweep works", name)
			h.Consistent()
		}
	}
}

func testRevokeNeverUndone(t *testing.T, ni NewInner) {
	h := NewHarness(t, ni(t))
	ctx := context.Background()
	g := h.Grant("revoked")
	r, err := h.M.Revoke(ctx, g.ID, storetest.Customer, "done")
	require.NoError(t, err)
	assertRevoked := func(why string) {
		t.Helper()
		got := h.Stored(g.ID)
		require.Equal(t, r, got, "%s: the revoked grant is unchanged", why)
		_, err := h.M.Check(ctx, "revoked", storetest.Support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "%s: access stays denied", why)
	}
	targets := []target{{auditor: true}}
	for _, op := range Ops {
		targets = append(targets, target{op: op})
	}
	for _, tg := range targets {
		for _, mode := range Modes {
			name := fmt.Sprintf("%s/%s", tg, mode)
			h.inject(tg, mode)
			calls := []func(ctx context.Context) error{
				func(ctx context.Context) error {
					_, err := h.M.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), storetest.Customer)
					return err
				},
				func(ctx context.Context) error {
					_, err := h.M.Revoke(ctx, g.ID, storetest.Customer, "again")
					return err
				},
				func(ctx context.Context) error { _, err := h.M.Sweep(ctx); return err },
				func(ctx context.Context) error {
					_, err := h.M.RevokeTenant(ctx, "revoked", storetest.Customer, "again")
					return err
				},
				func(ctx context.Context) error {
					_, err := h.M.Check(ctx, "revoked", storetest.Support.ID, sa.ScopeRead)
					require.Error(t, err, "%s: Check of a revoked grant denies", name)
					return err
				},
			}
			for i, c := range calls {
				_ = h.call(fmt.Sprintf("%s/call%d", name, i), c)
			}
			h.Clear()
			assertRevoked(name)
		}
	}
	h.Clock.Advance(2 * time.Hour)
	_, err = h.M.Sweep(ctx)
	require.NoError(t, err)
	assertRevoked("after expiry")
	require.Equal(t, 1, h.count(g.ID, sa.EventGrantRevoked))
	require.Zero(t, h.count(g.ID, sa.EventGrantExpired), "a revoked grant does not expire")
	h.Consistent()
}

func testFailedRevokeRetried(t *testing.T, ni NewInner) {
	h := NewHarness(t, ni(t))
	ctx := context.Background()
	n := 0
	for _, tg := range []target{{op: GetGrant}, {op: UpdateGrant}, {auditor: true}} {
		for _, mode := range Modes {
			n++
			name := fmt.Sprintf("%s/%s", tg, mode)
			tenant := fmt.Sprintf("r%d", n)
			g := h.Grant(tenant)
			h.inject(tg, mode)
			err := h.call(name, func(ctx context.Context) error {
				_, err := h.M.Revoke(ctx, g.ID, storetest.Customer, "first")
				return err
			})
			h.Clear()
			require.Error(t, err, name)
			committed := tg.op == UpdateGrant && mode.Reaches()
			_, cerr := h.M.Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead)
			if committed {
				require.ErrorIs(t, cerr, sa.ErrNoActiveGrant, "%s: the revoke committed before its reply was lost", name)
			} else {
				require.NoError(t, cerr, "%s: the failed revoke changed nothing", name)
			}
			_, err = h.M.Revoke(ctx, g.ID, storetest.Customer, "retry")
			if committed {
				require.ErrorIs(t, err, sa.ErrInvalidInput, "%s: the retry reports the grant already revoked", name)
			} else {
				require.NoError(t, err, "%s: the retry succeeds", name)
			}
			require.Equal(t, sa.StatusRevoked, h.Stored(g.ID).Status(h.Clock.Now()), name)
			_, cerr = h.M.Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead)
			require.ErrorIs(t, cerr, sa.ErrNoActiveGrant, name)
			require.Equal(t, 1, h.count(g.ID, sa.EventGrantRevoked), "%s: one grant.revoked event", name)
		}
	}
	h.Consistent()
}

func testDeadlines(t *testing.T, ni NewInner) {
	h := NewHarness(t, ni(t))
	ctx := context.Background()
	g := h.Grant("acme")
	var buf discard
	cases := []struct {
		tg    target
		modes []Mode
		name  string
		call  func(ctx context.Context) error
	}{
		{target{op: FindActiveGrant}, []Mode{Hang, LostReplyHang}, "Check", func(ctx context.Context) error {
			_, err := h.M.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
			return err
		}},
		{target{op: CreateGrant}, []Mode{Hang, LostReplyHang}, "Grant", func(ctx context.Context) error {
			_, err := h.M.Grant(ctx, grantInput("deadline"))
			return err
		}},
		{target{auditor: true}, []Mode{Hang, LostReplyHang}, "Grant", func(ctx context.Context) error {
			_, err := h.M.Grant(ctx, grantInput("deadline"))
			return err
		}},
		{target{op: GetGrant}, []Mode{Hang}, "Revoke", func(ctx context.Context) error {
			_, err := h.M.Revoke(ctx, g.ID, storetest.Customer, "")
			return err
		}},
		{target{op: UpdateGrant}, []Mode{Hang}, "Revoke", func(ctx context.Context) error {
			_, err := h.M.Revoke(ctx, g.ID, storetest.Customer, "")
			return err
		}},
		{target{auditor: true}, []Mode{Hang}, "Revoke", func(ctx context.Context) error {
			_, err := h.M.Revoke(ctx, g.ID, storetest.Customer, "")
			return err
		}},
		{target{op: UpdateGrant}, []Mode{Hang}, "Extend", func(ctx context.Context) error {
			_, err := h.M.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Minute), storetest.Customer)
			return err
		}},
		{target{auditor: true}, []Mode{Hang}, "Extend", func(ctx context.Context) error {
			_, err := h.M.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Minute), storetest.Customer)
			return err
		}},
		{target{op: GetGrant}, []Mode{Hang}, "Get", func(ctx context.Context) error { _, err := h.M.Get(ctx, g.ID); return err }},
		{target{op: ListGrants}, []Mode{Hang}, "List", func(ctx context.Context) error {
			_, err := h.M.List(ctx, sa.ListFilter{TenantID: "acme"})
			return err
		}},
		{target{op: ListGrants}, []Mode{Hang}, "RevokeTenant", func(ctx context.Context) error {
			_, err := h.M.RevokeTenant(ctx, "acme", storetest.Customer, "")
			return err
		}},
		{target{op: ClaimTransitions}, []Mode{Hang}, "Sweep", func(ctx context.Context) error { _, err := h.M.Sweep(ctx); return err }},
		{target{op: Events}, []Mode{Hang}, "Events", func(ctx context.Context) error {
			_, err := h.M.Events(ctx, sa.AuditFilter{TenantID: "acme"})
			return err
		}},
		{target{op: Events}, []Mode{Hang}, "ExportAudit", func(ctx context.Context) error {
			_, err := h.M.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
			return err
		}},
		{target{op: AuditChain}, []Mode{Hang}, "VerifyAudit", func(ctx context.Context) error {
			_, err := h.M.VerifyAudit(ctx, "acme")
			return err
		}},
		{target{op: Events}, []Mode{Hang}, "VerifyAudit", func(ctx context.Context) error {
			_, err := h.M.VerifyAudit(ctx, "acme")
			return err
		}},
	}
	for _, c := range cases {
		for _, mode := range c.modes {
			name := fmt.Sprintf("%s/%s/%s", c.name, c.tg, mode)
			err := WithinDeadline(t, name, HangTimeout, func() { h.inject(c.tg, mode) }, c.call)
			h.Clear()
			require.ErrorIs(t, err, context.DeadlineExceeded, name)
		}
	}
	require.Equal(t, g, h.Stored(g.ID), "no hanging call changed the grant")
	_, err := h.M.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
	require.NoError(t, err)
	h.Consistent()
}

// discard is an io.Writer that drops what it gets.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
