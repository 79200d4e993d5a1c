package supportaccess

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/supportaccess/supportaccess/internal/canon"
)

// Attribute keys of an audit.purged event.
//
// AttrCheckpointSeq and AttrCheckpointHash (decimal, lower-case hex) are the
// checkpoint the purge saved. They are what makes a checkpoint trustworthy:
// VerifyAudit accepts the store's checkpoint only if the chain's latest
// audit.purged event of its own records the same one (every PurgeAudit
// that moves the checkpoint appends such an event after it, and one that
// deletes nothing appends none), so a checkpoint moved behind the store's
// back is reported as a BreakCheckpoint.
//
// AttrPurgeCopy ("true") marks the audit.purged event the other auditors
// receive (see WithAuditor): the checkpoint it records is that of the log
// that was purged, not theirs. VerifyAudit of a log that keeps such copies
// (a second store kept through MultiAuditor, with its own retention) never
// takes one for the record of its own checkpoint — where the copy's chain
// equals the purged log's up to that checkpoint, it would otherwise vouch
// for events deleted from the copy behind its back. A copy written before
// copies were marked is told apart by the chain itself where it can be:
// one that records a checkpoint past the chain's own (whose events the
// chain still holds), or one that does not move the checkpoint past the
// one an earlier purge of the chain's own recorded, cannot be the chain's
// own purge and is ignored.
const (
	AttrPurgeBefore        = "before"
	AttrPurgeDeleted       = "deleted"
	AttrCheckpointSeq      = "checkpoint_seq"
	AttrCheckpointHash     = "checkpoint_hash"
	AttrPreviousCheckpoint = "previous_checkpoint_seq"
	AttrPurgeCopy          = "copy"
	purgeAttrCount         = 6
)

// AuditPurge is the result of a retention purge.
type AuditPurge struct {
	// Deleted is how many events were deleted.
	Deleted int64
	// Checkpoint is the last deleted event's link; the remaining chain
	// continues from it. Zero when nothing was deleted.
	Checkpoint ChainLink
	// Previous is the checkpoint before the purge (zero: none).
	Previous ChainLink
}

// AuditPurger is implemented by audit logs that can delete old events
// while keeping their chain verifiable (the bundled stores do).
type AuditPurger interface {
	// PurgeAudit deletes, in one transaction, the oldest events of
	// tenantID's chain: every event up to (not including) the first one
	// whose Time is not before before, so that what remains is the end of
	// the chain. It saves the last deleted event's Seq and Hash as the
	// tenant's checkpoint (see AuditChainReader), then appends the event
	// event(result) returns to the chain, chained like any other: that
	// event, the chain's latest audit.purged one of its own (see
	// AttrPurgeCopy), is what VerifyAudit checks the checkpoint against. If event returns an error, nothing is
	// deleted or saved and PurgeAudit returns that error unchanged. When
	// no event is old enough it deletes nothing, does not call event and
	// returns a result with only Previous set.
	PurgeAudit(ctx context.Context, tenantID string, before time.Time, event func(AuditPurge) (Event, error)) (AuditPurge, error)
}

// PurgeAudit deletes tenantID's audit events older than before (retention)
// and records an audit.purged event (actor: the system) in the same
// transaction. The store keeps a checkpoint, the sequence number and hash
// of the last deleted event, so VerifyAudit still verifies the remaining
// chain from there. Deletion follows the chain: it stops at the first event
// that is not older than before, so an event recorded late with an early
// Time (a replica whose clock lagged) may outlive before by that much.
// Nothing is deleted or recorded when no event is old enough. The events
// deleted are not verified: a change to one of them goes with it (the
// checkpoint keeps its stored hash): run VerifyAudit before purging when
// the purged part must be known to have been intact.
//
// The audit.purged event records the checkpoint (AttrCheckpointSeq,
// AttrCheckpointHash) in the chain itself, so that VerifyAudit can tell a
// purge from events deleted, and the checkpoint moved, by someone with
// write access to the database: it accepts a checkpoint only when the
// chain's latest audit.purged event of its own records it. Someone who can also
// compute hashes can forge that event too (see VerifyAudit for that limit).
//
// The audit.purged event goes to the store's chain whatever WithAuditor
// says (the checkpoint needs it there) and to the other auditors, marked
// as a copy (AttrPurgeCopy): the checkpoint it records is not theirs. The
// other auditors record it inside the log's purge transaction, so that a
// refusal of one of them leaves everything in place; an auditor that
// writes to the same SQLite database as the log (a copy under another
// table prefix), or through a pool of one connection the log uses too,
// waits for the purge's write lock until it fails, and so does the purge:
// keep a copy of the trail in another database.
//
// Errors: ErrInvalidInput for a malformed tenantID or a zero before, or
// when no AuditLog is configured; ErrForbidden when called with the
// context of an impersonated request (audited); an error wrapping errors.ErrUnsupported
// when the AuditLog does not implement AuditPurger; an auditor's or the
// store's error (nothing is deleted then).
func (m *Manager) PurgeAudit(ctx context.Context, tenantID string, before time.Time) (_ AuditPurge, err error) {
	ctx, span := m.startSpan(ctx, "PurgeAudit")
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, nil)
	if err := validateTenantRef("tenantID", tenantID); err != nil {
		return AuditPurge{}, fmt.Errorf("purge audit: %w", err)
	}
	if before.IsZero() {
		return AuditPurge{}, fmt.Errorf("purge audit: %w: before is zero", ErrInvalidInput)
	}
	// Never from an impersonated request (see WithAuthorizer): the caller
	// is the system (retention), not support.
	if err := m.refuseImpersonated(ctx, ActionPurgeAudit, SystemActor, tenantID, target{}); err != nil {
		return AuditPurge{}, fmt.Errorf("purge audit: %w", err)
	}
	if m.auditLog == nil {
		return AuditPurge{}, fmt.Errorf("purge audit: %w: no AuditLog configured (WithAuditLog; the store is not one when WithAuditor leaves it out)", ErrInvalidInput)
	}
	p, ok := m.auditLog.(AuditPurger)
	if !ok {
		return AuditPurge{}, fmt.Errorf("purge audit: the audit log cannot purge: %w", errors.ErrUnsupported)
	}
	// before goes to the store as given: each compares it with the times
	// it keeps (sqlstore rounds it up to its microseconds; memstore and a
	// host's log compare exactly). The event records it rounded up, the
	// bound it is for the whole microseconds of the Manager's events.
	recorded := capTime(canon.Ceil(before))
	now, cerr := m.changeNow() // not err: see errNotReturned
	if cerr != nil {
		return AuditPurge{}, fmt.Errorf("purge audit: %w", cerr)
	}
	res, err := p.PurgeAudit(ctx, tenantID, before, func(r AuditPurge) (Event, error) {
		ev := m.newEvent(now, EventAuditPurged, tenantID, uuid.Nil, SystemActor, "retention")
		ev.Attrs = make(map[string]string, purgeAttrCount)
		ev.Attrs[AttrPurgeBefore] = recorded.Format(timeFormat)
		ev.Attrs[AttrPurgeDeleted] = strconv.FormatInt(r.Deleted, 10)
		ev.Attrs[AttrCheckpointSeq] = strconv.FormatInt(r.Checkpoint.Seq, 10)
		ev.Attrs[AttrCheckpointHash] = hex.EncodeToString(r.Checkpoint.Hash)
		ev.Attrs[AttrPreviousCheckpoint] = strconv.FormatInt(r.Previous.Seq, 10)
		copied := ev
		copied.Attrs = maps.Clone(ev.Attrs)
		copied.Attrs[AttrPurgeCopy] = "true"
		for _, a := range m.extra {
			if sameValue(a, p) { // the log records it in its chain already
				continue
			}
			if err := a.Record(ctx, copied.Clone()); err != nil {
				return Event{}, auditError(err)
			}
		}
		return ev, nil
	})
	if err != nil {
		return AuditPurge{}, fmt.Errorf("purge audit: %w", err)
	}
	return res, nil
}

// sameValue reports whether a and b are the same comparable value.
func sameValue(a, b any) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}
