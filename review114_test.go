package supportaccess_test

// Review 114: mutation testing of the root package's audit code
// (audit_purge.go, audit_slog.go, audit_query.go, audit.go,
// audit_export.go). Each test names the mutant(s) it kills.

import (
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// TestReview114PurgeEventRecordsItsAttributes: the audit.purged event is
// the record of a retention purge, and its doc (EventAuditPurged, the
// Attr* constants) promises the cut-off, the count deleted, the checkpoint
// and the previous one. VerifyAudit only reads the checkpoint, so nothing
// else checked the other attributes.
//
// Kills: audit_purge.go AttrPurgeBefore not set; before recorded without
// canon.Ceil; AttrPurgeDeleted off by one; AttrPreviousCheckpoint taken
// from the new checkpoint; the event dated before instead of now; the
// reason dropped; the copy marker on the store's own event (Attrs not
// cloned) or missing on the other auditors' copy.
func TestReview114PurgeEventRecordsItsAttributes(t *testing.T) {
	st := memstore.New()
	rec := &recordingAuditor{}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, rec)))
	for range 3 {
		e.grant(sa.GrantInput{})
		e.clock.Advance(time.Second)
	}
	evs := e.events()
	require.Len(t, evs, 3)
	e.clock.Advance(time.Hour)

	// 1 ns past the second event: it and the first are older than before.
	before := evs[1].Time.Add(time.Nanosecond)
	res, err := e.m.PurgeAudit(ctx, "acme", before)
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Deleted)
	require.EqualValues(t, 2, res.Checkpoint.Seq)
	require.Equal(t, evs[1].Hash, res.Checkpoint.Hash)

	purged := e.events(sa.EventAuditPurged)
	require.Len(t, purged, 1)
	p := purged[0]
	require.Equal(t, "acme", p.TenantID)
	require.Equal(t, sa.SystemActor, p.Actor)
	require.Equal(t, "retention", p.Reason)
	require.Equal(t, uuid.Nil, p.GrantID)
	require.True(t, p.Time.Equal(e.now()), "dated when the purge ran, not at before: %s", p.Time)
	require.Equal(t, map[string]string{
		// rounded up to the microsecond: the bound for whole microseconds
		sa.AttrPurgeBefore:        evs[1].Time.Add(time.Microsecond).UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		sa.AttrPurgeDeleted:       "2",
		sa.AttrCheckpointSeq:      "2",
		sa.AttrCheckpointHash:     hex.EncodeToString(evs[1].Hash),
		sa.AttrPreviousCheckpoint: "0",
	}, p.Attrs, "the store's own event is not marked as a copy")

	// The other auditor got the same event, marked as a copy.
	var copied *sa.Event
	for i := range rec.events {
		if rec.events[i].Type == sa.EventAuditPurged {
			copied = &rec.events[i]
		}
	}
	require.NotNil(t, copied)
	require.Equal(t, p.ID, copied.ID)
	want := map[string]string{sa.AttrPurgeCopy: "true"}
	for k, v := range p.Attrs {
		want[k] = v
	}
	require.Equal(t, want, copied.Attrs)

	// A second purge records the first one's checkpoint as the previous.
	e.clock.Advance(time.Minute)
	res, err = e.m.PurgeAudit(ctx, "acme", e.clock.Now())
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Previous.Seq)
	purged = e.events(sa.EventAuditPurged)
	require.Len(t, purged, 1)
	require.Equal(t, "2", purged[0].Attrs[sa.AttrPreviousCheckpoint])
	require.Equal(t, strconv.FormatInt(res.Deleted, 10), purged[0].Attrs[sa.AttrPurgeDeleted])
	require.Equal(t, strconv.FormatInt(res.Checkpoint.Seq, 10), purged[0].Attrs[sa.AttrCheckpointSeq])
	_, err = e.m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
}

// TestReview114PurgeRefusesMalformedArguments: PurgeAudit's doc promises
// ErrInvalidInput for a zero before and a malformed tenantID, and nothing
// deleted or recorded. A zero before deletes nothing on the bundled
// stores anyway, so only the error tells.
//
// Kills: audit_purge.go `if before.IsZero()` → `if false`; the
// validateTenantRef check dropped.
func TestReview114PurgeRefusesMalformedArguments(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{})
	e.clock.Advance(time.Hour)
	snap := e.snapshot()
	_, err := e.m.PurgeAudit(ctx, "acme", time.Time{})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	for _, bad := range []string{"", "acme\n", strings.Repeat("a", sa.MaxTenantIDLen+1)} {
		_, err = e.m.PurgeAudit(ctx, bad, e.clock.Now())
		require.ErrorIs(t, err, sa.ErrInvalidInput, "tenant %q", bad)
	}
	require.Equal(t, snap, e.snapshot(), "a refused purge deletes and records nothing")
}

// TestReview114PurgeFailsClosedOnAuditorError: "an auditor's ... error
// (nothing is deleted then)". Kills: audit_purge.go the other auditor's
// Record error ignored.
func TestReview114PurgeFailsClosedOnAuditorError(t *testing.T) {
	st := memstore.New()
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, sa.BestEffortAuditor(memstore.New(), nil))))
	e.grant(sa.GrantInput{})
	e.clock.Advance(time.Hour)

	failing, err := sa.NewManager(st, sa.WithNow(e.clock.Now), sa.WithAuditor(sa.MultiAuditor(st, failingAuditor{})))
	require.NoError(t, err)
	snap := e.snapshot()
	_, err = failing.PurgeAudit(ctx, "acme", e.clock.Now())
	require.ErrorIs(t, err, errBoom)
	require.Equal(t, snap, e.snapshot(), "nothing deleted when an auditor refuses the purge event")
}

// TestReview114AuditFilterMatchBounds: "Since is inclusive, Until
// exclusive", and AuditFilter.Match is what every backend filters with.
// memstore's time-ordered scan stops at Until on its own, which hid a
// wrong Until in Match; chain order and Match itself do not.
//
// Kills: audit.go Match `!e.Time.Before(f.Since)` → `e.Time.After(f.Since)`
// and `e.Time.Before(f.Until)` → `!e.Time.After(f.Until)`; the TenantID
// and SessionID clauses → true; `compareCursor(...) > 0` → `>= 0`.
func TestReview114AuditFilterMatchBounds(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	ev := sa.Event{Time: at, TenantID: "acme", Seq: 4, Attrs: map[string]string{sa.AttrSessionID: "s-1"}}
	for _, c := range []struct {
		name string
		f    sa.AuditFilter
		want bool
	}{
		{"since equal", sa.AuditFilter{Since: at}, true},
		{"since after", sa.AuditFilter{Since: at.Add(time.Nanosecond)}, false},
		{"until equal", sa.AuditFilter{Until: at}, false},
		{"until after", sa.AuditFilter{Until: at.Add(time.Nanosecond)}, true},
		{"other tenant", sa.AuditFilter{TenantID: "acme2"}, false},
		{"other session", sa.AuditFilter{SessionID: "s-2"}, false},
		{"same session", sa.AuditFilter{SessionID: "s-1"}, true},
		{"after itself", sa.AuditFilter{After: &sa.AuditCursor{Time: at, TenantID: "acme", Seq: 4}}, false},
		{"after itself, chain", sa.AuditFilter{Order: sa.AuditByChain, After: &sa.AuditCursor{TenantID: "acme", Seq: 4}}, false},
		{"after the one before", sa.AuditFilter{Order: sa.AuditByChain, After: &sa.AuditCursor{TenantID: "acme", Seq: 3}}, true},
	} {
		require.Equal(t, c.want, c.f.Match(&ev), c.name)
	}

	// The same through Manager.Events, in chain order (no early stop).
	e := newEnv(t)
	g := e.grant(sa.GrantInput{})
	e.clock.Advance(time.Second)
	e.grant(sa.GrantInput{TenantID: "acme2"})
	evs := e.events()
	require.Len(t, evs, 2)
	first := evs[0]
	require.Equal(t, g.ID, first.GrantID)
	got, err := e.m.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain, Until: first.Time})
	require.NoError(t, err)
	require.Empty(t, got, "Until is exclusive")
	got, err = e.m.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain, Since: first.Time, Until: first.Time.Add(time.Microsecond)})
	require.NoError(t, err)
	require.Len(t, got, 1, "Since is inclusive")
	got, err = e.m.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain, TenantID: "acme2"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "acme2", got[0].TenantID)
}

// TestReview114EmptyTimeRangeIsNotMalformed: Validate refuses Until before
// Since; Since == Until is a well-formed empty range ([t, t)).
// Kills: audit.go `f.Until.Before(f.Since)` → `!f.Until.After(f.Since)`.
func TestReview114EmptyTimeRangeIsNotMalformed(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{})
	at := e.events()[0].Time
	f := sa.AuditFilter{Since: at, Until: at}
	require.NoError(t, f.Validate())
	got, err := e.m.Events(ctx, f)
	require.NoError(t, err)
	require.Empty(t, got)
	f.Until = at.Add(-time.Nanosecond)
	require.ErrorIs(t, f.Validate(), sa.ErrInvalidInput)
}

// TestReview114MultiAuditorAllMustSucceed: MultiAuditor "records every
// event on each of auditors in order and fails on the first failure";
// nested MultiAuditors are flattened, nil ones skipped. The Manager
// unpacks a MultiAuditor passed to WithAuditor, so its own Record was only
// exercised by hosts.
// Kills: audit.go multiAuditor.Record's error ignored; the nil check
// dropped (a nil member panics).
func TestReview114MultiAuditorAllMustSucceed(t *testing.T) {
	first, last := &recordingAuditor{}, &recordingAuditor{}
	m := sa.MultiAuditor(first, nil, sa.MultiAuditor(failingAuditor{}, nil), last)
	ev := sa.Event{ID: uuid.New(), Time: time.Now(), Type: sa.EventSupportRequest, TenantID: "acme", Actor: support}
	require.ErrorIs(t, m.Record(ctx, ev), errBoom)
	require.Len(t, first.events, 1, "the auditors before the failing one recorded")
	require.Empty(t, last.events, "none after the failing one")

	ok := sa.MultiAuditor(nil, first, sa.MultiAuditor(last))
	require.NoError(t, ok.Record(ctx, ev))
	require.Len(t, first.events, 2)
	require.Len(t, last.events, 1)
}

// TestReview114AuditPageCursorAndAfter: "ErrInvalidInput ... when both
// cursor and f.After are given": two positions, neither wins silently.
// Kills: audit_query.go `if f.After != nil` → `if false` (the cursor then
// silently replaced After).
func TestReview114AuditPageCursorAndAfter(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.grant(sa.GrantInput{})
		e.clock.Advance(time.Second)
	}
	evs, next, err := e.m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme", Limit: 1}, "")
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.NotEmpty(t, next)
	c := evs[0].Cursor()
	_, _, err = e.m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme", Limit: 1, After: &c}, next)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// TestReview114ExportTimeIsUTC: an export's time is "RFC 3339 in UTC with
// microseconds", and the slog auditor writes it the same way — also when
// the AuditLog (a host's) or the event hands over a time in another zone.
// A local-zone time would not read back (ReadJSONL accepts only the
// spelling ExportAudit writes), so the export would not verify.
// Kills: audit_export.go exportTime `t.UTC().Format` → `t.Format`; and
// prevHash `e.Seq <= 1` → `e.Seq < 1` (a log without AuditChainReader then
// gave the first line no prev_hash).
func TestReview114ExportTimeIsUTC(t *testing.T) {
	zone := time.FixedZone("CEST", 2*3600)
	at := time.Date(2026, 3, 14, 17, 9, 26, 535897932, zone)
	ev := sa.Event{ID: uuid.New(), Time: at, Type: sa.EventSupportRequest, TenantID: "acme", Actor: support, Seq: 1}
	ev.Hash = ev.ChainHash(nil)
	log := &sliceLog{evs: []sa.Event{ev}}
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(log))
	require.NoError(t, err)
	var buf strings.Builder
	n, err := m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Contains(t, buf.String(), `"time":"2026-03-14T15:09:26.535897Z"`)
	// The chain's first line carries prev_hash "" (the start of the
	// chain), also from a log that is not an AuditChainReader.
	require.Contains(t, buf.String(), `"prev_hash":""}`)
	rep, err := sa.VerifyJSONL(strings.NewReader(buf.String()))
	require.NoError(t, err)
	require.EqualValues(t, 1, rep.Events)

	var out syncBuffer
	require.NoError(t, sa.NewSlogAuditor(slog.New(slog.NewJSONHandler(&out, nil))).Record(ctx, ev))
	lines := out.lines(t)
	require.Len(t, lines, 1)
	require.Equal(t, "2026-03-14T15:09:26.535897Z", lines[0]["event"].(map[string]any)["time"])
}

// TestReview114ExportLimitAtPageBoundary: "f.Limit caps the number of
// events": a cap just under a page (999) must not read, nor write, a whole
// page of 1000; a cap just over one ends on the second page's first event.
// Kills: audit_export.go `total-n < ExportPageSize` → `< ExportPageSize-1`.
func TestReview114ExportLimitAtPageBoundary(t *testing.T) {
	e := newEnv(t)
	at := e.now()
	for i := range sa.ExportPageSize + 2 {
		require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: at.Add(time.Duration(i) * time.Microsecond),
			Type: sa.EventSupportRequest, TenantID: "acme", Actor: support}))
	}
	for _, limit := range []int{sa.ExportPageSize - 1, sa.ExportPageSize, sa.ExportPageSize + 1} {
		var buf strings.Builder
		n, err := e.m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain, Limit: limit})
		require.NoError(t, err)
		require.Equal(t, limit, n)
		require.Equal(t, limit, strings.Count(buf.String(), "\n"), "limit %d", limit)
	}
}

// TestReview114ExportInvalidUTF8Reason: "an event with a string that is
// not valid UTF-8 is written with "encoding": "base64"" — each string
// field counts on its own; a Reason alone must switch the line too, else
// encoding/json writes U+FFFD for the byte and the line no longer hashes.
// Kills: audit_export.go toJSONL dropping `!utf8.ValidString(l.Reason)`.
func TestReview114ExportInvalidUTF8Reason(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventSupportRequest,
		TenantID: "acme", Actor: support, Reason: "bad \xff byte"}))
	var buf strings.Builder
	_, err := e.m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Contains(t, buf.String(), `"encoding":"base64"`)
	_, err = sa.VerifyJSONL(strings.NewReader(buf.String()))
	require.NoError(t, err)
}

// TestReview114ExportPrevHashAfterPurge: the first line of a purged chain
// carries the checkpoint's hash as prev_hash ("the checkpoint's after a
// purge"), so VerifyJSONL checks that line too instead of taking it on
// trust as an anchor.
// Kills: audit_export.go prevHash's `st.Checkpoint.Seq == e.Seq-1` → false.
func TestReview114ExportPrevHashAfterPurge(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.grant(sa.GrantInput{})
		e.clock.Advance(time.Second)
	}
	evs := e.events()
	res, err := e.m.PurgeAudit(ctx, "acme", evs[2].Time)
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Checkpoint.Seq)
	var buf strings.Builder
	_, err = e.m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	first, _, _ := strings.Cut(buf.String(), "\n")
	require.Contains(t, first, `"seq":3,`)
	require.Contains(t, first, `"prev_hash":"`+hex.EncodeToString(res.Checkpoint.Hash)+`"`)
}

// TestReview114SlogInvalidUTF8JSON: "before and after (the raw JSON, or a
// string when not valid JSON or not valid UTF-8)": json.Valid accepts
// invalid UTF-8 inside a JSON string, which must not reach the log raw.
// Kills: audit_slog.go rawAttr without the utf8.Valid check.
func TestReview114SlogInvalidUTF8JSON(t *testing.T) {
	var out syncBuffer
	ev := sa.Event{ID: uuid.New(), Time: time.Now(), Type: sa.EventSupportChange, TenantID: "acme", Actor: support,
		Before: []byte("{\"a\":\"\xff\"}"), After: []byte(`{"a":"ok"}`)}
	require.NoError(t, sa.NewSlogAuditor(slog.New(slog.NewJSONHandler(&out, nil))).Record(ctx, ev))
	require.True(t, utf8.Valid(out.b.Bytes()), "no invalid UTF-8 written raw: %q", out.b.String())
	lines := out.lines(t)
	require.Len(t, lines, 1)
	got := lines[0]["event"].(map[string]any)
	require.IsType(t, "", got["before"], "logged as a string")
	require.Equal(t, map[string]any{"a": "ok"}, got["after"], "valid JSON stays JSON")
}
