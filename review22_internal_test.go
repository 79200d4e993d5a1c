package supportaccess

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Review 22 (Manager API), internal cases: prefix TestReview22.

// TestReview22RetryDelayNeverOverflows: with a maximum retry delay above
// 2^62 ns, doubling the delay overflowed to a negative one, so a failing
// expire hook was retried at every sweep instead of backing off. The
// delay grows to max and stays there.
func TestReview22RetryDelayNeverOverflows(t *testing.T) {
	l := lifecycle{retryMin: time.Second, retryMax: math.MaxInt64}
	prev := time.Duration(0)
	for attempts := 1; attempts <= 200; attempts++ {
		d := l.retryDelay(attempts)
		require.GreaterOrEqual(t, d, prev, "attempt %d: the delay shrank", attempts)
		require.LessOrEqual(t, d, l.retryMax)
		prev = d
	}
	require.Equal(t, time.Duration(math.MaxInt64), prev, "the delay reaches max")
	l = lifecycle{retryMin: 30 * time.Second, retryMax: time.Hour}
	require.Equal(t, []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 32 * time.Minute, time.Hour},
		[]time.Duration{l.retryDelay(1), l.retryDelay(2), l.retryDelay(3), l.retryDelay(7), l.retryDelay(8)})
}

// TestReview22TruncateKeepsNonZeroTimesNonZero: the zero time means "none"
// or "unlimited" to truncate's callers (Extend, filters), so a non-zero
// time in the first microsecond of year 1 becomes that microsecond's end,
// not the zero time; every other time is cut down to its microsecond.
func TestReview22TruncateKeepsNonZeroTimesNonZero(t *testing.T) {
	zero := time.Time{}
	require.True(t, truncate(zero).IsZero())
	for _, ns := range []time.Duration{1, 999} {
		require.Equal(t, zero.Add(time.Microsecond), truncate(zero.Add(ns)), "%d ns after the zero time", ns)
	}
	require.Equal(t, zero.Add(time.Microsecond), truncate(zero.Add(1999)))
	require.Equal(t, zero.Add(-time.Microsecond), truncate(zero.Add(-1)), "before the zero time: cut down")
	at := time.Date(2026, 11, 29, 10, 0, 0, 123_456_789, time.UTC)
	require.Equal(t, time.Date(2026, 11, 29, 10, 0, 0, 123_456_000, time.UTC), truncate(at))
}
