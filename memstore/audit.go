package memstore

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"slices"

	sa "github.com/supportaccess/supportaccess"
)

// Record implements supportaccess.Auditor: it appends e to its tenant's
// hash chain.
func (s *Store) Record(ctx context.Context, e sa.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appendEvents([]sa.Event{e})
	return nil
}

// appendEvents chains and stores events; s.mu must be held for writing.
func (s *Store) appendEvents(events []sa.Event) {
	for _, e := range events {
		e = cloneEvent(e)
		h := s.heads[e.TenantID]
		e.Seq = h.seq + 1
		e.Hash = e.ChainHash(h.hash)
		s.heads[e.TenantID] = head{seq: e.Seq, hash: e.Hash}
		s.events = append(s.events, e)
	}
}

// Events implements supportaccess.AuditLog.
func (s *Store) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var out []sa.Event
	for i := range s.events {
		if f.Match(&s.events[i]) {
			out = append(out, cloneEvent(s.events[i]))
		}
	}
	s.mu.RUnlock()
	slices.SortStableFunc(out, func(a, b sa.Event) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(a.TenantID, b.TenantID); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func cloneEvent(e sa.Event) sa.Event {
	if e.Attrs != nil {
		e.Attrs = maps.Clone(e.Attrs)
	}
	e.Before = bytes.Clone(e.Before)
	e.After = bytes.Clone(e.After)
	e.Hash = bytes.Clone(e.Hash)
	return e
}
