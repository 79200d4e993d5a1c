package supportaccess

import (
	"slices"
	"sync"

	"github.com/google/uuid"
)

// endLogSize is how many recent grant ends an endLog keeps.
const endLogSize = 256

// endLog numbers the grants the Manager ended (revoked, or recorded the
// expiry of), so that a Check whose answer arrives while a grant ends —
// the admission of a request, a RequireScope, a re-check — can tell
// whether the grant it found ended meanwhile: its caller reads seq before
// the Check and asks endedSince after. The watcher's listener then cannot
// miss a request that was not yet using the grant when it ran.
type endLog struct {
	mu   sync.Mutex
	seq  uint64
	ring []endEntry // endLogSize entries once a grant ended
}

type endEntry struct {
	seq uint64
	id  uuid.UUID
}

// add records that grant id ended.
func (l *endLog) add(id uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ring == nil {
		l.ring = make([]endEntry, endLogSize)
	}
	l.seq++
	l.ring[l.seq%endLogSize] = endEntry{seq: l.seq, id: id}
}

// now returns the number of the latest end.
func (l *endLog) now() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// overflowed reports whether more grants ended after end number seq than
// the log keeps (endedSince then answers true for any grant).
func (l *endLog) overflowed(seq uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq-seq >= endLogSize
}

// endedSince reports whether one of ids ended after end number seq — or
// may have: when more grants ended since than the log keeps, it answers
// true (the caller then asks the store again).
func (l *endLog) endedSince(seq uint64, ids ...uuid.UUID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seq-seq >= endLogSize {
		return true
	}
	for s := seq + 1; s <= l.seq; s++ {
		if slices.Contains(ids, l.ring[s%endLogSize].id) {
			return true
		}
	}
	return false
}
