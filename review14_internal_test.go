package supportaccess

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// Review of 26a85a7 (the end log keeps every end of the last endLogAge),
// prefix TestReview14 / BenchmarkReview14.

// rw14Expire makes the oldest end of l endLogAge old (plus a second), as
// real time does to one end per new end when grants keep ending at a
// steady rate for longer than endLogAge (a Sweep of a few million expired
// grants, back-to-back RevokeTenants, a busy deployment).
func rw14Expire(l *endLog) {
	l.mu.Lock()
	l.entries[0].at = time.Now().Add(-endLogAge - time.Second)
	l.mu.Unlock()
}

// TestReview14EndLogSteadyEndsCopyWholeWindow: once ends have kept
// arriving for longer than endLogAge, every add prunes the oldest end by
// slices.Delete(l.entries, 0, 1), which shifts every end of the last
// endLogAge down by one, under l.mu. With W ends in the window, N further
// ends copy N*W entries (48 bytes each): quadratic in the end rate, and
// every admission's now()/since() waits for that copy. Here W = 10 000
// (~333 ends/s) and N = 500: 5 000 000 entries copied for 10 500 ends,
// where a ring/head-index log copies O(W+N). (At W = 100 000 an add
// copies ~4.8 MB: BenchmarkReview14EndLogSteadyAdd.)
func TestReview14EndLogSteadyEndsCopyWholeWindow(t *testing.T) {
	const window, n = 10_000, 500
	var l endLog
	for range window {
		l.add(uuid.New())
	}
	copied := 0
	for range n {
		rw14Expire(&l)
		before, base := len(l.entries), &l.entries[0]
		l.add(uuid.New())
		if len(l.entries) == before && &l.entries[0] == base {
			// One end in, one pruned: slices.Delete moved every kept
			// end down by one in place.
			copied += len(l.entries)
		}
	}
	require.LessOrEqual(t, copied, 4*(window+n),
		"%d ends (window %d) copied %d entries: each add shifts the whole window", window+n, window, copied)
}

// TestReview14EndLogKeepsMassEndCapacity: a mass end (100 000 grants ended
// within endLogAge: a Sweep after downtime, a RevokeTenant of a large
// tenant) grows l.entries to 100 000 entries; once they are older than
// endLogAge the log keeps endLogKeep of them, but slices.Delete keeps the
// backing array: ~5-6 MB per middleware, for its lifetime (the ring it
// replaced was 256 entries).
func TestReview14EndLogKeepsMassEndCapacity(t *testing.T) {
	var l endLog
	for range 100_000 {
		l.add(uuid.New())
	}
	l.mu.Lock()
	for i := range l.entries {
		l.entries[i].at = l.entries[i].at.Add(-endLogAge - time.Second)
	}
	l.mu.Unlock()
	l.add(uuid.New())
	require.LessOrEqual(t, len(l.entries), endLogKeep+1, "the old ends are pruned")
	require.LessOrEqual(t, cap(l.entries), 4*endLogKeep,
		"after pruning to %d ends the log still holds an array of %d entries (%d bytes)",
		len(l.entries), cap(l.entries), cap(l.entries)*48)
}

// BenchmarkReview14EndLogSteadyAdd: the cost of one end (add) when ends
// arrive steadily and the window (ends of the last endLogAge) holds W.
func BenchmarkReview14EndLogSteadyAdd(b *testing.B) {
	for _, window := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			var l endLog
			for range window {
				l.add(uuid.New())
			}
			id := uuid.New()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				rw14Expire(&l)
				b.StartTimer()
				l.add(id)
			}
		})
	}
}
