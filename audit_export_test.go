package supportaccess_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestExportAuditLineFormat pins the field names, their order and the
// encodings of a line.
func TestExportAuditLineFormat(t *testing.T) {
	e := newEnv(t)
	ev := sa.Event{ID: uuid.MustParse("0190f5b2-8c1e-7a3b-9f00-123456789abc"), Time: time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC),
		Type: sa.EventSupportChange, TenantID: "acme", GrantID: uuid.MustParse("0190f5b2-8c1e-7a3b-9f00-cba987654321"),
		Actor: sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example", Name: "Ève"}, Reason: "a <b> & c",
		Attrs: map[string]string{"z": "1", sa.AttrSubjectUserID: "u-1"}, Before: []byte(`{"a":1}`), After: []byte(`{"a": 2}`)}
	require.NoError(t, e.store.Record(ctx, ev))
	require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.MustParse("0190f5b2-8c1e-7a3b-9f00-000000000002"), Time: ev.Time.Add(time.Second),
		Type: sa.EventGrantExpired, TenantID: "acme", Actor: sa.SystemActor}))
	stored, err := e.m.Events(ctx, sa.AuditFilter{})
	require.NoError(t, err)

	var buf bytes.Buffer
	n, err := e.m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	want := `{"v":1,"tenant_id":"acme","seq":1,"id":"0190f5b2-8c1e-7a3b-9f00-123456789abc","time":"2026-03-14T15:09:26.535897Z",` +
		`"type":"support.change","grant_id":"0190f5b2-8c1e-7a3b-9f00-cba987654321","actor":{"kind":"support","id":"eve@vendor.example","name":"Ève"},` +
		`"reason":"a <b> & c","attrs":{"subject_user_id":"u-1","z":"1"},"before":{"a":1},"after_b64":"eyJhIjogMn0=",` +
		`"hash":"` + hex.EncodeToString(stored[0].Hash) + `","prev_hash":""}` + "\n" +
		`{"v":1,"tenant_id":"acme","seq":2,"id":"0190f5b2-8c1e-7a3b-9f00-000000000002","time":"2026-03-14T15:09:27.535897Z",` +
		`"type":"grant.expired","grant_id":"","actor":{"kind":"system","id":"supportaccess","name":""},"reason":"","attrs":{},` +
		`"hash":"` + hex.EncodeToString(stored[1].Hash) + `"}` + "\n"
	require.Equal(t, want, buf.String())

	rep, err := sa.VerifyJSONL(&buf)
	require.NoError(t, err)
	require.EqualValues(t, 2, rep.Events)
}

// TestExportAuditLossless: values JSON cannot carry verbatim (invalid
// UTF-8, non-compact JSON, a JSON null) still verify after export.
func TestExportAuditLossless(t *testing.T) {
	e := newEnv(t)
	weird := []sa.Event{
		{Reason: "bad \xff utf-8", Attrs: map[string]string{"p\xfe": "/x\xff"}},
		{Before: []byte(" {\"a\":1}"), After: []byte("[1,\n2]")},
		{Before: []byte("null"), After: []byte("not json at all")},
		{Actor: sa.Actor{Kind: sa.ActorSupport, ID: "\u2028odd", Name: "\x00"}},
	}
	for _, w := range weird {
		w.ID, w.Time, w.Type, w.TenantID = uuid.New(), e.now(), sa.EventSupportRequest, "acme"
		if w.Actor.IsZero() {
			w.Actor = support
		}
		require.NoError(t, e.store.Record(ctx, w))
	}
	var buf bytes.Buffer
	_, err := e.m.ExportAudit(ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Contains(t, buf.String(), `"encoding":"base64"`)
	require.Equal(t, 4, strings.Count(buf.String(), "\n"), "one line per event: no raw newline inside a line")
	rep, err := sa.VerifyJSONL(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.EqualValues(t, 4, rep.Events)

	stored, err := e.m.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	var got []sa.Event
	require.NoError(t, sa.ReadJSONL(&buf, func(ev sa.Event) error { got = append(got, ev); return nil }))
	require.Len(t, got, 4)
	for i := range got {
		require.Equal(t, stored[i].ChainHash(nil), got[i].ChainHash(nil), "event %d round-trips", i)
		require.Equal(t, stored[i].Reason, got[i].Reason)
		require.Equal(t, string(stored[i].Before), string(got[i].Before))
	}
}

func TestVerifyJSONL(t *testing.T) {
	evs := chainOf(6)
	export := func(evs []sa.Event, prev map[int]string) string {
		var b strings.Builder
		for i, ev := range evs {
			line := jsonlLine(t, ev)
			if p, ok := prev[i]; ok {
				line = strings.TrimSuffix(line, "}") + `,"prev_hash":"` + p + `"}`
			}
			b.WriteString(line + "\n")
		}
		return b.String()
	}

	t.Run("intact_from_the_start", func(t *testing.T) {
		rep, err := sa.VerifyJSONL(strings.NewReader(export(evs, nil)))
		require.NoError(t, err)
		require.EqualValues(t, 6, rep.Events)
		require.Equal(t, sa.ChainRange{Head: sa.ChainLink{Seq: 6, Hash: evs[5].Hash}}, rep.Chains["acme"])
	})
	t.Run("mid_chain_with_prev_hash", func(t *testing.T) {
		rep, err := sa.VerifyJSONL(strings.NewReader(export(evs[2:], map[int]string{0: hex.EncodeToString(evs[1].Hash)})))
		require.NoError(t, err)
		require.EqualValues(t, 4, rep.Events)
		require.Equal(t, sa.ChainLink{Seq: 2, Hash: evs[1].Hash}, rep.Chains["acme"].From)
	})
	t.Run("mid_chain_with_wrong_prev_hash", func(t *testing.T) {
		_, err := sa.VerifyJSONL(strings.NewReader(export(evs[2:], map[int]string{0: hex.EncodeToString(evs[0].Hash)})))
		var brk *sa.ChainBreak
		require.ErrorAs(t, err, &brk)
		require.EqualValues(t, 3, brk.Seq)
	})
	t.Run("mid_chain_anchor", func(t *testing.T) {
		rep, err := sa.VerifyJSONL(strings.NewReader(export(evs[2:], nil)))
		require.NoError(t, err)
		require.EqualValues(t, 3, rep.Events, "the first line anchors the rest")
		require.Equal(t, sa.ChainLink{Seq: 3, Hash: evs[2].Hash}, rep.Chains["acme"].From)
	})
	t.Run("lines_out_of_chain_order", func(t *testing.T) {
		swapped := []sa.Event{evs[0], evs[2], evs[1], evs[3]}
		_, err := sa.VerifyJSONL(strings.NewReader(export(swapped, nil)))
		var brk *sa.ChainBreak
		require.ErrorAs(t, err, &brk)
		require.Equal(t, sa.BreakReorder, brk.Kind, "seq 2 comes after seq 3: a reorder, not a gap")
		require.EqualValues(t, 2, brk.Seq)
		require.Equal(t, evs[1].ID, brk.EventID)
		missing := []sa.Event{evs[0], evs[2], evs[3]}
		_, err = sa.VerifyJSONL(strings.NewReader(export(missing, nil)))
		require.ErrorAs(t, err, &brk)
		require.Equal(t, sa.BreakGap, brk.Kind, "seq 2 is nowhere: a gap")
		require.EqualValues(t, 2, brk.Seq)
		firstTwo := []sa.Event{evs[1], evs[0], evs[2]}
		_, err = sa.VerifyJSONL(strings.NewReader(export(firstTwo, nil)))
		require.ErrorAs(t, err, &brk)
		require.Equal(t, sa.BreakReorder, brk.Kind, "seq 1 after seq 2 (the first line): a reorder, no purge checkpoint involved")
		require.EqualValues(t, 1, brk.Seq)
		require.NotContains(t, brk.Detail, "checkpoint")
		repeated := []sa.Event{evs[0], evs[1], evs[1]}
		_, err = sa.VerifyJSONL(strings.NewReader(export(repeated, nil)))
		require.ErrorAs(t, err, &brk)
		require.Equal(t, sa.BreakReorder, brk.Kind)
		require.EqualValues(t, 2, brk.Seq)
	})
	t.Run("malformed_lines", func(t *testing.T) {
		good := jsonlLine(t, evs[0])
		for name, bad := range map[string]string{
			"not_json":      "{",
			"unknown_field": strings.TrimSuffix(good, "}") + `,"extra":1}`,
			"version":       strings.Replace(good, `"v":1`, `"v":2`, 1),
			"time":          strings.Replace(good, `"time":"`, `"time":"x`, 1),
			"hash":          strings.Replace(good, `"hash":"`, `"hash":"zz`, 1),
			"two_values":    good + " {}",
			"encoding":      strings.TrimSuffix(good, "}") + `,"encoding":"rot13"}`,
		} {
			_, err := sa.VerifyJSONL(strings.NewReader(good + "\n\n" + bad + "\n"))
			require.ErrorIs(t, err, sa.ErrInvalidInput, name)
			require.ErrorContains(t, err, "line 3", name)
		}
	})
	t.Run("read_errors", func(t *testing.T) {
		boom := errors.New("disk")
		err := sa.ReadJSONL(errReader{boom}, func(sa.Event) error { return nil })
		require.ErrorIs(t, err, boom)
		stop := errors.New("stop")
		err = sa.ReadJSONL(strings.NewReader(export(evs, nil)), func(sa.Event) error { return stop })
		require.Equal(t, stop, err, "fn's error unchanged")
	})
}

// jsonlLine is the export line of ev (through a Manager on a store that
// returns ev as is).
func jsonlLine(t *testing.T, ev sa.Event) string {
	t.Helper()
	e := newEnvWithLog(t, &sliceLog{evs: []sa.Event{ev}})
	var buf bytes.Buffer
	_, err := e.ExportAudit(ctx, &buf, sa.AuditFilter{})
	require.NoError(t, err)
	return strings.TrimSuffix(buf.String(), "\n")
}

func newEnvWithLog(t *testing.T, l sa.AuditLog) *sa.Manager {
	t.Helper()
	m, err := sa.NewManager(plainStore{nil}, sa.WithAuditor(&recordingAuditor{}), sa.WithAuditLog(l))
	require.NoError(t, err)
	return m
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestExportAuditWriterFails(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{})
	boom := errors.New("pipe closed")
	n, err := e.m.ExportAudit(ctx, writerFunc(func([]byte) (int, error) { return 0, boom }), sa.AuditFilter{})
	require.ErrorIs(t, err, boom)
	require.Zero(t, n, "nothing reached the writer")
	_, err = e.m.ExportAudit(ctx, &bytes.Buffer{}, sa.AuditFilter{Limit: -1})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}
