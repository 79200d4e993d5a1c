package supportaccess_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// review125Event is an event with exactly one attribute, as a
// support.request of the middleware may carry.
func review125Event() sa.Event {
	return sa.Event{ID: uuid.MustParse("0190f5b2-8c1e-7a3b-9f00-123456789abc"), Seq: 3,
		Time: time.Date(2030, 1, 2, 3, 4, 5, 6_000, time.UTC), Type: sa.EventSupportRequest, TenantID: "acme",
		GrantID: uuid.MustParse("0190f5b2-8c1e-7a3b-9f00-cba987654321"), Actor: support, Reason: "why",
		Attrs: map[string]string{sa.AttrPath: "/invoices"}, Before: []byte(`{"a":1}`), After: []byte(`{"a":2}`)}
}

// TestReview125ChainHashCoversEveryField pins that changing any one field
// of an event, the key or value of its only attribute included, changes
// its chain hash (an uncovered field could be tampered with unnoticed).
func TestReview125ChainHashCoversEveryField(t *testing.T) {
	prev := []byte("prev")
	base := review125Event()
	want := base.ChainHash(prev)
	for name, spoil := range map[string]func(*sa.Event){
		"only attr value": func(e *sa.Event) { e.Attrs = map[string]string{sa.AttrPath: "/admin"} },
		"only attr key":   func(e *sa.Event) { e.Attrs = map[string]string{sa.AttrMethod: "/invoices"} },
		"attr added":      func(e *sa.Event) { e.Attrs = map[string]string{sa.AttrPath: "/invoices", sa.AttrMethod: "GET"} },
		"attr removed":    func(e *sa.Event) { e.Attrs = nil },
		"Seq":             func(e *sa.Event) { e.Seq++ },
		"ID":              func(e *sa.Event) { e.ID = uuid.New() },
		"Time":            func(e *sa.Event) { e.Time = e.Time.Add(time.Microsecond) },
		"Type":            func(e *sa.Event) { e.Type = sa.EventSupportChange },
		"TenantID":        func(e *sa.Event) { e.TenantID = "globex" },
		"GrantID":         func(e *sa.Event) { e.GrantID = uuid.Nil },
		"Actor.Kind":      func(e *sa.Event) { e.Actor.Kind = sa.ActorCustomer },
		"Actor.ID":        func(e *sa.Event) { e.Actor.ID += "x" },
		"Actor.Name":      func(e *sa.Event) { e.Actor.Name += "x" },
		"Reason":          func(e *sa.Event) { e.Reason = "" },
		"Before":          func(e *sa.Event) { e.Before = nil },
		"After":           func(e *sa.Event) { e.After = []byte(`{"a":3}`) },
	} {
		e := review125Event()
		spoil(&e)
		require.NotEqual(t, want, e.ChainHash(prev), name)
	}
	require.NotEqual(t, want, base.ChainHash([]byte("prev2")), "prev")
	require.NotEqual(t, want, base.ChainHash(nil), "no prev")
}

// TestReview125ChainHashFieldBoundaries pins that two distinct events
// whose fields concatenate to the same bytes never share a hash (each
// field is length-prefixed, attributes keep key and value apart).
func TestReview125ChainHashFieldBoundaries(t *testing.T) {
	for name, pair := range map[string][2]func(*sa.Event){
		"Type|TenantID": {
			func(e *sa.Event) { e.Type, e.TenantID = "support.requestacme", "" },
			func(e *sa.Event) { e.Type, e.TenantID = "support.request", "acme" }},
		"Actor.ID|Actor.Name": {
			func(e *sa.Event) { e.Actor.ID, e.Actor.Name = "eve", "Eve" },
			func(e *sa.Event) { e.Actor.ID, e.Actor.Name = "eveE", "ve" }},
		"attr key|value": {
			func(e *sa.Event) { e.Attrs = map[string]string{"pa": "th/x"} },
			func(e *sa.Event) { e.Attrs = map[string]string{"path": "/x"} }},
		"two attrs or one": {
			func(e *sa.Event) { e.Attrs = map[string]string{"a": "b", "c": "d"} },
			func(e *sa.Event) { e.Attrs = map[string]string{"a": "bcd"} }},
		"Before|After": {
			func(e *sa.Event) { e.Before, e.After = []byte(`{}`), nil },
			func(e *sa.Event) { e.Before, e.After = nil, []byte(`{}`) }},
		"Reason|attrs": {
			func(e *sa.Event) { e.Reason, e.Attrs = "", map[string]string{"path": "/x"} },
			func(e *sa.Event) { e.Reason, e.Attrs = "path/x", nil }},
	} {
		a, b := review125Event(), review125Event()
		pair[0](&a)
		pair[1](&b)
		require.NotEqual(t, a.ChainHash(nil), b.ChainHash(nil), name)
	}
}

// TestReview125VerifyCatchesOnlyAttrTampered pins that VerifyAudit reports
// a stored event whose only attribute (the path support visited) was
// changed after it was chained.
func TestReview125VerifyCatchesOnlyAttrTampered(t *testing.T) {
	evs := chainOf(3)
	evs[1].Attrs = map[string]string{sa.AttrPath: "/invoices"}
	var prev []byte
	for i := range evs { // re-chain with the attribute
		evs[i].Hash = evs[i].ChainHash(prev)
		prev = evs[i].Hash
	}
	_, brk := verifySlice(t, evs)
	require.Nil(t, brk, "the genuine chain verifies")

	tampered := slices.Clone(evs)
	tampered[1].Attrs = map[string]string{sa.AttrPath: "/admin/export"}
	require.False(t, bytes.Equal(tampered[1].Hash, tampered[1].ChainHash(tampered[0].Hash)))
	_, brk = verifySlice(t, tampered)
	require.NotNil(t, brk, "a changed path breaks the chain")
	require.EqualValues(t, 2, brk.Seq)
}
