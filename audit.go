package supportaccess

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// EventType names what an audit event records.
type EventType string

// Event types.
const (
	EventGrantCreated   EventType = "grant.created"
	EventGrantExtended  EventType = "grant.extended"
	EventGrantRevoked   EventType = "grant.revoked"
	EventGrantExpired   EventType = "grant.expired"
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
	EventSupportChange   EventType = "support.change"
	EventRequestCreated  EventType = "request.created"
	EventRequestApproved EventType = "request.approved"
	EventRequestDenied   EventType = "request.denied"
	EventRequestExpired  EventType = "request.expired"
	// EventNotifyFailed records a Notifier failure after a committed change.
	EventNotifyFailed EventType = "notify.failed"
)

// Attribute keys used in Event.Attrs.
const (
	AttrAction        = "action"
	AttrMethod        = "method"
	AttrPath          = "path"
	AttrStatus        = "status"
	AttrDurationMS    = "duration_ms"
	AttrSessionID     = "session_id"
	AttrSubjectUserID = "subject_user_id"
	AttrPrincipal     = "principal"
	AttrScope         = "scope"
	AttrWhat          = "what"
	AttrError         = "error"
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
// refuses the change the event describes.
type Auditor interface {
	Record(ctx context.Context, e Event) error
}

// AuditLog reads recorded events.
type AuditLog interface {
	// Events returns the events matching f in order of Time, then TenantID,
	// then Seq, at most f.Limit of them (all when 0).
	Events(ctx context.Context, f AuditFilter) ([]Event, error)
}

// AuditFilter selects events. Zero fields do not filter; Since is
// inclusive, Until exclusive.
type AuditFilter struct {
	TenantID  string
	ActorKind ActorKind
	ActorID   string
	Types     []EventType
	GrantID   uuid.UUID
	Since     time.Time
	Until     time.Time
	Limit     int
}

// Match reports whether e passes f (ignoring Limit). Stores use it so that
// every backend filters alike.
func (f AuditFilter) Match(e *Event) bool {
	return (f.TenantID == "" || e.TenantID == f.TenantID) &&
		(f.ActorKind == "" || e.Actor.Kind == f.ActorKind) &&
		(f.ActorID == "" || e.Actor.ID == f.ActorID) &&
		(len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
		(f.GrantID == uuid.Nil || e.GrantID == f.GrantID) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}

// Validate reports a malformed filter with an ErrInvalidInput error.
func (f AuditFilter) Validate() error {
	if f.TenantID != "" {
		if err := validateTenant("TenantID", f.TenantID); err != nil {
			return err
		}
	}
	if f.ActorKind != "" && !f.ActorKind.Valid() {
		return fmt.Errorf("%w: ActorKind %q is unknown", ErrInvalidInput, string(f.ActorKind))
	}
	if err := checkText("ActorID", f.ActorID, MaxPrincipalLen, false, false); err != nil {
		return err
	}
	for _, t := range f.Types {
		if err := checkText("Types", string(t), 64, true, false); err != nil {
			return err
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return fmt.Errorf("%w: Until is before Since", ErrInvalidInput)
	}
	if f.Limit < 0 || f.Limit > MaxListLimit {
		return fmt.Errorf("%w: Limit must be between 0 and %d", ErrInvalidInput, MaxListLimit)
	}
	return nil
}

// Events returns audit events matching f from the Manager's AuditLog.
// Errors: ErrInvalidInput for a malformed filter or when no AuditLog is
// configured; otherwise the log's error.
func (m *Manager) Events(ctx context.Context, f AuditFilter) ([]Event, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if m.auditLog == nil {
		return nil, fmt.Errorf("events: %w: no AuditLog configured", ErrInvalidInput)
	}
	f.Since, f.Until = truncate(f.Since), truncate(f.Until)
	evs, err := m.auditLog.Events(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return evs, nil
}

// ChainHash returns SHA-256 over prev and the canonical encoding of e (every
// field but Hash, Seq included). Stores set e.Hash = e.ChainHash(prevHash)
// where prevHash is the Hash of the tenant's previous event (nil for the
// first), so that any change, removal, insertion or reordering of a stored
// event breaks the chain.
func (e Event) ChainHash(prev []byte) []byte {
	h := sha256.New()
	var buf [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(b)))
		h.Write(buf[:])
		h.Write(b)
	}
	str := func(s string) { field([]byte(s)) }
	num := func(n int64) {
		binary.BigEndian.PutUint64(buf[:], uint64(n))
		h.Write(buf[:])
	}
	str("supportaccess.event.v1")
	field(prev)
	num(e.Seq)
	field(e.ID[:])
	if e.Time.IsZero() {
		num(0)
	} else {
		num(e.Time.UnixMicro())
	}
	str(string(e.Type))
	str(e.TenantID)
	field(e.GrantID[:])
	str(string(e.Actor.Kind))
	str(e.Actor.ID)
	str(e.Actor.Name)
	str(e.Reason)
	keys := make([]string, 0, len(e.Attrs))
	for k := range e.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	num(int64(len(keys)))
	for _, k := range keys {
		str(k)
		str(e.Attrs[k])
	}
	field(e.Before)
	field(e.After)
	return h.Sum(nil)
}

// newEvent builds an event with a fresh ID.
func (m *Manager) newEvent(now time.Time, t EventType, tenantID string, grantID uuid.UUID, by Actor, reason string) Event {
	return Event{ID: newID(), Time: now, Type: t, TenantID: tenantID, GrantID: grantID, Actor: by, Reason: reason}
}

// grantJSON encodes g for Event.Before/After.
func grantJSON(g Grant) json.RawMessage {
	b, err := json.Marshal(g)
	if err != nil { // cannot happen: Grant has only encodable fields
		return nil
	}
	return b
}

// MultiAuditor returns an Auditor that records every event on each of
// auditors in order and fails on the first failure (all must succeed). Nil
// auditors are skipped. Passed to WithAuditor together with the store, the
// store keeps recording in the change's transaction.
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
		if err := a.Record(ctx, e); err != nil {
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
