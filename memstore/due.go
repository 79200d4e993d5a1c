package memstore

import (
	"bytes"
	"container/heap"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

// The due queues. ClaimTransitions takes, in order of due time then ID, the
// grants whose start or expiry is due and not yet claimed; instead of
// scanning every grant for each batch, the store keeps one min-heap per
// transition with an item per (grant, due time) it has seen. Items go
// stale — the grant was claimed, revoked, or its due time changed (a new
// item was pushed then) — and are dropped when they reach the top.

// dueItem is one grant's due time for one transition.
type dueItem struct {
	at time.Time
	e  *entry
}

// dueQueue is a min-heap of dueItems by (at, grant ID); it implements
// heap.Interface.
type dueQueue []dueItem

func (q dueQueue) Len() int { return len(q) }
func (q dueQueue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return bytes.Compare(q[i].e.g.ID[:], q[j].e.g.ID[:]) < 0
}
func (q dueQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)   { *q = append(*q, x.(dueItem)) }
func (q *dueQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = dueItem{}
	*q = old[:len(old)-1]
	return it
}

// dueKey returns the time transition t of e's grant is due and whether it
// can still be claimed: zero and false once claimed or revoked, or for the
// expiry of an unlimited grant.
func dueKey(e *entry, t sa.Transition) (time.Time, bool) {
	if !e.g.RevokedAt.IsZero() {
		return time.Time{}, false
	}
	if t == sa.TransitionStarted {
		return e.g.StartsAt, !e.started
	}
	return e.g.ExpiresAt, !e.expired && !e.g.ExpiresAt.IsZero()
}

// schedule queues e's pending transitions whose due time is new (a new
// grant, or one whose StartsAt or ExpiresAt changed); s.mu must be held for
// writing.
func (s *Store) schedule(e *entry) {
	for i, t := range [2]sa.Transition{sa.TransitionStarted, sa.TransitionExpired} {
		at, ok := dueKey(e, t)
		if !ok || (e.queued[i] && e.queuedAt[i].Equal(at)) {
			continue
		}
		e.queued[i], e.queuedAt[i] = true, at
		heap.Push(&s.due[i], dueItem{at: at, e: e})
	}
}

// popDue removes and returns the next grant whose transition t is due at
// now and unclaimed, dropping stale items on the way; nil when none is
// due. s.mu must be held for writing.
func (s *Store) popDue(t sa.Transition, now time.Time) *entry {
	i := t - sa.TransitionStarted
	q := &s.due[i]
	for q.Len() > 0 && !(*q)[0].at.After(now) {
		it := heap.Pop(q).(dueItem)
		if at, ok := dueKey(it.e, t); ok && at.Equal(it.at) {
			return it.e
		}
		// Stale. If it was the entry's latest item, none is queued now: a
		// later change back to this time (an expiry made unlimited, then
		// limited again) must queue a new one.
		if it.e.queued[i] && it.e.queuedAt[i].Equal(it.at) {
			it.e.queued[i] = false
		}
	}
	return nil
}
