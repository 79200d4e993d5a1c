package memstore

import (
	"fmt"
	"slices"

	sa "github.com/supportaccess/supportaccess"
)

// Test hooks. They change stored audit events behind the store's back, as
// someone with access to the process's memory would, and exist only in
// this package's test binary, so production code cannot call them.

// find returns the tenant's event with the given Seq.
func find(s *Store, tenantID string, seq int64) (*sa.Event, error) {
	if c := s.audit.chains[tenantID]; c != nil {
		for _, e := range c.events {
			if e.Seq == seq {
				return e, nil
			}
		}
	}
	return nil, fmt.Errorf("memstore: no event %d of tenant %q", seq, tenantID)
}

// TamperReason overwrites the Reason of a stored event.
func TamperReason(s *Store, tenantID string, seq int64, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := find(s, tenantID, seq)
	if err != nil {
		return err
	}
	e.Reason = reason
	return nil
}

// TamperDelete removes a stored event (the head stays).
func TamperDelete(s *Store, tenantID string, seq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := find(s, tenantID, seq)
	if err != nil {
		return err
	}
	c := s.audit.chains[tenantID]
	isE := func(x *sa.Event) bool { return x == e }
	c.events = slices.DeleteFunc(c.events, isE)
	c.byTime = slices.DeleteFunc(c.byTime, isE)
	s.audit.byTime = slices.DeleteFunc(s.audit.byTime, isE)
	return nil
}

// TamperSeq changes the sequence number of a stored event to newSeq, which
// no event of the tenant has.
func TamperSeq(s *Store, tenantID string, seq, newSeq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := find(s, tenantID, newSeq); err == nil {
		return fmt.Errorf("memstore: seq %d of tenant %q is taken", newSeq, tenantID)
	}
	e, err := find(s, tenantID, seq)
	if err != nil {
		return err
	}
	e.Seq = newSeq
	s.audit.resort()
	return nil
}

// TamperInsert stores e as given (Seq and Hash included) without touching
// the chain's head.
func TamperInsert(s *Store, e sa.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e = e.Clone()
	c := s.audit.chains[e.TenantID]
	if c == nil {
		return fmt.Errorf("memstore: no chain of tenant %q", e.TenantID)
	}
	c.events = append(c.events, &e)
	c.byTime = append(c.byTime, &e)
	s.audit.byTime = append(s.audit.byTime, &e)
	s.audit.resort()
	return nil
}

// SetChained turns hashing of new events on (the default) or off; off is
// the baseline of BenchmarkRecord only.
func SetChained(s *Store, on bool) {
	s.mu.Lock()
	s.audit.unchained = !on
	s.mu.Unlock()
}

// TamperCheckpoint sets the tenant's purge checkpoint (its events stay).
func TamperCheckpoint(s *Store, tenantID string, cp sa.ChainLink) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.audit.chains[tenantID]
	if c == nil {
		return fmt.Errorf("memstore: no chain of tenant %q", tenantID)
	}
	c.checkpoint = cloneLink(cp)
	return nil
}
