package supportaccess_test

// Review 152: fuzzing. New fuzz targets for the parsers and validators
// that had none, each checking a property against an oracle written from
// the doc comments (not from the code):
//
//   - FuzzReview152TextRules: the text and identifier rules of validate.go,
//     through ValidateActor, Check, Grant and List, against a slow
//     reference of the documented rules;
//   - FuzzReview152AuditCursor: AuditCursor.String / ParseAuditCursor;
//   - FuzzReview152JSONLReverify: what VerifyJSONL accepts re-verified
//     independently with Event.ChainHash, and what ReadJSONL accepts read
//     by a generic JSON reader the same way;
//   - FuzzReview152CanonicalInjective: two events that differ encode
//     differently (Event.ChainHash);
//   - FuzzReview152RawRequestAudit: the middleware's scope mapping and the
//     audited request line for requests parsed from raw bytes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// ---------------------------------------------------------------------
// The text rules (validate.go), from the doc comment of the Max… limits.

// r152Kind is the kind of a field as the doc comment describes it.
type r152Kind int

const (
	r152OneLine r152Kind = iota // free text, one line (a name, a filter value)
	r152Lines                   // a reason: LF, CRLF and tabs allowed
	r152Ident                   // an identifier: also nothing invisible
)

// r152Control is the doc's "control characters": NUL and the other C0
// controls, DEL, C1, the line and paragraph separators, and the
// bidirectional embedding, override and isolate controls.
func r152Control(r rune) bool {
	switch {
	case r <= 0x1f, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == '\u2028', r == '\u2029':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// r152Invisible is the doc's list of what identifiers may not hold.
func r152Invisible(r rune) bool {
	switch {
	case unicode.Is(unicode.Cf, r): // format characters
		return true
	case unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r):
		return true
	case unicode.Is(unicode.Variation_Selector, r):
		return true
	case unicode.Is(unicode.Zs, r) && r != ' ': // spaces other than U+0020
		return true
	case r == '\u2800', r == '\U00016FE4', r == '\U0001D159': // Braille blank, Khitan filler, null notehead
		return true
	}
	return false
}

// r152Valid is the slow reference: a rune at a time, no fast path.
func r152Valid(s string, max int, required bool, kind r152Kind) bool {
	if s == "" {
		return !required
	}
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	rs := []rune(s)
	for i, r := range rs {
		if kind == r152Lines {
			if r == '\n' || r == '\t' {
				continue
			}
			if r == '\r' && i+1 < len(rs) && rs[i+1] == '\n' {
				continue
			}
		}
		if r152Control(r) {
			return false
		}
		if kind == r152Ident && r152Invisible(r) {
			return false
		}
	}
	if kind == r152Ident {
		if strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") || strings.Contains(s, "  ") {
			return false
		}
	}
	return true
}

// r152Blank is the policy doc's "blank: only white space or invisible
// characters".
func r152Blank(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) && !r152Invisible(r) {
			return false
		}
	}
	return true
}

// r152Scope is validateScope's doc: 1–64 bytes of ASCII letters, digits
// and : . _ / -, and no other spelling of read or write.
func r152Scope(s string) bool {
	if s == "read" || s == "write" {
		return true
	}
	if s == "" || len(s) > sa.MaxScopeLen || strings.EqualFold(s, "read") || strings.EqualFold(s, "write") {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(":._/-", c) >= 0) {
			return false
		}
	}
	return true
}

// requireVerdict asserts err is nil when want, else wraps ErrInvalidInput.
func requireVerdict(t *testing.T, want bool, err error, what string, s string) {
	t.Helper()
	if want {
		require.False(t, errors.Is(err, sa.ErrInvalidInput), "%s: %q is valid by the docs but refused: %v", what, s, err)
	} else {
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%s: %q is invalid by the docs but accepted", what, s)
	}
}

// checkTextRules runs s through every field whose rule the docs state and
// compares each verdict with the reference.
func checkTextRules(t *testing.T, s string) {
	t.Helper()
	// Actor: ID an identifier of at most 320 bytes, Name one line of at
	// most 200.
	requireVerdict(t, r152Valid(s, sa.MaxPrincipalLen, true, r152Ident),
		sa.ValidateActor(sa.Actor{Kind: sa.ActorSupport, ID: s}), "Actor.ID", s)
	requireVerdict(t, r152Valid(s, sa.MaxActorNameLen, false, r152OneLine),
		sa.ValidateActor(sa.Actor{Kind: sa.ActorSupport, ID: "x", Name: s}), "Actor.Name", s)

	store := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	p := sa.DefaultPolicy()
	p.RequireReason, p.RequireTicketRef = true, true
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithPolicy(p))
	require.NoError(t, err)

	// Check: tenant and principal are identifiers; a well-formed check
	// that finds no grant is ErrNotFound or ErrForbidden, never
	// ErrInvalidInput.
	_, err = m.Check(ctx, s, "p@vendor.example", sa.ScopeRead)
	requireVerdict(t, r152Valid(s, sa.MaxTenantIDLen, true, r152Ident), err, "Check tenant", s)
	_, err = m.Check(ctx, "acme", s, sa.ScopeRead)
	requireVerdict(t, r152Valid(s, sa.MaxPrincipalLen, true, r152Ident), err, "Check principal", s)
	_, err = m.Check(ctx, "acme", "p@vendor.example", sa.Scope(s))
	requireVerdict(t, r152Scope(s), err, "Check scope", s)

	// Grant: reason multi-line text, required by this policy and not
	// blank; ticket an identifier, required and not blank; grantees
	// identifiers; tenant an identifier.
	base := sa.GrantInput{TenantID: "acme", By: storetest.Customer, Reason: "why", TicketRef: "T-1"}
	in := base
	in.Reason = s
	_, err = m.Grant(ctx, in)
	requireVerdict(t, r152Valid(s, sa.MaxReasonLen, true, r152Lines) && !r152Blank(s), err, "Grant reason", s)
	in = base
	in.TicketRef = s
	_, err = m.Grant(ctx, in)
	requireVerdict(t, r152Valid(s, sa.MaxTicketRefLen, true, r152Ident) && !r152Blank(s), err, "Grant ticket", s)
	in = base
	in.Grantees = []string{s}
	_, err = m.Grant(ctx, in)
	requireVerdict(t, r152Valid(s, sa.MaxPrincipalLen, true, r152Ident), err, "Grant grantee", s)
	in = base
	in.TenantID = s
	_, err = m.Grant(ctx, in)
	requireVerdict(t, r152Valid(s, sa.MaxTenantIDLen, true, r152Ident), err, "Grant tenant", s)

	// Filters accept invisible characters (data stored before the rule
	// stays reachable), nothing else the rule refuses.
	if s != "" {
		_, err = m.List(ctx, sa.ListFilter{TenantID: s})
		requireVerdict(t, r152Valid(s, sa.MaxTenantIDLen, true, r152OneLine), err, "List tenant", s)
	}
	_, err = m.List(ctx, sa.ListFilter{TicketRef: s})
	requireVerdict(t, r152Valid(s, sa.MaxTicketRefLen, false, r152OneLine), err, "List ticket", s)
}

// r152TextSeeds are strings at the edges of every rule: the documented
// characters, each lane of the eight-byte fast path, the lengths.
func r152TextSeeds() []string {
	seeds := []string{
		"", " ", "a", "acme", " acme", "acme ", "ac  me", "ac me", "a\tb", "a\nb", "a\r\nb", "a\rb", "a\r", "\r\n",
		"a\x00b", "a\x7fb", "a\u0085b", "a\u2028b", "a\u202eb", "a\u2066b", "a\u200bb", "a\u00a0b", "a\u3000b",
		"a\ufeffb", "a\U000e0041b", "a\ufe0fb", "a\u2800b", "a\U00016fe4b", "a\U0001d159b", "a\u3164b", "a\u115fb",
		"a\u034fb", "a\u180eb", "a\u00adb", "\u2800", "\u3000", "\xff", "a\xc3", "é", "12345678 12345678",
		"1234567  12345678", "12345678\x0012345678", "1234567\u00e9", "\t", "\u200b", "Read", "WRITE", "read", "a:b/c_d.e-f",
		strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("x", 128), strings.Repeat("x", 129),
		strings.Repeat("é", 100), strings.Repeat("a ", 100), strings.Repeat("ab", 160), strings.Repeat("ab", 160) + "a",
	}
	for lane := 0; lane < 16; lane++ {
		for _, c := range []string{"\x1f", "\x7f", "\x80", " ", "\xe2\x80\x8b"} {
			b := []byte(strings.Repeat("a", 16))
			seeds = append(seeds, string(b[:lane])+c+string(b[lane:]))
		}
		b := []byte(strings.Repeat("a", 16))
		b[lane] = ' '
		if lane+1 < len(b) {
			b[lane+1] = ' '
		}
		seeds = append(seeds, string(b))
	}
	return seeds
}

// FuzzReview152TextRules: every identifier, text and scope rule of the
// docs (validate.go's doc comment of the limits, ValidateActor,
// validateScope, Policy.RequireReason) decides each string as a slow
// reference of those docs does — the eight-byte fast path included.
func FuzzReview152TextRules(f *testing.F) {
	for _, s := range r152TextSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkTextRules(t, s) })
}

// TestReview152DocumentedInvisiblesRefused: every character the doc
// comment names is refused in every identifier, and accepted in a filter.
func TestReview152DocumentedInvisiblesRefused(t *testing.T) {
	for _, r := range []rune{
		'\u200b', '\u200c', '\u200d', '\u200e', '\u200f', '\ufeff', '\U000e0041', '\U000e0001', // format
		'\u034f', '\u115f', '\u1160', '\u3164', '\uffa0', '\u17b4', // other default-ignorable
		'\ufe0f', '\U000e0100', '\u180b', // variation selectors
		'\u00a0', '\u2007', '\u3000', '\u202f', '\u205f', '\u1680', // spaces other than U+0020
		'\u2800', '\U00016fe4', '\U0001d159',
	} {
		for _, s := range []string{string(r), "a" + string(r) + "b", "acme" + string(r)} {
			require.False(t, r152Valid(s, 128, true, r152Ident), "%U", r)
			checkTextRules(t, s)
		}
	}
}

// ---------------------------------------------------------------------
// Audit cursors.

// FuzzReview152AuditCursor: a cursor String made of a position ParseAuditCursor
// takes (a tenant a filter accepts, Seq >= 0, any storable time) parses
// back to the same position ("ParseAuditCursor decodes a token made by
// AuditCursor.String"), and the token is URL-safe; an arbitrary token
// never panics the parser, is refused with ErrInvalidInput, or names a
// position whose String is the token itself.
func FuzzReview152AuditCursor(f *testing.F) {
	f.Add("acme", int64(1), int64(1773500966), int64(535897000), false, "")
	f.Add("a.b.c", int64(0), int64(-1), int64(1), true, "YzEuLjAu")
	f.Add("", int64(9223372036854775807), int64(-62135596800), int64(999999999), false, "YzEuMTc3MzUwMDk2NjUzNTg5Ny4xLmFjbWU")
	f.Add(" ünï\u200b ", int64(42), int64(253402300799), int64(500), true, "YzEuLTE6NTAwLjQyLg")
	// Other spellings of valid positions: a leading zero, a sign, a
	// nanosecond part with a zero, padding.
	for _, raw := range []string{"c1..01.acme", "c1.+5.1.acme", "c1.5:050.1.acme", "c1.5:0.1.", "c1.-0.1.", "c1..1.acme\x00"} {
		f.Add("acme", int64(1), int64(0), int64(0), false, base64.RawURLEncoding.EncodeToString([]byte(raw)))
	}
	f.Add("acme", int64(1), int64(0), int64(0), false, base64.URLEncoding.EncodeToString([]byte("c1..1.acm")))
	f.Fuzz(func(t *testing.T, tenant string, seq, sec, nsec int64, local bool, token string) {
		// Storable times: years 1 to 9999 (stores keep 1000–9999; the
		// token promises the nanosecond).
		const lo, hi = -62135596800, 253402300799
		sec = lo + (sec%(hi-lo+1)+(hi-lo+1))%(hi-lo+1)
		nsec = (nsec%1e9 + 1e9) % 1e9
		when := time.Unix(sec, nsec)
		if !local {
			when = when.UTC()
		}
		if seq%7 == 0 {
			when = time.Time{}
		}
		c := sa.AuditCursor{TenantID: tenant, Seq: seq, Time: when}
		tok := c.String()
		got, err := sa.ParseAuditCursor(tok)
		if seq >= 0 && (tenant == "" || r152Valid(tenant, sa.MaxTenantIDLen, true, r152OneLine)) {
			require.NoError(t, err, "a token String made of a valid position parses: %+v", c)
			require.Equal(t, c.TenantID, got.TenantID)
			require.Equal(t, c.Seq, got.Seq)
			require.True(t, c.Time.Equal(got.Time), "time %v came back as %v", c.Time, got.Time)
			require.Equal(t, c.Time.IsZero(), got.Time.IsZero())
			require.Equal(t, url.QueryEscape(tok), tok, "URL-safe")
		} else {
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		}

		p, err := sa.ParseAuditCursor(token)
		if err != nil {
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			return
		}
		require.Equal(t, token, p.String(), "one position, one token")
		require.GreaterOrEqual(t, p.Seq, int64(0))
		require.True(t, p.TenantID == "" || r152Valid(p.TenantID, sa.MaxTenantIDLen, true, r152OneLine))
		require.True(t, p.Time.IsZero() || p.Time.Location() == time.UTC)
	})
}

// ---------------------------------------------------------------------
// JSON Lines exports.

// r152Export returns a real export: three tenants, a base64-encoded
// event, Before/After both verbatim and in base64, and one export that
// starts in the middle of a chain (a prev_hash line).
func r152Export(t testing.TB) (whole, partial []byte) {
	store := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(store, sa.WithNow(clock.Now))
	require.NoError(t, err)
	at := storetest.Epoch.Truncate(time.Microsecond)
	rec := func(tenant string, typ sa.EventType, attrs map[string]string, before, after []byte) {
		require.NoError(t, store.Record(ctx, sa.Event{ID: uuid.New(), Time: at, Type: typ, TenantID: tenant,
			Actor: storetest.Support, Reason: "r\nx", Attrs: attrs, Before: before, After: after}))
		at = at.Add(time.Microsecond)
	}
	rec("acme", sa.EventSupportRequest, map[string]string{sa.AttrPath: "/x", sa.AttrMethod: "GET"}, nil, nil)
	rec("globex", sa.EventGrantCreated, nil, nil, []byte(`{"id":"x","n":1}`))
	rec("acme", sa.EventGrantRevoked, nil, []byte(`{"a":1}`), []byte("not json\xff"))
	rec("acme\xff", "t\u2028<&>", map[string]string{"k\x00": "v\xfe"}, nil, nil)
	rec("acme", sa.EventSupportRequest, map[string]string{sa.AttrPath: "/y"}, nil, nil)
	var buf bytes.Buffer
	_, err = m.ExportAudit(ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	whole = bytes.Clone(buf.Bytes())
	buf.Reset()
	_, err = m.ExportAudit(ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain, TenantID: "acme",
		After: &sa.AuditCursor{TenantID: "acme", Seq: 1}})
	require.NoError(t, err)
	return whole, bytes.Clone(buf.Bytes())
}

// r152Line is one export line as a generic JSON reader sees it.
type r152Line struct {
	keys   []string
	fields map[string]json.RawMessage
}

// r152Generic reads line with a token reader: an object without repeated
// keys at any depth (what a strict reader requires).
func r152Generic(t *testing.T, line []byte) r152Line {
	t.Helper()
	var l r152Line
	require.NoError(t, json.Unmarshal(line, &l.fields))
	d := json.NewDecoder(bytes.NewReader(line))
	var stack []map[string]bool
	expectKey := false
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, map[string]bool{})
				depth++
				expectKey = true
				continue
			case '[':
				stack = append(stack, nil)
				depth++
			case '}', ']':
				stack = stack[:len(stack)-1]
				depth--
			}
		case string:
			if expectKey && len(stack) > 0 && stack[len(stack)-1] != nil {
				require.False(t, stack[len(stack)-1][v], "key %q repeated in an accepted line %q", v, line)
				stack[len(stack)-1][v] = true
				if depth == 1 {
					l.keys = append(l.keys, v)
				}
				expectKey = false
				continue
			}
		}
		expectKey = len(stack) > 0 && stack[len(stack)-1] != nil
	}
	return l
}

// r152Str decodes one generic string field.
func r152Str(t *testing.T, l r152Line, k string) string {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(l.fields[k], &s), "field %q", k)
	return s
}

// r152Order is the field order the ExportAudit doc lists (before_b64,
// after_b64 and encoding, the escape hatches, where they appear).
var r152Order = []string{"v", "tenant_id", "seq", "id", "time", "type", "grant_id", "actor", "reason", "attrs",
	"before", "after", "before_b64", "after_b64", "encoding", "hash", "prev_hash"}

// checkAcceptedLine asserts a generic reader sees in line the event e
// that ReadJSONL returned for it.
func checkAcceptedLine(t *testing.T, line []byte, e sa.Event) (prev []byte, hasPrev bool) {
	t.Helper()
	l := r152Generic(t, line)
	pos := -1
	for _, k := range l.keys {
		i := slices.Index(r152Order, k)
		require.Greater(t, i, pos, "field %q unknown or out of the documented order in %q", k, line)
		pos = i
	}
	dec := func(s string) string { return s }
	if _, ok := l.fields["encoding"]; ok {
		require.Equal(t, "base64", r152Str(t, l, "encoding"))
		dec = func(s string) string {
			b, err := base64.StdEncoding.DecodeString(s)
			require.NoError(t, err)
			return string(b)
		}
	}
	require.Equal(t, "1", string(l.fields["v"]))
	require.Equal(t, e.TenantID, dec(r152Str(t, l, "tenant_id")))
	var seq json.Number
	require.NoError(t, json.Unmarshal(l.fields["seq"], &seq))
	require.Equal(t, seq.String(), string(l.fields["seq"]))
	n, err := seq.Int64()
	require.NoError(t, err)
	require.Equal(t, e.Seq, n)
	require.Equal(t, e.ID.String(), r152Str(t, l, "id"))
	if e.Time.IsZero() {
		require.Equal(t, "", r152Str(t, l, "time"))
	} else {
		require.Equal(t, e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), r152Str(t, l, "time"), "RFC 3339 in UTC with microseconds")
	}
	require.Equal(t, string(e.Type), dec(r152Str(t, l, "type")))
	if e.GrantID == uuid.Nil {
		require.Equal(t, "", r152Str(t, l, "grant_id"))
	} else {
		require.Equal(t, e.GrantID.String(), r152Str(t, l, "grant_id"))
	}
	var actor map[string]string
	require.NoError(t, json.Unmarshal(l.fields["actor"], &actor))
	require.Equal(t, map[string]string{"kind": string(e.Actor.Kind), "id": e.Actor.ID, "name": e.Actor.Name},
		map[string]string{"kind": dec(actor["kind"]), "id": dec(actor["id"]), "name": dec(actor["name"])})
	require.Equal(t, e.Reason, dec(r152Str(t, l, "reason")))
	var attrs map[string]string
	require.NoError(t, json.Unmarshal(l.fields["attrs"], &attrs))
	got := map[string]string{}
	for k, v := range attrs {
		got[dec(k)] = dec(v)
	}
	want := e.Attrs
	if want == nil {
		want = map[string]string{}
	}
	require.Equal(t, want, got)
	for _, f := range []struct {
		name string
		v    []byte
	}{{"before", e.Before}, {"after", e.After}} {
		raw, okRaw := l.fields[f.name]
		b64, okB64 := l.fields[f.name+"_b64"]
		require.False(t, okRaw && okB64)
		switch {
		case okRaw:
			require.Equal(t, string(f.v), string(raw), "%s verbatim", f.name)
		case okB64:
			var b []byte
			require.NoError(t, json.Unmarshal(b64, &b))
			require.Equal(t, f.v, b)
		default:
			require.Empty(t, f.v)
		}
	}
	h := r152Str(t, l, "hash")
	require.Equal(t, hex.EncodeToString(e.Hash), h, "lowercase hex")
	if raw, ok := l.fields["prev_hash"]; ok {
		var s string
		require.NoError(t, json.Unmarshal(raw, &s))
		b, err := hex.DecodeString(s)
		require.NoError(t, err)
		require.Equal(t, strings.ToLower(s), s)
		return b, true
	}
	return nil, false
}

// r152Chain is the oracle's state of one tenant's chain.
type r152Chain struct {
	from, head sa.ChainLink
}

// FuzzReview152JSONLReverify: whatever ReadJSONL accepts, a generic JSON
// reader sees the same values in (no field repeated or reordered, the
// documented spellings: "no reader can see a field's value other than
// the one read (and verified) here"); whatever VerifyJSONL accepts is
// re-verified here from the lines with Event.ChainHash, as its doc
// describes the rules (a tenant's first line is checked against its
// prev_hash, or the start of the chain when its Seq is 1, else taken as
// the anchor; then consecutive sequence numbers, each hash chained to the
// one before), and the report's Events, From and Head agree.
func FuzzReview152JSONLReverify(f *testing.F) {
	whole, partial := r152Export(f)
	f.Add(whole)
	f.Add(partial)
	f.Add(append(bytes.Clone(partial), whole...))
	f.Add(append(bytes.Clone(whole), whole...))
	lines := bytes.SplitAfter(whole, []byte("\n"))
	f.Add(bytes.Join([][]byte{lines[1], lines[0], lines[2]}, nil))
	// Other spellings of the first line, each of which a reader other
	// than ReadJSONL could take otherwise: a repeated key, a key in
	// another case, a time in another zone, an escaped letter, a hash in
	// upper case.
	rest := bytes.Join(lines[1:], nil)
	for _, sub := range [][2]string{
		{`"reason":`, `"reason":"decoy","reason":`},
		{`"reason":`, `"Reason":`},
		{`Z"`, `+00:00"`},
		{`"tenant_id":"a`, `"tenant_id":"\u0061`},
	} {
		f.Add(append(bytes.Replace(lines[0], []byte(sub[0]), []byte(sub[1]), 1), rest...))
	}
	upper := bytes.Clone(lines[0])
	i := bytes.Index(upper, []byte(`"hash":"`)) + len(`"hash":"`)
	copy(upper[i:], bytes.ToUpper(upper[i:i+64]))
	f.Add(append(upper, rest...))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, verr := sa.VerifyJSONL(bytes.NewReader(data))
		var evs []sa.Event
		rerr := sa.ReadJSONL(bytes.NewReader(data), func(e sa.Event) error { evs = append(evs, e); return nil })
		if rerr != nil {
			require.ErrorIs(t, rerr, sa.ErrInvalidInput)
			require.Error(t, verr, "VerifyJSONL accepts no export ReadJSONL refuses")
			return
		}
		// Every accepted line, as a generic reader sees it.
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 64<<20)
		var links []r152Link
		i := 0
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			require.Less(t, i, len(evs))
			p, ok := checkAcceptedLine(t, line, evs[i])
			links = append(links, r152Link{p, ok})
			i++
		}
		require.NoError(t, sc.Err())
		require.Equal(t, len(evs), i, "one event per non-blank line")
		if verr != nil {
			if !errors.Is(verr, sa.ErrTampered) {
				require.ErrorIs(t, verr, sa.ErrInvalidInput)
			}
			return
		}
		r152Reverify(t, evs, links, rep)
	})
}

// r152Link is an accepted line's prev_hash.
type r152Link struct {
	prev    []byte
	hasPrev bool
}

// r152Reverify re-verifies the events of an export VerifyJSONL accepted,
// from the rules of its doc comment, and compares the report.
func r152Reverify(t *testing.T, evs []sa.Event, links []r152Link, rep sa.VerifyReport) {
	t.Helper()
	// Independent re-verification.
	chains := map[string]*r152Chain{}
	var verified int64
	for i, e := range evs {
		c := chains[e.TenantID]
		l := links[i]
		if c == nil {
			switch {
			case l.hasPrev && e.Seq >= 1:
				require.False(t, e.Seq == 1 && len(l.prev) > 0, "a prev_hash before seq 1 verified")
				c = &r152Chain{from: sa.ChainLink{Seq: e.Seq - 1, Hash: l.prev}}
			case e.Seq == 1:
				c = &r152Chain{}
			default:
				require.Greater(t, e.Seq, int64(1), "a sequence number below 1 verified")
				chains[e.TenantID] = &r152Chain{from: sa.ChainLink{Seq: e.Seq, Hash: e.Hash}, head: sa.ChainLink{Seq: e.Seq, Hash: e.Hash}}
				continue
			}
			if len(c.from.Hash) == 0 {
				c.from.Hash = nil
			}
			c.head = c.from
			chains[e.TenantID] = c
		} else if l.hasPrev {
			require.Equal(t, hex.EncodeToString(c.head.Hash), hex.EncodeToString(l.prev), "a later prev_hash names the line before")
		}
		require.Equal(t, c.head.Seq+1, e.Seq, "consecutive sequence numbers (tenant %q)", e.TenantID)
		require.Equal(t, hex.EncodeToString(e.ChainHash(c.head.Hash)), hex.EncodeToString(e.Hash), "seq %d chains to the one before", e.Seq)
		c.head = sa.ChainLink{Seq: e.Seq, Hash: e.Hash}
		verified++
	}
	require.Equal(t, verified, rep.Events)
	require.Len(t, rep.Chains, len(chains))
	for tn, c := range chains {
		got, ok := rep.Chains[tn]
		require.True(t, ok, "tenant %q reported", tn)
		require.Equal(t, c.from.Seq, got.From.Seq)
		require.Equal(t, hex.EncodeToString(c.from.Hash), hex.EncodeToString(got.From.Hash))
		require.Equal(t, c.head.Seq, got.Head.Seq)
		require.Equal(t, hex.EncodeToString(c.head.Hash), hex.EncodeToString(got.Head.Hash))
	}
}

// r152CheckExport reads an export as FuzzReview152JSONLReverify does and
// requires it to verify.
func r152CheckExport(t *testing.T, data []byte) sa.VerifyReport {
	t.Helper()
	rep, err := sa.VerifyJSONL(bytes.NewReader(data))
	require.NoError(t, err)
	var evs []sa.Event
	require.NoError(t, sa.ReadJSONL(bytes.NewReader(data), func(e sa.Event) error { evs = append(evs, e); return nil }))
	var links []r152Link
	i := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		p, ok := checkAcceptedLine(t, line, evs[i])
		links = append(links, r152Link{p, ok})
		i++
	}
	r152Reverify(t, evs, links, rep)
	return rep
}

// r152AuditStore is a store that is its own audit log (the bundled ones).
type r152AuditStore interface {
	sa.Store
	Record(ctx context.Context, e sa.Event) error
}

// TestReview152ExportIdenticalOnEveryBackend: the same events recorded on
// the memstore and on each SQL store export byte for byte alike (the
// chain hash is computed from the fields alone: "Anyone can recompute it
// from an export"), and each export re-verifies independently. Awkward
// values: a line separator, HTML characters, CRLF and tabs, trailing
// spaces, non-compact and non-JSON Before/After, a zero GrantID.
func TestReview152ExportIdenticalOnEveryBackend(t *testing.T) {
	at := storetest.Epoch.Truncate(time.Microsecond)
	var evs []sa.Event
	for i, x := range []struct {
		tenant, reason string
		attrs          map[string]string
		before, after  []byte
	}{
		{"acme", "why\r\nnot\t ", map[string]string{sa.AttrPath: "/a\u2028<&>", "k ": "v "}, nil, []byte(`{"a":1}`)},
		{"globex", "", nil, []byte(`{"a": 1}`), []byte("\x00\xff binary")},
		{"acme", "Ève 😀", map[string]string{"é": ""}, []byte(`[1,2]`), nil},
		{"acme ", "trailing-space tenant", nil, nil, nil},
		{"acme", "", map[string]string{}, []byte{}, []byte(`"\u2028"`)},
	} {
		e := sa.Event{ID: uuid.NewSHA1(uuid.Nil, []byte{byte(i)}), Time: at.Add(time.Duration(i) * time.Second), Type: sa.EventSupportRequest,
			TenantID: x.tenant, Actor: sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example", Name: "Ève "}, Reason: x.reason,
			Attrs: x.attrs, Before: x.before, After: x.after}
		if i%2 == 1 {
			e.GrantID = uuid.NewSHA1(uuid.Nil, []byte("g"))
		}
		evs = append(evs, e)
	}
	export := func(t *testing.T, st r152AuditStore) []byte {
		m, err := sa.NewManager(st)
		require.NoError(t, err)
		for _, e := range evs {
			require.NoError(t, st.Record(ctx, e))
		}
		var buf bytes.Buffer
		n, err := m.ExportAudit(ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain})
		require.NoError(t, err)
		require.Equal(t, len(evs), n)
		rep := r152CheckExport(t, buf.Bytes())
		require.EqualValues(t, len(evs), rep.Events)
		return buf.Bytes()
	}
	want := export(t, memstore.New())
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			got := export(t, sqltest.NewStore(t, d))
			require.Equal(t, string(want), string(got), "the same events export alike on %v", d)
		})
	}
}

// ---------------------------------------------------------------------
// The canonical encoding.

// r152Norm is what the canonical encoding is documented to keep of e:
// every field but Hash, Time to the microsecond (zone and monotonic
// reading aside), empty Attrs, Before and After as none.
func r152Norm(e sa.Event) sa.Event {
	e.Hash = nil
	if !e.Time.IsZero() {
		e.Time = time.UnixMicro(e.Time.UnixMicro()).UTC()
	}
	if len(e.Attrs) == 0 {
		e.Attrs = nil
	}
	if len(e.Before) == 0 {
		e.Before = nil
	}
	if len(e.After) == 0 {
		e.After = nil
	}
	return e
}

// r152Attrs builds Attrs from "k=v" lines.
func r152Attrs(s string) map[string]string {
	if s == "" {
		return nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// FuzzReview152CanonicalInjective: ChainHash covers "every field but Hash"
// so that "any change … breaks the chain": an event changed in one field
// (or by moving bytes from one field to the next, the classic ambiguity
// of concatenations) hashes differently whenever the change is one the
// encoding is documented to keep, and identically otherwise (attribute
// order, time zone, nanoseconds, nil versus empty).
func FuzzReview152CanonicalInjective(f *testing.F) {
	f.Add("acme", "support.request", "support", "eve", "Eve", "why", "path=/x\nmethod=GET", []byte(`{}`), []byte(nil), int64(3), int64(1773500966535897), uint8(0), "acme2", []byte("x"), int64(4), uint8(1))
	f.Add("ab", "c", "", "", "", "", "", []byte(nil), []byte(nil), int64(0), int64(0), uint8(9), "", []byte(nil), int64(0), uint8(1))
	f.Add("a", "", "", "", "", "", "=\n=", []byte{}, []byte{}, int64(-1), int64(-62135596800000000), uint8(7), "k=v", []byte{0}, int64(1), uint8(0))
	for which := uint8(0); which < 14; which++ { // each field changed once
		f.Add("acme", "t", "support", "eve", "Eve", "why", "a=1\nb=2", []byte(`{"x":1}`), []byte("y"), int64(3), int64(1773500966535897), which, "other", []byte("z"), int64(5), uint8(which%4))
	}
	f.Fuzz(func(t *testing.T, tenant, typ, kind, actorID, actorName, reason, attrs string, before, after []byte,
		seq, micros int64, which uint8, alt string, altB []byte, altN int64, shift uint8) {
		when := time.Time{}
		if micros != 0 {
			when = time.UnixMicro(micros % 9e15).In(time.FixedZone("x", 3600))
		}
		e1 := sa.Event{Seq: seq, ID: uuid.NewSHA1(uuid.Nil, []byte(tenant)), Time: when, Type: sa.EventType(typ), TenantID: tenant,
			GrantID: uuid.NewSHA1(uuid.Nil, []byte(typ)), Actor: sa.Actor{Kind: sa.ActorKind(kind), ID: actorID, Name: actorName},
			Reason: reason, Attrs: r152Attrs(attrs), Before: before, After: after}
		e2 := e1.Clone()
		// The string fields in encoding order, to change one or shift
		// bytes between neighbours.
		strs := []*string{&e2.TenantID, (*string)(&e2.Actor.Kind), &e2.Actor.ID, &e2.Actor.Name, &e2.Reason}
		switch k := int(which) % 14; k {
		case 0, 1, 2, 3, 4:
			*strs[k] = alt
		case 5:
			e2.Type = sa.EventType(alt)
		case 6:
			e2.Attrs = r152Attrs(alt)
		case 7:
			e2.Before = altB
		case 8:
			e2.After = altB
		case 9:
			e2.Seq = altN
		case 10:
			if altN == 0 {
				e2.Time = time.Time{}
			} else {
				e2.Time = time.UnixMicro(altN % 9e15)
			}
		case 11:
			e2.ID = uuid.NewSHA1(uuid.Nil, []byte(alt))
		case 12:
			// Bytes moved from the end of one string field to the start
			// of the next.
			j := int(shift) % (len(strs) - 1)
			a, b := strs[j], strs[j+1]
			n := int(altN&0xff) % (len(*a) + 1)
			*a, *b = (*a)[:len(*a)-n], (*a)[len(*a)-n:]+*b
		case 13:
			// Before and After: bytes moved across.
			n := int(altN&0xff) % (len(e2.Before) + 1)
			e2.Before, e2.After = bytes.Clone(e2.Before[:len(e2.Before)-n]), append(bytes.Clone(e2.Before[len(e2.Before)-n:]), e2.After...)
		}
		if shift&1 == 1 { // nanoseconds and another zone: not kept
			if !e2.Time.IsZero() {
				e2.Time = e2.Time.Add(time.Duration(altN&0x3ff) % time.Microsecond).UTC()
			}
		}
		prev := []byte(alt)
		c1, c2 := e1.AppendCanonicalForTest(nil, prev), e2.AppendCanonicalForTest(nil, prev)
		if reflect.DeepEqual(r152Norm(e1), r152Norm(e2)) {
			require.Equal(t, c1, c2, "the same event encodes the same way")
			require.Equal(t, e1.ChainHash(prev), e2.ChainHash(prev))
		} else {
			require.NotEqual(t, c1, c2, "different events never encode alike:\n%+v\n%+v", e1, e2)
			require.NotEqual(t, e1.ChainHash(prev), e2.ChainHash(prev))
		}
		// prev is covered too: another prev, another hash.
		require.NotEqual(t, e1.ChainHash(prev), e1.ChainHash(append(bytes.Clone(prev), 0)))
	})
}

// ---------------------------------------------------------------------
// The middleware: scope mapping and the audited request line.

// r152SafeMethod reports the doc's read-only methods.
func r152SafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// r152Overrides are the override headers the docs name.
var r152Overrides = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// r152CleanOK reports a value the audit may record: valid UTF-8 without
// control characters ("control characters and invalid UTF-8 in what a
// request … supplied are replaced by U+FFFD").
func r152CleanOK(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, r152Control)
}

// r152Userinfo returns the user information a server reads in the
// request target (absolute form, or a CONNECT's authority form), "" when
// it has none.
func r152Userinfo(target, method string) string {
	if method == http.MethodConnect && !strings.HasPrefix(target, "/") {
		target = "http://" + target
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.String()
}

// FuzzReview152RawRequestAudit: requests parsed from raw bytes
// (http.ReadRequest, as a server reads them; or with a method a handler
// set, any bytes) pass the middleware, with a read-only grant, exactly
// when their method is GET, HEAD or OPTIONS and no override header value
// names another method ("Method-override headers never lower it"); the
// one event recorded carries the method as received (cleaned, at most 32
// bytes), the override methods as AttrMethodOverride documents, the
// escaped path without its query (at most 1 024 bytes, "..." marking a
// cut), and a request target only without user information
// ("credentials are never recorded"), every value clean.
func FuzzReview152RawRequestAudit(f *testing.F) {
	f.Add("GET", "/x?token=1", "X-HTTP-Method-Override: DELETE\r\n", "")
	f.Add("GET", "http://user:secretpw@example.com/a/b?q=1", "", "")
	f.Add("CONNECT", "user:secretpw@example.com:443", "", "")
	f.Add("OPTIONS", "*", "X-Http-Method: get\r\nX-Http-Method: PUT\r\n", "")
	f.Add("HEAD", "/%e2%80%ae/%FF/"+strings.Repeat("%41", 400)+"/end", "X-Method-Override:  head \r\nX-HTTP-Method-Override: Get\r\n", "")
	f.Add("GET", "/a|b/é", "", "g\u00e9t\x00\u202e")
	f.Add("GET", "HTTP://u:p%40w@h/x", "X-Http-Method-Override: \r\n", "")
	f.Add("GET", "http://user:pass@word@example.com/x", "", "")
	f.Add("CONNECT", "user:pass@word@example.com:443", "", "")
	f.Add("GET", "/a/b", "X-Http-Method-Override: GET\r\nX-Http-Method-Override: POST\r\n", "")
	f.Add("POST", "/a", "X-Http-Method-Override: GET\r\n", "")
	f.Fuzz(func(t *testing.T, method, target, headers, setMethod string) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: example.com\r\n" + headers + "\r\n"
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		if setMethod != "" {
			r.Method = setMethod // a handler dispatching a request again
		}
		userinfo := r152Userinfo(r.RequestURI, method)

		store := memstore.New()
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(store, sa.WithNow(clock.Now))
		require.NoError(t, err)
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead}})
		require.NoError(t, err)
		sess := sa.Session{TenantID: "acme", Principal: storetest.Support.ID, SessionID: "s-1"}
		called := false
		h := m.Middleware(func(*http.Request) (sa.Session, bool) { return sess, true })(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			called = true
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)

		safe := r152SafeMethod(r.Method)
		var overrides []string
		for _, k := range r152Overrides {
			for _, v := range r.Header.Values(k) {
				switch strings.ToUpper(strings.TrimSpace(v)) {
				case "", http.MethodGet, http.MethodHead, http.MethodOptions:
				default:
					safe = false
				}
			}
			if v := strings.ToUpper(strings.TrimSpace(r.Header.Get(k))); v != "" {
				if len(v) > 32 || !r152CleanOK(v) {
					v = "" // cleaned: checked for cleanliness below only
				}
				if !slices.Contains(overrides, v) {
					overrides = append(overrides, v)
				}
			}
		}
		require.Equal(t, safe, called, "a read-only grant lets %q (overrides %v) through exactly when it reads", r.Method, r.Header)

		evs, err := store.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventSupportRequest, sa.EventAccessDenied}})
		require.NoError(t, err)
		require.Len(t, evs, 1, "one event per request")
		a := evs[0].Attrs
		for k, v := range a {
			require.True(t, r152CleanOK(v), "attribute %s=%q is clean", k, v)
		}
		if len(r.Method) <= 32 && r152CleanOK(r.Method) {
			require.Equal(t, r.Method, a[sa.AttrMethod], "the method as received")
		} else {
			require.LessOrEqual(t, len(a[sa.AttrMethod]), 32)
		}
		if !slices.Contains(overrides, "") {
			require.Equal(t, strings.Join(overrides, ","), a[sa.AttrMethodOverride])
		}
		esc := r.URL.EscapedPath()
		p := a[sa.AttrPath]
		require.LessOrEqual(t, len(p), 1024)
		require.NotContains(t, p, "?")
		if len(esc) <= 1024 {
			require.Equal(t, esc, p, "the escaped path")
		} else {
			head, tail, ok := strings.Cut(p, "...")
			require.True(t, ok, "a cut path is marked")
			require.True(t, strings.HasPrefix(esc, head) && strings.HasSuffix(esc, tail), "a cut keeps both ends")
		}
		tgt, hasTarget := a[sa.AttrRequestTarget]
		if hasTarget {
			require.LessOrEqual(t, len(tgt), 1024)
			require.NotContains(t, tgt, "?")
			require.Empty(t, r152Userinfo(tgt, method), "no user information in the recorded target %q", tgt)
		}
		if userinfo != "" {
			for k, v := range a {
				require.NotContains(t, v, userinfo+"@", "credentials %q recorded in %s", userinfo, k)
			}
			if pw, ok := r.URL.User.Password(); ok && len(pw) >= 6 && !strings.Contains(r.URL.Host+r.URL.Path, pw) {
				for k, v := range a {
					require.NotContains(t, v, pw, "password recorded in %s", k)
				}
			}
		}
	})
}
