package supportaccess

import "errors"

// Sentinel errors. Every error returned by the Manager wraps at most one of
// these (plus context naming the operation and, for ErrInvalidInput, the
// field); compare with errors.Is, never by message.
var (
	// ErrNoActiveGrant means no active grant of the tenant covers the
	// principal: there is none, it has not started, it expired or it was
	// revoked. Access must be denied.
	ErrNoActiveGrant = errors.New("supportaccess: no active grant")
	// ErrNotFound means the grant or request with the given ID does not exist.
	ErrNotFound = errors.New("supportaccess: not found")
	// ErrForbidden means the actor is not allowed to perform the action (the
	// Authorizer or a built-in rule refused it), or the policy forbids what
	// was asked (for example an unlimited grant).
	ErrForbidden = errors.New("supportaccess: forbidden")
	// ErrInvalidInput means an argument is malformed, out of the policy's
	// limits, or the target is in a state that does not allow the operation
	// (for example revoking an expired grant). The message names the field.
	ErrInvalidInput = errors.New("supportaccess: invalid input")
	// ErrScopeNotGranted means an active grant covers the principal but none
	// of the active grants includes the scope asked for.
	ErrScopeNotGranted = errors.New("supportaccess: scope not granted")
	// ErrConflict means the store refused a write that collides with
	// another: an ID that exists already, or a transaction the database
	// aborted as a deadlock or serialisation failure (sqlstore); retrying
	// the call may succeed. Races the Manager judges itself are not
	// conflicts: of two replicas revoking one grant at once, the loser
	// gets ErrInvalidInput (the grant is already revoked). The middleware
	// and RecordChange also refuse with ErrConflict when the grants they
	// found kept ending on this Manager as they were found (RevokeTenant
	// running meanwhile, say).
	ErrConflict = errors.New("supportaccess: conflicting concurrent change")
	// ErrClosed means the Manager was closed (Manager.Close): RunExpiry
	// returns it once Close stopped it, and at once when called after.
	ErrClosed = errors.New("supportaccess: manager closed")
)

// isSentinel reports whether err is one of the library's sentinel errors.
func isSentinel(err error) bool {
	switch err {
	case ErrNoActiveGrant, ErrNotFound, ErrForbidden, ErrInvalidInput, ErrScopeNotGranted, ErrConflict, ErrClosed,
		ErrTampered, ErrSessionEnded:
		return true
	}
	return false
}
