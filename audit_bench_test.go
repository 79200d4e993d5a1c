package supportaccess_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
)

// BenchmarkChainHash measures the hash of one typical support.request
// event (seven attributes) chained to its predecessor.
func BenchmarkChainHash(b *testing.B) {
	e := sa.Event{ID: uuid.New(), Time: time.Now(), Type: sa.EventSupportRequest, TenantID: "tenant-42", GrantID: uuid.New(),
		Actor: support, Seq: 12345, Attrs: map[string]string{
			sa.AttrMethod: "GET", sa.AttrPath: "/settings/security", sa.AttrStatus: "200", sa.AttrDurationMS: "12",
			sa.AttrScope: "read", sa.AttrSessionID: "sess-4f9c2a", sa.AttrSubjectUserID: "user-1042",
		}}
	prev := e.ChainHash(nil)
	b.ReportAllocs()
	for b.Loop() {
		prev = e.ChainHash(prev)
	}
}
