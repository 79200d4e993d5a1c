package supportaccess

import (
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
