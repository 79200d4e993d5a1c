package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestAuditTamperedFilterColumns changes, behind the store's back, a
// column of audit_events that AuditFilter conditions compare. The
// session_id column is a copy of Attrs[session_id] for the SessionID
// filter; the event's hash covers the attrs, not the copy, so before the
// fix an UPDATE of session_id hid a support session's events from
// AuditFilter{SessionID: …} (or put other events into it) while
// VerifyAudit still passed, and the SQL stores answered the filter
// differently from memstore (which matches the attrs). Every such change
// must now break the chain at the changed event, and every event Events
// returns must match the filter it was returned for.
func TestAuditTamperedFilterColumns(t *testing.T) {
	other := uuid.New()
	cases := []struct {
		name  string
		attrs map[string]string // of the changed event
		set   string            // the SET clause of the change
		args  []any
		kind  sa.BreakKind
	}{
		{"session_changed", map[string]string{sa.AttrSessionID: "sess-A"}, `session_id = ?`, []any{"sess-Z"}, sa.BreakHashMismatch},
		{"session_cleared", map[string]string{sa.AttrSessionID: "sess-A", sa.AttrPath: "/x"}, `session_id = NULL`, nil, sa.BreakHashMismatch},
		{"session_emptied", map[string]string{sa.AttrSessionID: "sess-A"}, `session_id = ?`, []any{""}, sa.BreakHashMismatch},
		{"session_added_no_attrs", nil, `session_id = ?`, []any{"sess-A"}, sa.BreakHashMismatch},
		{"session_added", map[string]string{sa.AttrPath: "/x"}, `session_id = ?`, []any{"sess-A"}, sa.BreakHashMismatch},
		{"session_added_empty", map[string]string{}, `session_id = ?`, []any{""}, sa.BreakHashMismatch},
		{"actor_kind", nil, `actor_kind = ?`, []any{string(sa.ActorCustomer)}, sa.BreakHashMismatch},
		{"actor_id", nil, `actor_id = ?`, []any{"someone-else"}, sa.BreakHashMismatch},
		{"event_type", nil, `event_type = ?`, []any{string(sa.EventGrantCreated)}, sa.BreakHashMismatch},
		{"grant_id", nil, `grant_id = ?`, []any{other}, sa.BreakHashMismatch},
		{"occurred_at", nil, `occurred_at = ?`, []any{storetest.Epoch.Add(time.Hour)}, sa.BreakHashMismatch},
		{"tenant_id", nil, `tenant_id = ?`, []any{"elsewhere"}, sa.BreakGap},
	}
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		s := sqltest.NewStore(t, d)
		m, err := sa.NewManager(s)
		require.NoError(t, err)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				tenant := fmt.Sprintf("tenant-%d", i)
				rec := func(n int, attrs map[string]string) sa.Event {
					e := sa.Event{ID: uuid.New(), Time: storetest.Epoch.Add(time.Duration(n) * time.Second),
						Type: sa.EventSupportRequest, TenantID: tenant, Actor: storetest.Support, Attrs: attrs}
					require.NoError(t, s.Record(ctx, e))
					return e
				}
				rec(1, map[string]string{sa.AttrSessionID: "sess-O"})
				changed := rec(2, c.attrs)
				rec(3, map[string]string{sa.AttrSessionID: "sess-A"})
				_, err := m.VerifyAudit(ctx, tenant)
				require.NoError(t, err, "intact before the change")

				require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET `+c.set+` WHERE id = ?`, append(c.args, changed.ID)...))

				_, err = m.VerifyAudit(ctx, tenant)
				require.ErrorIs(t, err, sa.ErrTampered, "VerifyAudit detects the change of %s", c.set)
				var brk *sa.ChainBreak
				require.ErrorAs(t, err, &brk)
				require.Equal(t, c.kind, brk.Kind, brk.Detail)
				require.EqualValues(t, 2, brk.Seq, "located at the changed event")
				if c.kind == sa.BreakHashMismatch {
					require.Equal(t, changed.ID, brk.EventID)
				}

				// What the filters return is what they matched.
				for _, f := range []sa.AuditFilter{
					{TenantID: tenant},
					{TenantID: tenant, SessionID: "sess-A"},
					{TenantID: tenant, SessionID: "sess-Z"},
					{TenantID: tenant, SessionID: "sess-O"},
					{SessionID: "sess-A"},
					{TenantID: tenant, ActorKind: sa.ActorSupport},
					{TenantID: tenant, ActorID: storetest.Support.ID},
					{TenantID: tenant, Types: []sa.EventType{sa.EventSupportRequest}},
					{GrantID: other},
				} {
					evs, err := s.Events(ctx, f)
					require.NoError(t, err)
					for _, e := range evs {
						require.True(t, f.Match(&e), "event %d returned for %+v does not match it: %+v", e.Seq, f, e)
					}
				}
			})
		}
	})
}

// TestAuditBlobFilterColumnsSQLite: on SQLite a column keeps the storage
// class of the value written, whatever its declared type. Rewriting a
// column that filters compare as a BLOB of the same bytes leaves what the
// store reads back (and so the event's hash) unchanged, but no filter's
// text or integer argument equals a BLOB: the event vanished from
// AuditFilter{ActorID: …} (and the others) while VerifyAudit passed. The
// store now refuses such a row with a ChainBreak at the event.
func TestAuditBlobFilterColumnsSQLite(t *testing.T) {
	ctx := context.Background()
	s := sqltest.NewStore(t, sqlstore.SQLite)
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	for i, col := range []string{"tenant_id", "seq", "occurred_at", "event_type", "grant_id", "actor_kind", "actor_id", "session_id"} {
		t.Run(col, func(t *testing.T) {
			tenant := fmt.Sprintf("blob-%d", i)
			var changed sa.Event
			for n := 1; n <= 3; n++ {
				e := sa.Event{ID: uuid.New(), Time: storetest.Epoch.Add(time.Duration(n) * time.Second), Type: sa.EventSupportRequest,
					TenantID: tenant, GrantID: uuid.New(), Actor: storetest.Support, Attrs: map[string]string{sa.AttrSessionID: "sess-B"}}
				require.NoError(t, s.Record(ctx, e))
				if n == 2 {
					changed = e
				}
			}
			require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET `+col+` = CAST(`+col+` AS BLOB) WHERE id = ?`, changed.ID))
			_, err := m.VerifyAudit(ctx, tenant)
			require.ErrorIs(t, err, sa.ErrTampered)
			var brk *sa.ChainBreak
			require.ErrorAs(t, err, &brk)
			require.EqualValues(t, 2, brk.Seq, "located at the changed event: %v", err)
			if col != "tenant_id" { // that one is missing from the tenant's chain
				require.Equal(t, changed.ID, brk.EventID)
				require.Contains(t, brk.Detail, col)
			}
		})
	}
}

// TestAuditRetypedTimeSQLite: on SQLite, occurred_at rewritten as TEXT (or
// REAL) holding the same time reads back unchanged, but TEXT
// sorts after every integer: the event dropped out of AuditFilter{Until}
// while VerifyAudit passed (second review). Such a row is refused with a
// ChainBreak at the event, like a BLOB.
func TestAuditRetypedTimeSQLite(t *testing.T) {
	ctx := context.Background()
	s := sqltest.NewStore(t, sqlstore.SQLite)
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	// (seq cannot be retyped with the same value: INTEGER affinity turns
	// any text or real equal to an integer back into that integer.)
	for i, set := range []string{
		`occurred_at = strftime('%Y-%m-%d %H:%M:%S', occurred_at / 1000000, 'unixepoch') || printf('.%06d', occurred_at % 1000000)`,
		`occurred_at = occurred_at + 0.5`,
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			tenant := fmt.Sprintf("retyped-%d", i)
			var changed sa.Event
			for n := 1; n <= 3; n++ {
				e := sa.Event{ID: uuid.New(), Time: storetest.Epoch.Add(time.Duration(n) * time.Second), Type: sa.EventSupportRequest,
					TenantID: tenant, Actor: storetest.Support}
				require.NoError(t, s.Record(ctx, e))
				if n == 2 {
					changed = e
				}
			}
			require.NoError(t, s.ExecForTest(ctx, `UPDATE {p}audit_events SET `+set+` WHERE id = ?`, changed.ID))
			_, err := m.VerifyAudit(ctx, tenant)
			require.ErrorIs(t, err, sa.ErrTampered)
			var brk *sa.ChainBreak
			require.ErrorAs(t, err, &brk)
			require.EqualValues(t, 2, brk.Seq, "located at the changed event: %v", err)
			require.Equal(t, changed.ID, brk.EventID)
		})
	}
}
