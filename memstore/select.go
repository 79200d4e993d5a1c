package memstore

import (
	"math/rand/v2"
	"slices"
)

// smallest reorders s so that its first min(k, len(s)) elements are the
// smallest by cmp, sorted, and returns them. It takes O(len(s)) on average
// (quickselect) plus O(k log k), so that claiming a batch among many due
// items does not sort them all.
func smallest[T any](s []T, k int, cmp func(a, b T) int) []T {
	if k <= 0 {
		return s[:0]
	}
	if k < len(s) {
		lo, hi := 0, len(s)-1
		for lo < hi {
			p := partition(s, lo, hi, lo+rand.IntN(hi-lo+1), cmp)
			switch {
			case p == k-1:
				lo = hi // done
			case p < k-1:
				lo = p + 1
			default:
				hi = p - 1
			}
		}
		s = s[:k]
	}
	slices.SortFunc(s, cmp)
	return s
}

// partition moves s[pivot] to its sorted position within s[lo:hi+1], the
// smaller elements before it and the others after, and returns that
// position.
func partition[T any](s []T, lo, hi, pivot int, cmp func(a, b T) int) int {
	s[pivot], s[hi] = s[hi], s[pivot]
	store := lo
	for i := lo; i < hi; i++ {
		if cmp(s[i], s[hi]) < 0 {
			s[i], s[store] = s[store], s[i]
			store++
		}
	}
	s[store], s[hi] = s[hi], s[store]
	return store
}
