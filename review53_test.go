// Review 53: what the review rounds 47–52 noticed beside their findings —
// prefix TestReview53.

package supportaccess_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	sa "github.com/supportaccess/supportaccess"
)

// WithTracerProvider and WithMeterProvider say nil is ignored; a nil
// pointer of the SDK's provider types passed on from a host's own
// (unset) configuration made NewManager panic with a nil dereference.
func TestReview53TypedNilProvidersIgnored(t *testing.T) {
	var tp *sdktrace.TracerProvider
	var mp *sdkmetric.MeterProvider
	var e *env
	require.NotPanics(t, func() { e = newEnv(t, sa.WithTracerProvider(tp), sa.WithMeterProvider(mp)) })
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	_, err := e.m.Check(ctx, g.TenantID, "support+acme@vendor.example", sa.ScopeRead)
	require.NoError(t, err)
}
