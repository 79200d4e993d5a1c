// Review 29: RecordChange after holds came to check the request's own
// scopes before write, and changeJSON to refuse invalid UTF-8 by the escape
// \ufffd in the encoded JSON (hasReplacementEscape) — prefix TestReview29.

package supportaccess_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// R29Company has a string field with the ",string" option: encoding/json
// encodes its string, then encodes that JSON again as a string. An invalid
// byte becomes \ufffd in the inner encoding, whose backslash the outer one
// escapes: the output holds \\ufffd, which hasReplacementEscape skips as an
// escaped backslash.
type R29Company struct {
	Name string `json:"name,string"`
	Plan string `json:"plan"`
}

// TestReview29InvalidUTF8InStringOptionField: "Acme\xff" and "Acme\xfe"
// in a ",string" field both encode as {"name":"\"Acme\\ufffd\""}: a real
// change is recorded as none, the collapse RecordChange promises to refuse
// (the reflection walk this commit removed did refuse it).
func TestReview29InvalidUTF8InStringOptionField(t *testing.T) {
	before := R29Company{Name: "Acme\xff", Plan: "pro"}
	after := R29Company{Name: "Acme\xfe", Plan: "pro"}
	mwRequireChangeRefused(t, "company", before, after)
}

// TestReview29RevokedBetweenReadAndWriteChecks: in a GET (the request's
// scope is read), the request's only grant is revoked after holds' Check
// of read and before its Check of write. The write Check's ErrNoActiveGrant
// says no grant allows anything any more — read included — yet holds
// takes it for "a refusal of write alone": RecordChange returns
// ErrNoActiveGrant instead of the ErrSessionEnded it promises when the
// request's support access ended, audits a "change refused" access.denied,
// and, when the revocation was made on another replica, leaves the request
// running on its revoked grant until the watcher's next poll — the outcome
// review 28 had fixed for a revocation before the read Check.
func TestReview29RevokedBetweenReadAndWriteChecks(t *testing.T) {
	for _, grantScopes := range [][]sa.Scope{nil, {sa.ScopeWrite}} {
		name := "read-only grant"
		if grantScopes != nil {
			name = "read-write grant"
		}
		t.Run(name, func(t *testing.T) {
			e := newMWEnv(t)
			other, err := sa.NewManager(e.store.Store, sa.WithNow(e.clock.Now)) // another replica
			require.NoError(t, err)
			g := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: grantScopes})
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
			require.ErrorIs(t, changeErr, sa.ErrSessionEnded,
				"the request's only grant was revoked, yet RecordChange returns %v", changeErr)
			require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request whose access ended runs on")
			require.Contains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked)
			for _, ev := range e.events(sa.EventAccessDenied) {
				require.False(t, strings.HasPrefix(ev.Reason, "change refused"),
					"a revoked request's change is audited as a refusal of write alone: %q", ev.Reason)
			}
		})
	}
}
