package supportaccess_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Tests of the 22nd review round (audit trail, root package).

// review22ExportLine exports acme's single event and returns its line
// (without the newline).
func review22ExportLine(t *testing.T, e *env) string {
	t.Helper()
	var buf bytes.Buffer
	n, err := e.m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	return strings.TrimSuffix(buf.String(), "\n")
}

// TestReview22VerifyJSONLRefusesShadowedFields: encoding/json matches
// object keys case-insensitively and keeps the last duplicate, and
// jsonlReader (DisallowUnknownFields) accepts both. So an export line can
// carry, next to the exported field, a second spelling of it: VerifyJSONL
// verifies the genuine value (the last one, as Go reads it) and passes,
// while every case-sensitive JSON reader (jq, Python, a SIEM: the
// "separate system" the export is meant for) reads the forged value of the
// documented lower-case field. The verified file then says something
// else than what was verified. A line that is not exactly one value per
// documented field must be refused.
func TestReview22VerifyJSONLRefusesShadowedFields(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventSupportChange, TenantID: "acme",
		Actor: sa.Actor{Kind: sa.ActorSupport, ID: "mallory@vendor.example"}, Reason: "deleted all invoices"}))
	line := review22ExportLine(t, e)
	rep, err := sa.VerifyJSONL(strings.NewReader(line + "\n"))
	require.NoError(t, err, "the genuine export verifies")
	require.EqualValues(t, 1, rep.Events)

	for name, forged := range map[string]string{
		// jq '.reason' → "viewed the dashboard"; Go → "deleted all invoices".
		"case_variant_reason": strings.Replace(line, `"reason":"deleted all invoices"`,
			`"reason":"viewed the dashboard","REASON":"deleted all invoices"`, 1),
		// jq '.actor.id' → "alice@vendor.example".
		"case_variant_actor_id": strings.Replace(line, `"id":"mallory@vendor.example"`,
			`"id":"alice@vendor.example","Id":"mallory@vendor.example"`, 1),
		// A reader that keeps the first duplicate shows the forgery.
		"duplicate_type": strings.Replace(line, `"type":"support.change"`,
			`"type":"support.request","type":"support.change"`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, line, forged)
			var generic map[string]any
			require.NoError(t, json.Unmarshal([]byte(forged), &generic), "still one JSON object")
			_, err := sa.VerifyJSONL(strings.NewReader(forged + "\n"))
			require.Error(t, err, "VerifyJSONL vouches for a line whose documented fields read differently outside Go:\n%s", forged)
			require.True(t, errorsIsAny(err, sa.ErrInvalidInput, sa.ErrTampered), "%v", err)
		})
	}
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// TestReview22SlogAuditorKeepsMicroseconds: SlogAuditor documents that no
// field is left out or shortened, but it puts the event's Time only in the
// record's time, which slog.TextHandler writes to the millisecond (and
// the default handler to the second): the event group has no "time", so
// the log loses the microseconds the chain hash covers and the order of
// events within a millisecond.
func TestReview22SlogAuditorKeepsMicroseconds(t *testing.T) {
	var buf bytes.Buffer
	a := sa.NewSlogAuditor(slog.New(slog.NewTextHandler(&buf, nil)))
	when := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	require.NoError(t, a.Record(ctx, sa.Event{ID: uuid.New(), Time: when, Type: sa.EventSupportRequest, TenantID: "acme", Actor: support}))
	require.Contains(t, buf.String(), "15:09:26.535897", "the event's time to the microsecond:\n%s", buf.String())
}
