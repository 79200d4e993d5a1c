package supportaccess

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// An endLog keeps at least endLogKeep recent grant ends, and every end
// younger than endLogAge: a Check that answers within endLogAge of its
// start — every healthy one — learns exactly whether the grant it found
// ended meanwhile, however many other grants ended (a RevokeTenant of a
// large tenant, a Sweep after downtime).
const (
	endLogKeep = 256
	endLogAge  = 30 * time.Second
)

// endLog numbers the grants the Manager ended (revoked, or recorded the
// expiry of), so that a Check whose answer arrives while a grant ends —
// the admission of a request, a RequireScope, a re-check — can tell
// whether the grant it found ended meanwhile: its caller reads seq before
// the Check and asks since after. The watcher's listener then cannot
// miss a request that was not yet using the grant when it ran.
type endLog struct {
	mu      sync.Mutex
	seq     uint64
	entries []endEntry // in seq order; entries[head:] are the ends kept (see endLogKeep)
	head    int
}

type endEntry struct {
	seq uint64
	id  uuid.UUID
	at  time.Time // real time of the end, for pruning
}

// add records that grant id ended.
func (l *endLog) add(id uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	now := time.Now()
	l.entries = append(l.entries, endEntry{seq: l.seq, id: id, at: now})
	for l.head < len(l.entries)-endLogKeep && now.Sub(l.entries[l.head].at) >= endLogAge {
		l.head++
	}
	// Once half the slice is pruned ends, the kept ones move to a slice of
	// their own size: each end is copied O(1) times on average, and the
	// memory of a mass end (a large Sweep) is given back.
	if l.head > 0 && l.head >= len(l.entries)/2 {
		kept := make([]endEntry, len(l.entries)-l.head, 2*(len(l.entries)-l.head))
		copy(kept, l.entries[l.head:])
		l.entries, l.head = kept, 0
	}
}

// now returns the number of the latest end.
func (l *endLog) now() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// since reports whether grant id ended after end number seq (ended), or
// whether the log can no longer tell (unsure: ends after seq were pruned,
// which takes a Check that ran longer than endLogAge while more than
// endLogKeep grants ended).
func (l *endLog) since(seq uint64, id uuid.UUID) (ended, unsure bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq >= l.seq {
		return false, false
	}
	kept := l.entries[l.head:]
	first := l.seq + 1 // the oldest end kept
	if len(kept) > 0 {
		first = kept[0].seq
	}
	if seq+1 < first {
		return false, true
	}
	for _, e := range kept[seq+1-first:] {
		if e.id == id {
			return true, false
		}
	}
	return false, false
}

// movedEnd is an end Extend gave a grant, and when (watcher.moves; at:
// the real time, for moveLog's pruning).
type movedEnd struct {
	end  time.Time
	move uint64
	at   time.Time
}

// moveLog keeps, per grant, the latest end an Extend on the Manager gave
// it and that move's number, for the moves of the last endLogAge (at least
// endLogKeep grants): a Check — the admission of a request, a
// RequireScope, a re-check — whose grant an Extend moved while it answered
// takes the move from here, the listener having had no need of the
// request's to move yet.
type moveLog struct {
	mu    sync.Mutex
	m     map[uuid.UUID]movedEnd
	prune int // prune when the map grows past this
}

// add records that grant id now ends at end (move number move).
func (l *moveLog) add(id uuid.UUID, end time.Time, move uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.m == nil {
		l.m = make(map[uuid.UUID]movedEnd)
	}
	if cur, ok := l.m[id]; !ok || cur.move < move {
		l.m[id] = movedEnd{end: end, move: move, at: now}
	}
	if len(l.m) > max(l.prune, endLogKeep) {
		for k, v := range l.m {
			if now.Sub(v.at) >= endLogAge {
				delete(l.m, k)
			}
		}
		l.prune = 2 * len(l.m)
	}
}

// earliestEnd returns end, or the end an Extend on this Manager moved
// grant id to after move when that is earlier: whether a Check begun at
// move read the store before or after that move cannot be told, so the
// earlier end holds until a re-check.
func (l *moveLog) earliestEnd(id uuid.UUID, end time.Time, move uint64) time.Time {
	if m, ok := l.since(id, move); ok {
		return earlierEnd(end, m.end)
	}
	return end
}

// since returns the latest move of grant id if its number is after move.
func (l *moveLog) since(id uuid.UUID, move uint64) (movedEnd, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	me, ok := l.m[id]
	return me, ok && me.move > move
}
