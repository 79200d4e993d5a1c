package supportaccess_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview52VerifyJSONLRefusesNonCanonicalStrings: ReadJSONL/VerifyJSONL
// promise that "a line must be byte for byte what ExportAudit writes for
// its values … so that no JSON reader can see a field's value other than
// the one read (and verified) here" (audit_export.go, ReadJSONL doc;
// jsonlReader.next). The check re-encodes the decoded jsonlEvent, but
// time, grant_id, hash and prev_hash are plain strings in jsonlEvent and
// are only parsed afterwards in fromJSONL (time.Parse(RFC3339Nano),
// uuid.Parse, hex.DecodeString), which accept many spellings of one value.
// The re-encoding therefore compares each string with itself, and any
// spelling that parses to a value with the same chain hash passes:
//   - time with nanoseconds beyond the microsecond (ChainHash covers only
//     UnixMicro): ReadJSONL then hands out a Time that was never recorded,
//     "verified";
//   - time with another zone offset: a reader of the string (jq, a SIEM
//     indexing the text) sees another date and hour;
//   - grant_id upper-case, in braces or as urn:uuid:, and hash in
//     upper-case hex: a case-sensitive lookup of the grant's events or of
//     an anchored head hash in the separate system no longer finds them.
//
// Expected: each such line is refused with ErrInvalidInput (only the
// canonical form ExportAudit writes — exportTime, uuid.String, lower-case
// hex — passes), as TestReview22VerifyJSONLRefusesShadowedFields requires
// for shadowed fields.
func TestReview52VerifyJSONLRefusesNonCanonicalStrings(t *testing.T) {
	e := newEnv(t)
	when := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	grant := uuid.MustParse("0190f5b2-8c1e-7a3b-9f00-cba987654321")
	require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: when, Type: sa.EventSupportChange, TenantID: "acme",
		GrantID: grant, Actor: support, Reason: "deleted all invoices"}))
	line := review22ExportLine(t, e)
	_, err := sa.VerifyJSONL(strings.NewReader(line + "\n"))
	require.NoError(t, err, "the genuine export verifies")
	hash := line[strings.Index(line, `"hash":"`)+len(`"hash":"`):]
	hash = hash[:64]

	for name, forged := range map[string]string{
		"time_sub_microsecond": strings.Replace(line, `"time":"2026-03-14T15:09:26.535897Z"`, `"time":"2026-03-14T15:09:26.535897999Z"`, 1),
		"time_other_offset":    strings.Replace(line, `"time":"2026-03-14T15:09:26.535897Z"`, `"time":"2026-03-15T15:08:26.535897+23:59"`, 1),
		"grant_id_upper":       strings.Replace(line, grant.String(), strings.ToUpper(grant.String()), 1),
		"grant_id_urn":         strings.Replace(line, `"grant_id":"`, `"grant_id":"urn:uuid:`, 1),
		"hash_upper":           strings.Replace(line, hash, strings.ToUpper(hash), 1),
	} {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, line, forged)
			var got []sa.Event
			rerr := sa.ReadJSONL(strings.NewReader(forged+"\n"), func(ev sa.Event) error { got = append(got, ev); return nil })
			_, err := sa.VerifyJSONL(strings.NewReader(forged + "\n"))
			require.Error(t, err, "VerifyJSONL vouches for a line ExportAudit never writes:\n%s\nReadJSONL: %v %+v", forged, rerr, got)
			require.True(t, errorsIsAny(err, sa.ErrInvalidInput, sa.ErrTampered), "%v", err)
		})
	}
}

// TestReview52VerifyJSONLBase64AttrKeysCollide: any line may use the
// "encoding":"base64" form (jsonlReader.next only checks that the decoded
// jsonlEvent re-encodes to the same bytes, and Encoding is one of its
// fields), and fromJSONL decodes its strings with the lenient
// base64.StdEncoding, which ignores the unused low bits of the last
// character: "cGF0aA==" and "cGF0aB==" both decode to "path". So a line can
// carry two attrs keys that are distinct JSON keys (they pass the
// re-encoding check) but decode to the same attribute: fromJSONL
// (audit_export.go, the loop `e.Attrs[str(k)] = str(v)` over the Go map
// l.Attrs) keeps whichever it meets last in random map order, so in some
// runs (about one in six here) the genuine value wins, the hash matches and
// VerifyJSONL vouches for the line — while a reader that decodes the keys
// in the file's order (Python's dict, jq + @base64d) takes the forged value
// that follows the genuine one. Expected: a base64 string that is not the
// canonical (strict) encoding, or two keys that decode to the same
// attribute, is refused (ErrInvalidInput) every time, like the shadowed
// fields of TestReview22VerifyJSONLRefusesShadowedFields.
func TestReview52VerifyJSONLBase64AttrKeysCollide(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventSupportRequest, TenantID: "acme",
		Actor: support, Attrs: map[string]string{sa.AttrPath: "/admin/delete-all"}}))
	line := review22ExportLine(t, e)

	// The same line in the base64 form, with a second "path" key.
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	b64 := strings.NewReplacer(
		`"tenant_id":"acme"`, `"tenant_id":"`+enc("acme")+`"`,
		`"type":"support.request"`, `"type":"`+enc("support.request")+`"`,
		`"kind":"support"`, `"kind":"`+enc("support")+`"`,
		`"id":"`+support.ID+`"`, `"id":"`+enc(support.ID)+`"`,
		`"attrs":{"path":"/admin/delete-all"}`, `"attrs":{"cGF0aA==":"`+enc("/admin/delete-all")+`","cGF0aB==":"`+enc("/dashboard")+`"}`,
		`,"hash":`, `,"encoding":"base64","hash":`,
	).Replace(line)
	require.NotEqual(t, line, b64)
	dup, err := base64.StdEncoding.DecodeString("cGF0aB==")
	require.NoError(t, err)
	require.Equal(t, "path", string(dup), "both keys decode to the attribute path")

	accepted := 0
	for range 256 {
		if _, err := sa.VerifyJSONL(strings.NewReader(b64 + "\n")); err == nil {
			accepted++
		}
	}
	require.Zero(t, accepted, "VerifyJSONL accepted, in %d of 256 runs, a line whose attrs hold path twice (the later one forged):\n%s", accepted, b64)
}
