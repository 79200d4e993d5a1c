package supportaccess_test

// Review 111: tests written while mutation-testing the audit trail code
// (audit_verify.go, audit_export.go, audit_purge.go, audit_query.go,
// audit.go, audit_slog.go). Each test names the mutant it kills.

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// r111Filled returns a memstore holding n support.request events of
// tenant acme, one a second from base, a clock n hours after base, and a
// Manager on the store by that clock (the tests' purger).
func r111Filled(t *testing.T, n int) (st *memstore.Store, base time.Time, clock *storetest.Clock, purger *sa.Manager) {
	t.Helper()
	st = memstore.New()
	base = storetest.Epoch.Truncate(time.Microsecond)
	for i := 1; i <= n; i++ {
		require.NoError(t, st.Record(ctx, sa.Event{ID: uuid.New(), Time: base.Add(time.Duration(i) * time.Second),
			Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}))
	}
	clock = storetest.NewClock(base.Add(time.Duration(n) * time.Hour))
	purger, err := sa.NewManager(st, sa.WithNow(clock.Now))
	require.NoError(t, err)
	return st, base, clock, purger
}

// r111BreakingLog is the store, except that Events fails with a store's
// own *ChainBreak (a row it cannot read back) from the first page on.
type r111BreakingLog struct {
	*memstore.Store
	brk *sa.ChainBreak
}

func (l *r111BreakingLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	return nil, fmt.Errorf("row: %w", l.brk)
}

// TestReview111StoreChainBreakIsTheReportsBreak: VerifyAudit's doc says a
// *ChainBreak it returns is "also in the report's Break"; when the store
// itself finds the break (a row it cannot read back), the report carries
// it too.
// Kills: audit_verify.go:212 `rep.Break == nil && errors.As(err, &brk)`
// -> `false && ...` (the store's break left out of the report).
func TestReview111StoreChainBreakIsTheReportsBreak(t *testing.T) {
	st, _, _, _ := r111Filled(t, 3)
	brk := &sa.ChainBreak{TenantID: "acme", Kind: sa.BreakHashMismatch, Seq: 2, Detail: "unreadable row"}
	m, err := sa.NewManager(st, sa.WithAuditLog(&r111BreakingLog{Store: st, brk: brk}))
	require.NoError(t, err)
	rep, err := m.VerifyAudit(ctx, "acme")
	require.ErrorIs(t, err, sa.ErrTampered)
	t.Logf("err=%v rep=%+v", err, rep)
	require.False(t, rep.OK(), "the report says the chain is broken")
	require.Same(t, brk, rep.Break)
}

// r111DoublePurgeLog is the store as the AuditLog; while VerifyAudit reads
// its second page, one retention purge runs before the read and a second
// one right after it, before the walk can follow the first (two replicas'
// scheduled jobs, say).
type r111DoublePurgeLog struct {
	*memstore.Store
	once          sync.Once
	before, after func()
}

func (l *r111DoublePurgeLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	second := f.Limit == 1000 && len(f.Types) == 0 && f.After != nil && f.After.Seq == 1000
	if !second {
		return l.Store.Events(ctx, f)
	}
	var evs []sa.Event
	var err error
	l.once.Do(func() {
		l.before()
		evs, err = l.Store.Events(ctx, f)
		l.after()
	})
	if evs == nil && err == nil {
		return l.Store.Events(ctx, f)
	}
	return evs, err
}

// TestReview111VerifyWalksAgainAfterPurgesOvertakeIt: two genuine purges
// that overtake a walk (the second moves the checkpoint past where the
// first left the events the walk read) leave a gap the walk cannot follow;
// VerifyAudit walks again from the new checkpoint and finds the chain
// intact, as its doc promises for purges running concurrently.
// Kills: audit_verify.go:222 `verifyWalks = 3` -> `1` (a false BreakGap:
// an honest store reported as tampered).
func TestReview111VerifyWalksAgainAfterPurgesOvertakeIt(t *testing.T) {
	st, base, clock, purger := r111Filled(t, 2500)
	purge := func(upTo int) func() {
		return func() {
			_, err := purger.PurgeAudit(ctx, "acme", base.Add(time.Duration(upTo)*time.Second+time.Millisecond))
			require.NoError(t, err)
		}
	}
	log := &r111DoublePurgeLog{Store: st, before: purge(1500), after: purge(1800)}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditLog(log))
	require.NoError(t, err)
	rep, err := m.VerifyAudit(ctx, "acme")
	require.NoError(t, err, "%v", rep.Break)
	require.EqualValues(t, 1800, rep.Chains["acme"].From.Seq)
	require.EqualValues(t, 2502, rep.Chains["acme"].Head.Seq)
}

// r111Chain is an AuditLog and AuditChainReader over a slice and a chain
// state that tests change at will (a database written behind the store's
// back).
type r111Chain struct {
	evs []sa.Event
	st  sa.AuditChainState
}

func (l *r111Chain) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	return (&sliceLog{evs: l.evs}).Events(ctx, f)
}

func (l *r111Chain) AuditChain(_ context.Context, tenant string) (sa.AuditChainState, error) {
	if tenant != "acme" {
		return sa.AuditChainState{}, nil
	}
	return l.st, nil
}

// r111Link returns e's link.
func r111Link(e sa.Event) sa.ChainLink { return sa.ChainLink{Seq: e.Seq, Hash: e.Hash} }

// r111Purged returns an audit.purged event recording checkpoint cp (a copy
// of another log's when copy), chained after prev.
func r111Purged(prev sa.Event, cp sa.ChainLink, copy bool) sa.Event {
	e := sa.Event{ID: uuid.New(), Time: prev.Time.Add(time.Millisecond), Type: sa.EventAuditPurged, TenantID: "acme",
		Actor: sa.SystemActor, Reason: "retention", Seq: prev.Seq + 1, Attrs: map[string]string{
			sa.AttrCheckpointSeq: fmt.Sprint(cp.Seq), sa.AttrCheckpointHash: fmt.Sprintf("%x", cp.Hash)}}
	if copy {
		e.Attrs[sa.AttrPurgeCopy] = "true"
	}
	e.Hash = e.ChainHash(prev.Hash)
	return e
}

// r111Purge returns the chain of n events purged up to cp: the events
// after cp and a genuine audit.purged event recording it, with the store's
// state.
func r111Purge(n int, cp int) *r111Chain {
	evs := chainOf(n)
	p := r111Purged(evs[n-1], r111Link(evs[cp-1]), false)
	kept := append(append([]sa.Event{}, evs[cp:]...), p)
	return &r111Chain{evs: kept, st: sa.AuditChainState{Checkpoint: r111Link(evs[cp-1]), Head: r111Link(p)}}
}

func r111Verify(t *testing.T, log sa.AuditLog) (sa.VerifyReport, *sa.ChainBreak) {
	t.Helper()
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(log))
	require.NoError(t, err)
	rep, err := m.VerifyAudit(ctx, "acme")
	if err == nil {
		require.True(t, rep.OK())
		return rep, nil
	}
	var brk *sa.ChainBreak
	require.ErrorAs(t, err, &brk)
	require.Same(t, brk, rep.Break)
	return rep, brk
}

// r111RequireBreak verifies log and requires its first break to be of
// kind at seq, naming event id.
func r111RequireBreak(t *testing.T, log sa.AuditLog, kind sa.BreakKind, seq int64, id uuid.UUID, msg string) {
	t.Helper()
	_, brk := r111Verify(t, log)
	require.NotNil(t, brk, msg)
	require.Equal(t, kind, brk.Kind, "%s: %v", msg, brk)
	require.Equal(t, seq, brk.Seq, msg)
	require.Equal(t, id, brk.EventID, msg)
}

// TestReview111EventAtTheCheckpointIsACheckpointBreak: an event stored at
// the purge checkpoint's own sequence number (inserted there, or left
// behind by a moved checkpoint) is a BreakCheckpoint at that Seq, as
// BreakCheckpoint's doc says ("an event stored at or before the
// checkpoint"), like one stored before it.
// Kills: audit_verify.go:549 `case e.Seq <= cs.from.Seq:` -> `<` (the
// event at the checkpoint reported as BreakForged, "comes again").
func TestReview111EventAtTheCheckpointIsACheckpointBreak(t *testing.T) {
	l := r111Purge(10, 4)
	_, brk := r111Verify(t, l)
	require.Nil(t, brk, "the genuine purge verifies")
	for _, seq := range []int64{3, 4} {
		l := r111Purge(10, 4)
		forged := l.evs[0]
		forged.ID, forged.Seq, forged.Reason = uuid.New(), seq, "inserted"
		l.evs = append(l.evs, forged)
		_, brk := r111Verify(t, l)
		require.NotNil(t, brk)
		require.Equal(t, sa.BreakCheckpoint, brk.Kind, "seq %d: %v", seq, brk)
		require.Equal(t, seq, brk.Seq)
		require.Equal(t, forged.ID, brk.EventID)
	}
}

// TestReview111CopiedPurgeDoesNotExplainDeletedStart: a log that keeps a
// copy of another log's trail (MultiAuditor) holds that log's purges only
// as copies (AttrPurgeCopy), which "vouch for nothing". Events deleted from
// the start of the copy behind its back, up to the checkpoint the copied
// purge records, are missing events (BreakGap at seq 1), not "the purge
// checkpoint was moved back" (a BreakCheckpoint naming a purge this chain
// never had).
// Kills: audit_verify.go:308 ownPurges `!r.copy` -> `true` (copies taken as
// the chain's own purges by movedBack).
func TestReview111CopiedPurgeDoesNotExplainDeletedStart(t *testing.T) {
	evs := chainOf(10)
	cp := r111Link(evs[3])
	p := r111Purged(evs[9], cp, true)
	l := &r111Chain{evs: append(append([]sa.Event{}, evs[4:]...), p), st: sa.AuditChainState{Head: r111Link(p)}}
	r111RequireBreak(t, l, sa.BreakGap, 1, evs[4].ID, "")
}

// TestReview111AppendedExportsWithAGapShowTheGap: two exports of one chain
// appended to one another, the second starting after events the first did
// not hold, are a gap (BreakGap at the first missing event, naming the
// line found in its place), not a prev_hash mismatch: the second export's
// first line names its true predecessor.
// Kills: audit_verify.go:536 `it.hasPrev && e.Seq == cs.expect && ...` ->
// `it.hasPrev && ...` (prev_hash checked against a line that is not the
// one before it).
func TestReview111AppendedExportsWithAGapShowTheGap(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 8; i++ {
		e.grant(sa.GrantInput{})
	}
	var out bytes.Buffer
	_, err := e.m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain, Limit: 3})
	require.NoError(t, err)
	_, err = e.m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain, Limit: 3,
		After: &sa.AuditCursor{TenantID: "acme", Seq: 5}})
	require.NoError(t, err)
	require.Contains(t, out.String(), `"prev_hash"`)
	rep, err := sa.VerifyJSONL(bytes.NewReader(out.Bytes()))
	require.ErrorIs(t, err, sa.ErrTampered)
	require.Equal(t, sa.BreakGap, rep.Break.Kind, "%v", rep.Break)
	require.EqualValues(t, 4, rep.Break.Seq)
	sixth := e.events()[5]
	require.EqualValues(t, 6, sixth.Seq)
	require.Equal(t, sixth.ID, rep.Break.EventID)
}

// TestReview111CopiedPurgeDoesNotVouchForACheckpoint: the attack
// AttrPurgeCopy's doc describes. A copy's chain equals the purged log's up
// to that log's checkpoint; someone deletes the copy's events up to it and
// sets the copy's checkpoint there, behind its back. The copied
// audit.purged event records exactly that checkpoint, but it is a copy:
// VerifyAudit reports a BreakCheckpoint.
// Kills: audit_verify.go:593 `!r.copy && !cs.notOwn(r)` -> `!cs.notOwn(r)`
// (a copy taken as the chain's own purge; the deletion verifies).
func TestReview111CopiedPurgeDoesNotVouchForACheckpoint(t *testing.T) {
	evs := chainOf(10)
	cp := r111Link(evs[3])
	p := r111Purged(evs[9], cp, true)
	l := &r111Chain{evs: append(append([]sa.Event{}, evs[4:]...), p), st: sa.AuditChainState{Checkpoint: cp, Head: r111Link(p)}}
	r111RequireBreak(t, l, sa.BreakCheckpoint, 5, evs[4].ID, "a copy of another log's purge vouches for nothing")
}

// TestReview111TruncatedEndIsAGap: events deleted from the end of a chain
// whose head the store still records are a BreakGap at the first missing
// one ("detects events deleted from the end of the chain (unless the
// store's head was moved back with them)").
// Kills: audit_verify.go:752 `if last < startHead.Seq {` -> `if false {`
// (finish's later head check has no case for an end short of the head).
func TestReview111TruncatedEndIsAGap(t *testing.T) {
	evs := chainOf(10)
	l := &r111Chain{evs: evs[:8], st: sa.AuditChainState{Head: r111Link(evs[9])}}
	rep, brk := r111Verify(t, l)
	require.NotNil(t, brk, "events 9 and 10 were deleted")
	require.Equal(t, sa.BreakGap, brk.Kind, "%v", brk)
	require.EqualValues(t, 9, brk.Seq)
	require.Equal(t, uuid.Nil, brk.EventID)
	require.EqualValues(t, 8, rep.Chains["acme"].Head.Seq)
}

// TestReview111ChangedHeadEventIsAHashMismatch: the chain's last event,
// changed after it was recorded while the store's head keeps its hash, is
// a BreakHashMismatch ("changed after it was recorded"), not an event
// beyond the head (BreakForged).
// Kills: audit_verify.go:735 `case ok && n > head.Seq:` -> `n >= head.Seq`.
func TestReview111ChangedHeadEventIsAHashMismatch(t *testing.T) {
	evs := chainOf(5)
	evs[4].Reason = "changed"
	l := &r111Chain{evs: evs, st: sa.AuditChainState{Head: r111Link(evs[4])}}
	r111RequireBreak(t, l, sa.BreakHashMismatch, 5, evs[4].ID, "")
}

// TestReview111ChangedCheckpointHashIsACheckpointBreak: the store's
// checkpoint hash changed behind its back (its Seq kept) makes the first
// remaining event fail its link; since that event links to the checkpoint
// the chain's own audit.purged event records, the checkpoint changed, and
// BreakCheckpoint's doc names this case ("or its hash changed").
// Kills: audit_verify.go:673 classify's checkpoint case
// `n == cp.Seq+1 && cp.Seq > 0 && v.purged != nil` -> `false` (reported as
// the event's BreakHashMismatch).
func TestReview111ChangedCheckpointHashIsACheckpointBreak(t *testing.T) {
	l := r111Purge(10, 4)
	l.st.Checkpoint.Hash = bytes.Repeat([]byte{0xab}, 32)
	r111RequireBreak(t, l, sa.BreakCheckpoint, 5, l.evs[0].ID, "")
}

// TestReview111EventsBeyondTheHeadAreForged: events appended behind the
// store's back with correctly computed hashes, the store's head left
// where it was, are BreakForged at the first one past the head ("or
// appended behind the store's back").
// Kills: audit_verify.go:764 finish's `case last > head.Seq:` disabled.
func TestReview111EventsBeyondTheHeadAreForged(t *testing.T) {
	evs := chainOf(10)
	l := &r111Chain{evs: evs, st: sa.AuditChainState{Head: r111Link(evs[7])}}
	r111RequireBreak(t, l, sa.BreakForged, 9, evs[8].ID, "events 9 and 10 lie beyond the head")
}

// TestReview111ExportLineAtSeqZeroIsForged: an export's first line of a
// tenant without prev_hash (an export in time order) and with sequence
// number 0 is checked against the start of the chain ("a chain starts at
// 1": BreakForged), not taken as an anchor that vouches for itself.
// Kills: audit_verify.go:529 `case e.Seq <= 1:` -> `case e.Seq == 1:`.
func TestReview111ExportLineAtSeqZeroIsForged(t *testing.T) {
	f := sa.Event{ID: uuid.New(), Time: storetestEpoch.Truncate(time.Microsecond), Type: sa.EventSupportRequest,
		TenantID: "acme", Actor: support, Reason: "inserted", Seq: 0}
	f.Hash = f.ChainHash(nil)
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(&sliceLog{evs: []sa.Event{f}}))
	require.NoError(t, err)
	var out bytes.Buffer
	_, err = m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme"}) // time order: no prev_hash
	require.NoError(t, err)
	require.NotContains(t, out.String(), "prev_hash")
	rep, err := sa.VerifyJSONL(bytes.NewReader(out.Bytes()))
	require.ErrorIs(t, err, sa.ErrTampered)
	require.Equal(t, sa.BreakForged, rep.Break.Kind, "%v", rep.Break)
	require.EqualValues(t, 0, rep.Break.Seq)
	require.Equal(t, f.ID, rep.Break.EventID)
}

// TestReview111ExportDuringPurgeOfOneUnwrittenEvent: a purge between two
// pages of an export that deletes exactly one event the export had not
// written yet (the checkpoint is that event) still fails the export with
// ErrConflict, as ExportAudit's doc promises for any such purge.
// Kills: audit_export.go:226 `st.Checkpoint.Seq >= at` -> `>`.
func TestReview111ExportDuringPurgeOfOneUnwrittenEvent(t *testing.T) {
	st, base, clock, purger := r111Filled(t, 1500)
	log := &review88PurgingLog{Store: st, purge: func() {
		res, err := purger.PurgeAudit(ctx, "acme", base.Add(1001*time.Second+time.Millisecond))
		require.NoError(t, err)
		require.EqualValues(t, 1001, res.Checkpoint.Seq)
	}}
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditLog(log))
	require.NoError(t, err)
	var out bytes.Buffer
	_, err = m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.ErrorIs(t, err, sa.ErrConflict, "event 1001 was deleted before it was written")
}

// TestReview111ChainOrderExportLineAtSeqZeroIsForged: the same line at
// sequence number 0 in an export in chain order (with prev_hash, empty
// for it) is forged too: a chain starts at 1, whatever the line says
// came before it. VerifyJSONL started the tenant's chain at seq -1 from
// that prev_hash and reported the line verified.
func TestReview111ChainOrderExportLineAtSeqZeroIsForged(t *testing.T) {
	f := sa.Event{ID: uuid.New(), Time: storetestEpoch.Truncate(time.Microsecond), Type: sa.EventSupportRequest,
		TenantID: "acme", Actor: support, Reason: "inserted", Seq: 0}
	f.Hash = f.ChainHash(nil)
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(&sliceLog{evs: []sa.Event{f}}))
	require.NoError(t, err)
	var out bytes.Buffer
	_, err = m.ExportAudit(ctx, &out, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Contains(t, out.String(), `"prev_hash":""`)
	rep, err := sa.VerifyJSONL(bytes.NewReader(out.Bytes()))
	require.ErrorIs(t, err, sa.ErrTampered)
	require.NotNil(t, rep.Break)
	require.Equal(t, sa.BreakForged, rep.Break.Kind, "%v", rep.Break)
	require.EqualValues(t, 0, rep.Break.Seq)
	require.Equal(t, f.ID, rep.Break.EventID)
}
