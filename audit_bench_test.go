package supportaccess_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
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
