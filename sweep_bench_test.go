package supportaccess_test

import (
	"fmt"
	"os"
	"testing"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// BenchmarkSweep: one Sweep of 10 000 due grants on the memstore (100 000
// too with SUPPORTACCESS_BENCH_LARGE=1), without and with an expiry hook.
// The SQL backends run the same benchmark from package sqlstore.
func BenchmarkSweep(b *testing.B) {
	mem := func(*testing.B) sa.Store { return memstore.New() }
	sizes := []int{10_000}
	if os.Getenv("SUPPORTACCESS_BENCH_LARGE") == "1" {
		sizes = append(sizes, 100_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("memstore/%dk", n/1000), func(b *testing.B) { storetest.BenchmarkSweep(b, mem, storetest.SweepBench{N: n}) })
		b.Run(fmt.Sprintf("memstore/%dk/hooks", n/1000), func(b *testing.B) {
			storetest.BenchmarkSweep(b, mem, storetest.SweepBench{N: n, Hooks: true})
		})
	}
}
