package supportaccess

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"
)

// ErrTampered means an audit chain is broken: an event was changed,
// removed, inserted or moved after it was recorded. VerifyAudit and
// VerifyJSONL return it wrapped in a *ChainBreak that locates the first
// broken link.
var ErrTampered = errors.New("supportaccess: audit chain broken")

// ChainLink is a point of a tenant's hash chain: a sequence number and the
// Hash of the event with that number. The zero ChainLink is the start of a
// chain (before the event with Seq 1).
type ChainLink struct {
	Seq  int64  `json:"seq"`
	Hash []byte `json:"hash,omitempty"`
}

// AuditChainState is what a store keeps about a tenant's chain besides its
// events.
type AuditChainState struct {
	// Checkpoint is the last event PurgeAudit deleted (zero: none): the
	// remaining chain continues from it. VerifyAudit accepts it only if
	// the chain's latest audit.purged event of its own records it (see
	// AttrCheckpointSeq, AttrPurgeCopy).
	Checkpoint ChainLink
	// Head is the last event appended (zero: none).
	Head ChainLink
}

// AuditChainReader is implemented by audit logs that keep each tenant's
// chain head and purge checkpoint (the bundled stores do). VerifyAudit uses
// it to start after a purge and to notice events removed from, or added
// to, the end of a chain; without it a chain is verified from Seq 1 and
// such changes at the end go unnoticed.
type AuditChainReader interface {
	// AuditChain returns tenantID's chain state. A tenant without events
	// has the zero state; that is not an error.
	AuditChain(ctx context.Context, tenantID string) (AuditChainState, error)
}

// BreakKind classifies a broken link.
type BreakKind string

// Kinds of broken links.
const (
	// BreakHashMismatch: the event at Seq does not match its hash; its
	// content (or hash) was changed after it was recorded.
	BreakHashMismatch BreakKind = "hash_mismatch"
	// BreakGap: the events from Seq on are missing (deleted); EventID is
	// the event found in their place, if any.
	BreakGap BreakKind = "gap"
	// BreakReorder: the event at Seq belongs at another position (two
	// events swapped places, or lines of an export are out of chain order).
	BreakReorder BreakKind = "reorder"
	// BreakForged: the event at Seq was never part of the chain: it was
	// inserted (with a sequence number that is taken, that shifts the
	// following events, below 1, or beyond the chain's recorded head).
	BreakForged BreakKind = "forged"
	// BreakCheckpoint: the chain starts after a purge checkpoint (the link
	// at Seq-1) that PurgeAudit did not set: the chain's latest
	// audit.purged event of its own (see AttrPurgeCopy) does not record
	// it, or there is none. The events up to the checkpoint were deleted, or
	// the checkpoint moved, behind the store's back. EventID is the first
	// event after the checkpoint. Also the first remaining event when it
	// links to a checkpoint one of the chain's own audit.purged events
	// records but the store's checkpoint is another (moved back or reset, or its hash changed); and
	// an event stored at or before the checkpoint (at Seq; EventID is that
	// event): inserted there, or left behind by a moved checkpoint.
	BreakCheckpoint BreakKind = "checkpoint"
)

// ChainBreak locates the first broken link of a chain. It is an error
// wrapping ErrTampered.
type ChainBreak struct {
	TenantID string
	Kind     BreakKind
	// Seq is the chain position where the chain breaks.
	Seq int64
	// EventID is the event stored at Seq (uuid.Nil when there is none);
	// for BreakGap, the event found in place of the missing ones.
	EventID uuid.UUID
	// Detail explains the break in words.
	Detail string
}

// Error describes the break.
func (b *ChainBreak) Error() string {
	return fmt.Sprintf("supportaccess: audit chain of tenant %q broken at seq %d (%s, event %s): %s",
		b.TenantID, b.Seq, b.Kind, b.EventID, b.Detail)
}

// Unwrap returns ErrTampered.
func (b *ChainBreak) Unwrap() error { return ErrTampered }

// ChainRange is the verified part of one tenant's chain.
type ChainRange struct {
	// From is where verification started: the zero link (the start of the
	// chain), a purge checkpoint, or, for an export that starts in the
	// middle of a chain, the link before its first line (its prev_hash)
	// or, when that line has none, the line's own link. An export's From
	// is taken as given, not verified: compare it with what VerifyAudit
	// reports, or with a Head kept elsewhere.
	From ChainLink
	// Head is the last event verified. Keeping it somewhere else (a log, a
	// ticket, a second system) lets a later verification prove that the
	// chain up to it was not rewritten wholesale.
	Head ChainLink
}

// VerifyReport is the result of a chain verification.
type VerifyReport struct {
	// Events is how many events were verified.
	Events int64
	// Chains holds the verified range of each tenant's chain.
	Chains map[string]ChainRange
	// Break is the first broken link found; nil when every chain is intact.
	// Verification stops at the first break.
	Break *ChainBreak
}

// OK reports whether no broken link was found.
func (r VerifyReport) OK() bool { return r.Break == nil }

// verifyBatch is how many events VerifyAudit reads per query; the same
// number of following events is read to classify a break.
const verifyBatch = 1000

// VerifyAudit walks tenantID's hash chain in order, in batches, from the
// last purge checkpoint (or the first event) to the head, recomputing every
// event's hash (see Event.ChainHash), and reports the first broken link.
// With a store that implements AuditChainReader it also detects events
// deleted from the end of the chain (unless the store's head was moved
// back with them) or appended behind the store's back.
// Events appended while it runs are verified too, up to the moment it
// reads the last page.
//
// A checkpoint is trusted only as far as the chain vouches for it: the
// chain's latest audit.purged event of its own, which PurgeAudit appends
// after saving the checkpoint, must record the same sequence number and
// hash (AttrCheckpointSeq, AttrCheckpointHash). The audit.purged events a
// log keeps as a copy of another log's purge (AttrPurgeCopy: a second
// store kept through MultiAuditor, with its own retention) vouch for
// nothing. A checkpoint moved back, or reset, behind the store's back is
// a BreakCheckpoint too, found at the first remaining event when it links
// to the checkpoint one of the chain's own purges recorded. Otherwise the events up to the
// checkpoint were deleted, or the checkpoint was moved, without PurgeAudit,
// and VerifyAudit reports a BreakCheckpoint; it checks this once the rest
// of the chain has verified (an earlier break is reported instead).
//
// What it proves: the events were not changed, inserted or reordered,
// none was removed before the last one, and the checkpoint was not moved,
// by anyone who did not also recompute hashes. The newest events are a
// weaker case: deleting them and setting the store's head to the new last
// event's stored hash needs no hashing, and so does deleting a tenant's
// whole chain and head; only a head kept outside the database (see below)
// shows that. What it cannot prove: the chain has no secret, so
// whoever can write to the database and compute SHA-256 can rewrite a
// chain wholesale (recompute every later hash and the store's head, or
// append a forged audit.purged event that vouches for a moved checkpoint)
// and it verifies. Nor does a chain name the log it belongs to: where a
// second store keeps a copy of the trail (MultiAuditor), someone who can
// read the first store's rows and write the copy's can replace the copy's
// rows, head and checkpoint with the first store's, no hashing needed,
// and the copy verifies — without the events only the copy still kept.
// Only a record kept outside the database defeats that:
// anchor the head there (keep each report's Chains[tenantID].Head in a
// log, a ticket or a second system, and check later that the chain still holds it: the events
// from the checkpoint up to it cannot have been rewritten), and export the
// trail (ExportAudit) to a separate system if what a purge removed must be
// provable too.
//
// Errors: ErrInvalidInput for a malformed tenantID or when no AuditLog is
// configured; a *ChainBreak wrapping ErrTampered (also in the report's
// Break) when the chain is broken; ErrConflict when purges running on
// other replicas kept cutting the chain where the walk was, three walks
// in a row (verify again); otherwise the store's error.
func (m *Manager) VerifyAudit(ctx context.Context, tenantID string) (_ VerifyReport, err error) {
	ctx, span := m.startSpan(ctx, "VerifyAudit")
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, nil)
	if err := validateTenantRef("tenantID", tenantID); err != nil {
		return VerifyReport{}, fmt.Errorf("verify audit: %w", err)
	}
	if m.auditLog == nil {
		return VerifyReport{}, fmt.Errorf("verify audit: %w: no AuditLog configured (WithAuditLog; the store is not one when WithAuditor leaves it out)", ErrInvalidInput)
	}
	cr, _ := m.auditLog.(AuditChainReader)
	var rep VerifyReport
	// A purge that runs concurrently moves the checkpoint and deletes the
	// start of the chain under the walk, which follows it (reanchorAt);
	// a break a purge may still explain (see verifyTenant) makes the walk
	// start again from the new checkpoint, up to verifyWalks times.
	var verr error // not err: see errNotReturned (a second walk runs host code again)
	var moved bool
	for attempt := 0; attempt < verifyWalks; attempt++ {
		rep, moved, verr = verifyTenant(ctx, m.auditLog, cr, tenantID)
		if !moved {
			break
		}
	}
	if moved {
		// Every walk met a break where purges running meanwhile cut the
		// chain: not evidence of tampering, but nothing verified either
		// (review 163).
		rep.Break = nil
		return rep, fmt.Errorf("verify audit: %w: purges of tenant %q kept moving the chain's start during %d walks: verify again", ErrConflict, tenantID, verifyWalks)
	}
	if verr != nil {
		// A store may itself find a row changed behind its back (one it
		// cannot read back): its ChainBreak is the report's too.
		var brk *ChainBreak
		if rep.Break == nil && errors.As(verr, &brk) {
			rep.Break = brk
		}
		return rep, fmt.Errorf("verify audit: %w", verr)
	}
	return rep, nil
}

// verifyWalks is how many times VerifyAudit walks a chain that purges keep
// moving.
const verifyWalks = 3

// verifyTenant verifies one tenant's chain. moved reports a break that a
// concurrent purge may explain (the checkpoint changed meanwhile, and the
// break lies where the purge cut the chain).
func verifyTenant(ctx context.Context, log AuditLog, cr AuditChainReader, tenantID string) (rep VerifyReport, moved bool, err error) {
	var start AuditChainState
	if cr != nil {
		if start, err = cr.AuditChain(ctx, tenantID); err != nil {
			return VerifyReport{}, false, err
		}
	}
	// The walk reads the chain from its lowest stored Seq, not from after
	// the checkpoint: no event may lie at or before the chain's start (the
	// purged ones are gone), and one inserted there would otherwise be
	// listed by Events but never verified.
	src := &logSource{ctx: ctx, log: log, f: AuditFilter{TenantID: tenantID, Order: AuditByChain}}
	v := newVerifier(src.next)
	if cr != nil {
		v.head = func(tenant string) (ChainLink, bool, error) {
			st, err := cr.AuditChain(ctx, tenant)
			return st.Head, true, err
		}
		v.reanchor = func(tenant string) (ChainLink, error) {
			st, err := cr.AuditChain(ctx, tenant)
			return st.Checkpoint, err
		}
	}
	v.purged = func(tenant string) ([]*purgeRecord, error) {
		ps, err := ownPurges(ctx, log, tenant)
		var brk *ChainBreak
		if errors.As(err, &brk) {
			// An audit.purged row the store cannot read back: no purge
			// explains the break at hand, and that row's own break is
			// reported only if it comes first (see run).
			if v.unreadable == nil {
				v.unreadable = err
			}
			return nil, nil
		}
		return ps, err
	}
	v.start(tenantID, start.Checkpoint)
	if err := v.run(); err != nil {
		return v.report(), false, err
	}
	if v.brk == nil {
		if err := v.finish(tenantID, start.Head); err != nil {
			return v.report(), false, err
		}
	}
	if v.brk == nil {
		v.checkpoint(tenantID)
	}
	rep = v.report()
	if rep.Break == nil {
		return rep, false, nil
	}
	if cr != nil {
		now, err := cr.AuditChain(ctx, tenantID)
		if err != nil {
			return rep, false, err
		}
		// Only a break where the purges cut the chain (at or before the
		// first event after the new checkpoint) is theirs to explain; one
		// beyond it is reported whatever purges ran, so that moving the
		// checkpoint cannot hide it.
		if now.Checkpoint.Seq != start.Checkpoint.Seq && rep.Break.Seq <= now.Checkpoint.Seq+1 {
			return rep, true, rep.Break
		}
	}
	return rep, false, rep.Break
}

// ownPurges returns what the tenant's own audit.purged events (not the
// copies of another log's, see AttrPurgeCopy) record, in chain order,
// reading only those events (one per purge: few).
func ownPurges(ctx context.Context, log AuditLog, tenant string) ([]*purgeRecord, error) {
	f := AuditFilter{TenantID: tenant, Types: []EventType{EventAuditPurged}, Order: AuditByChain, Limit: verifyBatch}
	var out []*purgeRecord
	for {
		evs, err := log.Events(ctx, f)
		if err != nil {
			return nil, err
		}
		for i := range evs {
			if r := newPurgeRecord(&evs[i]); !r.copy {
				out = append(out, r)
			}
		}
		if len(evs) < f.Limit {
			return out, nil
		}
		c := evs[len(evs)-1].Cursor()
		f.After = &c
	}
}

// logSource pages an AuditLog.
type logSource struct {
	ctx  context.Context
	log  AuditLog
	f    AuditFilter
	done bool
	// single: a page failed on a row the store cannot read back; rows
	// are read one at a time from then on, up to that row.
	single bool
}

func (s *logSource) next() ([]item, error) {
	if s.done {
		return nil, nil
	}
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	s.f.Limit = verifyBatch
	if s.single {
		s.f.Limit = 1
	}
	evs, err := s.log.Events(s.ctx, s.f)
	var brk *ChainBreak
	if !s.single && errors.As(err, &brk) {
		// A row that cannot be read back fails its whole page (the SQL
		// stores): read up to it one row at a time, so that a break
		// before it in the same page is found first, not hidden by it.
		s.single, s.f.Limit = true, 1
		evs, err = s.log.Events(s.ctx, s.f)
	}
	if err == nil {
		// Another tenant's events in the answer would be verified and
		// reported as this chain's (review 165).
		for i := range evs {
			if evs[i].TenantID != s.f.TenantID {
				err = fmt.Errorf("audit log returned event %s of tenant %q for tenant %q", evs[i].ID, evs[i].TenantID, s.f.TenantID)
				break
			}
		}
	}
	switch {
	case err != nil:
		return nil, err
	case len(evs) < s.f.Limit:
		s.done = true
	}
	if len(evs) > 0 {
		c := evs[len(evs)-1].Cursor()
		s.f.After = &c
	}
	items := make([]item, len(evs))
	for i := range evs {
		items[i].e = evs[i]
	}
	return items, nil
}

// item is an event to verify; prev is the hash of its predecessor when the
// source knows it (an export line's prev_hash).
type item struct {
	e       Event
	prev    []byte
	hasPrev bool
}

// chainState is the verifier's position in one tenant's chain.
type chainState struct {
	from   ChainLink
	anchor bool   // from is an export's first line, not a checkpoint
	expect int64  // Seq of the next event
	prev   []byte // Hash of the last verified event (or of From)
	first  uuid.UUID
	purge  *purgeRecord // the last verified audit.purged event of its own
}

// notOwn reports whether r, an unmarked audit.purged event of the chain,
// cannot be a purge of this chain, so that it is a copy of another log's
// written before copies were marked (AttrPurgeCopy): it records a
// checkpoint past the chain's start — a purge of this chain that set it
// would have deleted the events in between, which the walk has verified —
// or the chain's start's sequence number with another hash (only the purge
// that set the chain's start records its number, and with its hash; one
// that changed behind the store's back fails the first event's link), or
// not past the one an earlier purge event of the chain's own records,
// while each purge of a chain moves its checkpoint forward.
func (cs *chainState) notOwn(r *purgeRecord) bool {
	if !r.ok {
		return false
	}
	c := r.checkpoint
	return c.Seq > cs.from.Seq ||
		c.Seq == cs.from.Seq && !bytes.Equal(c.Hash, cs.from.Hash) ||
		cs.purge != nil && cs.purge.ok && c.Seq <= cs.purge.checkpoint.Seq
}

// purgeRecord is what an audit.purged event says about the checkpoint it
// set.
type purgeRecord struct {
	seq        int64 // the event's
	checkpoint ChainLink
	ok         bool // its checkpoint attributes are well formed
	copy       bool // a copy of another log's (AttrPurgeCopy): vouches for nothing here
}

func newPurgeRecord(e *Event) *purgeRecord {
	r := &purgeRecord{seq: e.Seq, copy: e.Attrs[AttrPurgeCopy] != ""}
	seq, err1 := strconv.ParseInt(e.Attrs[AttrCheckpointSeq], 10, 64)
	hash, err2 := hex.DecodeString(e.Attrs[AttrCheckpointHash])
	if err1 == nil && err2 == nil {
		r.checkpoint, r.ok = ChainLink{Seq: seq, Hash: hash}, true
	}
	return r
}

// verifier checks chains event by event, reading ahead from src to
// classify a break. Events of several tenants may be interleaved; each
// tenant's events must come in Seq order.
type verifier struct {
	src    func() ([]item, error)
	buf    []item
	pos    int
	eof    bool
	chains map[string]*chainState
	order  []string
	n      int64
	brk    *ChainBreak
	// head reads a tenant's current head (ok false: unknown).
	head func(tenant string) (ChainLink, bool, error)
	// outOfOrder is the kind reported for an event whose Seq is lower than
	// expected.
	outOfOrder BreakKind
	// export: the source is an export's lines, which may come out of
	// chain order (an export in time order, lines moved): a line whose
	// Seq is higher than expected, with the expected one among the lines
	// read ahead, is a reorder, not a gap.
	export bool
	// reanchor reads a tenant's checkpoint as the store has it now (nil:
	// the walk cannot follow a concurrent purge; see reanchorAt).
	reanchor func(tenant string) (ChainLink, error)
	// purged reads what a tenant's audit.purged events record, unverified
	// (nil: unknown), to tell a changed checkpoint from a changed or
	// missing first event.
	purged func(tenant string) ([]*purgeRecord, error)
	// unreadable: the source's *ChainBreak for a row it cannot read back
	// (a store's finding); the walk reports it once it reaches that row,
	// so that a break in the events before it is reported first.
	unreadable error
}

func newVerifier(src func() ([]item, error)) *verifier {
	return &verifier{src: src, chains: map[string]*chainState{}, outOfOrder: BreakForged}
}

// start begins tenant's chain after link from.
func (v *verifier) start(tenant string, from ChainLink) *chainState {
	cs := &chainState{from: from, expect: from.Seq + 1, prev: from.Hash}
	v.chains[tenant] = cs
	v.order = append(v.order, tenant)
	return cs
}

// fill makes sure at least n items are buffered from pos (fewer at EOF).
func (v *verifier) fill(n int) error {
	for !v.eof && len(v.buf)-v.pos < n {
		items, err := v.src()
		var brk *ChainBreak
		if errors.As(err, &brk) {
			v.unreadable, v.eof = err, true
			break
		}
		if err != nil {
			return err
		}
		if len(items) == 0 {
			v.eof = true // the last batch stays buffered for finish
			break
		}
		if v.pos == len(v.buf) {
			v.buf, v.pos = v.buf[:0], 0
		}
		v.buf = append(v.buf, items...)
	}
	return nil
}

func (v *verifier) fail(tenant string, kind BreakKind, seq int64, id uuid.UUID, format string, args ...any) {
	v.brk = &ChainBreak{TenantID: tenant, Kind: kind, Seq: seq, EventID: id, Detail: fmt.Sprintf(format, args...)}
}

// run verifies events until the source ends or a link is broken. A break
// found at or after the position of a row the source could not read back
// (one it sorts elsewhere, such as a sequence number retyped on SQLite,
// showing as a gap) is that row's break.
func (v *verifier) run() error {
	err := v.walk()
	var u *ChainBreak
	if v.brk != nil && errors.As(v.unreadable, &u) && u.TenantID == v.brk.TenantID && u.Seq > 0 && u.Seq <= v.brk.Seq {
		v.brk = u
	}
	return err
}

// walk is run without the preference for an unreadable row's break.
func (v *verifier) walk() error {
	for v.brk == nil {
		if err := v.fill(1); err != nil {
			return err
		}
		if v.pos == len(v.buf) {
			return v.unreadable
		}
		it := &v.buf[v.pos]
		e := &it.e
		cs := v.chains[e.TenantID]
		if cs == nil { // first event of a tenant in an export
			switch {
			case it.hasPrev && e.Seq == 1 && len(it.prev) > 0:
				// The chain's first event chains to nothing: a prev_hash
				// here is no start a chain has (ExportAudit writes none).
				v.start(e.TenantID, ChainLink{})
				v.fail(e.TenantID, BreakForged, e.Seq, e.ID, "prev_hash %x before the chain's first event", it.prev)
				return nil
			case it.hasPrev && e.Seq > 0: // below 1, forged whatever came before
				cs = v.start(e.TenantID, ChainLink{Seq: e.Seq - 1, Hash: it.prev})
			case e.Seq <= 1:
				cs = v.start(e.TenantID, ChainLink{})
			default: // nothing to check it against: it anchors the rest
				v.start(e.TenantID, ChainLink{Seq: e.Seq, Hash: e.Hash}).anchor = true
				v.pos++
				continue
			}
		} else if it.hasPrev && e.Seq == cs.expect && !bytes.Equal(it.prev, cs.prev) {
			// A later line's prev_hash (exports appended to one another)
			// must name the line before it, as a reader is told it does.
			v.fail(e.TenantID, BreakHashMismatch, e.Seq, e.ID, "the line's prev_hash %x is not the hash %x of event %d before it", it.prev, cs.prev, e.Seq-1)
			return nil
		}
		switch {
		case e.Seq <= cs.from.Seq && cs.from.Seq == 0:
			v.fail(e.TenantID, BreakForged, e.Seq, e.ID, "sequence number %d: a chain starts at 1", e.Seq)
			return nil
		case e.Seq <= cs.from.Seq && cs.anchor:
			v.fail(e.TenantID, v.outOfOrder, e.Seq, e.ID, "sequence number %d comes after %d, the tenant's first line: lines out of chain order (export with Order: AuditByChain)", e.Seq, cs.from.Seq)
			return nil
		case e.Seq <= cs.from.Seq:
			// A purge deletes every event up to its checkpoint: one still
			// there was inserted, or the checkpoint moved past it.
			v.fail(e.TenantID, BreakCheckpoint, e.Seq, e.ID, "event at seq %d lies at or before the purge checkpoint (seq %d)", e.Seq, cs.from.Seq)
			return nil
		case e.Seq < cs.expect:
			v.fail(e.TenantID, v.outOfOrder, e.Seq, e.ID, "sequence number %d comes again after %d", e.Seq, cs.expect-1)
			return nil
		case e.Seq > cs.expect:
			if ok, err := v.reanchorAt(cs, e); err != nil {
				return err
			} else if ok {
				continue // e is verified from the new checkpoint
			}
			if v.export {
				if f, err := v.ahead(e.TenantID, cs.expect); err != nil {
					return err
				} else if f != nil {
					v.fail(e.TenantID, BreakReorder, cs.expect, f.ID, "event %d comes after event %d: lines out of chain order (export with Order: AuditByChain)", cs.expect, e.Seq)
					return nil
				}
			}
			if cs.expect == cs.from.Seq+1 {
				if moved, err := v.movedBack(cs, e); err != nil || moved {
					return err
				}
			}
			// Read ahead first: a missing event may be a row the source
			// cannot read back, sorted elsewhere (see run). Best effort:
			// the gap stands whatever the read fails with.
			_ = v.fill(verifyBatch + 1)
			v.fail(e.TenantID, BreakGap, cs.expect, e.ID, "%s missing", seqRange(cs.expect, e.Seq-1))
			return nil
		}
		if !bytes.Equal(e.ChainHash(cs.prev), e.Hash) {
			if err := v.fill(verifyBatch + 1); err != nil {
				return err
			}
			return v.classify(cs)
		}
		if e.Seq == cs.from.Seq+1 {
			cs.first = e.ID
		}
		if e.Type == EventAuditPurged {
			if r := newPurgeRecord(e); !r.copy && !cs.notOwn(r) {
				cs.purge = r
			}
		}
		cs.prev, cs.expect = e.Hash, e.Seq+1
		v.n++
		v.pos++
	}
	return nil
}

// reanchorAt reports whether the walk, having found e after a gap, goes on
// from the store's checkpoint instead: a purge that ran during the walk
// deleted the missing events and moved the checkpoint to the link e
// follows. The purge's own audit.purged event, appended to the chain in
// the purge's transaction, must then record that checkpoint (see
// checkpoint), as for a walk that started there; the events after it are
// verified in full, so moving the checkpoint hides no change to them.
// Without reanchor (an export's lines) it reports false.
func (v *verifier) reanchorAt(cs *chainState, e *Event) (bool, error) {
	if v.reanchor == nil {
		return false, nil
	}
	c, err := v.reanchor(e.TenantID)
	if err != nil {
		return false, err
	}
	if c.Seq != e.Seq-1 || !bytes.Equal(e.ChainHash(c.Hash), e.Hash) {
		return false, nil
	}
	cs.from, cs.prev, cs.expect, cs.first = c, c.Hash, e.Seq, uuid.Nil
	return true, nil
}

// movedBack reports (and records as the break) whether e, the first event
// after the chain's start cs.from and further on than the event after it,
// links to a checkpoint one of the chain's own audit.purged events records: the
// events in between were purged, and the store's checkpoint was moved
// back (or reset) behind its back — not deleted events.
func (v *verifier) movedBack(cs *chainState, e *Event) (bool, error) {
	if v.purged == nil {
		return false, nil
	}
	ps, err := v.purged(e.TenantID)
	if err != nil {
		return false, err
	}
	for _, p := range ps {
		if p.ok && p.checkpoint.Seq == e.Seq-1 && bytes.Equal(e.ChainHash(p.checkpoint.Hash), e.Hash) {
			v.fail(e.TenantID, BreakCheckpoint, e.Seq, e.ID,
				"the purge checkpoint was moved back behind the store's back: it is seq %d, but the audit.purged event at seq %d records checkpoint %d, which the event links to",
				cs.from.Seq, p.seq, p.checkpoint.Seq)
			return true, nil
		}
	}
	return false, nil
}

// ahead returns the tenant's event with sequence number seq among the
// next verifyBatch items after pos, if there is one.
func (v *verifier) ahead(tenant string, seq int64) (*Event, error) {
	if err := v.fill(verifyBatch + 1); err != nil {
		return nil, err
	}
	for i := v.pos + 1; i < len(v.buf); i++ {
		if f := &v.buf[i].e; f.TenantID == tenant && f.Seq == seq {
			return f, nil
		}
	}
	return nil, nil
}

// classify explains the hash mismatch of the event at pos using the
// events read after it.
func (v *verifier) classify(cs *chainState) error {
	e := &v.buf[v.pos].e
	n := e.Seq
	// The first event after a purge checkpoint: it or the checkpoint may
	// have changed. If it links to the checkpoint a purge recorded, and
	// the store's differs, the checkpoint did.
	if cp := cs.from; n == cp.Seq+1 && cp.Seq > 0 && v.purged != nil {
		ps, err := v.purged(e.TenantID)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.ok && p.checkpoint.Seq == cp.Seq && !bytes.Equal(p.checkpoint.Hash, cp.Hash) &&
				bytes.Equal(e.ChainHash(p.checkpoint.Hash), e.Hash) {
				v.fail(e.TenantID, BreakCheckpoint, n, e.ID,
					"the purge checkpoint (seq %d) was changed behind the store's back: its hash %x is not the %x the audit.purged event at seq %d records, which the event links to",
					cp.Seq, cp.Hash, p.checkpoint.Hash, p.seq)
				return nil
			}
		}
	}
	var later []*Event // the same tenant's following events
	for i := v.pos + 1; i < len(v.buf); i++ {
		if f := &v.buf[i].e; f.TenantID == e.TenantID {
			later = append(later, f)
		}
	}
	// The next event links to e's stored hash: that hash is genuine, so
	// e's content changed.
	if len(later) > 0 && later[0].Seq == n+1 && bytes.Equal(later[0].ChainHash(e.Hash), later[0].Hash) {
		v.fail(e.TenantID, BreakHashMismatch, n, e.ID, "the event was changed after it was recorded")
		return nil
	}
	// A later event belongs at n: e was moved here or inserted.
	for j, f := range later {
		g := *f
		g.Seq = n
		if !bytes.Equal(g.ChainHash(cs.prev), f.Hash) {
			continue
		}
		k := f.Seq
		// Does e belong where f is stored (a swap)?
		var prevK []byte
		if k == n+1 {
			prevK = f.Hash
		} else {
			for _, p := range later[:j] {
				if p.Seq == k-1 {
					prevK = p.Hash
				}
			}
		}
		h := *e
		h.Seq = k
		if prevK != nil && bytes.Equal(h.ChainHash(prevK), e.Hash) {
			v.fail(e.TenantID, BreakReorder, n, e.ID, "event %s stored at seq %d belongs at seq %d, and event %s stored at seq %d belongs at seq %d",
				e.ID, n, k, f.ID, k, n)
			return nil
		}
		v.fail(e.TenantID, BreakForged, n, e.ID, "the event is not part of the chain; event %s stored at seq %d belongs here", f.ID, k)
		return nil
	}
	if v.head != nil {
		head, ok, err := v.head(e.TenantID)
		if err != nil {
			return err
		}
		switch {
		case ok && n > head.Seq:
			v.fail(e.TenantID, BreakForged, n, e.ID, "the event lies beyond the chain's head (seq %d)", head.Seq)
			return nil
		case ok && n == head.Seq && bytes.Equal(head.Hash, e.Hash):
			v.fail(e.TenantID, BreakHashMismatch, n, e.ID, "the event was changed after it was recorded")
			return nil
		}
	}
	v.fail(e.TenantID, BreakHashMismatch, n, e.ID, "the event does not match its hash (changed, or its hash was replaced)")
	return nil
}

// finish compares the end of tenant's verified chain with its head as
// recorded before (startHead) and after the walk.
func (v *verifier) finish(tenant string, startHead ChainLink) error {
	cs := v.chains[tenant]
	last := cs.expect - 1
	if last < startHead.Seq {
		v.fail(tenant, BreakGap, last+1, uuid.Nil, "%s missing at the end of the chain (its head is %d)", seqRange(last+1, startHead.Seq), startHead.Seq)
		return nil
	}
	if v.head == nil {
		return nil
	}
	head, ok, err := v.head(tenant)
	if err != nil || !ok {
		return err
	}
	switch {
	case last > head.Seq:
		// Events beyond the head whose hashes were computed correctly.
		id := uuid.Nil
		for i := range v.buf {
			if e := &v.buf[i].e; e.TenantID == tenant && e.Seq == head.Seq+1 {
				id = e.ID
			}
		}
		v.fail(tenant, BreakForged, head.Seq+1, id, "%s beyond the chain's head (seq %d)", seqRange(head.Seq+1, last), head.Seq)
	case last == head.Seq && last > cs.from.Seq && !bytes.Equal(cs.prev, head.Hash):
		v.fail(tenant, BreakHashMismatch, last, uuid.Nil, "the last event's hash %s differs from the chain's head %s",
			hex.EncodeToString(cs.prev), hex.EncodeToString(head.Hash))
	}
	return nil
}

// checkpoint checks that tenant's chain, verified from a purge checkpoint,
// holds the audit.purged event that set it: the last one of its own
// verified (copies of another log's, AttrPurgeCopy, do not count), since
// every purge that moves the checkpoint appends one after it.
func (v *verifier) checkpoint(tenant string) {
	cs := v.chains[tenant]
	cp := cs.from
	if cp.Seq <= 0 {
		return
	}
	var why string
	switch p := cs.purge; {
	case p == nil:
		why = "no audit.purged event follows it"
	case !p.ok:
		why = fmt.Sprintf("the latest audit.purged event (seq %d) records no valid checkpoint", p.seq)
	case p.checkpoint.Seq != cp.Seq || !bytes.Equal(p.checkpoint.Hash, cp.Hash):
		why = fmt.Sprintf("the latest audit.purged event (seq %d) records checkpoint %d (hash %x)", p.seq, p.checkpoint.Seq, p.checkpoint.Hash)
	default:
		return
	}
	v.fail(tenant, BreakCheckpoint, cp.Seq+1, cs.first,
		"the chain starts after a purge checkpoint (seq %d, hash %x) that PurgeAudit did not set: %s; events up to %d were deleted, or the checkpoint moved, behind the store's back",
		cp.Seq, cp.Hash, why, cp.Seq)
}

func (v *verifier) report() VerifyReport {
	r := VerifyReport{Events: v.n, Chains: make(map[string]ChainRange, len(v.chains)), Break: v.brk}
	for _, t := range v.order {
		cs := v.chains[t]
		r.Chains[t] = ChainRange{From: cs.from, Head: ChainLink{Seq: cs.expect - 1, Hash: cs.prev}}
	}
	return r
}

// seqRange describes the events from a to b with a verb.
func seqRange(a, b int64) string {
	if a == b {
		return fmt.Sprintf("event %d is", a)
	}
	return fmt.Sprintf("events %d to %d are", a, b)
}
