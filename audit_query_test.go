package supportaccess_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestAuditCursor(t *testing.T) {
	t.Run("round_trip", func(t *testing.T) {
		for _, c := range []sa.AuditCursor{
			{},
			{Time: storetestEpoch.Truncate(time.Microsecond), TenantID: "acme", Seq: 42},
			{TenantID: "a.b.c|d ünï", Seq: 1 << 60},
			{Time: time.Date(1969, 7, 20, 20, 17, 0, 1000, time.UTC), TenantID: "moon", Seq: 1},
		} {
			s := c.String()
			require.NotContains(t, s, "/", "URL-safe")
			require.NotContains(t, s, "+")
			got, err := sa.ParseAuditCursor(s)
			require.NoError(t, err)
			require.True(t, c.Time.Equal(got.Time))
			got.Time = c.Time
			require.Equal(t, c, got)
		}
	})
	t.Run("rejects_other_strings", func(t *testing.T) {
		bad := []string{
			"x", "!!!", sa.AuditCursor{TenantID: "a", Seq: 1}.String() + "=",
			b64("c2.1.2.acme"), b64("c1.x.2.acme"), b64("c1.1.-2.acme"), b64("c1.1.2"), b64("c1.1.2.bad\x00tenant"),
			strings.Repeat("A", 1000),
		}
		for _, s := range bad {
			_, err := sa.ParseAuditCursor(s)
			require.ErrorIs(t, err, sa.ErrInvalidInput, "%q", s)
		}
	})
}

func TestAuditFilterValidate(t *testing.T) {
	cases := []struct {
		name  string
		f     sa.AuditFilter
		field string
	}{
		{"session_control_char", sa.AuditFilter{SessionID: "s\n1"}, "SessionID"},
		{"session_too_long", sa.AuditFilter{SessionID: strings.Repeat("s", sa.MaxPrincipalLen+1)}, "SessionID"},
		{"unknown_order", sa.AuditFilter{Order: 7}, "Order"},
		{"negative_cursor_seq", sa.AuditFilter{After: &sa.AuditCursor{Seq: -1}}, "After.Seq"},
		{"bad_cursor_tenant", sa.AuditFilter{After: &sa.AuditCursor{TenantID: "a\x00"}}, "After.TenantID"},
		{"limit", sa.AuditFilter{Limit: sa.MaxListLimit + 1}, "Limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.f.Validate()
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.ErrorContains(t, err, c.field)
		})
	}
	require.NoError(t, sa.AuditFilter{SessionID: "sess-1", Order: sa.AuditByChain, After: &sa.AuditCursor{TenantID: "acme", Seq: 3}}.Validate())
}

func TestAuditFilterOrderAndAfter(t *testing.T) {
	t0 := storetestEpoch.Truncate(time.Microsecond)
	a := sa.Event{ID: uuid.New(), Time: t0, TenantID: "b", Seq: 5}
	b := sa.Event{ID: uuid.New(), Time: t0.Add(time.Second), TenantID: "a", Seq: 9}
	byTime := sa.AuditFilter{}
	byChain := sa.AuditFilter{Order: sa.AuditByChain}
	require.Negative(t, byTime.Compare(&a, &b), "time first")
	require.Positive(t, byChain.Compare(&a, &b), "tenant first in chain order")
	require.Zero(t, byChain.Compare(&a, &sa.Event{TenantID: "b", Seq: 5, Time: t0.Add(time.Hour)}), "chain order ignores time")

	ca := a.Cursor()
	byTime.After, byChain.After = &ca, &ca
	require.False(t, byTime.Match(&a), "a cursor excludes its own event")
	require.True(t, byTime.Match(&b))
	require.False(t, byChain.Match(&b), "tenant a sorts before b in chain order")
	require.True(t, byChain.Match(&sa.Event{TenantID: "b", Seq: 6, Time: t0.Add(-time.Hour)}),
		"in chain order a later Seq is after the cursor whatever its time")
	require.False(t, byTime.Match(&sa.Event{TenantID: "b", Seq: 6, Time: t0.Add(-time.Hour)}),
		"in time order an event with an earlier time is before the cursor")
	require.True(t, sa.AuditFilter{SessionID: "s"}.Match(&sa.Event{Attrs: map[string]string{sa.AttrSessionID: "s"}}))
	require.False(t, sa.AuditFilter{SessionID: "s"}.Match(&sa.Event{}))
}

func TestAuditPageDefaults(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < sa.DefaultAuditPageSize+1; i++ {
		require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventSupportRequest, TenantID: "acme", Actor: support}))
	}
	evs, next, err := e.m.AuditPage(ctx, sa.AuditFilter{}, "")
	require.NoError(t, err)
	require.Len(t, evs, sa.DefaultAuditPageSize)
	require.Equal(t, evs[len(evs)-1].Cursor().String(), next)
	evs, next, err = e.m.AuditPage(ctx, sa.AuditFilter{}, next)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Empty(t, next, "the last page")
	_, _, err = e.m.AuditPage(ctx, sa.AuditFilter{TenantID: "bad\ttenant"}, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}
