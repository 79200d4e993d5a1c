package supportaccess

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strings"
)

// Denial codes: Denial.Code, and the "error" field of the default JSON body.
// They name no grant, tenant or internal error and are safe to show.
const (
	// DeniedAccess: no active grant allows this request (none at all, other
	// tenant, other principal, scope missing, malformed session). Status
	// 403. A panic of the resolver is no denial: it propagates (see
	// Manager.Middleware).
	DeniedAccess = "access_denied"
	// DeniedMFARequired: the principal must log in with a second factor
	// (RequireMFA). Status 403.
	DeniedMFARequired = "mfa_required"
	// DeniedSessionEnded: the request's support access ended while it ran,
	// before its response started: its grant was revoked or expired with no
	// other grant to go on with, a scope it used is no longer granted
	// (errors.Is(Denial.Err, ErrScopeNotGranted): the session's next
	// request may be admitted), or a re-check or the audit failed (fail
	// closed). Denial.Err wraps ErrSessionEnded with the reason. Status 403.
	DeniedSessionEnded = "session_ended"
	// DeniedUnavailable: access could not be verified or the request could
	// not be audited (store or auditor failure); the request was refused,
	// fail closed. Status 503, with Retry-After.
	DeniedUnavailable = "unavailable"
)

// Denial tells a denied handler (WithDeniedHandler) why a request of an
// impersonated session is refused. Only Status and Code are meant for the
// client; Reason and Err are for logs.
type Denial struct {
	// Status is the HTTP status to send: 403, or 503 for DeniedUnavailable.
	Status int
	// Code is one of the Denied… constants.
	Code string
	// Session is the resolved session.
	Session Session
	// Reason is the reason recorded in the audit trail.
	Reason string
	// Err is the underlying error, if any. For DeniedAccess,
	// errors.Is(Err, ErrScopeNotGranted) tells a missing scope (a POST
	// under a read-only grant, say) from no grant at all
	// (ErrNoActiveGrant), for a handler that words them differently.
	Err error
}

// message is the short human-readable text of a denial code.
func denialMessage(code string) string {
	switch code {
	case DeniedMFARequired:
		return "Support access requires a two-factor login."
	case DeniedSessionEnded:
		return "Support access has ended."
	case DeniedUnavailable:
		return "Support access cannot be verified right now. Try again later."
	default:
		return "Support access does not allow this request."
	}
}

// DefaultDeniedHandler writes the default denial response: status d.Status
// (403 for one outside 400–599), Cache-Control: no-store, Retry-After for a
// 503, and a one-line body with a fixed message for d.Code: as JSON
// ({"error":…,"message":…}, the error being d.Code when it is one of
// DeniedMFARequired, DeniedSessionEnded and DeniedUnavailable, else
// DeniedAccess) when the Accept header lists application/json or a +json
// type, as plain text (the message only) otherwise. A WithDeniedHandler
// function may call it for the requests it does not handle itself.
func DefaultDeniedHandler(w http.ResponseWriter, r *http.Request, d Denial) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if d.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	code, msg := d.Code, denialMessage(d.Code)
	if code != DeniedMFARequired && code != DeniedSessionEnded && code != DeniedUnavailable {
		code = DeniedAccess
	}
	var body string
	if acceptsJSON(r) {
		h.Set("Content-Type", "application/json; charset=utf-8")
		body = `{"error":"` + code + `","message":"` + msg + `"}` + "\n"
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		body = msg + "\n"
	}
	status := d.Status
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	w.WriteHeader(status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

// acceptsJSON reports whether the Accept header lists application/json or a
// structured +json type with a non-zero quality.
func acceptsJSON(r *http.Request) bool {
	if r == nil {
		return false
	}
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok && strings.Trim(q, "0.") == "" {
				continue // q=0: not acceptable
			}
			if mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") {
				return true
			}
		}
	}
	return false
}

// clearEntityHeaders removes the headers a handler may have set for the
// response it meant to send, before a denial replaces it.
func clearEntityHeaders(h http.Header) {
	for _, k := range [...]string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Disposition",
		"Content-Range", "Etag", "Last-Modified", "Location", "Set-Cookie", "Trailer"} {
		h.Del(k)
	}
}

// denyKind classifies a Check error into status, code and audit reason.
func denyKind(err error, scope Scope) (status int, code, reason string) {
	switch {
	case errors.Is(err, ErrNoActiveGrant):
		return http.StatusForbidden, DeniedAccess, "no active grant"
	case errors.Is(err, ErrScopeNotGranted):
		return http.StatusForbidden, DeniedAccess, "scope not granted: " + string(scope)
	case errors.Is(err, ErrInvalidInput):
		return http.StatusForbidden, DeniedAccess, "invalid session or scope"
	case errors.Is(err, context.Canceled):
		// The client went away (or the server is shutting down); nobody
		// reads the answer, but it is still a refusal.
		return http.StatusServiceUnavailable, DeniedUnavailable, "check failed: request cancelled"
	default:
		return http.StatusServiceUnavailable, DeniedUnavailable, "check failed"
	}
}
