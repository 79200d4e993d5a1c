package supportaccess

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxChangeValueLen caps the JSON encoding of each of RecordChange's before
// and after values, in bytes.
const MaxChangeValueLen = 1 << 20

// maxWhatLen caps RecordChange's what.
const maxWhatLen = 200

// RecordChange records a support.change event for a configuration change
// that support makes in the impersonated request ctx belongs to: what names
// the setting (for example "sso.enforced"), before and after are its values,
// stored as JSON as encoding/json writes them (a json.RawMessage keeps its
// value, compacted and with <, > and & escaped; nil stores no value, for a
// creation or a deletion). The event carries the tenant, the grant and
// the session of ctx (actor: the support principal; Attrs: what, method,
// path, scope, session_id, subject_user_id, and elevated_grant_ids when
// other grants allow some of the request's scopes, as in support.request).
//
// Call it before committing the change and abort the change when it
// returns an error: that is how a change by support is never made without
// its audit event. For a request that is not impersonated (no support
// session in ctx) it records nothing and returns nil, so handlers may call
// it for every change.
//
// Before recording, RecordChange checks with the store, at once, that
// every scope the request uses is still allowed, and that write is — a
// change needs ScopeWrite also in a request whose method needed only read
// (a WebSocket console, a GraphQL mutation sent with GET): the middleware
// learns of a revocation or an expiry while the request runs only
// asynchronously, and a change must not be made after the access ended,
// however recently (when this Manager ended a grant the check had found,
// or the grant's end passed, before the check was through, the whole check
// is made again). A refusal of the request's scopes ends the request's
// support access; a refusal of write alone refuses the change and is
// audited as access.denied. The event is dated when the check was through
// and names the grants that allow the scopes at that moment (another
// grant may have taken over from the one that admitted the request).
//
// Errors, and then nothing is recorded:
//   - ErrSessionEnded (wrapped) when the support access of the request
//     ended;
//   - ErrScopeNotGranted when the request's grants still allow its own
//     scopes but none allows write (a write refused because no grant
//     covers the session any more ends the request: ErrSessionEnded);
//   - ErrInvalidInput when what is empty, too long or contains control
//     characters, or when a value cannot be encoded, is longer than
//     MaxChangeValueLen as JSON, encodes as JSON that is not valid UTF-8
//     (a json.RawMessage or a json.Marshaler's output holding invalid
//     bytes: encoding/json checks only their syntax), or holds a string or
//     map key that is not valid UTF-8 — encoding/json writes those bytes
//     as U+FFFD, so two values could read as one; they are refused by that
//     spelling, the escape \ufffd, also inside a string whose text is JSON
//     (as the ",string" option writes it, or a JSON document kept as
//     text; to four levels, and deeper JSON text holding a backslash is
//     refused), and a json.RawMessage may not hold it either, nor a lone
//     half of a surrogate pair (\ud800 to \udfff), which JSON readers
//     decode as U+FFFD; the error names the value, before or after;
//   - ErrConflict when the grants found kept ending on this Manager as
//     they were checked;
//   - the store's error (the check) or the auditor's.
//
// The check and the event happen even if the client has gone away (ctx's
// cancellation is ignored); they end at ctx's deadline, if it has one, or
// 5 s after they began when that is later (the middleware's audit grace):
// a change recorded close to the deadline is not refused for lack of the
// few milliseconds an auditor needs.
func RecordChange(ctx context.Context, what string, before, after any) error {
	st := stateFrom(ctx)
	if st == nil {
		return nil
	}
	if st.ended.Load() {
		return fmt.Errorf("record change: %w", endCause(st.reason()))
	}
	if err := checkText("what", what, maxWhatLen, true, oneLine); err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	b, err := changeJSON("before", before)
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	a, err := changeJSON("after", after)
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	actx, cancel := auditContext(ctx)
	defer cancel()
	h, err := st.holds(actx)
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	ev := requestEvent(st.m, EventSupportChange, h.at, st.sess, h.grant, st.servedLine(), h.scopes, "")
	ev.Attrs[AttrWhat] = what
	if h.elevated != "" {
		ev.Attrs[AttrElevatedGrantIDs] = h.elevated
	}
	ev.Before, ev.After = b, a
	if err := st.m.record(actx, ev); err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	return nil
}

// changeJSON encodes one value of RecordChange and refuses, with
// ErrInvalidInput naming field, an encoding that is not valid UTF-8.
func changeJSON(field string, v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidInput, field, err)
	}
	if len(b) > MaxChangeValueLen {
		return nil, fmt.Errorf("%w: %s is longer than %d bytes as JSON", ErrInvalidInput, field, MaxChangeValueLen)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: %s is not valid UTF-8 as JSON", ErrInvalidInput, field)
	}
	// encoding/json writes each invalid byte of a string or map key (its
	// own, or a TextMarshaler's text) as the escape \ufffd — a genuine
	// U+FFFD it writes as is — so "Acme\xff" and "Acme\xfe" would read as
	// the same value, two keys as one. Such an escape in the output is
	// refused (also one a json.RawMessage or Marshaler wrote itself).
	if coercedText(b) {
		return nil, fmt.Errorf("%w: %s holds a string or map key that is not valid UTF-8 (or the escape \\ufffd)", ErrInvalidInput, field)
	}
	return b, nil
}

// coercedText reports whether the JSON b holds an escape that reads as
// U+FFFD (hasReplacementEscape), also inside a string whose text is JSON
// itself, to maxJSONTextDepth levels: a string field with the ",string"
// option is encoded twice, and its escape then reads \\ufffd; a setting
// may keep a JSON document as text. Deeper still, a string whose text is
// JSON and holds a backslash is refused (fail closed).
func coercedText(b []byte) bool { return coercedTextAt(b, 0) }

// maxJSONTextDepth bounds how deep coercedText reads JSON in strings.
const maxJSONTextDepth = 4

// coercedTextAt is coercedText for b nested depth strings deep.
func coercedTextAt(b []byte, depth int) bool {
	if hasReplacementEscape(b) {
		return true
	}
	if bytes.IndexByte(b, '\\') < 0 {
		return false // no string holds a backslash (which \\ or \u005c spell)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // a number too large for a float64 is no error
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true // not read to the end: refused (fail closed)
		}
		s, ok := tok.(string)
		if !ok || strings.IndexByte(s, '\\') < 0 || !json.Valid([]byte(s)) {
			continue
		}
		if depth+1 >= maxJSONTextDepth || coercedTextAt([]byte(s), depth+1) {
			return true
		}
	}
}

// hasReplacementEscape reports whether the JSON b holds the escape
// \ufffd (in any case) or a surrogate escape (\ud800 to \udfff) that is
// not half of a pair, which JSON readers decode as U+FFFD, outside
// another escape: a backslash that is itself escaped (\\ufffd in the JSON
// is the text \ufffd) does not count.
func hasReplacementEscape(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		switch r := hexEscape(b, i); {
		case r == 0xfffd, r >= 0xdc00 && r <= 0xdfff: // a low half alone
			return true
		case r >= 0xd800 && r <= 0xdbff:
			if lo := hexEscape(b, i+6); lo < 0xdc00 || lo > 0xdfff {
				return true // a high half without its low half
			}
			i += 11 // the pair
			continue
		}
		i++ // skip the escaped character
	}
	return false
}

// hexEscape returns the code unit of the escape \uXXXX at b[i:], or -1.
func hexEscape(b []byte, i int) int {
	if i+5 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return -1
	}
	v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
	if err != nil {
		return -1
	}
	return int(v)
}
