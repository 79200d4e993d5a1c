package supportaccess_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Tests of the 58th review round (audit export verification).

// TestReview58VerifyJSONLChecksEveryPrevHash: a line's prev_hash states
// the hash of the event before it in its chain. ExportAudit writes it on
// a tenant's first line, and exports are concatenated (a daily export
// appended to the archive), so it also appears on later lines of a
// tenant; ReadJSONL accepts it on any line and hands it to readers. But
// VerifyJSONL only checks the prev_hash of a tenant's first line: on any
// later line it is ignored, so an export whose later line claims a
// predecessor other than the line before it (here the hash of event 1 on
// event 4's line) verifies as intact, while a reader trusting that field
// (ReadJSONL's contract: no reader sees a field's value other than the one
// verified) is told another chain history. Expected: a ChainBreak at the
// line whose prev_hash contradicts the chain (seq 4).
func TestReview58VerifyJSONLChecksEveryPrevHash(t *testing.T) {
	evs := chainOf(6)
	var b strings.Builder
	for i, ev := range evs {
		line := jsonlLine(t, ev)
		switch i {
		case 0:
			line = strings.TrimSuffix(line, "}") + `,"prev_hash":""}`
		case 3: // event 4 claims event 1 as its predecessor
			line = strings.TrimSuffix(line, "}") + `,"prev_hash":"` + hex.EncodeToString(evs[0].Hash) + `"}`
		}
		b.WriteString(line + "\n")
	}
	// ReadJSONL hands the line out as valid.
	require.NoError(t, sa.ReadJSONL(strings.NewReader(b.String()), func(sa.Event) error { return nil }))

	rep, err := sa.VerifyJSONL(strings.NewReader(b.String()))
	require.ErrorIs(t, err, sa.ErrTampered,
		"event 4's prev_hash (%x) is not event 3's hash (%x): the export was altered (report: %+v)", evs[0].Hash, evs[2].Hash, rep)
	require.EqualValues(t, 4, rep.Break.Seq)
}
