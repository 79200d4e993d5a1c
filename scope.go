package supportaccess

import "slices"

// Scope names something a grant allows. ScopeRead covers safe HTTP methods,
// ScopeWrite covers changes and implies ScopeRead; any other value is an
// elevated, host-defined scope (for example "messages:read") that must be
// granted explicitly and is implied by nothing. Scopes are case-sensitive,
// and another spelling of read or write ("Write", "READ") is refused with
// ErrInvalidInput wherever a scope is given (a policy's default scopes,
// grants, access requests, checks), rather than taken as a host scope that
// allows nothing.
type Scope string

// Built-in scopes.
const (
	ScopeRead  Scope = "read"
	ScopeWrite Scope = "write"
)

// hasScope reports whether scopes allow s: a listed scope allows itself and
// ScopeWrite also allows ScopeRead.
func hasScope(scopes []Scope, s Scope) bool {
	for _, x := range scopes {
		if x == s || (s == ScopeRead && x == ScopeWrite) {
			return true
		}
	}
	return false
}

// normalizeScopes returns scopes sorted and without duplicates, as stored.
func normalizeScopes(in []Scope) []Scope {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
