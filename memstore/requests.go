package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/stored"
)

var _ sa.RequestStore = (*Store)(nil)

// CreateRequest implements supportaccess.RequestStore.
func (s *Store) CreateRequest(ctx context.Context, r sa.AccessRequest, events []sa.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := stored.CheckRequest(&r); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.requests[r.ID]; dup {
		return fmt.Errorf("memstore: request %s: %w", r.ID, sa.ErrConflict)
	}
	if err := s.checkEvents(events); err != nil {
		return err
	}
	if s.requests == nil {
		s.requests = make(map[uuid.UUID]*sa.AccessRequest)
	}
	c := r.Clone()
	stored.Request(&c)
	s.requests[r.ID] = &c
	s.appendEvents(events)
	return nil
}

// GetRequest implements supportaccess.RequestStore.
func (s *Store) GetRequest(ctx context.Context, id uuid.UUID) (sa.AccessRequest, error) {
	if err := ctx.Err(); err != nil {
		return sa.AccessRequest{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.requests[id]
	if !ok {
		return sa.AccessRequest{}, fmt.Errorf("memstore: request %s: %w", id, sa.ErrNotFound)
	}
	return r.Clone(), nil
}

// ListRequests implements supportaccess.RequestStore.
func (s *Store) ListRequests(ctx context.Context, f sa.RequestFilter, now time.Time) ([]sa.AccessRequest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, st := range f.Statuses {
		if !st.Valid() {
			return nil, fmt.Errorf("memstore: list requests: %w: unknown status %q", sa.ErrInvalidInput, string(st))
		}
	}
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("memstore: list requests: %w", err)
	}
	s.mu.RLock()
	var out []sa.AccessRequest
	for _, r := range s.requests {
		if f.Match(r, now) {
			out = append(out, r.Clone())
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b sa.AccessRequest) int {
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

// UpdateRequest implements supportaccess.RequestStore.
func (s *Store) UpdateRequest(ctx context.Context, id uuid.UUID, change func(*sa.AccessRequest) ([]sa.Event, error)) (sa.AccessRequest, error) {
	r, _, err := s.changeRequest(ctx, id, func(r *sa.AccessRequest) (*sa.Grant, []sa.Event, error) {
		evs, err := change(r)
		return nil, evs, err
	})
	return r, err
}

// ApproveRequest implements supportaccess.RequestStore.
func (s *Store) ApproveRequest(ctx context.Context, id uuid.UUID, approve func(*sa.AccessRequest) (sa.Grant, []sa.Event, error)) (sa.AccessRequest, sa.Grant, error) {
	r, g, err := s.changeRequest(ctx, id, func(r *sa.AccessRequest) (*sa.Grant, []sa.Event, error) {
		g, evs, err := approve(r)
		return &g, evs, err
	})
	if err != nil {
		return sa.AccessRequest{}, sa.Grant{}, err
	}
	return r, *g, nil
}

// changeRequest runs change on a copy of the request under the lock and
// stores the request, the grant change may return and the events, or
// nothing.
func (s *Store) changeRequest(ctx context.Context, id uuid.UUID, change func(*sa.AccessRequest) (*sa.Grant, []sa.Event, error)) (sa.AccessRequest, *sa.Grant, error) {
	if err := ctx.Err(); err != nil {
		return sa.AccessRequest{}, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.requests[id]
	if !ok {
		return sa.AccessRequest{}, nil, fmt.Errorf("memstore: request %s: %w", id, sa.ErrNotFound)
	}
	r := cur.Clone()
	g, events, err := change(&r)
	if err != nil {
		return sa.AccessRequest{}, nil, err
	}
	if err := stored.CheckRequestUpdate(cur, &r); err != nil {
		return sa.AccessRequest{}, nil, fmt.Errorf("memstore: update: %w", err)
	}
	if g != nil {
		if err := stored.CheckGrant(g); err != nil {
			return sa.AccessRequest{}, nil, fmt.Errorf("memstore: approve: %w", err)
		}
		if _, dup := s.grants[g.ID]; dup {
			return sa.AccessRequest{}, nil, fmt.Errorf("memstore: grant %s: %w", g.ID, sa.ErrConflict)
		}
	}
	if err := s.checkEvents(events); err != nil {
		return sa.AccessRequest{}, nil, err
	}
	stored.Request(&r)
	if err := ctx.Err(); err != nil {
		return sa.AccessRequest{}, nil, err
	}
	if g != nil {
		e := newEntry(*g)
		s.grants[g.ID] = e
		s.index(e)
		c := e.g.Clone()
		g = &c
	}
	stored := r.Clone()
	s.requests[id] = &stored
	s.appendEvents(events)
	return r, g, nil
}

// ClaimExpiredRequests implements supportaccess.RequestStore.
func (s *Store) ClaimExpiredRequests(ctx context.Context, now time.Time, limit int, events func(sa.AccessRequest) ([]sa.Event, error)) ([]sa.AccessRequest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("memstore: claim limit %d: %w", limit, sa.ErrInvalidInput)
	}
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("memstore: claim expired requests: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*sa.AccessRequest
	for _, r := range s.requests {
		if r.Status == sa.RequestPending && !r.ExpiresAt.After(now) {
			due = append(due, r)
		}
	}
	due = smallest(due, limit, func(a, b *sa.AccessRequest) int {
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	var evs []sa.Event
	if events != nil {
		for _, r := range due {
			c := r.Clone()
			c.Status = sa.RequestExpired
			ev, err := events(c)
			if err != nil {
				return nil, err // nothing claimed
			}
			evs = append(evs, ev...)
		}
	}
	if err := s.checkEvents(evs); err != nil {
		return nil, err // nothing claimed
	}
	out := make([]sa.AccessRequest, 0, len(due))
	for _, r := range due {
		r.Status = sa.RequestExpired
		out = append(out, r.Clone())
	}
	s.appendEvents(evs)
	return out, nil
}
