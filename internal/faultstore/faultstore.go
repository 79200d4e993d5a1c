// Package faultstore wraps a supportaccess Store and Auditor so that tests
// can make their calls fail in the ways real backends fail:
//
//   - Fail: the call returns an error without reaching the wrapped store
//     (the database is down, the connection broke before the request);
//   - Hang: the call blocks until its context ends and returns the
//     context's error (a lock that is never released, a dead network peer);
//   - LostReply: the call reaches the wrapped store, whose write commits,
//     and then returns an error (the connection broke after COMMIT, before
//     the answer arrived);
//   - LostReplyHang: the call reaches the wrapped store and then blocks
//     until its context ends (the answer never arrives).
//
// Faults are set per operation (Op) and hold for every call or for the
// next n calls. A Store with no fault set behaves exactly like the store it
// wraps. The package is for tests only; RunProperties (properties.go) is
// the fault-injection suite that memstore and sqlstore run.
package faultstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
)

// ErrInjected is the error of an injected Fail or LostReply.
var ErrInjected = errors.New("faultstore: injected fault")

// HangLimit bounds a hanging call whose context never ends (one detached
// with context.WithoutCancel, say): it returns ErrHungUp after that long
// instead of hanging the test binary. Any caller that waits that long has
// broken the deadline promise already.
const HangLimit = 2 * time.Second

// ErrHungUp is returned by a hanging call whose context did not end within
// HangLimit.
var ErrHungUp = errors.New("faultstore: hung without a context deadline")

// Mode is what a fault does to a call.
type Mode int

// Fault modes.
const (
	// Pass calls the wrapped method unchanged (no fault).
	Pass Mode = iota
	// Fail returns an error wrapping ErrInjected without calling the
	// wrapped method.
	Fail
	// Hang blocks until the context ends and returns its error, without
	// calling the wrapped method.
	Hang
	// LostReply calls the wrapped method (a write commits) and returns an
	// error wrapping ErrInjected instead of its result.
	LostReply
	// LostReplyHang calls the wrapped method (a write commits), then blocks
	// until the context ends and returns its error.
	LostReplyHang
)

// Modes lists the fault modes (Pass excluded).
var Modes = []Mode{Fail, Hang, LostReply, LostReplyHang}

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	case Hang:
		return "hang"
	case LostReply:
		return "lost_reply"
	case LostReplyHang:
		return "lost_reply_hang"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Reaches reports whether a call with this fault reaches the wrapped
// method (and its write, if any, commits).
func (m Mode) Reaches() bool { return m == Pass || m == LostReply || m == LostReplyHang }

// Hangs reports whether a call with this fault blocks until its context
// ends.
func (m Mode) Hangs() bool { return m == Hang || m == LostReplyHang }

// Op names a method of the wrapped store.
type Op string

// Operations of Store (and Record of Auditor).
const (
	CreateGrant      Op = "CreateGrant"
	GetGrant         Op = "GetGrant"
	ListGrants       Op = "ListGrants"
	FindActiveGrant  Op = "FindActiveGrant"
	UpdateGrant      Op = "UpdateGrant"
	ClaimTransitions Op = "ClaimTransitions"
	Record           Op = "Record"
	Events           Op = "Events"
	AuditChain       Op = "AuditChain"
)

// Ops lists every operation.
var Ops = []Op{CreateGrant, GetGrant, ListGrants, FindActiveGrant, UpdateGrant, ClaimTransitions, Record, Events, AuditChain}

// rule is the fault set for one operation.
type rule struct {
	mode Mode
	left int // calls still affected; < 0: every call
}

// faults is the fault table shared by Store and Auditor.
type faults struct {
	mu    sync.Mutex
	rules map[Op]rule
	calls map[Op]int
	hits  map[Op]int
}

// set installs mode for op for the next n calls (every call when n <= 0).
func (f *faults) set(op Op, mode Mode, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rules == nil {
		f.rules = make(map[Op]rule)
	}
	if n <= 0 {
		n = -1
	}
	if mode == Pass {
		delete(f.rules, op)
		return
	}
	f.rules[op] = rule{mode: mode, left: n}
}

func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// take counts a call of op and returns the fault that applies to it.
func (f *faults) take(op Op) Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls, f.hits = make(map[Op]int), make(map[Op]int)
	}
	f.calls[op]++
	r, ok := f.rules[op]
	if !ok {
		return Pass
	}
	if r.left > 0 {
		r.left--
		if r.left == 0 {
			delete(f.rules, op)
		} else {
			f.rules[op] = r
		}
	}
	f.hits[op]++
	return r.mode
}

func (f *faults) count(op Op, hits bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if hits {
		return f.hits[op]
	}
	return f.calls[op]
}

// do runs call under the fault set for op. In the lost-reply modes the
// call gets ctx without its deadline: the write reaches the store and
// commits by definition of the mode, however slow the database is; only
// the reply is lost.
func do[T any](ctx context.Context, f *faults, op Op, call func(context.Context) (T, error)) (T, error) {
	var zero T
	mode := f.take(op)
	switch mode {
	case Pass:
		return call(ctx)
	case Fail:
		return zero, fmt.Errorf("%s: %w", op, ErrInjected)
	case LostReply:
		_, _ = call(context.WithoutCancel(ctx))
		return zero, fmt.Errorf("%s (lost reply): %w", op, ErrInjected)
	}
	if mode == LostReplyHang {
		_, _ = call(context.WithoutCancel(ctx))
	}
	limit := time.NewTimer(HangLimit)
	defer limit.Stop()
	select {
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-limit.C:
		return zero, fmt.Errorf("%s: %w", op, ErrHungUp)
	}
}

// Inner is what Store wraps: a Store that is also its own Auditor and
// AuditLog, as the bundled stores are.
type Inner interface {
	sa.Store
	sa.Auditor
	sa.AuditLog
}

// Store is a supportaccess.Store, Auditor, AuditLog and AuditChainReader
// that forwards to the store it wraps, applying the faults set with Set.
// It is safe for concurrent use.
type Store struct {
	inner Inner
	f     faults
}

var (
	_ sa.Store            = (*Store)(nil)
	_ sa.Auditor          = (*Store)(nil)
	_ sa.AuditLog         = (*Store)(nil)
	_ sa.AuditChainReader = (*Store)(nil)
)

// New wraps inner, with no fault set.
func New(inner Inner) *Store { return &Store{inner: inner} }

// Inner returns the wrapped store (to inspect it without faults).
func (s *Store) Inner() Inner { return s.inner }

// Set makes every following call of op behave as mode (Pass removes the
// fault).
func (s *Store) Set(op Op, mode Mode) { s.f.set(op, mode, 0) }

// SetN makes the next n calls of op behave as mode.
func (s *Store) SetN(op Op, mode Mode, n int) { s.f.set(op, mode, n) }

// Clear removes every fault.
func (s *Store) Clear() { s.f.clear() }

// Calls returns how many times op was called.
func (s *Store) Calls(op Op) int { return s.f.count(op, false) }

// Hits returns how many calls of op a fault affected.
func (s *Store) Hits(op Op) int { return s.f.count(op, true) }

type none struct{}

// CreateGrant implements supportaccess.Store.
func (s *Store) CreateGrant(ctx context.Context, g sa.Grant, events []sa.Event) error {
	_, err := do(ctx, &s.f, CreateGrant, func(ctx context.Context) (none, error) { return none{}, s.inner.CreateGrant(ctx, g, events) })
	return err
}

// GetGrant implements supportaccess.Store.
func (s *Store) GetGrant(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
	return do(ctx, &s.f, GetGrant, func(ctx context.Context) (sa.Grant, error) { return s.inner.GetGrant(ctx, id) })
}

// ListGrants implements supportaccess.Store.
func (s *Store) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	return do(ctx, &s.f, ListGrants, func(ctx context.Context) ([]sa.Grant, error) { return s.inner.ListGrants(ctx, f, now) })
}

// FindActiveGrant implements supportaccess.Store.
func (s *Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	return do(ctx, &s.f, FindActiveGrant, func(ctx context.Context) (sa.Grant, error) {
		return s.inner.FindActiveGrant(ctx, tenantID, principal, scope, now)
	})
}

// UpdateGrant implements supportaccess.Store.
func (s *Store) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	return do(ctx, &s.f, UpdateGrant, func(ctx context.Context) (sa.Grant, error) { return s.inner.UpdateGrant(ctx, id, change) })
}

// ClaimTransitions implements supportaccess.Store.
func (s *Store) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	return do(ctx, &s.f, ClaimTransitions, func(ctx context.Context) ([]sa.Grant, error) {
		return s.inner.ClaimTransitions(ctx, t, now, limit, events)
	})
}

// Record implements supportaccess.Auditor.
func (s *Store) Record(ctx context.Context, e sa.Event) error {
	_, err := do(ctx, &s.f, Record, func(ctx context.Context) (none, error) { return none{}, s.inner.Record(ctx, e) })
	return err
}

// Events implements supportaccess.AuditLog.
func (s *Store) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	return do(ctx, &s.f, Events, func(ctx context.Context) ([]sa.Event, error) { return s.inner.Events(ctx, f) })
}

// AuditChain implements supportaccess.AuditChainReader: it asks the
// wrapped store when that is a reader too; otherwise it reports the last
// stored event of the tenant as the head (and no purge checkpoint), which
// is what such a store's chain is.
func (s *Store) AuditChain(ctx context.Context, tenantID string) (sa.AuditChainState, error) {
	return do(ctx, &s.f, AuditChain, func(ctx context.Context) (sa.AuditChainState, error) {
		if cr, ok := s.inner.(sa.AuditChainReader); ok {
			return cr.AuditChain(ctx, tenantID)
		}
		evs, err := s.inner.Events(ctx, sa.AuditFilter{TenantID: tenantID, Order: sa.AuditByChain})
		if err != nil || len(evs) == 0 {
			return sa.AuditChainState{}, err
		}
		last := evs[len(evs)-1]
		return sa.AuditChainState{Head: sa.ChainLink{Seq: last.Seq, Hash: last.Hash}}, nil
	})
}

// Auditor is a supportaccess.Auditor with injectable faults, for
// WithAuditor(MultiAuditor(store, auditor)): an audit destination besides
// the store (a SIEM, a log shipper) that fails, hangs or loses its reply.
// Events it accepts are kept (see Recorded). It is safe for concurrent use.
type Auditor struct {
	inner sa.Auditor
	f     faults

	mu       sync.Mutex
	recorded []sa.Event
}

var _ sa.Auditor = (*Auditor)(nil)

// NewAuditor wraps inner (nil: a destination that only keeps the events),
// with no fault set.
func NewAuditor(inner sa.Auditor) *Auditor { return &Auditor{inner: inner} }

// Set makes every following Record behave as mode.
func (a *Auditor) Set(mode Mode) { a.f.set(Record, mode, 0) }

// SetN makes the next n Records behave as mode.
func (a *Auditor) SetN(mode Mode, n int) { a.f.set(Record, mode, n) }

// Clear removes the fault.
func (a *Auditor) Clear() { a.f.clear() }

// Calls returns how many times Record was called.
func (a *Auditor) Calls() int { return a.f.count(Record, false) }

// Recorded returns the events that reached the destination (those of
// LostReply calls included).
func (a *Auditor) Recorded() []sa.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]sa.Event(nil), a.recorded...)
}

// Record implements supportaccess.Auditor.
func (a *Auditor) Record(ctx context.Context, e sa.Event) error {
	_, err := do(ctx, &a.f, Record, func(ctx context.Context) (none, error) {
		if a.inner != nil {
			if err := a.inner.Record(ctx, e); err != nil {
				return none{}, err
			}
		}
		a.mu.Lock()
		a.recorded = append(a.recorded, e)
		a.mu.Unlock()
		return none{}, nil
	})
	return err
}
