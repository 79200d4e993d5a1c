package supportaccess

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"time"
)

// DefaultPollInterval is how often, by default, the middleware re-checks
// the grants of impersonated requests that are still running, to notice a
// revocation made through another Manager (another replica sharing the
// store). See WithPollInterval.
const DefaultPollInterval = time.Second

// MiddlewareOption configures Manager.Middleware. A nil MiddlewareOption is
// ignored.
type MiddlewareOption interface{ applyMiddleware(*middlewareConfig) }

type middlewareOptionFunc func(*middlewareConfig)

func (f middlewareOptionFunc) applyMiddleware(c *middlewareConfig) { f(c) }

// middlewareConfig is what the options set.
type middlewareConfig struct {
	denied    func(http.ResponseWriter, *http.Request, Denial)
	mfa       bool               // RequireMFA given
	mfaExempt func(Session) bool // sessions RequireMFA exempts
	onEnded   func(Session, string)
	interval  time.Duration
	onError   func(context.Context, error)
}

// WithDeniedHandler sets the function that writes the response of a denied
// request, for example a redirect to a "support access ended" page. It
// receives the plain http.ResponseWriter (no status written yet) and the
// reason of the denial; it should write d.Status or a redirect and must not
// show d.Reason or d.Err to the client. If f writes nothing (no status, no
// body), the middleware writes d.Status with an empty body, so that no
// denial goes out as net/http's implicit 200. Default: a short body in JSON when
// the Accept header asks for JSON, plain text otherwise, with status
// d.Status and Cache-Control: no-store. Nil is ignored. The access.denied
// event is recorded before f runs and names d.Status (AttrStatus), whatever
// f sends. f is not called for the refusal of a part of a response already
// under way (see RequireScope): nothing is written then.
//
// The header f finds: for a refusal at admission, the fields the server and
// outer handlers set, untouched; for a denial that replaces the response
// of an admitted request before its header was written (a RequireScope
// refusal, support access ended, or the audit of the response failed),
// only the fields present when the wrapped handler started, less those
// that may describe or carry what support was not to get (Content-Type,
// Content-Length, Content-Encoding, Content-Disposition, Content-Range,
// ETag, Last-Modified, Location, Set-Cookie, Trailer).
func WithDeniedHandler(f func(w http.ResponseWriter, r *http.Request, d Denial)) MiddlewareOption {
	return middlewareOptionFunc(func(c *middlewareConfig) {
		if f != nil {
			c.denied = func(w http.ResponseWriter, r *http.Request, d Denial) {
				dw := &deniedWriter{ResponseWriter: w, status: d.Status}
				f(dw, r, d)
				if !dw.wrote {
					w.WriteHeader(d.Status)
				}
			}
		}
	})
}

// deniedWriter is the ResponseWriter a host's denied handler gets: it
// notes whether the handler wrote a response (a final status or a body),
// and a flush of nothing written sends the denial's status first (net/http
// would send 200).
type deniedWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *deniedWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *deniedWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// FlushError implements http.ResponseController's flush: the denial's
// status goes out first when nothing was written.
func (w *deniedWriter) FlushError() error {
	if !w.wrote {
		w.WriteHeader(w.status)
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (w *deniedWriter) Flush() { _ = w.FlushError() }

// Hijack implements http.Hijacker: the handler writes on the connection.
func (w *deniedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.wrote = true
	}
	return c, brw, err
}

// Unwrap returns the underlying ResponseWriter (for
// http.ResponseController).
func (w *deniedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// RequireMFA makes every named support principal log in with a second
// factor, per policies such as "personalised support users must use
// two-factor login": an impersonated request whose session has MFA false is
// refused (403, Denial.Code DeniedMFARequired, audited as access.denied,
// before any store access) unless exempt reports that its principal is not
// a named one, that is, it is the tenant's generic support user (which is
// shared and cannot hold a second factor). Use GenericSupportUser for the
// usual naming scheme or a predicate of your own; nil exempts nobody.
// Default: MFA is not required.
func RequireMFA(exempt func(Session) bool) MiddlewareOption {
	return middlewareOptionFunc(func(c *middlewareConfig) {
		if exempt == nil {
			exempt = func(Session) bool { return false }
		}
		c.mfaExempt = exempt
		c.mfa = true
	})
}

// OnSessionEnded sets the function the middleware calls so the host can log
// the support principal out and drop its session: with SessionEndRevoked or
// SessionEndExpired when the support access of an in-flight request ended
// (called on the request's goroutine, after the handler returned), and with
// SessionEndNoGrant when a request of the session is refused because no
// active grant covers it (called before the denied handler runs). It is not
// called for scope or MFA denials or for outages, nor when an in-flight
// request ends because a scope it used is no longer granted while the
// session keeps read access — a scope it took with RequireScope, or write
// for a POST while a grant still allows read (the request's context is
// cancelled with an ErrSessionEnded cause that also wraps
// ErrScopeNotGranted; the session's next GET is admitted). It may be
// called more than
// once for one session (once per request), so it should be idempotent.
// SessionEndNoGrant does not mean the session had access: support trying
// a tenant before its grant exists gets it too, so a host that logs
// support out on it ends such a session at its first attempt (drop the
// session on SessionEndRevoked and SessionEndExpired only, if that is not
// wanted). Nil is ignored.
func OnSessionEnded(f func(s Session, reason string)) MiddlewareOption {
	return middlewareOptionFunc(func(c *middlewareConfig) {
		if f != nil {
			c.onEnded = f
		}
	})
}

// WithPollInterval sets how often the grants of impersonated requests that
// are still running are checked again, so that a revocation made by another
// replica (a Manager sharing the store) cancels them within about d plus
// one Check. Only requests that have run for at least d/2 since their last
// check are polled, by one goroutine per middleware that runs only while
// impersonated requests are in flight. Revocations and expiries recorded
// by the middleware's own Manager, and ExpiresAt itself, end requests at
// once whatever d is (ExpiresAt by a real-time timer armed from the
// Manager's clock: when that clock steps forward past it, the next poll
// ends them, within d). The Checks of one poll get d in all (at least
// 250 ms, at most 1 s): a store that does not answer by then (a slow or
// hung store) does not end a request by itself, and a request whose
// re-checks have not been answered for max(3d, 5 s) ends (fail closed).
// When a grant a request uses reached ExpiresAt or was revoked or expired
// by the Manager, its own re-check (which may find another grant to go on
// with) waits at most 100 ms for the store before the request ends; the
// one goroutine re-checks requests in turn, so with a store that stopped
// answering, a poll already under way can delay that by up to its time
// (at most 1 s) and 100 ms, however many requests wait — and by 100 ms
// more when a refusal must be told apart as an expiry from a revocation
// (a grant shortened elsewhere: its grant is read, once per poll). These bounds hold
// also with a store that ignores its context: a re-check stops waiting at
// its deadline, and the last request of a busy period waits for such a
// Check to return before it finishes (no goroutine outlives the
// requests). Default: DefaultPollInterval (1 s). Values <= 0 are ignored.
func WithPollInterval(d time.Duration) MiddlewareOption {
	return middlewareOptionFunc(func(c *middlewareConfig) {
		if d > 0 {
			c.interval = d
		}
	})
}

// WithMiddlewareErrorHandler sets the function that receives the errors the
// middleware cannot return: store failures of access checks, failed audit
// writes, failures of the background re-check.
// Default: the Manager's error handler (see WithErrorHandler). Nil is
// ignored.
func WithMiddlewareErrorHandler(f func(ctx context.Context, err error)) MiddlewareOption {
	return middlewareOptionFunc(func(c *middlewareConfig) {
		if f != nil {
			c.onError = f
		}
	})
}
