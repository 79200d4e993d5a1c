package supportaccess_test

import (
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// BenchmarkCheckTelemetry compares Check without instrumentation, with the
// default (global, no SDK) providers, and with the SDK installed (a sampler
// that drops every span, metrics collected by a manual reader), on a
// memstore with one tenant. Target: ≤ 5 % overhead with the default.
func BenchmarkCheckTelemetry(b *testing.B) {
	setup := func(b *testing.B, opts ...sa.Option) *sa.Manager {
		m, err := sa.NewManager(memstore.New(), opts...)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer}); err != nil {
			b.Fatal(err)
		}
		return m
	}
	run := func(b *testing.B, check func() error) {
		b.ReportAllocs()
		for b.Loop() {
			if err := check(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("none", func(b *testing.B) {
		m := setup(b)
		run(b, func() error { _, err := m.CheckUninstrumented(ctx, "acme", support.ID, sa.ScopeRead); return err })
	})
	b.Run("default-noop", func(b *testing.B) {
		m := setup(b)
		run(b, func() error { _, err := m.Check(ctx, "acme", support.ID, sa.ScopeRead); return err })
	})
	b.Run("sdk-drop-sampler", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		defer func() { _ = tp.Shutdown(ctx); _ = mp.Shutdown(ctx) }()
		m := setup(b, sa.WithTracerProvider(tp), sa.WithMeterProvider(mp))
		run(b, func() error { _, err := m.Check(ctx, "acme", support.ID, sa.ScopeRead); return err })
	})
}
