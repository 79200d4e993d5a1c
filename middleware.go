package supportaccess

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
)

// Middleware returns net/http middleware that enforces support access on
// every request of an impersonated support session and audits what support
// does. It is a thin client of Check.
//
// resolve tells whether a request belongs to an impersonated support
// session: the host reads its own session cookie or bearer token and
// returns the Session and true, or false for every other request. It must
// be safe for concurrent use. A request for which it returns false passes
// to the next handler untouched (no allocation, no store access). A panic
// in resolve is not recovered: it propagates like any handler's panic (the
// net/http server recovers it, logs it with its stack and aborts the
// response) and the next handler never runs, so a broken resolver fails
// closed. A host that prefers a 403 wraps resolve with its own recover.
// Middleware panics if resolve is nil, and the returned function panics if
// the next handler is nil (both are programming errors).
//
// An impersonated request needs an active grant of Session.TenantID that
// covers Session.Principal and allows ScopeRead for GET, HEAD and OPTIONS
// and ScopeWrite for every other method. Only the request method counts:
// method-override headers (X-HTTP-Method-Override, X-HTTP-Method,
// X-Method-Override) can never lower the scope; on a safe method they
// raise it to ScopeWrite when they name a method other than GET, HEAD
// and OPTIONS. RequireScope adds
// host-defined scopes per route. With RequireMFA, named principals also
// need Session.MFA.
//
// Refusals: the request never reaches the next handler; it gets 403 (no
// active grant, other tenant or principal, scope missing, malformed
// session, MFA missing) or 503 with Retry-After when the
// store fails during the check (fail closed: an outage denies, and 503
// tells clients and monitoring that it is one). The body is written by
// DefaultDeniedHandler unless WithDeniedHandler says otherwise. Each refusal
// records an access.denied event with the reason (a session whose tenant or
// principal is malformed cannot be: its refusal goes to the error handler
// instead); a refusal for lack of an active grant also calls the
// OnSessionEnded function.
//
// Admitted requests: the next handler sees a request whose context carries
// the Session and the Grant (SessionFromContext, GrantFromContext) and the
// Manager (for RecordChange). The context is cancelled, with a cause
// wrapping ErrSessionEnded, as soon as support access ends while the
// request runs: at the grant's ExpiresAt (a timer, computed with the
// Manager's clock), at once when this Manager revokes the grant or its
// Sweep records the expiry, and within the poll interval when another
// replica revokes it (see WithPollInterval). In each case the grants are
// checked again first: another active grant that covers the session keeps
// the request alive. After the end, writes to the response fail with that
// error, so a stream ends even if the handler ignores its context, and a
// response not yet started is replaced by a 403 DeniedSessionEnded denial.
// Reads of the request body fail with that error too, and a read under way
// when access ends returns that error instead of what it read: support's
// input (an upload, a console's keystrokes) does not reach the handler
// after the end.
// A response already under way when support access ends is aborted when
// the handler returns (whether it stopped at a refused write or at its
// context's end), with panic(http.ErrAbortHandler) as
// httputil.ReverseProxy does for a body it cannot finish: net/http then
// closes the connection (HTTP/1) or resets the stream (HTTP/2) without
// ending the response, so that the client sees it cut, not complete and
// short. (A hijacked connection is the handler's to close. A request
// served inside another impersonated request into a response of its own,
// such as a recorder, does not abort: the enclosing request's response is
// the one sent — nor does one that writes to the enclosing response
// through a wrapper without Unwrap, which looks the same. A host that calls the handler outside
// net/http's server, or recovers panics around it, should let that one
// through; a wrapper outside the middleware that acts after the handler
// returns without a defer, such as an access log, does not see an
// aborted request.)
//
// An impersonated response goes out with Cache-Control: no-store, replacing
// what the handler set (also its CDN-Cache-Control and Surrogate-Control):
// a browser's history or back/forward cache, or a proxy or CDN, would
// otherwise show it again after support access ended without asking the
// server (so without a Check or an audited request). Serve
// what support may keep cached (static assets) outside the middleware.
// Informational responses (1xx other than 101, such as 103 Early Hints)
// of impersonated requests are not sent: they would carry the handler's
// header fields before the request is audited.
//
// Audit: each admitted request records one support.request event (actor:
// Kind support, ID the principal; Time: when the request arrived, so it
// may sort before events the handler recorded, such as a support.change;
// GrantID: the admitting grant; Attrs: method, method_override when a
// method-override header named one or the handler chain changed the
// request's method in place (see AttrMethodOverride), path without the
// query string,
// status, duration_ms, scope, session_id, subject_user_id, and
// elevated_grant_ids when RequireScope or a re-check used other grants; a
// scope or grant taken after the event was recorded gets a support.scope
// event of its own, see EventSupportScope). It is recorded when
// the response is committed (the
// first WriteHeader, Write or Flush, a Hijack that succeeds, or the handler's return),
// before anything reaches the client, so duration_ms is the time to the
// first byte of the response (for a stream, not its length). If the event
// cannot be recorded the handler's response is replaced by a 503
// DeniedUnavailable denial, further writes fail and the request context is
// cancelled: for reads and writes alike, support is never sent a response
// that is not in the audit trail. Audit writes ignore the cancellation of the
// request context (a client that goes away is audited all the same) but
// not its deadline: an auditor that hangs fails the write at the deadline,
// or 5 s after the write began when that is later (a handler that answered
// close to or after its deadline has had its effect, and the request is
// audited all the same). A request whose context has no deadline waits
// for the auditor as long as it takes: to bound that, give requests a
// deadline outside the middleware (context.WithTimeout in a wrapper).
// Side effects the handler made before
// committing its response are not undone; a handler that changes
// configuration calls RecordChange before it commits the change, which
// fails closed. A handler that panics before committing is recorded with
// status 500.
//
// Nesting: applied twice to one request (app-wide and on a route), or
// seeing again a request a handler dispatches (a clone with another method,
// say) in the context of a request the middleware of the same Manager
// admitted for the same session, the inner middleware relies on the outer
// one only as far as it goes. Its own rules still apply: with RequireMFA
// it refuses a session the outer one admitted without MFA, and a method
// scope the outer checks did not establish (ScopeWrite for a DELETE
// dispatched inside a GET) is checked again, like a RequireScope. Its
// refusals use its own denied handler and are audited as access.denied.
// When the inner request writes to the outer one's writer (or to a wrapper
// whose Unwrap leads to it), the outer support.request event covers the
// response, listing the scopes added (or, added after the response
// started, a support.scope event each). When it writes anywhere else (a
// recorder, or a wrapper without Unwrap), its response is one of its own:
// it is checked and audited as a request of its own. The usual nesting, the
// same writer, no stricter rule and a scope already established, costs
// nothing: one check, one audit event.
//
// Cost per impersonated request: two store operations, one Check (a single
// query with the bundled SQL store) and one Auditor.Record (with sqlstore on
// PostgreSQL a single statement once the store knows the tenant's chain
// head, so 2 database round trips per request; on MySQL/MariaDB and SQLite
// a short transaction that appends the event to the tenant's hash chain),
// plus one Check per RequireScope whose scope the admitting grant
// lacks, and the background re-checks of requests that run longer than
// half the poll interval.
func (m *Manager) Middleware(resolve func(*http.Request) (Session, bool), opts ...MiddlewareOption) func(http.Handler) http.Handler {
	if resolve == nil {
		panic("supportaccess: Middleware: resolve is nil")
	}
	cfg := &middlewareConfig{
		denied:   DefaultDeniedHandler,
		interval: DefaultPollInterval,
		onError:  m.reportError,
	}
	for _, o := range opts {
		if o != nil {
			o.applyMiddleware(cfg)
		}
	}
	w := newWatcher(m, cfg.interval, cfg.onError)
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("supportaccess: Middleware: next handler is nil")
		}
		return &guard{m: m, cfg: cfg, resolve: resolve, watch: w, next: next}
	}
}

// guard is the handler Middleware wraps around next.
type guard struct {
	m       *Manager
	cfg     *middlewareConfig
	resolve func(*http.Request) (Session, bool)
	watch   *watcher
	next    http.Handler
}

// ServeHTTP implements http.Handler. The path of a request that is not
// impersonated is one call of the resolver and one of next: no defer, no
// allocation. A panic of the resolver propagates before next is reached.
func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, ok := g.resolve(r)
	if !ok {
		g.next.ServeHTTP(w, r)
		return
	}
	g.serveSupport(w, r, s)
}

// serveSupport checks and runs an impersonated request.
func (g *guard) serveSupport(w http.ResponseWriter, r *http.Request, s Session) {
	m := g.m
	outer := stateFrom(r.Context())
	// A cut response is aborted unless it is a private one of a request
	// served inside another impersonated request (a recorder of its own,
	// say: the enclosing request's response is the one sent, and its
	// middleware judges it). One written through the enclosing request's
	// writer is the response sent, and is aborted.
	aborts := outer == nil || inSupportWriter(w)
	if outer != nil && outer.m == m && outer.sess == s {
		if outer.writerIn(w) != nil {
			g.serveNested(outer, w, r, s)
			return
		}
		// A response of its own (a recorder, say): checked and audited
		// as a request of its own below.
	}
	start := m.now()
	scope := requestScope(r)
	if err := validateSession(s); err != nil {
		g.deny(w, r, s, uuid.Nil, scope, start, http.StatusForbidden, DeniedAccess, "invalid session", err)
		return
	}
	if g.cfg.mfa && !s.MFA && !g.cfg.mfaExempt(s) {
		g.deny(w, r, s, uuid.Nil, scope, start, http.StatusForbidden, DeniedMFARequired, "mfa required", nil)
		return
	}
	g.watch.listening()
	seq, move := g.watch.ends.now(), g.watch.moves.Load()
	gr, err := m.Check(r.Context(), s.TenantID, s.Principal, scope)
	if err != nil {
		status, code, reason := g.checkRefusal(r, s, scope, err)
		g.deny(w, r, s, uuid.Nil, scope, start, status, code, reason, err)
		return
	}

	annotateSpan(r, s, gr.ID, "allowed")

	st := &reqState{
		g: g, m: m, sess: s, grant: gr, start: start,
		line:  auditLine(r),
		needs: []need{{scope: scope, id: gr.ID, expires: gr.ExpiresAt}},
	}
	st.admitSeq.Store(seq)
	st.admitMove.Store(move)
	ctx, cancel := context.WithCancelCause(r.Context())
	st.cancel = cancel
	r = r.WithContext(context.WithValue(ctx, stateKey{}, st))
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &supportBody{ReadCloser: r.Body, st: st}
	}
	st.r = r
	rw := newSupportWriter(w, st)
	if aborts {
		st.out = w
	}
	g.watch.enter(st)
	// The grant may have ended (on this Manager) while the Check answered,
	// before the watcher's listener could see the request: it is then
	// checked again at once.
	if g.watch.noteEnded(st, seq, gr.ID) {
		g.watch.poke()
	}
	// Likewise an Extend that moved an end meanwhile (the grant's end
	// read by the Check may be stale): checked again at once. From here
	// on, the listener records moves for the request.
	if now := g.watch.moves.Load(); now != move {
		// The request's own grant shortened on this Manager meanwhile: the
		// earlier end holds from now on (timer, RequireScope), even before
		// the re-check. (Whether the Check read the store before or after
		// that move cannot be told; the later end waits for the re-check.)
		if me, ok := g.watch.moved.since(gr.ID, move); ok && endsBefore(me.end, gr.ExpiresAt) {
			st.moveEnd(gr.ID, me.end)
		}
		st.admitMove.Store(now)
		st.recheck.Store(true)
		g.watch.poke()
	}
	st.admitSeq.Store(g.watch.ends.now())
	completed, cut := false, false
	defer func() {
		if !completed { // the handler panicked or called runtime.Goexit
			rw.handlerReturned()
		}
		g.finish(st, rw, completed)
		if completed && aborts && cut {
			panic(http.ErrAbortHandler) // see Manager.Middleware: a cut response must not look complete
		}
	}()
	g.next.ServeHTTP(rw, r)
	rw.handlerReturned() // before the cut is judged: see reqState.cutWrites
	completed = true
	cut = rw.cut() // as the handler returned: an end after it cut nothing
}

// serveNested runs a request that a middleware of the same Manager
// admitted for the same session and whose response it audits (w is or
// wraps its writer): the middleware applied twice, or a request a handler
// dispatches again. g still applies its own rules: RequireMFA, and the
// scope of r's method, checked again (and added to the request's scopes)
// unless the outer checks established it; a refusal is written by g's
// denied handler and audited as access.denied. When nothing differs, the
// common case, this costs no store access and no audit event.
func (g *guard) serveNested(outer *reqState, w http.ResponseWriter, r *http.Request, s Session) {
	scope := requestScope(r)
	if g.cfg.mfa && !s.MFA && !g.cfg.mfaExempt(s) {
		outer.refuse(g, w, r, scope, http.StatusForbidden, DeniedMFARequired, "mfa required", nil)
		return
	}
	if outer.establish(g, w, r, scope) {
		g.next.ServeHTTP(w, r)
	}
}

// checkRefusal handles a failed Check of s for scope: an outage goes to
// the error handler, a session left without any active grant to
// OnSessionEnded. It returns the denial's status, code and reason.
func (g *guard) checkRefusal(r *http.Request, s Session, scope Scope, err error) (status int, code, reason string) {
	status, code, reason = denyKind(err, scope)
	if status == http.StatusServiceUnavailable {
		g.cfg.onError(r.Context(), fmt.Errorf("supportaccess: middleware: %w", err))
	}
	if errors.Is(err, ErrNoActiveGrant) && g.cfg.onEnded != nil {
		g.cfg.onEnded(s, SessionEndNoGrant)
	}
	return status, code, reason
}

// finish commits an untouched response, stops watching the request and
// tells the host when the session ended. completed is false when the
// handler panicked.
func (g *guard) finish(st *reqState, rw *supportWriter, completed bool) {
	defer func() {
		// A panic of host code in here (an auditor, the denied or error
		// handler, OnSessionEnded) must not leave the request watched:
		// it would keep the watcher goroutine and its re-checks alive.
		if p := recover(); p != nil {
			g.watch.leave(st)
			st.cancel(nil)
			panic(p)
		}
	}()
	if !rw.committed {
		if completed {
			rw.commit(http.StatusOK)
		} else if err := st.audit(http.StatusInternalServerError, "handler panicked"); err != nil {
			g.cfg.onError(st.r.Context(), fmt.Errorf("supportaccess: middleware: audit: %w", err))
		}
	}
	g.watch.leave(st)
	if rw.blocked != nil || st.ended.Load() {
		dropTrailers(rw.w.Header())
	}
	st.cancel(nil)
	if reason := st.reason(); g.cfg.onEnded != nil && (reason == SessionEndRevoked || reason == SessionEndExpired) {
		g.cfg.onEnded(st.sess, reason)
	}
}

// deny audits and writes a refusal.
func (g *guard) deny(w http.ResponseWriter, r *http.Request, s Session, grantID uuid.UUID, scope Scope, when time.Time, status int, code, reason string, err error) {
	annotateSpan(r, s, grantID, "denied:"+code)
	g.recordDenial(r, s, grantID, string(scope), when, status, reason, err)
	g.cfg.denied(w, r, Denial{Status: status, Code: code, Session: s, Reason: reason, Err: err})
}

// recordDenial records an access.denied event; a failure goes to the error
// handler (the request is refused either way).
func (g *guard) recordDenial(r *http.Request, s Session, grantID uuid.UUID, scope string, when time.Time, status int, reason string, err error) {
	ctx, cancel := auditContext(r.Context())
	defer cancel()
	if validateTenant("TenantID", s.TenantID) != nil || validatePrincipal("Principal", s.Principal) != nil {
		g.cfg.onError(ctx, fmt.Errorf("supportaccess: middleware: denied a malformed session (not audited): %w", err))
		return
	}
	if cerr := checkClock(when); cerr != nil {
		// As for every refusal (refuseAs): no record holds such a time.
		g.cfg.onError(ctx, fmt.Errorf("supportaccess: middleware: denied at a broken clock (not audited): %w", cerr))
		return
	}
	ev := requestEvent(g.m, EventAccessDenied, when, s, grantID, auditLine(r), auditScope(scope), reason)
	ev.Attrs[AttrStatus] = statusText(status)
	if err != nil && status == http.StatusServiceUnavailable {
		ev.Attrs[AttrError] = errorText(err)
	}
	g.m.recordFact(ctx, ev, func(aerr error) {
		if aerr != nil {
			g.cfg.onError(ctx, fmt.Errorf("supportaccess: middleware: audit of denial: %w", aerr))
		}
	})
}

// RequireScope returns middleware for a route that demands the
// host-defined scope s (for example "messages:read") from impersonated
// requests, in addition to the method scope Manager.Middleware checked. It
// must run inside that middleware — m.Middleware(resolve)(mux) with
// RequireScope on routes of mux: outside it no request carries a support
// session yet, and every request passes. Requests that are not
// impersonated pass through untouched (the host's own authorisation
// applies to them).
//
// Semantics: the scope must be allowed by an active grant that covers the
// session. If the grant that admitted the request allows it and is still
// in force as far as this Manager knows (not revoked or shortened past
// its end here, and still the grant the watcher's re-checks find), no
// store access is needed; otherwise RequireScope calls Check again for s,
// because another active grant of the tenant (one per ticket, say) may
// carry it.
// GrantFromContext keeps returning the admitting grant; the support.request
// event lists the other grant in elevated_grant_ids, and the request's
// background re-checks and expiry timer cover s from then on. When the
// response had started already (its support.request event recorded: a
// panel of a streaming page), a support.scope event records s and the
// grant that allows it before the route runs; if it cannot be recorded the
// route is refused (503), fail closed. A refusal is
// handled like one of the middleware (403, or 503 on a store error;
// audited as access.denied) and concerns this route only: if it is the
// response sent to support (written to the middleware's writer, directly
// or through wrappers with Unwrap), no support.request event is recorded
// for it — the scopes other parts of the request took get a support.scope
// event each instead — and the handler's further writes fail with an
// error wrapping ErrForbidden. If that response is under way already (a
// panel of a streaming page), the route is left out of it: the refusal is
// audited and nothing is written. Such a refusal is written to the writer underneath the
// middleware's, not through the wrappers between the middleware and the
// handler (a buffering or compressing wrapper could flush the handler's
// output with it): an access log or metrics wrapper installed inside the
// middleware does not see it — install those outside. If the handler wrote
// it elsewhere (a page rendering an optional
// part into a recorder), the response the handler does send is audited
// as usual, and replaced by a 503 when that audit fails.
func RequireScope(s Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("supportaccess: RequireScope: next handler is nil")
		}
		return &scopeGuard{scope: s, next: next}
	}
}

type scopeGuard struct {
	scope Scope
	next  http.Handler
}

// ServeHTTP implements http.Handler.
func (h *scopeGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := stateFrom(r.Context())
	if st == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	if st.establish(st.g, w, r, h.scope) {
		h.next.ServeHTTP(w, r)
	}
}

// annotateSpan marks the request's current span (the server span of
// otelhttp or whatever instrumentation the host uses; the middleware starts
// none) as impersonated, with the tenant, the grant and the decision
// ("allowed" or "denied:<code>"). Nothing is done for a span that does not
// record.
func annotateSpan(r *http.Request, s Session, grantID uuid.UUID, decision string) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrKeyImpersonated.Bool(true), AttrKeyDecision.String(decision))
	setTenant(span, s.TenantID)
	if grantID != uuid.Nil {
		span.SetAttributes(AttrKeyGrant.String(grantID.String()))
	}
}
