package clone

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSlice(t *testing.T) {
	require.Nil(t, Slice[string](nil), "nil stays nil")
	empty := Slice([]string{})
	require.NotNil(t, empty, "empty stays empty, not nil")
	require.Empty(t, empty)
	src := make([]string, 2, 4)
	src[0], src[1] = "a", "b"
	c := Slice(src)
	require.Equal(t, src, c)
	require.Equal(t, 2, cap(c), "right-sized")
	c[0] = "x"
	require.Equal(t, "a", src[0], "not shared")
}
