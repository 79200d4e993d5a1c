package supportaccess_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// r117CountingLog is a sliceLog that counts how often it was asked, to
// show that a malformed filter or cursor is refused before the log is.
type r117CountingLog struct {
	sliceLog
	calls int
}

func (l *r117CountingLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	l.calls++
	return l.sliceLog.Events(ctx, f)
}

// r117CaptureDefault makes slog.Default a JSON logger writing to the
// returned buffer, for the duration of t.
func r117CaptureDefault(t *testing.T) *syncBuffer {
	t.Helper()
	var buf syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

// TestReview117AuditFilterValidateRefuses: every rule of Validate refuses
// with ErrInvalidInput naming the field, and Events and AuditPage refuse
// the filter before asking the AuditLog. The bounds themselves are
// accepted (MaxFilterTypes entries, Limit MaxListLimit).
//
// Kills: audit.go Validate's ActorKind check dropped; ActorID's checkText
// dropped or given a longer limit; `len(f.Types) > MaxFilterTypes` → `>=`
// or a looser bound; `f.Limit > MaxListLimit` → `>=`; `f.Limit < 0`
// dropped; the Order check → `f.Order > AuditByChain` (a negative Order
// passed); Manager.Events asking the log before Validate.
func TestReview117AuditFilterValidateRefuses(t *testing.T) {
	many := make([]sa.EventType, sa.MaxFilterTypes+1)
	for i := range many {
		many[i] = sa.EventSupportRequest
	}
	cases := []struct {
		name  string
		f     sa.AuditFilter
		field string
	}{
		{"unknown_actor_kind", sa.AuditFilter{ActorKind: "robot"}, "ActorKind"},
		{"actor_id_control_char", sa.AuditFilter{ActorID: "eve\n@vendor.example"}, "ActorID"},
		{"actor_id_too_long", sa.AuditFilter{ActorID: strings.Repeat("e", sa.MaxPrincipalLen+1)}, "ActorID"},
		{"too_many_types", sa.AuditFilter{Types: many}, "Types"},
		{"negative_limit", sa.AuditFilter{Limit: -1}, "Limit"},
		{"negative_order", sa.AuditFilter{Order: -1}, "Order"},
		{"bad_tenant", sa.AuditFilter{TenantID: "acme\x00"}, "TenantID"},
	}
	log := &r117CountingLog{}
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(log))
	require.NoError(t, err)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.f.Validate()
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.ErrorContains(t, err, c.field)
			_, err = m.Events(ctx, c.f)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			_, _, err = m.AuditPage(ctx, c.f, "")
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Zero(t, log.calls, "refused before the log is asked")
		})
	}

	// The bounds are inclusive.
	ok := sa.AuditFilter{Types: many[:sa.MaxFilterTypes], Limit: sa.MaxListLimit,
		ActorKind: sa.ActorSupport, ActorID: strings.Repeat("e", sa.MaxPrincipalLen)}
	require.NoError(t, ok.Validate())
	_, err = m.Events(ctx, ok)
	require.NoError(t, err)
	require.Equal(t, 1, log.calls)
}

// TestReview117CursorRefusedBeforeTheLog: a malformed cursor token is
// refused with ErrInvalidInput without asking the AuditLog, and one longer
// than any token String makes is refused even when it would decode (here
// a Seq padded with zeros).
//
// Kills: audit_query.go ParseAuditCursor's `len(s) > 4*MaxTenantIDLen`
// check dropped.
func TestReview117CursorRefusedBeforeTheLog(t *testing.T) {
	long := b64("c1.1." + strings.Repeat("0", 600) + "2.acme")
	_, err := sa.ParseAuditCursor(long)
	require.ErrorIs(t, err, sa.ErrInvalidInput)

	log := &r117CountingLog{}
	m, err := sa.NewManager(memstore.New(), sa.WithAuditLog(log))
	require.NoError(t, err)
	for _, cur := range []string{long, "garbage", b64("c1.1.2.acme\x7f")} {
		_, _, err := m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme"}, cur)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%q", cur)
		require.ErrorContains(t, err, "cursor")
	}
	require.Zero(t, log.calls)
}

// TestReview117ForeignCursorDoesNotLeak: a cursor only positions the page;
// the filter still selects. A cursor taken on another tenant's trail (or
// forged to name one) returns no event of that tenant when the filter
// names acme, in either order.
//
// Kills: AuditPage letting the cursor's TenantID replace f.TenantID
// (`if c.TenantID != "" { f.TenantID = c.TenantID }`).
func TestReview117ForeignCursorDoesNotLeak(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.grant(sa.GrantInput{TenantID: "acme"})
		e.grant(sa.GrantInput{TenantID: "zeta"})
		e.grant(sa.GrantInput{TenantID: "beta"})
		e.clock.Advance(time.Second)
	}
	zeta, next, err := e.m.AuditPage(ctx, sa.AuditFilter{TenantID: "zeta", Order: sa.AuditByChain, Limit: 1}, "")
	require.NoError(t, err)
	require.Len(t, zeta, 1)
	require.NotEmpty(t, next)
	beta := sa.AuditCursor{TenantID: "beta", Seq: 1}.String()
	for _, order := range []sa.AuditOrder{sa.AuditByTime, sa.AuditByChain} {
		for _, cur := range []string{next, beta} {
			evs, _, err := e.m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme", Order: order}, cur)
			require.NoError(t, err)
			for _, ev := range evs {
				require.Equal(t, "acme", ev.TenantID, "order %s, cursor %q", order, cur)
			}
		}
	}
	// In chain order acme sorts before beta's and zeta's cursor: nothing
	// is after it.
	evs, next, err := e.m.AuditPage(ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain}, beta)
	require.NoError(t, err)
	require.Empty(t, evs)
	require.Empty(t, next)
}

// TestReview117SlogAuditorZeroValueAndSmallEvents: a SlogAuditor built
// without NewSlogAuditor logs to slog.Default with the default message;
// an event with one Attr, Seq 1 keeps both ("no field is left out"), and
// the attrs group is in key order.
//
// Kills: audit_slog.go Record's `l == nil` fallback dropped (panic), the
// `msg == ""` default dropped; eventAttrs `len(e.Attrs) > 0` → `> 1`,
// `e.Seq != 0` → `e.Seq > 1`, slices.Sort(keys) dropped.
func TestReview117SlogAuditorZeroValueAndSmallEvents(t *testing.T) {
	buf := r117CaptureDefault(t)
	ev := sa.Event{ID: uuid.New(), Time: storetestEpoch.Truncate(time.Microsecond), Type: sa.EventSupportRequest,
		TenantID: "acme", Actor: support, Attrs: map[string]string{sa.AttrSessionID: "s-1"}, Seq: 1}
	require.NoError(t, (&sa.SlogAuditor{}).Record(ctx, ev))
	lines := buf.lines(t)
	require.Len(t, lines, 1)
	require.Equal(t, "supportaccess audit", lines[0]["msg"])
	require.Equal(t, "INFO", lines[0]["level"])
	got := lines[0]["event"].(map[string]any)
	require.Equal(t, map[string]any{"session_id": "s-1"}, got["attrs"], "a single Attr is kept")
	require.Equal(t, float64(1), got["seq"], "Seq 1 is kept")

	// Key order: with eight keys an unsorted map walk is in order by
	// chance once in 40 320 runs.
	var out syncBuffer
	keys := []string{"h", "c", "f", "a", "g", "d", "b", "e"}
	ev.Attrs = map[string]string{}
	for _, k := range keys {
		ev.Attrs[k] = k
	}
	require.NoError(t, sa.NewSlogAuditor(slog.New(slog.NewJSONHandler(&out, nil))).Record(ctx, ev))
	require.Contains(t, out.b.String(), `"attrs":{"a":"a","b":"b","c":"c","d":"d","e":"e","f":"f","g":"g","h":"h"}`)
}

// TestReview117BestEffortDefaultReport: without a report function the
// failure goes to slog.Default at level Error, naming the event, and
// Record still returns nil.
//
// Kills: audit_slog.go BestEffortAuditor's `report == nil` default dropped
// (a nil func called: panic); the default logging below Error.
func TestReview117BestEffortDefaultReport(t *testing.T) {
	buf := r117CaptureDefault(t)
	ev := sa.Event{ID: uuid.New(), Time: time.Now(), Type: sa.EventSupportRequest, TenantID: "acme", Actor: support}
	require.NoError(t, sa.BestEffortAuditor(failingAuditor{}, nil).Record(ctx, ev))
	lines := buf.lines(t)
	require.Len(t, lines, 1)
	require.Equal(t, "ERROR", lines[0]["level"])
	require.Contains(t, lines[0]["err"], ev.ID.String())
	require.Contains(t, lines[0]["err"], errBoom.Error())
}

// TestReview117CursorTokenIsCanonical (FAILS on the current code; see the
// review report): ParseAuditCursor documents ErrInvalidInput for anything
// but a token made by AuditCursor.String, and already refuses a
// zero-padded nanosecond part ("07"), yet it accepts other spellings of
// the microseconds and Seq: a sign, leading zeros, "-0". Several tokens
// then name one position.
func TestReview117CursorTokenIsCanonical(t *testing.T) {
	for _, raw := range []string{"c1.+1.2.acme", "c1.1.+2.acme", "c1.01.2.acme", "c1.1.02.acme", "c1.1.-0.acme", "c1.-0.2.acme"} {
		_, err := sa.ParseAuditCursor(b64(raw))
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%q", raw)
	}
}
