package supportaccess

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Input limits, in bytes (UTF-8). Values longer than these, containing
// control characters (NUL included; Reason may contain line feeds,
// CRLF line breaks and tabs, but no lone carriage return;
// bidirectional embedding, override and isolate controls count as control
// characters) or invalid UTF-8 are refused with ErrInvalidInput naming the
// field. Identifiers (tenant IDs, principals, actor IDs, ticket refs,
// session and subject user IDs) given to Grant, Check, access requests,
// delegation and the middleware may not contain invisible characters
// either (Unicode format characters such as zero-width characters,
// directional marks, the byte order mark and tag characters; other
// default-ignorable code points; variation selectors; spaces other than
// U+0020, U+0020 at either end or twice in a row, which an HTML view
// shows as one; the Braille blank, the Khitan small script filler and the
// musical null notehead);
// filters, cursors, VerifyAudit, PurgeAudit, RevokeTenant and RevokeTicket
// accept them, so that data stored before this rule stays reachable.
const (
	MaxTenantIDLen  = 128
	MaxPrincipalLen = 320 // an e-mail address at most
	MaxActorNameLen = 200
	MaxReasonLen    = 2000
	MaxTicketRefLen = 128
	MaxScopeLen     = 64
	MaxGrantees     = 100
	MaxScopes       = 32
	MaxListLimit    = 10000
	MaxFilterTypes  = 256 // entries of AuditFilter.Types
)

// SWAR constants: one byte value repeated over a 64-bit word.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// asciiPrefix returns the length of s's longest prefix of printable ASCII
// (0x20–0x7e), eight bytes at a time: a word qualifies when no byte has its
// high bit set, none is 0x7f (adding 1 to each byte, which cannot carry
// below 0x80, sets a high bit) and none is below 0x20 (the classic
// "has a byte less than n" test, exact for n <= 128). The tail and the word
// that fails are finished a byte at a time. doubleSpace reports two
// spaces in a row within that prefix.
func asciiPrefix(s string) (n int, doubleSpace bool) {
	i := 0
	var carry uint64 // the last word's top byte was a space: 0x80
	for ; i+8 <= len(s); i += 8 {
		b := s[i : i+8] // constant length: no bounds checks, one 64-bit load
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if w&highs != 0 || (w+ones)&highs != 0 || (w-0x20*ones)&^w&highs != 0 {
			break
		}
		// The spaces of the word, exactly (adding 0x7f to each byte's low
		// seven bits cannot carry into the next byte): a high bit per
		// space; two in a row, or one at the start after the last word's
		// top byte, are a pair.
		x := w ^ 0x20*ones
		sp := ^((x&^highs + ^highs&(0x7f*ones)) | x) & highs
		doubleSpace = doubleSpace || sp&(sp<<8|carry) != 0
		carry = sp >> 56
	}
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		doubleSpace = doubleSpace || s[i] == ' ' && i > 0 && s[i-1] == ' '
		i++
	}
	return i, doubleSpace
}

// blank reports whether s shows nothing: it holds only white space and
// characters hiddenRune names (a reason a policy requires must say
// something).
func blank(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) && !hiddenRune(r) {
			return false
		}
	}
	return true
}

// controlRune reports whether r is a character no text field may hold
// (outside the line breaks and tabs of a multi-line field): C0 controls,
// DEL, C1 controls, the Unicode line and paragraph separators, and the
// bidirectional embedding, override and isolate controls (U+202A–U+202E,
// U+2066–U+2069), which reorder how the text around them is displayed —
// a reason could then read differently in an audit view than it is.
func controlRune(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// hiddenRune reports whether r is a character an identifier may not hold
// because it is invisible or passes for an ASCII space: Unicode format
// characters (zero-width space and joiners, directional marks, the byte
// order mark, tag characters…), the other default-ignorable code points,
// variation selectors, the space separators other than U+0020 (no-break,
// figure, ideographic space…), the Braille blank, the Khitan small script
// filler (U+16FE4, a blank mark Go's tables do not list among the
// default-ignorable code points) and the musical null notehead (U+1D159,
// drawn as nothing). With them two tenant
// IDs or principals could look the same in an audit view and be
// different. (Look-alike letters of other scripts and unnormalised
// accents are not refused: hosts that need that use ASCII or normalised
// identifiers.)
func hiddenRune(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) ||
		r != ' ' && unicode.Is(unicode.Zs, r) || r == 0x2800 || r == 0x16fe4 || r == 0x1d159
}

// textKind is what a string field holds, for checkText.
type textKind uint8

const (
	oneLine  textKind = iota // free text on one line (a name)
	lines                    // free text; line feeds, CRLF and tabs allowed (a reason)
	identity                 // an identifier: one line, nothing invisible (see hiddenRune)
)

// checkText validates one string field.
func checkText(field, s string, maxLen int, required bool, kind textKind) error {
	if s == "" {
		if required {
			return fmt.Errorf("%w: %s is required", ErrInvalidInput, field)
		}
		return nil
	}
	if len(s) > maxLen {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidInput, field, maxLen)
	}
	if kind == identity && (s[0] == ' ' || s[len(s)-1] == ' ') {
		// "SUP-1042 " reads as SUP-1042 everywhere, yet is another
		// ticket to RevokeTicket, another grantee to Check.
		return fmt.Errorf("%w: %s begins or ends with a space", ErrInvalidInput, field)
	}
	i, pair := asciiPrefix(s)
	for i < len(s) {
		c := s[i]
		if c == ' ' && i > 0 && s[i-1] == ' ' {
			pair = true
		}
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				// A carriage return only before a line feed (a browser's
				// textarea sends CRLF): alone it sends a terminal back
				// to the start of the line, so that what follows
				// overwrites what came before.
				if kind != lines || (c != '\n' && c != '\t' && (c != '\r' || i+1 == len(s) || s[i+1] != '\n')) {
					return fmt.Errorf("%w: %s contains a control character", ErrInvalidInput, field)
				}
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidInput, field)
		}
		if controlRune(r) {
			return fmt.Errorf("%w: %s contains a control character", ErrInvalidInput, field)
		}
		if kind == identity && hiddenRune(r) {
			return fmt.Errorf("%w: %s contains an invisible character (U+%04X)", ErrInvalidInput, field, r)
		}
		i += n
	}
	if kind == identity && pair {
		// "SUP  1042" shows as "SUP 1042" on any HTML page (a run of
		// spaces collapses), yet is another ticket to RevokeTicket.
		return fmt.Errorf("%w: %s holds two spaces in a row", ErrInvalidInput, field)
	}
	return nil
}

func validateTenant(field, s string) error {
	return checkText(field, s, MaxTenantIDLen, true, identity)
}

// validateTenantRef checks a tenant ID that only selects stored data (a
// filter, a cursor, the tenant to verify, purge or revoke): the rules of
// validateTenant but for invisible characters, so that data stored before
// identifiers refused them stays reachable — to read, export, verify,
// purge and revoke.
func validateTenantRef(field, s string) error {
	return checkText(field, s, MaxTenantIDLen, true, oneLine)
}

// validateTicketRef is validateTenantRef's rule for a ticket reference.
func validateTicketRef(field, s string) error {
	return checkText(field, s, MaxTicketRefLen, false, oneLine)
}

func validatePrincipal(field, s string) error {
	return checkText(field, s, MaxPrincipalLen, true, identity)
}

// validateScope accepts 1–64 bytes of ASCII letters, digits and : . _ / -,
// but not another spelling of read or write ("Write" would be a host scope
// that allows no writes).
func validateScope(field string, s Scope) error {
	if s == ScopeRead || s == ScopeWrite {
		return nil
	}
	if strings.EqualFold(string(s), string(ScopeRead)) || strings.EqualFold(string(s), string(ScopeWrite)) {
		return fmt.Errorf("%w: %s: scope %q: scopes are case-sensitive; the built-in ones are %q and %q", ErrInvalidInput, field, string(s), ScopeRead, ScopeWrite)
	}
	if s == "" {
		return fmt.Errorf("%w: %s: scope is empty", ErrInvalidInput, field)
	}
	if len(s) > MaxScopeLen {
		return fmt.Errorf("%w: %s: scope is longer than %d bytes", ErrInvalidInput, field, MaxScopeLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == ':' || c == '.' || c == '_' || c == '/' || c == '-') {
			return fmt.Errorf("%w: %s: scope %q may contain only letters, digits and : . _ / -", ErrInvalidInput, field, string(s))
		}
	}
	return nil
}

// ValidateActor reports whether a is a well-formed actor: a known kind, an
// ID of 1–320 bytes and a name of at most 200 bytes, valid UTF-8 without
// control characters; the ID, an identifier, also without invisible
// characters and not beginning or ending with a space. Errors wrap
// ErrInvalidInput.
func ValidateActor(a Actor) error { return validateActor("actor", a) }

func validateActor(field string, a Actor) error {
	if !a.Kind.Valid() {
		return fmt.Errorf("%w: %s.Kind %q is not customer, support or system", ErrInvalidInput, field, string(a.Kind))
	}
	if err := checkText(field+".ID", a.ID, MaxPrincipalLen, true, identity); err != nil {
		return err
	}
	return checkText(field+".Name", a.Name, MaxActorNameLen, false, oneLine)
}

func validateReason(field, s string) error { return checkText(field, s, MaxReasonLen, false, lines) }

func validateTicket(field, s string) error {
	return checkText(field, s, MaxTicketRefLen, false, identity)
}

// validateGrantInput checks the shape of in (not the policy).
func validateGrantInput(in *GrantInput) error {
	if err := validateTenant("TenantID", in.TenantID); err != nil {
		return err
	}
	if err := validateActor("By", in.By); err != nil {
		return err
	}
	if len(in.Grantees) > MaxGrantees {
		return fmt.Errorf("%w: Grantees has more than %d entries", ErrInvalidInput, MaxGrantees)
	}
	for i, p := range in.Grantees {
		if err := validatePrincipal(fmt.Sprintf("Grantees[%d]", i), p); err != nil {
			return err
		}
	}
	if err := validateScopes("Scopes", in.Scopes); err != nil {
		return err
	}
	if err := validateReason("Reason", in.Reason); err != nil {
		return err
	}
	return validateTicket("TicketRef", in.TicketRef)
}

func validateScopes(field string, scopes []Scope) error {
	if len(scopes) > MaxScopes {
		return fmt.Errorf("%w: %s has more than %d entries", ErrInvalidInput, field, MaxScopes)
	}
	for _, s := range scopes {
		if err := validateScope(field, s); err != nil {
			return err
		}
	}
	return nil
}

func validateCheck(tenantID, principal string, scope Scope) error {
	if err := validateTenant("tenantID", tenantID); err != nil {
		return err
	}
	if err := validatePrincipal("principal", principal); err != nil {
		return err
	}
	return validateScope("scope", scope)
}

func validateListFilter(f ListFilter) error {
	if f.TenantID != "" {
		if err := validateTenantRef("TenantID", f.TenantID); err != nil {
			return err
		}
	}
	for _, s := range f.Statuses {
		if !s.Valid() {
			return fmt.Errorf("%w: Statuses: unknown status %q", ErrInvalidInput, string(s))
		}
	}
	if err := validateTicketRef("TicketRef", f.TicketRef); err != nil {
		return err
	}
	if f.Limit < 0 || f.Limit > MaxListLimit {
		return fmt.Errorf("%w: Limit must be between 0 and %d", ErrInvalidInput, MaxListLimit)
	}
	return nil
}
