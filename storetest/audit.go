package storetest

import (
	"cmp"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// auditCases are the conformance cases of the audit trail (Auditor and
// AuditLog); chainCases (audit_chain.go) follow them.
var auditCases = []testCase{
	{"AuditEventsWithChanges", testAuditWithChanges},
	{"AuditFilter", testAuditFilter},
	{"AuditFilterSession", testAuditFilterSession},
	{"AuditFilterManyTypes", testAuditFilterManyTypes},
	{"AuditOrderAndLimit", testAuditOrder},
	{"AuditChain", testAuditChain},
	{"AuditRoundTrip", testAuditRoundTrip},
	{"AuditPageByTime", testAuditPageByTime},
	{"AuditPageByChain", testAuditPageByChain},
	{"AuditPageWhileWriting", testAuditPageWhileWriting},
	{"AuditSupportLabels", testAuditSupportLabels},
}

func testAuditWithChanges(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	g := h.grant(sa.GrantInput{Reason: "why not", Duration: time.Hour})
	_, err := h.m.Extend(h.ctx, g.ID, g.ExpiresAt.Add(time.Hour), Customer)
	require.NoError(t, err)
	_, err = h.m.Revoke(h.ctx, g.ID, Support, "done")
	require.NoError(t, err)
	evs, err := l.Events(h.ctx, sa.AuditFilter{GrantID: g.ID})
	require.NoError(t, err)
	require.Len(t, evs, 3)
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantExtended, sa.EventGrantRevoked},
		[]sa.EventType{evs[0].Type, evs[1].Type, evs[2].Type})
	require.Equal(t, "why not", evs[0].Reason)
	require.Empty(t, evs[0].Before)
	require.JSONEq(t, string(mustJSON(t, g)), string(evs[0].After))
	require.Equal(t, Support, evs[2].Actor)
	require.Equal(t, "done", evs[2].Reason)
	var after sa.Grant
	require.NoError(t, jsonUnmarshal(evs[2].After, &after))
	require.False(t, after.RevokedAt.IsZero())
}

func testAuditFilter(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	g1 := h.grant(sa.GrantInput{TenantID: "acme"})
	h.clock.Advance(time.Second)
	t1 := h.clock.Now().Truncate(time.Microsecond)
	g2 := h.grant(sa.GrantInput{TenantID: "globex"})
	h.clock.Advance(time.Second)
	t2 := h.clock.Now().Truncate(time.Microsecond)
	_, err := h.m.Revoke(h.ctx, g1.ID, Support, "")
	require.NoError(t, err)
	sup := sa.Actor{Kind: sa.ActorSupport, ID: "other@vendor.example"}
	require.NoError(t, h.store.(sa.Auditor).Record(h.ctx, sa.Event{ID: uuid.New(), Time: t2, Type: sa.EventSupportRequest, TenantID: "globex", Actor: sup,
		Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/settings"}}))

	q := func(f sa.AuditFilter) []sa.EventType {
		t.Helper()
		evs, err := l.Events(h.ctx, f)
		require.NoError(t, err)
		return eventTypes(evs)
	}
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked}, q(sa.AuditFilter{TenantID: "acme"}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventSupportRequest}, q(sa.AuditFilter{TenantID: "globex"}))
	require.Equal(t, []sa.EventType{sa.EventGrantRevoked, sa.EventSupportRequest}, q(sa.AuditFilter{ActorKind: sa.ActorSupport}))
	require.Equal(t, []sa.EventType{sa.EventSupportRequest}, q(sa.AuditFilter{ActorID: sup.ID}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantCreated}, q(sa.AuditFilter{Types: []sa.EventType{sa.EventGrantCreated}}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked, sa.EventSupportRequest},
		q(sa.AuditFilter{Types: []sa.EventType{sa.EventGrantRevoked, sa.EventSupportRequest, sa.EventGrantCreated}, Since: t1}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated}, q(sa.AuditFilter{GrantID: g2.ID}))
	require.Equal(t, []sa.EventType{sa.EventGrantCreated}, q(sa.AuditFilter{Since: t1, Until: t2}), "Since inclusive, Until exclusive")
	require.Equal(t, []sa.EventType{sa.EventGrantRevoked, sa.EventSupportRequest}, q(sa.AuditFilter{Since: t2}))
	require.Equal(t, []sa.EventType{}, q(sa.AuditFilter{TenantID: "acme", ActorKind: sa.ActorSystem}))
	require.Equal(t, []sa.EventType{}, q(sa.AuditFilter{TenantID: "initech"}))
}

func testAuditOrder(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	// Several events at the same instant keep their insertion order (Seq).
	var want []uuid.UUID
	for i := 0; i < 6; i++ {
		e := sa.Event{ID: uuid.New(), Time: h.clock.Now().Truncate(time.Microsecond), Type: sa.EventSupportRequest, TenantID: "acme", Actor: Support,
			Attrs: map[string]string{"i": fmt.Sprint(i)}}
		require.NoError(t, h.store.(sa.Auditor).Record(h.ctx, e))
		want = append(want, e.ID)
	}
	evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	var got []uuid.UUID
	for i, e := range evs {
		got = append(got, e.ID)
		require.EqualValues(t, i+1, e.Seq)
	}
	require.Equal(t, want, got)
	lim, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Limit: 4})
	require.NoError(t, err)
	require.Len(t, lim, 4)
	require.Equal(t, want[:4], grantEventIDs(lim))
}

func grantEventIDs(evs []sa.Event) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func testAuditChain(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	g := h.grant(sa.GrantInput{TenantID: "acme"})
	h.grant(sa.GrantInput{TenantID: "globex"})
	_, err := h.m.Revoke(h.ctx, g.ID, Customer, "x")
	require.NoError(t, err)
	for _, tenant := range []string{"acme", "globex"} {
		evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: tenant})
		require.NoError(t, err)
		var prev []byte
		for i, e := range evs {
			require.EqualValues(t, i+1, e.Seq, "per-tenant sequence")
			require.Equal(t, e.ChainHash(prev), e.Hash, "hash chain of %s at %d", tenant, e.Seq)
			prev = e.Hash
		}
	}
}

func testAuditRoundTrip(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	e := sa.Event{
		ID: uuid.New(), Time: Epoch.Truncate(time.Microsecond).Add(123 * time.Microsecond), Type: sa.EventSupportChange, TenantID: "acme",
		GrantID: uuid.New(), Actor: sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example", Name: "Ève “E” O'Neil"},
		Reason: "línea 1\nline 2\t'; DROP TABLE x; --", Attrs: map[string]string{sa.AttrWhat: "settings.theme", "empty": ""},
		Before: []byte(`{"theme":"dark","n":1.50}`), After: []byte(`{"n":2, "theme":"light"}`),
	}
	require.NoError(t, h.store.(sa.Auditor).Record(h.ctx, e))
	evs, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	got := evs[0]
	require.NotEmpty(t, got.Hash)
	require.EqualValues(t, 1, got.Seq)
	got.Seq, got.Hash = 0, nil
	require.Equal(t, e, got, "events round-trip byte for byte (Before/After too)")
}

// record stores e directly through the store's Auditor, with a fresh ID
// and, when e has none, the clock's time.
func (h *harness) record(e sa.Event) sa.Event {
	h.t.Helper()
	a := h.auditor()
	e.ID = uuid.New()
	if e.Time.IsZero() {
		e.Time = h.clock.Now().UTC().Truncate(time.Microsecond)
	}
	if e.TenantID == "" {
		e.TenantID = "acme"
	}
	if e.Actor.IsZero() {
		e.Actor = Support
	}
	if e.Type == "" {
		e.Type = sa.EventSupportRequest
	}
	require.NoError(h.t, a.Record(h.ctx, e))
	return e
}

func testAuditFilterSession(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	a := h.record(sa.Event{Attrs: map[string]string{sa.AttrSessionID: "s-1", sa.AttrSubjectUserID: "u-1"}})
	b := h.record(sa.Event{Actor: Engineer, Attrs: map[string]string{sa.AttrSessionID: "s-2"}})
	c := h.record(sa.Event{TenantID: "globex", Attrs: map[string]string{sa.AttrSessionID: "s-1"}})
	h.record(sa.Event{Attrs: map[string]string{sa.AttrSessionID: "s-10"}})
	h.record(sa.Event{Attrs: map[string]string{"other": "s-1"}})
	q := func(f sa.AuditFilter) []uuid.UUID {
		t.Helper()
		evs, err := l.Events(h.ctx, f)
		require.NoError(t, err)
		return grantEventIDs(evs)
	}
	require.Equal(t, []uuid.UUID{a.ID, c.ID}, q(sa.AuditFilter{SessionID: "s-1"}), "exact match on the session_id attribute only")
	require.Equal(t, []uuid.UUID{a.ID}, q(sa.AuditFilter{SessionID: "s-1", TenantID: "acme"}))
	require.Equal(t, []uuid.UUID{b.ID}, q(sa.AuditFilter{SessionID: "s-2", ActorID: Engineer.ID}))
	require.Empty(t, q(sa.AuditFilter{SessionID: "s-2", ActorID: Support.ID}))
	require.Empty(t, q(sa.AuditFilter{SessionID: "s-%"}), "no pattern matching")
}

// testAuditFilterManyTypes: a filter may list up to MaxFilterTypes event
// types, repeated or not, and every store answers it, matching any of
// them wherever they stand in the list. One entry more is malformed input,
// refused by the Manager's Validate and by the store itself when called
// directly (SQL stores bind one parameter per type: review77 found 70 000
// entries failing there with the driver's own error).
func testAuditFilterManyTypes(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	g := h.grant(sa.GrantInput{Duration: time.Hour})
	_, err := h.m.Revoke(h.ctx, g.ID, Customer, "")
	require.NoError(t, err)
	types := make([]sa.EventType, sa.MaxFilterTypes)
	for i := range types {
		switch {
		case i%2 == 0:
			types[i] = sa.EventType(fmt.Sprintf("host.type.%d", i))
		default:
			types[i] = sa.EventGrantRevoked // repeated
		}
	}
	types[len(types)-1] = sa.EventGrantCreated // matched last in the list
	evs, err := h.m.Events(h.ctx, sa.AuditFilter{Types: types})
	require.NoError(t, err)
	require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked}, eventTypes(evs))

	tooMany := make([]sa.EventType, sa.MaxFilterTypes+1)
	for i := range tooMany {
		tooMany[i] = sa.EventType(fmt.Sprintf("host.type.%d", i))
	}
	_, err = h.m.Events(h.ctx, sa.AuditFilter{Types: tooMany})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.ErrorContains(t, err, "Types")
	_, err = l.Events(h.ctx, sa.AuditFilter{Types: tooMany})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "the store refuses it too")
}

// byteOrderTenants sort differently in byte order than in most locales'
// collations.
var byteOrderTenants = []string{"acme", "Zeta", "_x", "\u00e4ther", "a b", "ACME"}

// wantOrder sorts evs by Time, then TenantID in byte order, then Seq.
func wantOrder(evs []sa.Event) []uuid.UUID {
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b sa.Event) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.TenantID, b.TenantID); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return grantEventIDs(evs)
}

// pageAll reads every page of f through Manager.AuditPage.
func (h *harness) pageAll(f sa.AuditFilter) []sa.Event {
	h.t.Helper()
	var all []sa.Event
	cursor := ""
	for i := 0; ; i++ {
		require.Less(h.t, i, 10000, "paging does not end")
		evs, next, err := h.m.AuditPage(h.ctx, f, cursor)
		require.NoError(h.t, err)
		all = append(all, evs...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func testAuditPageByTime(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	base := Epoch.Truncate(time.Microsecond)
	// 36 events over 6 tenants, 3 per instant, recorded out of time order.
	for i := 0; i < 36; i++ {
		j := (i * 7) % 36
		h.record(sa.Event{TenantID: byteOrderTenants[j%len(byteOrderTenants)], Time: base.Add(time.Duration(j/3) * time.Microsecond),
			Attrs: map[string]string{"j": fmt.Sprint(j)}})
	}
	all, err := l.Events(h.ctx, sa.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, all, 36)
	require.Equal(t, wantOrder(all), grantEventIDs(all), "Time, then TenantID in byte order, then Seq")

	for _, limit := range []int{1, 5, 7, 36, 100} {
		got := h.pageAll(sa.AuditFilter{Limit: limit})
		require.Equal(t, grantEventIDs(all), grantEventIDs(got), "pages of %d", limit)
	}
	// A filter and a cursor combine.
	sel, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "_x"})
	require.NoError(t, err)
	require.Equal(t, grantEventIDs(sel), grantEventIDs(h.pageAll(sa.AuditFilter{TenantID: "_x", Limit: 2})))
	// Since/Until with a cursor.
	f := sa.AuditFilter{Since: base.Add(2 * time.Microsecond), Until: base.Add(9 * time.Microsecond), Limit: 4}
	var want []sa.Event
	for _, e := range all {
		if !e.Time.Before(f.Since) && e.Time.Before(f.Until) {
			want = append(want, e)
		}
	}
	require.Equal(t, grantEventIDs(want), grantEventIDs(h.pageAll(f)))

	// The cursor is a position, not an event: events arriving after it
	// (later Time) show up on later pages, earlier pages are not repeated.
	first, next, err := h.m.AuditPage(h.ctx, sa.AuditFilter{Limit: 10}, "")
	require.NoError(t, err)
	require.NotEmpty(t, next)
	late := h.record(sa.Event{TenantID: "Zeta", Time: base.Add(time.Hour)})
	rest := []sa.Event{}
	for next != "" {
		var evs []sa.Event
		evs, next, err = h.m.AuditPage(h.ctx, sa.AuditFilter{Limit: 10}, next)
		require.NoError(t, err)
		rest = append(rest, evs...)
	}
	got := grantEventIDs(append(first, rest...))
	require.Len(t, got, 37)
	require.Equal(t, late.ID, got[36])

	// Bad cursors are refused.
	_, _, err = h.m.AuditPage(h.ctx, sa.AuditFilter{}, "not a cursor")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	c := all[0].Cursor()
	_, _, err = h.m.AuditPage(h.ctx, sa.AuditFilter{After: &c}, c.String())
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

func testAuditPageByChain(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	base := Epoch.Truncate(time.Microsecond)
	// Times go backwards within each tenant (replicas whose clocks lag):
	// chain order still follows Seq.
	for i := 0; i < 24; i++ {
		h.record(sa.Event{TenantID: byteOrderTenants[i%4], Time: base.Add(-time.Duration(i) * time.Second)})
	}
	all, err := l.Events(h.ctx, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	require.Len(t, all, 24)
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		require.True(t, a.TenantID < b.TenantID || a.TenantID == b.TenantID && a.Seq+1 == b.Seq,
			"chain order: TenantID in byte order, then consecutive Seq (%q %d, %q %d)", a.TenantID, a.Seq, b.TenantID, b.Seq)
	}
	for _, limit := range []int{1, 4, 5, 24} {
		require.Equal(t, grantEventIDs(all), grantEventIDs(h.pageAll(sa.AuditFilter{Order: sa.AuditByChain, Limit: limit})))
	}
	one, err := l.Events(h.ctx, sa.AuditFilter{TenantID: "Zeta", Order: sa.AuditByChain, After: &sa.AuditCursor{TenantID: "Zeta", Seq: 2}, Limit: 2})
	require.NoError(t, err)
	require.Len(t, one, 2)
	require.EqualValues(t, 3, one[0].Seq)
	require.EqualValues(t, 4, one[1].Seq)
	require.Equal(t, "Zeta", one[0].TenantID)
}

// testAuditPageWhileWriting pages one tenant in chain order while writers
// append events whose times lag behind: every event is read exactly once.
func testAuditPageWhileWriting(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	h.auditLog()
	base := Epoch.Truncate(time.Microsecond)
	const writers, each = 4, 15
	var wg sync.WaitGroup
	var done atomic.Bool
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := h.store.(sa.Auditor)
			for i := 0; i < each; i++ {
				// Each writer's clock is further behind.
				e := sa.Event{ID: uuid.New(), Time: base.Add(-time.Duration(w*each+i) * time.Millisecond), Type: sa.EventSupportRequest,
					TenantID: "acme", Actor: Support}
				if err := a.Record(h.ctx, e); err != nil {
					t.Errorf("record: %v", err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); done.Store(true) }()
	seen := map[int64]int{}
	var cursor *sa.AuditCursor
	for {
		finished := done.Load() // read before the page: a short page after it is the end
		evs, err := h.m.Events(h.ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain, After: cursor, Limit: 3})
		require.NoError(t, err)
		for _, e := range evs {
			seen[e.Seq]++
		}
		if len(evs) > 0 {
			c := evs[len(evs)-1].Cursor()
			cursor = &c
		}
		if finished && len(evs) < 3 {
			break
		}
	}
	require.Len(t, seen, writers*each)
	for seq := int64(1); seq <= writers*each; seq++ {
		require.Equal(t, 1, seen[seq], "seq %d read once", seq)
	}
}

// testAuditSupportLabels sends an impersonated request through the
// middleware: its events are recognisable as support's, carry both
// identities and are found by session.
func testAuditSupportLabels(t *testing.T, ns NewStore) {
	h := newHarness(t, ns)
	l := h.auditLog()
	h.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	sess := sa.Session{TenantID: "acme", Principal: Support.ID, SubjectUserID: "user-42", SessionID: "sess-9"}
	mw := h.m.Middleware(func(*http.Request) (sa.Session, bool) { return sess, true })
	srv := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := sa.RecordChange(r.Context(), "settings.theme", "dark", "light"); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/settings/theme", nil))
	require.Equal(t, http.StatusNoContent, rec.Code)

	evs, err := l.Events(h.ctx, sa.AuditFilter{SessionID: "sess-9"})
	require.NoError(t, err)
	require.Len(t, evs, 2)
	types := []sa.EventType{evs[0].Type, evs[1].Type}
	require.ElementsMatch(t, []sa.EventType{sa.EventSupportChange, sa.EventSupportRequest}, types)
	for _, e := range evs {
		require.Equal(t, sa.ActorSupport, e.Actor.Kind, "made by support")
		require.Equal(t, Support.ID, e.Actor.ID, "the acting support principal")
		require.Equal(t, "user-42", e.Attrs[sa.AttrSubjectUserID], "the impersonated user")
		require.Equal(t, "sess-9", e.Attrs[sa.AttrSessionID])
	}
	sup, err := l.Events(h.ctx, sa.AuditFilter{ActorKind: sa.ActorSupport, Types: []sa.EventType{sa.EventSupportChange}})
	require.NoError(t, err)
	require.Len(t, sup, 1)
	require.JSONEq(t, `"dark"`, string(sup[0].Before))
	require.JSONEq(t, `"light"`, string(sup[0].After))
	cust, err := l.Events(h.ctx, sa.AuditFilter{ActorKind: sa.ActorCustomer})
	require.NoError(t, err)
	require.Len(t, cust, 1, "only the grant is the customer's")
}

// eventTypes returns the types of evs, in order.
func eventTypes(evs []sa.Event) []sa.EventType {
	out := make([]sa.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}
