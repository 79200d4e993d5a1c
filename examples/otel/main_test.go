package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOtelExample(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out))
	s := out.String()
	for _, want := range []string{`"Name": "supportaccess.Grant"`, `"Name": "supportaccess.Check"`, `"Name": "supportaccess.Revoke"`,
		`"supportaccess.checks"`, `"supportaccess.check.duration"`, `"Value": "scope"`} {
		require.Contains(t, s, want)
	}
	require.NotContains(t, s, "SUP-1042", "reason texts stay out of telemetry")
	require.NotContains(t, s, "ada@acme.example", "actor ids stay out of telemetry by default")
}
