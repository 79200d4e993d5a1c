package supportaccess

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ExportPageSize is how many events ExportAudit reads per query.
const ExportPageSize = 1000

// jsonlVersion is the "v" of every line ExportAudit writes.
const jsonlVersion = 1

// maxJSONLLine is the longest line ReadJSONL accepts.
const maxJSONLLine = 64 << 20

// jsonlEvent is one line of an export. Field names and order are stable.
type jsonlEvent struct {
	V        int               `json:"v"`
	TenantID string            `json:"tenant_id"`
	Seq      int64             `json:"seq"`
	ID       uuid.UUID         `json:"id"`
	Time     string            `json:"time"`
	Type     string            `json:"type"`
	GrantID  string            `json:"grant_id"`
	Actor    jsonlActor        `json:"actor"`
	Reason   string            `json:"reason"`
	Attrs    map[string]string `json:"attrs"`
	Before   json.RawMessage   `json:"before,omitempty"`
	After    json.RawMessage   `json:"after,omitempty"`
	BeforeB  []byte            `json:"before_b64,omitempty"`
	AfterB   []byte            `json:"after_b64,omitempty"`
	Encoding string            `json:"encoding,omitempty"`
	Hash     string            `json:"hash"`
	PrevHash *string           `json:"prev_hash,omitempty"`
}

type jsonlActor struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ExportAudit writes the events matching f to w as JSON Lines, one event
// per line, reading ExportPageSize events at a time (never the whole trail)
// and flushing after each page. f.Limit caps the number of events (0: all).
// It returns how many events it wrote out (on an error: those of the
// pages written completely).
//
// Each line is a JSON object with these fields, always in this order:
//
//	v          1, the format version
//	tenant_id  string
//	seq        the event's position in its tenant's chain
//	id         the event ID (UUID)
//	time       RFC 3339 in UTC with microseconds: 2026-03-14T15:09:26.535897Z
//	type       the EventType, e.g. "grant.created"
//	grant_id   UUID, or "" when the event concerns no grant
//	actor      {"kind", "id", "name"}
//	reason     string
//	attrs      object of strings ({} when none)
//	before     the Before value as JSON, verbatim (absent when empty)
//	after      the After value as JSON, verbatim (absent when empty)
//	hash       the chain hash, lowercase hex (64 digits; "" from an
//	           AuditLog that keeps no hash)
//	prev_hash  the previous event's hash in hex ("" for the first event
//	           of a chain); only on the first line of each tenant of an
//	           export in AuditByChain order
//
// Two escape hatches keep every line lossless, so the hash still verifies:
// a Before or After that is not compact JSON, or not valid UTF-8 (JSON
// text must be UTF-8, RFC 8259 §8.1), is written as before_b64 /
// after_b64 (standard base64) instead, and an event with a string that is
// not valid UTF-8 is written with "encoding": "base64" and every string
// field (tenant_id, type, actor fields, reason, attrs keys and values)
// base64-encoded.
//
// To re-verify an export with VerifyJSONL, export whole chains in
// AuditByChain order (for example AuditFilter{TenantID: t, Order:
// AuditByChain}); a filtered export shows as gaps.
//
// A page's reads from the log all happen before any of its lines is
// written, so an error of the log ends the output after the last complete
// line; lines go out through a 64 KiB buffer, one line in memory at a time.
//
// A purge (PurgeAudit, on any replica) that runs during an export of whole
// chains in AuditByChain order and deletes events the export had not
// written yet fails the export with ErrConflict once it has written what
// remains: the output lacks those events (VerifyJSONL would report a gap),
// and exporting again gives a complete one. This needs an AuditLog that
// is an AuditChainReader (the bundled stores are). In other orders, or
// with filters that select parts of chains, such a purge is not
// detected, nor is one of a tenant the export had not reached yet (its
// chain then starts later, at the new checkpoint): export before purging.
// In AuditByChain order, a purge that moves a tenant's checkpoint past
// the event before its first line while that line's page is read also
// fails the export with ErrConflict (its prev_hash is gone), before the
// page is written.
//
// Errors: ErrInvalidInput for a malformed filter or when no AuditLog is
// configured; ErrConflict for a purge during the export, as above;
// otherwise the log's error (the lines written so far are complete) or
// w's (a page w failed to take may be cut short).
func (m *Manager) ExportAudit(ctx context.Context, w io.Writer, f AuditFilter) (n int, err error) {
	ctx, span := m.startSpan(ctx, "ExportAudit")
	err = errNotReturned // overwritten by every return (see errNotReturned)
	defer endOp(span, &err, func() {
		span.SetAttributes(AttrKeyCount.Int(n))
	})
	if err := f.Validate(); err != nil {
		return 0, fmt.Errorf("export audit: %w", err)
	}
	if m.auditLog == nil {
		return 0, fmt.Errorf("export audit: %w: no AuditLog configured (WithAuditLog; the store is not one when WithAuditor leaves it out)", ErrInvalidInput)
	}
	total := f.Limit
	bw := bufio.NewWriterSize(w, 64<<10)
	var line bytes.Buffer // one line at a time: memory stays that of a line
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	seen := map[string]bool{} // tenants with a line, in chain order
	// Whole chains in chain order: where each tenant's lines first skip
	// a sequence number, to tell a purge during the export.
	var jumps *chainJumps
	if f.Order == AuditByChain && wholeChains(f) {
		jumps = &chainJumps{last: map[string]int64{}, at: map[string]int64{}}
	}
	n = 0 // lines flushed to w
	for {
		f.Limit = ExportPageSize
		if total > 0 && total-n < ExportPageSize {
			f.Limit = total - n
		}
		evs, err := m.Events(ctx, f)
		if err != nil {
			return n, fmt.Errorf("export audit: %w", err)
		}
		// The page's only reads from the log (the hash before each
		// tenant's first line) come before any of its lines is written,
		// so a failed read leaves only complete lines behind.
		prevs := map[int]string{}
		if f.Order == AuditByChain {
			for i := range evs {
				if e := &evs[i]; !seen[e.TenantID] {
					seen[e.TenantID] = true
					if prev, ok, err := m.prevHash(ctx, e); err != nil {
						return n, fmt.Errorf("export audit: %w", err)
					} else if ok {
						prevs[i] = hex.EncodeToString(prev)
					}
				}
			}
		}
		for i := range evs {
			jumps.note(&evs[i])
			l := toJSONL(&evs[i])
			if s, ok := prevs[i]; ok {
				l.PrevHash = &s
			}
			line.Reset()
			if err := enc.Encode(l); err != nil {
				return n, fmt.Errorf("export audit: %w", err)
			}
			if _, err := bw.Write(line.Bytes()); err != nil {
				return n, fmt.Errorf("export audit: %w", err)
			}
		}
		if err := bw.Flush(); err != nil {
			return n, fmt.Errorf("export audit: %w", err)
		}
		n += len(evs)
		if len(evs) < f.Limit || (total > 0 && n >= total) {
			if err := m.purgedDuring(ctx, jumps); err != nil {
				return n, fmt.Errorf("export audit: %w", err)
			}
			return n, nil
		}
		c := evs[len(evs)-1].Cursor()
		f.After = &c
	}
}

// wholeChains reports whether f selects whole chains: no filter but the
// tenant (and the position and count).
func wholeChains(f AuditFilter) bool {
	return f.ActorKind == "" && f.ActorID == "" && len(f.Types) == 0 && f.GrantID == uuid.Nil &&
		f.SessionID == "" && f.Since.IsZero() && f.Until.IsZero()
}

// chainJumps notes, per tenant of an export in chain order, the first
// sequence number its lines skipped (at), after the last one written.
type chainJumps struct {
	last, at map[string]int64
}

func (j *chainJumps) note(e *Event) {
	if j == nil {
		return
	}
	if last, ok := j.last[e.TenantID]; ok && e.Seq != last+1 && j.at[e.TenantID] == 0 {
		j.at[e.TenantID] = last + 1
	}
	j.last[e.TenantID] = e.Seq
}

// purgedDuring returns an ErrConflict error when a tenant's lines skipped
// events that its purge checkpoint now covers: they were there when the
// export wrote the line before them (a purge deletes a chain's start), so
// a purge deleted them during the export.
func (m *Manager) purgedDuring(ctx context.Context, j *chainJumps) error {
	cr, ok := m.auditLog.(AuditChainReader)
	if j == nil || !ok {
		return nil
	}
	for tenant, at := range j.at {
		st, err := cr.AuditChain(ctx, tenant)
		if err != nil {
			return err
		}
		if st.Checkpoint.Seq >= at {
			return fmt.Errorf("%w: a purge of tenant %q during the export deleted events %d to %d before they were written: export again", ErrConflict, tenant, at, st.Checkpoint.Seq)
		}
	}
	return nil
}

// prevHash returns the Hash of the event before e in its chain: nil for
// the first, the checkpoint's after a purge, else the stored event's. When
// neither is there because a purge that committed after the page was read
// moved the checkpoint past e's predecessor, it returns an ErrConflict
// error: the line cannot prove where it starts, and the export must be
// taken again (review 163).
func (m *Manager) prevHash(ctx context.Context, e *Event) ([]byte, bool, error) {
	if e.Seq <= 1 {
		return nil, true, nil
	}
	cr, _ := m.auditLog.(AuditChainReader)
	if cr != nil {
		st, err := cr.AuditChain(ctx, e.TenantID)
		if err != nil {
			return nil, false, err
		}
		if st.Checkpoint.Seq == e.Seq-1 {
			return st.Checkpoint.Hash, true, nil
		}
	}
	evs, err := m.auditLog.Events(ctx, AuditFilter{TenantID: e.TenantID, Order: AuditByChain,
		After: &AuditCursor{TenantID: e.TenantID, Seq: e.Seq - 2}, Limit: 1})
	if err != nil {
		return nil, false, err
	}
	if len(evs) == 1 && evs[0].Seq == e.Seq-1 {
		return evs[0].Hash, true, nil
	}
	if cr != nil {
		// Read again: the purge may have committed after the first look.
		st, err := cr.AuditChain(ctx, e.TenantID)
		if err != nil {
			return nil, false, err
		}
		if st.Checkpoint.Seq == e.Seq-1 {
			return st.Checkpoint.Hash, true, nil
		}
		if st.Checkpoint.Seq > e.Seq-1 {
			return nil, false, fmt.Errorf("%w: a purge of tenant %q during the export moved its checkpoint to seq %d, past the event before seq %d: export again", ErrConflict, e.TenantID, st.Checkpoint.Seq, e.Seq)
		}
	}
	return nil, false, nil
}

// toJSONL converts e to its export line.
// exportTime writes t as exports and logs carry it: RFC 3339 in UTC to
// the microsecond, "" for the zero time.
func exportTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func toJSONL(e *Event) *jsonlEvent {
	l := &jsonlEvent{V: jsonlVersion, TenantID: e.TenantID, Seq: e.Seq, ID: e.ID, Type: string(e.Type),
		Actor:  jsonlActor{Kind: string(e.Actor.Kind), ID: e.Actor.ID, Name: e.Actor.Name},
		Reason: e.Reason, Attrs: make(map[string]string, len(e.Attrs)), Hash: hex.EncodeToString(e.Hash)}
	l.Time = exportTime(e.Time)
	if e.GrantID != uuid.Nil {
		l.GrantID = e.GrantID.String()
	}
	l.Before, l.BeforeB = rawOrBytes(e.Before)
	l.After, l.AfterB = rawOrBytes(e.After)
	b64 := !utf8.ValidString(l.TenantID) || !utf8.ValidString(l.Type) || !utf8.ValidString(l.Actor.Kind) ||
		!utf8.ValidString(l.Actor.ID) || !utf8.ValidString(l.Actor.Name) || !utf8.ValidString(l.Reason)
	for k, v := range e.Attrs {
		b64 = b64 || !utf8.ValidString(k) || !utf8.ValidString(v)
	}
	if !b64 {
		for k, v := range e.Attrs {
			l.Attrs[k] = v
		}
		return l
	}
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	l.Encoding = "base64"
	l.TenantID, l.Type, l.Reason = enc(l.TenantID), enc(l.Type), enc(l.Reason)
	l.Actor = jsonlActor{Kind: enc(l.Actor.Kind), ID: enc(l.Actor.ID), Name: enc(l.Actor.Name)}
	for k, v := range e.Attrs {
		l.Attrs[enc(k)] = enc(v)
	}
	return l
}

// rawOrBytes returns b as verbatim JSON when encoding/json writes it back
// byte for byte (valid, compact) and it is valid UTF-8 (which json.Compact
// does not check), else as bytes for base64.
func rawOrBytes(b []byte) (json.RawMessage, []byte) {
	if len(b) == 0 {
		return nil, nil
	}
	var c bytes.Buffer
	if utf8.Valid(b) && json.Compact(&c, b) == nil && bytes.Equal(c.Bytes(), b) {
		return json.RawMessage(b), nil
	}
	return nil, b
}

// fromJSONL converts an export line back to the event.
func fromJSONL(l *jsonlEvent) (Event, []byte, bool, error) {
	bad := func(format string, args ...any) (Event, []byte, bool, error) {
		return Event{}, nil, false, fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, args...)...)
	}
	if l.V != jsonlVersion {
		return bad("v %d is not %d", l.V, jsonlVersion)
	}
	dec := func(s string) (string, error) { return s, nil }
	switch l.Encoding {
	case "":
	case "base64":
		dec = func(s string) (string, error) {
			b, err := base64.StdEncoding.Strict().DecodeString(s)
			return string(b), err
		}
	default:
		return bad("encoding %q is unknown", l.Encoding)
	}
	e := Event{Seq: l.Seq, ID: l.ID}
	var errs []error
	str := func(s string) string {
		out, err := dec(s)
		errs = append(errs, err)
		return out
	}
	e.TenantID = str(l.TenantID)
	e.Type = EventType(str(l.Type))
	e.Actor = Actor{Kind: ActorKind(str(l.Actor.Kind)), ID: str(l.Actor.ID), Name: str(l.Actor.Name)}
	e.Reason = str(l.Reason)
	if len(l.Attrs) > 0 {
		e.Attrs = make(map[string]string, len(l.Attrs))
		for k, v := range l.Attrs {
			e.Attrs[str(k)] = str(v)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return bad("base64 string: %v", err)
	}
	if l.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, l.Time)
		if err != nil {
			return bad("time: %v", err)
		}
		e.Time = t.UTC()
	}
	if l.GrantID != "" {
		id, err := uuid.Parse(l.GrantID)
		if err != nil {
			return bad("grant_id: %v", err)
		}
		e.GrantID = id
	}
	if len(l.Before) > 0 && len(l.BeforeB) > 0 || len(l.After) > 0 && len(l.AfterB) > 0 {
		return bad("both a value and its base64 form")
	}
	e.Before = pick(l.Before, l.BeforeB)
	e.After = pick(l.After, l.AfterB)
	h, err := hex.DecodeString(l.Hash)
	if err != nil {
		return bad("hash: %v", err)
	}
	if len(h) > 0 {
		e.Hash = h
	}
	if l.PrevHash == nil {
		return e, nil, false, nil
	}
	prev, err := hex.DecodeString(*l.PrevHash)
	if err != nil {
		return bad("prev_hash: %v", err)
	}
	if len(prev) == 0 {
		prev = nil
	}
	return e, prev, true, nil
}

func pick(raw json.RawMessage, b []byte) json.RawMessage {
	switch {
	case len(raw) > 0:
		return raw
	case len(b) > 0:
		return b
	}
	return nil
}

// jsonlReader reads export lines.
type jsonlReader struct {
	sc   *bufio.Scanner
	src  *sourceReader
	line int
	// again re-encodes each decoded event: a line must be exactly what
	// ExportAudit writes for it (see next).
	again bytes.Buffer
	enc   *json.Encoder
}

// sourceReader is the reader of an export, keeping its first error
// other than io.EOF: when it fails in the middle of a line, the scanner
// hands the part read as a last line, which is then not malformed but
// cut short by that error.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

func newJSONLReader(r io.Reader) *jsonlReader {
	src := &sourceReader{r: r}
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 0, 64<<10), maxJSONLLine)
	jr := &jsonlReader{sc: sc, src: src}
	jr.enc = json.NewEncoder(&jr.again)
	jr.enc.SetEscapeHTML(false)
	return jr
}

// next returns the next line's event; ok is false at the end. A line
// refused after the source failed is reported as the source's error (see
// sourceReader).
func (jr *jsonlReader) next() (it item, ok bool, err error) {
	it, ok, err = jr.scan()
	if err != nil && jr.src.err != nil && errors.Is(err, ErrInvalidInput) {
		return item{}, false, fmt.Errorf("line %d: %w", jr.line, jr.src.err)
	}
	return it, ok, err
}

// scan is next without the preference for the source's error.
func (jr *jsonlReader) scan() (it item, ok bool, err error) {
	for jr.sc.Scan() {
		jr.line++
		b := jr.sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		var l jsonlEvent
		if err := d.Decode(&l); err != nil {
			return item{}, false, fmt.Errorf("line %d: %w: %v", jr.line, ErrInvalidInput, err)
		}
		if len(bytes.TrimSpace(b[d.InputOffset():])) > 0 { // d.More misses a stray ] or }
			return item{}, false, fmt.Errorf("line %d: %w: more than one value", jr.line, ErrInvalidInput)
		}
		e, prev, hasPrev, err := fromJSONL(&l)
		if err != nil {
			return item{}, false, fmt.Errorf("line %d: %w", jr.line, err)
		}
		// encoding/json matches keys in any case and keeps the last of a
		// repeated key, and the parsers of times, IDs, hashes and base64
		// take several spellings of one value, so a line could carry a
		// field or a value that other readers take otherwise than the one
		// verified: only the exact bytes ExportAudit writes for the
		// decoded event pass.
		c := toJSONL(&e)
		if hasPrev {
			s := hex.EncodeToString(prev)
			c.PrevHash = &s
		}
		jr.again.Reset()
		if err := jr.enc.Encode(c); err != nil {
			return item{}, false, fmt.Errorf("line %d: %w: %v", jr.line, ErrInvalidInput, err)
		}
		if !bytes.Equal(bytes.TrimSuffix(jr.again.Bytes(), []byte("\n")), bytes.TrimSpace(b)) {
			return item{}, false, fmt.Errorf("line %d: %w: not as ExportAudit writes it (a field repeated, spelled in another case or reordered, or a value spelled another way)", jr.line, ErrInvalidInput)
		}
		return item{e: e, prev: prev, hasPrev: hasPrev}, true, nil
	}
	if err := jr.sc.Err(); err != nil {
		return item{}, false, fmt.Errorf("line %d: %w", jr.line+1, err)
	}
	return item{}, false, nil
}

// ReadJSONL reads an export written by ExportAudit and calls fn with each
// event, in the order of the lines, exactly as exported (Seq and Hash
// included), for example to load it into another system. It stops at the
// first error and returns it.
//
// A line must be byte for byte what ExportAudit writes for the event it
// holds (surrounding white space aside): a field repeated, spelled in
// another case or reordered, or a value spelled another way (a time with
// another zone or with nanoseconds, an ID or hash in upper case, base64
// where none is needed or with stray bits) is refused, so that no reader
// can see a field's value other than the one read (and verified) here.
//
// Errors: ErrInvalidInput naming the line for a line that is not an
// export line (unknown fields included); r's error; fn's error unchanged.
func ReadJSONL(r io.Reader, fn func(e Event) error) error {
	jr := newJSONLReader(r)
	for {
		it, ok, err := jr.next()
		if err != nil {
			return fmt.Errorf("read jsonl: %w", err)
		}
		if !ok {
			return nil
		}
		if err := fn(it.e); err != nil {
			return err
		}
	}
}

// VerifyJSONL verifies the hash chains in an export written by
// ExportAudit, streaming: each tenant's lines must come in chain order
// (AuditByChain) with consecutive sequence numbers; tenants may be
// interleaved. A tenant's first line is checked against its prev_hash, or
// against the start of the chain when its Seq is 1; otherwise it is taken
// as the anchor (reported as the tenant's From) and only what follows is
// verified. Compare each reported Head (and From) with what VerifyAudit
// reported, or what was kept elsewhere, to prove the export is complete.
//
// Errors: a *ChainBreak wrapping ErrTampered (also in the report's Break)
// for the first broken link; ErrInvalidInput naming the line for a
// malformed line, or one not exactly as ExportAudit writes it (see
// ReadJSONL); r's error.
func VerifyJSONL(r io.Reader) (VerifyReport, error) {
	jr := newJSONLReader(r)
	v := newVerifier(func() ([]item, error) {
		var items []item
		for len(items) < verifyBatch {
			it, ok, err := jr.next()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			items = append(items, it)
		}
		return items, nil
	})
	v.outOfOrder, v.export = BreakReorder, true
	if err := v.run(); err != nil {
		return v.report(), fmt.Errorf("verify jsonl: %w", err)
	}
	rep := v.report()
	if rep.Break != nil {
		return rep, fmt.Errorf("verify jsonl: %w", rep.Break)
	}
	return rep, nil
}
