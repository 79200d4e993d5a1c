package supportaccess

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// AttrElevatedGrantIDs lists, comma-separated, the grants other than the
// event's GrantID that allowed a scope RequireScope demanded.
const AttrElevatedGrantIDs = "elevated_grant_ids"

// Audit limits for request attributes; longer values are cut (and marked
// with "..."): a method at its end, a path in its middle, keeping both its
// beginning and its end (which often names the action, as in
// /users/42/delete).
const (
	maxAuditPathLen   = 1024
	maxAuditMethodLen = 32
)

// requestScope is the scope an impersonated request needs by its method.
// Method-override headers never lower it: on a safe method, one that names
// another method raises it to ScopeWrite.
func requestScope(r *http.Request) Scope {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		if overridesUnsafe(r.Header) {
			return ScopeWrite
		}
		return ScopeRead
	}
	return ScopeWrite
}

// overrideHeaders are the method-override headers frameworks honour, in
// canonical form.
var overrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// auditOverride lists the methods r's method-override headers name: the
// first value of each (what Header.Get, and so a framework that honours
// the header, reads), upper-cased and cleaned as auditMethod cleans a
// method, in header order, once each, comma-separated; "" when there is
// none. Each header's, not the first header's: which header a host
// honours is the host's, and support, who chooses the headers, must not
// choose what the trail says was served by putting a decoy first. (Later
// values of a header, which such a framework ignores, count for the
// scope only: see overridesUnsafe.)
func auditOverride(r *http.Request) string {
	var ms []string
	for _, k := range overrideHeaders {
		vs := r.Header[k]
		if len(vs) == 0 {
			continue
		}
		if v := strings.TrimSpace(vs[0]); v != "" {
			if m := auditMethod(strings.ToUpper(v)); !slices.Contains(ms, m) {
				ms = append(ms, m)
			}
		}
	}
	return strings.Join(ms, ",")
}

// servedLine returns the request line the events of st record: st.line,
// with the method the handler chain set on the request in place, when it
// differs from the wire's, first among the overrides. A framework that
// honours a _method form field (gorilla/handlers'
// HTTPMethodOverrideHandler reads it before any header) changes r.Method
// so: the header a decoy names is not what was served. The scope was
// judged by the wire method and headers (see requestScope).
func (st *reqState) servedLine() requestLine {
	l := st.line
	if st.r == nil || st.r.Method == l.method {
		return l
	}
	m := auditMethod(st.r.Method)
	if m == l.method {
		return l
	}
	ms := []string{m}
	for o := range strings.SplitSeq(l.override, ",") {
		if o != "" && o != m {
			ms = append(ms, o)
		}
	}
	l.override = strings.Join(ms, ",")
	return l
}

// overridesUnsafe reports whether h carries a method override naming a
// method other than GET, HEAD or OPTIONS.
func overridesUnsafe(h http.Header) bool {
	for _, k := range overrideHeaders {
		for _, v := range h[k] {
			switch strings.ToUpper(strings.TrimSpace(v)) {
			case "", http.MethodGet, http.MethodHead, http.MethodOptions:
			default:
				return true
			}
		}
	}
	return false
}

// validateSession checks the fields the middleware passes to Check and
// copies into the audit trail.
func validateSession(s Session) error {
	if err := validateTenant("Session.TenantID", s.TenantID); err != nil {
		return err
	}
	if err := validatePrincipal("Session.Principal", s.Principal); err != nil {
		return err
	}
	if err := checkText("Session.SubjectUserID", s.SubjectUserID, MaxPrincipalLen, false, identity); err != nil {
		return err
	}
	return checkText("Session.SessionID", s.SessionID, MaxPrincipalLen, false, identity)
}

// requestLine is what the events of a request record of its request line.
type requestLine struct {
	method, override, path string
	// target is the request target as the client sent it (without its
	// query string) when it is not path: a handler mounted under
	// http.StripPrefix sees /users/42 of /admin/users/42, a CONNECT
	// names a host and port, not a path.
	target string
}

// auditLine returns r's request line as audited.
func auditLine(r *http.Request) requestLine {
	l := requestLine{method: auditMethod(r.Method), override: auditOverride(r), path: auditPath(r)}
	if r.URL == nil || r.RequestURI == "" {
		return l
	}
	t, _, _ := strings.Cut(r.RequestURI, "?")
	t = withoutUserinfo(t)
	if p, err := url.PathUnescape(t); err == nil && p == r.URL.Path {
		return l // the same path, escaped otherwise (a "|", raw UTF-8)
	}
	if t = truncateMiddle(cleanChars(t), maxAuditPathLen); t != l.path {
		l.target = t
	}
	return l
}

// withoutUserinfo returns the request target t (without its query)
// without the user information of its authority — credentials are never
// recorded — read from t itself, not from r.URL, which a host's router
// may have rebuilt: "http://user:pw@host/x" is "http://host/x" (also with
// no host: "http:///x"), a CONNECT's "user:pw@host:443" is "host:443". A
// target in origin form ("/…") is a path and kept.
func withoutUserinfo(t string) string {
	if strings.HasPrefix(t, "/") {
		return t
	}
	prefix, rest := "", t
	if i := strings.Index(t, "://"); i >= 0 && !strings.ContainsAny(t[:i], "/@") {
		prefix, rest = t[:i+3], t[i+3:]
	}
	authority, _, _ := strings.Cut(rest, "/")
	if k := strings.LastIndexByte(authority, '@'); k >= 0 {
		return prefix + rest[k+1:]
	}
	return t
}

// auditPath is the request path as audited: escaped, never with the query
// string (which may carry tokens), cut in its middle to maxAuditPathLen.
func auditPath(r *http.Request) string {
	var p string
	if r.URL != nil {
		p = r.URL.EscapedPath()
	} else {
		p, _, _ = strings.Cut(r.RequestURI, "?")
	}
	return truncateMiddle(cleanChars(p), maxAuditPathLen)
}

// auditScope is the scope an access.denied event records: as given when
// valid, else (a malformed RequireScope scope, which Check refused and
// which a host may build from the request) cleaned and cut to MaxScopeLen
// bytes.
func auditScope(s string) string {
	if validateScope("", Scope(s)) == nil {
		return s
	}
	return truncateText(cleanChars(s), MaxScopeLen)
}

// auditMethod is the request method as audited: net/http checks the
// method of a request it reads, not of one a handler builds and passes
// through the middleware again (a batch endpoint), whose method the
// client chose; cleaned as errorText cleans text.
func auditMethod(m string) string { return truncateText(cleanText(m), maxAuditMethodLen) }

// truncateText cuts s to at most n bytes (on a rune boundary), marking the
// cut with "...".
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "..."
}

// truncateMiddle cuts s to at most n bytes by replacing its middle with
// "...", keeping about as many bytes of its end as of its beginning, on
// rune boundaries and outside %-escapes (s is an escaped path).
func truncateMiddle(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < 5 { // no room for both ends around the mark
		return clip(s, n)
	}
	head := (n - 3) / 2
	for head > 0 && !utf8.RuneStart(s[head]) || inEscape(s, head) {
		head--
	}
	tail := len(s) - (n - 3 - head)
	for tail < len(s) && (!utf8.RuneStart(s[tail]) || inEscape(s, tail)) {
		tail++
	}
	return s[:head] + "..." + s[tail:]
}

// inEscape reports whether position i of s lies inside a %XX escape
// (after its '%'), where a cut would leave half of it.
func inEscape(s string, i int) bool {
	return i >= 1 && s[i-1] == '%' || i >= 2 && s[i-2] == '%'
}

// auditContext returns the context of an audit write made for a request
// whose context is ctx: not cancelled when ctx is (the client went away or
// the session ended, and the event must be written all the same), but
// ending at ctx's deadline, if it has one, so that a hanging auditor cannot
// hold the request past it (the write then fails, and the request is
// refused) — yet never sooner than auditGrace after the write begins: a
// handler that answered just before (or after) its deadline has had its
// effect, and the request must be recorded all the same, not refused for
// lack of the few milliseconds an auditor under load needs (review 162).
// Call cancel when the write returned.
func auditContext(ctx context.Context) (_ context.Context, cancel context.CancelFunc) {
	d, ok := ctx.Deadline()
	ctx = context.WithoutCancel(ctx)
	if !ok {
		return ctx, func() {}
	}
	if now, grace := time.Now(), time.Duration(auditGrace.Load()); d.Sub(now) < grace {
		d = now.Add(grace)
	}
	return context.WithDeadline(ctx, d)
}

// auditGrace is the least time an audit write is given (see auditContext):
// 5 s (tests shorten it).
var auditGrace atomic.Int64

func init() { auditGrace.Store(int64(5 * time.Second)) }

// statusText formats an HTTP status code for Event.Attrs.
func statusText(code int) string { return strconv.Itoa(code) }

// requestEvent builds a support.request or access.denied event for a request
// of session s. Empty session and subject ids are left out, and so are ids
// that would not pass validation (a malformed session is denied, and its
// denial still audited with the valid fields).
func requestEvent(m *Manager, typ EventType, when time.Time, s Session, grantID uuid.UUID, line requestLine, scope, reason string) Event {
	ev := m.newEvent(when, typ, s.TenantID, grantID, Actor{Kind: ActorSupport, ID: s.Principal}, reason)
	attrs := make(map[string]string, 8)
	attrs[AttrMethod] = line.method
	if line.override != "" {
		attrs[AttrMethodOverride] = line.override
	}
	attrs[AttrPath] = line.path
	if line.target != "" {
		attrs[AttrRequestTarget] = line.target
	}
	if scope != "" {
		// Scopes arrive valid (a refused, malformed one through
		// auditScope); cleaned once more, not clipped: a list of the
		// scopes a request relied on may be long, and is kept whole.
		attrs[AttrScope] = cleanChars(scope)
	}
	sessionAttrs(attrs, s)
	ev.Attrs = attrs
	return ev
}

// sessionAttrs sets s's session and subject ids in attrs, each when set and
// valid.
func sessionAttrs(attrs map[string]string, s Session) {
	if s.SessionID != "" && checkText("", s.SessionID, MaxPrincipalLen, false, identity) == nil {
		attrs[AttrSessionID] = s.SessionID
	}
	if s.SubjectUserID != "" && checkText("", s.SubjectUserID, MaxPrincipalLen, false, identity) == nil {
		attrs[AttrSubjectUserID] = s.SubjectUserID
	}
}

// tagSession marks ev, an event of a call made with ctx, as an act of the
// impersonation session ctx carries (see SessionFromContext), if any, when
// its actor is that session's support principal and it goes to the trail
// of the session's tenant (a subject user ID names a user of that tenant
// only): it sets the session's ids
// in ev.Attrs as the middleware's own events have them, so that
// AuditFilter.SessionID finds what support did through the Manager in that
// session (a delegation, a refused attempt to grant itself access, …).
func tagSession(ctx context.Context, ev *Event) {
	s, ok := SessionFromContext(ctx)
	if !ok || ev.Actor.Kind != ActorSupport || ev.Actor.ID != s.Principal || ev.TenantID != s.TenantID {
		return // another actor, or another tenant's trail, where the session's ids mean nothing
	}
	if ev.Attrs == nil {
		ev.Attrs = make(map[string]string, 2)
	}
	sessionAttrs(ev.Attrs, s)
}
