package memstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/stored"
)

var (
	_ sa.AuditChainReader = (*Store)(nil)
	_ sa.AuditPurger      = (*Store)(nil)
)

// auditState is the audit trail: one hash chain per tenant plus an index
// in time order. Its zero value is ready to use; Store.mu guards it.
type auditState struct {
	chains map[string]*chain
	// byTime holds every event ordered by Time, then TenantID, then Seq.
	byTime []*sa.Event
	// ids holds the ID of every event kept (purged ones leave it).
	ids map[uuid.UUID]struct{}
	// unchained skips hashing (benchmark baseline only, see export_test.go).
	unchained bool
}

// chain is one tenant's events ordered by Seq, and by Time (then Seq) for
// pages of one tenant in time order — which would otherwise scan every
// tenant's events from the cursor on, under the store's lock — with its
// head and purge checkpoint.
type chain struct {
	events     []*sa.Event
	byTime     []*sa.Event
	head       sa.ChainLink
	checkpoint sa.ChainLink
}

var byTime = sa.AuditFilter{Order: sa.AuditByTime}

// Record implements supportaccess.Auditor: it appends e to its tenant's
// hash chain, its Time in UTC to the microsecond. An event without a Time
// is refused (ErrInvalidInput), as in sqlstore; so is one whose ID is
// already recorded (ErrConflict: a retried Record adds no second copy).
func (s *Store) Record(ctx context.Context, e sa.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkEvents([]sa.Event{e}); err != nil {
		return err
	}
	s.appendEvents([]sa.Event{e})
	return nil
}

// checkEvents refuses events of which one has no Time (kept to the
// microsecond, see appendEvents), a field wider than the stores keep (see
// stored.CheckEvent) or shares its ID with another of them
// (ErrInvalidInput), or has the ID of an event already kept (ErrConflict),
// as Record and every SQL store's write do: the write methods call it,
// with s.mu held, before they change anything.
func (s *Store) checkEvents(events []sa.Event) error {
	for i := range events {
		e := &events[i]
		if e.Time.UTC().Truncate(time.Microsecond).IsZero() {
			return fmt.Errorf("memstore: event %s has no Time: %w", e.ID, sa.ErrInvalidInput)
		}
		if err := stored.CheckEvent(e); err != nil {
			return fmt.Errorf("memstore: %w", err)
		}
		if _, dup := s.audit.ids[e.ID]; dup {
			return fmt.Errorf("memstore: event %s is already recorded: %w", e.ID, sa.ErrConflict)
		}
	}
	if err := stored.DistinctEventIDs(events); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	return nil
}

// appendEvents chains and stores events; s.mu must be held for writing.
func (s *Store) appendEvents(events []sa.Event) {
	a := &s.audit
	if len(events) > 0 && a.chains == nil {
		a.chains = make(map[string]*chain)
		a.ids = make(map[uuid.UUID]struct{})
	}
	for _, e := range events {
		e = e.Clone()
		// UTC to the microsecond, as sqlstore keeps it: what the chain
		// hash covers and a cursor carries (a cursor of a nanosecond time
		// would sort before its own event).
		e.Time = e.Time.UTC().Truncate(time.Microsecond)
		c := a.chains[e.TenantID]
		if c == nil {
			c = &chain{}
			a.chains[e.TenantID] = c
		}
		e.Seq = c.head.Seq + 1
		if a.unchained {
			e.Hash = nil
		} else {
			e.Hash = e.ChainHash(c.head.Hash)
		}
		c.head = sa.ChainLink{Seq: e.Seq, Hash: e.Hash}
		p := &e
		a.ids[e.ID] = struct{}{}
		c.events = append(c.events, p)
		a.byTime = insertByTime(a.byTime, p)
		c.byTime = insertByTime(c.byTime, p)
	}
}

// insertByTime adds p to the time index idx: at the end when events
// arrive in time order (the usual case), else after a binary search,
// moving the events that sort after it.
func insertByTime(idx []*sa.Event, p *sa.Event) []*sa.Event {
	n := len(idx)
	if n == 0 || byTime.Compare(idx[n-1], p) < 0 {
		return append(idx, p)
	}
	i, _ := slices.BinarySearchFunc(idx, p, byTime.Compare)
	return slices.Insert(idx, i, p)
}

// Events implements supportaccess.AuditLog. Both orders seek to f.After
// (or f.Since) by binary search, so a page costs O(log n + what it scans).
func (s *Store) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := stored.CheckFilterTypes(f); err != nil {
		return nil, fmt.Errorf("memstore: events: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := &s.audit
	var out []sa.Event
	add := func(e *sa.Event) bool {
		if f.Match(e) {
			out = append(out, e.Clone())
		}
		return f.Limit <= 0 || len(out) < f.Limit // a negative Limit as 0, as the SQL stores read it
	}
	if f.Order == sa.AuditByChain {
		var tenants []string
		if f.TenantID != "" {
			tenants = []string{f.TenantID}
		} else {
			tenants = slices.Sorted(maps.Keys(a.chains))
		}
		for _, t := range tenants {
			c := a.chains[t]
			if c == nil || f.After != nil && t < f.After.TenantID {
				continue
			}
			i := 0
			if f.After != nil && t == f.After.TenantID {
				i, _ = slices.BinarySearchFunc(c.events, f.After.Seq+1, func(e *sa.Event, seq int64) int {
					return cmp.Compare(e.Seq, seq)
				})
			}
			for _, e := range c.events[i:] {
				if !add(e) {
					return out, nil
				}
			}
		}
		return out, nil
	}
	idx := a.byTime
	if f.TenantID != "" { // that tenant's index: the same order, its events only
		idx = nil
		if c := a.chains[f.TenantID]; c != nil {
			idx = c.byTime
		}
	}
	i := 0
	if f.After != nil {
		at := &sa.Event{Time: f.After.Time, TenantID: f.After.TenantID, Seq: f.After.Seq}
		i, _ = slices.BinarySearchFunc(idx, at, func(e, at *sa.Event) int {
			if f.Compare(e, at) <= 0 {
				return -1 // e is not after the cursor
			}
			return 1
		})
	}
	if !f.Since.IsZero() {
		j, _ := slices.BinarySearchFunc(idx, f.Since, func(e *sa.Event, t time.Time) int {
			return e.Time.Compare(t)
		})
		i = max(i, j)
	}
	for _, e := range idx[i:] {
		if !f.Until.IsZero() && !e.Time.Before(f.Until) {
			break
		}
		if !add(e) {
			break
		}
	}
	return out, nil
}

// AuditChain implements supportaccess.AuditChainReader.
func (s *Store) AuditChain(ctx context.Context, tenantID string) (sa.AuditChainState, error) {
	if err := ctx.Err(); err != nil {
		return sa.AuditChainState{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.audit.chains[tenantID]
	if c == nil {
		return sa.AuditChainState{}, nil
	}
	return sa.AuditChainState{Checkpoint: cloneLink(c.checkpoint), Head: cloneLink(c.head)}, nil
}

// PurgeAudit implements supportaccess.AuditPurger.
func (s *Store) PurgeAudit(ctx context.Context, tenantID string, before time.Time, event func(sa.AuditPurge) (sa.Event, error)) (sa.AuditPurge, error) {
	if err := ctx.Err(); err != nil {
		return sa.AuditPurge{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.audit.chains[tenantID]
	if c == nil {
		return sa.AuditPurge{}, nil
	}
	res := sa.AuditPurge{Previous: cloneLink(c.checkpoint)}
	k := 0
	for k < len(c.events) && c.events[k].Time.Before(before) {
		k++
	}
	if k == 0 {
		return res, nil
	}
	last := c.events[k-1]
	res.Deleted = int64(k)
	res.Checkpoint = sa.ChainLink{Seq: last.Seq, Hash: bytes.Clone(last.Hash)}
	ev, err := event(res)
	if err == nil {
		err = s.checkEvents([]sa.Event{ev})
	}
	if err != nil {
		return sa.AuditPurge{}, err
	}
	if err := ctx.Err(); err != nil {
		return sa.AuditPurge{}, err
	}
	gone := make(map[*sa.Event]bool, k)
	for _, e := range c.events[:k] {
		gone[e] = true
		delete(s.audit.ids, e.ID)
	}
	c.events = slices.Delete(c.events, 0, k)
	s.audit.byTime = slices.DeleteFunc(s.audit.byTime, func(e *sa.Event) bool { return gone[e] })
	c.byTime = slices.DeleteFunc(c.byTime, func(e *sa.Event) bool { return gone[e] })
	c.checkpoint = cloneLink(res.Checkpoint)
	s.appendEvents([]sa.Event{ev})
	return res, nil
}

func cloneLink(l sa.ChainLink) sa.ChainLink {
	l.Hash = bytes.Clone(l.Hash)
	return l
}

// resort restores both orders after a test changed events in place.
func (a *auditState) resort() {
	for _, c := range a.chains {
		slices.SortStableFunc(c.events, func(x, y *sa.Event) int { return cmp.Compare(x.Seq, y.Seq) })
		slices.SortStableFunc(c.byTime, byTime.Compare)
	}
	slices.SortStableFunc(a.byTime, byTime.Compare)
}
