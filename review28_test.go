// Review 28: RecordChange after it came to require write (holds' extra
// Check), to re-ask Checks whose grant ended meanwhile (holds), and to
// walk its values for invalid UTF-8 (validUTF8) — prefix TestReview28.

package supportaccess_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview28RevokedReadRequestNotEndedByChange: RecordChange promises "an
// error wrapping ErrSessionEnded when the support access of the request
// ended" and "a refusal of the request's scopes ends the request's support
// access". In a GET (the request's scope is read), holds now asks for write
// first and returns a denial of write at once — before it checks the
// request's own scopes. When the grant that admitted the request is gone
// (revoked on another replica, or expired by the Manager's clock), the
// write Check fails with ErrNoActiveGrant: RecordChange returns that
// (not ErrSessionEnded), audits a "change refused" access.denied, and the
// request, whose read access ended, runs on (its context is not
// cancelled, its writes are not blocked, OnSessionEnded is not told) until
// the watcher's next poll. Before this change the same call ended the
// request as revoked / expired.
func TestReview28RevokedReadRequestNotEndedByChange(t *testing.T) {
	for _, grantScopes := range [][]sa.Scope{nil, {sa.ScopeWrite}} {
		name := "read-only grant"
		if grantScopes != nil {
			name = "read-write grant"
		}
		t.Run(name+"/revoked elsewhere", func(t *testing.T) {
			e := newMWEnv(t)
			other, err := sa.NewManager(e.store.Store, sa.WithNow(e.clock.Now)) // another replica
			require.NoError(t, err)
			g := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: grantScopes})
			var changeErr, cause error
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := other.Revoke(context.Background(), g.ID, mwCustomer, "stop now")
				require.NoError(t, err)
				changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
				cause = context.Cause(r.Context())
			}), sa.WithPollInterval(time.Hour))
			mwDo(h, mwReq(http.MethodGet, "/console/ws", "generic"))
			require.Error(t, changeErr)
			require.Empty(t, e.events(sa.EventSupportChange))
			require.ErrorIs(t, changeErr, sa.ErrSessionEnded,
				"the request's own grant was revoked, yet RecordChange returns %v", changeErr)
			require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request whose access ended runs on")
			require.Contains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked)
		})
		t.Run(name+"/expired", func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: grantScopes})
			var changeErr, cause error
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				e.clock.setUntil(g.ExpiresAt, -time.Minute) // the grant ended a minute ago
				changeErr = sa.RecordChange(r.Context(), "sso.enforced", false, true)
				cause = context.Cause(r.Context())
			}), sa.WithPollInterval(time.Hour))
			mwDo(h, mwReq(http.MethodGet, "/console/ws", "generic"))
			require.Error(t, changeErr)
			require.Empty(t, e.events(sa.EventSupportChange))
			require.ErrorIs(t, changeErr, sa.ErrSessionEnded,
				"the request's own grant expired, yet RecordChange returns %v", changeErr)
			require.ErrorContains(t, changeErr, "expired")
			require.ErrorIs(t, cause, sa.ErrSessionEnded, "the request whose access ended runs on")
		})
	}
}

// r28inner is embedded, unexported, in R28Company: encoding/json promotes
// its exported fields (a common Go pattern).
type r28inner struct {
	Name string `json:"name"`
}

type R28Company struct {
	r28inner
	Plan string `json:"plan"`
}

// TestReview28InvalidUTF8InPromotedField: validUTF8 skips every
// unexported struct field, but encoding/json encodes the exported fields
// of an embedded struct of an unexported type as the outer struct's own.
// "Acme\xff" and "Acme\xfe" in such a field are both recorded as
// "Acme\ufffd": a real change audited as none — the very collapse
// review 27 asked RecordChange to refuse.
func TestReview28InvalidUTF8InPromotedField(t *testing.T) {
	before := R28Company{r28inner: r28inner{Name: "Acme\xff"}, Plan: "pro"}
	after := R28Company{r28inner: r28inner{Name: "Acme\xfe"}, Plan: "pro"}
	mwRequireChangeRefused(t, "company", before, after)
}

// r28Label has a MarshalJSON on its pointer: encoding/json calls it only
// for an addressable value; a value passed as such (or a map value) is
// encoded field by field.
type r28Label struct {
	Text string
}

func (l *r28Label) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"label": strings.ToValidUTF8(l.Text, "?")})
}

// TestReview28InvalidUTF8BehindPointerMarshaler: validUTF8 treats a type
// whose pointer implements json.Marshaler as checked as a whole, also when
// the value is not addressable — and encoding/json then does not call
// MarshalJSON but encodes the struct's fields, writing invalid bytes as
// U+FFFD. Values passed to RecordChange directly (an interface holds a
// copy: never addressable) or as map values get past the check.
func TestReview28InvalidUTF8BehindPointerMarshaler(t *testing.T) {
	for name, vals := range map[string][2]any{
		"value":     {r28Label{Text: "vip\xff"}, r28Label{Text: "vip\xfe"}},
		"map value": {map[string]r28Label{"a": {Text: "vip\xff"}}, map[string]r28Label{"a": {Text: "vip\xfe"}}},
	} {
		t.Run(name, func(t *testing.T) {
			mwRequireChangeRefused(t, "user.label", vals[0], vals[1])
		})
	}
}

// r28Tag is a string type with a MarshalText (which makes its text valid
// UTF-8). As a map key encoding/json does not call MarshalText for a key of
// kind string: it writes the raw string, invalid bytes as U+FFFD.
type r28Tag string

func (t r28Tag) MarshalText() ([]byte, error) {
	return []byte(strings.ToValidUTF8(string(t), "?")), nil
}

// TestReview28InvalidUTF8InStringKindTextMarshalerKey: validUTF8 checks a
// map key's MarshalText when its type has one, but encoding/json uses the
// key's string itself when the key's kind is string. Two keys "role\xff"
// and "role\xfe" both become "role\ufffd": one JSON object with the same
// key twice, so a reader of the trail (last key wins) may see the role
// support did not set.
func TestReview28InvalidUTF8InStringKindTextMarshalerKey(t *testing.T) {
	before := map[r28Tag]string{"role\xff": "viewer"}
	after := map[r28Tag]string{"role\xff": "viewer", "role\xfe": "admin"}
	evs, changeErr := mwRecordChange(t, "user.labels", before, after)
	if changeErr == nil {
		require.Len(t, evs, 1)
		var got map[string]string
		require.NoError(t, json.Unmarshal(evs[0].After, &got))
		require.Len(t, got, 2, "two keys collapsed into one: the trail's After is %s", evs[0].After)
	}
	require.ErrorIs(t, changeErr, sa.ErrInvalidInput)
	require.Empty(t, evs)
}

// r28Secret hides its bytes behind a MarshalText on its pointer: encoding/
// json calls it for an addressable value (a field of a struct passed by
// pointer) and writes only "redacted".
type r28Secret string

func (s *r28Secret) MarshalText() ([]byte, error) { return []byte("redacted"), nil }

type r28Creds struct {
	User  string    `json:"user"`
	Token r28Secret `json:"token"`
}

// TestReview28FalseRefusalPointerTextMarshaler: the reverse case: for an
// addressable value whose pointer implements encoding.TextMarshaler,
// encoding/json encodes MarshalText's (valid) text, but validUTF8 walks the
// raw string and refuses the change with ErrInvalidInput — a valid value
// whose JSON holds no replaced byte, refused, so the host must abort a
// legitimate change (a binary token rotated by support, say).
func TestReview28FalseRefusalPointerTextMarshaler(t *testing.T) {
	before := &r28Creds{User: "ci", Token: r28Secret("\x00\xff\x10")}
	after := &r28Creds{User: "ci", Token: r28Secret("\x01\xfe\x11")}
	b, err := json.Marshal(after)
	require.NoError(t, err)
	require.JSONEq(t, `{"user":"ci","token":"redacted"}`, string(b), "nothing encoding/json writes is replaced")
	evs, changeErr := mwRecordChange(t, "ci.credentials", before, after)
	require.NoError(t, changeErr, "a value encoded as valid JSON with no replaced byte is refused")
	require.Len(t, evs, 1)
}

// R28Node embeds two structs whose Next fields conflict at the same depth:
// encoding/json drops both (Go's field dominance rules), so a cycle
// through them is never encoded.
type R28Node struct {
	R28Left
	R28Right
	Name string
}

type R28Left struct{ Next *R28Node }

type R28Right struct{ Next *R28Node }

// TestReview28CycleThroughFieldJSONOmits: changeJSON walks the value "(so
// it holds no cycle)" because json.Marshal succeeded — but encoding/json
// does not visit every exported field: fields that conflict at the same
// depth of embedding are left out. validUTF8 walks them, follows the
// cycle for ever, and the goroutine's stack overflows: a fatal error that
// no recover (net/http's included) catches — the whole process dies on a
// value json.Marshal encodes as {"Name":"x"}. Run in a child process (with
// a small maximum stack, so that it dies fast).
func TestReview28CycleThroughFieldJSONOmits(t *testing.T) {
	if os.Getenv("REVIEW28_CHILD") == "1" {
		debug.SetMaxStack(32 << 20)
		e := newMWEnv(t)
		e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		n := &R28Node{Name: "x"}
		n.R28Left.Next = n
		b, err := json.Marshal(n)
		require.NoError(t, err)
		require.JSONEq(t, `{"Name":"x"}`, string(b))
		var changeErr error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			changeErr = sa.RecordChange(r.Context(), "tree", nil, n)
			w.WriteHeader(http.StatusNoContent)
		}))
		mwDo(h, mwReq(http.MethodPut, "/settings/tree", "generic"))
		require.NoError(t, changeErr)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReview28CycleThroughFieldJSONOmits$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REVIEW28_CHILD=1")
	out, err := cmd.CombinedOutput()
	head := string(out[:min(len(out), 400)])
	require.False(t, strings.Contains(string(out), "stack overflow"), "RecordChange crashed the process: %s", head)
	require.NoError(t, err, "child: %s", head)
}

// TestReview28ReplacementEscapeOnlyFromInvalidBytes: RecordChange refuses
// a value whose JSON holds the escape \ufffd (encoding/json's spelling of
// an invalid byte), and nothing else: a genuine U+FFFD, the text \ufffd
// (its backslash escaped in the JSON) and other escapes are recorded.
func TestReview28ReplacementEscapeOnlyFromInvalidBytes(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var errs []error
	values := []any{
		"Acme \ufffd Corp",                 // a genuine U+FFFD: accepted
		`C:\ufffd\path`,                    // the text \ufffd: accepted
		map[string]string{"\u2028": "<>&"}, // other escapes: accepted
		"Acme\xff",                         // refused
		map[string]int{"role\xfe": 1},      // refused
		json.RawMessage(`"\ufffd"`),        // refused: the escape itself
		json.RawMessage(`"\uFFFD"`),        // refused, in upper case too
	}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range values {
			errs = append(errs, sa.RecordChange(r.Context(), "company.name", nil, v))
		}
	}))
	mwDo(h, mwReq(http.MethodPost, "/settings", "generic"))
	require.Len(t, errs, len(values))
	for i, err := range errs {
		if i < 3 {
			require.NoError(t, err, "value %d", i)
		} else {
			require.ErrorIs(t, err, sa.ErrInvalidInput, "value %d", i)
		}
	}
	require.Len(t, e.events(sa.EventSupportChange), 3)
}
