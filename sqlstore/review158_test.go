package sqlstore_test

// Review 158: access requests and delegation across replicas on SQL.
//
// Several app replicas (each a Manager on its own sqlstore.Store over its
// own *sql.DB; SQLite: several handles on one file) share one database and
// table prefix. The attacks aim at requests.go (RequestAccess, Approve,
// Deny), delegate.go (AddGrantee), notify.go, the request part of the
// sweep, and sqlstore/requests.go (changeRequest, ClaimExpiredRequests):
//
//   - concurrent decisions of one request on several replicas (exactly
//     one wins, one grant, one notification, one story in the trail);
//   - Approve racing the request's expiry in other replicas' Sweeps, also
//     with skewed clocks;
//   - Approve narrower or wider than asked, and under another replica's
//     (changed) policy;
//   - Approve after the tenant's RevokeTenant on another replica;
//   - AddGrantee on one replica while another revokes the grant, and two
//     replicas delegating at the MaxGrantees cap;
//   - a request from, or a decision by, an actor the host's Authorizer
//     keeps out of the tenant;
//   - requests surviving a restart (new pools, new Managers), their
//     expiries recorded exactly once.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// r158Notes records the notifications of one replica.
type r158Notes struct {
	mu sync.Mutex
	ns []sa.Notification
}

func (n *r158Notes) Notify(_ context.Context, x sa.Notification) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ns = append(n.ns, x)
	return nil
}

// of returns the notifications of type typ (all when typ is "").
func (n *r158Notes) of(typ sa.EventType) []sa.Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []sa.Notification
	for _, x := range n.ns {
		if typ == "" || x.Type == typ {
			out = append(out, x)
		}
	}
	return out
}

// r158Replica is one app replica: its store (own pool), Manager, clock and
// Notifier.
type r158Replica struct {
	s     *sqlstore.Store
	db    *sql.DB
	m     *sa.Manager
	clock *storetest.Clock
	notes *r158Notes
}

// r158Cluster is one database shared by replicas under one table prefix.
type r158Cluster struct {
	d    sqlstore.Dialect
	base *sqlstore.Store // migrated; its tables are dropped when the test ends
	open func(t testing.TB) *sql.DB
}

func r158NewCluster(t *testing.T, d sqlstore.Dialect) *r158Cluster {
	t.Helper()
	c := &r158Cluster{d: d}
	c.open = func(t testing.TB) *sql.DB { return sqltest.Open(t, d) }
	if d == sqlstore.SQLite {
		path := filepath.Join(t.TempDir(), "r158.db")
		c.open = func(t testing.TB) *sql.DB { return sqltest.OpenSQLite(t, path) }
	}
	c.base = sqltest.NewStoreOn(t, c.open(t), d)
	return c
}

// replica starts a replica on a pool of its own, on the given clock
// (nil: a new one at storetest.Epoch) and with its own Notifier.
func (c *r158Cluster) replica(t *testing.T, clock *storetest.Clock, opts ...sa.Option) *r158Replica {
	t.Helper()
	db := c.open(t)
	s, err := sqlstore.New(db, c.d, sqlstore.WithTablePrefix(c.base.TablePrefix()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	if clock == nil {
		clock = storetest.NewClock(storetest.Epoch)
	}
	r := &r158Replica{s: s, db: db, clock: clock, notes: &r158Notes{}}
	r.m, err = sa.NewManager(s, append([]sa.Option{sa.WithNow(clock.Now), sa.WithNotifier(r.notes)}, opts...)...)
	require.NoError(t, err)
	return r
}

// replicas starts n replicas on one shared clock.
func (c *r158Cluster) replicas(t *testing.T, n int, opts ...sa.Option) ([]*r158Replica, *storetest.Clock) {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	out := make([]*r158Replica, n)
	for i := range out {
		out[i] = c.replica(t, clock, opts...)
	}
	return out, clock
}

// r158ForEachDialect runs f on SQLite, PostgreSQL and MariaDB.
func r158ForEachDialect(t *testing.T, f func(t *testing.T, c *r158Cluster)) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) { f(t, r158NewCluster(t, d)) })
	}
}

// events returns tenant's events in chain order, only those of the given
// types when any are given.
func (c *r158Cluster) events(t *testing.T, tenant string, types ...sa.EventType) []sa.Event {
	t.Helper()
	evs, err := c.base.Events(context.Background(), sa.AuditFilter{TenantID: tenant, Types: types, Order: sa.AuditByChain, Limit: sa.MaxListLimit})
	require.NoError(t, err)
	return evs
}

// ofRequest keeps the events that name request id.
func r158OfRequest(evs []sa.Event, id uuid.UUID) []sa.Event {
	var out []sa.Event
	for _, e := range evs {
		if e.Attrs[sa.AttrRequestID] == id.String() {
			out = append(out, e)
		}
	}
	return out
}

func r158OfGrant(evs []sa.Event, id uuid.UUID) []sa.Event {
	var out []sa.Event
	for _, e := range evs {
		if e.GrantID == id {
			out = append(out, e)
		}
	}
	return out
}

func r158Types(evs []sa.Event) []sa.EventType {
	out := make([]sa.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// r158Verify checks every chain of the database (seq, hash, head) and the
// Manager's VerifyAudit of tenant.
func (c *r158Cluster) verify(t *testing.T, m *sa.Manager, tenants ...string) {
	t.Helper()
	reviewVerifyChains(t, c.base)
	for _, tenant := range tenants {
		rep, err := m.VerifyAudit(context.Background(), tenant)
		require.NoError(t, err)
		require.True(t, rep.OK(), "chain of %s: %+v", tenant, rep.Break)
	}
}

// r158State is what a refused call must leave unchanged: the request, the
// tenant's grants, and the tenant's trail apart from action.refused.
type r158State struct {
	req    sa.AccessRequest
	grants []sa.Grant
	events []sa.Event
}

func (c *r158Cluster) state(t *testing.T, tenant string, id uuid.UUID) r158State {
	t.Helper()
	ctx := context.Background()
	var st r158State
	if id != uuid.Nil {
		var err error
		st.req, err = c.base.GetRequest(ctx, id)
		require.NoError(t, err)
	}
	gs, err := c.base.ListGrants(ctx, sa.ListFilter{TenantID: tenant}, storetest.Epoch)
	require.NoError(t, err)
	st.grants = gs
	for _, e := range c.events(t, tenant) {
		if e.Type != sa.EventActionRefused {
			st.events = append(st.events, e)
		}
	}
	return st
}

// refusals returns tenant's action.refused events for action.
func (c *r158Cluster) refusals(t *testing.T, tenant string, action sa.Action) []sa.Event {
	t.Helper()
	var out []sa.Event
	for _, e := range c.events(t, tenant, sa.EventActionRefused) {
		if e.Attrs[sa.AttrAction] == string(action) {
			out = append(out, e)
		}
	}
	return out
}

// r158Go runs fs at once (released together) and returns their errors in
// order.
func r158Go(fs ...func() error) []error {
	errs := make([]error, len(fs))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, f := range fs {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = f()
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// TestReview158DecisionRaceAcrossReplicas attacks RequestAccess/Approve
// (requests.go): "of concurrent decisions exactly one succeeds, and the
// others fail with ErrInvalidInput, or with ErrConflict when the database
// aborted one as a deadlock", and RequestStore.ApproveRequest: "Of
// concurrent calls for one request the second sees the first's result".
// Three replicas decide one request at once: two approve (one narrowing),
// one denies. Exactly one decision, at most one grant (exactly one iff
// approved), one decision event, one notification, and the chains verify.
func TestReview158DecisionRaceAcrossReplicas(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, clock := c.replicas(t, 3)
		const rounds = 8
		conflicts := 0
		for round := range rounds {
			clock.Advance(time.Minute)
			req, err := reps[round%3].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support,
				Scopes: []sa.Scope{sa.ScopeWrite}, Reason: "case", TicketRef: fmt.Sprintf("T-%d", round)})
			require.NoError(t, err)
			var grants [2]sa.Grant
			errs := r158Go(
				func() (err error) {
					grants[0], err = reps[0].m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{Reason: "ok"})
					return err
				},
				func() (err error) {
					grants[1], err = reps[1].m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeRead}})
					return err
				},
				func() error {
					_, err := reps[2].m.Deny(ctx, req.ID, storetest.Customer, "no")
					return err
				},
			)
			winner := -1
			for i, err := range errs {
				if err == nil {
					require.Equal(t, -1, winner, "round %d: two decisions succeeded: %v", round, errs)
					winner = i
					continue
				}
				if errors.Is(err, sa.ErrConflict) {
					conflicts++
					continue
				}
				require.ErrorIs(t, err, sa.ErrInvalidInput, "round %d, replica %d", round, i)
			}
			stored, err := c.base.GetRequest(ctx, req.ID)
			require.NoError(t, err)
			var fromReq []sa.Grant
			all, err := c.base.ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, clock.Now())
			require.NoError(t, err)
			for _, g := range all {
				if g.RequestID == req.ID {
					fromReq = append(fromReq, g)
				}
			}
			evs := r158OfRequest(c.events(t, "acme"), req.ID)
			decisions := 0
			for _, rep := range reps {
				for _, n := range rep.notes.of("") {
					if n.RequestID == req.ID && (n.Type == sa.EventRequestApproved || n.Type == sa.EventRequestDenied) {
						decisions++
					}
				}
				require.Empty(t, rep.notes.of(sa.EventNotifyFailed))
			}
			if winner == -1 {
				// Every decision was aborted (deadlocks only): nothing changed.
				require.Equal(t, sa.RequestPending, stored.Status, "round %d: %v", round, errs)
				require.Empty(t, fromReq)
				require.Equal(t, []sa.EventType{sa.EventRequestCreated}, r158Types(evs))
				require.Zero(t, decisions)
				continue
			}
			require.Equal(t, 1, decisions, "round %d: one notification of the decision", round)
			switch winner {
			case 0, 1:
				g := grants[winner]
				require.Equal(t, sa.RequestApproved, stored.Status)
				require.Equal(t, g.ID, stored.GrantID)
				require.Len(t, fromReq, 1, "round %d: exactly one grant", round)
				require.Equal(t, g.ID, fromReq[0].ID)
				require.Equal(t, []sa.EventType{sa.EventRequestCreated, sa.EventRequestApproved, sa.EventGrantCreated}, r158Types(evs), "round %d", round)
				require.Equal(t, g.ID, evs[1].GrantID)
				require.Equal(t, g.ID, evs[2].GrantID)
				if winner == 1 {
					require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes)
					require.Equal(t, g.StartsAt.Add(time.Hour), g.ExpiresAt)
				} else {
					require.Equal(t, []sa.Scope{sa.ScopeWrite}, g.Scopes)
				}
				n := reps[winner].notes.of(sa.EventRequestApproved)
				require.Equal(t, g.ID, n[len(n)-1].GrantID)
				require.Equal(t, g.ExpiresAt, n[len(n)-1].ExpiresAt)
			case 2:
				require.Equal(t, sa.RequestDenied, stored.Status)
				require.Equal(t, uuid.Nil, stored.GrantID)
				require.Empty(t, fromReq, "round %d: a denied request has no grant", round)
				require.Equal(t, []sa.EventType{sa.EventRequestCreated, sa.EventRequestDenied}, r158Types(evs), "round %d", round)
			}
			// A late decision on any replica is refused and changes nothing.
			before := c.state(t, "acme", req.ID)
			_, err = reps[(winner+1)%3].m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{})
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			_, err = reps[(winner+2)%3].m.Deny(ctx, req.ID, storetest.Customer, "late")
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Equal(t, before, c.state(t, "acme", req.ID))
		}
		t.Logf("%v: %d decisions aborted as deadlocks in %d rounds", c.d, conflicts, rounds)
		c.verify(t, reps[0].m, "acme")
	})
}

// TestReview158ApproveRacesSweepExpiry attacks Approve's "The clock is read
// with the request locked" and ClaimExpiredRequests' "Concurrent callers
// never claim the same request": replica A approves a request 1 µs before
// it expires by A's clock while replicas B and C, whose clocks are at its
// ExpiresAt, sweep. The request ends approved (with its grant and no
// request.expired) or expired (recorded once, no grant), never both.
func TestReview158ApproveRacesSweepExpiry(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		a := c.replica(t, nil)
		b := c.replica(t, nil)
		cc := c.replica(t, nil)
		setAll := func(at time.Time) {
			for _, r := range []*r158Replica{a, b, cc} {
				r.clock.Set(at)
			}
		}
		const rounds = 8
		approved, expired := 0, 0
		for round := range rounds {
			setAll(storetest.Epoch.Add(time.Duration(round) * 100 * time.Hour))
			req, err := a.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: fmt.Sprint("round ", round)})
			require.NoError(t, err)
			a.clock.Set(req.ExpiresAt.Add(-time.Microsecond))
			b.clock.Set(req.ExpiresAt)
			cc.clock.Set(req.ExpiresAt)
			var g sa.Grant
			errs := r158Go(
				func() (err error) {
					g, err = a.m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{})
					return err
				},
				func() error { _, err := b.m.Sweep(ctx); return err },
				func() error { _, err := cc.m.Sweep(ctx); return err },
			)
			require.NoError(t, errs[1], "sweep B")
			require.NoError(t, errs[2], "sweep C")
			stored, err := c.base.GetRequest(ctx, req.ID)
			require.NoError(t, err)
			evs := r158OfRequest(c.events(t, "acme"), req.ID)
			if errs[0] == nil {
				approved++
				require.Equal(t, sa.RequestApproved, stored.Status)
				require.Equal(t, g.ID, stored.GrantID)
				require.Equal(t, []sa.EventType{sa.EventRequestCreated, sa.EventRequestApproved, sa.EventGrantCreated}, r158Types(evs), "round %d", round)
				// The grant is active on the sweepers' clocks too.
				_, err := b.m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
				require.NoError(t, err)
				// Clean up for the next round.
				_, err = a.m.Revoke(ctx, g.ID, storetest.Customer, "next round")
				require.NoError(t, err)
			} else {
				expired++
				require.ErrorIs(t, errs[0], sa.ErrInvalidInput, "round %d", round)
				require.Equal(t, sa.RequestExpired, stored.Status)
				require.Equal(t, uuid.Nil, stored.GrantID)
				require.Equal(t, []sa.EventType{sa.EventRequestCreated, sa.EventRequestExpired}, r158Types(evs), "round %d", round)
				require.Equal(t, sa.SystemActor, evs[1].Actor)
				gs, err := c.base.ListGrants(ctx, sa.ListFilter{TenantID: "acme", Statuses: []sa.Status{sa.StatusActive, sa.StatusScheduled}}, req.ExpiresAt)
				require.NoError(t, err)
				require.Empty(t, gs, "round %d: an expired request made no grant", round)
			}
			for _, r := range []*r158Replica{a, b, cc} {
				for _, n := range r.notes.of("") {
					require.NotEqual(t, sa.EventRequestExpired, n.Type, "expiry of a request is not notified")
				}
			}
		}
		t.Logf("%v: %d approved, %d expired", c.d, approved, expired)
		c.verify(t, a.m, "acme")
	})
}

// TestReview158SkewedReplicasAgreeOnExpiry: with clocks apart, a replica
// whose clock says a request is still pending must not approve or deny it
// once another replica's Sweep recorded its expiry ("a request that is not
// pending (approved, denied, or past its ExpiresAt)"), and a Sweep on a
// replica whose clock is past ExpiresAt must not expire a request another
// replica approved in time. Refusals leave the stored data untouched.
func TestReview158SkewedReplicasAgreeOnExpiry(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		slow := c.replica(t, nil)
		fast := c.replica(t, nil)
		r1, err := slow.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: "one"})
		require.NoError(t, err)
		r2, err := slow.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Engineer, Reason: "two"})
		require.NoError(t, err)
		// The fast replica sweeps at r1's expiry: both are expired there.
		fast.clock.Set(r1.ExpiresAt)
		slow.clock.Set(r1.ExpiresAt.Add(-time.Hour))
		_, err = fast.m.Sweep(ctx)
		require.NoError(t, err)
		before := c.state(t, "acme", r1.ID)
		_, err = slow.m.Approve(ctx, r1.ID, storetest.Customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "the stored expiry wins over the slow clock")
		_, err = slow.m.Deny(ctx, r1.ID, storetest.Customer, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Equal(t, before, c.state(t, "acme", r1.ID))
		got, err := slow.m.GetRequest(ctx, r1.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestExpired, got.Status)
		pending, err := slow.m.ListRequests(ctx, sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestPending}})
		require.NoError(t, err)
		require.Empty(t, pending, "the slow replica lists no expired request as pending")
		require.Len(t, r158OfRequest(c.events(t, "acme", sa.EventRequestExpired), r2.ID), 1)

		// The other way round: approved in time on the slow replica, then
		// the fast one sweeps past ExpiresAt: the approval stands.
		slow.clock.Set(r1.ExpiresAt.Add(time.Hour))
		fast.clock.Set(r1.ExpiresAt.Add(time.Hour))
		r3, err := slow.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: "three"})
		require.NoError(t, err)
		slow.clock.Set(r3.ExpiresAt.Add(-time.Microsecond))
		fast.clock.Set(r3.ExpiresAt.Add(time.Hour))
		g, err := slow.m.Approve(ctx, r3.ID, storetest.Customer, sa.ApproveInput{})
		require.NoError(t, err)
		_, err = fast.m.Sweep(ctx)
		require.NoError(t, err)
		stored, err := c.base.GetRequest(ctx, r3.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestApproved, stored.Status)
		require.Equal(t, g.ID, stored.GrantID)
		require.Empty(t, r158OfRequest(c.events(t, "acme", sa.EventRequestExpired), r3.ID))
		got, err = fast.m.GetRequest(ctx, r3.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestApproved, got.Status, "an approved request never reads as expired")
		c.verify(t, fast.m, "acme")
	})
}

// TestReview158ApproveOnlyNarrowsAcrossReplicas attacks ApproveInput: "the
// grant may only be narrower than the request" and Approve's errors ("a
// wider duration or scope than requested"): a request made on one replica
// is approved on another with more than was asked (refused, nothing
// stored), then with less (the grant has exactly that, and a third
// replica's Check enforces it).
func TestReview158ApproveOnlyNarrowsAcrossReplicas(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, clock := c.replicas(t, 3)
		const msgs = sa.Scope("messages:read")
		req, err := reps[0].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Duration: 3 * sa.Day,
			Scopes: []sa.Scope{sa.ScopeWrite, msgs}, Reason: "migrate data", TicketRef: "T-1"})
		require.NoError(t, err)
		clock.Advance(time.Hour)
		before := c.state(t, "acme", req.ID)
		for _, in := range []sa.ApproveInput{
			{Duration: 3*sa.Day + time.Microsecond},
			{Duration: sa.Unlimited},
			{Duration: -time.Hour},
			{Scopes: []sa.Scope{"admin"}},
			{Scopes: []sa.Scope{sa.ScopeRead, "billing:read"}},
			{Scopes: []sa.Scope{sa.ScopeWrite, msgs, "messages:write"}},
			{Duration: sa.Day, Scopes: []sa.Scope{"MESSAGES:READ"}},
		} {
			_, err := reps[1].m.Approve(ctx, req.ID, storetest.Customer, in)
			require.ErrorIs(t, err, sa.ErrInvalidInput, "%+v", in)
			require.Equal(t, before, c.state(t, "acme", req.ID), "%+v changed stored data", in)
		}
		require.Empty(t, reps[1].notes.of(""), "a refused approval tells no one")

		g, err := reps[1].m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{Duration: sa.Day, Scopes: []sa.Scope{msgs, sa.ScopeRead}, Reason: "one day, read only"})
		require.NoError(t, err)
		now := clock.Now().Truncate(time.Microsecond)
		require.Equal(t, now, g.StartsAt)
		require.Equal(t, now.Add(sa.Day), g.ExpiresAt)
		require.Equal(t, []sa.Scope{msgs, sa.ScopeRead}, g.Scopes)
		require.Equal(t, []string{storetest.Support.ID}, g.Grantees)
		require.Equal(t, req.ID, g.RequestID)
		require.Equal(t, "migrate data", g.Reason)
		require.Equal(t, "T-1", g.TicketRef)
		stored, err := reps[2].m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g.ExpiresAt, stored.ExpiresAt)
		require.Equal(t, g.Scopes, stored.Scopes)

		other := reps[2].m
		_, err = other.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.NoError(t, err)
		_, err = other.Check(ctx, "acme", storetest.Support.ID, msgs)
		require.NoError(t, err)
		_, err = other.Check(ctx, "acme", storetest.Support.ID, sa.ScopeWrite)
		require.ErrorIs(t, err, sa.ErrScopeNotGranted, "write was not approved")
		_, err = other.Check(ctx, "acme", storetest.Engineer.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the grant names only the requester")
		clock.Set(g.ExpiresAt)
		_, err = other.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "the narrowed duration holds")

		ns := reps[1].notes.of(sa.EventRequestApproved)
		require.Len(t, ns, 1)
		require.Equal(t, g.ExpiresAt, ns[0].ExpiresAt)
		require.Equal(t, g.Scopes, ns[0].Scopes)
		require.Equal(t, req.ID, ns[0].RequestID)
		ev := r158OfRequest(c.events(t, "acme", sa.EventRequestApproved), req.ID)
		require.Len(t, ev, 1)
		var after sa.AccessRequest
		require.NoError(t, json.Unmarshal(ev[0].After, &after))
		require.Equal(t, sa.RequestApproved, after.Status)
		require.Equal(t, g.ID, after.GrantID)
		c.verify(t, reps[0].m, "acme")
	})
}

// TestReview158ApproveUnderAnotherReplicasPolicy: replicas rolled out with
// different policies (a policy change in progress). Approve promises
// ErrForbidden "when ... the policy no longer allows an unlimited grant
// (each audited)" and ErrInvalidInput for "a reason or ticket reference the
// policy requires and the request lacks"; neither changes stored data,
// and the request can still be approved narrower (a finite duration) or
// denied.
func TestReview158ApproveUnderAnotherReplicasPolicy(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		clock := storetest.NewClock(storetest.Epoch)
		open := sa.DefaultPolicy()
		open.AllowUnlimited = true
		old := c.replica(t, clock, sa.WithPolicy(open))
		strict := sa.DefaultPolicy()
		strict.RequireTicketRef = true
		tight := c.replica(t, clock, sa.WithPolicy(strict))
		plain := c.replica(t, clock)

		req, err := old.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Duration: sa.Unlimited, Reason: "forever"})
		require.NoError(t, err)
		before := c.state(t, "acme", req.ID)
		_, err = plain.m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrForbidden, "the approving replica's policy refuses unlimited")
		require.Equal(t, before, c.state(t, "acme", req.ID))
		ref := c.refusals(t, "acme", sa.ActionApprove)
		require.Len(t, ref, 1, "the refusal is audited")
		require.Equal(t, req.ID.String(), ref[0].Attrs[sa.AttrRequestID])
		require.Equal(t, storetest.Customer, ref[0].Actor)

		_, err = tight.m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{Duration: sa.Day})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "the request lacks the ticket reference now required")
		require.Equal(t, before, c.state(t, "acme", req.ID))

		g, err := plain.m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{Duration: 7 * sa.Day})
		require.NoError(t, err, "a finite duration is narrower than unlimited")
		require.False(t, g.Unlimited())
		require.Equal(t, g.StartsAt.Add(7*sa.Day), g.ExpiresAt)

		req2, err := old.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: "no ticket"})
		require.NoError(t, err)
		_, err = tight.m.Deny(ctx, req2.ID, storetest.Customer, "ask again with a ticket")
		require.NoError(t, err, "a request the policy no longer allows can still be denied")
		c.verify(t, plain.m, "acme")
	})
}

// TestReview158ApproveAfterRevokeTenantOnOtherReplica: RevokeTenant on one
// replica ends the tenant's grants; a request still pending (RevokeTenant
// says nothing about requests; RevokeTicket says they "stay pending (an
// administrator may still approve one)") is approved on another replica
// afterwards. Pins: the request stayed pending, its approval opens access
// on every replica, and a second RevokeTenant ends it again.
func TestReview158ApproveAfterRevokeTenantOnOtherReplica(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, _ := c.replicas(t, 3)
		g1, err := reps[0].m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Reason: "direct"})
		require.NoError(t, err)
		req, err := reps[1].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Engineer, Reason: "asked"})
		require.NoError(t, err)
		revoked, err := reps[0].m.RevokeTenant(ctx, "acme", storetest.Customer, "incident")
		require.NoError(t, err)
		require.Len(t, revoked, 1)
		require.Equal(t, g1.ID, revoked[0].ID)
		got, err := reps[2].m.GetRequest(ctx, req.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestPending, got.Status, "RevokeTenant leaves requests pending")
		_, err = reps[2].m.Check(ctx, "acme", storetest.Engineer.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)

		g2, err := reps[2].m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{})
		require.NoError(t, err)
		for _, r := range reps {
			got, err := r.m.Check(ctx, "acme", storetest.Engineer.ID, sa.ScopeRead)
			require.NoError(t, err)
			require.Equal(t, g2.ID, got.ID)
		}
		revoked, err = reps[1].m.RevokeTenant(ctx, "acme", storetest.Customer, "again")
		require.NoError(t, err)
		require.Len(t, revoked, 1)
		require.Equal(t, g2.ID, revoked[0].ID)
		for _, r := range reps {
			_, err := r.m.Check(ctx, "acme", storetest.Engineer.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		}
		c.verify(t, reps[0].m, "acme")
	})
}

// TestReview158DelegateRacesRevokeAcrossReplicas attacks AddGrantee: "a
// grant that is expired or revoked" is ErrInvalidInput, "the store's or
// auditor's error, in which case the grant is unchanged", and Revoke's
// "effective immediately": replica B adds a colleague to a grant while
// replica A revokes it. Either the delegation came first (grant.delegated
// before grant.revoked in the chain, the revoked grant names the
// colleague, one delegation notification) or it is refused with nothing
// recorded; the colleague never has access afterwards on any replica.
func TestReview158DelegateRacesRevokeAcrossReplicas(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, clock := c.replicas(t, 3)
		const rounds = 10
		delegated := 0
		for round := range rounds {
			clock.Advance(time.Minute)
			colleague := fmt.Sprintf("colleague%d@vendor.example", round)
			g, err := reps[0].m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Grantees: []string{storetest.Support.ID}, Reason: "case"})
			require.NoError(t, err)
			var dg sa.Grant
			errs := r158Go(
				func() (err error) {
					dg, err = reps[1].m.AddGrantee(ctx, g.ID, colleague, storetest.Support)
					return err
				},
				func() error { _, err := reps[0].m.Revoke(ctx, g.ID, storetest.Customer, "done"); return err },
			)
			require.NoError(t, errs[1], "round %d: revoke", round)
			stored, err := reps[2].m.Get(ctx, g.ID)
			require.NoError(t, err)
			require.False(t, stored.RevokedAt.IsZero())
			evs := r158OfGrant(c.events(t, "acme"), g.ID)
			notes := 0
			for _, n := range reps[1].notes.of(sa.EventGrantDelegated) {
				if n.GrantID == g.ID {
					notes++
					require.Equal(t, colleague, n.Principal)
				}
			}
			if errs[0] == nil {
				delegated++
				require.Contains(t, dg.Grantees, colleague)
				require.Contains(t, stored.Grantees, colleague)
				require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantDelegated, sa.EventGrantRevoked}, r158Types(evs), "round %d", round)
				var revBefore sa.Grant
				require.NoError(t, json.Unmarshal(evs[2].Before, &revBefore))
				require.Contains(t, revBefore.Grantees, colleague, "the revocation's before names the delegated colleague")
				require.Equal(t, 1, notes)
			} else {
				require.ErrorIs(t, errs[0], sa.ErrInvalidInput, "round %d", round)
				require.NotContains(t, stored.Grantees, colleague)
				require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked}, r158Types(evs), "round %d", round)
				require.Zero(t, notes)
			}
			for _, r := range reps {
				for _, p := range []string{colleague, storetest.Support.ID} {
					_, err := r.m.Check(ctx, "acme", p, sa.ScopeRead)
					require.ErrorIs(t, err, sa.ErrNoActiveGrant)
				}
			}
			// Delegating the revoked grant later, on any replica, by
			// anyone, is refused and changes nothing.
			before := c.state(t, "acme", uuid.Nil)
			_, err = reps[2].m.AddGrantee(ctx, g.ID, "late@vendor.example", storetest.Support)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			_, err = reps[0].m.AddGrantee(ctx, g.ID, "late@vendor.example", storetest.Customer)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Equal(t, before, c.state(t, "acme", uuid.Nil))
		}
		t.Logf("%v: %d of %d delegations came before the revocation", c.d, delegated, rounds)
		for _, r := range reps {
			for _, n := range r.notes.of(sa.EventNotifyFailed) {
				t.Errorf("notify.failed: %+v", n)
			}
		}
		c.verify(t, reps[0].m, "acme")
	})
}

// TestReview158DelegateCapAndRetryAcrossReplicas attacks AddGrantee's
// "a grant that already names MaxGrantees principals" (ErrInvalidInput)
// and "Adding a principal the grant already names is a no-op ... nothing
// is recorded and nobody is notified, so a retry is safe": two replicas
// add different principals to a grant one short of the cap (exactly one
// wins), then two replicas add the same principal (one event, one
// notification, both calls succeed).
func TestReview158DelegateCapAndRetryAcrossReplicas(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, _ := c.replicas(t, 3)
		names := []string{storetest.Support.ID}
		for i := 1; i < sa.MaxGrantees-1; i++ {
			names = append(names, fmt.Sprintf("p%03d@vendor.example", i))
		}
		g, err := reps[0].m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Grantees: names, Reason: "big case"})
		require.NoError(t, err)
		require.Len(t, g.Grantees, sa.MaxGrantees-1)

		// Same principal on two replicas at once: one change.
		errs := r158Go(
			func() error {
				_, err := reps[1].m.AddGrantee(ctx, g.ID, "same@vendor.example", storetest.Support)
				return err
			},
			func() error {
				_, err := reps[2].m.AddGrantee(ctx, g.ID, "same@vendor.example", storetest.Customer)
				return err
			},
		)
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.Len(t, c.events(t, "acme", sa.EventGrantDelegated), 1)
		require.Len(t, append(reps[1].notes.of(sa.EventGrantDelegated), reps[2].notes.of(sa.EventGrantDelegated)...), 1)
		stored, err := reps[0].m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Len(t, stored.Grantees, sa.MaxGrantees)

		// At the cap now: two further principals at once are both refused.
		before := c.state(t, "acme", uuid.Nil)
		errs = r158Go(
			func() error {
				_, err := reps[1].m.AddGrantee(ctx, g.ID, "x@vendor.example", storetest.Support)
				return err
			},
			func() error {
				_, err := reps[2].m.AddGrantee(ctx, g.ID, "y@vendor.example", storetest.Support)
				return err
			},
		)
		require.ErrorIs(t, errs[0], sa.ErrInvalidInput)
		require.ErrorIs(t, errs[1], sa.ErrInvalidInput)
		require.Equal(t, before, c.state(t, "acme", uuid.Nil))

		// One short of the cap, two different principals at once: one wins.
		names2 := []string{storetest.Support.ID}
		for i := 1; i < sa.MaxGrantees-1; i++ {
			names2 = append(names2, fmt.Sprintf("q%03d@vendor.example", i))
		}
		g2, err := reps[0].m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Grantees: names2, Reason: "second case"})
		require.NoError(t, err)
		errs = r158Go(
			func() error {
				_, err := reps[1].m.AddGrantee(ctx, g2.ID, "x@vendor.example", storetest.Support)
				return err
			},
			func() error {
				_, err := reps[2].m.AddGrantee(ctx, g2.ID, "y@vendor.example", storetest.Support)
				return err
			},
		)
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				require.ErrorIs(t, err, sa.ErrInvalidInput)
			}
		}
		require.Equal(t, 1, ok, "exactly one delegation fits under the cap: %v", errs)
		stored, err = reps[0].m.Get(ctx, g2.ID)
		require.NoError(t, err)
		require.Len(t, stored.Grantees, sa.MaxGrantees)
		require.Len(t, r158OfGrant(c.events(t, "acme", sa.EventGrantDelegated), g2.ID), 1)
		c.verify(t, reps[0].m, "acme")
	})
}

// TestReview158AuthorizerKeepsActorsToTheirTenant attacks RequestAccess's
// "ErrForbidden when By is not a support actor or the Authorizer refuses
// ActionRequest (audited) ... in which case nothing is stored", Approve's
// and Deny's "ErrForbidden when by is not a customer or the Authorizer
// refuses (each audited)", WithAuthorizer's "only customers approve or
// deny requests" whatever the Authorizer says, and Authorizer's "for
// Approve and Deny the stored request's [tenant]": a host Authorizer that
// lets a support principal ask only about its assigned tenant and a
// customer decide only for its own tenant; every refusal on any replica
// leaves the data unchanged and is audited in the right tenant's trail.
func TestReview158AuthorizerKeepsActorsToTheirTenant(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		assigned := map[string]string{storetest.Support.ID: "acme"}
		authz := func(_ context.Context, action sa.Action, by sa.Actor, tenant string) error {
			switch by.Kind {
			case sa.ActorSupport:
				if action == sa.ActionRequest && assigned[by.ID] != tenant {
					return fmt.Errorf("%s is not assigned to %s", by.ID, tenant)
				}
				return nil // anything else: the Manager's own rules must hold
			case sa.ActorCustomer:
				if !strings.HasSuffix(by.ID, "@"+tenant+".example") {
					return fmt.Errorf("%s is not an administrator of %s", by.ID, tenant)
				}
				return nil
			}
			return nil // the system too: the built-in rules must refuse it
		}
		reps, _ := c.replicas(t, 3, sa.WithAuthorizer(authz))
		globexAdmin := sa.Actor{Kind: sa.ActorCustomer, ID: "admin@globex.example"}

		_, err := reps[0].m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: storetest.Support, Reason: "curious"})
		require.ErrorIs(t, err, sa.ErrForbidden)
		_, err = reps[1].m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: storetest.Engineer, Reason: "unassigned"})
		require.ErrorIs(t, err, sa.ErrForbidden)
		_, err = reps[2].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Customer, Reason: "not support"})
		require.ErrorIs(t, err, sa.ErrForbidden)
		all, err := reps[2].m.ListRequests(ctx, sa.RequestFilter{})
		require.NoError(t, err)
		require.Empty(t, all, "no refused request is stored")
		refused := c.refusals(t, "globex", sa.ActionRequest)
		require.Len(t, refused, 2, "both refusals are in globex's trail")
		require.Equal(t, storetest.Support, refused[0].Actor)
		require.Len(t, c.refusals(t, "acme", sa.ActionRequest), 1)
		for _, r := range reps {
			require.Empty(t, r.notes.of(""), "nobody is told of a refused request")
		}

		req, err := reps[0].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: "ticket"})
		require.NoError(t, err)
		before := c.state(t, "acme", req.ID)
		_, err = reps[1].m.Approve(ctx, req.ID, globexAdmin, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrForbidden, "another tenant's admin may not approve")
		_, err = reps[2].m.Deny(ctx, req.ID, globexAdmin, "mine now")
		require.ErrorIs(t, err, sa.ErrForbidden, "another tenant's admin may not deny")
		_, err = reps[0].m.Approve(ctx, req.ID, storetest.Support, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrForbidden, "support never approves, whatever the Authorizer says")
		_, err = reps[1].m.Deny(ctx, req.ID, storetest.Engineer, "")
		require.ErrorIs(t, err, sa.ErrForbidden, "support never denies")
		sys := sa.Actor{Kind: sa.ActorSystem, ID: "cron"}
		_, err = reps[2].m.Approve(ctx, req.ID, sys, sa.ApproveInput{})
		require.ErrorIs(t, err, sa.ErrForbidden, "only customers decide")
		require.Equal(t, before, c.state(t, "acme", req.ID), "refused decisions change nothing")
		approves := c.refusals(t, "acme", sa.ActionApprove)
		denies := c.refusals(t, "acme", sa.ActionDeny)
		require.Len(t, approves, 3)
		require.Len(t, denies, 2)
		for _, e := range append(approves, denies...) {
			require.Equal(t, req.ID.String(), e.Attrs[sa.AttrRequestID])
		}
		require.Len(t, c.events(t, "globex", sa.EventActionRefused), 2, "decisions on acme's request are audited in acme's trail")
		for _, r := range reps {
			require.Empty(t, r.notes.of(sa.EventRequestApproved))
			require.Empty(t, r.notes.of(sa.EventRequestDenied))
		}

		g, err := reps[2].m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{})
		require.NoError(t, err, "acme's admin approves")
		require.Equal(t, "acme", g.TenantID)
		c.verify(t, reps[0].m, "acme", "globex")
	})
}

// TestReview158RequestsSurviveRestart attacks the sweep's "record ... once
// each (even with many app replicas)" and RequestStore's persistence:
// requests made by replicas that then stop are seen by new replicas (new
// pools, new Managers); two new replicas sweeping at once record each
// expiry exactly once, a third started later records none again, and
// decided requests are untouched.
func TestReview158RequestsSurviveRestart(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		first := c.replica(t, nil)
		var pending []uuid.UUID
		for i := range 6 {
			first.clock.Advance(time.Minute)
			r, err := first.m.RequestAccess(ctx, sa.RequestInput{TenantID: fmt.Sprintf("t%d", i%2), By: storetest.Support, Reason: fmt.Sprint("req ", i)})
			require.NoError(t, err)
			pending = append(pending, r.ID)
		}
		g, err := first.m.Approve(ctx, pending[0], storetest.Customer, sa.ApproveInput{Duration: time.Hour})
		require.NoError(t, err)
		_, err = first.m.Deny(ctx, pending[1], storetest.Customer, "no")
		require.NoError(t, err)
		decided := pending[:2]
		pending = pending[2:]
		// The first replica stops.
		require.NoError(t, first.s.Close())
		require.NoError(t, first.db.Close())

		clock := storetest.NewClock(first.clock.Now())
		b := c.replica(t, clock)
		cc := c.replica(t, clock)
		got, err := b.m.ListRequests(ctx, sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestPending}})
		require.NoError(t, err)
		require.Len(t, got, len(pending), "the new replica sees the pending requests")
		clock.Advance(72 * time.Hour)
		errs := r158Go(
			func() error { _, err := b.m.Sweep(ctx); return err },
			func() error { _, err := cc.m.Sweep(ctx); return err },
		)
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])

		later := c.replica(t, storetest.NewClock(clock.Now().Add(time.Hour)))
		_, err = later.m.Sweep(ctx)
		require.NoError(t, err)

		var expired []sa.Event
		for _, tenant := range []string{"t0", "t1"} {
			expired = append(expired, c.events(t, tenant, sa.EventRequestExpired)...)
		}
		require.Len(t, expired, len(pending), "each expiry recorded once")
		for _, id := range pending {
			var n int
			for _, e := range expired {
				if e.Attrs[sa.AttrRequestID] == id.String() {
					n++
				}
			}
			require.Equal(t, 1, n, "request %s", id)
			r, err := later.m.GetRequest(ctx, id)
			require.NoError(t, err)
			require.Equal(t, sa.RequestExpired, r.Status)
			_, err = later.m.Approve(ctx, id, storetest.Customer, sa.ApproveInput{})
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		}
		for _, id := range decided {
			r, err := later.s.GetRequest(ctx, id)
			require.NoError(t, err)
			require.NotEqual(t, sa.RequestExpired, r.Status, "a decided request never expires")
		}
		// The approved grant's own expiry is recorded once too.
		ge := r158OfGrant(c.events(t, g.TenantID, sa.EventGrantExpired), g.ID)
		require.Len(t, ge, 1)
		for _, r := range []*r158Replica{b, cc, later} {
			for _, n := range r.notes.of("") {
				require.NotEqual(t, sa.EventRequestExpired, n.Type)
			}
		}
		c.verify(t, later.m, "t0", "t1")
	})
}

// TestReview158ImpersonatedSupportCannotDecideOnOtherReplica attacks
// WithAuthorizer's "a call made with the context of a request the
// middleware admitted for support (an impersonated request, see
// SessionFromContext) is refused unless by is that support principal":
// support holding a read/write grant uses the customer's admin UI, served
// by replica A's middleware, whose handler calls replica B's Manager to
// approve support's own pending request for more (messages:read), or to
// add a colleague in the customer's name. Both are refused and audited,
// nothing changes; support delegating as itself is allowed.
func TestReview158ImpersonatedSupportCannotDecideOnOtherReplica(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, _ := c.replicas(t, 2)
		a, b := reps[0], reps[1]
		g, err := b.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Grantees: []string{storetest.Support.ID},
			Scopes: []sa.Scope{sa.ScopeWrite}, Reason: "debug"})
		require.NoError(t, err)
		req, err := b.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support,
			Scopes: []sa.Scope{sa.ScopeWrite, "messages:read"}, Reason: "need the messages too"})
		require.NoError(t, err)
		resolve := func(*http.Request) (sa.Session, bool) {
			return sa.Session{TenantID: "acme", Principal: storetest.Support.ID, SessionID: "s-158"}, true
		}
		var results []error
		admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var err error
			switch r.URL.Path {
			case "/approve":
				_, err = b.m.Approve(r.Context(), req.ID, storetest.Customer, sa.ApproveInput{})
			case "/deny":
				_, err = b.m.Deny(r.Context(), req.ID, storetest.Customer, "")
			case "/delegate-as-customer":
				_, err = b.m.AddGrantee(r.Context(), g.ID, "friend@vendor.example", storetest.Customer)
			case "/delegate-as-self":
				_, err = b.m.AddGrantee(r.Context(), g.ID, storetest.Engineer.ID, storetest.Support)
			}
			results = append(results, err)
			w.WriteHeader(http.StatusNoContent)
		})
		h := a.m.Middleware(resolve)(admin)
		before := c.state(t, "acme", req.ID)
		for _, p := range []string{"/approve", "/deny", "/delegate-as-customer"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, p, nil))
			require.Equal(t, http.StatusNoContent, rec.Code, p)
			require.ErrorIs(t, results[len(results)-1], sa.ErrForbidden, p)
		}
		after := c.state(t, "acme", req.ID)
		require.Equal(t, before.req, after.req)
		require.Equal(t, before.grants, after.grants)
		for _, e := range after.events[len(before.events):] {
			require.Equal(t, sa.EventSupportRequest, e.Type, "only the support requests themselves were recorded")
		}
		var refused []sa.Event
		for _, e := range c.events(t, "acme", sa.EventActionRefused) {
			refused = append(refused, e)
			require.Equal(t, storetest.Support.ID, e.Actor.ID, "the refusal names the impersonating principal")
			require.Equal(t, "s-158", e.Attrs[sa.AttrSessionID])
		}
		require.Len(t, refused, 3)
		require.Equal(t, req.ID.String(), refused[0].Attrs[sa.AttrRequestID])
		require.Equal(t, g.ID, refused[2].GrantID)

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/delegate-as-self", nil))
		require.NoError(t, results[len(results)-1], "support delegates its own access as itself")
		_, err = a.m.Check(ctx, "acme", storetest.Engineer.ID, sa.ScopeRead)
		require.NoError(t, err)
		got, err := a.m.GetRequest(ctx, req.ID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestPending, got.Status)
		c.verify(t, a.m, "acme")
	})
}

// TestReview158ConcurrentDelegationsAllLand: replicas add different
// colleagues to one grant at once (well under MaxGrantees). Nothing in
// AddGrantee's contract lets one fail; every colleague is named, one
// grant.delegated each, each notified once, and other replicas' Checks
// admit them.
func TestReview158ConcurrentDelegationsAllLand(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, _ := c.replicas(t, 3)
		g, err := reps[0].m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Grantees: []string{storetest.Support.ID}, Reason: "team"})
		require.NoError(t, err)
		const n = 9
		var fs []func() error
		for i := range n {
			fs = append(fs, func() error {
				_, err := reps[i%3].m.AddGrantee(ctx, g.ID, fmt.Sprintf("c%d@vendor.example", i), storetest.Support)
				return err
			})
		}
		for i, err := range r158Go(fs...) {
			require.NoError(t, err, "delegation %d", i)
		}
		stored, err := reps[1].m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Len(t, stored.Grantees, n+1)
		evs := r158OfGrant(c.events(t, "acme", sa.EventGrantDelegated), g.ID)
		require.Len(t, evs, n)
		// Each event's before/after is one step: the chain of grantee
		// lists tells one story.
		for i := 1; i < len(evs); i++ {
			var prevAfter, before sa.Grant
			require.NoError(t, json.Unmarshal(evs[i-1].After, &prevAfter))
			require.NoError(t, json.Unmarshal(evs[i].Before, &before))
			require.Equal(t, prevAfter.Grantees, before.Grantees, "event %d starts where %d ended", i, i-1)
		}
		notes := 0
		for _, r := range reps {
			notes += len(r.notes.of(sa.EventGrantDelegated))
		}
		require.Equal(t, n, notes)
		for i := range n {
			_, err := reps[(i+1)%3].m.Check(ctx, "acme", fmt.Sprintf("c%d@vendor.example", i), sa.ScopeRead)
			require.NoError(t, err)
		}
		c.verify(t, reps[0].m, "acme")
	})
}

// TestReview158ManyApprovalsOneTenant: an administrator approves several
// pending requests of one tenant at once ("approve all"), spread over
// replicas. Each approval is its own request's decision, so none should be
// aborted; each creates its own grant with its own events.
func TestReview158ManyApprovalsOneTenant(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, _ := c.replicas(t, 3)
		const n = 9
		var reqs []sa.AccessRequest
		var fs []func() error
		for i := range n {
			fs = append(fs, func() error {
				_, err := reps[i%3].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme",
					By: sa.Actor{Kind: sa.ActorSupport, ID: fmt.Sprintf("s%d@vendor.example", i)}, Reason: fmt.Sprint("case ", i)})
				return err
			})
		}
		for i, err := range r158Go(fs...) {
			require.NoError(t, err, "request %d", i)
		}
		reqs, err := reps[0].m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme"})
		require.NoError(t, err)
		require.Len(t, reqs, n)
		fs = fs[:0]
		for i, r := range reqs {
			fs = append(fs, func() error {
				_, err := reps[i%3].m.Approve(ctx, r.ID, storetest.Customer, sa.ApproveInput{})
				return err
			})
		}
		conflicts := 0
		approved := map[uuid.UUID]bool{}
		for i, err := range r158Go(fs...) {
			if errors.Is(err, sa.ErrConflict) {
				conflicts++
				continue
			}
			require.NoError(t, err, "approval %d", i)
			approved[reqs[i].ID] = true
		}
		require.Zero(t, conflicts, "approvals of distinct requests were aborted as deadlocks")
		evs := c.events(t, "acme")
		for _, r := range reqs {
			got, err := c.base.GetRequest(ctx, r.ID)
			require.NoError(t, err)
			mine := r158OfRequest(evs, r.ID)
			if approved[r.ID] {
				require.Equal(t, sa.RequestApproved, got.Status)
				require.Equal(t, []sa.EventType{sa.EventRequestCreated, sa.EventRequestApproved, sa.EventGrantCreated}, r158Types(mine))
			} else {
				require.Equal(t, sa.RequestPending, got.Status)
				require.Equal(t, []sa.EventType{sa.EventRequestCreated}, r158Types(mine))
			}
		}
		c.verify(t, reps[0].m, "acme")
	})
}

// TestReview158FailingNotifierAfterDecision attacks Notifier's "an error
// never undoes the change, it is recorded as a notify.failed event": the
// deciding replica's Notifier fails (and, for Deny, panics); the decision
// stands, notify.failed names the request, and the chain verifies.
func TestReview158FailingNotifierAfterDecision(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		clock := storetest.NewClock(storetest.Epoch)
		good := c.replica(t, clock)
		var handled []error
		var mu sync.Mutex
		bad := c.replica(t, clock, sa.WithNotifier(sa.NotifierFunc(func(_ context.Context, n sa.Notification) error {
			if n.Type == sa.EventRequestDenied {
				panic("mail queue full")
			}
			return errors.New("smtp down")
		})), sa.WithErrorHandler(func(_ context.Context, err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
		r1, err := good.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: "one"})
		require.NoError(t, err)
		r2, err := good.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Engineer, Reason: "two"})
		require.NoError(t, err)
		g, err := bad.m.Approve(ctx, r1.ID, storetest.Customer, sa.ApproveInput{})
		require.NoError(t, err, "a failing Notifier never undoes the approval")
		_, err = bad.m.Deny(ctx, r2.ID, storetest.Customer, "no")
		require.NoError(t, err, "a panicking Notifier never undoes the denial")
		_, err = good.m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
		require.NoError(t, err)
		failed := c.events(t, "acme", sa.EventNotifyFailed)
		require.Len(t, failed, 2)
		require.Equal(t, r1.ID.String(), failed[0].Attrs[sa.AttrRequestID])
		require.Equal(t, g.ID, failed[0].GrantID)
		require.Equal(t, string(sa.EventRequestApproved), failed[0].Attrs[sa.AttrAction])
		require.Equal(t, r2.ID.String(), failed[1].Attrs[sa.AttrRequestID])
		require.Equal(t, string(sa.EventRequestDenied), failed[1].Attrs[sa.AttrAction])
		require.Contains(t, failed[1].Attrs[sa.AttrError], "mail queue full")
		mu.Lock()
		require.Len(t, handled, 2)
		mu.Unlock()
		c.verify(t, good.m, "acme")
	})
}

// TestReview158DelegateRacesExpirySweep attacks Store.UpdateGrant's "A
// grant whose expiry ClaimTransitions recorded is final ... so that no
// replica can extend, revoke or otherwise change a grant the trail says
// expired — whatever its clock says": replica A, whose clock is 1 µs
// before the grant's end, delegates while replica B, at the end, sweeps.
// Either the delegation lands first (grant.delegated before grant.expired
// in the chain) or it is refused and nothing is recorded.
func TestReview158DelegateRacesExpirySweep(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		a := c.replica(t, nil)
		b := c.replica(t, nil)
		const rounds = 8
		first := 0
		for round := range rounds {
			base := storetest.Epoch.Add(time.Duration(round) * 10 * time.Hour)
			a.clock.Set(base)
			b.clock.Set(base)
			g, err := a.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Grantees: []string{storetest.Support.ID}, Duration: time.Hour, Reason: fmt.Sprint(round)})
			require.NoError(t, err)
			_, err = b.m.Sweep(ctx) // the start
			require.NoError(t, err)
			a.clock.Set(g.ExpiresAt.Add(-time.Microsecond))
			b.clock.Set(g.ExpiresAt)
			colleague := fmt.Sprintf("late%d@vendor.example", round)
			errs := r158Go(
				func() error { _, err := a.m.AddGrantee(ctx, g.ID, colleague, storetest.Support); return err },
				func() error { _, err := b.m.Sweep(ctx); return err },
			)
			require.NoError(t, errs[1])
			// A grant the delegation held was skipped ("a writer holds at
			// that moment leaves the expiry for a later Sweep").
			_, err = b.m.Sweep(ctx)
			require.NoError(t, err)
			evs := r158OfGrant(c.events(t, "acme"), g.ID)
			stored, err := b.m.Get(ctx, g.ID)
			require.NoError(t, err)
			if errs[0] == nil {
				first++
				require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantStarted, sa.EventGrantDelegated, sa.EventGrantExpired}, r158Types(evs), "round %d", round)
				require.Contains(t, stored.Grantees, colleague)
			} else {
				require.ErrorIs(t, errs[0], sa.ErrInvalidInput, "round %d", round)
				require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantStarted, sa.EventGrantExpired}, r158Types(evs), "round %d", round)
				require.NotContains(t, stored.Grantees, colleague)
				require.Empty(t, a.notes.of(sa.EventGrantDelegated)[first:])
			}
			// Afterwards the slow replica is refused whatever its clock says.
			before := c.state(t, "acme", uuid.Nil)
			_, err = a.m.AddGrantee(ctx, g.ID, "after@vendor.example", storetest.Customer)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Equal(t, before, c.state(t, "acme", uuid.Nil))
		}
		t.Logf("%v: %d of %d delegations landed before the expiry", c.d, first, rounds)
		c.verify(t, a.m, "acme")
	})
}

// TestReview158RequestListOrderAndBoundary attacks RequestStore's
// ListRequests "ordered by CreatedAt descending then ID descending, at
// most f.Limit" and "statuses are evaluated at now" on every dialect, at
// the exact microsecond of ExpiresAt, through another replica.
func TestReview158RequestListOrderAndBoundary(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, clock := c.replicas(t, 2)
		var ids []uuid.UUID
		for i := range 6 {
			r, err := reps[i%2].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: fmt.Sprint(i)})
			require.NoError(t, err)
			ids = append(ids, r.ID)
		}
		// All at one CreatedAt: ID descending, bytewise.
		want := append([]uuid.UUID(nil), ids...)
		for i := range want {
			for j := i + 1; j < len(want); j++ {
				if strings.Compare(want[j].String(), want[i].String()) > 0 {
					want[i], want[j] = want[j], want[i]
				}
			}
		}
		got, err := reps[1].m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", Limit: 4})
		require.NoError(t, err)
		var gotIDs []uuid.UUID
		for _, r := range got {
			gotIDs = append(gotIDs, r.ID)
		}
		require.Equal(t, want[:4], gotIDs)

		req, err := reps[0].m.GetRequest(ctx, ids[0])
		require.NoError(t, err)
		pendingAt := func(at time.Time) (int, int) {
			clock.Set(at)
			p, err := reps[1].m.ListRequests(ctx, sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestPending}})
			require.NoError(t, err)
			x, err := reps[1].m.ListRequests(ctx, sa.RequestFilter{Statuses: []sa.RequestStatus{sa.RequestExpired}})
			require.NoError(t, err)
			return len(p), len(x)
		}
		p, x := pendingAt(req.ExpiresAt.Add(-time.Microsecond))
		require.Equal(t, [2]int{6, 0}, [2]int{p, x})
		p, x = pendingAt(req.ExpiresAt)
		require.Equal(t, [2]int{0, 6}, [2]int{p, x}, "expired from ExpiresAt on, before any Sweep")
		_, err = reps[0].m.Sweep(ctx)
		require.NoError(t, err)
		p, x = pendingAt(req.ExpiresAt.Add(-time.Hour))
		require.Equal(t, [2]int{0, 6}, [2]int{p, x}, "a recorded expiry holds on a clock behind it")
	})
}

// TestReview158RunExpiryOnTwoReplicasRecordsRequestsOnce: two replicas run
// the real expiry loop (a short interval) over requests a stopped replica
// made; each request.expired is recorded once, and Close stops both loops.
func TestReview158RunExpiryOnTwoReplicasRecordsRequestsOnce(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		first := c.replica(t, nil)
		const n = 5
		for i := range n {
			_, err := first.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: fmt.Sprint(i)})
			require.NoError(t, err)
		}
		require.NoError(t, first.s.Close())
		clock := storetest.NewClock(first.clock.Now().Add(73 * time.Hour))
		reps := []*r158Replica{c.replica(t, clock), c.replica(t, clock)}
		loopErrs := make(chan error, len(reps))
		for _, r := range reps {
			go func() { loopErrs <- r.m.RunExpiry(ctx, 10*time.Millisecond) }()
		}
		require.Eventually(t, func() bool {
			return len(c.events(t, "acme", sa.EventRequestExpired)) >= n
		}, 5*time.Second, 10*time.Millisecond)
		time.Sleep(50 * time.Millisecond) // a few more ticks of both loops (real timers under test)
		for _, r := range reps {
			require.NoError(t, r.m.Close())
		}
		for range reps {
			require.ErrorIs(t, <-loopErrs, sa.ErrClosed)
		}
		evs := c.events(t, "acme", sa.EventRequestExpired)
		require.Len(t, evs, n)
		seen := map[string]bool{}
		for _, e := range evs {
			require.False(t, seen[e.Attrs[sa.AttrRequestID]], "expired twice: %s", e.Attrs[sa.AttrRequestID])
			seen[e.Attrs[sa.AttrRequestID]] = true
		}
		c.verify(t, reps[0].m, "acme")
	})
}

// TestReview158RequestRefusedByPolicyIsAudited attacks RequestAccess's
// "ErrForbidden when ... an unlimited duration the policy does not allow"
// with "nothing is stored", and checks that the refusal is audited as a
// refusal of ActionRequest is (auditPolicyRefusal), on a replica whose
// policy differs from the one that would allow it.
func TestReview158RequestRefusedByPolicyIsAudited(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		reps, _ := c.replicas(t, 2)
		_, err := reps[0].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Duration: sa.Unlimited, Reason: "forever"})
		require.ErrorIs(t, err, sa.ErrForbidden)
		_, err = reps[1].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Duration: 121 * sa.Day, Reason: "too long"})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		all, err := reps[1].m.ListRequests(ctx, sa.RequestFilter{})
		require.NoError(t, err)
		require.Empty(t, all)
		ref := c.refusals(t, "acme", sa.ActionRequest)
		require.Len(t, ref, 1, "the policy's refusal of an unlimited request is audited")
		require.Equal(t, storetest.Support, ref[0].Actor)
		require.Empty(t, c.events(t, "acme", sa.EventRequestCreated))
		for _, r := range reps {
			require.Empty(t, r.notes.of(""))
		}

		// Approving exactly what was asked is not "wider".
		req, err := reps[0].m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Duration: 2 * sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
		require.NoError(t, err)
		g, err := reps[1].m.Approve(ctx, req.ID, storetest.Customer, sa.ApproveInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{sa.ScopeWrite, sa.ScopeWrite}})
		require.NoError(t, err)
		require.Equal(t, []sa.Scope{sa.ScopeWrite}, g.Scopes)
		require.Equal(t, g.StartsAt.Add(2*sa.Day), g.ExpiresAt)
		c.verify(t, reps[0].m, "acme")
	})
}

// r158SwappingStore hands ApproveRequest's and UpdateRequest's callbacks
// another request than the one asked for (a store with a bug in its key
// handling), as review 135's swappingStore does for UpdateGrant.
type r158SwappingStore struct {
	*sqlstore.Store
	other uuid.UUID
}

func (s *r158SwappingStore) ApproveRequest(ctx context.Context, _ uuid.UUID, approve func(*sa.AccessRequest) (sa.Grant, []sa.Event, error)) (sa.AccessRequest, sa.Grant, error) {
	return s.Store.ApproveRequest(ctx, s.other, approve)
}

func (s *r158SwappingStore) UpdateRequest(ctx context.Context, _ uuid.UUID, change func(*sa.AccessRequest) ([]sa.Event, error)) (sa.AccessRequest, error) {
	return s.Store.UpdateRequest(ctx, s.other, change)
}

// TestReview158DecisionRefusesAnotherRequestFromTheStore: Approve and Deny
// authorise on the request GetRequest returned ("for Approve and Deny the
// stored request's [tenant]", authz.go); a store whose ApproveRequest or
// UpdateRequest then hands over another request, of a tenant the
// Authorizer would refuse, must get no decision made on it — as
// Revoke/Extend/AddGrantee refuse with sameGrant since review 135
// ("the Authorizer judged cur, so no change is made to another",
// manager.go). Found by review 158 (Approve approved, and Deny denied,
// the other tenant's request); now both refuse with sameRequest.
func TestReview158DecisionRefusesAnotherRequestFromTheStore(t *testing.T) {
	r158ForEachDialect(t, func(t *testing.T, c *r158Cluster) {
		ctx := context.Background()
		authz := func(_ context.Context, action sa.Action, by sa.Actor, tenant string) error {
			if by.Kind == sa.ActorCustomer && !strings.HasSuffix(by.ID, "@"+tenant+".example") {
				return fmt.Errorf("%s is not an administrator of %s", by.ID, tenant)
			}
			return nil
		}
		honest := c.replica(t, nil, sa.WithAuthorizer(authz))
		for _, decide := range []string{"approve", "deny"} {
			mine, err := honest.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: storetest.Support, Reason: "acme"})
			require.NoError(t, err)
			theirs, err := honest.m.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: storetest.Engineer, Reason: "globex"})
			require.NoError(t, err)
			buggy := &r158SwappingStore{Store: honest.s, other: theirs.ID}
			m, err := sa.NewManager(buggy, sa.WithNow(honest.clock.Now), sa.WithAuthorizer(authz))
			require.NoError(t, err)
			before := c.state(t, "globex", theirs.ID)
			if decide == "approve" {
				_, err = m.Approve(ctx, mine.ID, storetest.Customer, sa.ApproveInput{})
			} else {
				_, err = m.Deny(ctx, mine.ID, storetest.Customer, "no")
			}
			require.ErrorIs(t, err, sa.ErrInvalidInput, "%s of acme's request must not decide globex's", decide)
			require.Equal(t, before, c.state(t, "globex", theirs.ID), "%s: globex's request unchanged, no grant, nothing recorded", decide)
			_, err = honest.m.Check(ctx, "globex", storetest.Engineer.ID, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		}
	})
}
