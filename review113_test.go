package supportaccess_test

// Review 113: mutation testing of the HTTP middleware (middleware*.go,
// session.go). Each test names the mutant of the production code it
// kills; each passes on the code as it is.

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview113NestedUnderOtherManagerChecksItsOwnStore: a request the
// middleware of one Manager admitted, seen again by the middleware of
// another Manager (another store: another product area, another region)
// for the same session, writing to the same response, is checked against
// the inner Manager's grants (Middleware: "in the context of a request the
// middleware of the same Manager admitted"). The inner store has no grant:
// refused, 403, audited there as access.denied.
//
// Kills: middleware.go serveSupport, `outer != nil && outer.m == m &&
// outer.sess == s` with `outer.m == m` dropped (the inner request is then
// served as a nested one of the outer Manager, on the outer's grant).
func TestReview113NestedUnderOtherManagerChecksItsOwnStore(t *testing.T) {
	outerEnv, innerEnv := newMWEnv(t), newMWEnv(t)
	outerEnv.grant(sa.GrantInput{}) // read, on the outer Manager's store only
	next := &mwOK{}
	h := outerEnv.wrap(innerEnv.wrap(next))
	rec := mwDo(h, mwReq(http.MethodGet, "/reports", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code, "the inner Manager has no grant for the session")
	require.Zero(t, next.calls.Load(), "the handler behind the inner middleware must not run")
	denied := innerEnv.events(sa.EventAccessDenied)
	require.Len(t, denied, 1, "the inner Manager audits its refusal")
	require.Equal(t, "no active grant", denied[0].Reason)
	require.Empty(t, innerEnv.events(sa.EventSupportRequest))
}

// TestReview113NoTrailersAfterRequireScopeRefusal: once a RequireScope
// refusal became the response (the session still holds: nothing ended),
// trailers the handler sets afterwards (http.TrailerPrefix) do not go out
// with the denial: they would reach support unaudited after a 403.
//
// Kills: middleware.go finish, `rw.blocked != nil || st.ended.Load()` with
// `rw.blocked != nil` dropped (trailers are then dropped only when the
// session ended).
func TestReview113NoTrailersAfterRequireScopeRefusal(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read, not messages:read
	var werr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope("messages:read")(&mwOK{}).ServeHTTP(w, r)
		w.Header().Set(http.TrailerPrefix+"X-Rows", "ceo@acme.example")
		_, werr = w.Write([]byte("secret"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/messages", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.ErrorIs(t, werr, sa.ErrForbidden)
	require.NotContains(t, rec.Body.String(), "secret")
	require.Empty(t, rec.Result().Trailer.Get("X-Rows"), "a trailer set after the refusal must not be sent")
	require.Empty(t, e.events(sa.EventSupportRequest))
}

// TestReview113ErrorAttrOnlyOnOutageDenials: AttrError is "the store or
// auditor error behind an access.denied with status 503" (audit.go); a
// 403 refusal (a scope not granted) records none.
//
// Kills: middleware.go recordDenial, `err != nil && status ==
// http.StatusServiceUnavailable` → `err != nil`.
func TestReview113ErrorAttrOnlyOnOutageDenials(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read only
	rec := mwDo(e.wrap(&mwOK{}), mwReq(http.MethodPost, "/settings", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	evs := e.events(sa.EventAccessDenied)
	require.Len(t, evs, 1)
	require.Equal(t, "scope not granted: write", evs[0].Reason)
	require.NotContains(t, evs[0].Attrs, sa.AttrError)
	require.Equal(t, "403", evs[0].Attrs[sa.AttrStatus])
}

// TestReview113DefaultDeniedHandlerNormalisesUnknownCodes: a denied
// handler of the host that hands DefaultDeniedHandler a code of its own
// (or a malformed one) gets the access_denied body: the default body names
// only the Denied… codes, and stays valid JSON whatever Code holds.
//
// Kills: middleware_deny.go DefaultDeniedHandler, the normalisation `if
// code != DeniedMFARequired && code != DeniedSessionEnded && code !=
// DeniedUnavailable { code = DeniedAccess }` disabled.
func TestReview113DefaultDeniedHandlerNormalisesUnknownCodes(t *testing.T) {
	r := mwReq(http.MethodGet, "/x", "", "Accept", "application/json")
	rec := httptest.NewRecorder()
	sa.DefaultDeniedHandler(rec, r, sa.Denial{Status: http.StatusForbidden, Code: `tenant "acme" suspended`, Reason: "internal"})
	require.Equal(t, http.StatusForbidden, rec.Code)
	var body struct{ Error, Message string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "the body is valid JSON: %s", rec.Body.String())
	require.Equal(t, sa.DeniedAccess, body.Error)
	require.NotContains(t, rec.Body.String(), "acme")
}

// TestReview113DefaultDeniedHandlerStatusIsAnError: a Denial whose Status
// is not a 4xx or 5xx (a zero Status, a redirect, a success) is sent as
// 403: a refusal never goes out as a response that looks allowed; an
// error status is sent as it is, and 503 with Retry-After.
//
// Kills: middleware_deny.go DefaultDeniedHandler, `status < 400 || status
// > 599` → `status < 300 || …` and → `status < 400` alone.
func TestReview113DefaultDeniedHandlerStatusIsAnError(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{0, http.StatusForbidden},
		{http.StatusOK, http.StatusForbidden},
		{http.StatusFound, http.StatusForbidden},
		{399, http.StatusForbidden},
		{600, http.StatusForbidden},
		{999, http.StatusForbidden},
		{http.StatusTooManyRequests, http.StatusTooManyRequests},
		{599, 599},
		{http.StatusServiceUnavailable, http.StatusServiceUnavailable},
	} {
		rec := httptest.NewRecorder()
		sa.DefaultDeniedHandler(rec, mwReq(http.MethodGet, "/x", ""), sa.Denial{Status: tc.in, Code: sa.DeniedAccess})
		require.Equal(t, tc.want, rec.Code, "Denial.Status %d", tc.in)
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		require.Equal(t, tc.in == http.StatusServiceUnavailable, rec.Header().Get("Retry-After") != "", "Denial.Status %d", tc.in)
	}
}

// TestReview113RefusalDropsEntityFieldsSetBeforeTheHandler: a RequireScope
// refusal that becomes the response goes out with the header fields set
// before the middleware's handler ran (X-Request-Id), but not with those
// that describe the response an outer layer expected (Location,
// Content-Length, Set-Cookie): see resetHeaders and clearEntityHeaders.
// A Content-Length kept from before would even contradict the denial's
// body.
//
// Kills: middleware_deny.go clearEntityHeaders with "Set-Cookie" removed
// from its list, and with "Location" removed.
func TestReview113RefusalDropsEntityFieldsSetBeforeTheHandler(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read, not messages:read
	next := &mwOK{}
	h := e.wrap(sa.RequireScope("messages:read")(next))
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1")
		w.Header().Set("Location", "/messages/next")
		w.Header().Set("Content-Length", "4096")
		w.Header().Set("Set-Cookie", "pref=1")
		h.ServeHTTP(w, r)
	})
	rec := mwDo(outer, mwReq(http.MethodGet, "/messages", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Zero(t, next.calls.Load())
	require.Equal(t, "req-1", rec.Header().Get("X-Request-Id"), "fields set before the handler stay")
	require.Empty(t, rec.Header().Get("Location"))
	require.Empty(t, rec.Header().Get("Content-Length"))
	require.Empty(t, rec.Header().Values("Set-Cookie"))
}

// TestReview113CancelledCheckAuditedAsCancelled: a request whose context
// is cancelled (the client went away) before the admission Check answers
// is refused with 503 and audited with the reason that tells it from an
// outage, "check failed: request cancelled".
//
// Kills: middleware_deny.go denyKind, `case errors.Is(err,
// context.Canceled)` → context.DeadlineExceeded (the refusal is then
// audited as a plain "check failed").
func TestReview113CancelledCheckAuditedAsCancelled(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	e.store.hangFind.Store(true) // answers only when the context ends
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	next := &mwOK{}
	rec := mwDo(e.wrap(next), mwReq(http.MethodGet, "/reports", "generic").WithContext(ctx))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Zero(t, next.calls.Load())
	evs := e.events(sa.EventAccessDenied)
	require.Len(t, evs, 1)
	require.Equal(t, "check failed: request cancelled", evs[0].Reason)
	require.Equal(t, "503", evs[0].Attrs[sa.AttrStatus])
}

// TestReview113MalformedSessionIDDenialAuditedWithoutIt: a session whose
// SessionID is malformed (a line break, too long) is refused (403), and
// its refusal is still audited with the fields that are valid — the
// tenant, the principal, the subject user — but not the malformed
// session id (requestEvent: "ids that would not pass validation" are left
// out), whatever the auditor would make of it.
//
// Kills: middleware_audit.go sessionAttrs, `s.SessionID != "" &&
// checkText(…) == nil` → `s.SessionID != ""`.
func TestReview113MalformedSessionIDDenialAuditedWithoutIt(t *testing.T) {
	for _, id := range []string{"a\nb", strings.Repeat("s", sa.MaxPrincipalLen+1)} {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{})
		s := sa.Session{TenantID: "acme", Principal: mwGeneric, SubjectUserID: "u-42", SessionID: id}
		next := &mwOK{}
		h := e.m.Middleware(func(*http.Request) (sa.Session, bool) { return s, true }, sa.WithMiddlewareErrorHandler(e.errs.handle))(next)
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/reports", "")).Code)
		require.Zero(t, next.calls.Load())
		evs := e.events(sa.EventAccessDenied)
		require.Len(t, evs, 1, "the refusal is audited")
		require.Equal(t, "invalid session", evs[0].Reason)
		require.Equal(t, mwGeneric, evs[0].Actor.ID)
		require.Equal(t, "u-42", evs[0].Attrs[sa.AttrSubjectUserID], "the valid subject id is kept")
		require.NotContains(t, evs[0].Attrs, sa.AttrSessionID, "the malformed session id is left out")
	}
}

// TestReview113AuditFailureCauseNamesTheAudit: when the support.request
// event cannot be recorded, the request context is cancelled with a cause
// that says so ("audit failed"), as the writes fail: ErrSessionEnded
// documents the reason in the wrapping error (an audit failure is not an
// access-check failure, and a host's logs must tell the auditor's outage
// from the store's).
//
// Kills: session.go endCause, `case endReasonAuditFailed` no longer
// matched (the cause falls to "access check failed").
func TestReview113AuditFailureCauseNamesTheAudit(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	e.store.failRecord.Store(true)
	var werr, cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, werr = w.Write([]byte("report"))
		cause = context.Cause(r.Context())
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/reports", "generic"))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.NotContains(t, rec.Body.String(), "report")
	require.ErrorIs(t, werr, sa.ErrSessionEnded)
	require.ErrorIs(t, cause, sa.ErrSessionEnded)
	require.ErrorContains(t, cause, "audit failed")
	require.NotContains(t, cause.Error(), "check failed")
	require.Empty(t, e.ended.all(), "an outage of the auditor does not end the session")
}

// r113HijackRecorder is a recorder whose connection can be taken, as
// net/http's HTTP/1 writer allows also after the header went out.
type r113HijackRecorder struct {
	*httptest.ResponseRecorder
	conn net.Conn
}

func (w *r113HijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// TestReview113HijackedAfterHeaderNotAborted: a handler that sent its
// header, then took the connection, owns it: when the session ends while
// it runs, the handler ends the connection itself and the middleware does
// not abort the response with panic(http.ErrAbortHandler) after it
// returns (Manager.Middleware: "A hijacked connection is the handler's to
// close") — a panic that wrappers outside the middleware would see.
//
// Kills: middleware_writer.go cut, `rw.sent && !rw.hijacked &&
// rw.st.ended.Load()` with `!rw.hijacked` dropped.
func TestReview113HijackedAfterHeaderNotAborted(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	server, client := net.Pipe()
	defer client.Close()
	var hijackErr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		c, _, err := http.NewResponseController(w).Hijack()
		if hijackErr = err; err != nil {
			return
		}
		defer c.Close()
		_, err = e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop")
		require.NoError(t, err)
		<-r.Context().Done() // the handler owns the connection: it ends it on cancellation
	}))
	rec := &r113HijackRecorder{ResponseRecorder: httptest.NewRecorder(), conn: server}
	aborted := func() (aborted bool) {
		defer func() {
			if p := recover(); p != nil {
				require.Equal(t, http.ErrAbortHandler, p)
				aborted = true
			}
		}()
		h.ServeHTTP(rec, mwReq(http.MethodGet, "/ws", "generic"))
		return false
	}()
	require.NoError(t, hijackErr)
	require.False(t, aborted, "a hijacked connection is the handler's: no abort after it returns")
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, "200", evs[0].Attrs[sa.AttrStatus])
}

// TestReview113RefusalAfterHijackWritesNothing: a RequireScope route
// refused after the handler took the connection (its support.request
// recorded with 101) is audited as access.denied, and nothing is written:
// the denied handler is not called (WithDeniedHandler: "f is not called
// for the refusal of a part of a response already under way"), and no
// status goes to a writer whose connection is gone.
//
// Kills: middleware_state.go refuse, `sw.committed && (sw.sent ||
// sw.hijacked)` with `|| sw.hijacked` dropped.
func TestReview113RefusalAfterHijackWritesNothing(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read, not messages:read
	server, client := net.Pipe()
	defer client.Close()
	var deniedCalls int
	next := &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		require.NoError(t, err)
		defer c.Close()
		sa.RequireScope("messages:read")(next).ServeHTTP(w, r)
	}), sa.WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d sa.Denial) {
		deniedCalls++
		sa.DefaultDeniedHandler(w, r, d)
	}))
	rec := &r113HijackRecorder{ResponseRecorder: httptest.NewRecorder(), conn: server}
	h.ServeHTTP(rec, mwReq(http.MethodGet, "/ws", "generic"))
	require.Zero(t, next.calls.Load())
	require.Zero(t, deniedCalls, "nothing is written for a refusal on a taken connection")
	require.False(t, rec.Flushed)
	require.Empty(t, rec.Body.String())
	reqs := e.events(sa.EventSupportRequest)
	require.Len(t, reqs, 1)
	require.Equal(t, "101", reqs[0].Attrs[sa.AttrStatus])
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, 1)
	require.Equal(t, "scope not granted: messages:read", denied[0].Reason)
}
