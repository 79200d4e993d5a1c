package supportaccess

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
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
// however recently (a grant this Manager ended while the check answered
// is asked about again). A refusal of the request's scopes ends the
// request's support access; a refusal of write alone refuses the change
// and is audited as access.denied. The event names the grants that allow
// the scopes at that moment (another grant may have taken over from the
// one that admitted the request).
//
// Errors: an error wrapping ErrSessionEnded when the support access of the
// request ended; ErrScopeNotGranted (or ErrNoActiveGrant) when no grant
// allows write; ErrInvalidInput when what is empty, too long or contains
// control characters, or a value cannot be encoded, holds a string or map
// key that is not valid UTF-8 (encoding/json would write it as U+FFFD, so
// two values could read as one), encodes as JSON that is not valid UTF-8
// (a json.RawMessage or a json.Marshaler's output holding invalid bytes:
// encoding/json checks only their syntax; the error names the value,
// before or after) or is longer than MaxChangeValueLen, and then nothing
// is recorded; the store's error (the check) or the auditor's.
// The check and the event happen even if the client has gone away (ctx's
// cancellation is ignored), but not past ctx's deadline, if it has one.
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
	ev := requestEvent(st.m, EventSupportChange, st.m.now(), st.sess, h.grant, st.method, st.path, h.scopes, "")
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
	// encoding/json writes invalid UTF-8 in strings and map keys as
	// U+FFFD: "Acme\xff" and "Acme\xfe" would read as the same value, two
	// keys as one. The value encoded (so it holds no cycle) is walked for
	// them.
	if !validUTF8(reflect.ValueOf(v)) {
		return nil, fmt.Errorf("%w: %s holds a string or map key that is not valid UTF-8", ErrInvalidInput, field)
	}
	return b, nil
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// validUTF8 reports whether every string encoding/json takes from v — its
// strings, map keys and the text of its encoding.TextMarshalers — is valid
// UTF-8. A json.Marshaler's output is checked as a whole (changeJSON).
func validUTF8(v reflect.Value) bool {
	if !v.IsValid() {
		return true
	}
	t := v.Type()
	if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) {
		return true
	}
	if t.Kind() != reflect.Interface && t.Implements(textMarshalerType) {
		if t.Kind() == reflect.Pointer && v.IsNil() {
			return true // null
		}
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		return err != nil || utf8.Valid(b) // an error failed json.Marshal already
	}
	switch t.Kind() {
	case reflect.String:
		return utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		return v.IsNil() || validUTF8(v.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && f.Tag.Get("json") != "-" && !validUTF8(v.Field(i)) {
				return false
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if !validUTF8(it.Key()) || !validUTF8(it.Value()) {
				return false
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return true // []byte: base64
		}
		for i := range v.Len() {
			if !validUTF8(v.Index(i)) {
				return false
			}
		}
	}
	return true
}
