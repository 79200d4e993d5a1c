package canon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCeil(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6_000, time.FixedZone("X", 3600))
	require.Equal(t, Time(at), Ceil(at), "a whole microsecond stays")
	require.Equal(t, time.UTC, Ceil(at).Location())
	require.Equal(t, Time(at).Add(time.Microsecond), Ceil(at.Add(1)))
	require.Equal(t, Time(at).Add(time.Microsecond), Ceil(at.Add(999)))
	require.True(t, Ceil(time.Time{}).IsZero(), "no bound stays no bound")
	zero := time.Time{}
	require.Equal(t, zero.Add(time.Microsecond), Ceil(zero.Add(1)))
	require.Equal(t, zero.Add(time.Microsecond), Ceil(zero.Add(-1)), "never onto the zero time")
	require.Equal(t, zero.Add(-time.Microsecond), Ceil(zero.Add(-time.Microsecond-1)))
}
