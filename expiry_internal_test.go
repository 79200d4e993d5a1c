package supportaccess

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestJitterStaysInRange: RunExpiry's waits stay within ±10 % of the
// interval, and an interval near the longest Duration never wraps around
// to a negative wait (a sweep at once, again and again).
func TestJitterStaysInRange(t *testing.T) {
	for _, d := range []time.Duration{time.Second, time.Hour, 270 * 365 * 24 * time.Hour, math.MaxInt64 - 1, math.MaxInt64} {
		for range 2000 {
			got := jitter(d)
			require.GreaterOrEqual(t, got, d-d/10, "d=%d", d)
			require.LessOrEqual(t, int64(got), int64(min(uint64(d)+uint64(d/10), math.MaxInt64)), "d=%d", d)
		}
	}
	require.Equal(t, 5*time.Nanosecond, jitter(5*time.Nanosecond), "too short to vary")

	// The waits spread over the whole ±10 %, so that replicas started
	// together drift apart: of 2 000 uniform samples, about half fall
	// outside ±5 % (none doing so has a chance of 2^-2000).
	wide := 0
	for range 2000 {
		if got := jitter(time.Hour); got < time.Hour-time.Hour/20 || got > time.Hour+time.Hour/20 {
			wide++
		}
	}
	require.Positive(t, wide, "no wait outside ±5 %% of the interval")
}
