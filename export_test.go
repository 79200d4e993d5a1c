package supportaccess

import "context"

// CheckUninstrumented is Check without telemetry, the baseline of
// BenchmarkCheckTelemetry.
func (m *Manager) CheckUninstrumented(ctx context.Context, tenantID, principal string, scope Scope) (g Grant, err error) {
	err = m.check(ctx, tenantID, principal, scope, &g)
	return g, err
}

// AppendCanonicalForTest appends the canonical encoding ChainHash hashes
// to b.
func (e Event) AppendCanonicalForTest(b, prev []byte) []byte { return e.appendCanonical(b, prev) }
