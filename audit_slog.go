package supportaccess

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"unicode/utf8"

	"github.com/google/uuid"
)

// SlogAuditor is an Auditor that writes each event as one structured log
// record. Build it with NewSlogAuditor; the fields may be changed before
// first use.
//
// The record's time is the event's Time and its attributes are one group
// "event" holding every field under the names ExportAudit uses: id, time
// (RFC 3339 in UTC to the microsecond, as exported: handlers write the
// record's own time less precisely), type, tenant_id, grant_id ("" when
// none), actor (group: kind, id, name),
// reason, attrs (group of all Attrs, in key order; absent when there are
// none), before and after (the raw JSON, or a string when not valid JSON
// or not valid UTF-8; null when empty), and seq and hash (hex) when set.
// No field is left out or shortened.
type SlogAuditor struct {
	// Logger receives the records. Nil means slog.Default().
	Logger *slog.Logger
	// Level of the records. Default: slog.LevelInfo.
	Level slog.Level
	// Message of the records. Default: "supportaccess audit".
	Message string
}

// NewSlogAuditor returns a SlogAuditor writing to l (nil: slog.Default())
// at level Info. Combine it with the store in MultiAuditor to keep the
// trail in the database and the log:
//
//	sa.WithAuditor(sa.MultiAuditor(store, sa.NewSlogAuditor(logger)))
func NewSlogAuditor(l *slog.Logger) *SlogAuditor {
	return &SlogAuditor{Logger: l, Level: slog.LevelInfo, Message: "supportaccess audit"}
}

// Record implements Auditor: it hands the record straight to the logger's
// handler so that a write failure is returned, not lost.
//
// Errors: an error when the handler is not enabled for a.Level (the event
// would be dropped) or when the handler fails.
func (a *SlogAuditor) Record(ctx context.Context, e Event) error {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	h := l.Handler()
	if !h.Enabled(ctx, a.Level) {
		return fmt.Errorf("slog auditor: level %s is disabled; event %s would be dropped", a.Level, e.ID)
	}
	msg := a.Message
	if msg == "" {
		msg = "supportaccess audit"
	}
	r := slog.NewRecord(e.Time, a.Level, msg, 0)
	r.AddAttrs(slog.Attr{Key: "event", Value: slog.GroupValue(eventAttrs(&e)...)})
	if err := h.Handle(ctx, r); err != nil {
		return fmt.Errorf("slog auditor: %w", err)
	}
	return nil
}

// eventAttrs returns e's fields as slog attributes.
func eventAttrs(e *Event) []slog.Attr {
	grant := ""
	if e.GrantID != uuid.Nil {
		grant = e.GrantID.String()
	}
	as := make([]slog.Attr, 0, 13)
	as = append(as,
		slog.String("id", e.ID.String()),
		slog.String("time", exportTime(e.Time)),
		slog.String("type", string(e.Type)),
		slog.String("tenant_id", e.TenantID),
		slog.String("grant_id", grant),
		slog.Group("actor", slog.String("kind", string(e.Actor.Kind)), slog.String("id", e.Actor.ID), slog.String("name", e.Actor.Name)),
		slog.String("reason", e.Reason),
	)
	if len(e.Attrs) > 0 {
		keys := make([]string, 0, len(e.Attrs))
		for k := range e.Attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		attrs := make([]slog.Attr, len(keys))
		for i, k := range keys {
			attrs[i] = slog.String(k, e.Attrs[k])
		}
		as = append(as, slog.Attr{Key: "attrs", Value: slog.GroupValue(attrs...)})
	}
	as = append(as, rawAttr("before", e.Before), rawAttr("after", e.After))
	if e.Seq != 0 {
		as = append(as, slog.Int64("seq", e.Seq))
	}
	if len(e.Hash) > 0 {
		as = append(as, slog.String("hash", hex.EncodeToString(e.Hash)))
	}
	return as
}

// rawAttr logs JSON as JSON (a JSON handler embeds it) and anything else
// as a string, so an invalid value is never replaced by an error marker.
// JSON that is not valid UTF-8 (json.Valid does not check it) is logged as
// a string too, which the handler escapes, so no invalid UTF-8 is written
// raw.
func rawAttr(key string, b []byte) slog.Attr {
	if len(b) == 0 || (json.Valid(b) && utf8.Valid(b)) {
		return slog.Any(key, json.RawMessage(b))
	}
	return slog.String(key, string(b))
}

// BestEffortAuditor returns an Auditor that records on a but never fails:
// an error from a goes to report (nil: logged with slog.Default at level
// Error) and Record returns nil. Use it inside MultiAuditor for a
// secondary destination (a log shipper) whose outage must not stop
// grants; the store then stays the auditor that must succeed. (Without
// the store among the auditors, do not put it first: the first auditor
// decides whether Sweep records a start or an expiry, see WithAuditor.)
// NewManager refuses a BestEffortAuditor of nil (or of a nil pointer),
// and auditors that are all best-effort: a change needs one auditor that
// must succeed.
func BestEffortAuditor(a Auditor, report func(context.Context, error)) Auditor {
	if report == nil {
		report = func(ctx context.Context, err error) {
			slog.Default().ErrorContext(ctx, "supportaccess: best-effort auditor failed", "err", err)
		}
	}
	return bestEffort{a: a, report: report}
}

type bestEffort struct {
	a      Auditor
	report func(context.Context, error)
}

func (b bestEffort) Record(ctx context.Context, e Event) error {
	if b.a == nil {
		return nil
	}
	if err := b.a.Record(ctx, e); err != nil {
		b.report(ctx, fmt.Errorf("audit event %s: %w", e.ID, err))
	}
	return nil
}
