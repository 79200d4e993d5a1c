package supportaccess

import "context"

// CheckUninstrumented is Check without telemetry, the baseline of
// BenchmarkCheckTelemetry.
func (m *Manager) CheckUninstrumented(ctx context.Context, tenantID, principal string, scope Scope) (g Grant, err error) {
	err = m.check(ctx, tenantID, principal, scope, &g)
	return g, err
}
