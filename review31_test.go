// Review 31: RecordChange after its write check came to ask about read
// too (readLost) and the token pass of coercedText to keep numbers as text
// and refuse what it cannot read to the end — prefix TestReview31.

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

// TestReview31GrantRevokedOnThisManagerBetweenHoldsChecks: holds asks the
// store about each scope of the request, then about write, one Check
// after the other; checkHeld (now gone) re-asked a Check whose grant this Manager
// ended *while that Check answered*, but nothing looks again at the grants
// the earlier Checks found. Here the grant that alone allows the request's
// host scope ("messages:read", taken by RequireScope) is revoked on this
// very Manager — the revocation has returned to the customer and is in the
// Manager's end log — after holds' Check of that scope and before its
// Check of write. RecordChange then records the change anyway (nil error)
// and its support.change event lists messages:read and names the revoked
// grant in elevated_grant_ids: a change made, by the trail's own account,
// on a grant already revoked, while the request uses a scope no grant
// allows any more. The doc promises "a change must not be made after the
// access ended, however recently".
//
// The watcher's Checks are made slow (slowWatch) only so that the
// watcher, poked by the revocation, cannot end the request first and hide
// the bug by luck; RecordChange itself never waits for it.
func TestReview31GrantRevokedOnThisManagerBetweenHoldsChecks(t *testing.T) {
	e := newMWEnv(t)
	e.store.slowWatch.Store(int64(time.Hour))
	// A: read and the host scope (the latest end: the one Check finds for
	// read); B: write only (the change's write).
	a := e.grant(sa.GrantInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{sa.ScopeRead, "messages:read"}})
	b := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
	var changeErr error
	var revokedAt time.Time
	h := e.wrap(sa.RequireScope("messages:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoke := func() {
			g, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "stop now")
			require.NoError(t, err)
			revokedAt = g.RevokedAt
		}
		// holds' Checks: read (1), messages:read (2), write (3): A is
		// revoked just before the third reads the store.
		arm2 := func() { e.store.before.Store(&revoke) }
		arm1 := func() { e.store.before.Store(&arm2) }
		e.store.before.Store(&arm1)
		changeErr = sa.RecordChange(r.Context(), "mailbox.forwarding", "off", "on")
		w.WriteHeader(http.StatusNoContent)
	})), sa.WithPollInterval(time.Hour))
	mwDo(h, mwReq(http.MethodGet, "/console/messages", "generic"))
	require.False(t, revokedAt.IsZero(), "the revocation ran during RecordChange's checks")

	// The host scope is indeed gone: only A allowed it.
	_, err := e.m.Check(context.Background(), "acme", mwGeneric, "messages:read")
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)

	changes := e.events(sa.EventSupportChange)
	for _, ev := range changes {
		t.Logf("support.change at %s (A revoked at %s): grant %s, scope %q, elevated %q (A=%s, B=%s)",
			ev.Time.Format(time.RFC3339Nano), revokedAt.Format(time.RFC3339Nano), ev.GrantID,
			ev.Attrs[sa.AttrScope], ev.Attrs[sa.AttrElevatedGrantIDs], a.ID, b.ID)
	}
	require.ErrorIs(t, changeErr, sa.ErrSessionEnded,
		"the request's host scope was revoked on this Manager before the write check, yet RecordChange returns %v", changeErr)
	require.Empty(t, changes, "a change is recorded on a grant revoked before it was checked")
}

// TestReview31AdmittingGrantRevokedOnThisManagerBeforeWriteCheck: the
// plain case of the same gap. A GET runs on grant A (read); the session
// also holds B (write). A is revoked on this Manager after holds' Check of
// read and before its Check of write: the support.change event is recorded
// with GrantID A — the trail says support changed the tenant's settings on
// a grant whose revocation had already returned to the customer (the
// grant.revoked event comes before it), though B is what allowed it.
func TestReview31AdmittingGrantRevokedOnThisManagerBeforeWriteCheck(t *testing.T) {
	e := newMWEnv(t)
	e.store.slowWatch.Store(int64(time.Hour))
	a := e.grant(sa.GrantInput{Duration: 2 * sa.Day}) // read, the latest end
	b := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
	var changeErr error
	var revokedAt time.Time
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g, ok := sa.GrantFromContext(r.Context()); !ok || g.ID != a.ID {
			t.Errorf("not admitted by A")
		}
		revoke := func() {
			g, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "stop now")
			require.NoError(t, err)
			revokedAt = g.RevokedAt
		}
		arm := func() { e.store.before.Store(&revoke) } // Check of read (1) arms the write Check's (2)
		e.store.before.Store(&arm)
		changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
		w.WriteHeader(http.StatusNoContent)
	}), sa.WithPollInterval(time.Hour))
	mwDo(h, mwReq(http.MethodGet, "/console/ws", "generic"))
	require.False(t, revokedAt.IsZero(), "the revocation ran during RecordChange's checks")
	changes := e.events(sa.EventSupportChange)
	if changeErr == nil {
		require.Len(t, changes, 1)
		ev := changes[0]
		require.NotEqual(t, a.ID, ev.GrantID,
			"support.change at %s names grant A, revoked at %s (before the write check); B (%s) allowed it, elevated %q",
			ev.Time.Format(time.RFC3339Nano), revokedAt.Format(time.RFC3339Nano), b.ID, ev.Attrs[sa.AttrElevatedGrantIDs])
		require.False(t, strings.Contains(ev.Attrs[sa.AttrElevatedGrantIDs], a.ID.String()))
	}
}

// TestReview31LoneSurrogateEscapeCollapsesKeys: changeJSON refuses the
// escape \ufffd because "two values could read as one", including in a
// json.RawMessage (a request body passed on as is, say). A lone surrogate
// escape (\ud800 .. \udfff) is another spelling of the same thing: it is
// no Unicode character, and encoding/json (like most decoders that do not
// reject it) reads it as U+FFFD. Two keys "role\ud800" and "role\udbff"
// are recorded as they are and read back as one key — the collapse
// TestReview28InvalidUTF8InStringKindTextMarshalerKey asked RecordChange
// to refuse — and which of them a reader of the trail sees depends on its
// JSON parser (last key wins, first key wins, or an error).
func TestReview31LoneSurrogateEscapeCollapsesKeys(t *testing.T) {
	before := json.RawMessage(`{"role\ud800":"viewer"}`)
	after := json.RawMessage(`{"role\ud800":"viewer","role\udbff":"admin"}`)
	evs, changeErr := mwRecordChange(t, "user.roles", before, after)
	if changeErr == nil {
		require.Len(t, evs, 1)
		var got map[string]string
		require.NoError(t, json.Unmarshal(evs[0].After, &got))
		require.Len(t, got, 2, "two keys read back as one: the trail's After is %s, decoded %q", evs[0].After, got)
	}
	require.ErrorIs(t, changeErr, sa.ErrInvalidInput)
	require.Empty(t, evs)
}

// TestReview31SurrogateEscapes: a lone half of a surrogate pair, in any
// case, at the end of a string or followed by another escape, is refused
// as U+FFFD is; a whole pair (a character outside the BMP), an escaped
// backslash before "u" and a genuine U+FFFD written as UTF-8 are not.
func TestReview31SurrogateEscapes(t *testing.T) {
	for _, raw := range []string{
		`"\ud800"`, `"\uDBFF"`, `"\udc00"`, `"a\uDFFFb"`, `"\ud83d\u0041"`,
		`"\ud83d\n"`, `"\ud83d\ud83d"`, `"\ude00\ud83d"`, `{"k\ud800":1}`,
	} {
		t.Run(raw, func(t *testing.T) {
			evs, err := mwRecordChange(t, "user.roles", nil, json.RawMessage(raw))
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Empty(t, evs)
		})
	}
	for _, raw := range []string{`"\ud83d\ude00"`, `"\uD83D\uDE00x"`, `"\\ud800"`, `"\\\\\ud83d\ude00"`, "\"\uFFFD\"", `"\u00e9"`} {
		t.Run(raw, func(t *testing.T) {
			evs, err := mwRecordChange(t, "user.roles", nil, json.RawMessage(raw))
			require.NoError(t, err)
			require.Len(t, evs, 1)
			var want, got any
			require.NoError(t, json.Unmarshal([]byte(raw), &want))
			require.NoError(t, json.Unmarshal(evs[0].After, &got))
			require.Equal(t, want, got)
		})
	}
}
