package supportaccess

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportaccess/supportaccess/internal/clone"
)

// Unlimited is the GrantInput.Duration (and Preset.Duration) that asks for a
// grant without an end. It is refused with ErrForbidden unless
// Policy.AllowUnlimited is set. An unlimited grant has a zero ExpiresAt.
const Unlimited time.Duration = math.MaxInt64

// GrantInput is what a customer administrator chooses when granting support
// access to a tenant.
type GrantInput struct {
	// TenantID is the customer tenant support may enter. Required.
	TenantID string
	// By is who grants. By default it must be an ActorCustomer.
	By Actor
	// Duration of the window; 0 means the policy default, Unlimited asks for
	// no end. It must be one of Policy.Presets when presets are set and may
	// not exceed Policy.MaxDuration. A nanosecond part is dropped: the
	// grant ends at the last whole microsecond within Duration.
	Duration time.Duration
	// StartsAt schedules the grant; zero means now. It may not be in the past
	// by more than a second (clock skew; a StartsAt up to a second in the
	// past is now) and is truncated to microseconds.
	// Neither it nor the end it gives may lie after the end of year 9999
	// (ErrInvalidInput); Policy.MaxScheduleAhead sets a nearer limit.
	StartsAt time.Time
	// Grantees lists the support principals allowed in; empty means any
	// support principal of the vendor (for example the generic
	// support+<tenant>@vendor.example user).
	Grantees []string
	// Scopes granted; empty means Policy.DefaultScopes (read-only unless the
	// host changed it). They replace the defaults: a host-defined scope
	// such as "messages:read" lets support in only with read or write
	// too, which every request through the middleware needs.
	Scopes []Scope
	// Reason and TicketRef explain the grant; the policy may require them.
	Reason, TicketRef string
}

// Grant is a time-boxed permission for support to enter one tenant. Grants
// are values: the Manager and the stores hand out copies.
type Grant struct {
	ID        uuid.UUID `json:"id"`
	TenantID  string    `json:"tenant_id"`
	Grantees  []string  `json:"grantees,omitempty"`
	Scopes    []Scope   `json:"scopes"`
	Reason    string    `json:"reason,omitempty"`
	TicketRef string    `json:"ticket_ref,omitempty"`
	GrantedBy Actor     `json:"granted_by"`
	// RequestID links a grant created by approving an access request.
	RequestID uuid.UUID `json:"request_id,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	StartsAt  time.Time `json:"starts_at"`
	// ExpiresAt is the first instant the grant no longer allows access; zero
	// means unlimited.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RevokedBy Actor     `json:"revoked_by,omitzero"`
	// RevokeReason is the reason given to Revoke.
	RevokeReason string `json:"revoke_reason,omitempty"`
}

// Status is where a grant is in its life.
type Status string

// Grant statuses.
const (
	StatusScheduled Status = "scheduled" // StartsAt is in the future
	StatusActive    Status = "active"    // StartsAt <= now < ExpiresAt, not revoked
	StatusExpired   Status = "expired"   // now >= ExpiresAt
	StatusRevoked   Status = "revoked"   // revoked (before it expired)
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	return s == StatusScheduled || s == StatusActive || s == StatusExpired || s == StatusRevoked
}

// Status reports the grant's status at now. Revocation wins over everything:
// a revoked grant is StatusRevoked whatever the time. The window is
// half-open: active from StartsAt inclusive to ExpiresAt exclusive.
func (g Grant) Status(now time.Time) Status { return g.status(now) }

// status is Status without copying the grant.
func (g *Grant) status(now time.Time) Status {
	switch {
	case !g.RevokedAt.IsZero():
		return StatusRevoked
	case now.Before(g.StartsAt):
		return StatusScheduled
	case !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt):
		return StatusExpired
	default:
		return StatusActive
	}
}

// Unlimited reports whether the grant has no end.
func (g Grant) Unlimited() bool { return g.ExpiresAt.IsZero() }

// Covers reports whether the grant names principal or is open to any
// support principal (empty Grantees).
func (g Grant) Covers(principal string) bool { return g.covers(principal) }

func (g *Grant) covers(principal string) bool {
	return len(g.Grantees) == 0 || slices.Contains(g.Grantees, principal)
}

// Allows reports whether the grant's scopes allow s (ScopeWrite implies
// ScopeRead; host-defined scopes must be listed).
func (g Grant) Allows(s Scope) bool { return hasScope(g.Scopes, s) }

// Clone returns a deep copy of g (its slices are not shared).
func (g Grant) Clone() Grant {
	g.Grantees = clone.Slice(g.Grantees)
	g.Scopes = clone.Slice(g.Scopes)
	return g
}

// Grant creates a grant from in. It validates the input against the policy
// and the Authorizer, stores the grant and its grant.created event in one
// step and returns the stored grant.
//
// Errors: ErrInvalidInput (naming the field) for malformed input or a
// duration outside the policy; ErrForbidden when the actor may not grant or
// an unlimited grant is not allowed (a refusal is audited); any store or
// auditor error, in which case no grant exists — except when the database
// committed but its reply was lost (the connection dropped during the
// commit): then the grant exists, with its event. A host that retries a
// failed Grant automatically should first look for it (List by tenant,
// or the trail), or it may create two.
func (m *Manager) Grant(ctx context.Context, in GrantInput) (g Grant, err error) {
	ctx, span := m.startSpan(ctx, "Grant", m.actorAttrs(in.By)...)
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		if err == nil {
			span.SetAttributes(AttrKeyGrant.String(g.ID.String()))
		}
	})
	return m.grant(ctx, in, span)
}

func (m *Manager) grant(ctx context.Context, in GrantInput, span trace.Span) (Grant, error) {
	now := m.now()
	if err := validateGrantInput(&in); err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	span.SetAttributes(AttrKeyTenant.String(in.TenantID))
	if err := m.authorize(ctx, ActionGrant, in.By, in.TenantID, target{}); err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	g, err := m.newGrant(in, now)
	if err != nil {
		m.auditPolicyRefusal(ctx, ActionGrant, in.By, in.TenantID, target{}, err)
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	ev := m.newEvent(now, EventGrantCreated, g.TenantID, g.ID, in.By, in.Reason)
	ev.After = grantJSON(g)
	tagSession(ctx, &ev)
	if err := m.create(ctx, g, ev); err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	m.tel.created.Add(ctx, 1) // at the commit, as Revoke counts: host code after it may panic
	m.notify(ctx, EventGrantCreated, g, in.By, in.Reason)
	return g.Clone(), nil
}

// newGrant applies the policy to validated input and builds the grant.
func (m *Manager) newGrant(in GrantInput, now time.Time) (Grant, error) {
	if err := checkClock(now); err != nil {
		return Grant{}, err
	}
	starts := now
	if !in.StartsAt.IsZero() {
		starts = truncate(in.StartsAt)
		if starts.Before(now.Add(-time.Second)) {
			return Grant{}, fmt.Errorf("%w: StartsAt is in the past", ErrInvalidInput)
		}
		if starts.Before(now) {
			starts = now
		}
		if m.policy.MaxScheduleAhead > 0 && starts.Sub(now) > m.policy.MaxScheduleAhead {
			return Grant{}, fmt.Errorf("%w: StartsAt is more than %s ahead", ErrInvalidInput, m.policy.MaxScheduleAhead)
		}
		if starts.After(maxTime) {
			return Grant{}, fmt.Errorf("%w: StartsAt is after %s", ErrInvalidInput, maxTime.Format(time.RFC3339))
		}
	}
	d, err := m.policy.duration(in.Duration)
	if err != nil {
		return Grant{}, err
	}
	if err := m.policy.requireTexts(in.Reason, in.TicketRef); err != nil {
		return Grant{}, err
	}
	scopes := in.Scopes
	if len(scopes) == 0 {
		scopes = m.policy.DefaultScopes
	}
	if len(scopes) == 0 {
		scopes = []Scope{ScopeRead}
	}
	grantees := slices.Clone(in.Grantees)
	slices.Sort(grantees)
	grantees = slices.Compact(grantees)
	if len(grantees) == 0 {
		grantees = nil
	}
	g := Grant{
		ID:        newID(),
		TenantID:  in.TenantID,
		Grantees:  grantees,
		Scopes:    normalizeScopes(scopes),
		Reason:    in.Reason,
		TicketRef: in.TicketRef,
		GrantedBy: in.By,
		CreatedAt: now,
		StartsAt:  starts,
	}
	if d != Unlimited {
		// Whole microseconds, like every stored time (a Duration may
		// have a nanosecond part); truncating ends the grant early, not late.
		g.ExpiresAt = truncate(starts.Add(d))
		if g.ExpiresAt.After(maxTime) {
			return Grant{}, fmt.Errorf("%w: the grant would end after %s", ErrInvalidInput, maxTime.Format(time.RFC3339))
		}
	}
	return g, nil
}

// Extend moves the end of an active or scheduled grant to expiresAt (zero:
// unlimited, only if the policy allows it). The new end must lie after now
// and after StartsAt, and the remaining window (from now, or from StartsAt
// for a scheduled grant) may not exceed Policy.MaxDuration. Extend may also
// shorten a grant. It records grant.extended with the grant before and after.
// Extending a grant to the end it has (within the microsecond) is a no-op,
// once the policy has judged it: the grant is returned unchanged, nothing
// is recorded and nobody is notified, so a retry is safe.
// Requests in flight that this Manager's middleware admitted with the grant
// end at its new end (on other replicas: when their next poll finds it).
//
// Errors: ErrNotFound; ErrInvalidInput for a grant that is expired or
// revoked or an end outside the policy; ErrForbidden when the actor may not
// extend, or for a zero expiresAt (no end) when the policy does not allow
// unlimited grants (each audited).
func (m *Manager) Extend(ctx context.Context, id uuid.UUID, expiresAt time.Time, by Actor) (g Grant, err error) {
	ctx, span := m.startSpan(ctx, "Extend", append(m.actorAttrs(by), AttrKeyGrant.String(id.String()))...)
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		if err == nil {
			setTenant(span, g.TenantID)
		}
	})
	if err := validateActor("by", by); err != nil {
		return Grant{}, fmt.Errorf("extend: %w", err)
	}
	if id == uuid.Nil {
		return Grant{}, fmt.Errorf("extend: %w: grant id is empty", ErrInvalidInput)
	}
	expiresAt = truncate(expiresAt)
	var tenant string // of a grant whose new end the policy refused
	moved := false
	// not err: see errNotReturned (host code runs after it)
	g, uerr := m.update(ctx, id, ActionExtend, by, nil, func(g *Grant) (Event, error) {
		moved = false             // the last call decides: a store may retry a transaction
		now, err := m.changeNow() // after the store locked the grant: see Manager.update
		if err != nil {
			return Event{}, err
		}
		switch st := g.Status(now); st {
		case StatusActive, StatusScheduled:
		default:
			return Event{}, fmt.Errorf("%w: grant is %s", ErrInvalidInput, st)
		}
		if err := m.policy.checkEnd(g.StartsAt, expiresAt, now); err != nil {
			tenant = g.TenantID
			return Event{}, err
		}
		if g.ExpiresAt.Equal(expiresAt) {
			return Event{}, nil // a retry: nothing to record (see update)
		}
		before := grantJSON(*g)
		g.ExpiresAt = expiresAt
		ev := m.newEvent(now, EventGrantExtended, g.TenantID, g.ID, by, "")
		ev.Before, ev.After = before, grantJSON(*g)
		tagSession(ctx, &ev)
		moved = true
		return ev, nil
	})
	if uerr != nil {
		m.auditPolicyRefusal(ctx, ActionExtend, by, tenant, onGrant(id), uerr)
		return Grant{}, fmt.Errorf("extend: %w", uerr)
	}
	if !moved {
		return g, nil
	}
	// First: in-flight requests end at the new end, not after the
	// Notifier's round trip (as in Revoke).
	m.tellListeners(g, false)
	m.notify(ctx, EventGrantExtended, g, by, "")
	return g, nil
}

// Check reports whether principal, a support principal, may act on tenantID
// with scope now. It returns the covering active grant (the one that expires
// last when several do, unlimited first) or an error:
// ErrNoActiveGrant when no active grant covers the principal,
// ErrScopeNotGranted when one does but none allows scope, ErrInvalidInput
// for malformed arguments, an error wrapping no sentinel at a clock outside
// the years 1000 to 9999 (see WithNow: a fault, counted as outcome "error"
// and answered 503 by the middleware), or the store's error. Callers must
// treat every
// error as a denial; the method fails closed. With the bundled stores it is
// one store round trip and writes nothing.
//
// Telemetry: every call counts in supportaccess.checks and
// supportaccess.check.duration (when a MeterProvider with an SDK is
// installed). Check asks the counter whether metrics are wanted: a View
// that drops supportaccess.checks stops supportaccess.check.duration too,
// so to keep only one of them, drop the duration (the counter keeps
// counting). With WithCheckSpans(true) a span supportaccess.Check is
// started when ctx already carries a recording span (the check is part of a
// traced request); by default Check starts none — the middleware annotates
// the request's server span with the decision instead — so the hot path
// stays within a few percent of an uninstrumented check.
func (m *Manager) Check(ctx context.Context, tenantID, principal string, scope Scope) (g Grant, err error) {
	// One Enabled call gates both instruments (a second one costs ~40
	// instructions, which the default path's budget does not have; see
	// BENCHMARKS.md): the counter's, as the doc says. Without metrics or
	// spans, Check is check plus this test; the instrumented path has its
	// own frame.
	if measured := m.tel.checks.Enabled(ctx); measured || m.checkSpans {
		return m.checkInstrumented(ctx, tenantID, principal, scope, measured)
	}
	err = m.check(ctx, tenantID, principal, scope, &g)
	return g, err
}

// checkInstrumented is Check with its metrics (when measured) and, with
// WithCheckSpans, its span.
func (m *Manager) checkInstrumented(ctx context.Context, tenantID, principal string, scope Scope, measured bool) (g Grant, err error) {
	var start time.Time
	if measured {
		start = time.Now()
	}
	var span trace.Span
	if m.checkSpans && trace.SpanFromContext(ctx).IsRecording() {
		ctx, span = m.startSpan(ctx, "Check")
	}
	// In a defer, so that a check a store's panic (or runtime.Goexit) went
	// through is counted, and its span ended, as a fault.
	err = errNotReturned
	defer func() {
		if p := recover(); p != nil {
			err = errNotReturned
			defer panic(p)
		}
		m.checkDone(ctx, span, tenantID, principal, scope, measured, start, g, err)
	}()
	err = m.check(ctx, tenantID, principal, scope, &g)
	return g, err
}

// checkDone records a check's metrics (when measured) and ends its span
// (when there is one).
func (m *Manager) checkDone(ctx context.Context, span trace.Span, tenantID, principal string, scope Scope, measured bool, start time.Time, g Grant, err error) {
	if measured {
		o := checkOutcome(err)
		m.tel.checks.Add(ctx, 1, m.tel.checkOpts[o])
		m.tel.checkDur.Record(ctx, time.Since(start).Seconds(), m.tel.checkOpts[o])
	}
	if span != nil {
		setTenant(span, tenantID)
		if validateScope("", scope) == nil {
			span.SetAttributes(AttrKeyScope.String(string(scope)))
		}
		if m.principalAttrs && validatePrincipal("", principal) == nil {
			span.SetAttributes(AttrKeyPrincipal.String(principal))
		}
		if err == nil {
			span.SetAttributes(AttrKeyGrant.String(g.ID.String()))
		}
		o := checkOutcome(err)
		span.SetAttributes(AttrKeyOutcome.String(checkOutcomes[o]))
		if o == checkFault {
			recordFault(span, err)
		}
		span.End()
	}
}

// check is Check without telemetry. It writes the grant into *g (zeroed on
// error) to spare the hot path a copy of the struct.
func (m *Manager) check(ctx context.Context, tenantID, principal string, scope Scope, g *Grant) error {
	now := m.now()
	// A broken clock fails closed (see checkClock); the seconds first,
	// as they cost the hot path less than two time comparisons.
	if s := now.Unix(); s < minRecordUnix || s >= maxTimeUnix {
		if err := brokenClock(now); err != nil {
			// A fault, not the caller's malformed input: every Check
			// fails, which monitoring must see as an outage (review 169).
			return fmt.Errorf("check: %w: access is denied until it is fixed", err)
		}
	}
	if err := validateCheck(tenantID, principal, scope); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	var err error
	if *g, err = m.store.FindActiveGrant(ctx, tenantID, principal, scope, now); err != nil {
		*g = Grant{}
		return fmt.Errorf("check: %w", err)
	}
	// Defence in depth: never trust a store to have applied the rules.
	if g.TenantID != tenantID || g.status(now) != StatusActive || !g.covers(principal) || !hasScope(g.Scopes, scope) {
		*g = Grant{}
		return fmt.Errorf("check: %w: store returned a grant that does not cover the request", ErrNoActiveGrant)
	}
	return nil
}

// Get returns the grant with the given ID, ErrNotFound when there is none,
// or ErrInvalidInput for the nil ID.
func (m *Manager) Get(ctx context.Context, id uuid.UUID) (g Grant, err error) {
	ctx, span := m.startSpan(ctx, "Get", AttrKeyGrant.String(id.String()))
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, nil)
	if id == uuid.Nil {
		return Grant{}, fmt.Errorf("get: %w: grant id is empty", ErrInvalidInput)
	}
	g, err = m.getGrant(ctx, id)
	if err != nil {
		return Grant{}, fmt.Errorf("get: %w", err)
	}
	return g, nil
}

// ListFilter selects grants for List. Zero fields do not filter.
type ListFilter struct {
	// TenantID restricts to one tenant.
	TenantID string
	// Statuses keeps grants whose status at the time of the call is one of
	// these.
	Statuses []Status
	// TicketRef keeps grants with exactly this ticket reference.
	TicketRef string
	// Limit caps the number of grants returned; 0 means no limit.
	Limit int
}

// List returns grants matching f, newest first (CreatedAt descending, then
// ID). A grant the store returns that f does not select (another tenant,
// ticket or status) is left out and reported to the error handler (see
// WithErrorHandler). Errors: ErrInvalidInput for a malformed filter, or the
// store's error.
func (m *Manager) List(ctx context.Context, f ListFilter) (_ []Grant, err error) {
	ctx, span := m.startSpan(ctx, "List")
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, nil)
	if err := validateListFilter(f); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	now := m.now()
	gs, lerr := m.store.ListGrants(ctx, f, now) // not err: see errNotReturned
	if lerr != nil {
		return nil, fmt.Errorf("list: %w", lerr)
	}
	return keepSelected(ctx, m, "list", "grant", gs, f.Limit, func(g *Grant) (bool, uuid.UUID) {
		return f.selects(g) && (len(f.Statuses) == 0 || slices.Contains(f.Statuses, g.Status(now))), g.ID
	}), nil
}

// keepSelected is what a store listed that its filter selects, at most
// limit (when > 0) of it: never trust a store to have applied the filter
// (another tenant's grant or request listed for this one would be shown
// to, and acted on by, this tenant's administrator). Each left out is
// reported to the error handler, and so is each listed again (a
// duplicate would push others off a limited page: review 165).
func keepSelected[T any](ctx context.Context, m *Manager, op, what string, xs []T, limit int, selects func(*T) (bool, uuid.UUID)) []T {
	kept := xs[:0]
	var seen map[uuid.UUID]bool
	if len(xs) > 1 {
		seen = make(map[uuid.UUID]bool, len(xs))
	}
	for i := range xs {
		ok, id := selects(&xs[i])
		if !ok {
			m.reportError(ctx, fmt.Errorf("%s: %w: store listed %s %s, which the filter does not select; left out", op, ErrInvalidInput, what, id))
			continue
		}
		if seen != nil {
			if seen[id] {
				m.reportError(ctx, fmt.Errorf("%s: %w: store listed %s %s more than once; kept once", op, ErrInvalidInput, what, id))
				continue
			}
			seen[id] = true
		}
		kept = append(kept, xs[i])
	}
	if limit > 0 && len(kept) > limit {
		kept = kept[:limit]
	}
	return kept
}

// selects reports whether g is of f's tenant and ticket (when f names
// them).
func (f *ListFilter) selects(g *Grant) bool {
	return (f.TenantID == "" || g.TenantID == f.TenantID) && (f.TicketRef == "" || g.TicketRef == f.TicketRef)
}
