package supportaccess

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Notification tells a tenant's contacts about a change of support access:
// who gained or lost access, to which tenant, why and until when.
//
// Types: grant.created, grant.extended, grant.revoked, grant.expired,
// grant.delegated, request.created, request.approved (the grant fields
// describe the grant the approval created) and request.denied. Expiry of an
// unanswered request is audited but not notified.
type Notification struct {
	Type      EventType
	TenantID  string
	GrantID   uuid.UUID // zero for request.created and request.denied
	RequestID uuid.UUID // the access request, if the change stems from one
	By        Actor     // who made the change (the system for expiry)
	// Grantees is who has (or asks for) access; empty: any support
	// principal.
	Grantees []string
	Scopes   []Scope
	// Reason is the reason given for the change, else the grant's or
	// request's reason.
	Reason    string
	TicketRef string
	// StartsAt and ExpiresAt are the grant's window; ExpiresAt zero means
	// unlimited. For request.created and request.denied there is no window
	// yet: StartsAt is the requested start (zero: at approval), ExpiresAt
	// is zero and Duration says how long was asked for.
	StartsAt  time.Time
	ExpiresAt time.Time
	// Duration is the requested duration (request notifications only;
	// Unlimited for no end).
	Duration time.Duration
	// RespondBy is when an unanswered request expires (request.created).
	RespondBy time.Time
	// Principal is the support principal added (grant.delegated).
	Principal string
}

// Notifier delivers notifications (e-mail, chat, in-app). It is called after
// the change committed; an error never undoes the change, it is recorded as
// a notify.failed event and passed to the error handler. It gets the
// caller's context, which may have ended by then (a closed browser tab, a
// stopping RunExpiry): a Notifier that only queues may ignore that. A
// failure is recorded even then, under a context of its own bounded to one
// second, so that the trail keeps a trace of a notification that did not
// go out. The error's text is recorded in the tenant's trail (AttrError),
// which the customer's administrators read: return errors that name no
// secret (a mail server's credentials, an internal host name).
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, n Notification) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n Notification) error { return f(ctx, n) }

// WithNotifier sets the Notifier. Default: none. Nil (also a nil
// pointer or a NotifierFunc(nil)) is ignored.
func WithNotifier(n Notifier) Option {
	return optionFunc(func(m *Manager) {
		if !isNil(n) {
			m.notifier = n
		}
	})
}

// notify tells the Notifier about a committed change of g.
func (m *Manager) notify(ctx context.Context, t EventType, g Grant, by Actor, reason string) {
	if m.notifier == nil {
		return
	}
	m.deliver(ctx, grantNotification(t, g, by, reason))
}

// grantNotification describes a change of g.
func grantNotification(t EventType, g Grant, by Actor, reason string) Notification {
	if reason == "" {
		reason = g.Reason
	}
	return Notification{
		Type: t, TenantID: g.TenantID, GrantID: g.ID, RequestID: g.RequestID, By: by,
		Grantees: g.Grantees, Scopes: g.Scopes, Reason: reason, TicketRef: g.TicketRef,
		StartsAt: g.StartsAt, ExpiresAt: g.ExpiresAt,
	}
}

// notifyRequest tells the Notifier about a committed change of request r.
func (m *Manager) notifyRequest(ctx context.Context, t EventType, r AccessRequest, by Actor, reason string) {
	if m.notifier == nil {
		return
	}
	if reason == "" {
		reason = r.Reason
	}
	n := Notification{
		Type: t, TenantID: r.TenantID, RequestID: r.ID, By: by,
		Grantees: []string{r.RequestedBy.ID}, Scopes: r.Scopes, Reason: reason, TicketRef: r.TicketRef,
		StartsAt: r.StartsAt, Duration: r.Duration,
	}
	if t == EventRequestCreated {
		n.RespondBy = r.ExpiresAt
	}
	m.deliver(ctx, n)
}

// lateRecordTimeout bounds the recording of a notify.failed event once the
// caller's context has ended.
const lateRecordTimeout = time.Second

// lateContext returns a context with ctx's values that ends d after ctx
// ends (or at once when cancel is called), so that a write that must not
// be lost survives the caller's going away, boundedly — also when that
// happens in the middle of the write.
func lateContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	late, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-late.Done():
		}
	})
	return late, func() { stop(); cancel() }
}

// deliver calls the Notifier (a panic counts as a failure) and records a
// failure as a notify.failed event (attrs: the notification type, the
// error, the request if any) and hands it to the error handler. The change
// the notification follows committed, so the event is recorded also when
// ctx ends before or during the write, with up to lateRecordTimeout more.
func (m *Manager) deliver(ctx context.Context, n Notification) {
	n.Grantees = slices.Clone(n.Grantees)
	n.Scopes = slices.Clone(n.Scopes)
	err := m.callNotifier(ctx, n)
	if err == nil {
		return
	}
	ev := m.newEvent(m.now(), EventNotifyFailed, n.TenantID, n.GrantID, SystemActor, "")
	raw := errorMessage(err) // host code, called once
	ev.Attrs = map[string]string{AttrAction: string(n.Type), AttrError: cleanText(raw)}
	if n.RequestID != uuid.Nil {
		ev.Attrs[AttrRequestID] = n.RequestID.String()
	}
	rctx, cancel := lateContext(ctx, lateRecordTimeout)
	defer cancel()
	m.recordFact(rctx, ev, func(aerr error) {
		msg := fmt.Sprintf("notify %s: %s", n.Type, raw)
		if aerr != nil {
			msg += fmt.Sprintf(" (and recording the failure: %s)", errorText(aerr))
		}
		m.reportError(ctx, newHostError(msg, err))
	})
}

// callNotifier calls the Notifier, turning a panic into an error.
func (m *Manager) callNotifier(ctx context.Context, n Notification) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("notifier panicked: %s", panicText(p))
		}
	}()
	return m.notifier.Notify(ctx, n)
}

// errorText is err's message as the audit trail and the stores keep it: a
// valid single-line text (invalid UTF-8 and control characters, line
// breaks included, become U+FFFD) of at most MaxReasonLen bytes. A hook or
// Notifier error is caller text; unchanged, one invalid byte made
// PostgreSQL and MySQL refuse the whole write of a sweep's hook results.
func errorText(err error) string { return cleanText(errorMessage(err)) }

// cleanText is s as errorText keeps it: cleanChars, clipped to
// MaxReasonLen.
func cleanText(s string) string {
	if checkText("", s, MaxReasonLen, false, oneLine) == nil {
		return s
	}
	return clip(cleanChars(s), MaxReasonLen)
}

// cleanChars is s with invalid UTF-8 and control characters (line breaks
// included) replaced by U+FFFD, whatever its length.
func cleanChars(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, controlRune) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if controlRune(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

// errorMessage is err.Error(), called once, or, when that panics (a typed
// nil pointer returned as an error, say), a text that says so: host code,
// which must not keep a failure from being recorded.
func errorMessage(err error) (s string) {
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("(a %T whose Error method panicked: %s)", err, innerPanicText(p))
		}
	}()
	return err.Error()
}

// panicText is the text of a recovered panic value p of host code: an
// error's message (errorMessage), a Stringer's String, else fmt.Sprint(p),
// each host method called at most once; its type when that panics.
func panicText(p any) (s string) {
	defer func() {
		if recover() != nil {
			s = fmt.Sprintf("(a %T)", p)
		}
	}()
	switch v := p.(type) {
	case error:
		return errorMessage(v)
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(p)
}

// innerPanicText is the text of the panic value p of an Error method that
// panicked: a runtime error's message (a nil pointer dereference, say),
// else, for an error or a Stringer (often the very error whose Error
// method panicked), only its type, so that no host method is called
// again; any other value as fmt prints it.
func innerPanicText(p any) (s string) {
	defer func() {
		if recover() != nil {
			s = fmt.Sprintf("a %T", p)
		}
	}()
	switch v := p.(type) {
	case runtime.Error:
		return v.Error()
	case error, fmt.Stringer:
		return fmt.Sprintf("a %T", v)
	}
	return fmt.Sprint(p)
}

// hostError wraps a host's error err under msg, built from its text as
// errorMessage read it once (whole, for the error handler), so that
// neither wrapping it nor reading the message calls err's Error method
// again (fmt.Errorf's %w would, and it may panic).
type hostError struct {
	msg string
	err error
}

func (e *hostError) Error() string { return e.msg }
func (e *hostError) Unwrap() error { return e.err }

// newHostError wraps err under msg (see hostError) — unless walking err's
// chain panics (a typed nil pointer whose Unwrap or Is reads its
// receiver): errors.Is and errors.As on the result, which the Manager's
// own telemetry calls, would panic too, so such an error is not wrapped,
// only its text kept.
func newHostError(msg string, err error) error {
	if !exposable(err) {
		err = nil
	}
	return &hostError{msg: msg, err: err}
}

// errNeverWrapped is a target no error wraps: errors.Is with it walks an
// error's whole chain.
var errNeverWrapped = errors.New("supportaccess: never wrapped")

// exposable reports whether errors.Is can walk host error err's chain
// without a panic.
func exposable(err error) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	_ = errors.Is(err, errNeverWrapped)
	return true
}

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
