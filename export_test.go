package supportaccess

import (
	"context"
	"time"
)

// CheckUninstrumented is Check without telemetry, the baseline of
// BenchmarkCheckTelemetry.
func (m *Manager) CheckUninstrumented(ctx context.Context, tenantID, principal string, scope Scope) (g Grant, err error) {
	err = m.check(ctx, tenantID, principal, scope, &g)
	return g, err
}

// AppendCanonicalForTest appends the canonical encoding ChainHash hashes
// to b.
func (e Event) AppendCanonicalForTest(b, prev []byte) []byte { return e.appendCanonical(b, prev) }

// SetAdoptAuditTimeoutForTest sets how long the middleware waits for the
// audit of a grant a re-check adopted, until restore is called.
func SetAdoptAuditTimeoutForTest(d time.Duration) (restore func()) {
	old := adoptAuditTimeout.Swap(int64(d))
	return func() { adoptAuditTimeout.Store(old) }
}

// SetMinRecheckTimeoutForTest sets the least time one poll's re-checks
// get (250 ms outside tests), until restore is called.
func SetMinRecheckTimeoutForTest(d time.Duration) (restore func()) {
	old := minRecheckTimeout.Swap(int64(d))
	return func() { minRecheckTimeout.Store(old) }
}

// SetAuditGraceForTest sets the least time an audit write of the
// middleware gets (5 s outside tests), until restore is called.
func SetAuditGraceForTest(d time.Duration) (restore func()) {
	old := auditGrace.Swap(int64(d))
	return func() { auditGrace.Store(old) }
}
