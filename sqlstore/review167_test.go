package sqlstore_test

// Review 167: is revocation linearizable? A history checker for Check,
// Grant, Revoke, RevokeTenant, RevokeTicket, Extend, AddGrantee and Sweep
// run by many goroutines at once on one Manager over a memstore, on two
// Managers (replicas) over one memstore, and on two Managers over one SQL
// database (SQLite file, PostgreSQL, MariaDB), under an injected clock that
// steps over the grants' StartsAt and ExpiresAt while they run.
//
// Every call gets an invocation and a response number from one atomic
// counter; every step of the clock gets a number from the same counter
// (under the clock's lock), so the clock values a call may have read are
// known exactly: the value current at its invocation and those set before
// its response. The history is then checked against the sequential
// specification (see r167History.verify).
//
// R167_SEEDS=n runs n seeds per backend instead of the fixed ones.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// r167Clock is a manual clock whose steps are numbered by the history's
// counter.
type r167Clock struct {
	seq  *atomic.Int64
	mu   sync.Mutex
	now  time.Time
	init time.Time
	sets []r167Set
}

type r167Set struct {
	seq int64
	at  time.Time
}

func (c *r167Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *r167Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sets = append(c.sets, r167Set{c.seq.Add(1), c.now})
}

// values returns the clock values a call between inv and resp may have
// read: the one current at inv and every one set before resp.
func (c *r167Clock) values(inv, resp int64) []time.Time {
	cur := c.init
	var out []time.Time
	for _, s := range c.sets {
		switch {
		case s.seq < inv:
			cur = s.at
		case s.seq < resp:
			out = append(out, s.at)
		}
	}
	return append([]time.Time{cur}, out...)
}

type r167Kind string

const (
	r167Grant        r167Kind = "Grant"
	r167Check        r167Kind = "Check"
	r167Revoke       r167Kind = "Revoke"
	r167RevokeTenant r167Kind = "RevokeTenant"
	r167RevokeTicket r167Kind = "RevokeTicket"
	r167Extend       r167Kind = "Extend"
	r167AddGrantee   r167Kind = "AddGrantee"
	r167Sweep        r167Kind = "Sweep"
)

// r167Op is one call of the history.
type r167Op struct {
	kind      r167Kind
	replica   int
	inv, resp int64
	id        uuid.UUID // the grant acted on (Revoke, Extend, AddGrantee)
	tenant    string
	ticket    string
	principal string
	scope     sa.Scope
	to        time.Time // Extend's new end
	g         sa.Grant  // the grant returned
	gs        []sa.Grant
	n         int
	err       error
}

func (o *r167Op) String() string {
	s := fmt.Sprintf("[%d,%d] r%d %s", o.inv, o.resp, o.replica, o.kind)
	switch o.kind {
	case r167Grant:
		s += fmt.Sprintf(" -> %s tenant=%s ticket=%q grantees=%v scopes=%v starts=+%v ends=+%v", short(o.g.ID), o.g.TenantID, o.g.TicketRef, o.g.Grantees, o.g.Scopes,
			o.g.StartsAt.Sub(r167Epoch), o.g.ExpiresAt.Sub(r167Epoch))
	case r167Check:
		s += fmt.Sprintf("(%s, %s, %s)", o.tenant, o.principal, o.scope)
		if o.err == nil {
			s += fmt.Sprintf(" -> allow %s ends=+%v", short(o.g.ID), o.g.ExpiresAt.Sub(r167Epoch))
		}
	case r167Revoke, r167AddGrantee:
		s += fmt.Sprintf("(%s %s)", short(o.id), o.principal)
		if o.err == nil {
			s += fmt.Sprintf(" -> revokedAt=+%v ends=+%v grantees=%v", o.g.RevokedAt.Sub(r167Epoch), o.g.ExpiresAt.Sub(r167Epoch), o.g.Grantees)
		}
	case r167Extend:
		s += fmt.Sprintf("(%s, +%v)", short(o.id), o.to.Sub(r167Epoch))
	case r167RevokeTenant, r167RevokeTicket:
		var ids []string
		for _, g := range o.gs {
			ids = append(ids, short(g.ID))
		}
		s += fmt.Sprintf("(%s %q) -> %v", o.tenant, o.ticket, ids)
	case r167Sweep:
		s += fmt.Sprintf(" -> %d", o.n)
	}
	if o.err != nil {
		s += " err=" + o.err.Error()
	}
	return s
}

func short(id uuid.UUID) string { s := id.String(); return s[len(s)-6:] }

// r167Epoch is the clock's start, a whole microsecond.
var r167Epoch = storetest.Epoch.Truncate(time.Microsecond)

var (
	r167Tenants    = []string{"acme", "beta"}
	r167Tickets    = []string{"", "T1", "T2"}
	r167Principals = []string{storetest.Support.ID, storetest.Engineer.ID, "zed@vendor.example"}
	r167Scopes     = []sa.Scope{sa.ScopeRead, sa.ScopeWrite, "messages:read"}
)

// r167History is a run's history.
type r167History struct {
	seq   atomic.Int64
	clock *r167Clock
	mu    sync.Mutex
	ops   []*r167Op
}

func (h *r167History) add(o *r167Op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

// r167Config sizes a run.
type r167Config struct {
	grants   int // created by the granters in all
	checkers int
}

// runR167 runs one history on ms (the replicas; all share one store) with
// the given seed and verifies it; it returns the history for the audit
// checks.
func runR167(t *testing.T, ms []*sa.Manager, clock *r167Clock, h *r167History, seed uint64, cfg r167Config) {
	t.Helper()
	ctx := context.Background()
	var (
		idsMu  sync.Mutex
		ids    []uuid.UUID
		done   atomic.Int64 // completed calls
		writes atomic.Int64 // completed calls other than Check: they pace the clock
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	pick := func(r *rand.Rand) uuid.UUID {
		idsMu.Lock()
		defer idsMu.Unlock()
		if len(ids) == 0 {
			return uuid.Nil
		}
		// mostly recent grants: they are the live ones
		n := len(ids)
		i := n - 1 - r.IntN(min(n, 8))
		if r.IntN(4) == 0 {
			i = r.IntN(n)
		}
		return ids[i]
	}
	call := func(o *r167Op, f func()) {
		o.inv = h.seq.Add(1)
		f()
		o.resp = h.seq.Add(1)
		h.add(o)
		done.Add(1)
		if o.kind != r167Check {
			writes.Add(1)
		}
	}
	fail := func(format string, args ...any) { t.Errorf(format, args...) }
	retryable := func(err error) bool { return errors.Is(err, sa.ErrConflict) }
	loop := func(worker int, body func(r *rand.Rand, i int) bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(worker)))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if !body(r, i) {
					return
				}
			}
		}()
	}
	// The clock: a step of 50–400 ms after every few completed calls
	// other than Checks (so that grants live for a few changes on every
	// backend, however fast its Checks are).
	loop(100, func(r *rand.Rand, _ int) bool {
		target := writes.Load() + 3
		for writes.Load() < target {
			select {
			case <-stop:
				return false
			default:
			}
			time.Sleep(50 * time.Microsecond) // pacing only, not waiting for expiry
		}
		clock.Advance(time.Duration(50+r.IntN(350)) * time.Millisecond)
		return true
	})
	// Granters (they end the run).
	var granters sync.WaitGroup
	for w := 0; w < 2; w++ {
		granters.Add(1)
		go func() {
			defer granters.Done()
			r := rand.New(rand.NewPCG(seed, uint64(10+w)))
			for i := 0; i < cfg.grants/2; i++ {
				in := sa.GrantInput{
					TenantID:  r167Tenants[r.IntN(2)],
					By:        storetest.Customer,
					Duration:  time.Duration(500+r.IntN(3500)) * time.Millisecond,
					TicketRef: r167Tickets[r.IntN(3)],
				}
				if r.IntN(3) == 0 {
					in.StartsAt = clock.Now().Add(time.Duration(r.IntN(1500)) * time.Millisecond)
				}
				switch r.IntN(3) {
				case 0: // any support principal
				case 1:
					in.Grantees = []string{r167Principals[0]}
				default:
					in.Grantees = []string{r167Principals[1]}
				}
				switch r.IntN(4) {
				case 0:
					in.Scopes = []sa.Scope{sa.ScopeWrite}
				case 1:
					in.Scopes = []sa.Scope{sa.ScopeRead, "messages:read"}
				}
				o := &r167Op{kind: r167Grant, replica: i % len(ms)}
				call(o, func() { o.g, o.err = ms[o.replica].Grant(ctx, in) })
				if o.err != nil {
					fail("grant: %v", o.err)
					return
				}
				idsMu.Lock()
				ids = append(ids, o.g.ID)
				idsMu.Unlock()
				time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
			}
		}()
	}
	// Revokers.
	for w := 0; w < 2; w++ {
		loop(20+w, func(r *rand.Rand, i int) bool {
			id := pick(r)
			if id == uuid.Nil {
				time.Sleep(100 * time.Microsecond)
				return true
			}
			o := &r167Op{kind: r167Revoke, replica: (w + i) % len(ms), id: id}
			call(o, func() { o.g, o.err = ms[o.replica].Revoke(ctx, id, storetest.Customer, "") })
			if o.err != nil && !errors.Is(o.err, sa.ErrInvalidInput) && !retryable(o.err) {
				fail("revoke: %v", o.err)
				return false
			}
			time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
			return true
		})
	}
	// Bulk revoker: RevokeTenant and RevokeTicket, seldom.
	loop(30, func(r *rand.Rand, i int) bool {
		time.Sleep(time.Duration(2000+r.IntN(6000)) * time.Microsecond)
		o := &r167Op{kind: r167RevokeTenant, replica: i % len(ms), tenant: r167Tenants[r.IntN(2)]}
		if r.IntN(2) == 0 {
			o.kind, o.ticket = r167RevokeTicket, r167Tickets[1+r.IntN(2)]
			call(o, func() { o.gs, o.err = ms[o.replica].RevokeTicket(ctx, o.tenant, o.ticket, storetest.Customer, "") })
		} else {
			call(o, func() { o.gs, o.err = ms[o.replica].RevokeTenant(ctx, o.tenant, storetest.Customer, "") })
		}
		if o.err != nil && !retryable(o.err) {
			fail("%s: %v", o.kind, o.err)
			return false
		}
		return true
	})
	// One extender: Extends of one grant are then ordered in real time.
	loop(40, func(r *rand.Rand, i int) bool {
		id := pick(r)
		if id == uuid.Nil {
			time.Sleep(100 * time.Microsecond)
			return true
		}
		to := clock.Now().Add(time.Duration(200+r.IntN(3000)) * time.Millisecond).Truncate(time.Microsecond)
		o := &r167Op{kind: r167Extend, replica: i % len(ms), id: id, to: to}
		call(o, func() { o.g, o.err = ms[o.replica].Extend(ctx, id, to, storetest.Customer) })
		if o.err != nil && !errors.Is(o.err, sa.ErrInvalidInput) && !retryable(o.err) {
			fail("extend: %v", o.err)
			return false
		}
		time.Sleep(time.Duration(r.IntN(1500)) * time.Microsecond)
		return true
	})
	// Delegator (a customer adds a principal).
	loop(50, func(r *rand.Rand, i int) bool {
		id := pick(r)
		if id == uuid.Nil {
			time.Sleep(100 * time.Microsecond)
			return true
		}
		o := &r167Op{kind: r167AddGrantee, replica: i % len(ms), id: id, principal: r167Principals[r.IntN(3)]}
		call(o, func() { o.g, o.err = ms[o.replica].AddGrantee(ctx, id, o.principal, storetest.Customer) })
		if o.err != nil && !errors.Is(o.err, sa.ErrInvalidInput) && !retryable(o.err) {
			fail("add grantee: %v", o.err)
			return false
		}
		time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
		return true
	})
	// Sweeper.
	loop(60, func(r *rand.Rand, i int) bool {
		time.Sleep(time.Duration(1000+r.IntN(3000)) * time.Microsecond)
		o := &r167Op{kind: r167Sweep, replica: i % len(ms)}
		call(o, func() { o.n, o.err = ms[o.replica].Sweep(ctx) })
		if o.err != nil && !retryable(o.err) {
			fail("sweep: %v", o.err)
			return false
		}
		return true
	})
	// Checkers.
	for w := 0; w < cfg.checkers; w++ {
		loop(70+w, func(r *rand.Rand, i int) bool {
			o := &r167Op{kind: r167Check, replica: (w + i) % len(ms), tenant: r167Tenants[r.IntN(2)],
				principal: r167Principals[r.IntN(3)], scope: r167Scopes[r.IntN(3)]}
			if r.IntN(3) != 0 {
				o.scope = sa.ScopeRead
			}
			call(o, func() { o.g, o.err = ms[o.replica].Check(ctx, o.tenant, o.principal, o.scope) })
			if o.err != nil && !errors.Is(o.err, sa.ErrNoActiveGrant) && !errors.Is(o.err, sa.ErrScopeNotGranted) {
				fail("check: %v", o.err)
				return false
			}
			return true
		})
	}
	granters.Wait()
	// A little more history after the last grant, then stop.
	end := done.Load() + 200
	for done.Load() < end && !t.Failed() {
		time.Sleep(100 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	h.verify(t)
}

// r167Grant is what the history says of one grant.
type r167GrantInfo struct {
	create  *r167Op
	g0      sa.Grant
	revokes []*r167Op // successful revocations: Revoke, or a bulk one that returned it
	extends []*r167Op // successful Extends, in real-time order (one extender)
	adds    []*r167Op // successful AddGrantees
}

// ends returns the ends grant gi may have at a call between inv and resp:
// the one the last Extend that returned before inv set (or the first),
// and those of Extends that overlap the call.
func (gi *r167GrantInfo) ends(inv, resp int64) []time.Time {
	out := []time.Time{gi.g0.ExpiresAt}
	for _, e := range gi.extends {
		switch {
		case e.resp < inv:
			out = out[:0]
			out = append(out, e.g.ExpiresAt)
		case e.inv < resp:
			out = append(out, e.g.ExpiresAt)
		}
	}
	return out
}

// revokedBefore reports whether a revocation of the grant returned before
// inv; revokingBy whether one began before resp.
func (gi *r167GrantInfo) revokedBefore(inv int64) *r167Op {
	for _, r := range gi.revokes {
		if r.resp < inv {
			return r
		}
	}
	return nil
}

func (gi *r167GrantInfo) revokingBy(resp int64) bool {
	for _, r := range gi.revokes {
		if r.inv < resp {
			return true
		}
	}
	return false
}

// covers reports whether the grant may cover principal at a call ending at
// resp (its first grantees, or a delegation begun before).
func (gi *r167GrantInfo) covers(principal string, resp int64) bool {
	if len(gi.g0.Grantees) == 0 || slices.Contains(gi.g0.Grantees, principal) {
		return true
	}
	for _, a := range gi.adds {
		if a.principal == principal && a.inv < resp {
			return true
		}
	}
	return false
}

// verify checks the history against the sequential specification.
func (h *r167History) verify(t *testing.T) {
	t.Helper()
	ops := slices.Clone(h.ops)
	sort.Slice(ops, func(i, j int) bool { return ops[i].inv < ops[j].inv })
	grants := map[uuid.UUID]*r167GrantInfo{}
	for _, o := range ops {
		if o.kind == r167Grant && o.err == nil {
			grants[o.g.ID] = &r167GrantInfo{create: o, g0: o.g}
		}
	}
	for _, o := range ops {
		switch {
		case o.kind == r167RevokeTenant || o.kind == r167RevokeTicket: // also what one that failed midway revoked
			for _, g := range o.gs {
				if gi := grants[g.ID]; gi != nil {
					gi.revokes = append(gi.revokes, o)
				}
			}
		case o.err != nil:
		case o.kind == r167Revoke:
			grants[o.id].revokes = append(grants[o.id].revokes, o)
		case o.kind == r167Extend:
			grants[o.id].extends = append(grants[o.id].extends, o)
		case o.kind == r167AddGrantee:
			grants[o.id].adds = append(grants[o.id].adds, o)
		}
	}
	for _, gi := range grants {
		sort.Slice(gi.extends, func(i, j int) bool { return gi.extends[i].resp < gi.extends[j].resp })
	}
	violations := 0
	report := func(o *r167Op, id uuid.UUID, format string, args ...any) {
		violations++
		if violations > 10 {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "VIOLATION: %s\n  call: %s\n  clock during call: ", fmt.Sprintf(format, args...), o)
		for _, v := range h.clock.values(o.inv, o.resp) {
			fmt.Fprintf(&b, "+%v ", v.Sub(r167Epoch))
		}
		b.WriteString("\n  trace of the grant:\n")
		for _, p := range ops {
			if p.inv > o.resp+50 {
				break
			}
			if p.id == id || p.g.ID == id || slices.ContainsFunc(p.gs, func(g sa.Grant) bool { return g.ID == id }) ||
				(p.kind == r167RevokeTenant || p.kind == r167RevokeTicket) && grants[id] != nil && p.tenant == grants[id].g0.TenantID {
				fmt.Fprintf(&b, "    %s\n", p)
			}
		}
		t.Error(b.String())
	}
	winners := map[uuid.UUID]int{}
	stats := map[string]int{}
	for _, o := range ops {
		vals := h.clock.values(o.inv, o.resp)
		switch o.kind {
		case r167Check:
			if o.err != nil {
				stats["check denied"]++
				// No grant was certainly active, covering and allowing the
				// scope for the whole call.
				for id, gi := range grants {
					if gi.create.resp > o.inv || gi.g0.TenantID != o.tenant || gi.revokingBy(o.resp) ||
						!(len(gi.g0.Grantees) == 0 || slices.Contains(gi.g0.Grantees, o.principal)) || !gi.g0.Allows(o.scope) {
						continue
					}
					inside := true
					for _, v := range vals {
						for _, e := range gi.ends(o.inv, o.resp) {
							if v.Before(gi.g0.StartsAt) || !v.Before(e) {
								inside = false
							}
						}
					}
					if inside {
						report(o, id, "a Check denied (%v) while grant %s was active, covering and allowing throughout", o.err, short(id))
					}
				}
				continue
			}
			stats["check allowed"]++
			id := o.g.ID
			gi := grants[id]
			if gi == nil || gi.create.inv > o.resp {
				report(o, id, "a Check allowed with grant %s, which no Grant call created before it returned", short(id))
				continue
			}
			if o.g.TenantID != o.tenant || gi.g0.TenantID != o.tenant {
				report(o, id, "a Check of tenant %s allowed with a grant of tenant %s", o.tenant, gi.g0.TenantID)
			}
			if !gi.covers(o.principal, o.resp) {
				report(o, id, "a Check of %s allowed with grant %s that never covered it", o.principal, short(id))
			}
			if !gi.g0.Allows(o.scope) {
				report(o, id, "a Check of scope %s allowed with grant %s of scopes %v", o.scope, short(id), gi.g0.Scopes)
			}
			if r := gi.revokedBefore(o.inv); r != nil {
				report(o, id, "a Check that began after %s of grant %s returned allowed with it", r.kind, short(id))
			}
			if ends := gi.ends(o.inv, o.resp); !slices.ContainsFunc(ends, o.g.ExpiresAt.Equal) {
				report(o, id, "a Check saw grant %s end at +%v, not one of the ends it may have had then %v", short(id), o.g.ExpiresAt.Sub(r167Epoch), ends)
			}
			if !slices.ContainsFunc(vals, func(v time.Time) bool { return !v.Before(o.g.StartsAt) && v.Before(o.g.ExpiresAt) }) {
				report(o, id, "a Check allowed with grant %s, active at no clock value of the call", short(id))
			}
		case r167Revoke:
			gi := grants[o.id]
			if o.err == nil {
				stats["revoke ok"]++
				winners[o.id]++
				if !o.g.RevokedAt.Before(o.g.ExpiresAt) || !slices.ContainsFunc(vals, o.g.RevokedAt.Equal) {
					report(o, o.id, "a Revoke succeeded on grant %s that was not active or scheduled at a clock value of the call", short(o.id))
				}
				continue
			}
			if !errors.Is(o.err, sa.ErrInvalidInput) {
				continue
			}
			stats["revoke refused"]++
			// Justified only if it ended: revoked by a call begun before,
			// or expired at a clock value of the call.
			if gi.revokingBy(o.resp) && !slices.Contains(gi.revokes, o) {
				continue
			}
			expired := false
			for _, v := range vals {
				for _, e := range gi.ends(o.inv, o.resp) {
					if !v.Before(e) {
						expired = true
					}
				}
			}
			if !expired {
				report(o, o.id, "a Revoke of grant %s was refused (%v) while it was active or scheduled and not revoked", short(o.id), o.err)
			}
		case r167RevokeTenant, r167RevokeTicket:
			if o.err != nil {
				continue
			}
			stats[string(o.kind)]++
			for _, g := range o.gs {
				winners[g.ID]++
				if g.TenantID != o.tenant || o.kind == r167RevokeTicket && g.TicketRef != o.ticket {
					report(o, g.ID, "%s revoked grant %s of tenant %s ticket %q", o.kind, short(g.ID), g.TenantID, g.TicketRef)
				}
			}
			// Every grant it selects that existed when it began ended by
			// the time it returned.
			for id, gi := range grants {
				if gi.create.resp > o.inv || gi.g0.TenantID != o.tenant || o.kind == r167RevokeTicket && gi.g0.TicketRef != o.ticket {
					continue
				}
				if gi.revokingBy(o.resp) {
					continue
				}
				expired := false
				for _, v := range vals {
					for _, e := range gi.ends(o.inv, o.resp) {
						if !v.Before(e) {
							expired = true
						}
					}
				}
				if !expired {
					report(o, id, "%s returned leaving grant %s (created before it began) unrevoked and unexpired", o.kind, short(id))
				}
			}
		case r167Extend:
			if o.err != nil {
				continue
			}
			stats["extend ok"]++
			gi := grants[o.id]
			if r := gi.revokedBefore(o.inv); r != nil {
				report(o, o.id, "an Extend of grant %s succeeded after %s of it returned", short(o.id), r.kind)
			}
			if !o.g.ExpiresAt.Equal(o.to) {
				report(o, o.id, "an Extend returned end +%v, asked +%v", o.g.ExpiresAt.Sub(r167Epoch), o.to.Sub(r167Epoch))
			}
		case r167AddGrantee:
			if o.err != nil {
				continue
			}
			stats["add grantee ok"]++
			gi := grants[o.id]
			if r := gi.revokedBefore(o.inv); r != nil {
				report(o, o.id, "an AddGrantee of grant %s succeeded after %s of it returned", short(o.id), r.kind)
			}
			if len(gi.g0.Grantees) == 0 {
				report(o, o.id, "an AddGrantee narrowed the open grant %s", short(o.id))
			}
		case r167Sweep:
			stats["sweep"]++
			stats["swept"] += o.n
		}
	}
	for id, n := range winners {
		if n > 1 {
			var o *r167Op
			for _, r := range grants[id].revokes {
				o = r
			}
			report(o, id, "grant %s was revoked %d times (concurrent revocations: exactly one must win)", short(id), n)
		}
	}
	t.Logf("%d grants, %d calls, %d clock steps: %v", len(grants), len(ops), len(h.clock.sets), stats)
	if violations > 10 {
		t.Errorf("%d violations in all (first 10 shown)", violations)
	}
	require.NotZero(t, stats["check allowed"], "the history has checks that allowed")
	require.NotZero(t, stats["check denied"], "and checks that denied")
	require.NotZero(t, stats["revoke ok"]+stats[string(r167RevokeTenant)], "and revocations")
}

// verifyR167Trail checks the audit trail of a finished history: at most
// one revocation event per grant and one per winning call, never both a
// revocation and an expiry, one expiry for every unrevoked grant once the
// clock passed every end and a last Sweep ran.
func verifyR167Trail(t *testing.T, m *sa.Manager, clock *r167Clock, h *r167History) {
	t.Helper()
	ctx := context.Background()
	clock.Advance(time.Hour)
	_, err := m.Sweep(ctx)
	require.NoError(t, err)
	revokedBy := map[uuid.UUID]int{}
	for _, o := range h.ops {
		if o.err != nil {
			continue
		}
		switch o.kind {
		case r167Revoke:
			revokedBy[o.id]++
		case r167RevokeTenant, r167RevokeTicket:
			for _, g := range o.gs {
				revokedBy[g.ID]++
			}
		}
	}
	evs, err := m.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantRevoked, sa.EventGrantExpired, sa.EventGrantCreated}})
	require.NoError(t, err)
	count := map[sa.EventType]map[uuid.UUID]int{}
	for _, e := range evs {
		if count[e.Type] == nil {
			count[e.Type] = map[uuid.UUID]int{}
		}
		count[e.Type][e.GrantID]++
	}
	for id := range count[sa.EventGrantCreated] {
		rv, ex := count[sa.EventGrantRevoked][id], count[sa.EventGrantExpired][id]
		require.LessOrEqual(t, rv, 1, "grant %s: one grant.revoked at most", id)
		require.Equal(t, revokedBy[id], rv, "grant %s: a grant.revoked event for each successful revocation", id)
		require.Equal(t, 1, rv+ex, "grant %s: revoked or expired, exactly once (revoked %d, expired %d)", id, rv, ex)
	}
}

// r167Seeds returns the seeds to run: fixed ones, or R167_SEEDS of them.
func r167Seeds(fixed ...uint64) []uint64 {
	if s := os.Getenv("R167_SEEDS"); s != "" {
		n, _ := strconv.Atoi(s)
		var out []uint64
		for i := 0; i < n; i++ {
			out = append(out, uint64(1000+i))
		}
		return out
	}
	return fixed
}

func newR167(t *testing.T, stores []sa.Store) ([]*sa.Manager, *r167Clock, *r167History) {
	t.Helper()
	h := &r167History{}
	clock := &r167Clock{seq: &h.seq, now: r167Epoch, init: r167Epoch}
	h.clock = clock
	var ms []*sa.Manager
	for _, s := range stores {
		m, err := sa.NewManager(s, sa.WithNow(clock.Now))
		require.NoError(t, err)
		t.Cleanup(func() { _ = m.Close() })
		ms = append(ms, m)
	}
	return ms, clock, h
}

// TestReview167LinearizableMemstore: one Manager, and two Managers
// (replicas) over one memstore.
func TestReview167LinearizableMemstore(t *testing.T) {
	for _, seed := range r167Seeds(1, 2, 3) {
		for _, replicas := range []int{1, 2} {
			t.Run(fmt.Sprintf("seed%d/replicas%d", seed, replicas), func(t *testing.T) {
				s := memstore.New()
				stores := []sa.Store{s}
				if replicas == 2 {
					stores = append(stores, s)
				}
				ms, clock, h := newR167(t, stores)
				runR167(t, ms, clock, h, seed, r167Config{grants: 60, checkers: 4})
				verifyR167Trail(t, ms[0], clock, h)
			})
		}
	}
}

// TestReview167LinearizableSQL: two Managers over one database (two pools)
// on SQLite, PostgreSQL and MariaDB.
func TestReview167LinearizableSQL(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			for _, seed := range r167Seeds(7) {
				t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
					a, b := sqlReplicas(t, d)
					ms, clock, h := newR167(t, []sa.Store{a, b})
					runR167(t, ms, clock, h, seed, r167Config{grants: 40, checkers: 3})
					verifyR167Trail(t, ms[1], clock, h)
				})
			}
		})
	}
}

// TestReview167ChangeRacesSweepAtTheEnd: a Revoke or an Extend on replica
// A reads its time (before the end) with the grant locked; then, before it
// commits, the clock passes the grant's end and replica B sweeps. The
// grant's fate must be one sequential history: revoked (no grant.expired,
// ever) or extended (no grant.expired at the old end; Check allows, a
// Revoke still succeeds), never both an expiry and a change.
func TestReview167ChangeRacesSweepAtTheEnd(t *testing.T) {
	for _, op := range []string{"revoke", "extend"} {
		t.Run(op, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, open replicas) {
				a, b := open(t)
				ctx := context.Background()
				clock := storetest.NewClock(r167Epoch)
				var armed atomic.Bool
				var sweepN int
				var sweepErr error
				var sweepDone chan struct{} // set by the hook, in Revoke's or Extend's goroutine
				var mb *sa.Manager
				hooked := func() time.Time {
					now := clock.Now()
					if armed.CompareAndSwap(true, false) {
						// Inside the change, the grant locked: the end
						// passes and B sweeps, up to 300 ms (a store that
						// makes it wait for the lock lets it finish after).
						clock.Set(now.Add(2 * time.Minute))
						done := make(chan struct{})
						sweepDone = done
						go func() {
							defer close(done)
							sweepN, sweepErr = mb.Sweep(ctx)
						}()
						select {
						case <-done:
						case <-time.After(300 * time.Millisecond):
						}
					}
					return now
				}
				ma, err := sa.NewManager(a, sa.WithNow(hooked))
				require.NoError(t, err)
				mb, err = sa.NewManager(b, sa.WithNow(clock.Now))
				require.NoError(t, err)
				g, err := ma.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Minute})
				require.NoError(t, err)
				_, err = mb.Sweep(ctx) // its start is recorded
				require.NoError(t, err)
				clock.Set(g.ExpiresAt.Add(-time.Millisecond))
				armed.Store(true)
				newEnd := g.ExpiresAt.Add(time.Hour)
				if op == "revoke" {
					_, err = ma.Revoke(ctx, g.ID, storetest.Customer, "")
				} else {
					_, err = ma.Extend(ctx, g.ID, newEnd, storetest.Customer)
				}
				require.NoError(t, err, "the change read a time before the end")
				require.False(t, armed.Load())
				<-sweepDone
				for i := 0; i < 20 && sweepN == 0 && sweepErr == nil; i++ {
					_, err = mb.Sweep(ctx) // the one B started may have waited and swept nothing
					require.NoError(t, err)
				}
				evs, err := mb.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventGrantExpired, sa.EventGrantRevoked, sa.EventGrantExtended}})
				require.NoError(t, err)
				var types []sa.EventType
				for _, e := range evs {
					types = append(types, e.Type)
				}
				if op == "revoke" {
					require.Equal(t, []sa.EventType{sa.EventGrantRevoked}, types, "revoked before its end: never expired")
					return
				}
				require.Equal(t, []sa.EventType{sa.EventGrantExtended}, types, "extended before its end: not expired at the old one")
				got, err := mb.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
				require.NoError(t, err)
				require.True(t, got.ExpiresAt.Equal(newEnd))
				_, err = mb.Revoke(ctx, g.ID, storetest.Customer, "")
				require.NoError(t, err, "the extended grant can still be revoked")
			})
		})
	}
}
