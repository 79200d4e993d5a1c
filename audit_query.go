package supportaccess

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultAuditPageSize is the page size of Manager.AuditPage when the
// filter's Limit is 0.
const DefaultAuditPageSize = 100

// cursorVersion prefixes the text form of a cursor.
const cursorVersion = "c1"

// String returns c as an opaque, URL-safe token for ParseAuditCursor (for
// example a "next page" link). The token keeps c.Time to the nanosecond:
// the bundled stores keep whole microseconds, but an AuditLog of the host's
// that keeps finer times pages exactly too.
func (c AuditCursor) String() string {
	when := "" // the zero time (before every event), not the Unix epoch
	if !c.Time.IsZero() {
		when = strconv.FormatInt(c.Time.UnixMicro(), 10)
		if ns := c.Time.Nanosecond() % 1000; ns != 0 {
			when += ":" + strconv.Itoa(ns)
		}
	}
	raw := cursorVersion + "." + when + "." + strconv.FormatInt(c.Seq, 10) + "." + c.TenantID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseAuditCursor decodes a token made by AuditCursor.String.
// Errors: ErrInvalidInput (field "cursor") for anything else.
func ParseAuditCursor(s string) (AuditCursor, error) {
	bad := func(why string) (AuditCursor, error) {
		return AuditCursor{}, fmt.Errorf("%w: cursor %s", ErrInvalidInput, why)
	}
	if len(s) > 4*MaxTenantIDLen {
		return bad("is too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("is not a cursor token")
	}
	parts := strings.SplitN(string(raw), ".", 4)
	if len(parts) != 4 || parts[0] != cursorVersion {
		return bad("is not a cursor token")
	}
	seq, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || seq < 0 {
		return bad("is not a cursor token")
	}
	c := AuditCursor{TenantID: parts[3], Seq: seq}
	if parts[1] != "" {
		// microseconds since the Unix epoch, then ":" and the nanoseconds
		// below them (1–999) when there are any
		us, ns, fine := strings.Cut(parts[1], ":")
		micros, err := strconv.ParseInt(us, 10, 64)
		if err != nil {
			return bad("is not a cursor token")
		}
		c.Time = time.UnixMicro(micros).UTC()
		if fine {
			n, err := strconv.Atoi(ns)
			if err != nil || n < 1 || n > 999 || strconv.Itoa(n) != ns {
				return bad("is not a cursor token")
			}
			c.Time = c.Time.Add(time.Duration(n))
		}
	}
	if c.TenantID != "" {
		if err := validateTenantRef("cursor tenant", c.TenantID); err != nil {
			return AuditCursor{}, err
		}
	}
	// One position, one token: no signs, leading zeros or other spellings
	// that strconv or the decoder would also take.
	if c.String() != s {
		return bad("is not a cursor token")
	}
	return c, nil
}

// AuditPage returns one page of the events matching f: at most f.Limit
// events (DefaultAuditPageSize when 0) in f.Order, starting after cursor
// ("" for the first page). next is the cursor of the following page, or ""
// when this page is the last one (it holds fewer events than the limit).
// See AuditFilter.After for what paging guarantees while events arrive; to
// follow a tenant's trail as it grows without missing an event, page it in
// AuditByChain order with its TenantID, keep the Cursor of the last event
// seen and ask again later.
//
// Errors: ErrInvalidInput for a malformed filter or cursor, when both
// cursor and f.After are given, or when no AuditLog is configured;
// otherwise the log's error.
func (m *Manager) AuditPage(ctx context.Context, f AuditFilter, cursor string) (events []Event, next string, err error) {
	ctx, span := m.startSpan(ctx, "AuditPage")
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		span.SetAttributes(AttrKeyCount.Int(len(events)))
	})
	if cursor != "" {
		if f.After != nil {
			return nil, "", fmt.Errorf("audit page: %w: both cursor and After given", ErrInvalidInput)
		}
		c, err := ParseAuditCursor(cursor)
		if err != nil {
			return nil, "", fmt.Errorf("audit page: %w", err)
		}
		f.After = &c
	}
	if f.Limit == 0 {
		f.Limit = DefaultAuditPageSize
	}
	evs, err := m.Events(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("audit page: %w", err)
	}
	if len(evs) == f.Limit {
		next = evs[len(evs)-1].Cursor().String()
	}
	return evs, next, nil
}
