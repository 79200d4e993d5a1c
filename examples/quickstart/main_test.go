package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	require.NoError(t, run(context.Background(), &out, func() time.Time { return now }))
	s := out.String()
	lines := func(prefix string) []string {
		var got []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				got = append(got, strings.TrimSpace(l))
			}
		}
		return got
	}
	checks := lines("support+acme@vendor.example")
	require.Len(t, checks, 4)
	require.Contains(t, checks[0], "read: DENIED")
	require.Contains(t, checks[1], "read: ALLOWED")
	require.Contains(t, checks[1], "until 2026-11-29T09:00:00Z")
	require.Contains(t, checks[2], "write: DENIED")
	require.Contains(t, checks[2], "scope not granted")
	require.Contains(t, checks[3], "read: DENIED")
	audit := lines("#")
	require.Len(t, audit, 2)
	require.Contains(t, audit[0], "grant.created")
	require.Contains(t, audit[0], "Investigate failed invoice export")
	require.Contains(t, audit[1], "grant.revoked")
	require.Contains(t, audit[1], "customer ada@acme.example")
}
