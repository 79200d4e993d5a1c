package memstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/canon"
	"github.com/supportaccess/supportaccess/internal/stored"
)

var _ sa.HookStore = (*Store)(nil)

// ClaimExpirations implements supportaccess.HookStore.
func (s *Store) ClaimExpirations(ctx context.Context, now time.Time, limit int, lease sa.Lease, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("memstore: claim limit %d: %w", limit, sa.ErrInvalidInput)
	}
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("memstore: claim expirations: %w", err)
	}
	if err := stored.CheckLease(lease); err != nil {
		return nil, fmt.Errorf("memstore: claim expirations: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.claimLocked(sa.TransitionExpired, now, limit, events)
	if err != nil {
		return nil, err
	}
	if s.tasks == nil {
		s.tasks = make(map[uuid.UUID]*sa.HookTask)
	}
	for _, g := range out {
		s.tasks[g.ID] = &sa.HookTask{NextAt: canon.Time(now), LeaseToken: lease.Token, LeaseUntil: canon.Time(lease.Until)}
	}
	return out, nil
}

// ClaimHookTasks implements supportaccess.HookStore.
func (s *Store) ClaimHookTasks(ctx context.Context, now time.Time, limit int, lease sa.Lease) ([]sa.HookTask, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("memstore: claim limit %d: %w", limit, sa.ErrInvalidInput)
	}
	if err := stored.CheckNow(now); err != nil {
		return nil, fmt.Errorf("memstore: claim hook tasks: %w", err)
	}
	if err := stored.CheckLease(lease); err != nil {
		return nil, fmt.Errorf("memstore: claim hook tasks: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type due struct {
		id uuid.UUID
		t  *sa.HookTask
	}
	var ds []due
	for id, t := range s.tasks {
		if !t.NextAt.After(now) && !t.LeaseUntil.After(now) {
			ds = append(ds, due{id, t})
		}
	}
	ds = smallest(ds, limit, func(a, b due) int {
		if c := a.t.NextAt.Compare(b.t.NextAt); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	out := make([]sa.HookTask, 0, len(ds))
	for _, d := range ds {
		d.t.LeaseToken, d.t.LeaseUntil = lease.Token, canon.Time(lease.Until)
		t := *d.t
		if e, ok := s.grants[d.id]; ok {
			t.Grant = e.g.Clone()
		} else {
			t.Grant = sa.Grant{ID: d.id}
		}
		out = append(out, t)
	}
	return out, nil
}

// FinishHookTasks implements supportaccess.HookStore.
func (s *Store) FinishHookTasks(ctx context.Context, token string, tasks []sa.HookTask, events []sa.Event) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for i := range tasks {
		if err := stored.CheckHookTask(&tasks[i]); err != nil {
			return 0, fmt.Errorf("memstore: finish hook tasks: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkEvents(events); err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tasks {
		cur, ok := s.tasks[t.Grant.ID]
		if !ok || token == "" || cur.LeaseToken != token {
			continue
		}
		n++
		if t.Complete {
			delete(s.tasks, t.Grant.ID)
			continue
		}
		*cur = sa.HookTask{Done: t.Done, Attempts: t.Attempts, NextAt: canon.Time(t.NextAt), LastError: t.LastError}
	}
	s.appendEvents(events)
	return n, nil
}
