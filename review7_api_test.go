package supportaccess_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Tests of the seventh review round (Manager API and audit side).

// TestReview7APIRecordChangeRefusesInvalidUTF8: SECURITY.md promises that
// invalid UTF-8 is refused with ErrInvalidInput before anything is stored.
// RecordChange keeps a json.RawMessage (or any json.Marshaler's output)
// "as is": encoding/json checks its syntax but not its UTF-8, so a value
// holding the bytes 0xff 0xfe inside a JSON string reaches the audit
// trail.
func TestReview7APIRecordChangeRefusesInvalidUTF8(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var errChange error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errChange = sa.RecordChange(r.Context(), "sso.enforced", json.RawMessage("\"\xff\xfe\""), true)
		w.WriteHeader(http.StatusNoContent)
	}))
	mwDo(h, mwReq(http.MethodPut, "/settings/sso", "generic"))
	for _, ev := range e.events(sa.EventSupportChange) {
		require.True(t, utf8.Valid(ev.Before), "stored Before is not valid UTF-8: %q", ev.Before)
	}
	require.ErrorIs(t, errChange, sa.ErrInvalidInput)
}

// TestReview7APIExportValidUTF8: every line ExportAudit writes must be
// JSON, and JSON text is UTF-8 (RFC 8259 §8.1). A Before/After that is
// syntactically valid, compact JSON but holds invalid UTF-8 inside a
// string is written verbatim (rawOrBytes checks only json.Compact), so the
// export is not valid UTF-8 and parsers other than encoding/json (Python's
// json, jq, most log shippers) reject the line. ExportAudit already
// base64-encodes invalid UTF-8 in every string field; Before/After need
// the same escape hatch (before_b64 / after_b64).
func TestReview7APIExportValidUTF8(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventSupportChange,
		TenantID: "acme", Actor: support, Before: []byte("\"\xff\xfe\""), After: []byte("{\"k\":\"\xc3\"}")}))
	var buf bytes.Buffer
	_, err := e.m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		require.True(t, utf8.Valid(sc.Bytes()), "export line is not UTF-8: %q", sc.Bytes())
	}
	rep, err := sa.VerifyJSONL(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err, "and the export still verifies")
	require.EqualValues(t, 1, rep.Events)
}

// TestReview7APIRefusalAuditedWhenCallerGone: a refused operation must
// leave an action.refused event. refuse records it with the caller's
// context, so when that context is already cancelled — the client of the
// admin request disconnected, which support impersonating the admin
// controls — the Manager refuses but the store's Record fails with
// context.Canceled and the refusal is only logged. notify.failed and the
// middleware's events (lateContext / auditContext) survive a cancelled
// caller; the refusal should too.
func TestReview7APIRefusalAuditedWhenCallerGone(t *testing.T) {
	t.Run("support grants itself access", func(t *testing.T) {
		e := newEnv(t, sa.WithErrorHandler(func(context.Context, error) {}))
		c, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := e.m.Grant(c, sa.GrantInput{TenantID: "acme", By: support, Duration: time.Hour})
		require.ErrorIs(t, err, sa.ErrForbidden)
		require.Len(t, e.events(sa.EventActionRefused), 1, "the refusal is audited")
	})
	t.Run("impersonated admin request, client gone", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		parent, cancel := context.WithCancel(context.Background())
		defer cancel()
		var errGrant error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cancel() // the client disconnects while the handler runs
			_, errGrant = e.m.Grant(r.Context(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: 100 * sa.Day,
				Scopes: []sa.Scope{sa.ScopeWrite}})
			w.WriteHeader(http.StatusNoContent)
		}))
		mwDo(h, mwReq(http.MethodPost, "/admin/support-access", "generic").WithContext(parent))
		require.ErrorIs(t, errGrant, sa.ErrForbidden)
		refused := e.events(sa.EventActionRefused)
		require.Len(t, refused, 1, "support's attempt to grant itself access in the admin's name is audited")
		require.Equal(t, sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}, refused[0].Actor)
	})
}

// TestReview7APIRefusalReachesStoreWhenOtherAuditorFails: with
// WithAuditor(MultiAuditor(store, other)), Manager.record writes the other
// auditors first and returns at the first failure, so while a secondary
// destination is down a refusal (and a notify.failed) never reaches the
// store's trail either, although the store is working. The change itself
// failing closed is right; losing the refusal from the primary trail is
// not.
func TestReview7APIRefusalReachesStoreWhenOtherAuditorFails(t *testing.T) {
	st := memstore.New()
	m, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, failingAuditor{})),
		sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support, Duration: time.Hour})
	require.ErrorIs(t, err, sa.ErrForbidden)
	evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventActionRefused}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "the store keeps the refusal whatever another auditor says")
}

// TestReview7APIPolicyNotAliased: WithPolicy keeps the caller's slices
// (DefaultScopes, Presets) and Policy.Validate runs once in NewManager.
// A host that reuses or edits its Policy value afterwards (or a shared
// package variable such as PresetsShort) changes the running Manager's
// policy without validation: here read-only-by-default silently becomes
// write-by-default (and an invalid scope would be stored as is).
// Manager.Policy() already returns a clone; WithPolicy should take one.
func TestReview7APIPolicyNotAliased(t *testing.T) {
	p := sa.DefaultPolicy()
	e := newEnv(t, sa.WithPolicy(p))
	p.DefaultScopes[0] = sa.ScopeWrite // e.g. the host builds the next tenant's policy from it
	g := e.grant(sa.GrantInput{})
	require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes, "the policy the Manager validated")
}

// TestReview7APIChainHashTimeZeroVsEpoch: ChainHash encodes Time as Unix
// microseconds "0 when zero", so the zero time and the Unix epoch hash the
// same: changing a stored (or exported) event's time between
// 1970-01-01T00:00:00Z and none is not detected by VerifyAudit or
// VerifyJSONL. (Cursors had the same ambiguity and were fixed:
// TestAuditCursorAtUnixEpoch.) Encoding the zero time as math.MinInt64,
// which no representable instant's UnixMicro reaches within the library's
// range, keeps every hash of a real chain unchanged.
func TestReview7APIChainHashTimeZeroVsEpoch(t *testing.T) {
	ev := sa.Event{ID: uuid.New(), Type: sa.EventGrantCreated, TenantID: "acme", Actor: customer, Seq: 1,
		Time: time.Unix(0, 0).UTC()}
	zero := ev
	zero.Time = time.Time{}
	require.NotEqual(t, ev.ChainHash(nil), zero.ChainHash(nil), "a changed time changes the hash")
}
