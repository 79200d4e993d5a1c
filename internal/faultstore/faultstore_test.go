package faultstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/faultstore"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

func event() sa.Event {
	return sa.Event{ID: uuid.New(), Time: storetest.Epoch.Truncate(time.Microsecond), Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}
}

func count(t *testing.T, s *memstore.Store) int {
	t.Helper()
	evs, err := s.Events(context.Background(), sa.AuditFilter{})
	require.NoError(t, err)
	return len(evs)
}

// TestModes: what each mode does to a write, and for how many calls.
func TestModes(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		mode    faultstore.Mode
		reaches bool
		hangs   bool
	}{
		{faultstore.Pass, true, false},
		{faultstore.Fail, false, false},
		{faultstore.Hang, false, true},
		{faultstore.LostReply, true, false},
		{faultstore.LostReplyHang, true, true},
	} {
		t.Run(c.mode.String(), func(t *testing.T) {
			inner := memstore.New()
			s := faultstore.New(inner)
			s.SetN(faultstore.Record, c.mode, 1)
			cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			err := s.Record(cctx, event())
			switch {
			case c.mode == faultstore.Pass:
				require.NoError(t, err)
			case c.hangs:
				require.ErrorIs(t, err, context.DeadlineExceeded)
			default:
				require.ErrorIs(t, err, faultstore.ErrInjected)
			}
			require.Equal(t, c.reaches, c.mode.Reaches())
			require.Equal(t, c.hangs, c.mode.Hangs())
			want := 0
			if c.reaches {
				want = 1
			}
			require.Equal(t, want, count(t, inner), "the write reached the store")
			require.NoError(t, s.Record(ctx, event()), "SetN(…, 1) affects one call")
			require.Equal(t, 2, s.Calls(faultstore.Record))
			hits := 1
			if c.mode == faultstore.Pass {
				hits = 0 // Pass removes the fault
			}
			require.Equal(t, hits, s.Hits(faultstore.Record))
		})
	}
}

// TestSetClear: Set holds until Clear; other operations are untouched.
func TestSetClear(t *testing.T) {
	ctx := context.Background()
	s := faultstore.New(memstore.New())
	s.Set(faultstore.Record, faultstore.Fail)
	for i := 0; i < 3; i++ {
		require.ErrorIs(t, s.Record(ctx, event()), faultstore.ErrInjected)
	}
	_, err := s.Events(ctx, sa.AuditFilter{})
	require.NoError(t, err)
	s.Clear()
	require.NoError(t, s.Record(ctx, event()))
}

// TestAuditor: the auditor keeps what reaches it.
func TestAuditor(t *testing.T) {
	ctx := context.Background()
	a := faultstore.NewAuditor(nil)
	a.SetN(faultstore.LostReply, 1)
	require.ErrorIs(t, a.Record(ctx, event()), faultstore.ErrInjected)
	a.SetN(faultstore.Fail, 1)
	require.ErrorIs(t, a.Record(ctx, event()), faultstore.ErrInjected)
	require.NoError(t, a.Record(ctx, event()))
	require.Len(t, a.Recorded(), 2)
	require.Equal(t, 3, a.Calls())
}

// TestAuditChainWithoutReader: for a store that keeps no chain state, the
// last event is reported as the head.
func TestAuditChainWithoutReader(t *testing.T) {
	ctx := context.Background()
	inner := memstore.New()
	s := faultstore.New(struct {
		sa.Store
		sa.Auditor
		sa.AuditLog
	}{inner, inner, inner})
	st, err := s.AuditChain(ctx, "acme")
	require.NoError(t, err)
	require.Zero(t, st)
	require.NoError(t, s.Record(ctx, event()))
	require.NoError(t, s.Record(ctx, event()))
	want, err := inner.AuditChain(ctx, "acme")
	require.NoError(t, err)
	st, err = s.AuditChain(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, want, st)
}
