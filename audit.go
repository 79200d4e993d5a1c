package supportaccess

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// EventType names what an audit event records.
type EventType string

// Event types.
const (
	EventGrantCreated  EventType = "grant.created"
	EventGrantExtended EventType = "grant.extended"
	EventGrantRevoked  EventType = "grant.revoked"
	// EventGrantExpired records, once per grant, that its ExpiresAt came
	// (Sweep, actor: the system, possibly long after); AttrExpiresAt holds
	// that end.
	EventGrantExpired EventType = "grant.expired"
	// EventGrantStarted records, once per grant, that its StartsAt came:
	// Sweep records it (actor: the system) for every grant not revoked
	// by then, also one created active, at the first Sweep after StartsAt.
	EventGrantStarted   EventType = "grant.started"
	EventGrantDelegated EventType = "grant.delegated"
	// EventActionRefused records a Grant/Extend/Revoke/... that the
	// Authorizer or a built-in rule refused; Attrs["action"] names it.
	EventActionRefused EventType = "action.refused"
	// EventAccessDenied records a request of an impersonated session that
	// the middleware refused; Reason says why.
	EventAccessDenied EventType = "access.denied"
	// EventSupportRequest records one HTTP request made by support while
	// impersonating (method, path, status, duration in Attrs).
	EventSupportRequest EventType = "support.request"
	// EventSupportChange records a configuration change made by support,
	// with Before and After values.
	EventSupportChange EventType = "support.change"
	// EventSupportScope records a scope an impersonated request used on a
	// grant that no support.request event names: the scope in Attrs, the
	// grant that allowed it in GrantID, the request's method and path as
	// in support.request. Recorded when the request takes a scope (with
	// RequireScope, or a nested middleware) after its support.request
	// event was recorded — a panel of a page already streaming, say — at
	// that time; when the middleware's re-check moves a request whose
	// event was recorded onto another grant (the one it ran on was
	// revoked elsewhere, another still covers it), at that time; and when
	// a refusal becomes the response, so that no support.request event is
	// recorded, for each scope and grant the request used, dated like that
	// event (the request's start).
	EventSupportScope    EventType = "support.scope"
	EventRequestCreated  EventType = "request.created"
	EventRequestApproved EventType = "request.approved"
	EventRequestDenied   EventType = "request.denied"
	// EventRequestExpired records that a pending request reached its
	// ExpiresAt undecided (Sweep, actor: the system); AttrExpiresAt holds
	// that time.
	EventRequestExpired EventType = "request.expired"
	// EventNotifyFailed records a Notifier failure after a committed change.
	EventNotifyFailed EventType = "notify.failed"
	// EventAuditPurged records a retention purge (see Manager.PurgeAudit):
	// Attrs hold the cut-off time, how many events were deleted and the
	// checkpoint (sequence number and hash of the last deleted event).
	EventAuditPurged EventType = "audit.purged"
)

// Attribute keys used in Event.Attrs. Values are one-line text: control
// characters and invalid UTF-8 in what a request or host code supplied are
// replaced by U+FFFD.
const (
	// AttrAction names the refused action (action.refused) or the
	// notification whose delivery failed (notify.failed).
	AttrAction = "action"
	// AttrMethod is the request's method as received (support.request,
	// support.change, support.scope, access.denied), cut to 32 bytes.
	AttrMethod = "method"
	// AttrPath is the request's escaped path, never its query string,
	// cut in its middle to 1 024 bytes ("..." marks the cut): the path the
	// handler behind the middleware was asked for.
	AttrPath = "path"
	// AttrRequestTarget is the request target the client sent, without
	// its query string and cut as AttrPath is, when it differs from
	// AttrPath: the middleware mounted under http.StripPrefix (the
	// client's /admin/users/42, the handler's /users/42), a CONNECT's
	// host and port, an absolute-form target, or a request a handler
	// dispatched again with another path (the target of the request that
	// carried it).
	AttrRequestTarget = "request_target"
	// AttrStatus is the response status. On support.request, the status
	// the response's header went out with, recorded then, before the
	// body: 200 when the handler wrote a body, or nothing, without a
	// status; 101 for a hijacked connection; 500 for a handler that
	// panicked first; 403 when the session ended before the header went
	// out and the middleware sent a refusal instead. On access.denied,
	// the status the refusal calls for (Denial.Status), also when a
	// WithDeniedHandler function sends another one, such as a redirect.
	AttrStatus = "status"
	// AttrDurationMS is a support.request's time in whole milliseconds
	// (on the Manager's clock) from its arrival at the middleware, before
	// the grant check (the event's Time), to its response's header.
	AttrDurationMS = "duration_ms"
	// AttrSessionID and AttrSubjectUserID are the request session's
	// SessionID and SubjectUserID (the impersonated user), when set and
	// valid.
	AttrSessionID     = "session_id"
	AttrSubjectUserID = "subject_user_id"
	// AttrPrincipal is the support principal a grant.delegated event
	// added to the grant.
	AttrPrincipal = "principal"
	// AttrScope lists, comma-separated, the scopes a request used or was
	// refused.
	AttrScope = "scope"
	// AttrWhat names what a support.change changed (RecordChange's what).
	AttrWhat = "what"
	// AttrError is the error text of a failure: the store or auditor
	// error behind an access.denied with status 503, a Notifier's or an
	// expire hook's error.
	AttrError = "error"
	// AttrExpiresAt is the end a grant.expired or request.expired event
	// records (the grant's or request's ExpiresAt; the event's Time is
	// the Sweep that recorded it): RFC 3339 with microseconds, UTC.
	AttrExpiresAt = "expires_at"
	// AttrMethodOverride is the method a request's method-override header
	// (X-HTTP-Method-Override, X-HTTP-Method or X-Method-Override) named,
	// upper-cased, when it had one: the method a framework that honours
	// the header served, while AttrMethod is the method on the wire. When
	// the headers name several methods, it lists the first value of each
	// header (what Header.Get reads), once each, in that header order,
	// comma-separated: which header a host honours is the host's. When the
	// handler chain changed the method of the request the middleware passed
	// on (a framework honouring a _method form field does), that method
	// comes first; a change made to a copy of the request (behind a router
	// that calls r.WithContext) is not seen: put method-override handlers
	// outside the middleware, where the method they set is the one checked
	// and recorded as AttrMethod.
	AttrMethodOverride = "method_override"
)

// Event is one entry of the audit trail.
//
// Seq and Hash are assigned by the store that persists the event: Seq is the
// event's position in its tenant's chain (1, 2, …) and Hash is
// Event.ChainHash(previous event's Hash). Events handed to an Auditor have
// them zero.
type Event struct {
	ID       uuid.UUID         `json:"id"`
	Time     time.Time         `json:"time"`
	Type     EventType         `json:"type"`
	TenantID string            `json:"tenant_id"`
	GrantID  uuid.UUID         `json:"grant_id,omitzero"`
	Actor    Actor             `json:"actor"`
	Reason   string            `json:"reason,omitempty"`
	Attrs    map[string]string `json:"attrs,omitempty"`
	Before   json.RawMessage   `json:"before,omitempty"`
	After    json.RawMessage   `json:"after,omitempty"`
	Seq      int64             `json:"seq,omitempty"`
	Hash     []byte            `json:"hash,omitempty"`
}

// Auditor records audit events. Record must be safe for concurrent use and
// return an error when the event was not durably recorded; the Manager then
// refuses the change the event describes. Every event the Manager writes
// has a Time and a fresh ID; the bundled stores refuse an event without a
// Time (ErrInvalidInput) and one whose ID they hold already (ErrConflict),
// so a Record retried after an error whose write did commit adds no second
// copy. The Manager calls an auditor other than the store inside the
// store's write of the change (its transaction; on memstore, with its lock
// held), handing it its own copy of the event: Record must not call the
// Manager or the store (see WithAuditor).
type Auditor interface {
	Record(ctx context.Context, e Event) error
}

// AuditLog reads recorded events.
type AuditLog interface {
	// Events returns the events matching f (see AuditFilter.Match) in the
	// order f.Order names (see AuditFilter.Compare), at most f.Limit of them
	// (all when 0). With f.After set, only events after that position in
	// that order are returned (keyset pagination). No match is an empty
	// result, not an error. A filter with more than MaxFilterTypes Types
	// is refused with ErrInvalidInput (the bundled stores do).
	Events(ctx context.Context, f AuditFilter) ([]Event, error)
}

// AuditOrder is the order in which AuditLog.Events returns events.
type AuditOrder int

// Audit orders.
const (
	// AuditByTime orders events by Time, then TenantID (byte order), then
	// Seq. It is the default.
	AuditByTime AuditOrder = iota
	// AuditByChain orders events by TenantID (byte order), then Seq: each
	// tenant's hash chain in the order it was written. Paging a tenant in
	// this order is exact while events keep arriving (see AuditFilter.After).
	AuditByChain
)

// String returns "time" or "chain".
func (o AuditOrder) String() string {
	switch o {
	case AuditByTime:
		return "time"
	case AuditByChain:
		return "chain"
	}
	return fmt.Sprintf("AuditOrder(%d)", int(o))
}

// AuditFilter selects events. Zero fields do not filter; Since is
// inclusive, Until exclusive.
type AuditFilter struct {
	TenantID  string
	ActorKind ActorKind
	ActorID   string
	// Types selects events of any of these types: at most
	// MaxFilterTypes entries of at most 255 bytes each.
	Types   []EventType
	GrantID uuid.UUID
	// SessionID selects the events of one impersonation session: those
	// whose Attrs[AttrSessionID] equals it. The middleware sets it on every
	// event it records, and the Manager on the events of calls made while
	// serving a request of the session (ctx carrying it, see
	// SessionFromContext) whose actor is the session's support principal:
	// a delegation, a revocation, a refused attempt, … — in the session's
	// own tenant only (such a call's events in another tenant's trail
	// carry the principal as ActorID, not the session's id).
	SessionID string
	Since     time.Time
	Until     time.Time
	// Order is the result order. Default: AuditByTime.
	Order AuditOrder
	// After, when not nil, restricts the result to events that come after
	// this position in Order (usually the Cursor of the last event of the
	// previous page).
	//
	// Guarantee: a page never repeats an event of an earlier page. In
	// AuditByChain order with a TenantID nothing is ever skipped either: a
	// tenant's Seq is allocated when the event commits, so an event of that
	// tenant that arrives later always sorts after every cursor taken
	// earlier. Without a TenantID, chain order sorts by tenant first: an
	// event that arrives later for a tenant sorting before the cursor's is
	// not returned by later pages — to follow the whole trail as it grows,
	// page each tenant's chain on its own. In AuditByTime order an
	// event that commits after a page was read but carries an earlier Time
	// (a concurrent writer, or a replica whose clock is behind) sorts
	// before the cursor and is not returned by later pages; read with Until
	// some seconds in the past, or page each tenant in AuditByChain order,
	// when completeness matters.
	After *AuditCursor
	// Limit caps the events returned: 0 means all of them for
	// Manager.Events (and DefaultAuditPageSize for AuditPage); at most
	// MaxListLimit.
	Limit int
}

// AuditCursor is a position in the audit trail: the sort key of an event
// (see Event.Cursor). In AuditByChain order only TenantID and Seq count.
type AuditCursor struct {
	Time     time.Time
	TenantID string
	Seq      int64
}

// Cursor returns e's position, for AuditFilter.After.
func (e Event) Cursor() AuditCursor {
	return AuditCursor{Time: e.Time, TenantID: e.TenantID, Seq: e.Seq}
}

// Clone returns a deep copy of e: its Attrs, Before, After and Hash are
// its own (nil stays nil), so that changing one never changes the other.
// The Manager hands each auditor its own copy (see WithAuditor).
func (e Event) Clone() Event {
	e.Attrs = maps.Clone(e.Attrs)
	e.Before = bytes.Clone(e.Before)
	e.After = bytes.Clone(e.After)
	e.Hash = bytes.Clone(e.Hash)
	return e
}

// Match reports whether e passes f, including f.After (ignoring Limit).
// Stores use it so that every backend filters alike.
func (f AuditFilter) Match(e *Event) bool {
	return (f.TenantID == "" || e.TenantID == f.TenantID) &&
		(f.ActorKind == "" || e.Actor.Kind == f.ActorKind) &&
		(f.ActorID == "" || e.Actor.ID == f.ActorID) &&
		(len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
		(f.GrantID == uuid.Nil || e.GrantID == f.GrantID) &&
		(f.SessionID == "" || e.Attrs[AttrSessionID] == f.SessionID) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until)) &&
		(f.After == nil || f.compareCursor(e, f.After) > 0)
}

// Compare orders a and b as Events returns them under f.Order: it returns
// a negative number when a comes first, a positive one when b does, and 0
// when they have the same position (the same tenant and Seq).
func (f AuditFilter) Compare(a, b *Event) int {
	c := b.Cursor()
	return f.compareCursor(a, &c)
}

// compareCursor compares e's position with c under f.Order.
func (f AuditFilter) compareCursor(e *Event, c *AuditCursor) int {
	if f.Order != AuditByChain {
		if r := e.Time.Compare(c.Time); r != 0 {
			return r
		}
	}
	if r := strings.Compare(e.TenantID, c.TenantID); r != 0 {
		return r
	}
	return cmp.Compare(e.Seq, c.Seq)
}

// Validate reports a malformed filter with an ErrInvalidInput error naming
// the field.
func (f AuditFilter) Validate() error {
	if f.TenantID != "" {
		if err := validateTenantRef("TenantID", f.TenantID); err != nil {
			return err
		}
	}
	if f.ActorKind != "" && !f.ActorKind.Valid() {
		return fmt.Errorf("%w: ActorKind %q is unknown", ErrInvalidInput, string(f.ActorKind))
	}
	if err := checkText("ActorID", f.ActorID, MaxPrincipalLen, false, oneLine); err != nil {
		return err
	}
	if len(f.Types) > MaxFilterTypes {
		return fmt.Errorf("%w: Types has %d entries, more than %d", ErrInvalidInput, len(f.Types), MaxFilterTypes)
	}
	for _, t := range f.Types {
		// As wide as the bundled stores keep a Type: a host's auditor
		// may record its own types.
		if err := checkText("Types", string(t), 255, true, oneLine); err != nil {
			return err
		}
	}
	if err := checkText("SessionID", f.SessionID, MaxPrincipalLen, false, oneLine); err != nil {
		return err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return fmt.Errorf("%w: Until is before Since", ErrInvalidInput)
	}
	if f.Order != AuditByTime && f.Order != AuditByChain {
		return fmt.Errorf("%w: Order %d is unknown", ErrInvalidInput, int(f.Order))
	}
	if c := f.After; c != nil {
		if c.TenantID != "" {
			if err := validateTenantRef("After.TenantID", c.TenantID); err != nil {
				return err
			}
		}
		if c.Seq < 0 {
			return fmt.Errorf("%w: After.Seq is negative", ErrInvalidInput)
		}
	}
	if f.Limit < 0 || f.Limit > MaxListLimit {
		return fmt.Errorf("%w: Limit must be between 0 and %d", ErrInvalidInput, MaxListLimit)
	}
	return nil
}

// Events returns audit events matching f from the Manager's AuditLog.
// It does not trust the log to have applied f: an answer holding an event
// f does not select (another tenant's, say), events out of f's order or
// more than f.Limit of them is an error (not wrapping a sentinel) rather
// than a trail shown with another tenant's events in it or paged past
// events it skipped. Errors: ErrInvalidInput for a malformed filter or
// when no AuditLog is configured; otherwise the log's error.
func (m *Manager) Events(ctx context.Context, f AuditFilter) (_ []Event, err error) {
	ctx, span := m.startSpan(ctx, "Events")
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, nil)
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if m.auditLog == nil {
		return nil, fmt.Errorf("events: %w: no AuditLog configured (WithAuditLog; the store is not one when WithAuditor leaves it out)", ErrInvalidInput)
	}
	// The bounds go to the log as given: it answers as AuditFilter.Match
	// does, also between two microseconds.
	evs, err := m.auditLog.Events(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if err := f.checkAnswer(evs); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return evs, nil
}

// checkAnswer reports an AuditLog's answer to f that breaks the log's
// contract: more than f.Limit events, an event f does not select, two
// events out of f's order, or one event twice (review 165).
func (f AuditFilter) checkAnswer(evs []Event) error {
	if f.Limit > 0 && len(evs) > f.Limit {
		return fmt.Errorf("audit log returned %d events for a limit of %d", len(evs), f.Limit)
	}
	for i := range evs {
		if !f.Match(&evs[i]) {
			return fmt.Errorf("audit log returned event %s (tenant %q, seq %d), which the filter does not select", evs[i].ID, evs[i].TenantID, evs[i].Seq)
		}
		if i == 0 {
			continue
		}
		switch c := f.Compare(&evs[i-1], &evs[i]); {
		case c > 0:
			return fmt.Errorf("audit log returned event %s (tenant %q, seq %d) out of order", evs[i].ID, evs[i].TenantID, evs[i].Seq)
		case c == 0 && evs[i].ID == evs[i-1].ID:
			return fmt.Errorf("audit log returned event %s (tenant %q, seq %d) twice", evs[i].ID, evs[i].TenantID, evs[i].Seq)
		}
	}
	return nil
}

// ChainHash returns SHA-256 over prev and the canonical encoding of e (every
// field but Hash, Seq included). Stores set e.Hash = e.ChainHash(prevHash)
// where prevHash is the Hash of the tenant's previous event (nil for the
// first), so that any change, removal, insertion or reordering of a stored
// event breaks the chain.
//
// The canonical encoding (version "supportaccess.event.v1") is, in order:
// the version string, prev, Seq, ID, Time (Unix microseconds; the zero
// Time is math.MinInt64, distinct from the Unix epoch's 0 and reached by
// no time within ±290,000 years of it, so every storable time keeps its
// encoding),
// Type, TenantID, GrantID, Actor.Kind, Actor.ID, Actor.Name, Reason, the
// number of Attrs and each key and value in byte order of the keys, Before
// and After. Numbers are 8-byte big-endian; byte strings are an 8-byte
// big-endian length followed by the bytes. Anyone can recompute it from an
// export (see ExportAudit).
func (e Event) ChainHash(prev []byte) []byte {
	var stack [512]byte
	sum := sha256.Sum256(e.appendCanonical(stack[:0], prev))
	return sum[:]
}

// appendCanonical appends the canonical encoding of e chained to prev.
func (e *Event) appendCanonical(b, prev []byte) []byte {
	field := func(b, v []byte) []byte {
		b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
		return append(b, v...)
	}
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		return append(b, s...)
	}
	num := func(b []byte, n int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(n)) }
	b = str(b, "supportaccess.event.v1")
	b = field(b, prev)
	b = num(b, e.Seq)
	b = field(b, e.ID[:])
	if e.Time.IsZero() {
		b = num(b, math.MinInt64) // not 0: that is the Unix epoch
	} else {
		b = num(b, e.Time.UnixMicro())
	}
	b = str(b, string(e.Type))
	b = str(b, e.TenantID)
	b = field(b, e.GrantID[:])
	b = str(b, string(e.Actor.Kind))
	b = str(b, e.Actor.ID)
	b = str(b, e.Actor.Name)
	b = str(b, e.Reason)
	b = num(b, int64(len(e.Attrs)))
	if len(e.Attrs) > 0 {
		var stack [16]string
		keys := stack[:0]
		for k := range e.Attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = str(b, k)
			b = str(b, e.Attrs[k])
		}
	}
	b = field(b, e.Before)
	return field(b, e.After)
}

// newEvent builds an event with a fresh ID.
func (m *Manager) newEvent(now time.Time, t EventType, tenantID string, grantID uuid.UUID, by Actor, reason string) Event {
	return Event{ID: newID(), Time: now, Type: t, TenantID: tenantID, GrantID: grantID, Actor: by, Reason: reason}
}

// grantJSON encodes g for Event.Before/After.
func grantJSON(g Grant) json.RawMessage {
	b, err := json.Marshal(g)
	if err != nil { // cannot happen: only encodable fields, and times in years 1000 to 9999 (the stores keep no other)
		return nil
	}
	return b
}

// MultiAuditor returns an Auditor that records every event on each of
// auditors in order and fails on the first failure: all must succeed, and
// a change whose event one of them cannot record is not made. (Passed to
// WithAuditor, its members are the Manager's auditors: events that only
// record a fact, such as refusals, then go to each of them whatever the
// others return; see WithAuditor.) Nil auditors
// are skipped. Passed to WithAuditor together with the store, the store
// keeps recording in the change's transaction (the others record just
// before it commits). For a destination whose outage must not stop
// changes, wrap it in BestEffortAuditor: its failures are then reported,
// not returned.
func MultiAuditor(auditors ...Auditor) Auditor {
	var flat multiAuditor
	for _, a := range auditors {
		if a != nil {
			flat = append(flat, flattenAuditors(a)...)
		}
	}
	return flat
}

type multiAuditor []Auditor

func (ma multiAuditor) Record(ctx context.Context, e Event) error {
	for _, a := range ma {
		if err := a.Record(ctx, e.Clone()); err != nil { // each its own copy, as from the Manager
			return err
		}
	}
	return nil
}

func flattenAuditors(a Auditor) []Auditor {
	if ma, ok := a.(multiAuditor); ok {
		return slices.Clone(ma)
	}
	return []Auditor{a}
}

// sameAuditor reports whether a is the store s (comparing interface values
// of comparable dynamic types only).
func sameAuditor(a Auditor, s Store) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	sa, ok := s.(Auditor)
	return ok && sa == a
}
