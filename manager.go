package supportaccess

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportaccess/supportaccess/internal/canon"
)

// Manager is the entry point of the library: it applies the policy and the
// authorisation rules, writes audit events, and keeps grants in a Store. A
// Manager is safe for concurrent use. Create it with NewManager.
type Manager struct {
	store  Store
	policy Policy
	clock  func() time.Time

	// storeAudits is true when the store is (one of) the auditor(s): events
	// are then handed to the store's write methods so they commit together
	// with the change.
	storeAudits bool
	// extra are auditors other than the store; they record before commit.
	extra    []Auditor
	auditLog AuditLog
	// auditLogSet: WithAuditLog chose auditLog (see there).
	auditLogSet bool

	authorize_ Authorizer
	notifier   Notifier
	onError    func(context.Context, error)

	// life is the expiry hook configuration (hooks.go).
	life lifecycle

	// listeners are told about grants that ended (revoked or expired) or
	// whose end moved (Extend), for example by the middleware to cancel
	// in-flight requests.
	listenMu     sync.Mutex
	listeners    map[int]func(g Grant, ended bool) (keep bool)
	nextListener int

	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	principalAttrs bool
	activeGauge    bool
	checkSpans     bool
	tel            telemetry
	closeOnce      sync.Once
	closeErr       error
	runs           runs
}

// runs are the RunExpiry loops of a Manager, which Close stops.
type runs struct {
	mu      sync.Mutex
	closed  bool
	cancels map[*int]context.CancelCauseFunc // the loops' contexts, by a key of each
	wg      sync.WaitGroup
}

// start registers a loop whose context cancel ends (with the cause
// ErrClosed when stop does); it returns a function the loop calls as it
// returns, or false when the Manager is closed.
func (r *runs) start(cancel context.CancelCauseFunc) (done func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false
	}
	if r.cancels == nil {
		r.cancels = make(map[*int]context.CancelCauseFunc)
	}
	key := new(int)
	r.cancels[key] = cancel
	r.wg.Add(1)
	return func() {
		r.mu.Lock()
		delete(r.cancels, key)
		r.mu.Unlock()
		r.wg.Done()
	}, true
}

// stopped reports whether stop was called (Close began).
func (r *runs) stopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// stop refuses new loops, cancels the running ones and waits for them to
// return.
func (r *runs) stop() {
	r.mu.Lock()
	r.closed = true
	for _, cancel := range r.cancels {
		cancel(ErrClosed)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Option configures a Manager. A nil Option is ignored.
type Option interface{ apply(*Manager) }

type optionFunc func(*Manager)

func (f optionFunc) apply(m *Manager) { f(m) }

// WithAuditor sets where audit events go. Default: the store, if it
// implements Auditor (the bundled stores do), so that every change and its
// event commit in one transaction. When a is the store, or a MultiAuditor
// that contains the store, the store's part stays transactional and the
// other auditors record before the change commits: if any of them fails the
// change is not made. (The other auditors that recorded its events before
// that failure, or before a commit that then fails, hold events of a
// change that did not happen; the store's trail is the one that holds
// exactly what happened.) Each auditor is handed its own copy of every
// event (Event.Clone): one that edits the event it is given (redacts an
// attribute before shipping it) edits only its copy. Auditors run inside
// the store's write (its transaction; on memstore, with its lock held):
// they must not call the Manager or the store — on memstore such a call
// waits for ever — nor write to the store's SQLite file (a second
// sqlstore on the same file as a copy of the trail waits for the write
// lock the store's transaction holds, until SQLite's busy timeout).
// Events that
// change nothing and only record a fact — refusals (action.refused,
// access.denied) and notify.failed — go to every auditor, the store
// included, whatever the others return; a failure goes to the error
// handler. Sweep's records of starts and expiries are facts the store
// keeps in any case: there a failure of another auditor goes to the error
// handler; so do the records of expire hooks' outcomes, whoever keeps
// the trail. When the store is not among the auditors, they are the whole
// trail, and the first of them decides Sweep's records: Sweep then
// records one transition per transaction, and a failure of the first
// auditor leaves it due for the next Sweep — an auditor that keeps
// refusing one holds back the later ones (access is not affected: Check
// denies at ExpiresAt) — while a failure of another goes to the error
// handler (else the auditors that had the event would get it again at
// every Sweep).
func WithAuditor(a Auditor) Option {
	return optionFunc(func(m *Manager) {
		if a == nil {
			return
		}
		m.extra = nil
		m.storeAudits = false
		for _, x := range flattenAuditors(a) {
			if sameAuditor(x, m.store) {
				m.storeAudits = true
				continue
			}
			m.extra = append(m.extra, x)
		}
	})
}

// WithAuditLog sets where Manager.Events (and AuditPage, ExportAudit,
// VerifyAudit, PurgeAudit) read the audit trail. Default: the store, if it
// implements AuditLog and is among the auditors — with WithAuditor naming
// others only, the store receives no events, so there is no default log
// (those methods return ErrInvalidInput) rather than one that reads as
// empty and intact.
func WithAuditLog(l AuditLog) Option {
	return optionFunc(func(m *Manager) {
		if l != nil {
			m.auditLogSet = true
			m.auditLog = l
		}
	})
}

// WithPolicy sets the grant policy. Default: DefaultPolicy(). NewManager
// returns an ErrInvalidInput error for an inconsistent policy. The Manager
// keeps a copy of p (its slices included): changing p, or a preset list
// it shares such as PresetsShort, afterwards does not change the policy
// the Manager validated and applies.
func WithPolicy(p Policy) Option {
	return optionFunc(func(m *Manager) { m.policy = p.clone() })
}

// WithNow sets the clock (for tests). Default: time.Now. The Manager uses
// its readings in UTC, truncated to microseconds. At a reading outside the
// years 1000 to 9999 (the zero time of an unset fake, say), which no
// record may hold, every change (Grant, Extend, Revoke, AddGrantee,
// RequestAccess, Approve, Deny, Sweep, PurgeAudit) is refused with
// ErrInvalidInput before any auditor hears of it, and Check fails closed
// with an error that is a fault (telemetry outcome "error", 503 from the
// middleware): every support request is denied until the clock is fixed.
func WithNow(now func() time.Time) Option {
	return optionFunc(func(m *Manager) {
		if now != nil {
			m.clock = now
		}
	})
}

// WithTracerProvider sets the OpenTelemetry tracer provider. Default: the
// global provider (otel.GetTracerProvider). Nil, or a nil pointer, is ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(m *Manager) {
		if !isNil(tp) {
			m.tracerProvider = tp
		}
	})
}

// WithMeterProvider sets the OpenTelemetry meter provider. Default: the
// global provider (otel.GetMeterProvider). Nil, or a nil pointer, is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(m *Manager) {
		if !isNil(mp) {
			m.meterProvider = mp
		}
	})
}

// hasNilAuditor reports whether a is nil or a nil pointer, or holds one
// at any depth of BestEffortAuditor and MultiAuditor (review 168).
func hasNilAuditor(a Auditor) bool {
	switch x := a.(type) {
	case bestEffort:
		return hasNilAuditor(x.a)
	case multiAuditor:
		return slices.ContainsFunc(x, hasNilAuditor)
	}
	return isNil(a)
}

// isNil reports whether x is nil or a nil pointer or func in an
// interface (a typed nil, such as a (*sdktrace.TracerProvider)(nil)
// variable passed on, or a NotifierFunc(nil)).
func isNil(x any) bool {
	if x == nil {
		return true
	}
	v := reflect.ValueOf(x)
	return (v.Kind() == reflect.Pointer || v.Kind() == reflect.Func) && v.IsNil()
}

// WithErrorHandler sets the function that receives errors that cannot be
// returned to a caller (a notifier failure after commit, a failed audit of a
// refusal). Default: log with slog.Default at level Error.
func WithErrorHandler(f func(context.Context, error)) Option {
	return optionFunc(func(m *Manager) {
		if f != nil {
			m.onError = f
		}
	})
}

// NewManager returns a Manager that keeps grants in store.
//
// Errors: ErrInvalidInput when store, an auditor (WithAuditor, also one
// inside BestEffortAuditor) or the audit log (WithAuditLog) is a nil
// pointer, store is nil, the policy is inconsistent, an option was given
// an invalid value (WithSweepConcurrency, WithExpireHookLease,
// WithExpireHookRetry), or no auditor that must succeed is available (the
// store does not implement Auditor and WithAuditor was not given, or
// names only BestEffortAuditors): a Manager never runs without an audit
// trail.
// errors.ErrUnsupported when OnExpire hooks are registered over a store
// that does not implement HookStore.
func NewManager(store Store, opts ...Option) (*Manager, error) {
	if isNil(store) { // a nil *sqlstore.Store, say, from a New whose error was dropped
		return nil, fmt.Errorf("new manager: %w: store is nil", ErrInvalidInput)
	}
	m := &Manager{
		store:      store,
		policy:     DefaultPolicy(),
		clock:      time.Now,
		authorize_: DefaultAuthorizer,
		onError: func(ctx context.Context, err error) {
			slog.Default().ErrorContext(ctx, "supportaccess", "err", err)
		},
	}
	if _, ok := store.(Auditor); ok {
		m.storeAudits = true
	}
	if l, ok := store.(AuditLog); ok {
		m.auditLog = l
	}
	for _, o := range opts {
		if o != nil {
			o.apply(m)
		}
	}
	// A nil pointer (a store whose constructor's error was dropped) would
	// panic at the first audited change: refused here, as the store is.
	allBestEffort := len(m.extra) > 0
	for _, a := range m.extra {
		if hasNilAuditor(a) {
			return nil, fmt.Errorf("new manager: %w: an auditor (WithAuditor) is a nil pointer, or BestEffortAuditor of one", ErrInvalidInput)
		}
		_, ok := a.(bestEffort)
		allBestEffort = allBestEffort && ok
	}
	if allBestEffort && !m.storeAudits {
		// No auditor could stop a change: it would be made with no trail
		// when they all fail (review 166).
		return nil, fmt.Errorf("new manager: %w: every auditor is a BestEffortAuditor: one that must succeed is needed (the store, or another)", ErrInvalidInput)
	}
	if m.auditLogSet && isNil(m.auditLog) {
		return nil, fmt.Errorf("new manager: %w: the audit log (WithAuditLog) is a nil pointer", ErrInvalidInput)
	}
	if err := m.policy.Validate(); err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	if err := m.validateLifecycle(); err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	if !m.auditLogSet && !m.storeAudits {
		m.auditLog = nil // the store receives no events: not a log of them
	}
	if !m.storeAudits && len(m.extra) == 0 {
		return nil, fmt.Errorf("new manager: %w: the store does not implement Auditor and no WithAuditor was given", ErrInvalidInput)
	}
	m.initTelemetry()
	return m, nil
}

// Policy returns the Manager's policy (for example to render the duration
// presets in the host's grant dialog).
func (m *Manager) Policy() Policy { return m.policy.clone() }

// maxTime is the latest StartsAt or ExpiresAt a grant may have, the end of
// year 9999: the last instant RFC 3339 — and so the audit trail's JSON —
// can write, and within what every bundled store keeps exactly. Later
// times are refused with ErrInvalidInput.
var maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)

// minRecordTime is the earliest time a record may hold, the start of year 1000
// (see Store: no bundled store keeps an earlier one).
var minRecordTime = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)

// brokenClock returns an error, wrapping no sentinel, when now is a clock
// reading no record may hold (see checkClock).
func brokenClock(now time.Time) error {
	if now.Before(minRecordTime) || now.After(maxTime) {
		return fmt.Errorf("the clock reads %s, outside the years 1000 to 9999", now.Format(time.RFC3339Nano))
	}
	return nil
}

// checkClock refuses, with ErrInvalidInput, a clock reading now that no
// record may hold (before year 1000, the zero time included, or after
// 9999): a change made at a broken clock's time is refused by the Manager
// itself, whatever the store and the other auditors would keep (a
// revocation at the zero time would otherwise be stored as none), and
// Check fails closed at such a time (a grant it allowed could not be
// revoked).
func checkClock(now time.Time) error {
	if err := brokenClock(now); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return nil
}

// minRecordUnix and maxTimeUnix are the Unix seconds of minRecordTime and
// maxTime: Check tests them before brokenClock (see Manager.check).
var minRecordUnix, maxTimeUnix = minRecordTime.Unix(), maxTime.Unix()

// changeNow reads the clock for a change (the time it is made at, and
// of its event), refusing a broken clock (see checkClock).
func (m *Manager) changeNow() (time.Time, error) {
	now := m.now()
	return now, checkClock(now)
}

// capTime is t, or maxTime when t is after it: a lease end or a retry time
// the Manager computes near the end of year 9999, which no store need
// keep beyond it (a store refusing it would stop every later Sweep).
func capTime(t time.Time) time.Time {
	if t.After(maxTime) {
		return maxTime
	}
	return t
}

// now reads the clock in UTC truncated to microseconds.
func (m *Manager) now() time.Time { return truncate(m.clock()) }

// Now returns the Manager's current time: its clock (WithNow, default
// time.Now) read in UTC and truncated to microseconds, the time Check,
// Sweep and the Store's status filters go by. Use it to render a grant's
// status as the Manager judges it, g.Status(m.Now()), rather than with a
// clock of the host's own.
func (m *Manager) Now() time.Time { return m.now() }

// Close stops the Manager's background work and releases what it
// registered outside itself. It stops every RunExpiry loop (the Sweep in
// progress is cancelled; each returns ErrClosed) and waits until their
// work has ended (the ErrClosed of each reaches its caller just after),
// refuses later RunExpiry calls, and takes the callback of the
// supportaccess.grants.active gauge (WithActiveGrantsGauge) off the meter
// provider, which would otherwise keep the Manager and its store reachable
// and query the store at every collection for as long as the provider
// lives (from Close on, the callback observes nothing). The calls of the
// API keep working after Close (Check, Grant, Sweep…); Close does not
// close the store (the host owns it), and a middleware's watcher
// goroutines end with the requests they watch (see Middleware: after
// http.Server.Shutdown, hijacked connections such as websockets are still
// running, and watched, until the handler closes them). Host code a loop
// runs (an expiry hook, a Notifier, the error handler, the store) holds
// Close for as long as it runs, its context cancelled. Do not call Close
// from an error handler, Notifier or expiry hook that a RunExpiry loop may
// be running: it would wait for itself.
//
// Close may be called more than once and from several goroutines; every
// call returns the first call's error.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.runs.stop()
		if m.tel.reg != nil {
			// What a later Close returns if Unregister panics.
			m.closeErr = errors.New("close: unregistering the active-grants gauge panicked")
			if err := m.tel.reg.Unregister(); err != nil {
				m.closeErr = fmt.Errorf("close: unregister the active-grants gauge: %w", err)
			} else {
				m.closeErr = nil
			}
		}
	})
	return m.closeErr
}

// truncate brings t to the library's canonical form (see canon.Time): UTC,
// microseconds, no monotonic reading; a non-zero time stays non-zero.
func truncate(t time.Time) time.Time { return canon.Time(t) }

// newID returns a time-ordered random UUID (version 7).
func newID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}

// create stores a new grant with its event, auditing per configuration.
func (m *Manager) create(ctx context.Context, g Grant, ev Event) error {
	if err := m.recordExtra(ctx, ev); err != nil {
		return err
	}
	return m.store.CreateGrant(ctx, g, m.storeEvents(ev))
}

// storeEvents returns the events to hand to a store write method.
func (m *Manager) storeEvents(evs ...Event) []Event {
	if !m.storeAudits {
		return nil
	}
	return evs
}

// recordExtra records ev on every auditor other than the store, each
// given its own copy (an auditor that edits the event it is handed must
// not edit the store's).
func (m *Manager) recordExtra(ctx context.Context, ev Event) error {
	for _, a := range m.extra {
		if err := a.Record(ctx, ev.Clone()); err != nil {
			return auditError(err)
		}
	}
	return nil
}

// record writes a standalone event (one not tied to a state change) that
// goes with something its caller does only if the event is recorded
// (support.change before the change is made, support.request before the
// response goes out, support.scope before the scope is relied on). It
// fails closed as a state change does: the auditors other than the store
// record first, and the first failure is returned before the store
// records anything, so the store's trail never shows a change or a
// response the failure then stopped. Facts go through recordFact.
func (m *Manager) record(ctx context.Context, ev Event) error {
	if err := m.recordExtra(ctx, ev); err != nil {
		return err
	}
	if m.storeAudits {
		if err := m.store.(Auditor).Record(ctx, ev); err != nil {
			return auditError(err)
		}
	}
	return nil
}

// recordFact writes an event that only records a fact (a refusal:
// action.refused, access.denied; a failed notification: notify.failed)
// to every auditor, the store first, whatever the others
// return or panic with, so that the store's trail keeps it while another
// destination is down. It then calls report with the errors of all the
// auditors that failed, joined (errors.Join; nil when none did), and
// finally raises the first auditor's panic, if any, so that the caller's
// report is not lost to it.
func (m *Manager) recordFact(ctx context.Context, ev Event, report func(err error)) {
	var x firstPanic
	var errs []error
	failed := func(err error) { errs = append(errs, auditError(err)) }
	if m.storeAudits {
		m.recordEach(ctx, []Auditor{m.store.(Auditor)}, ev, &x, failed)
	}
	m.recordEach(ctx, m.extra, ev, &x, failed)
	x.keep(func() { report(errors.Join(errs...)) })
	x.raise()
}

// auditError wraps an auditor's error err, read once (see hostError).
func auditError(err error) error {
	return newHostError("audit: "+errorMessage(err), err)
}

// update loads the grant, authorises action by on it (auditing a refusal),
// then applies change inside the store's conditional update together with
// the event change returns. change must read the clock itself: the store
// calls it with the grant locked, so a time read there is not older than
// an expiry a concurrent Sweep recorded while this call waited for the
// lock (or for the Authorizer), and the grant's status is judged at that
// time. The store also refuses to change a grant whose expiry is recorded
// (Store.UpdateGrant), which covers replicas whose clocks disagree. A
// change that leaves the grant as it is returns the zero Event: nothing is
// recorded.
//
// sel, when not nil, is what a bulk revocation selected the grant by (its
// tenant and ticket): a grant the store hands over, before or inside the
// transaction, that sel does not select is left alone with errNotSelected.
func (m *Manager) update(ctx context.Context, id uuid.UUID, action Action, by Actor, sel func(*Grant) bool, change func(*Grant) (Event, error)) (Grant, error) {
	cur, err := m.getGrant(ctx, id)
	if err != nil {
		return Grant{}, err
	}
	if sel != nil && !sel(&cur) {
		return Grant{}, errNotSelected
	}
	if err := m.authorize(ctx, action, by, cur.TenantID, onGrant(id)); err != nil {
		return Grant{}, err
	}
	// Built-in rule whatever the Authorizer says: support gives back only
	// access it holds (judged again on the locked grant: a store's copy
	// is not trusted).
	if action == ActionRevoke && by.Kind == ActorSupport && !cur.Covers(by.ID) {
		return Grant{}, m.refuse(ctx, action, by, cur.TenantID, onGrant(id), "support may only revoke a grant that covers it")
	}
	called := false
	var left Grant // the grant as the last call of the change left it
	g, err := m.store.UpdateGrant(ctx, id, func(g *Grant) ([]Event, error) {
		called, left = true, Grant{}
		if err := sameGrant(g, &cur); err != nil {
			return nil, err
		}
		if sel != nil && !sel(g) {
			return nil, errNotSelected
		}
		if action == ActionRevoke && by.Kind == ActorSupport && !g.Covers(by.ID) {
			return nil, fmt.Errorf("%w: support may only revoke a grant that covers it", ErrForbidden)
		}
		ev, err := change(g)
		if err != nil {
			return nil, err
		}
		if ev.ID == uuid.Nil { // no change: nothing recorded (the store may rewrite the row as it is)
			left = g.Clone()
			return nil, nil
		}
		if err := m.recordExtra(ctx, ev); err != nil {
			return nil, err
		}
		left = g.Clone()
		return m.storeEvents(ev), nil
	})
	if err != nil && !called && errors.Is(err, ErrInvalidInput) {
		// The store refused the grant as final (its expiry is recorded)
		// without calling change.
		err = &endedError{err}
	}
	if err != nil {
		return Grant{}, err
	}
	return m.committed(ctx, "grant", id, g, left)
}

// getGrant is the store's GetGrant, refusing with ErrInvalidInput a grant
// of another ID than asked for (review 165).
func (m *Manager) getGrant(ctx context.Context, id uuid.UUID) (Grant, error) {
	g, err := m.store.GetGrant(ctx, id)
	if err != nil {
		return Grant{}, err
	}
	if g.ID != id {
		return Grant{}, fmt.Errorf("%w: the store returned grant %s for grant %s", ErrInvalidInput, g.ID, id)
	}
	return g, nil
}

// errNotSelected is update's error for a grant a bulk revocation's
// selection (tenant, ticket) does not cover: left alone.
var errNotSelected = fmt.Errorf("%w: the grant is not one the revocation selects", ErrInvalidInput)

// committed returns the grant a change committed: the store's answer got
// when it is the grant changed (left, as the change left it: same ID and
// tenant), else left, with the store's error reported. Who is told of the
// change (the Notifier, the middleware ending a revoked grant's requests)
// and what the caller gets must not follow a store's wrong answer (review
// 165). A store that reports success without having called the change
// (left is zero) gets an error.
func (m *Manager) committed(ctx context.Context, what string, id uuid.UUID, got, left Grant) (Grant, error) {
	return committedAs(m, ctx, what, id, got, left, func(g *Grant) (uuid.UUID, string) { return g.ID, g.TenantID })
}

// committedAs is committed for any record with an ID and a tenant (key).
func committedAs[T any](m *Manager, ctx context.Context, what string, id uuid.UUID, got, left T, key func(*T) (uuid.UUID, string)) (T, error) {
	var zero T
	leftID, leftTenant := key(&left)
	if leftID == uuid.Nil {
		return zero, fmt.Errorf("%w: the store reported %s %s changed without applying the change", ErrInvalidInput, what, id)
	}
	if gotID, gotTenant := key(&got); gotID != leftID || gotTenant != leftTenant {
		m.reportError(ctx, fmt.Errorf("supportaccess: the store returned %s %s of tenant %q for %s %s of tenant %q it changed: the changed one is used", what, gotID, gotTenant, what, leftID, leftTenant))
		return left, nil
	}
	return got, nil
}

// sameGrant refuses, with ErrInvalidInput, a grant g a store's UpdateGrant
// hands over that is not cur, the one authorised (another ID or tenant):
// the Authorizer judged cur, so no change is made to another.
func sameGrant(g, cur *Grant) error {
	if g.ID != cur.ID || g.TenantID != cur.TenantID {
		return fmt.Errorf("%w: the store handed over grant %s of tenant %q to change grant %s of tenant %q", ErrInvalidInput, g.ID, g.TenantID, cur.ID, cur.TenantID)
	}
	return nil
}

// reportError hands an error that cannot be returned to the error handler.
func (m *Manager) reportError(ctx context.Context, err error) {
	if err != nil {
		m.onError(ctx, err)
	}
}

// onGrantChange registers f to be called (synchronously, after commit)
// for every grant this Manager revokes or records as expired (ended true)
// and every grant whose end it moves (Extend; ended false). f returns
// false when it is no longer needed (the middleware it tells was
// collected): it is then removed.
func (m *Manager) onGrantChange(f func(g Grant, ended bool) (keep bool)) {
	m.listenMu.Lock()
	defer m.listenMu.Unlock()
	if m.listeners == nil {
		m.listeners = make(map[int]func(Grant, bool) bool)
	}
	m.listeners[m.nextListener] = f
	m.nextListener++
}

// revoked tells the listeners that g ended.
func (m *Manager) revoked(g Grant) { m.tellListeners(g, true) }

// tellListeners tells the listeners that g ended (ended) or that its end
// moved, and removes those that are no longer needed.
func (m *Manager) tellListeners(g Grant, ended bool) {
	type listener struct {
		id int
		f  func(Grant, bool) bool
	}
	m.listenMu.Lock()
	ls := make([]listener, 0, len(m.listeners))
	for id, f := range m.listeners {
		ls = append(ls, listener{id, f})
	}
	m.listenMu.Unlock()
	var gone []int
	for _, l := range ls {
		if !l.f(g, ended) {
			gone = append(gone, l.id)
		}
	}
	if len(gone) > 0 {
		m.listenMu.Lock()
		for _, id := range gone {
			delete(m.listeners, id)
		}
		m.listenMu.Unlock()
	}
}
