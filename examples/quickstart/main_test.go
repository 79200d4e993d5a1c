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
	requests := lines("support+acme@vendor.example")
	require.Len(t, requests, 4)
	require.Contains(t, requests[0], "GET /invoices: 403 DENIED", "no grant yet")
	require.Contains(t, requests[1], "GET /invoices: 200 ALLOWED (3 invoices)")
	require.Contains(t, requests[2], "POST /settings: 403 DENIED", "read-only grant")
	require.Contains(t, requests[3], "GET /invoices: 403 DENIED", "revoked")
	audit := lines("#")
	require.Len(t, audit, 6)
	for i, want := range []string{
		"access.denied   by support support+acme@vendor.example  \"GET /invoices 403 no active grant\"",
		"grant.created   by customer ada@acme.example  \"Investigate failed invoice export\"",
		"support.request by support support+acme@vendor.example  \"GET /invoices 200\"",
		"access.denied   by support support+acme@vendor.example  \"POST /settings 403 scope not granted: write\"",
		"grant.revoked   by customer ada@acme.example  \"Issue resolved\"",
		"access.denied   by support support+acme@vendor.example  \"GET /invoices 403 no active grant\"",
	} {
		require.Contains(t, audit[i], want, "audit line %d", i+1)
	}
	require.Contains(t, s, "2026-11-28T09:00:00Z → 2026-11-29T09:00:00Z", "the grant ends 24 h after it was made")
}
