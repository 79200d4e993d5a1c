package supportaccess

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// TestASCIIPrefix compares the word-at-a-time scan with a byte loop for
// every byte value at every position of strings up to 20 bytes long, so
// each byte lane of a word and the tail are exercised.
func TestASCIIPrefix(t *testing.T) {
	naive := func(s string) int {
		i := 0
		for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
			i++
		}
		return i
	}
	for n := 0; n <= 20; n++ {
		base := []byte(strings.Repeat("~ aZ09", 4)[:n])
		got, _ := asciiPrefix(string(base))
		require.Equal(t, n, got)
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := append([]byte(nil), base...)
				b[pos] = byte(c)
				got, _ := asciiPrefix(string(b))
				require.Equal(t, naive(string(b)), got, "len %d, byte %#x at %d", n, c, pos)
			}
		}
	}
}

// TestTruncateMatchesTimeTruncate checks the fast truncate against
// time.Time.Truncate, including times before the Unix epoch and values
// carrying a monotonic reading or another location.
func TestTruncateMatchesTimeTruncate(t *testing.T) {
	loc := time.FixedZone("x", -7*3600)
	for _, tt := range []time.Time{
		time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 28, 10, 0, 0, 999_999_999, time.UTC),
		time.Date(2026, 11, 28, 10, 0, 0, 1_001, loc),
		time.Date(1969, 12, 31, 23, 59, 59, 123_456_789, time.UTC),
		time.Date(1, 1, 1, 0, 0, 1, 1, time.UTC),
		time.Now(),
		// The first microsecond of year 1 is the exception, see
		// TestReview22TruncateKeepsNonZeroTimesNonZero.
	} {
		got := truncate(tt)
		want := tt.UTC().Truncate(time.Microsecond)
		require.True(t, want.Equal(got), "%v: got %v want %v", tt, got, want)
		require.Equal(t, want, got) // same representation: UTC, no monotonic reading
	}
	require.True(t, truncate(time.Time{}).IsZero())
}

// TestTruncateMiddleKeepsBothEnds holds the audited path's cut: at most n
// bytes, valid UTF-8 when the input is, its beginning and its end kept.
func TestTruncateMiddleKeepsBothEnds(t *testing.T) {
	require.Equal(t, "/short", truncateMiddle("/short", 10))
	require.Equal(t, "/ab...wxyz", truncateMiddle("/abcdefghijklmnopqrstuvwxyz", 10))
	long := "/" + strings.Repeat("é", 600) + "/users/42/delete"
	for n := 8; n <= 40; n++ {
		got := truncateMiddle(long, n)
		require.LessOrEqual(t, len(got), n)
		require.True(t, utf8.ValidString(got), "n=%d: %q", n, got)
		require.True(t, strings.HasPrefix(long, got[:strings.Index(got, "...")]), "n=%d", n)
		require.True(t, strings.HasSuffix(long, got[strings.Index(got, "...")+3:]), "n=%d", n)
		require.GreaterOrEqual(t, len(got), n-2, "n=%d: at most one byte of a split rune lost at each side", n)
	}
	require.True(t, strings.HasSuffix(truncateMiddle(long, 1024), "/users/42/delete"))
	escaped := "/" + strings.Repeat("%2F", 400) + "/delete"
	for n := 5; n <= 40; n++ { // never half an escape at either side of the cut
		got := truncateMiddle(escaped, n)
		require.LessOrEqual(t, len(got), n)
		mark := strings.Index(got, "...")
		for _, side := range []string{got[:mark], got[mark+3:]} {
			require.NotRegexp(t, `%([^0-9A-F]|.?$)|^[0-9A-F]{1,2}(%|/|$)`, side, "n=%d: %q", n, got)
		}
	}
	for n := 0; n < 5; n++ { // too short for both ends: a prefix
		got := truncateMiddle(long, n)
		require.LessOrEqual(t, len(got), n)
		require.True(t, strings.HasPrefix(long, got))
		require.True(t, utf8.ValidString(got))
	}
}

// asciiPrefix finds two spaces in a row at every offset, inside a word,
// across two words and in the tail, and never reports single spaces.
func TestASCIIPrefixFindsDoubleSpaces(t *testing.T) {
	for n := 2; n <= 40; n++ {
		for p := 0; p+1 < n; p++ {
			b := []byte(strings.Repeat("a", n))
			b[p], b[p+1] = ' ', ' '
			got, pair := asciiPrefix(string(b))
			require.Equal(t, n, got)
			require.True(t, pair, "%q", b)
			require.ErrorIs(t, checkText("ID", "x"+string(b)+"x", 100, true, identity), ErrInvalidInput, "%q", b)
		}
		b := []byte(strings.Repeat("a", n))
		for p := 0; p < n; p += 2 {
			b[p] = ' '
		}
		_, pair := asciiPrefix(string(b))
		require.False(t, pair, "%q", b)
		require.NoError(t, checkText("ID", "x"+string(b)+"x", 100, true, identity), "%q", b)
	}
	require.ErrorIs(t, checkText("ID", "é  é", 100, true, identity), ErrInvalidInput, "after non-ASCII")
	require.NoError(t, checkText("Reason", "two  spaces", 100, false, lines), "only identifiers")
}
