package supportaccess_test

import (
	"testing"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// BenchmarkSweep: one Sweep of 100 000 due grants on the memstore, with and
// without an expiry hook. The SQL backends run the same benchmark from
// package sqlstore.
func BenchmarkSweep(b *testing.B) {
	mem := func(*testing.B) sa.Store { return memstore.New() }
	b.Run("memstore/100k", func(b *testing.B) { storetest.BenchmarkSweep(b, mem, storetest.SweepBench{N: 100_000}) })
	b.Run("memstore/100k/hooks", func(b *testing.B) { storetest.BenchmarkSweep(b, mem, storetest.SweepBench{N: 100_000, Hooks: true}) })
}
