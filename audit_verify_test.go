package supportaccess_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestChainHashGolden pins the canonical encoding: a change to it would
// make every stored chain fail verification.
func TestChainHashGolden(t *testing.T) {
	e := sa.Event{ID: uuid.MustParse("0190f5b2-8c1e-7a3b-9f00-123456789abc"), Time: time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC),
		Type: sa.EventSupportChange, TenantID: "acme", GrantID: uuid.MustParse("0190f5b2-8c1e-7a3b-9f00-cba987654321"),
		Actor: sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example", Name: "Ève"}, Reason: "why\nnot",
		Attrs: map[string]string{"b": "2", "a": "1", "path": "/x"}, Before: []byte(`{"a":1}`), After: []byte(`{"a":2}`), Seq: 7}
	require.Equal(t, "7a9e2e0fdd5da05c09f7a43ceacb838f715c87901fa8e80745e9941731a98033", hex.EncodeToString(e.ChainHash([]byte("prevhash"))))
	require.Equal(t, "6fd67b3deb6f1e948c5ccc172a3a73fbe59fb625ee4b9d7a3ddeb5fea8758bfe", hex.EncodeToString(sa.Event{}.ChainHash(nil)))
	e.Hash = []byte("ignored")
	require.Equal(t, "7a9e2e0fdd5da05c09f7a43ceacb838f715c87901fa8e80745e9941731a98033", hex.EncodeToString(e.ChainHash([]byte("prevhash"))), "Hash is not hashed")
	many := e
	many.Attrs = map[string]string{}
	for i := 0; i < 40; i++ { // more keys than the stack buffer
		many.Attrs[fmt.Sprint("k", i)] = "v"
	}
	require.Len(t, many.ChainHash(nil), 32)
}

// sliceLog is an AuditLog over a slice that tests change at will; it is
// not an AuditChainReader.
type sliceLog struct{ evs []sa.Event }

func (l *sliceLog) Events(_ context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	var out []sa.Event
	for i := range l.evs {
		if f.Match(&l.evs[i]) {
			out = append(out, l.evs[i])
		}
	}
	slices.SortStableFunc(out, func(a, b sa.Event) int { return f.Compare(&a, &b) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// chainOf returns n chained events of tenant acme.
func chainOf(n int) []sa.Event {
	evs := make([]sa.Event, n)
	var prev []byte
	for i := range evs {
		e := sa.Event{ID: uuid.New(), Time: storetestEpoch.Truncate(time.Microsecond).Add(time.Duration(i) * time.Millisecond),
			Type: sa.EventSupportRequest, TenantID: "acme", Actor: support, Reason: fmt.Sprint(i + 1), Seq: int64(i + 1)}
		e.Hash = e.ChainHash(prev)
		prev = e.Hash
		evs[i] = e
	}
	return evs
}

func verifySlice(t *testing.T, evs []sa.Event) (sa.VerifyReport, *sa.ChainBreak) {
	t.Helper()
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(&sliceLog{evs: evs}))
	require.NoError(t, err)
	rep, err := m.VerifyAudit(ctx, "acme")
	if err == nil {
		return rep, nil
	}
	var brk *sa.ChainBreak
	require.ErrorAs(t, err, &brk)
	require.ErrorIs(t, err, sa.ErrTampered)
	return rep, brk
}

// TestVerifyAuditAcrossBatches breaks chains of 2,500 events at and around
// the boundaries of VerifyAudit's batches of 1,000.
func TestVerifyAuditAcrossBatches(t *testing.T) {
	base := chainOf(2500)
	rep, brk := verifySlice(t, base)
	require.Nil(t, brk)
	require.EqualValues(t, 2500, rep.Events)
	require.Equal(t, sa.ChainLink{Seq: 2500, Hash: base[2499].Hash}, rep.Chains["acme"].Head)

	for _, seq := range []int64{1, 999, 1000, 1001, 2000, 2500} {
		t.Run(fmt.Sprint("modified_", seq), func(t *testing.T) {
			evs := slices.Clone(base)
			evs[seq-1].Reason = "changed"
			_, brk := verifySlice(t, evs)
			require.NotNil(t, brk)
			require.Equal(t, sa.BreakHashMismatch, brk.Kind)
			require.Equal(t, seq, brk.Seq)
			require.Equal(t, evs[seq-1].ID, brk.EventID)
		})
	}
	for _, pair := range [][2]int64{{999, 1001}, {1000, 1001}, {10, 990}} {
		t.Run(fmt.Sprint("swapped_", pair[0], "_", pair[1]), func(t *testing.T) {
			evs := slices.Clone(base)
			evs[pair[0]-1].Seq, evs[pair[1]-1].Seq = pair[1], pair[0]
			rep, brk := verifySlice(t, evs)
			require.NotNil(t, brk)
			require.Equal(t, sa.BreakReorder, brk.Kind)
			require.Equal(t, pair[0], brk.Seq)
			require.Equal(t, evs[pair[1]-1].ID, brk.EventID, "the event that now sits at the first position")
			require.Equal(t, pair[0]-1, rep.Chains["acme"].Head.Seq, "verified up to the break")
		})
	}
	t.Run("duplicate_sequence_number", func(t *testing.T) {
		evs := slices.Clone(base[:20])
		f := evs[9]
		f.ID, f.Reason = uuid.New(), "forged"
		evs = append(evs, f)
		_, brk := verifySlice(t, evs)
		require.NotNil(t, brk)
		require.Equal(t, sa.BreakForged, brk.Kind)
		require.EqualValues(t, 10, brk.Seq)
	})
	t.Run("without_a_chain_reader_a_truncated_end_is_not_seen", func(t *testing.T) {
		rep, brk := verifySlice(t, base[:2400])
		require.Nil(t, brk, "documented: only a store that keeps the head notices")
		require.EqualValues(t, 2400, rep.Events)
	})
}

func TestVerifyAuditErrors(t *testing.T) {
	e := newEnv(t)
	_, err := e.m.VerifyAudit(ctx, "bad\x00")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.VerifyAudit(ctx, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	c, cancel := context.WithCancel(ctx)
	cancel()
	_, err = e.m.VerifyAudit(c, "acme")
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, sa.ErrTampered))

	noLog, err := sa.NewManager(plainStore{memstore.New()}, sa.WithAuditor(&recordingAuditor{}))
	require.NoError(t, err)
	_, err = noLog.VerifyAudit(ctx, "acme")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = noLog.PurgeAudit(ctx, "acme", time.Now())
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	var buf []byte
	_, err = noLog.ExportAudit(ctx, writerFunc(func(p []byte) (int, error) { buf = append(buf, p...); return len(p), nil }), sa.AuditFilter{})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

func TestPurgeAuditUnsupported(t *testing.T) {
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(&sliceLog{}))
	require.NoError(t, err)
	_, err = m.PurgeAudit(ctx, "acme", time.Now())
	require.ErrorIs(t, err, errors.ErrUnsupported)
}

// TestPurgeAuditOtherAuditors: the purge event reaches the other auditors
// too, and the store's chain once.
func TestPurgeAuditOtherAuditors(t *testing.T) {
	st := memstore.New()
	rec := &recordingAuditor{}
	clock := storetestEpoch
	m, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, rec)), sa.WithNow(func() time.Time { return clock }))
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	clock = clock.Add(time.Hour)
	res, err := m.PurgeAudit(ctx, "acme", clock)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Deleted)
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventAuditPurged}, rec.types())
	evs, err := st.Events(ctx, sa.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, sa.EventAuditPurged, evs[0].Type)
	require.Equal(t, "retention", evs[0].Reason)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
