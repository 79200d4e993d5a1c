// Review 36: the fixes of 021a22a (claimLocked's undo, runTasks' deferred
// finish, Sweep's one clock reading) and of 2deda38/9eaa86e/b98e201
// (holdsPass, coercedText) — prefix TestReview36.

package supportaccess_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// TestReview36HookEventsLostOnAuditorsWhenHandlerPanics: since 021a22a
// runTasks finishes a batch in a defer when host code panics — the hook
// tasks' outcome (a failed attempt counted, its retry time; a retried hook
// marked complete) is then stored. But the batch's events
// (grant.expire_hook_failed, grant.expire_hook_succeeded) go to the
// auditors other than the store only in the loop after the tasks
// (recordExtra), which the deferred finish skips: the outcome is stored,
// the auditors never hear of it, and nothing records it later (the task
// is no longer leased or due for that attempt). With a store that keeps
// no events (WithAuditor naming another auditor only) the failed attempt
// is then counted with no event anywhere — and the later
// grant.expire_hook_succeeded says "attempts: 1" of a failure the trail
// never shows. Before 021a22a the panic left the batch leased, and the
// attempt ran (and was recorded) again after the lease.
func TestReview36HookEventsLostOnAuditorsWhenHandlerPanics(t *testing.T) {
	for _, storeAudits := range []bool{true, false} {
		name := "store and another auditor"
		if !storeAudits {
			name = "another auditor only"
		}
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			aud := &reviewAuditor{}
			var auditor sa.Auditor = aud
			if storeAudits {
				auditor = sa.MultiAuditor(st, aud)
			}
			h := &hookLog{}
			e := newEnvOn(t, st, sa.WithAuditor(auditor), sa.OnExpire(h.hook), withPanickingHandler(nil))
			g := e.grant(sa.GrantInput{Duration: time.Hour})
			h.setFail(g.ID, errBoom)
			e.clock.Set(g.ExpiresAt)

			require.PanicsWithValue(t, "error handler bug", func() { _, _ = e.m.Sweep(ctx) })
			require.Equal(t, 1, h.count(g.ID), "the hook ran and failed")
			if storeAudits {
				evs, err := st.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventExpireHookFailed}})
				require.NoError(t, err)
				require.Len(t, evs, 1, "sanity: the deferred finish stored the failure in the store's trail")
			}

			// The hook works again: its retry succeeds.
			h.setFail(g.ID, nil)
			e.clock.Advance(sa.DefaultHookRetryMax)
			e.sweep()
			require.Equal(t, 2, h.count(g.ID), "sanity: retried once (the failed attempt was stored)")
			require.Equal(t, 1, aud.count(sa.EventExpireHookSucceeded, g.ID), "sanity: the success after one failed attempt")

			require.Equal(t, 1, aud.count(sa.EventExpireHookFailed, g.ID),
				"the failed attempt was stored (retried, and counted in grant.expire_hook_succeeded) but its grant.expire_hook_failed never reached the auditor")
		})
	}
}

// TestReview36ClaimPanicRecordsExpiryTwiceOnAuditor: when the store keeps
// the trail, a claim of SweepBatchSize grants sends each grant's
// grant.expired to the other auditors inside the claim (recordLifecycle),
// one after the other. When that auditor panics on a later grant of the
// batch, 021a22a now gives the whole batch back (claimLocked's deferred
// undo; the SQL stores roll back) — also the grants whose grant.expired
// the auditor had already recorded. The next Sweep claims them again and
// records their expiry on that auditor a second time: two grant.expired
// events for one expiry ("exactly-once lifecycle records"). For a failing
// (not panicking) auditor recordLifecycle avoids exactly this: with the
// store keeping the trail a failure is only reported and the claim goes
// on, and without it each claim takes one grant "so that none is recorded
// twice because a later one of its batch failed".
func TestReview36ClaimPanicRecordsExpiryTwiceOnAuditor(t *testing.T) {
	st := memstore.New()
	aud := &reviewAuditor{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)), sa.WithSweepConcurrency(1))
	first := e.grant(sa.GrantInput{Duration: time.Hour})
	second := e.grant(sa.GrantInput{Duration: 2 * time.Hour})
	e.clock.Set(second.ExpiresAt)

	aud.panicOnce(sa.EventGrantExpired, 2) // the second grant of the batch
	require.PanicsWithValue(t, "auditor bug", func() { _, _ = e.m.Sweep(ctx) })
	require.Equal(t, 1, aud.count(sa.EventGrantExpired, first.ID), "sanity: the first grant's expiry reached the auditor inside the claim")

	e.sweep()
	require.Len(t, e.events(sa.EventGrantExpired), 2, "sanity: the store's trail has each expiry once")
	// The claim was committed: the auditor missed the event it panicked
	// on, as a failing auditor misses the one it fails on (reported).
	require.Zero(t, aud.count(sa.EventGrantExpired, second.ID))
	require.Equal(t, 1, aud.count(sa.EventGrantExpired, first.ID),
		"the auditor recorded the first grant's expiry twice: once in the claim the panic abandoned, once in the next")
}

// TestReview36JSONTextObjectInStringNotRead: RecordChange's doc refuses the
// escape \ufffd and a lone surrogate escape "also inside a string whose
// text is JSON", and since b98e201 coercedText reads the strings of every
// value holding a backslash — but it looks inside a string only when its
// text is a JSON *string* (strings.HasPrefix(s, `"`)). A string whose
// text is a JSON object or array (a host keeping a JSON document in a
// text setting, a webhook's payload template) is not read: the values
// below differ as given, are recorded, and read back as one once the
// text is decoded — the collapse refused for the same escape when the
// text is a JSON string (TestReview33LoneSurrogateInsideStringWhoseTextIsJSON,
// TestReview35EscapeTextSpelledWithEscapedLetters), in the very same place.
func TestReview36JSONTextObjectInStringNotRead(t *testing.T) {
	before := map[string]string{"config": `{"name":"\ud800"}`}
	after := map[string]string{"config": `{"name":"\udbff"}`}
	inner := func(v map[string]string) map[string]string {
		require.True(t, json.Valid([]byte(v["config"])))
		var m map[string]string
		require.NoError(t, json.Unmarshal([]byte(v["config"]), &m))
		return m
	}
	require.NotEqual(t, before, after)
	require.Equal(t, inner(before), inner(after), "decoded, the two documents read as one")
	require.Equal(t, "\uFFFD", inner(after)["name"])
	// The same escapes in a string whose text is a JSON string are refused.
	for _, text := range []string{`"\ud800"`, `"\ufffd"`} {
		_, err := mwRecordChange(t, "webhook", nil, map[string]string{"config": text})
		require.ErrorIs(t, err, sa.ErrInvalidInput, text)
	}
	// In object or array text, or in JSON-string text nested once more
	// (a value encoded three times), they are not.
	var accepted []string
	for _, text := range []string{`{"name":"\ufffd"}`, `["\ud800"]`, `"\"\\ufffd\""`} {
		if _, err := mwRecordChange(t, "webhook", nil, map[string]string{"config": text}); err == nil {
			accepted = append(accepted, text)
		}
	}
	require.Empty(t, accepted, "strings whose text is JSON holding the escape are recorded")
	mwRequireChangeRefused(t, "webhook", before, after)
}
