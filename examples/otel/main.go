// Command otel shows the library's OpenTelemetry spans and metrics: it
// installs the SDK with stdout exporters, grants, checks inside a traced
// "request", revokes, and prints every span and the metrics as JSON.
//
//	go run ./examples/otel
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "otel example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) error {
	texp, err := stdouttrace.New(stdouttrace.WithWriter(w), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(texp))
	mexp, err := stdoutmetric.New(stdoutmetric.WithWriter(w), stdoutmetric.WithPrettyPrint())
	if err != nil {
		return err
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	m, err := sa.NewManager(memstore.New(), sa.WithTracerProvider(tp), sa.WithMeterProvider(mp), sa.WithCheckSpans(true))
	if err != nil {
		return err
	}
	defer m.Close()
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: admin, Duration: 24 * time.Hour, Reason: "SUP-1042"})
	if err != nil {
		return err
	}
	// A traced request of an impersonated session: Check becomes a child span.
	rctx, req := tp.Tracer("example").Start(ctx, "GET /settings")
	_, readErr := m.Check(rctx, "acme", "support+acme@vendor.example", sa.ScopeRead)
	_, writeErr := m.Check(rctx, "acme", "support+acme@vendor.example", sa.ScopeWrite) // denied: an outcome, not a fault
	req.End()
	if readErr != nil {
		return fmt.Errorf("read check: %w", readErr)
	}
	if !errors.Is(writeErr, sa.ErrScopeNotGranted) {
		return fmt.Errorf("write check: want ErrScopeNotGranted, got %v", writeErr)
	}
	if _, err := m.Revoke(ctx, g.ID, admin, "resolved"); err != nil {
		return err
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	if err := mexp.Export(ctx, &rm); err != nil {
		return err
	}
	if err := tp.Shutdown(ctx); err != nil {
		return err
	}
	return mp.Shutdown(ctx)
}
