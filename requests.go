package supportaccess

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// AttrRequestID is the Event.Attrs key naming the access request an event
// belongs to (request.* events, grant.created of an approval, and the
// action.refused of a refused Approve or Deny).
const AttrRequestID = "request_id"

// RequestStatus is where an access request is in its life.
type RequestStatus string

// Request statuses.
const (
	RequestPending  RequestStatus = "pending"  // waiting for a decision
	RequestApproved RequestStatus = "approved" // approved; GrantID names the grant
	RequestDenied   RequestStatus = "denied"   // denied by a customer
	RequestExpired  RequestStatus = "expired"  // not decided before ExpiresAt
)

// Valid reports whether s is one of the four request statuses.
func (s RequestStatus) Valid() bool {
	return s == RequestPending || s == RequestApproved || s == RequestDenied || s == RequestExpired
}

// AccessRequest is support asking a tenant's customer for access. The
// customer approves it (creating a grant, possibly narrower than asked),
// denies it, or lets it expire.
type AccessRequest struct {
	ID       uuid.UUID `json:"id"`
	TenantID string    `json:"tenant_id"`
	// RequestedBy is the support actor asking; the grant an approval
	// creates names RequestedBy.ID as its only grantee (colleagues are
	// added later with AddGrantee).
	RequestedBy Actor `json:"requested_by"`
	// Duration asked for (the policy default when the request gave 0;
	// Unlimited for no end). The grant's window is this long from its
	// start.
	Duration time.Duration `json:"duration"`
	// Scopes asked for (the policy's default scopes when the request gave
	// none), sorted.
	Scopes    []Scope `json:"scopes"`
	Reason    string  `json:"reason,omitempty"`
	TicketRef string  `json:"ticket_ref,omitempty"`
	// StartsAt is the requested start; zero means "at approval". The grant
	// starts at approval or at StartsAt, whichever is later.
	StartsAt time.Time `json:"starts_at,omitzero"`
	// Status is the status as of the last read through the Manager: a
	// pending request past ExpiresAt reads as RequestExpired even before a
	// Sweep recorded request.expired. Stores keep the stored status; use
	// StatusAt.
	Status    RequestStatus `json:"status"`
	CreatedAt time.Time     `json:"created_at"`
	// ExpiresAt is when a pending request expires: CreatedAt plus the
	// policy's RequestTTL, or the end of year 9999 if that is earlier.
	ExpiresAt time.Time `json:"expires_at"`
	// DecidedAt, DecidedBy and DecisionReason are set by Approve and Deny.
	DecidedAt      time.Time `json:"decided_at,omitzero"`
	DecidedBy      Actor     `json:"decided_by,omitzero"`
	DecisionReason string    `json:"decision_reason,omitempty"`
	// GrantID is the grant an approval created.
	GrantID uuid.UUID `json:"grant_id,omitzero"`
}

// StatusAt reports the request's status at now: the stored Status, except
// that a pending request is RequestExpired from ExpiresAt on.
func (r AccessRequest) StatusAt(now time.Time) RequestStatus {
	if r.Status == RequestPending && !now.Before(r.ExpiresAt) {
		return RequestExpired
	}
	return r.Status
}

// Clone returns a deep copy of r.
func (r AccessRequest) Clone() AccessRequest {
	r.Scopes = slices.Clone(r.Scopes)
	return r
}

// RequestInput is what support sends to ask for access.
type RequestInput struct {
	// TenantID is the tenant support asks to enter. Required.
	TenantID string
	// By is the support actor asking; the grant will name By.ID.
	By Actor
	// Duration asked for; 0 means the policy default, Unlimited no end
	// (only if the policy allows it). The policy's presets and maximum
	// apply as for Grant.
	Duration time.Duration
	// Scopes asked for; empty means Policy.DefaultScopes. Ask for
	// ScopeWrite explicitly when changes are needed.
	Scopes []Scope
	// Reason and TicketRef explain the request; the policy may require
	// them.
	Reason, TicketRef string
	// StartsAt asks for a later start; zero means at approval. The same
	// limits as GrantInput.StartsAt apply.
	StartsAt time.Time
}

// ApproveInput is what the approving customer may change: the grant may
// only be narrower than the request.
type ApproveInput struct {
	// Duration of the grant; 0 means as requested. It may not exceed the
	// requested duration (any finite duration is shorter than Unlimited).
	Duration time.Duration
	// Scopes granted; empty means as requested. Each must be allowed by
	// the requested scopes (ScopeRead is allowed by a requested ScopeWrite).
	Scopes []Scope
	// Reason is an optional comment kept as DecisionReason.
	Reason string
}

// RequestFilter selects access requests for ListRequests. Zero fields do
// not filter.
type RequestFilter struct {
	// TenantID restricts to one tenant.
	TenantID string
	// Statuses keeps requests whose status at the time of the call (see
	// AccessRequest.StatusAt) is one of these.
	Statuses []RequestStatus
	// RequestedBy keeps requests whose RequestedBy.ID is exactly this.
	RequestedBy string
	// TicketRef keeps requests with exactly this ticket reference.
	TicketRef string
	// Limit caps the number of requests returned; 0 means no limit.
	Limit int
}

// Match reports whether r passes f at now (ignoring Limit). Stores use it so
// that every backend filters alike.
func (f RequestFilter) Match(r *AccessRequest, now time.Time) bool {
	return (f.TenantID == "" || r.TenantID == f.TenantID) &&
		(f.RequestedBy == "" || r.RequestedBy.ID == f.RequestedBy) &&
		(f.TicketRef == "" || r.TicketRef == f.TicketRef) &&
		(len(f.Statuses) == 0 || slices.Contains(f.Statuses, r.StatusAt(now)))
}

// Validate reports a malformed filter with an ErrInvalidInput error naming
// the field.
func (f RequestFilter) Validate() error {
	if f.TenantID != "" {
		if err := validateTenantRef("TenantID", f.TenantID); err != nil {
			return err
		}
	}
	for _, s := range f.Statuses {
		if !s.Valid() {
			return fmt.Errorf("%w: Statuses: unknown status %q", ErrInvalidInput, string(s))
		}
	}
	if err := checkText("RequestedBy", f.RequestedBy, MaxPrincipalLen, false, oneLine); err != nil {
		return err
	}
	if err := validateTicketRef("TicketRef", f.TicketRef); err != nil {
		return err
	}
	if f.Limit < 0 || f.Limit > MaxListLimit {
		return fmt.Errorf("%w: Limit must be between 0 and %d", ErrInvalidInput, MaxListLimit)
	}
	return nil
}

// requestStore returns the store's RequestStore or an ErrUnsupported error.
func (m *Manager) requestStore() (RequestStore, error) {
	rs, ok := m.store.(RequestStore)
	if !ok {
		return nil, fmt.Errorf("%w: the store does not implement supportaccess.RequestStore", errors.ErrUnsupported)
	}
	return rs, nil
}

// RequestAccess records support's request for access to in.TenantID,
// audited as request.created, and tells the Notifier. The request waits
// for Approve or Deny until CreatedAt plus Policy.RequestTTL (default 72 h).
//
// Errors: ErrInvalidInput (naming the field) for malformed input or a
// duration, start or scope outside the policy; ErrForbidden when By is not
// a support actor or the Authorizer refuses ActionRequest (audited), or an
// unlimited duration the policy does not allow; errors.ErrUnsupported when
// the store is not a RequestStore; the store's or auditor's error, in which
// case nothing is stored.
func (m *Manager) RequestAccess(ctx context.Context, in RequestInput) (r AccessRequest, err error) {
	ctx, span := m.startSpan(ctx, "RequestAccess", m.actorAttrs(in.By)...)
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		if err == nil {
			setTenant(span, r.TenantID)
			span.SetAttributes(AttrKeyRequest.String(r.ID.String()))
		}
	})
	now := m.now()
	rs, serr := m.requestStore() // not err: see errNotReturned
	if serr != nil {
		return AccessRequest{}, fmt.Errorf("request access: %w", serr)
	}
	// The request must be grantable as asked: check it as the grant it
	// would become.
	gin := GrantInput{TenantID: in.TenantID, By: in.By, Duration: in.Duration, StartsAt: in.StartsAt,
		Grantees: []string{in.By.ID}, Scopes: in.Scopes, Reason: in.Reason, TicketRef: in.TicketRef}
	if err := validateGrantInput(&gin); err != nil {
		return AccessRequest{}, fmt.Errorf("request access: %w", err)
	}
	if err := m.authorize(ctx, ActionRequest, in.By, in.TenantID, target{}); err != nil {
		return AccessRequest{}, fmt.Errorf("request access: %w", err)
	}
	if in.By.Kind != ActorSupport {
		err := m.refuse(ctx, ActionRequest, in.By, in.TenantID, target{}, "only support actors request access")
		return AccessRequest{}, fmt.Errorf("request access: %w", err)
	}
	g, gerr := m.newGrant(gin, now) // not err: see errNotReturned
	if gerr != nil {
		m.auditPolicyRefusal(ctx, ActionRequest, in.By, in.TenantID, target{}, gerr)
		return AccessRequest{}, fmt.Errorf("request access: %w", gerr)
	}
	d, derr := m.policy.duration(in.Duration)
	if derr != nil { // checked by newGrant already
		return AccessRequest{}, fmt.Errorf("request access: %w", derr)
	}
	r = AccessRequest{
		ID:          newID(),
		TenantID:    in.TenantID,
		RequestedBy: in.By,
		Duration:    d,
		Scopes:      g.Scopes,
		Reason:      in.Reason,
		TicketRef:   in.TicketRef,
		Status:      RequestPending,
		CreatedAt:   now,
		ExpiresAt:   capTime(truncate(now.Add(m.policy.requestTTL()))), // a request near the end of year 9999 must still be answered by then
	}
	if !in.StartsAt.IsZero() {
		r.StartsAt = g.StartsAt
	}
	ev := m.requestEvent(ctx, now, EventRequestCreated, r, uuid.Nil, in.By, in.Reason)
	ev.After = requestJSON(r)
	if err := m.recordExtra(ctx, ev); err != nil {
		return AccessRequest{}, fmt.Errorf("request access: %w", err)
	}
	if err := rs.CreateRequest(ctx, r, m.storeEvents(ev)); err != nil {
		return AccessRequest{}, fmt.Errorf("request access: %w", err)
	}
	m.notifyRequest(ctx, EventRequestCreated, r, in.By, in.Reason)
	return r.Clone(), nil
}

// Approve approves a pending access request and creates its grant, in one
// store transaction with the request.approved and grant.created events. The
// grant names the requester, links the request (Grant.RequestID), carries
// its reason and ticket reference, and starts now or at the requested
// start if that is later, so a slow approval does not shorten the window.
// in may only narrow the request: a shorter duration, fewer scopes. With
// in.Scopes empty the grant has every scope the request lists,
// host-defined ones (such as messages:read) included: the request is what
// the approver is shown and approves. The Notifier is told
// (request.approved, with the grant's window).
//
// Errors: ErrInvalidInput for malformed input, a wider duration or scope
// than requested, a duration the policy does not allow (as for Grant: over
// its maximum or not one of its presets — also the requested duration,
// when the policy changed since the request: approve with a shorter
// in.Duration), a reason or ticket reference the policy requires and the
// request lacks (RequireReason or RequireTicketRef turned on since it was
// made: deny it, and support asks again with one), a requested start
// further ahead than Policy.MaxScheduleAhead now allows (deny it), a
// stored request holding a value Grant's input rules refuse (one stored
// before those rules, such as a ticket reference with a trailing space:
// deny it), or a request that is not pending (approved, denied, or past its ExpiresAt; of
// concurrent decisions exactly one succeeds, and the others fail with
// ErrInvalidInput, or with ErrConflict when the database aborted one as a
// deadlock);
// ErrNotFound; ErrForbidden when by is not a customer or the Authorizer
// refuses ActionApprove or the policy no longer allows an unlimited grant
// (each audited); errors.ErrUnsupported when the store is not a
// RequestStore; the store's or auditor's error, in which case nothing
// changed.
func (m *Manager) Approve(ctx context.Context, id uuid.UUID, by Actor, in ApproveInput) (g Grant, err error) {
	ctx, span := m.startSpan(ctx, "Approve", append(m.actorAttrs(by), AttrKeyRequest.String(id.String()))...)
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		if err == nil {
			setTenant(span, g.TenantID)
			span.SetAttributes(AttrKeyGrant.String(g.ID.String()))
		}
	})
	if err := validateScopes("Scopes", in.Scopes); err != nil {
		return Grant{}, fmt.Errorf("approve: %w", err)
	}
	if in.Duration < 0 {
		return Grant{}, fmt.Errorf("approve: %w: Duration must not be negative", ErrInvalidInput)
	}
	rs, cur, derr := m.decisionTarget(ctx, id, by, ActionApprove, in.Reason) // not err: see errNotReturned
	if derr != nil {
		return Grant{}, fmt.Errorf("approve: %w", derr)
	}
	var tenant string // of a request whose grant the policy refused
	// not err: see errNotReturned (host code runs after it)
	var made Grant // the grant the last call of the approval made
	_, g, aerr := rs.ApproveRequest(ctx, id, func(r *AccessRequest) (Grant, []Event, error) {
		made = Grant{}
		if err := sameRequest(r, id, cur.TenantID); err != nil {
			return Grant{}, nil, err
		}
		// The clock is read with the request locked: a request that
		// expired while the Authorizer ran or the lock was awaited is
		// not pending (as in Manager.update).
		now := m.now()
		if st := r.StatusAt(now); st != RequestPending {
			return Grant{}, nil, fmt.Errorf("%w: request is %s", ErrInvalidInput, st)
		}
		gin, err := narrow(r, by, in, now)
		if err != nil {
			return Grant{}, nil, err
		}
		g, err := m.newGrant(gin, now)
		if err != nil {
			tenant = r.TenantID
			return Grant{}, nil, err
		}
		g.RequestID = r.ID
		before := requestJSON(*r)
		r.Status, r.DecidedAt, r.DecidedBy, r.DecisionReason, r.GrantID = RequestApproved, now, by, in.Reason, g.ID
		approved := m.requestEvent(ctx, now, EventRequestApproved, *r, g.ID, by, in.Reason)
		approved.Before, approved.After = before, requestJSON(*r)
		created := m.newEvent(now, EventGrantCreated, g.TenantID, g.ID, by, g.Reason)
		created.Attrs = map[string]string{AttrRequestID: r.ID.String()}
		created.After = grantJSON(g)
		tagSession(ctx, &created)
		for _, ev := range []Event{approved, created} {
			if err := m.recordExtra(ctx, ev); err != nil {
				return Grant{}, nil, err
			}
		}
		made = g.Clone()
		return g, m.storeEvents(approved, created), nil
	})
	if aerr != nil {
		m.auditPolicyRefusal(ctx, ActionApprove, by, tenant, onRequest(id), aerr)
		return Grant{}, fmt.Errorf("approve: %w", aerr)
	}
	if g, aerr = m.committed(ctx, "grant", made.ID, g, made); aerr != nil {
		return Grant{}, fmt.Errorf("approve: %w", aerr)
	}
	m.tel.created.Add(ctx, 1) // at the commit (see Grant)
	m.notify(ctx, EventRequestApproved, g, by, in.Reason)
	return g.Clone(), nil
}

// narrow turns the request and the approver's choice into the grant input,
// refusing anything wider than requested.
func narrow(r *AccessRequest, by Actor, in ApproveInput, now time.Time) (GrantInput, error) {
	d := r.Duration
	if in.Duration != 0 {
		if r.Duration != Unlimited && in.Duration > r.Duration {
			return GrantInput{}, fmt.Errorf("%w: Duration %s is longer than the requested %s", ErrInvalidInput, durationText(in.Duration), durationText(r.Duration))
		}
		d = in.Duration
	}
	scopes := r.Scopes
	if len(in.Scopes) > 0 {
		for _, s := range in.Scopes {
			if !hasScope(r.Scopes, s) {
				return GrantInput{}, fmt.Errorf("%w: Scopes: %q was not requested", ErrInvalidInput, string(s))
			}
		}
		scopes = in.Scopes
	}
	gin := GrantInput{TenantID: r.TenantID, By: by, Duration: d, Grantees: []string{r.RequestedBy.ID},
		Scopes: scopes, Reason: r.Reason, TicketRef: r.TicketRef}
	if r.StartsAt.After(now) {
		gin.StartsAt = r.StartsAt
	}
	// A request stored before the current input rules (or written to the
	// store directly) may hold what Grant refuses, such as a ticket
	// reference with a trailing space that RevokeTicket would not match:
	// such a request cannot become a grant (Deny it; support asks again).
	if err := validateGrantInput(&gin); err != nil {
		return GrantInput{}, fmt.Errorf("the stored request: %w", err)
	}
	return gin, nil
}

// Deny refuses a pending access request, audited as request.denied with
// reason, and tells the Notifier. It returns the denied request.
//
// Errors: ErrInvalidInput for malformed input or a request that is not
// pending; ErrNotFound; ErrForbidden when by is not a customer or the
// Authorizer refuses ActionDeny (audited); errors.ErrUnsupported when the
// store is not a RequestStore; the store's or auditor's error.
func (m *Manager) Deny(ctx context.Context, id uuid.UUID, by Actor, reason string) (r AccessRequest, err error) {
	ctx, span := m.startSpan(ctx, "Deny", append(m.actorAttrs(by), AttrKeyRequest.String(id.String()))...)
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		if err == nil {
			setTenant(span, r.TenantID)
		}
	})
	rs, cur, derr := m.decisionTarget(ctx, id, by, ActionDeny, reason) // not err: see errNotReturned
	if derr != nil {
		return AccessRequest{}, fmt.Errorf("deny: %w", derr)
	}
	var now time.Time
	// not err: see errNotReturned (host code runs after it)
	var left AccessRequest // the request as the last call of the change left it
	r, uerr := rs.UpdateRequest(ctx, id, func(r *AccessRequest) ([]Event, error) {
		left = AccessRequest{}
		if err := sameRequest(r, id, cur.TenantID); err != nil {
			return nil, err
		}
		var err error
		if now, err = m.changeNow(); err != nil { // with the request locked, as in Approve
			return nil, err
		}
		if st := r.StatusAt(now); st != RequestPending {
			return nil, fmt.Errorf("%w: request is %s", ErrInvalidInput, st)
		}
		before := requestJSON(*r)
		r.Status, r.DecidedAt, r.DecidedBy, r.DecisionReason = RequestDenied, now, by, reason
		ev := m.requestEvent(ctx, now, EventRequestDenied, *r, uuid.Nil, by, reason)
		ev.Before, ev.After = before, requestJSON(*r)
		if err := m.recordExtra(ctx, ev); err != nil {
			return nil, err
		}
		left = r.Clone()
		return m.storeEvents(ev), nil
	})
	if uerr != nil {
		return AccessRequest{}, fmt.Errorf("deny: %w", uerr)
	}
	if r, uerr = committedAs(m, ctx, "request", id, r, left, func(r *AccessRequest) (uuid.UUID, string) { return r.ID, r.TenantID }); uerr != nil {
		return AccessRequest{}, fmt.Errorf("deny: %w", uerr)
	}
	m.notifyRequest(ctx, EventRequestDenied, r, by, reason)
	r.Status = r.StatusAt(now)
	return r, nil
}

// decisionTarget validates the common arguments of Approve and Deny, loads
// the request and authorises the decision: only customers decide, whatever
// the Authorizer says.
func (m *Manager) decisionTarget(ctx context.Context, id uuid.UUID, by Actor, action Action, reason string) (RequestStore, *AccessRequest, error) {
	rs, err := m.requestStore()
	if err != nil {
		return nil, nil, err
	}
	if err := validateActor("by", by); err != nil {
		return nil, nil, err
	}
	if err := validateReason("reason", reason); err != nil {
		return nil, nil, err
	}
	if id == uuid.Nil {
		return nil, nil, fmt.Errorf("%w: request id is empty", ErrInvalidInput)
	}
	cur, err := getRequest(ctx, rs, id)
	if err != nil {
		return nil, nil, err
	}
	if err := m.authorize(ctx, action, by, cur.TenantID, onRequest(id)); err != nil {
		return nil, nil, err
	}
	if by.Kind != ActorCustomer {
		return nil, nil, m.refuse(ctx, action, by, cur.TenantID, onRequest(id), "only customers decide access requests")
	}
	return rs, &cur, nil
}

// getRequest is rs's GetRequest, refusing with ErrInvalidInput a request
// of another ID than asked for (review 165).
func getRequest(ctx context.Context, rs RequestStore, id uuid.UUID) (AccessRequest, error) {
	r, err := rs.GetRequest(ctx, id)
	if err != nil {
		return AccessRequest{}, err
	}
	if r.ID != id {
		return AccessRequest{}, fmt.Errorf("%w: the store handed over request %s for request %s", ErrInvalidInput, r.ID, id)
	}
	return r, nil
}

// sameRequest refuses, with ErrInvalidInput, a request a store handed over
// that is not the one asked for and authorised (another ID or tenant): the
// Authorizer judged that one, so no decision is made on another (as
// sameGrant does for grants).
func sameRequest(r *AccessRequest, id uuid.UUID, tenantID string) error {
	if r.ID != id || r.TenantID != tenantID {
		return fmt.Errorf("%w: the store handed over request %s of tenant %q to decide request %s of tenant %q", ErrInvalidInput, r.ID, r.TenantID, id, tenantID)
	}
	return nil
}

// GetRequest returns the access request with the given ID, its Status
// evaluated now.
//
// Errors: ErrInvalidInput for the nil ID; ErrNotFound; errors.ErrUnsupported
// when the store is not a RequestStore; the store's error.
func (m *Manager) GetRequest(ctx context.Context, id uuid.UUID) (r AccessRequest, err error) {
	ctx, span := m.startSpan(ctx, "GetRequest", AttrKeyRequest.String(id.String()))
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, nil)
	rs, serr := m.requestStore()
	if serr != nil {
		return AccessRequest{}, fmt.Errorf("get request: %w", serr)
	}
	if id == uuid.Nil {
		return AccessRequest{}, fmt.Errorf("get request: %w: request id is empty", ErrInvalidInput)
	}
	r, err = getRequest(ctx, rs, id)
	if err != nil {
		return AccessRequest{}, fmt.Errorf("get request: %w", err)
	}
	r.Status = r.StatusAt(m.now())
	return r, nil
}

// ListRequests returns the access requests matching f, newest first, each
// Status evaluated now (a pending request past ExpiresAt is expired). A
// request the store returns that f does not select (another tenant,
// requester, ticket or status) is left out and reported to the error
// handler (see WithErrorHandler).
//
// Errors: ErrInvalidInput for a malformed filter; errors.ErrUnsupported
// when the store is not a RequestStore; the store's error.
func (m *Manager) ListRequests(ctx context.Context, f RequestFilter) (_ []AccessRequest, err error) {
	ctx, span := m.startSpan(ctx, "ListRequests")
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, nil)
	rs, serr := m.requestStore() // not err: see errNotReturned
	if serr != nil {
		return nil, fmt.Errorf("list requests: %w", serr)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	now := m.now()
	rr, lerr := rs.ListRequests(ctx, f, now) // not err: see errNotReturned
	if lerr != nil {
		return nil, fmt.Errorf("list requests: %w", lerr)
	}
	for i := range rr {
		rr[i].Status = rr[i].StatusAt(now)
	}
	return keepSelected(ctx, m, "list requests", "request", rr, f.Limit, func(r *AccessRequest) (bool, uuid.UUID) {
		return f.Match(r, now), r.ID
	}), nil
}

// sweepRequests records request.expired once for each pending request past
// its ExpiresAt.
func (m *Manager) sweepRequests(ctx context.Context, rs RequestStore) error {
	now := m.now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// See recordLifecycle: a request past ExpiresAt is refused whether
		// or not its expiry is recorded yet.
		var x extraOutcome
		rr, err := rs.ClaimExpiredRequests(ctx, now, m.lifecycleBatch(), func(r AccessRequest) ([]Event, error) {
			ev := m.requestEvent(ctx, now, EventRequestExpired, r, uuid.Nil, SystemActor, "")
			ev.Attrs[AttrExpiresAt] = r.ExpiresAt.Format(timeFormat)
			return m.recordLifecycle(ctx, ev, &x)
		})
		// Reported before a kept panic goes on to the caller.
		if err == nil && x.err != nil {
			x.keep(func() { m.reportError(ctx, fmt.Errorf("sweep requests: %w", x.err)) })
		}
		if err != nil && x.p != nil {
			x.keep(func() { m.reportError(ctx, fmt.Errorf("sweep requests: %w", err)) })
		}
		x.raise()
		if err != nil {
			return err
		}
		if len(rr) == 0 { // not a short batch: see sweep in expiry.go
			return nil
		}
	}
}

// requestEvent builds a request.* event of a call made with ctx.
func (m *Manager) requestEvent(ctx context.Context, now time.Time, t EventType, r AccessRequest, grantID uuid.UUID, by Actor, reason string) Event {
	ev := m.newEvent(now, t, r.TenantID, grantID, by, reason)
	ev.Attrs = map[string]string{AttrRequestID: r.ID.String()}
	tagSession(ctx, &ev)
	return ev
}

// requestJSON encodes r for Event.Before/After.
func requestJSON(r AccessRequest) json.RawMessage {
	b, err := json.Marshal(r)
	if err != nil { // cannot happen: only encodable fields, and times in years 1000 to 9999 (the stores keep no other)
		return nil
	}
	return b
}
