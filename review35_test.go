// Review 35: RecordChange after holds came to validate whole passes against
// the end log and the found grants' ends (holdsPass, errPassStale), to date
// its event when the check held (held.at), and coercedText to read strings
// whose text is JSON when the bytes may hold a surrogate escape
// (mayHoldEscapeText, now gone: any backslash makes it read them) — prefix TestReview35.

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

// TestReview35ChangeRecordedAfterEndShortenedByExtendOnThisManager: holds
// now makes the pass again when a grant it found "reached its end by the
// Manager's clock" before the pass was through — but it compares the
// clock with the ExpiresAt the Check returned, and never with the end an
// Extend on this very Manager gave the grant meanwhile (the watcher's
// moveLog, which setNeed consults for exactly this race, is not asked).
// Here the customer shortens the request's only grant to a near end right
// after holds' Check of write read the store, and that end passes before
// the pass is through: the pass succeeds, and the support.change event is
// dated after the grant's end (as the customer set it, and as the store
// and Check now say) — a change on a grant that had already expired, the
// very outcome TestReview33ChangeRecordedAfterItsGrantExpired had fixed.
func TestReview35ChangeRecordedAfterEndShortenedByExtendOnThisManager(t *testing.T) {
	e := newMWEnv(t)
	e.store.slowWatch.Store(int64(time.Hour)) // the watcher must not end the request first
	g := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
	var changeErr error
	var newEnd time.Time
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shorten := func() {
			ext, err := e.m.Extend(context.Background(), g.ID, e.clock.Now().Add(time.Minute), mwCustomer)
			require.NoError(t, err)
			newEnd = ext.ExpiresAt
			e.clock.setUntil(newEnd, -time.Millisecond) // 1 ms past the new end
		}
		e.store.after.Store(&shorten) // holds' Check of write (the request's own scope)
		changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
		w.WriteHeader(http.StatusNoContent)
	}), sa.WithPollInterval(time.Hour))
	mwDo(h, mwReq(http.MethodPut, "/settings", "generic"))

	require.False(t, newEnd.IsZero())
	cur, err := e.m.Get(context.Background(), g.ID)
	require.NoError(t, err)
	require.Equal(t, newEnd, cur.ExpiresAt)
	require.Equal(t, sa.StatusExpired, cur.Status(e.clock.Now()))
	_, err = e.m.Check(context.Background(), "acme", mwGeneric, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "no grant allows write any more")
	for _, ev := range e.events(sa.EventSupportChange) {
		require.Truef(t, ev.Time.Before(newEnd),
			"support.change at %s on grant %s (is it g: %v), which the customer made end at %s (on this Manager, during the check)",
			ev.Time.Format(time.RFC3339Nano), ev.GrantID, ev.GrantID == g.ID, newEnd.Format(time.RFC3339Nano))
	}
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded, "a change on an expired grant is accepted: %v", changeErr)
}

// TestReview35ReadEndsDuringReadLostCheck: holds promises that when a grant
// the pass found ended on this Manager (or reached its end by the Manager's
// clock) "before a refusal it met is acted on, the whole pass is made
// again ... so that a scope only that grant allowed is refused, and for the
// reason it is". holdsPass tests for that (stale) just before it calls
// readLost — but readLost makes a Check of its own, and the refusal of
// write is acted on after it without looking again. In a GET on grant A
// (read only; the session also holds B, a host scope only, so that the
// write Check answers ErrScopeNotGranted), A ends while readLost's Check of
// read answers: readLost says read is left, and the pass acts on "a refusal
// of write alone": a "change refused" access.denied, ErrScopeNotGranted,
// and the request runs on — though A, which the pass found, ended before
// the refusal was acted on, and no grant allows read any more. Made again,
// the pass would end the request (revoked / expired) with ErrSessionEnded.
func TestReview35ReadEndsDuringReadLostCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason string // the session end due
		end    func(e *mwEnv, a sa.Grant)
	}{
		{"revoked on this Manager", sa.SessionEndRevoked, func(e *mwEnv, a sa.Grant) {
			_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "stop now")
			require.NoError(e.t, err)
		}},
		{"end passed by the clock", sa.SessionEndExpired, func(e *mwEnv, a sa.Grant) {
			e.clock.setUntil(a.ExpiresAt, -time.Millisecond) // 1 ms past A's end
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newMWEnv(t)
			e.store.slowWatch.Store(int64(time.Hour))                                        // the watcher must not end the request first
			a := e.grant(sa.GrantInput{Duration: sa.Day})                                    // read
			e.grant(sa.GrantInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{"billing:read"}}) // no read, no write
			var changeErr error
			var ctxErr error
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				end := func() { tc.end(e, a) }
				third := func() { e.store.after.Store(&end) }    // readLost's Check of read
				second := func() { e.store.after.Store(&third) } // holds' Check of write
				e.store.after.Store(&second)                     // holds' Check of read
				changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
				ctxErr = context.Cause(r.Context())
				w.WriteHeader(http.StatusNoContent)
			}), sa.WithPollInterval(time.Hour))
			mwDo(h, mwReq(http.MethodGet, "/console", "generic"))

			_, err := e.m.Check(context.Background(), "acme", mwGeneric, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrScopeNotGranted, "read is gone: only A allowed it")
			require.Empty(t, e.events(sa.EventSupportChange))
			for _, ev := range e.events(sa.EventAccessDenied) {
				require.False(t, strings.HasPrefix(ev.Reason, "change refused"),
					"a request whose read grant ended is audited as a refusal of write alone: %q", ev.Reason)
			}
			require.ErrorIs(t, changeErr, sa.ErrSessionEnded,
				"A ended before the refusal of write was acted on, yet RecordChange returns %v", changeErr)
			require.ErrorIs(t, ctxErr, sa.ErrSessionEnded, "the request runs on after its read grant ended")
			require.Contains(t, e.ended.all(), "s-generic:"+tc.reason)
		})
	}
}

// TestReview35EscapeTextSpelledWithEscapedLetters: coercedText reads the
// strings whose text is JSON only when mayHoldEscapeText finds "ufffd" or
// "ud8".."udf" in the raw bytes — but inside a JSON string any character
// may itself be written as an escape: "\"\\\u0075fffd\"" is the text
// "\ufffd" (\u0075 is u), a string whose text is the JSON string holding
// the escape \ufffd, exactly as {"name":"\"\\ufffd\""} is, which is
// refused. With the u (or a hex digit) spelled as an escape, the raw bytes
// hold neither pattern, the strings are never read, and the values are
// recorded: before and after below differ, yet both read as the name
// U+FFFD once decoded twice — two values as one, the collapse refused for
// the plain spelling in the very same place (the doc: "a json.RawMessage
// may not hold it either").
func TestReview35EscapeTextSpelledWithEscapedLetters(t *testing.T) {
	before := json.RawMessage(`{"name":"\"\\\u0075fffd\""}`) // u escaped
	after := json.RawMessage(`{"name":"\"\\u\u0064800\""}`)  // d escaped: a lone \ud800
	inner := func(raw json.RawMessage) string {
		var outer struct{ Name string }
		require.NoError(t, json.Unmarshal(raw, &outer))
		require.True(t, json.Valid([]byte(outer.Name)))
		var s string
		require.NoError(t, json.Unmarshal([]byte(outer.Name), &s))
		return s
	}
	require.Equal(t, inner(before), inner(after))
	require.Equal(t, "\uFFFD", inner(after))
	// The plain spellings in the same place are refused.
	_, err := mwRecordChange(t, "company", nil, json.RawMessage(`{"name":"\"\\ufffd\""}`))
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = mwRecordChange(t, "company", nil, json.RawMessage(`{"name":"\"\\ud800\""}`))
	require.ErrorIs(t, err, sa.ErrInvalidInput)

	mwRequireChangeRefused(t, "company", before, after)
}
