package memstore

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSmallest(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 100, 1000} {
		for _, k := range []int{0, 1, 3, n / 2, n, n + 5} {
			s := make([]int, n)
			for i := range s {
				s[i] = rand.IntN(n/3 + 1) // with duplicates
			}
			want := slices.Clone(s)
			slices.Sort(want)
			if k < len(want) {
				want = want[:max(k, 0)]
			}
			got := smallest(s, k, cmp.Compare[int])
			require.Equal(t, want, slices.Clone(got), "n=%d k=%d", n, k)
		}
	}
}
