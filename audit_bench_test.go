package supportaccess_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// BenchmarkChainHash measures the hash of one typical support.request
// event (seven attributes) chained to its predecessor, and its two parts:
// the canonical encoding, and SHA-256 over the encoded bytes alone — the
// floor of what chaining can cost whatever the encoding's implementation.
func BenchmarkChainHash(b *testing.B) {
	e := sa.Event{ID: uuid.New(), Time: time.Now(), Type: sa.EventSupportRequest, TenantID: "tenant-42", GrantID: uuid.New(),
		Actor: support, Seq: 12345, Attrs: map[string]string{
			sa.AttrMethod: "GET", sa.AttrPath: "/settings/security", sa.AttrStatus: "200", sa.AttrDurationMS: "12",
			sa.AttrScope: "read", sa.AttrSessionID: "sess-4f9c2a", sa.AttrSubjectUserID: "user-1042",
		}}
	prev := e.ChainHash(nil)
	b.Run("hash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			prev = e.ChainHash(prev)
		}
	})
	buf := make([]byte, 0, 512) // ChainHash encodes into a 512-byte stack array
	enc := e.AppendCanonicalForTest(buf, prev)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			enc = e.AppendCanonicalForTest(buf[:0], prev)
		}
	})
	var sum [sha256.Size]byte
	b.Run("sha256-only", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			sum = sha256.Sum256(enc)
		}
	})
	_ = sum
}

// BenchmarkVerifyJSONL measures VerifyJSONL per line of an export of
// support.request events (each line read, checked to be exactly as
// exported, and its hash link verified).
func BenchmarkVerifyJSONL(b *testing.B) {
	const n = 10_000
	store := memstore.New()
	m, err := sa.NewManager(store)
	require.NoError(b, err)
	at := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for i := range n {
		require.NoError(b, store.Record(ctx, sa.Event{ID: uuid.New(), Time: at.Add(time.Duration(i) * time.Millisecond), Type: sa.EventSupportRequest, TenantID: "acme",
			Actor: support, Attrs: map[string]string{
				sa.AttrMethod: "GET", sa.AttrPath: fmt.Sprint("/settings/", i), sa.AttrStatus: "200", sa.AttrDurationMS: "12",
				sa.AttrScope: "read", sa.AttrSessionID: "sess-4f9c2a", sa.AttrSubjectUserID: "user-1042",
			}}))
	}
	var buf bytes.Buffer
	_, err = m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(b, err)
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := sa.VerifyJSONL(bytes.NewReader(buf.Bytes()))
		if err != nil || rep.Events != n {
			b.Fatal(rep.Events, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/line")
}
