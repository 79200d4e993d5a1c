package sqlstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 143: audit query paging, export and retention under attack —
// Manager.AuditPage and its cursors, AuditFilter, ExportAudit, ReadJSONL,
// VerifyJSONL, PurgeAudit and VerifyAudit, on memstore and every SQL
// dialect.

// r143Store is what the bundled stores are.
type r143Store interface {
	sa.Store
	sa.Auditor
	sa.AuditLog
	sa.AuditPurger
	sa.AuditChainReader
}

// r143Backends runs fn on memstore and on each SQL dialect (skipping a
// server that does not answer), each with a fresh store and a Manager on
// a manual clock.
func r143Backends(t *testing.T, fn func(t *testing.T, st r143Store, m *sa.Manager, clock *storetest.Clock)) {
	run := func(t *testing.T, st r143Store) {
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(st, sa.WithNow(clock.Now))
		require.NoError(t, err)
		fn(t, st, m, clock)
	}
	t.Run("memstore", func(t *testing.T) { run(t, memstore.New()) })
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) { run(t, sqltest.NewStore(t, d)) })
	}
}

var r143Base = storetest.Epoch.Truncate(time.Microsecond)

// r143Event is an event of tenant at base+us microseconds.
func r143Event(tenant string, us int, typ sa.EventType) sa.Event {
	return sa.Event{ID: uuid.New(), Time: r143Base.Add(time.Duration(us) * time.Microsecond), Type: typ,
		TenantID: tenant, Actor: storetest.Customer, Reason: "r143 " + strconv.Itoa(us)}
}

// r143Seed records a trail of several tenants whose times collide across
// tenants and within one, and whose chain order is not time order (an
// event recorded late with an earlier Time).
func r143Seed(t *testing.T, st r143Store) {
	t.Helper()
	ctx := context.Background()
	tenants := []string{"acme", "Acme", "acme.x", "zeta"}
	types := []sa.EventType{sa.EventGrantCreated, sa.EventSupportRequest, sa.EventGrantRevoked}
	for i := range 48 {
		tenant := tenants[i%len(tenants)]
		us := i / 3 // three events per microsecond, of different tenants
		if i%11 == 5 {
			us = i/3 - 7 // recorded late, with an earlier time
		}
		require.NoError(t, st.Record(ctx, r143Event(tenant, us, types[i%len(types)])))
	}
}

// r143Expect is what Events must answer for f, computed from the whole
// trail with AuditFilter.Match and AuditFilter.Compare.
func r143Expect(all []sa.Event, f sa.AuditFilter) []sa.Event {
	var out []sa.Event
	for i := range all {
		if f.Match(&all[i]) {
			out = append(out, all[i])
		}
	}
	slices.SortFunc(out, func(a, b sa.Event) int { return f.Compare(&a, &b) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

func r143IDs(evs []sa.Event) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = fmt.Sprintf("%s/%d", evs[i].TenantID, evs[i].Seq)
	}
	return out
}

// TestReview143HostileCursorTokens attacks ParseAuditCursor ("Errors:
// ErrInvalidInput (field "cursor") for anything else" than a token made by
// AuditCursor.String; "One position, one token"): every token here either
// is not one String writes or decodes to another position. AuditPage
// refuses each with ErrInvalidInput before asking the log.
func TestReview143HostileCursorTokens(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	zeroMicros := strconv.FormatInt(time.Time{}.UnixMicro(), 10)
	hostile := map[string]string{
		"negative seq":              enc("c1..-1.acme"),
		"plus seq":                  enc("c1..+1.acme"),
		"leading zero seq":          enc("c1..01.acme"),
		"seq overflow":              enc("c1..9223372036854775808.acme"),
		"empty seq":                 enc("c1...acme"),
		"leading zero micros":       enc("c1.01.1.acme"),
		"minus zero micros":         enc("c1.-0.1.acme"),
		"plus micros":               enc("c1.+5.1.acme"),
		"micros overflow":           enc("c1.9223372036854775808.1.acme"),
		"zero time as micros":       enc("c1." + zeroMicros + ".1.acme"),
		"zero nanos":                enc("c1.5:0.1.acme"),
		"padded nanos":              enc("c1.5:005.1.acme"),
		"nanos 1000":                enc("c1.5:1000.1.acme"),
		"negative nanos":            enc("c1.5:-5.1.acme"),
		"nanos without micros":      enc("c1.:5.1.acme"),
		"two colons":                enc("c1.5:5:5.1.acme"),
		"other version":             enc("c2..1.acme"),
		"three parts":               enc("c1..1"),
		"NUL in tenant":             enc("c1..1.ac\x00me"),
		"newline in tenant":         enc("c1..1.acme\n"),
		"tenant too long":           enc("c1..1." + strings.Repeat("a", sa.MaxTenantIDLen+1)),
		"invalid UTF-8 tenant":      enc("c1..1.acme\xff"),
		"padded base64":             enc("c1..1.acme") + "==",
		"standard base64 alphabet":  base64.RawStdEncoding.EncodeToString([]byte("c1..1.ac~~>me?")),
		"whitespace around":         " " + enc("c1..1.acme"),
		"stray bits":                "YzEuLjEuYWNtZT",
		"huge token":                strings.Repeat("A", 4*sa.MaxTenantIDLen+4),
		"not base64":                "c1..1.acme",
		"seq with spaces":           enc("c1.. 1.acme"),
		"seq in hex":                enc("c1..0x1.acme"),
		"micros with underscore":    enc("c1.1_000.1.acme"),
		"bidi override tenant":      enc("c1..1.ac\u202eme"),
		"raw DEL in tenant":         enc("c1..1.ac\x7fme"),
		"uppercase version":         enc("C1..1.acme"),
		"nanos with plus":           enc("c1.5:+5.1.acme"),
		"micros with trailing text": enc("c1.5x.1.acme"),
	}
	m, err := sa.NewManager(memstore.New())
	require.NoError(t, err)
	for name, tok := range hostile {
		_, err := sa.ParseAuditCursor(tok)
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		_, _, err = m.AuditPage(context.Background(), sa.AuditFilter{}, tok)
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
	}

	// Extreme but genuine positions round-trip exactly: one position, one
	// token, and back.
	for _, c := range []sa.AuditCursor{
		{},
		{Seq: math.MaxInt64, TenantID: "acme"},
		{Time: time.UnixMicro(math.MaxInt64).UTC(), TenantID: "a.b.c", Seq: 1},
		{Time: time.UnixMicro(math.MinInt64).UTC(), Seq: 0},
		{Time: time.UnixMicro(-1).UTC().Add(5 * time.Nanosecond), TenantID: "acme", Seq: 3},
		{Time: time.Time{}.Add(time.Nanosecond), TenantID: "acme"}, // one nanosecond after the zero time
		{Time: time.Unix(0, 0).UTC(), TenantID: strings.Repeat("t", sa.MaxTenantIDLen), Seq: math.MaxInt64},
	} {
		tok := c.String()
		got, err := sa.ParseAuditCursor(tok)
		require.NoError(t, err, "%+v", c)
		require.True(t, got.Time.Equal(c.Time), "%+v: %v", c, got.Time)
		require.Equal(t, c.Time.IsZero(), got.Time.IsZero(), "%+v", c)
		require.Equal(t, c.TenantID, got.TenantID)
		require.Equal(t, c.Seq, got.Seq)
		require.Equal(t, tok, got.String())
	}
	// A non-UTC cursor time is the same position, the same token.
	in := time.FixedZone("r143", 5*3600+1800)
	at := r143Base.Add(123*time.Microsecond + 7)
	require.Equal(t, sa.AuditCursor{Time: at, TenantID: "acme", Seq: 4}.String(),
		sa.AuditCursor{Time: at.In(in), TenantID: "acme", Seq: 4}.String())
}

// TestReview143FiltersAndCursorsMatchDefinition differentially attacks
// every backend's Events/AuditPage ("Events returns the events matching f
// (see AuditFilter.Match) in the order f.Order names (see
// AuditFilter.Compare)"; "The bounds go to the log as given: it answers as
// AuditFilter.Match does, also between two microseconds"): bounds and
// cursors a nanosecond either side of stored microseconds, in other
// locations, beyond the storable years, with foreign tenants, duplicate
// and unknown types; and paging every answer with AuditPage returns it
// exactly, nothing skipped or repeated.
func TestReview143FiltersAndCursorsMatchDefinition(t *testing.T) {
	r143Backends(t, func(t *testing.T, st r143Store, m *sa.Manager, _ *storetest.Clock) {
		ctx := context.Background()
		r143Seed(t, st)
		all, err := st.Events(ctx, sa.AuditFilter{})
		require.NoError(t, err)
		require.Len(t, all, 48)

		east := time.FixedZone("east", 5*3600+1800)
		west := time.FixedZone("west", -7*3600-1)
		at := func(us int, ns int, loc *time.Location) time.Time {
			return r143Base.Add(time.Duration(us)*time.Microsecond + time.Duration(ns)).In(loc)
		}
		var bounds []time.Time
		for _, us := range []int{-8, 0, 4, 9} {
			for _, ns := range []int{-1, 0, 1, 999} {
				bounds = append(bounds, at(us, ns, []*time.Location{time.UTC, east, west}[(us+ns+9)%3]))
			}
		}
		far := []time.Time{
			time.Time{}.Add(time.Nanosecond), time.Date(999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
			time.Date(9999, 12, 31, 23, 59, 59, 999_999_001, time.UTC), time.Date(20000, 1, 1, 0, 0, 0, 0, east),
		}
		type rng struct{ since, until time.Time }
		ranges := []rng{{}}
		for i, b := range bounds {
			ranges = append(ranges, rng{since: b}, rng{until: b})
			if i+5 < len(bounds) {
				ranges = append(ranges, rng{since: b, until: bounds[i+5]})
			}
		}
		for _, b := range far {
			ranges = append(ranges, rng{since: b}, rng{until: b})
		}
		cursors := []*sa.AuditCursor{nil,
			{Time: at(4, 1, east), TenantID: "acme", Seq: 2},
			{Time: at(4, 0, west), TenantID: "Acme", Seq: 1},
			{Time: at(4, 0, time.UTC), TenantID: "acme.x", Seq: math.MaxInt64},
			{Time: at(9, -1, time.UTC), TenantID: "", Seq: 0},
			{Time: far[1], TenantID: "zzz", Seq: 5},
			{Time: far[2], TenantID: "", Seq: 0},
			{Time: at(-8, 999, east), TenantID: "zeta", Seq: 3},
		}
		typeSets := [][]sa.EventType{nil,
			{sa.EventGrantCreated, sa.EventGrantCreated, "no.such.type"},
			{"no.such.type"},
		}
		n := 0
		for _, order := range []sa.AuditOrder{sa.AuditByTime, sa.AuditByChain} {
			for _, tenant := range []string{"", "acme", "acme.x", "nobody"} {
				for ri, r := range ranges {
					for ci, c := range cursors {
						ts := typeSets[(ri+ci)%len(typeSets)]
						if (ri+ci)%3 != 0 && ci != 0 {
							continue // keep the run short: a third of the combinations with a cursor
						}
						f := sa.AuditFilter{TenantID: tenant, Since: r.since, Until: r.until, Order: order, After: c, Types: ts}
						if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
							continue
						}
						want := r143Expect(all, f)
						got, err := m.Events(ctx, f)
						require.NoError(t, err, "%+v", f)
						require.Equal(t, r143IDs(want), r143IDs(got), "filter %+v (after %+v)", f, c)
						n++
						if n%5 != 0 {
							continue
						}
						// Page it: the pages together are the answer.
						var paged []sa.Event
						pf := f
						pf.After, pf.Limit = nil, 4
						cursor := ""
						if c != nil {
							cursor = c.String()
						}
						for range 100 {
							evs, next, err := m.AuditPage(ctx, pf, cursor)
							require.NoError(t, err)
							paged = append(paged, evs...)
							if next == "" {
								require.Less(t, len(evs), pf.Limit)
								break
							}
							require.Len(t, evs, pf.Limit)
							cursor = next
						}
						require.Equal(t, r143IDs(want), r143IDs(paged), "paged %+v (after %+v)", f, c)
					}
				}
			}
		}
		require.Greater(t, n, 300)
	})
}

// TestReview143PagingWhileWritersAndPurgeRun attacks AuditFilter.After's
// guarantee ("a page never repeats an event of an earlier page. In
// AuditByChain order with a TenantID nothing is ever skipped either") with
// events of the tenant and of others arriving between pages and a purge
// running between two of them that deletes events the pager has not read
// (its cursor then points into purged events): every event that was not
// purged before it was read is returned once, in chain order.
func TestReview143PagingWhileWritersAndPurgeRun(t *testing.T) {
	r143Backends(t, func(t *testing.T, st r143Store, m *sa.Manager, clock *storetest.Clock) {
		ctx := context.Background()
		us := 0
		record := func(tenant string) {
			us++
			require.NoError(t, st.Record(ctx, r143Event(tenant, us, sa.EventSupportRequest)))
		}
		for range 6 {
			record("acme")
			record("aaa")
			record("zzz")
		}
		clock.Set(r143Base.Add(time.Hour))
		f := sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain, Limit: 4}
		seen := map[int64]bool{}
		var seqs []int64
		purgedUnread := map[int64]bool{}
		cursor := ""
		for page := 0; ; page++ {
			evs, next, err := m.AuditPage(ctx, f, cursor)
			require.NoError(t, err)
			for _, e := range evs {
				require.Equal(t, "acme", e.TenantID)
				require.False(t, seen[e.Seq], "seq %d repeated", e.Seq)
				seen[e.Seq] = true
				seqs = append(seqs, e.Seq)
			}
			if next == "" {
				break
			}
			require.Less(t, page, 50)
			cursor = next
			for range 3 {
				record("acme")
				record("aaa")
				record("zzz")
			}
			if page == 1 {
				// Purge acme up to well past the cursor: the next page starts
				// after events that are gone.
				last := seqs[len(seqs)-1]
				before := r143Base.Add(time.Duration(us-2) * time.Microsecond).In(time.FixedZone("r143", -3*3600))
				res, err := m.PurgeAudit(ctx, "acme", before)
				require.NoError(t, err)
				require.Greater(t, res.Checkpoint.Seq, last+1, "the purge deletes unread events")
				for s := last + 1; s <= res.Checkpoint.Seq; s++ {
					purgedUnread[s] = true
				}
			}
		}
		require.True(t, slices.IsSorted(seqs))
		st2, err := st.AuditChain(ctx, "acme")
		require.NoError(t, err)
		for s := int64(1); s <= st2.Head.Seq; s++ {
			require.True(t, seen[s] != purgedUnread[s], "seq %d: seen %v, purged unread %v", s, seen[s], purgedUnread[s])
		}
		rep, err := m.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.Equal(t, st2.Head.Seq, rep.Chains["acme"].Head.Seq)
	})
}

// TestReview143LimitExtremes attacks AuditFilter.Limit ("at most
// MaxListLimit") and AuditPage's next ("” when this page is the last one
// (it holds fewer events than the limit)").
func TestReview143LimitExtremes(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	m, err := sa.NewManager(st)
	require.NoError(t, err)
	for i := range 6 {
		require.NoError(t, st.Record(ctx, r143Event("acme", i, sa.EventSupportRequest)))
	}
	for _, l := range []int{-1, math.MinInt, sa.MaxListLimit + 1, math.MaxInt} {
		f := sa.AuditFilter{Limit: l}
		_, _, err := m.AuditPage(ctx, f, "")
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%d", l)
		_, err = m.Events(ctx, f)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%d", l)
		var buf bytes.Buffer
		_, err = m.ExportAudit(ctx, &buf, f)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%d", l)
		require.Zero(t, buf.Len())
	}
	evs, next, err := m.AuditPage(ctx, sa.AuditFilter{Limit: sa.MaxListLimit}, "")
	require.NoError(t, err)
	require.Len(t, evs, 6)
	require.Empty(t, next)
	// A page of exactly the limit has a next; the page after it is empty
	// and the last.
	evs, next, err = m.AuditPage(ctx, sa.AuditFilter{Limit: 3}, "")
	require.NoError(t, err)
	require.Len(t, evs, 3)
	evs, next, err = m.AuditPage(ctx, sa.AuditFilter{Limit: 3}, next)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	require.NotEmpty(t, next)
	evs, next, err = m.AuditPage(ctx, sa.AuditFilter{Limit: 3}, next)
	require.NoError(t, err)
	require.Empty(t, evs)
	require.Empty(t, next)
	// Limit 0 is DefaultAuditPageSize.
	for i := range sa.DefaultAuditPageSize {
		require.NoError(t, st.Record(ctx, r143Event("big", i, sa.EventSupportRequest)))
	}
	evs, next, err = m.AuditPage(ctx, sa.AuditFilter{TenantID: "big"}, "")
	require.NoError(t, err)
	require.Len(t, evs, sa.DefaultAuditPageSize)
	require.NotEmpty(t, next)
	// Types entries: an empty one and one too wide are refused.
	for _, ts := range [][]sa.EventType{{""}, {sa.EventType(strings.Repeat("x", 256))}, {"a\nb"}} {
		_, err := m.Events(ctx, sa.AuditFilter{Types: ts})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%q", ts)
	}
}

// r143FailingWriter takes the first budget bytes, then fails.
type r143FailingWriter struct {
	got    bytes.Buffer
	budget int
	calls  int
	hook   func() // run on the first Write
}

var errR143Write = errors.New("r143: disk full")

func (w *r143FailingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls == 1 && w.hook != nil {
		w.hook()
	}
	if w.budget < 0 {
		w.got.Write(p)
		return len(p), nil
	}
	k := min(len(p), w.budget-w.got.Len())
	w.got.Write(p[:k])
	if k < len(p) {
		return k, errR143Write
	}
	return k, nil
}

// r143Lines splits an export into its lines (each with its newline).
func r143Lines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, slices.Clip(b))
			break
		}
		out = append(out, slices.Clip(b[:i+1])) // appends to a line never write into the next
		b = b[i+1:]
	}
	return out
}

// TestReview143ExportWriterFailsMidway attacks ExportAudit's count ("It
// returns how many events it wrote out (on an error: those of the pages
// written completely)") and its error ("w's (a page w failed to take may
// be cut short)"): whatever byte w fails at, the error is w's, the count
// is that of the whole pages w took, and those lines verify.
func TestReview143ExportWriterFailsMidway(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	m, err := sa.NewManager(st)
	require.NoError(t, err)
	for i := range 2*sa.ExportPageSize + 300 {
		require.NoError(t, st.Record(ctx, r143Event("acme", i, sa.EventSupportRequest)))
	}
	f := sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain}
	var full bytes.Buffer
	n, err := m.ExportAudit(ctx, &full, f)
	require.NoError(t, err)
	require.Equal(t, 2*sa.ExportPageSize+300, n)
	lines := r143Lines(full.Bytes())
	require.Len(t, lines, n)
	page1 := len(bytes.Join(lines[:sa.ExportPageSize], nil))
	page2 := len(bytes.Join(lines[:2*sa.ExportPageSize], nil))
	for _, budget := range []int{0, 1, 100, 64 << 10, page1 - 1, page1, page1 + 1, page2 - 1, page2, full.Len() - 1} {
		w := &r143FailingWriter{budget: budget}
		n, err := m.ExportAudit(ctx, w, f)
		require.ErrorIs(t, err, errR143Write, "budget %d", budget)
		wantN := 0
		if budget >= page1 {
			wantN = sa.ExportPageSize
		}
		if budget >= page2 {
			wantN = 2 * sa.ExportPageSize
		}
		require.Equal(t, wantN, n, "budget %d", budget)
		require.True(t, bytes.HasPrefix(full.Bytes(), w.got.Bytes()), "budget %d: what w took is the export's start", budget)
		// The count's lines are complete and verify.
		complete := bytes.Join(lines[:n], nil)
		require.True(t, bytes.HasPrefix(w.got.Bytes(), complete))
		rep, err := sa.VerifyJSONL(bytes.NewReader(complete))
		require.NoError(t, err)
		require.EqualValues(t, n, rep.Events)
	}
}

// TestReview143ExportDetectsPurgeOfUnwrittenEvents attacks ExportAudit's
// promise that a purge during an export of whole chains in chain order
// "and deletes events the export had not written yet fails the export
// with ErrConflict once it has written what remains", with the purge run
// by the writer itself after the first page was read, on several tenants;
// and that a purge that deletes only written events fails nothing.
func TestReview143ExportDetectsPurgeOfUnwrittenEvents(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		cutUS    int // purge acme's events before this microsecond
		conflict bool
	}{
		{"deletes unwritten events", sa.ExportPageSize + 200, true},
		{"deletes exactly the written ones", sa.ExportPageSize - 1, false}, // page 1: aaa 1, acme 1..999
		{"deletes one unwritten event", sa.ExportPageSize, true},
		{"deletes the whole chain", 10 * sa.ExportPageSize, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			clock := storetest.NewClock(r143Base.Add(time.Hour))
			m, err := sa.NewManager(st, sa.WithNow(clock.Now))
			require.NoError(t, err)
			// acme: events at 0..1499 µs; aaa sorts first (its lines come
			// first); zzz last.
			require.NoError(t, st.Record(ctx, r143Event("aaa", 0, sa.EventSupportRequest)))
			for i := range sa.ExportPageSize + 500 {
				require.NoError(t, st.Record(ctx, r143Event("acme", i, sa.EventSupportRequest)))
			}
			require.NoError(t, st.Record(ctx, r143Event("zzz", 0, sa.EventSupportRequest)))
			w := &r143FailingWriter{budget: -1}
			w.hook = func() {
				_, err := m.PurgeAudit(ctx, "acme", r143Base.Add(time.Duration(tc.cutUS)*time.Microsecond))
				require.NoError(t, err)
			}
			_, err = m.ExportAudit(ctx, w, sa.AuditFilter{Order: sa.AuditByChain})
			if tc.conflict {
				require.ErrorIs(t, err, sa.ErrConflict)
			} else {
				require.NoError(t, err)
			}
			// What was written verifies (a gap where the purge cut is
			// reported as such), and a new export is complete.
			rep, verr := sa.VerifyJSONL(bytes.NewReader(w.got.Bytes()))
			if tc.conflict {
				require.ErrorIs(t, verr, sa.ErrTampered)
				require.Equal(t, sa.BreakGap, rep.Break.Kind)
			} else {
				require.NoError(t, verr)
			}
			var again bytes.Buffer
			_, err = m.ExportAudit(ctx, &again, sa.AuditFilter{Order: sa.AuditByChain})
			require.NoError(t, err)
			rep, err = sa.VerifyJSONL(&again)
			require.NoError(t, err)
			for _, tenant := range []string{"aaa", "acme", "zzz"} {
				live, err := m.VerifyAudit(ctx, tenant)
				require.NoError(t, err)
				require.Equal(t, live.Chains[tenant], rep.Chains[tenant], tenant)
			}
		})
	}
}

// r143Export returns a chain-order export of two tenants, acme purged so
// that its lines start mid-chain with a prev_hash.
func r143Export(t *testing.T) (lines [][]byte, m *sa.Manager) {
	t.Helper()
	ctx := context.Background()
	st := memstore.New()
	clock := storetest.NewClock(r143Base.Add(time.Hour))
	m, err := sa.NewManager(st, sa.WithNow(clock.Now))
	require.NoError(t, err)
	for i := range 8 {
		e := r143Event("acme", i, sa.EventSupportChange)
		e.Attrs = map[string]string{"k": "v" + strconv.Itoa(i)}
		e.After = json.RawMessage(`{"x":1}`)
		require.NoError(t, st.Record(ctx, e))
		require.NoError(t, st.Record(ctx, r143Event("beta", i, sa.EventSupportRequest)))
	}
	_, err = m.PurgeAudit(ctx, "acme", r143Base.Add(3*time.Microsecond))
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = m.ExportAudit(ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	_, err = sa.VerifyJSONL(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	return r143Lines(buf.Bytes()), m
}

// r143Edit decodes line as a generic object, lets fn change it and
// encodes it back in the export's field order.
func r143Edit(t *testing.T, line []byte, fn func(map[string]any)) []byte {
	t.Helper()
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(line, &raw))
	obj := make(map[string]any, len(raw))
	for k, v := range raw {
		obj[k] = v // untouched values keep their bytes
	}
	fn(obj)
	order := []string{"v", "tenant_id", "seq", "id", "time", "type", "grant_id", "actor", "reason", "attrs",
		"before", "after", "before_b64", "after_b64", "encoding", "hash", "prev_hash"}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if !slices.Contains(order, k) {
			order = append(order, k) // a field the export has not: last
		}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for _, k := range order {
		v, ok := obj[k]
		if !ok {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		var vb []byte
		if raw, ok := v.(json.RawMessage); ok {
			vb = raw
		} else {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			require.NoError(t, enc.Encode(v))
			vb = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// r143Rehash recomputes a line's hash from its content and prev (as a
// forger who can hash would).
func r143Rehash(t *testing.T, line []byte, prev []byte) []byte {
	t.Helper()
	var e sa.Event
	require.NoError(t, sa.ReadJSONL(bytes.NewReader(line), func(ev sa.Event) error { e = ev; return nil }))
	return r143Edit(t, line, func(o map[string]any) { o["hash"] = hex.EncodeToString(e.ChainHash(prev)) })
}

// TestReview143VerifyJSONLRefusesDoctoredExports attacks VerifyJSONL
// ("Errors: a *ChainBreak wrapping ErrTampered ... for the first broken
// link; ErrInvalidInput naming the line for a malformed line, or one not
// exactly as ExportAudit writes it"): every doctoring of a genuine export
// here — lines removed, repeated, swapped, changed, respelled, extended —
// is refused; the only ones that pass (a cut at the end, a first line's
// prev_hash removed) show in the reported Head or From, as documented.
func TestReview143VerifyJSONLRefusesDoctoredExports(t *testing.T) {
	lines, m := r143Export(t)
	ctx := context.Background()
	live := map[string]sa.ChainRange{}
	for _, tenant := range []string{"acme", "beta"} {
		rep, err := m.VerifyAudit(ctx, tenant)
		require.NoError(t, err)
		live[tenant] = rep.Chains[tenant]
	}
	// Lines 0..5: acme 4..9 (9: audit.purged); 6..13: beta 1..8.
	require.Contains(t, string(lines[0]), `"seq":4,`)
	require.Contains(t, string(lines[0]), `"prev_hash":"`)
	require.Contains(t, string(lines[6]), `"tenant_id":"beta","seq":1,`)
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	without := func(i int) []byte { return join(join(lines[:i]...), join(lines[i+1:]...)) }
	replace := func(i int, l []byte) []byte {
		c := slices.Clone(lines)
		c[i] = l
		return join(c...)
	}
	edit := func(i int, fn func(map[string]any)) []byte { return replace(i, r143Edit(t, lines[i], fn)) }
	swapped := slices.Clone(lines)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	// Changes to the chain: ErrTampered with the break.
	tampered := map[string][]byte{
		"middle line removed":     without(3),
		"line repeated":           join(join(lines[:4]...), lines[3], join(lines[4:]...)),
		"lines swapped":           join(swapped...),
		"reason changed":          edit(2, func(o map[string]any) { o["reason"] = "nothing to see" }),
		"attr changed":            edit(2, func(o map[string]any) { o["attrs"] = map[string]any{"k": "v9"} }),
		"seq changed":             edit(9, func(o map[string]any) { o["seq"] = 30 }),
		"after changed":           edit(2, func(o map[string]any) { o["after"] = json.RawMessage(`{"x":2}`) }),
		"first prev_hash changed": edit(0, func(o map[string]any) { o["prev_hash"] = strings.Repeat("0", 64) }),
		"wrong prev_hash later":   edit(3, func(o map[string]any) { o["prev_hash"] = strings.Repeat("0", 64) }),
	}
	// Lines not as ExportAudit writes them: ErrInvalidInput.
	malformed := map[string][]byte{
		"hash upper case": edit(2, func(o map[string]any) { o["hash"] = strings.ToUpper(r143Str(o["hash"])) }),
		"time in another zone": edit(2, func(o map[string]any) {
			tm, _ := time.Parse(time.RFC3339Nano, r143Str(o["time"]))
			o["time"] = tm.In(time.FixedZone("x", 3600)).Format(time.RFC3339Nano)
		}),
		"time with nanoseconds": edit(2, func(o map[string]any) {
			o["time"] = strings.TrimSuffix(r143Str(o["time"]), "Z") + "000Z"
		}),
		"extra field":          edit(2, func(o map[string]any) { o["note"] = "x" }),
		"field dropped":        edit(2, func(o map[string]any) { delete(o, "grant_id") }),
		"needless base64":      edit(2, func(o map[string]any) { o["after_b64"] = "eyJ4IjoxfQ=="; delete(o, "after") }),
		"version 2":            edit(2, func(o map[string]any) { o["v"] = 2 }),
		"keys reordered":       replace(2, bytes.Replace(lines[2], []byte(`{"v":1,"tenant_id":"acme"`), []byte(`{"tenant_id":"acme","v":1`), 1)),
		"key repeated":         replace(2, bytes.Replace(lines[2], []byte(`"reason":`), []byte(`"reason":"x","reason":`), 1)),
		"key in upper case":    replace(2, bytes.Replace(lines[2], []byte(`"reason":`), []byte(`"Reason":`), 1)),
		"two values on a line": replace(2, slices.Concat(bytes.TrimSuffix(lines[2], []byte("\n")), lines[3])),
		"stray bracket":        replace(2, slices.Concat(bytes.TrimSuffix(lines[2], []byte("\n")), []byte("]\n"))),
		"line cut short":       replace(2, lines[2][:len(lines[2])/2]),
		"escaped where not":    replace(2, bytes.Replace(lines[2], []byte(`"acme"`), []byte(`"\u0061cme"`), 1)),
	}
	chain := map[string][]byte{
		"beta line moved to end": join(join(lines[:7]...), join(lines[8:]...), lines[7]),
		"other export appended":  join(join(lines...), lines[6]),
		"forged seq 0 line":      join(r143Rehash(t, r143Edit(t, lines[6], func(o map[string]any) { o["seq"] = 0 }), nil), join(lines...)),
		"reason changed, hash recomputed, next kept": replace(2, r143Rehash(t, r143Edit(t, lines[2], func(o map[string]any) { o["reason"] = "x" }),
			r143HashOf(t, lines[1]))),
	}
	maps.Copy(tampered, chain)
	for name, doc := range tampered {
		rep, err := sa.VerifyJSONL(bytes.NewReader(doc))
		require.ErrorIs(t, err, sa.ErrTampered, name)
		require.NotNil(t, rep.Break, name)
	}
	for name, doc := range malformed {
		_, err := sa.VerifyJSONL(bytes.NewReader(doc))
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		require.NotErrorIs(t, err, sa.ErrTampered, name)
	}
	// Documented passes: each shows in the report.
	rep, err := sa.VerifyJSONL(bytes.NewReader(without(len(lines) - 1)))
	require.NoError(t, err, "a cut at the end")
	require.NotEqual(t, live["beta"].Head, rep.Chains["beta"].Head, "shows in the Head")
	rep, err = sa.VerifyJSONL(bytes.NewReader(without(5)))
	require.NoError(t, err, "acme's last line, its audit.purged event, cut")
	require.NotEqual(t, live["acme"].Head, rep.Chains["acme"].Head, "shows in the Head")
	noPrev := edit(0, func(o map[string]any) { delete(o, "prev_hash") })
	rep, err = sa.VerifyJSONL(bytes.NewReader(noPrev))
	require.NoError(t, err, "a first line without prev_hash anchors")
	require.NotEqual(t, live["acme"].From, rep.Chains["acme"].From, "shows in From")
	// Surrounding white space, CRLF line ends and blank lines change nothing.
	crlf := bytes.ReplaceAll(join(lines...), []byte("\n"), []byte("\r\n\n  \t\n"))
	rep, err = sa.VerifyJSONL(bytes.NewReader(crlf))
	require.NoError(t, err)
	require.Equal(t, live, rep.Chains)
}

// r143Str is a JSON string value of a line's field.
func r143Str(v any) string {
	var s string
	if raw, ok := v.(json.RawMessage); ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

func r143HashOf(t *testing.T, line []byte) []byte {
	t.Helper()
	var h []byte
	require.NoError(t, sa.ReadJSONL(bytes.NewReader(line), func(e sa.Event) error { h = e.Hash; return nil }))
	return h
}

// TestReview143VerifyJSONLSeqOneWithPrevHash attacks VerifyJSONL's
// reading of a tenant's first line ("checked against its prev_hash, or
// against the start of the chain when its Seq is 1") and ChainRange.From
// ("the zero link (the start of the chain)"; ChainLink: "The zero
// ChainLink is the start of a chain (before the event with Seq 1)"): a
// line with Seq 1 whose prev_hash is not empty — which ExportAudit never
// writes, and no chain holds, since event 1 chains to nothing — was taken
// as verified, and From reported Seq 0, "the start of the chain", with a
// hash no chain starts from (found by review 143; now BreakForged).
func TestReview143VerifyJSONLSeqOneWithPrevHash(t *testing.T) {
	lines, _ := r143Export(t)
	bogus := bytes.Repeat([]byte{0xab}, 32)
	first := r143Edit(t, lines[6], func(o map[string]any) { o["prev_hash"] = hex.EncodeToString(bogus) }) // beta seq 1
	first = r143Rehash(t, first, bogus)
	doc := first
	rep, err := sa.VerifyJSONL(bytes.NewReader(doc))
	if err == nil {
		require.True(t, rep.Chains["beta"].From.Seq == 0 && len(rep.Chains["beta"].From.Hash) == 0,
			"From %+v is reported as the start of the chain", rep.Chains["beta"].From)
	}
	require.ErrorIs(t, err, sa.ErrTampered, "a Seq 1 line must chain to the start, not to prev_hash %x", bogus)
}

// TestReview143PurgeEdges attacks Manager.PurgeAudit's bounds ("deletes
// tenantID's audit events older than before"; "Errors: ErrInvalidInput
// ... for a zero before"; "Nothing is deleted or recorded when no event is
// old enough") on every backend: a before in another location, a
// nanosecond either side of an event, before every storable year, beyond
// them, and again at the same far-future before; the chain verifies after
// each purge and the audit.purged event records the bound in UTC.
func TestReview143PurgeEdges(t *testing.T) {
	r143Backends(t, func(t *testing.T, st r143Store, m *sa.Manager, clock *storetest.Clock) {
		ctx := context.Background()
		for i := range 10 {
			require.NoError(t, st.Record(ctx, r143Event("acme", i, sa.EventSupportRequest)))
			require.NoError(t, st.Record(ctx, r143Event("other", i, sa.EventSupportRequest)))
		}
		clock.Set(r143Base.Add(time.Hour))
		east := time.FixedZone("east", 9*3600+2700)
		_, err := m.PurgeAudit(ctx, "acme", time.Time{})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = m.PurgeAudit(ctx, "", r143Base)
		require.ErrorIs(t, err, sa.ErrInvalidInput)

		count := func(tenant string) int {
			evs, err := m.Events(ctx, sa.AuditFilter{TenantID: tenant})
			require.NoError(t, err)
			return len(evs)
		}
		verify := func() {
			for _, tenant := range []string{"acme", "other"} {
				_, err := m.VerifyAudit(ctx, tenant)
				require.NoError(t, err, tenant)
			}
		}
		purged := func() []sa.Event {
			evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventAuditPurged}, Order: sa.AuditByChain})
			require.NoError(t, err)
			return evs
		}
		// Before every storable year, or exactly at the first event: nothing.
		for _, before := range []time.Time{
			time.Time{}.Add(time.Nanosecond), time.Date(500, 1, 1, 0, 0, 0, 0, east), r143Base.In(east), r143Base.Add(-time.Nanosecond),
		} {
			res, err := m.PurgeAudit(ctx, "acme", before)
			require.NoError(t, err, "%v", before)
			require.Zero(t, res.Deleted, "%v", before)
			require.Zero(t, res.Checkpoint, "%v", before)
			require.Empty(t, purged())
			require.Equal(t, 10, count("acme"))
		}
		// One nanosecond after event 3's time, in another zone: events 0..3.
		res, err := m.PurgeAudit(ctx, "acme", r143Base.Add(3*time.Microsecond+time.Nanosecond).In(east))
		require.NoError(t, err)
		require.EqualValues(t, 4, res.Deleted)
		require.EqualValues(t, 4, res.Checkpoint.Seq)
		ps := purged()
		require.Len(t, ps, 1)
		require.Equal(t, r143Base.Add(4*time.Microsecond).UTC().Format("2006-01-02T15:04:05.000000Z07:00"), ps[0].Attrs[sa.AttrPurgeBefore],
			"the bound rounded up, in UTC")
		require.Equal(t, 10, count("other"), "another tenant's trail is untouched")
		verify()
		// Past every storable year: every event goes, the purge's own event
		// stays, and the chain verifies.
		for _, before := range []time.Time{time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(20000, 1, 1, 0, 0, 0, 0, east)} {
			res, err := m.PurgeAudit(ctx, "acme", before)
			require.NoError(t, err, "%v", before)
			require.Positive(t, res.Deleted)
			evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.Equal(t, sa.EventAuditPurged, evs[0].Type)
			require.Equal(t, "9999-12-31T23:59:59.999999Z", evs[0].Attrs[sa.AttrPurgeBefore])
			require.Equal(t, strconv.FormatInt(res.Checkpoint.Seq, 10), evs[0].Attrs[sa.AttrCheckpointSeq])
			verify()
		}
		require.Equal(t, 10, count("other"))
	})
}

// TestReview143ReadJSONLRoundTripsHostileValues attacks ReadJSONL's promise
// that it returns each event "exactly as exported (Seq and Hash included)"
// and that "Two escape hatches keep every line lossless, so the hash still
// verifies": events of a host's auditor with invalid UTF-8, JSON-looking
// reasons, non-compact and invalid JSON in Before/After, attribute keys
// that sort differently as bytes and as runes, all read back identical
// and verify.
func TestReview143ReadJSONLRoundTripsHostileValues(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	m, err := sa.NewManager(st)
	require.NoError(t, err)
	evs := []sa.Event{
		{Reason: "\"},{\"v\":1,\"seq\":99", Attrs: map[string]string{"é": "1", "z": "2", "Z": "3", "": "empty key"}},
		{Reason: "bad \xff utf-8", Attrs: map[string]string{"k\xfe": "v"}},
		{Before: json.RawMessage(`{ "spaced": true }`), After: json.RawMessage(`not json`)},
		{Before: json.RawMessage("\"\xff\""), After: json.RawMessage(`{"html":"<b>&amp;</b>"}`)},
		{Before: json.RawMessage(`{"a":1,"a":2}`), After: json.RawMessage(`1e400`)},
		{Reason: "line\u2028separator\u2029and <script>"},
	}
	for i := range evs {
		e := r143Event("acme", i, sa.EventType("host.custom"))
		e.Reason, e.Attrs, e.Before, e.After = evs[i].Reason, evs[i].Attrs, evs[i].Before, evs[i].After
		require.NoError(t, st.Record(ctx, e))
	}
	want, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	var got []sa.Event
	require.NoError(t, sa.ReadJSONL(bytes.NewReader(buf.Bytes()), func(e sa.Event) error { got = append(got, e); return nil }))
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		if len(w.Attrs) == 0 {
			w.Attrs = nil
		}
		require.Equal(t, w, g, "event %d", i)
	}
	rep, err := sa.VerifyJSONL(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.EqualValues(t, len(want), rep.Events)
	// A reader that stops with an error gets it back unchanged.
	stop := errors.New("r143 stop")
	require.Equal(t, stop, sa.ReadJSONL(bytes.NewReader(buf.Bytes()), func(sa.Event) error { return stop }))
	// A reader whose source fails at a line's end gets that error.
	end := bytes.IndexByte(buf.Bytes(), '\n') + 1
	_, err = sa.VerifyJSONL(io.MultiReader(bytes.NewReader(buf.Bytes()[:end]), iotestErr{}))
	require.ErrorIs(t, err, errR143Write)
	require.NotErrorIs(t, err, sa.ErrInvalidInput)
}

// TestReview143ReaderErrorMidLine attacks VerifyJSONL's and ReadJSONL's
// errors ("ErrInvalidInput naming the line for a malformed line ...; r's
// error"): when r fails in the middle of a line (a connection cut while
// streaming an export), the error must be r's, not an ErrInvalidInput
// that calls the export malformed.
func TestReview143ReaderErrorMidLine(t *testing.T) {
	lines, _ := r143Export(t)
	doc := bytes.Join(lines, nil)
	cut := len(lines[0]) + len(lines[1])/2
	_, err := sa.VerifyJSONL(io.MultiReader(bytes.NewReader(doc[:cut]), iotestErr{}))
	require.ErrorIs(t, err, errR143Write)
	require.NotErrorIs(t, err, sa.ErrInvalidInput, "the export is not malformed: reading it failed")
	err = sa.ReadJSONL(io.MultiReader(bytes.NewReader(doc[:cut]), iotestErr{}), func(sa.Event) error { return nil })
	require.ErrorIs(t, err, errR143Write)
	require.NotErrorIs(t, err, sa.ErrInvalidInput)
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errR143Write }
