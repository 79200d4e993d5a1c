package supportaccess

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// The end log answers exactly for a Check that began within endLogAge,
// however many grants ended since; past that (and past endLogKeep ends) it
// says it cannot tell, and it never keeps old ends beyond endLogKeep.
func TestEndLogExactWithinAgeUnsureBeyond(t *testing.T) {
	var l endLog
	mine := uuid.New()
	seq := l.now()
	for range 3 * endLogKeep {
		l.add(uuid.New())
	}
	ended, unsure := l.since(seq, mine)
	require.False(t, ended, "mine did not end")
	require.False(t, unsure, "every end of the last endLogAge is kept")
	l.add(mine)
	ended, unsure = l.since(seq, mine)
	require.True(t, ended)
	require.False(t, unsure)
	ended, unsure = l.since(l.now(), mine)
	require.False(t, ended || unsure, "nothing ended after the latest end")

	// Age every end: the next add prunes all but endLogKeep of them.
	for i := range l.entries {
		l.entries[i].at = l.entries[i].at.Add(-endLogAge - time.Second)
	}
	l.add(uuid.New())
	require.LessOrEqual(t, len(l.entries)-l.head, endLogKeep+1)
	ended, unsure = l.since(seq, mine)
	require.True(t, ended || unsure, "a Check older than the kept ends must not be told nothing ended")
	require.True(t, unsure)
	ended, unsure = l.since(l.now()-1, mine) // the last end is another grant
	require.False(t, ended || unsure, "the last ends are still known exactly")
}

// noteEnded on a request whose Check began before the end log can answer
// (more than endLogKeep ends, all older than endLogAge): the grant the
// request uses may have ended, so it is not relied on again without a
// Check and the request is re-checked at once — but it is not taken as
// gone (a re-check without an answer ends nothing by itself). A grant the
// request does not use is left alone.
func TestNoteEndedUnsureRechecksWithoutEnding(t *testing.T) {
	m := &Manager{} // noteEnded asks it nothing
	w := newWatcher(m, time.Second, nil)
	used, other := uuid.New(), uuid.New()
	st := &reqState{m: m, grant: Grant{ID: used}, needs: []need{{scope: ScopeRead, id: used}}}
	seq := w.ends.now()
	for range 2 * endLogKeep {
		w.ends.add(uuid.New())
	}
	require.False(t, w.noteEnded(st, seq, used), "within endLogAge every end is known: this one did not end")
	require.False(t, st.recheck.Load())

	w.ends.mu.Lock()
	for i := range w.ends.entries {
		w.ends.entries[i].at = w.ends.entries[i].at.Add(-endLogAge - time.Second)
	}
	w.ends.mu.Unlock()
	w.ends.add(uuid.New()) // prunes the aged ends the Check began before

	require.False(t, w.noteEnded(st, seq, other), "a grant the request does not use")
	require.False(t, st.recheck.Load())
	require.Empty(t, st.endedGrants)

	require.True(t, w.noteEnded(st, seq, used), "the log cannot tell: re-check")
	require.True(t, st.recheck.Load())
	require.True(t, st.endedGrants[used], "not relied on again without a Check")
	require.False(t, st.grantGone.Load(), "but not taken as ended")
}

// A request whose re-checks get no answer (a hung store) and that has no
// other reason to end runs on, re-checked at the next tick, only until no
// re-check has answered for max(3 intervals, minStaleness): then it ends
// as a failed check (fail closed). The watcher's own tests cannot wait
// minStaleness of real time, so this one sets the last answer's time.
func TestUnansweredEndsRequestOnceStale(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &Manager{clock: func() time.Time { return now }}
	w := newWatcher(m, time.Second, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	id := uuid.New()
	st := &reqState{m: m, cancel: cancel, grant: Grant{ID: id}, needs: []need{{scope: ScopeRead, id: id, expires: now.Add(time.Hour)}}}

	st.okAt.Store(time.Now().Add(-minStaleness + time.Second).UnixNano())
	w.unanswered(st, st.needs)
	require.Empty(t, st.endReason, "answered less than minStaleness ago: not ended")
	require.True(t, st.recheck.Load(), "checked again at the next tick")
	require.NoError(t, ctx.Err())

	st.okAt.Store(time.Now().Add(-minStaleness).UnixNano())
	w.unanswered(st, st.needs)
	require.Equal(t, endReasonCheckFailed, st.endReason, "no answer for minStaleness")
	require.ErrorIs(t, context.Cause(ctx), errEndCheckFailed)
}
