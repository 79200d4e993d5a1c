package supportaccess

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// supportWriter is the http.ResponseWriter an impersonated request's
// handler writes to. It records the support.request event when the
// response is committed, before anything reaches the client, replaces the
// response by a denial when the event cannot be recorded or the session
// ended first, and fails every write once the session ended. Unwrap lets
// http.ResponseController reach the underlying writer for deadlines and
// full duplex; Flush and Hijack go through the wrapper so the audit cannot
// be bypassed.
type supportWriter struct {
	w         http.ResponseWriter
	st        *reqState
	committed bool
	blocked   error // non-nil: the response is a denial; writes fail with it
	// sent: the handler's own response went out (its header, audited);
	// hijacked: the handler took the connection; returned: the handler
	// returned (the middleware may still commit the response).
	sent, hijacked, returned bool
	// base: the response's header fields when the handler started (set by
	// the server or outer middleware; nil when there were none). A denial
	// that replaces the handler's response goes out with these only.
	base http.Header
}

// newSupportWriter wraps w for the admitted request st.
func newSupportWriter(w http.ResponseWriter, st *reqState) *supportWriter {
	rw := &supportWriter{w: w, st: st}
	if h := w.Header(); len(h) > 0 {
		rw.base = h.Clone()
	}
	return rw
}

// Header implements http.ResponseWriter.
func (rw *supportWriter) Header() http.Header { return rw.w.Header() }

// WriteHeader implements http.ResponseWriter. Informational statuses
// (1xx other than 101 over HTTP/1, such as 103 Early Hints) are dropped: net/http
// would send every header field the handler has set with them, before the
// response is audited or even allowed (a denial may still replace it).
// They commit nothing. An invalid code panics, as net/http's own writer
// does, before it is recorded: the request is audited as a handler that
// panicked.
func (rw *supportWriter) WriteHeader(code int) {
	if rw.committed {
		if rw.blocked == nil {
			rw.w.WriteHeader(code) // let net/http report the superfluous call
		}
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code < 200 && (code != http.StatusSwitchingProtocols || rw.st.r.ProtoMajor != 1) {
		return // over HTTP/2 and later, net/http sends even 101 as informational: the response is still to come
	}
	rw.commit(code)
}

// Write implements http.ResponseWriter.
func (rw *supportWriter) Write(b []byte) (int, error) {
	if err := rw.ready(); err != nil {
		return 0, err
	}
	return rw.w.Write(b)
}

// FlushError flushes the underlying writer (see http.ResponseController).
func (rw *supportWriter) FlushError() error {
	if err := rw.ready(); err != nil {
		return err
	}
	return http.NewResponseController(rw.w).Flush()
}

// Flush implements http.Flusher.
func (rw *supportWriter) Flush() { _ = rw.FlushError() }

// Hijack implements http.Hijacker. The support.request event is recorded
// with status 101 before the handler gets the connection; the handler owns
// the connection afterwards and must end it when the request context is
// cancelled. A hijack the underlying writer refuses (HTTP/2, say) leaves
// the response uncommitted, so that the status the handler then writes is
// the one recorded. When the event cannot be recorded, the connection is
// closed and Hijack fails.
func (rw *supportWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !rw.committed && rw.st.ended.Load() {
		rw.committedAs(http.StatusSwitchingProtocols) // records and writes the denial
	}
	if rw.blocked != nil {
		return nil, nil, rw.blocked
	}
	if rw.st.ended.Load() {
		rw.blocked = endCause(rw.st.reason())
		return nil, nil, rw.blocked
	}
	// The handler is to own the connection: no deadline is set on it,
	// also by an end that comes while net/http hands it over.
	rw.st.setStreaming(false)
	c, brw, err := http.NewResponseController(rw.w).Hijack()
	if err != nil {
		if rw.streams() {
			rw.st.setStreaming(true) // the response goes on (HTTP/2 refuses hijacking)
		}
		return nil, nil, fmt.Errorf("supportaccess: hijack: %w", err)
	}
	rw.hijacked = true
	if !rw.committed {
		if err := rw.auditHijacked(c); err != nil {
			return nil, nil, err
		}
	}
	return c, brw, nil
}

// auditHijacked records the support.request event of a hijacked
// connection, c, with status 101. Nothing can be written to the client
// through the server any more, so a failure (or a panic of the auditor)
// closes c instead of sending a denial. So does an end that came while
// net/http handed the connection over (Hijack checked before it): the
// event records the denial, 403, and the handler never gets c; an end
// that comes while the 101 is recorded closes c too.
func (rw *supportWriter) auditHijacked(c net.Conn) error {
	rw.committed = true
	st := rw.st
	fail := func() {
		st.end(endReasonAuditFailed)
		rw.blocked = errEndAuditFailed
		_ = c.Close()
	}
	defer func() {
		if p := recover(); p != nil {
			fail()
			panic(p)
		}
	}()
	ended := func() error {
		_ = c.Close()
		rw.blocked = endCause(st.reason())
		return rw.blocked
	}
	if st.ended.Load() {
		if err := st.audit(http.StatusForbidden, "session ended: "+st.reason()); err != nil {
			st.g.cfg.onError(st.r.Context(), fmt.Errorf("supportaccess: middleware: audit: %w", err))
		}
		return ended()
	}
	if err := st.audit(http.StatusSwitchingProtocols, ""); err != nil {
		st.g.cfg.onError(st.r.Context(), fmt.Errorf("supportaccess: middleware: audit of request (connection closed): %w", err))
		fail()
		return rw.blocked
	}
	if st.ended.Load() {
		return ended()
	}
	return nil
}

// supportBody is the body of an impersonated request: once support access
// ends, reads fail with the end's cause (ErrSessionEnded), and a read that
// was under way returns it instead of what it read (it may have come
// after the end). Close passes through.
type supportBody struct {
	io.ReadCloser
	st *reqState
}

func (b *supportBody) Read(p []byte) (int, error) {
	if b.st.ended.Load() {
		return 0, endCause(b.st.reason())
	}
	n, err := b.ReadCloser.Read(p)
	if b.st.ended.Load() {
		clear(p[:n]) // not even in the caller's buffer
		return 0, endCause(b.st.reason())
	}
	return n, err
}

// Unwrap returns the underlying ResponseWriter.
func (rw *supportWriter) Unwrap() http.ResponseWriter { return rw.w }

// ready commits the response (status 200) if needed and reports whether
// the handler may still write.
func (rw *supportWriter) ready() error {
	if !rw.committed {
		rw.commit(http.StatusOK)
	}
	if rw.blocked != nil {
		return rw.blocked
	}
	if rw.st.ended.Load() {
		rw.blocked = endCause(rw.st.reason())
		return rw.blocked
	}
	return nil
}

// commit audits the response with status code and sends the header, or
// replaces the response by a denial. The response goes out with
// Cache-Control: no-store, whatever the handler set: no browser or proxy
// may show it again without asking (and so without a Check) once support
// access has ended.
func (rw *supportWriter) commit(code int) {
	if rw.committedAs(code) {
		rw.sent = true
		if rw.streams() {
			rw.st.setStreaming(true)
		}
		setNoStore(rw.w.Header())
		rw.w.WriteHeader(code)
	}
}

// setNoStore makes h say Cache-Control: no-store, and nothing else about
// caching: the handler's Cache-Control under any spelling of the key, and
// the CDN-Cache-Control and Surrogate-Control a CDN obeys before it, go.
func setNoStore(h http.Header) {
	for k := range h {
		if strings.EqualFold(k, "Cache-Control") || strings.EqualFold(k, "CDN-Cache-Control") || strings.EqualFold(k, "Surrogate-Control") {
			delete(h, k)
		}
	}
	h["Cache-Control"] = []string{"no-store"} // its own: the handler may change the map's values later
}

// streams reports whether an end of support access is to cut the
// response's writes (see reqState.out): the handler's response went out,
// cut responses are aborted, and the handler runs and has not taken the
// connection.
func (rw *supportWriter) streams() bool {
	return rw.sent && rw.st.out != nil && !rw.returned && !rw.hijacked
}

// handlerReturned marks the handler returned: from now on no end cuts the
// response's writes (a response the middleware commits afterwards is
// complete).
func (rw *supportWriter) handlerReturned() {
	rw.returned = true
	rw.st.setStreaming(false)
}

// inSupportWriter reports whether w is or wraps (through Unwrap) the
// writer of an impersonated request.
func inSupportWriter(w http.ResponseWriter) bool {
	return findSupportWriter(w, func(*supportWriter) bool { return true }) != nil
}

// findSupportWriter returns the first writer of an impersonated request
// for which match is true among w and the writers it wraps (through
// Unwrap, at most maxUnwrap deep), or nil.
func findSupportWriter(w http.ResponseWriter, match func(*supportWriter) bool) *supportWriter {
	for range maxUnwrap {
		if sw, ok := w.(*supportWriter); ok && match(sw) {
			return sw
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// cut reports whether the handler's response went out and the session
// ended before the handler returned: the response is then aborted (see
// Manager.Middleware) unless the handler took the connection.
func (rw *supportWriter) cut() bool {
	return rw.sent && !rw.hijacked && rw.st.ended.Load()
}

// committedAs marks the response committed with code and records it. It
// reports whether the handler's response may go out; if not, a denial has
// been written and rw.blocked is set.
func (rw *supportWriter) committedAs(code int) bool {
	rw.committed = true
	st := rw.st
	if st.ended.Load() {
		reason := st.reason()
		if err := rw.auditResponse(http.StatusForbidden, "session ended: "+reason); err != nil {
			st.g.cfg.onError(st.r.Context(), fmt.Errorf("supportaccess: middleware: audit: %w", err))
		}
		rw.replace(Denial{Status: http.StatusForbidden, Code: DeniedSessionEnded, Session: st.sess, Reason: "session ended: " + reason, Err: endCause(reason)}, endCause(reason))
		return false
	}
	if err := rw.auditResponse(code, ""); err != nil {
		st.g.cfg.onError(st.r.Context(), fmt.Errorf("supportaccess: middleware: audit of request (response refused): %w", err))
		st.end(endReasonAuditFailed)
		rw.replace(Denial{Status: http.StatusServiceUnavailable, Code: DeniedUnavailable, Session: st.sess, Reason: endReasonAuditFailed, Err: err}, errEndAuditFailed)
		return false
	}
	return true
}

// auditResponse records the support.request event of the response with
// status code (and reason). A panic of the auditor (host code) ends the
// request, blocks the writer and sends a bare 503 with only the header
// fields set before the handler before it goes on: a handler that recovers
// it cannot then send the response, or its header fields, unaudited.
func (rw *supportWriter) auditResponse(code int, reason string) error {
	defer func() {
		if p := recover(); p != nil {
			rw.st.end(endReasonAuditFailed)
			rw.blocked = errEndAuditFailed
			rw.resetHeaders()
			rw.w.WriteHeader(http.StatusServiceUnavailable)
			panic(p)
		}
	}()
	return rw.st.audit(code, reason)
}

// replace writes denial d instead of the handler's response and makes
// further writes fail with cause. None of the header fields the handler
// set go out with the denial: they may describe, or carry, what support
// was not to see.
func (rw *supportWriter) replace(d Denial, cause error) {
	rw.blocked = cause
	// The server span says what support got, as for any other denial.
	annotateSpan(rw.st.r, d.Session, rw.st.grant.ID, "denied:"+d.Code)
	rw.resetHeaders()
	rw.st.g.cfg.denied(rw.w, rw.st.r, d)
}

// resetHeaders sets the response's header fields back to those it had
// when the handler started (without entity fields), for a denial.
func (rw *supportWriter) resetHeaders() {
	h := rw.w.Header()
	clear(h)
	for k, v := range rw.base {
		h[k] = v
	}
	clearEntityHeaders(h)
}

// dropTrailers removes the trailers a handler set in h, those announced
// by the Trailer field and those named with http.TrailerPrefix: once the
// request's support access ended they would reach support after the cut.
func dropTrailers(h http.Header) {
	for _, v := range h.Values("Trailer") {
		for k := range strings.SplitSeq(v, ",") {
			h.Del(strings.TrimSpace(k))
		}
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			delete(h, k)
		}
	}
}
