// Review 33: RecordChange after holds came to make whole passes validated
// against the end log (holdsPass), replacing the per-Check retry
// checkHeld, and hasReplacementEscape to refuse lone surrogate escapes —
// prefix TestReview33.

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

// TestReview33HostScopeRevokedDuringItsCheckThenWriteRefused: the grant
// that alone allows the request's host scope is revoked on this Manager
// while holds' Check of that scope answers (after the store read it, before
// the Check returned). checkHeld (gone in 2deda38) asked that Check again at
// once: the scope was refused, the request ended (scope lost) and
// RecordChange returned ErrSessionEnded. holdsPass now goes on to the Check
// of write, which the session's grants refuse; readLost finds read still
// held (grant C), and the pass returns the refusal of "write alone" — a
// "change refused" access.denied, ErrScopeNotGranted, the request left
// running on a scope no grant allows — before holds ever looks at the end
// log, which says the pass's answers are stale. The whole-pass validation
// happens only when the pass succeeds.
func TestReview33HostScopeRevokedDuringItsCheckThenWriteRefused(t *testing.T) {
	e := newMWEnv(t)
	e.store.slowWatch.Store(int64(time.Hour)) // the watcher must not end the request first
	// A: read and the host scope, the latest end (the one read's Checks
	// find); C: read only. No grant allows write.
	a := e.grant(sa.GrantInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{sa.ScopeRead, "messages:read"}})
	e.grant(sa.GrantInput{Duration: sa.Day})
	var changeErr error
	h := e.wrap(sa.RequireScope("messages:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoke := func() {
			_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "stop now")
			require.NoError(t, err)
		}
		// holds' Checks: read (1), messages:read (2): A is revoked right
		// after the second read the store, before it returns.
		arm := func() { e.store.after.Store(&revoke) }
		e.store.after.Store(&arm)
		changeErr = sa.RecordChange(r.Context(), "mailbox.forwarding", "off", "on")
		w.WriteHeader(http.StatusNoContent)
	})), sa.WithPollInterval(time.Hour))
	mwDo(h, mwReq(http.MethodGet, "/console/messages", "generic"))

	_, err := e.m.Check(context.Background(), "acme", mwGeneric, "messages:read")
	require.ErrorIs(t, err, sa.ErrScopeNotGranted, "the host scope is gone: only A allowed it")
	require.Empty(t, e.events(sa.EventSupportChange))
	for _, ev := range e.events(sa.EventAccessDenied) {
		require.False(t, strings.HasPrefix(ev.Reason, "change refused"),
			"a request whose host scope was revoked is audited as a refusal of write alone: %q", ev.Reason)
	}
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded,
		"the request's host scope was revoked on this Manager while holds checked it, yet RecordChange returns %v", changeErr)
}

// TestReview33ReadRevokedDuringItsCheckEndsAsScopeLost: the request's
// only read grant A (which also allows its host scope) is revoked on this
// Manager while holds' Check of read answers; the session keeps a grant of
// another host scope only. checkHeld asked read again: refused, the request
// ended as revoked and the host was told (OnSessionEnded). holdsPass takes
// the stale "read allowed" on, the Check of messages:read is refused
// (ErrScopeNotGranted: the other grant covers the principal), and, since
// needs[0] "was just allowed" (readLeft := i > 0), the request ends as a
// lost scope only: the host is not told to end the session, and the cause
// says the session's next request may be admitted though no grant allows
// read any more — the outcome review 30 fixed for the write Check.
func TestReview33ReadRevokedDuringItsCheckEndsAsScopeLost(t *testing.T) {
	e := newMWEnv(t)
	e.store.slowWatch.Store(int64(time.Hour))
	a := e.grant(sa.GrantInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{sa.ScopeRead, "messages:read"}})
	e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{"billing:read"}})
	var changeErr error
	h := e.wrap(sa.RequireScope("messages:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoke := func() {
			_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "stop now")
			require.NoError(t, err)
		}
		e.store.after.Store(&revoke) // holds' first Check: read
		changeErr = sa.RecordChange(r.Context(), "mailbox.forwarding", "off", "on")
		w.WriteHeader(http.StatusNoContent)
	})), sa.WithPollInterval(time.Hour))
	mwDo(h, mwReq(http.MethodGet, "/console/messages", "generic"))

	_, err := e.m.Check(context.Background(), "acme", mwGeneric, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted, "read is gone: only A allowed it")
	require.Empty(t, e.events(sa.EventSupportChange))
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded)
	require.NotErrorIs(t, changeErr, sa.ErrScopeNotGranted,
		"the request's read grant was revoked, yet its end says only a scope was lost: %v", changeErr)
	require.Contains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked,
		"the host is not told that the session's access was revoked")
}

// TestReview33ChangeRecordedAfterItsGrantExpired: expiry "happens at
// ExpiresAt to the microsecond", and RecordChange promises that "a change
// must not be made after the access ended, however recently". holds now
// validates a pass against the end log — but a grant that reached its end
// by the Manager's clock is in no end log until a Sweep records it. Here
// the clock passes the grant's end while holds' Check of write answers:
// the pass succeeds, and the support.change event is dated after
// ExpiresAt and names the expired grant — the trail shows a change on a
// grant that had already expired. (Nothing compares the event's time with
// the ends of the grants the pass found.)
func TestReview33ChangeRecordedAfterItsGrantExpired(t *testing.T) {
	e := newMWEnv(t)
	e.store.slowWatch.Store(int64(time.Hour))
	g := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
	var changeErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		expire := func() { e.clock.setUntil(g.ExpiresAt, -time.Millisecond) } // 1 ms past the end
		e.store.after.Store(&expire)                                          // holds' Check of write
		changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
		w.WriteHeader(http.StatusNoContent)
	}), sa.WithPollInterval(time.Hour))
	mwDo(h, mwReq(http.MethodPut, "/settings", "generic"))

	require.Equal(t, sa.StatusExpired, g.Status(e.clock.Now()))
	changes := e.events(sa.EventSupportChange)
	for _, ev := range changes {
		require.Truef(t, ev.Time.Before(g.ExpiresAt),
			"support.change at %s on grant %s (is it g: %v), which expired at %s",
			ev.Time.Format(time.RFC3339Nano), ev.GrantID, ev.GrantID == g.ID, g.ExpiresAt.Format(time.RFC3339Nano))
	}
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded, "a change on an expired grant is accepted: %v", changeErr)
}

// TestReview33LoneSurrogateInsideStringWhoseTextIsJSON: changeJSON refuses
// the escape \ufffd also inside a string whose text is JSON (as the
// ",string" option writes it: {"name":"\"Acme\\ufffd\""}), because a
// reader decoding that text gets U+FFFD. A lone surrogate escape is now
// refused as another spelling of U+FFFD — but only at the outer level:
// coercedText's second look (the strings whose text is JSON) is skipped
// unless the bytes contain "ufffd", and looks for nothing else anyway. So
// {"name":"\"\\ud800\""} and {"name":"\"\\udbff\""} are recorded, and both
// read as the name "\uFFFD" once decoded twice: two values as one, the
// collapse refused for \ufffd in the very same place.
func TestReview33LoneSurrogateInsideStringWhoseTextIsJSON(t *testing.T) {
	before := json.RawMessage(`{"name":"\"\\ud800\""}`)
	after := json.RawMessage(`{"name":"\"\\udbff\""}`)
	// Decoded twice, the two read as one.
	inner := func(raw json.RawMessage) string {
		var outer struct{ Name string }
		require.NoError(t, json.Unmarshal(raw, &outer))
		var s string
		require.NoError(t, json.Unmarshal([]byte(outer.Name), &s))
		return s
	}
	require.Equal(t, inner(before), inner(after))
	require.Equal(t, "\uFFFD", inner(after))
	// The \ufffd spelling in the same place is refused.
	_, err := mwRecordChange(t, "company", nil, json.RawMessage(`{"name":"\"\\ufffd\""}`))
	require.ErrorIs(t, err, sa.ErrInvalidInput)

	mwRequireChangeRefused(t, "company", before, after)
}
