// Review 30: RecordChange after holds came to end the request when the
// write check answers ErrNoActiveGrant, and changeJSON to look for the
// escape \ufffd also inside strings whose text is JSON (coercedText) —
// prefix TestReview30.

package supportaccess_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// R30Company has a number before a ",string" field. json.Number "1e400"
// is valid JSON (encoding/json writes it as is), but json.Decoder.Token
// decodes numbers into float64 and fails on it: coercedText stops at that
// error and answers false, so the \\ufffd of the ",string" field after it
// is never looked at.
type R30Company struct {
	Seats json.Number `json:"seats"`
	Name  string      `json:"name,string"`
}

// TestReview30StringOptionEscapeHiddenByHugeNumber: "Acme\xff" and
// "Acme\xfe" in a ",string" field encode alike; review 29's fix refuses
// them, but not when a number that does not fit a float64 comes first.
func TestReview30StringOptionEscapeHiddenByHugeNumber(t *testing.T) {
	before := R30Company{Seats: "1e400", Name: "Acme\xff"}
	after := R30Company{Seats: "1e400", Name: "Acme\xfe"}
	mwRequireChangeRefused(t, "company", before, after)
}

// TestReview30RevokedBetweenReadAndWriteChecksHostScopeGrantLeft: as
// TestReview29RevokedBetweenReadAndWriteChecks, but the principal also
// holds a grant of a host scope only ("messages:read", which implies no
// read). The request's read grant is revoked between holds' Check of read
// and its Check of write; the write Check then answers ErrScopeNotGranted
// (the host-scope grant covers the principal), which holds takes for "a
// refusal of write alone" without asking whether read is left — as the
// scopes loop and the watcher do for a refused write. Read is gone, yet
// the request runs on, RecordChange returns ErrScopeNotGranted, and a
// "change refused" access.denied is audited.
func TestReview30RevokedBetweenReadAndWriteChecksHostScopeGrantLeft(t *testing.T) {
	e := newMWEnv(t)
	other, err := sa.NewManager(e.store.Store, sa.WithNow(e.clock.Now)) // another replica
	require.NoError(t, err)
	g := e.grant(sa.GrantInput{Duration: sa.Day})
	e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{"messages:read"}})
	var changeErr, cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoke := func() {
			_, err := other.Revoke(context.Background(), g.ID, mwCustomer, "stop now")
			require.NoError(t, err)
		}
		// The first Check (read) arms the hook the second (write) runs.
		arm := func() { e.store.before.Store(&revoke) }
		e.store.before.Store(&arm)
		changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
		cause = mwWaitEnd(r, 200*time.Millisecond)
	}), sa.WithPollInterval(time.Hour))
	mwDo(h, mwReq(http.MethodGet, "/console/ws", "generic"))
	require.Error(t, changeErr)
	require.Empty(t, e.events(sa.EventSupportChange))
	// Read is indeed gone.
	_, rerr := e.m.Check(context.Background(), "acme", mwGeneric, sa.ScopeRead)
	require.ErrorIs(t, rerr, sa.ErrScopeNotGranted)
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded,
		"the request's read grant was revoked, yet RecordChange returns %v", changeErr)
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request whose read access ended runs on")
	require.Contains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked)
	for _, ev := range e.events(sa.EventAccessDenied) {
		require.False(t, strings.HasPrefix(ev.Reason, "change refused"),
			"a revoked request's change is audited as a refusal of write alone: %q", ev.Reason)
	}
}
