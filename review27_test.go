// Review 27: RecordChange, the request state it relies on, and the
// context accessors — prefix TestReview27.

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

// TestReview27RecordChangeCoercesInvalidUTF8: RecordChange promises that
// Before and After hold the values as given, and refuses with
// ErrInvalidInput a value that "is not valid UTF-8 as JSON" — but it only
// catches invalid bytes in a json.RawMessage or a Marshaler's output.
// encoding/json silently replaces every invalid byte of a Go string (value
// or map key) by U+FFFD, so distinct values collapse in the trail: a change
// from "Acme\xff" to "Acme\xfe" is recorded with Before == After (the audit
// says nothing changed), and two map keys "role\xfe" and "role\xff" become
// the same key twice in one JSON object, so that a reader of the trail
// (last key wins) sees role=viewer where support set role=admin. Support
// controls such bytes through any setting it may edit (a form value, a
// label, a custom field key). Either RecordChange refuses them
// (ErrInvalidInput, nothing recorded) or the trail must tell them apart.
func TestReview27RecordChangeCoercesInvalidUTF8(t *testing.T) {
	t.Run("string values", func(t *testing.T) {
		evs, changeErr := mwRecordChange(t, "company.name", "Acme\xff", "Acme\xfe")
		if changeErr != nil {
			require.ErrorIs(t, changeErr, sa.ErrInvalidInput)
			require.Empty(t, evs)
			return
		}
		require.Len(t, evs, 1)
		require.NotEqual(t, string(evs[0].Before), string(evs[0].After),
			"a real change is recorded as no change: before %s, after %s", evs[0].Before, evs[0].After)
	})
	t.Run("map keys", func(t *testing.T) {
		before := map[string]string{"role\xff": "viewer"}
		after := map[string]string{"role\xff": "viewer", "role\xfe": "admin"}
		evs, changeErr := mwRecordChange(t, "user.labels", before, after)
		if changeErr != nil {
			require.ErrorIs(t, changeErr, sa.ErrInvalidInput)
			require.Empty(t, evs)
			return
		}
		require.Len(t, evs, 1)
		var got map[string]string
		require.NoError(t, json.Unmarshal(evs[0].After, &got))
		require.Len(t, got, 2, "two keys collapsed into one: the trail's After is %s", evs[0].After)
		require.Contains(t, got, "role\ufffd")
		vals := make([]string, 0, len(got))
		for _, v := range got {
			vals = append(vals, v)
		}
		require.Contains(t, vals, "admin", "the value support set is hidden: the trail's After is %s", evs[0].After)
	})
}

// TestReview27RecordChangeAfterRevokeReturned: RecordChange checks with the
// store "at once" because "a change must not be made after the access
// ended, however recently". Its Check (holds) reads the grant as active;
// before the answer is used, the customer's Revoke on this very Manager
// commits and returns ("revoked"), and the Manager's end log and the
// request's own state (endedGrants) know it. RecordChange still records
// support.change naming the revoked grant, dated after grant.revoked, and
// returns nil: the host commits a change support makes after the customer
// was told the access is revoked. establish handles exactly this race
// ("A grant this Manager ended while the Check answered: ask again");
// holds does not. Shown for a job the handler left running (no watcher:
// fully deterministic) and inside the request (the watcher's re-check is
// held by a store that does not answer it, so only RecordChange's own
// logic decides).
func TestReview27RecordChangeAfterRevokeReturned(t *testing.T) {
	t.Run("job after the response", func(t *testing.T) {
		e := newMWEnv(t)
		g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		release := make(chan struct{})
		changeErr := make(chan error, 1)
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := context.WithoutCancel(r.Context())
			go func() {
				<-release
				changeErr <- sa.RecordChange(ctx, "sso.enforced", false, true)
			}()
			w.WriteHeader(http.StatusAccepted)
		}), sa.WithPollInterval(time.Hour))
		rec := mwDo(h, mwReq(http.MethodPost, "/settings/sso", "generic"))
		require.Equal(t, http.StatusAccepted, rec.Code)

		var revokeErr error
		revoke := func() { _, revokeErr = e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop now") }
		e.store.after.Store(&revoke) // right after RecordChange's Check read the store
		close(release)
		err := <-changeErr
		require.NoError(t, revokeErr, "the customer was told the grant is revoked")
		require.ErrorIs(t, err, sa.ErrSessionEnded, "the change goes ahead after Revoke returned")
		require.Empty(t, e.events(sa.EventSupportChange))
	})
	t.Run("inside the request", func(t *testing.T) {
		e := newMWEnv(t)
		g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		var changeErr, revokeErr error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			deaf := sa.ScopeWrite
			e.store.deafScope.Store(&deaf) // the watcher's re-check gets no answer (until its deadline)
			revoke := func() { _, revokeErr = e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop now") }
			e.store.after.Store(&revoke)
			changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
			if changeErr != nil {
				http.Error(w, "not saved", http.StatusConflict)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}), sa.WithPollInterval(time.Hour))
		mwDo(h, mwReq(http.MethodPut, "/settings/sso", "generic"))
		require.NoError(t, revokeErr)
		require.ErrorIs(t, changeErr, sa.ErrSessionEnded, "the change goes ahead after Revoke returned")
		require.Empty(t, e.events(sa.EventSupportChange))
	})
}

// TestReview27RecordChangeOnReadOnlyAccess: ScopeWrite "covers changes";
// a grant with read only lets support look, not change. RecordChange, the
// library's one hook into a configuration change, checks only the scopes
// the request happens to use — read for a GET, the method of a WebSocket
// upgrade or of an SSE/GraphQL-over-GET endpoint — so it records a
// support.change with scope "read" and returns nil: a change the
// customer's grant never allowed is made and audited as allowed by that
// read-only grant. It should require (establish) ScopeWrite and fail
// closed when no active grant allows it.
func TestReview27RecordChangeOnReadOnlyAccess(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read only
	var changeErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		changeErr = sa.RecordChange(r.Context(), "sso.enforced", true, false)
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/console/ws", "generic"))
	require.Error(t, changeErr, "a configuration change on read-only access")
	require.ErrorIs(t, changeErr, sa.ErrScopeNotGranted)
	require.NotErrorIs(t, changeErr, sa.ErrSessionEnded, "the read access goes on")
	require.Empty(t, e.events(sa.EventSupportChange))
	require.Equal(t, http.StatusNoContent, rec.Code, "the request itself is not refused")
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, 1, "the refused change is audited")
	require.Equal(t, "write", denied[0].Attrs[sa.AttrScope])
	require.Len(t, e.events(sa.EventSupportRequest), 1)

	// With a grant allowing write the change is recorded, naming it.
	w := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	mwDo(h, mwReq(http.MethodGet, "/console/ws", "generic"))
	require.NoError(t, changeErr)
	ch := e.events(sa.EventSupportChange)
	require.Len(t, ch, 1)
	require.Contains(t, ch[0].Attrs[sa.AttrScope], "write")
	require.True(t, ch[0].GrantID == w.ID || strings.Contains(ch[0].Attrs[sa.AttrElevatedGrantIDs], w.ID.String()),
		"the event names the grant that allows write: %v", ch[0])
}
