package supportaccess_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

func TestSlogAuditor(t *testing.T) {
	var buf syncBuffer
	a := sa.NewSlogAuditor(slog.New(slog.NewJSONHandler(&buf, nil)))
	ev := sa.Event{ID: uuid.New(), Time: storetestEpoch.Truncate(time.Microsecond), Type: sa.EventSupportChange, TenantID: "acme",
		GrantID: uuid.New(), Actor: sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example", Name: "Eve"}, Reason: "why",
		Attrs:  map[string]string{sa.AttrSessionID: "s-1", sa.AttrSubjectUserID: "u-1", sa.AttrWhat: "theme", "empty": ""},
		Before: []byte(`{"theme":"dark"}`), After: []byte("not json"), Seq: 3, Hash: []byte{0xab, 0xcd}}
	require.NoError(t, a.Record(ctx, ev))
	lines := buf.lines(t)
	require.Len(t, lines, 1)
	l := lines[0]
	require.Equal(t, "INFO", l["level"])
	require.Equal(t, "supportaccess audit", l["msg"])
	require.Equal(t, ev.Time.Format(time.RFC3339Nano), l["time"])
	require.Equal(t, map[string]any{
		"id": ev.ID.String(), "time": ev.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		"type": "support.change", "tenant_id": "acme", "grant_id": ev.GrantID.String(),
		"actor":  map[string]any{"kind": "support", "id": "eve@vendor.example", "name": "Eve"},
		"reason": "why",
		"attrs":  map[string]any{"session_id": "s-1", "subject_user_id": "u-1", "what": "theme", "empty": ""},
		"before": map[string]any{"theme": "dark"}, "after": "not json", "seq": float64(3), "hash": "abcd",
	}, l["event"], "every field, none dropped")

	// The zero values are there too, so that every record has one shape.
	require.NoError(t, a.Record(ctx, sa.Event{ID: uuid.New(), Time: ev.Time, Type: sa.EventGrantExpired, TenantID: "acme", Actor: sa.SystemActor}))
	l = buf.lines(t)[1]["event"].(map[string]any)
	require.Equal(t, "", l["grant_id"])
	require.Equal(t, "", l["reason"])
	require.Nil(t, l["before"])
	require.Contains(t, l, "before")
}

type failingHandler struct{ slog.Handler }

func (failingHandler) Handle(context.Context, slog.Record) error { return errors.New("disk full") }

func TestSlogAuditorFailures(t *testing.T) {
	ev := sa.Event{ID: uuid.New(), Time: time.Now(), Type: sa.EventGrantCreated, TenantID: "acme", Actor: customer}
	quiet := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	err := sa.NewSlogAuditor(quiet).Record(ctx, ev)
	require.ErrorContains(t, err, "disabled", "a dropped event is an error")
	a := sa.NewSlogAuditor(quiet)
	a.Level = slog.LevelError
	require.NoError(t, a.Record(ctx, ev))
	err = sa.NewSlogAuditor(slog.New(failingHandler{slog.NewTextHandler(&bytes.Buffer{}, nil)})).Record(ctx, ev)
	require.ErrorContains(t, err, "disk full", "a handler failure is returned, not lost")
}

// TestMultiAuditorStoreAndLog is the host that keeps its audit trail in its
// database (the store, transactional) and in its log.
func TestMultiAuditorStoreAndLog(t *testing.T) {
	st := memstore.New()
	var buf syncBuffer
	m, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, sa.NewSlogAuditor(slog.New(slog.NewJSONHandler(&buf, nil))))))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Reason: "SUP-1"})
	require.NoError(t, err)
	_, err = m.Revoke(ctx, g.ID, customer, "done")
	require.NoError(t, err)

	stored, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, stored, 2)
	logged := buf.lines(t)
	require.Len(t, logged, 2)
	for i, l := range logged {
		ev := l["event"].(map[string]any)
		require.Equal(t, stored[i].ID.String(), ev["id"], "the same event in both")
		require.Equal(t, string(stored[i].Type), ev["type"])
	}
	rep, err := m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	require.EqualValues(t, 2, rep.Events)

	// All must succeed: when the log fails, the change is not made.
	bad, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, sa.NewSlogAuditor(slog.New(failingHandler{slog.NewTextHandler(&bytes.Buffer{}, nil)})))))
	require.NoError(t, err)
	_, err = bad.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorContains(t, err, "disk full")
	gs, err := m.List(ctx, sa.ListFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, gs, 1, "no grant without its audit event")

	// Best effort: the log's failure is reported, the change is made.
	var reported []error
	be, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, sa.BestEffortAuditor(
		sa.NewSlogAuditor(slog.New(failingHandler{slog.NewTextHandler(&bytes.Buffer{}, nil)})),
		func(_ context.Context, err error) { reported = append(reported, err) }))))
	require.NoError(t, err)
	_, err = be.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.NoError(t, err)
	require.Len(t, reported, 1)
	require.ErrorContains(t, reported[0], "disk full")
	stored, err = m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, stored, 3, "the store recorded it")
	require.NoError(t, sa.BestEffortAuditor(nil, nil).Record(ctx, stored[0]))
}
