package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// AuditTamperer is implemented by a test's store (usually a test-only
// wrapper around the real one) that can change stored audit events behind
// the store's back, as someone with write access to the database would:
// plain UPDATE, DELETE and INSERT statements that leave the chain's head
// alone. The tamper cases run only for such stores.
type AuditTamperer interface {
	// TamperReason overwrites the Reason of the tenant's event seq.
	TamperReason(ctx context.Context, tenantID string, seq int64, reason string) error
	// TamperDelete deletes the tenant's event seq.
	TamperDelete(ctx context.Context, tenantID string, seq int64) error
	// TamperSeq changes the Seq of the tenant's event seq to newSeq,
	// which no event of the tenant has.
	TamperSeq(ctx context.Context, tenantID string, seq, newSeq int64) error
	// TamperInsert stores e as given, Seq and Hash included.
	TamperInsert(ctx context.Context, e sa.Event) error
}

// CheckpointTamperer is implemented by a test's store that can also set a
// tenant's purge checkpoint behind the store's back (an UPDATE of the
// row that keeps it). The cases that move the checkpoint run only for
// such stores.
type CheckpointTamperer interface {
	// TamperCheckpoint sets the tenant's purge checkpoint to cp.
	TamperCheckpoint(ctx context.Context, tenantID string, cp sa.ChainLink) error
}

// chainCases are the conformance cases of the hash chain: verification,
// tampering, retention and export.
var chainCases = []testCase{
	{"AuditConcurrentWritersOneChain", testAuditConcurrentWriters},
	{"AuditVerifyIntact", testAuditVerifyIntact},
	{"AuditTamperDetected", testAuditTamper},
	{"AuditPurgeKeepsChainVerifiable", testAuditPurge},
	{"AuditPurgeFailsClosed", testAuditPurgeFailsClosed},
	{"AuditPurgeZeroBeforeDeletesNothing", testAuditPurgeZeroBefore},
	{"AuditPurgeOfACopyVerifies", testAuditPurgeOfACopy},
	{"AuditCheckpointMovedBack", testAuditCheckpointMovedBack},
	{"AuditRecordRefusesZeroTime", testAuditRecordRefusesZeroTime},
	{"AuditRecordKeepsMicroseconds", testAuditRecordKeepsMicroseconds},
	{"AuditExportRoundTrip", testAuditExportRoundTrip},
	{"AuditFarTimesNeverBreakChain", testAuditFarTimes},
	{"AuditBoundsAfterLastTime", testAuditBoundsAfterLastTime},
	{"AuditCursorsOutsideStoredTimes", testAuditCursorsOutsideStoredTimes},
}

// testAuditFarTimes: an event whose Time lies outside what a store keeps
// exactly (before year 1000, after year 9999) is either refused with
// ErrInvalidInput, leaving the chain as it was, or kept exactly: never
// stored changed, which would make VerifyAudit report the genuine event as
// tampered.
func testAuditFarTimes(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	a := h.auditor()
	h.fill("acme", 2)
	for _, at := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(999, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		err := a.Record(h.ctx, sa.Event{ID: uuid.New(), Time: at, Type: sa.EventSupportRequest, TenantID: "acme", Actor: Support})
		if err != nil {
			require.ErrorIs(t, err, sa.ErrInvalidInput, "at %s", at)
		}
		h.verify("acme")
	}
}

func init() { auditCases = append(auditCases, chainCases...) }

func (h *harness) verify(tenant string) sa.VerifyReport {
	h.t.Helper()
	rep, err := h.m.VerifyAudit(h.ctx, tenant)
	require.NoError(h.t, err)
	require.True(h.t, rep.OK())
	return rep
}

// fill records n support.request events in tenant, a millisecond apart.
func (h *harness) fill(tenant string, n int) []sa.Event {
	h.t.Helper()
	out := make([]sa.Event, n)
	for i := range out {
		out[i] = h.record(sa.Event{TenantID: tenant, Reason: fmt.Sprint("request ", i+1),
			Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: fmt.Sprint("/p/", i)}})
		h.clock.Advance(time.Millisecond)
	}
	return out
}

// testAuditConcurrentWriters: 8 writers (two Managers, as two replicas)
// append to one tenant at once; the chain never forks.
func testAuditConcurrentWriters(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	m2, err := sa.NewManager(h.store, sa.WithNow(h.clock.Now))
	require.NoError(t, err)
	const writers, each = 8, 12
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		m := h.m
		if w%2 == 1 {
			m = m2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var err error
				if i%2 == 0 {
					_, err = m.Grant(h.ctx, sa.GrantInput{TenantID: "acme", By: Customer, Reason: fmt.Sprint(w, "/", i)})
				} else {
					err = h.store.(sa.Auditor).Record(h.ctx, sa.Event{ID: uuid.New(), Time: h.clock.Now().UTC().Truncate(time.Microsecond),
						Type: sa.EventSupportRequest, TenantID: "acme", Actor: Support})
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Len(t, evs, writers*each)
	var prev []byte
	for i, e := range evs {
		require.EqualValues(t, i+1, e.Seq, "one event per sequence number")
		require.Equal(t, e.ChainHash(prev), e.Hash, "links to its predecessor at %d", e.Seq)
		prev = e.Hash
	}
	rep := h.verify("acme")
	require.EqualValues(t, writers*each, rep.Events)
	require.Equal(t, sa.ChainLink{Seq: writers * each, Hash: prev}, rep.Chains["acme"].Head)
	if cr, ok := h.store.(sa.AuditChainReader); ok {
		st, err := cr.AuditChain(h.ctx, "acme")
		require.NoError(t, err)
		require.Equal(t, rep.Chains["acme"].Head, st.Head)
	}
}

func testAuditVerifyIntact(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	h.auditLog()
	// More than one verification batch (1000 events).
	evs := h.fill("acme", 1030)
	h.fill("globex", 3)
	rep := h.verify("acme")
	require.EqualValues(t, 1030, rep.Events)
	require.Len(t, rep.Chains, 1)
	require.Equal(t, sa.ChainRange{Head: sa.ChainLink{Seq: 1030}}, sa.ChainRange{Head: sa.ChainLink{Seq: rep.Chains["acme"].Head.Seq}})
	last, err := h.auditLog().Events(h.ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain, After: &sa.AuditCursor{TenantID: "acme", Seq: 1029}})
	require.NoError(t, err)
	require.Len(t, last, 1)
	require.Equal(t, evs[1029].ID, last[0].ID)
	require.Equal(t, last[0].Hash, rep.Chains["acme"].Head.Hash)

	empty := h.verify("initech")
	require.Zero(t, empty.Events)
	_, err = h.m.VerifyAudit(h.ctx, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = h.m.VerifyAudit(h.ctx, "bad\x00tenant")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// breakOf verifies tenant and returns the reported break.
func (h *harness) breakOf(tenant string) *sa.ChainBreak {
	h.t.Helper()
	rep, err := h.m.VerifyAudit(h.ctx, tenant)
	require.ErrorIs(h.t, err, sa.ErrTampered)
	var brk *sa.ChainBreak
	require.True(h.t, errors.As(err, &brk))
	require.Equal(h.t, rep.Break, brk)
	require.Equal(h.t, tenant, brk.TenantID)
	return brk
}

func testAuditTamper(t *testing.T, ns NewStore) {
	setup := func(t *testing.T) (*harness, AuditTamperer, []sa.Event) {
		h := newHarness(t, ns)
		h.auditLog()
		tm, ok := h.store.(AuditTamperer)
		if !ok {
			t.Skip("store does not implement storetest.AuditTamperer")
		}
		evs := h.fill("acme", 12)
		h.fill("globex", 4)
		return h, tm, evs
	}
	_, hasHead := ns(t).(sa.AuditChainReader)
	type want struct {
		kind sa.BreakKind
		seq  int64
		id   func(evs []sa.Event) uuid.UUID
	}
	at := func(seq int) func([]sa.Event) uuid.UUID {
		return func(evs []sa.Event) uuid.UUID { return evs[seq-1].ID }
	}
	none := func([]sa.Event) uuid.UUID { return uuid.Nil }
	cases := []struct {
		name     string
		needHead bool
		tamper   func(h *harness, tm AuditTamperer, evs []sa.Event) error
		want     want
	}{
		{"UpdateReason", false, func(h *harness, tm AuditTamperer, _ []sa.Event) error {
			return tm.TamperReason(h.ctx, "acme", 5, "nothing to see")
		}, want{sa.BreakHashMismatch, 5, at(5)}},
		{"UpdateReasonOfLast", true, func(h *harness, tm AuditTamperer, _ []sa.Event) error {
			return tm.TamperReason(h.ctx, "acme", 12, "nothing to see")
		}, want{sa.BreakHashMismatch, 12, at(12)}},
		{"DeleteRow", false, func(h *harness, tm AuditTamperer, _ []sa.Event) error {
			return tm.TamperDelete(h.ctx, "acme", 5)
		}, want{sa.BreakGap, 5, at(6)}},
		{"DeleteFirstRow", false, func(h *harness, tm AuditTamperer, _ []sa.Event) error {
			return tm.TamperDelete(h.ctx, "acme", 1)
		}, want{sa.BreakGap, 1, at(2)}},
		{"DeleteLastRow", true, func(h *harness, tm AuditTamperer, _ []sa.Event) error {
			return tm.TamperDelete(h.ctx, "acme", 12)
		}, want{sa.BreakGap, 12, none}},
		{"SwapRows", false, func(h *harness, tm AuditTamperer, _ []sa.Event) error {
			return swap(h.ctx, tm, 4, 8)
		}, want{sa.BreakReorder, 4, at(8)}},
		{"SwapAdjacentRows", false, func(h *harness, tm AuditTamperer, _ []sa.Event) error {
			return swap(h.ctx, tm, 6, 7)
		}, want{sa.BreakReorder, 6, at(7)}},
		{"InsertForgedRow", false, func(h *harness, tm AuditTamperer, evs []sa.Event) error {
			// Shift the tail up by one, then insert the forgery in the gap.
			for seq := int64(12); seq >= 7; seq-- {
				if err := tm.TamperSeq(h.ctx, "acme", seq, seq+1); err != nil {
					return err
				}
			}
			f := forged(evs[5], 7)
			f.Hash = bytes.Repeat([]byte{0xab}, 32)
			return tm.TamperInsert(h.ctx, f)
		}, want{sa.BreakForged, 7, nil}},
		{"InsertForgedRowAtEnd", true, func(h *harness, tm AuditTamperer, evs []sa.Event) error {
			// Whoever knows the algorithm can compute a valid hash; the
			// chain's head still gives the forgery away.
			f := forged(evs[11], 13)
			f.Hash = f.ChainHash(evs[11].Hash)
			return tm.TamperInsert(h.ctx, f)
		}, want{sa.BreakForged, 13, nil}},
		{"InsertForgedRowAtEndBadHash", false, func(h *harness, tm AuditTamperer, evs []sa.Event) error {
			f := forged(evs[11], 13)
			f.Hash = bytes.Repeat([]byte{1}, 32)
			return tm.TamperInsert(h.ctx, f)
		}, want{"", 13, nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needHead && !hasHead {
				t.Skip("store does not implement AuditChainReader")
			}
			h, tm, _ := setup(t)
			stored, err := h.auditLog().Events(h.ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
			require.NoError(t, err)
			require.NoError(t, c.tamper(h, tm, stored))
			brk := h.breakOf("acme")
			t.Logf("%v", brk)
			if c.want.kind != "" {
				require.Equal(t, c.want.kind, brk.Kind)
			} else {
				require.Contains(t, []sa.BreakKind{sa.BreakForged, sa.BreakHashMismatch}, brk.Kind)
			}
			require.Equal(t, c.want.seq, brk.Seq)
			if c.want.id != nil {
				require.Equal(t, c.want.id(stored), brk.EventID)
			} else {
				require.NotEqual(t, uuid.Nil, brk.EventID)
				for _, e := range stored {
					require.NotEqual(t, e.ID, brk.EventID, "the forged event is named")
				}
			}
			require.NotEmpty(t, brk.Detail)
			h.verify("globex") // other chains are unaffected
		})
	}
}

// swap exchanges the places of the events a and b of tenant acme.
func swap(ctx context.Context, tm AuditTamperer, a, b int64) error {
	const free = 1_000_000
	if err := tm.TamperSeq(ctx, "acme", a, free); err != nil {
		return err
	}
	if err := tm.TamperSeq(ctx, "acme", b, a); err != nil {
		return err
	}
	return tm.TamperSeq(ctx, "acme", free, b)
}

// forged is a plausible event at seq, copied from e.
func forged(e sa.Event, seq int64) sa.Event {
	f := e
	f.ID = uuid.New()
	f.Seq = seq
	f.Reason = "forged"
	f.Attrs = map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/innocent"}
	return f
}

func testAuditPurge(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	if _, ok := h.store.(sa.AuditPurger); !ok {
		t.Skip("store does not implement AuditPurger")
	}
	base := Epoch.Truncate(time.Microsecond)
	var evs []sa.Event
	for i := 0; i < 10; i++ {
		evs = append(evs, h.record(sa.Event{Time: base.Add(time.Duration(i) * time.Minute), Reason: fmt.Sprint(i)}))
	}
	// A late event with an early time (a lagging replica) ends the purge.
	evs = append(evs, h.record(sa.Event{Time: base.Add(30 * time.Second)}))
	other := h.fill("globex", 3)
	stored, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	h.clock.Set(base.Add(time.Hour))

	res, err := h.m.PurgeAudit(h.ctx, "acme", base.Add(4*time.Minute+30*time.Second))
	require.NoError(t, err)
	require.EqualValues(t, 5, res.Deleted)
	require.Equal(t, sa.ChainLink{Seq: 5, Hash: stored[4].Hash}, res.Checkpoint)
	require.Equal(t, sa.ChainLink{}, res.Previous)

	left, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Len(t, left, 7, "seq 6 to 11, and the purge event")
	require.Equal(t, evs[5].ID, left[0].ID)
	p := left[6]
	require.Equal(t, sa.EventAuditPurged, p.Type)
	require.EqualValues(t, 12, p.Seq)
	require.Equal(t, sa.SystemActor, p.Actor)
	require.Equal(t, "5", p.Attrs[sa.AttrPurgeDeleted])
	require.Equal(t, "5", p.Attrs[sa.AttrCheckpointSeq])
	require.Equal(t, fmt.Sprintf("%x", stored[4].Hash), p.Attrs[sa.AttrCheckpointHash])
	require.Equal(t, "2026-03-14T15:13:56.535897Z", p.Attrs[sa.AttrPurgeBefore])
	require.True(t, p.Time.Equal(h.clock.Now().Truncate(time.Microsecond)))

	rep := h.verify("acme")
	require.Equal(t, res.Checkpoint, rep.Chains["acme"].From)
	require.EqualValues(t, 7, rep.Events)
	if cr, ok := h.store.(sa.AuditChainReader); ok {
		st, err := cr.AuditChain(h.ctx, "acme")
		require.NoError(t, err)
		require.Equal(t, res.Checkpoint, st.Checkpoint)
		require.Equal(t, sa.ChainLink{Seq: 12, Hash: p.Hash}, st.Head)
	}

	// Nothing old enough: nothing deleted, nothing recorded.
	again, err := h.m.PurgeAudit(h.ctx, "acme", base.Add(4*time.Minute+30*time.Second))
	require.NoError(t, err)
	require.Zero(t, again.Deleted)
	require.Equal(t, res.Checkpoint, again.Previous)
	n, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, n, 7)

	// Tampering with what remains is still detected.
	if tm, ok := h.store.(AuditTamperer); ok {
		require.NoError(t, tm.TamperReason(h.ctx, "acme", 8, "changed"))
		brk := h.breakOf("acme")
		require.Equal(t, sa.BreakHashMismatch, brk.Kind)
		require.EqualValues(t, 8, brk.Seq)
		require.NoError(t, tm.TamperReason(h.ctx, "acme", 8, stored[7].Reason))
		h.verify("acme")
	}

	// Purge everything: the purge event starts the rest of the chain.
	all, err := h.m.PurgeAudit(h.ctx, "acme", base.Add(2*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 7, all.Deleted)
	require.EqualValues(t, 12, all.Checkpoint.Seq)
	require.Equal(t, res.Checkpoint, all.Previous)
	rep = h.verify("acme")
	require.EqualValues(t, 1, rep.Events)
	require.EqualValues(t, 13, rep.Chains["acme"].Head.Seq)

	// Other tenants are untouched.
	g, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "globex"})
	require.NoError(t, err)
	require.Equal(t, grantEventIDs(other), grantEventIDs(g))

	_, err = h.m.PurgeAudit(h.ctx, "acme", time.Time{})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = h.m.PurgeAudit(h.ctx, "", base)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

type failingAuditor struct{}

// errLogDown is failingAuditor's error.
var errLogDown = errors.New("log is down")

func (failingAuditor) Record(context.Context, sa.Event) error { return errLogDown }

// testAuditPurgeFailsClosed: when another auditor cannot record the purge
// event, nothing is purged.
func testAuditPurgeFailsClosed(t *testing.T, ns NewStore) {
	s := ns(t)
	if _, ok := s.(sa.AuditPurger); !ok {
		t.Skip("store does not implement AuditPurger")
	}
	h := newHarness(t, func(*testing.T) sa.Store { return s }, sa.WithAuditor(sa.MultiAuditor(s.(sa.Auditor), failingAuditor{})))
	h.fill("acme", 4)
	h.clock.Advance(time.Hour)
	_, err := h.m.PurgeAudit(h.ctx, "acme", h.clock.Now())
	require.ErrorIs(t, err, errLogDown)
	evs, err := h.auditLog().Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, evs, 4)
	if cr, ok := s.(sa.AuditChainReader); ok {
		st, err := cr.AuditChain(h.ctx, "acme")
		require.NoError(t, err)
		require.Zero(t, st.Checkpoint.Seq)
	}
	h.verify("acme")
}

func testAuditExportRoundTrip(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	g := h.grant(sa.GrantInput{Reason: "ticket <42> & more", Duration: time.Hour})
	_, err := h.m.Revoke(h.ctx, g.ID, Customer, "done")
	require.NoError(t, err)
	h.record(sa.Event{Type: sa.EventSupportChange, Actor: sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example", Name: "Ève “E” O'Neil"},
		Reason: "línea 1\nline 2\t'; DROP TABLE x; --", Attrs: map[string]string{sa.AttrWhat: "settings.theme", "empty": ""},
		Before: []byte(`{"theme":"dark","n":1.50}`), After: []byte(`{"n":2, "theme":"light"}`)})
	h.record(sa.Event{Before: []byte("not json"), After: []byte(`"<b>"`)})
	h.fill("globex", 3)
	if _, ok := h.store.(sa.AuditPurger); ok {
		_, err := h.m.PurgeAudit(h.ctx, "globex", h.clock.Now().Add(-2*time.Millisecond))
		require.NoError(t, err)
	}

	var buf bytes.Buffer
	n, err := h.m.ExportAudit(h.ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, n)
	for _, line := range lines {
		require.True(t, strings.HasPrefix(line, `{"v":1,"tenant_id":`), line)
	}

	rep, err := sa.VerifyJSONL(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.EqualValues(t, n, rep.Events)
	for _, tenant := range []string{"acme", "globex"} {
		live := h.verify(tenant)
		require.Equal(t, live.Chains[tenant], rep.Chains[tenant], "the export verifies to the same range as the store (%s)", tenant)
	}

	want, err := l.Events(h.ctx, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	var got []sa.Event
	require.NoError(t, sa.ReadJSONL(bytes.NewReader(buf.Bytes()), func(e sa.Event) error {
		got = append(got, e)
		return nil
	}))
	require.Equal(t, normalise(want), normalise(got), "the export round-trips every field")

	// A changed line is found and located.
	i := strings.Index(buf.String(), `"reason":"done"`)
	require.Positive(t, i)
	bad := buf.String()[:i] + `"reason":"oops"` + buf.String()[i+len(`"reason":"done"`):]
	_, err = sa.VerifyJSONL(strings.NewReader(bad))
	var brk *sa.ChainBreak
	require.ErrorAs(t, err, &brk)
	require.Equal(t, sa.BreakHashMismatch, brk.Kind)
	require.Equal(t, "acme", brk.TenantID)
	require.EqualValues(t, 2, brk.Seq)
	// A dropped line is a gap.
	dropped := strings.Join(append(slices.Clone(lines[:1]), lines[2:]...), "\n")
	_, err = sa.VerifyJSONL(strings.NewReader(dropped))
	require.ErrorAs(t, err, &brk)
	require.Equal(t, sa.BreakGap, brk.Kind)
	require.EqualValues(t, 2, brk.Seq)

	// A time-ordered, limited export streams too.
	buf.Reset()
	n, err = h.m.ExportAudit(h.ctx, &buf, sa.AuditFilter{Limit: 3})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, 3, strings.Count(buf.String(), "\n"))
}

// normalise makes empty maps and values nil for comparison.
func normalise(evs []sa.Event) []sa.Event {
	out := make([]sa.Event, len(evs))
	for i, e := range evs {
		if len(e.Attrs) == 0 {
			e.Attrs = nil
		}
		if len(e.Before) == 0 {
			e.Before = nil
		}
		if len(e.After) == 0 {
			e.After = nil
		}
		out[i] = e
	}
	return out
}
