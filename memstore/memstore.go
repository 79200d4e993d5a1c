// Package memstore is an in-memory supportaccess.Store, Auditor and
// AuditLog for tests and single-process applications. Nothing survives a
// restart.
package memstore

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/clone"
	"github.com/supportaccess/supportaccess/internal/stored"
)

// Store keeps grants and audit events in memory. It is safe for concurrent
// use. Grants are indexed by tenant, so Check looks only at the grants of
// the tenant asked for. The zero value is not usable; call New.
type Store struct {
	mu       sync.RWMutex
	grants   map[uuid.UUID]*entry
	byTenant map[string][]checkRec // index.go
	due      [2]dueQueue           // due.go: started, expired
	audit    auditState            // audit.go
	// requests and hook tasks (requests.go, hooks.go), created on first use
	requests map[uuid.UUID]*sa.AccessRequest
	tasks    map[uuid.UUID]*sa.HookTask
}

type entry struct {
	g       sa.Grant // replaced under mu (its scopes may live in scopes below)
	pos     int      // index of the entry's checkRec in its tenant
	started bool     // TransitionStarted claimed
	expired bool     // TransitionExpired claimed
	// scopes backs g.Scopes when they fit, so that the grant Check copies
	// and its scopes share one allocation (and one page).
	scopes [2]sa.Scope
	// queued and queuedAt: the last due time queued per transition
	// (started, expired), see schedule.
	queued   [2]bool
	queuedAt [2]time.Time
}

// newEntry returns an entry holding a deep copy of g.
func newEntry(g sa.Grant) *entry {
	e := &entry{}
	e.set(g)
	return e
}

// set stores a deep copy of g in e, keeping e's copy of an unchanged
// tenant ID (see Store.index).
func (e *entry) set(g sa.Grant) {
	tenant := e.g.TenantID
	e.g = g
	if g.TenantID == tenant {
		e.g.TenantID = tenant
	}
	// UTC microseconds, as the SQL stores keep them.
	stored.Grant(&e.g)
	e.g.Grantees = clone.Slice(g.Grantees)
	if g.Scopes != nil && len(g.Scopes) <= len(e.scopes) {
		e.scopes = [2]sa.Scope{}
		n := copy(e.scopes[:], g.Scopes)
		e.g.Scopes = e.scopes[:n:n]
	} else {
		e.g.Scopes = clone.Slice(g.Scopes)
	}
}

var (
	_ sa.Store    = (*Store)(nil)
	_ sa.Auditor  = (*Store)(nil)
	_ sa.AuditLog = (*Store)(nil)
)

// New returns an empty Store.
func New() *Store {
	return &Store{
		grants:   make(map[uuid.UUID]*entry),
		byTenant: make(map[string][]checkRec),
	}
}

// CreateGrant implements supportaccess.Store.
func (s *Store) CreateGrant(ctx context.Context, g sa.Grant, events []sa.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := stored.CheckGrant(&g); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.grants[g.ID]; dup {
		return fmt.Errorf("memstore: grant %s: %w", g.ID, sa.ErrConflict)
	}
	if err := s.checkEvents(events); err != nil {
		return err
	}
	e := newEntry(g)
	s.grants[g.ID] = e
	s.index(e)
	s.appendEvents(events)
	return nil
}

// GetGrant implements supportaccess.Store.
func (s *Store) GetGrant(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
	if err := ctx.Err(); err != nil {
		return sa.Grant{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.grants[id]
	if !ok {
		return sa.Grant{}, fmt.Errorf("memstore: grant %s: %w", id, sa.ErrNotFound)
	}
	return e.g.Clone(), nil
}

// ListGrants implements supportaccess.Store.
func (s *Store) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, st := range f.Statuses {
		if !st.Valid() {
			return nil, fmt.Errorf("memstore: list grants: %w: unknown status %q", sa.ErrInvalidInput, string(st))
		}
	}
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("memstore: list grants: %w", err)
	}
	s.mu.RLock()
	var out []sa.Grant
	add := func(e *entry) {
		if f.TicketRef != "" && e.g.TicketRef != f.TicketRef {
			return
		}
		if len(f.Statuses) > 0 && !slices.Contains(f.Statuses, e.g.Status(now)) {
			return
		}
		out = append(out, e.g.Clone())
	}
	if f.TenantID != "" {
		for _, r := range s.byTenant[f.TenantID] {
			add(r.e)
		}
	} else {
		for _, e := range s.grants {
			add(e)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b sa.Grant) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(b.ID[:], a.ID[:])
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// FindActiveGrant implements supportaccess.Store with the choice of
// supportaccess.GrantSelector, made on the tenant's compact Check index
// (index.go). It allocates only the copy of the returned grant's slices.
func (s *Store) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (g sa.Grant, err error) {
	if err := ctx.Err(); err != nil {
		return sa.Grant{}, err
	}
	s.mu.RLock()
	e, err := selectActive(s.byTenant[tenantID], principal, scope, now)
	if err != nil {
		s.mu.RUnlock()
		return sa.Grant{}, err
	}
	// Copy straight into the result (Clone would copy the struct twice
	// more), then give it its own slices — under the lock: UpdateGrant
	// rewrites the entry's inline scopes in place.
	g = e.g
	g.Grantees, g.Scopes = clone.Slice(g.Grantees), clone.Slice(g.Scopes)
	s.mu.RUnlock()
	return g, nil
}

// UpdateGrant implements supportaccess.Store.
func (s *Store) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	if err := ctx.Err(); err != nil {
		return sa.Grant{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.grants[id]
	if !ok {
		return sa.Grant{}, fmt.Errorf("memstore: grant %s: %w", id, sa.ErrNotFound)
	}
	if e.expired {
		return sa.Grant{}, fmt.Errorf("memstore: grant %s: %w: its expiry is recorded", id, sa.ErrInvalidInput)
	}
	g := e.g.Clone()
	events, err := change(&g)
	if err != nil {
		return sa.Grant{}, err
	}
	if err := stored.CheckGrantUpdate(&e.g, &g); err != nil {
		return sa.Grant{}, fmt.Errorf("memstore: update: %w", err)
	}
	if err := s.checkEvents(events); err != nil {
		return sa.Grant{}, err
	}
	if err := ctx.Err(); err != nil {
		return sa.Grant{}, err
	}
	e.set(g)
	s.reindex(e)
	s.appendEvents(events)
	return e.g.Clone(), nil
}

// ClaimTransitions implements supportaccess.Store. The store's lock makes
// the claim atomic.
func (s *Store) ClaimTransitions(ctx context.Context, t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("memstore: claim limit %d: %w", limit, sa.ErrInvalidInput)
	}
	if t != sa.TransitionStarted && t != sa.TransitionExpired {
		return nil, fmt.Errorf("memstore: claim transitions: %w: unknown transition %v", sa.ErrInvalidInput, t)
	}
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("memstore: claim transitions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claimLocked(t, now, limit, events)
}

// claimLocked claims due transitions in order of due time, then ID, from
// the due queues (due.go), with the events events returns for them; if it
// fails or panics, nothing is claimed (the grants go back to their queue). s.mu must
// be held for writing.
func (s *Store) claimLocked(t sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	// Each grant is marked as it is taken, so that another queued item of
	// the same grant and due time (its time changed and changed back) is
	// stale for the rest of the batch.
	mark := func(e *entry, claimed bool) {
		if t == sa.TransitionStarted {
			e.started = claimed
		} else {
			e.expired = claimed
		}
	}
	var es []*entry
	// waiting are due expiries of grants whose start is not claimed: an
	// expiry is claimed only once the start is (as on every store), and
	// they go back to their queue.
	var waiting []*entry
	var evs []sa.Event
	claimed := false
	defer func() {
		requeue := waiting
		if !claimed {
			// events failed or panicked (it runs host code: the Manager's
			// extra auditors): the grants go back, unclaimed.
			for _, e := range es {
				mark(e, false)
			}
			requeue = append(requeue, es...)
		}
		for _, e := range requeue {
			at, _ := dueKey(e, t)
			heap.Push(&s.due[t-sa.TransitionStarted], dueItem{at: at, e: e})
		}
	}()
	for len(es) < limit {
		e := s.popDue(t, now)
		if e == nil {
			break
		}
		if t == sa.TransitionExpired && !e.started {
			waiting = append(waiting, e)
			continue
		}
		mark(e, true)
		es = append(es, e)
		if events == nil {
			continue
		}
		ev, err := events(e.g.Clone())
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev...)
	}
	if err := s.checkEvents(evs); err != nil {
		return nil, err
	}
	claimed = true
	out := make([]sa.Grant, 0, len(es))
	for _, e := range es {
		out = append(out, e.g.Clone())
	}
	s.appendEvents(evs)
	return out, nil
}
