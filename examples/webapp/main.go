// Command webapp is a small multi-tenant SaaS product that embeds
// supportaccess: customer admins grant, watch and revoke the vendor's
// support access; support engineers sign in to a tenant as its admin
// through the library's middleware; everything lands in the audit log.
//
// Run it with
//
//	go run ./examples/webapp                       # SQLite in a temporary directory
//	go run ./examples/webapp -data ./demo-data     # SQLite file kept in ./demo-data
//	go run ./examples/webapp -dialect postgres -dsn 'postgres://user:pass@localhost/demo'
//	go run ./examples/webapp -dialect mysql -dsn 'user:pass@tcp(localhost:3306)/demo'
//
// and open http://127.0.0.1:8080. Sign-in is a demo: pick a seeded user.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	Addr    string
	Data    string
	Dialect string
	DSN     string
	// tablePrefix, when set, replaces the store's default table prefix
	// (tests use a fresh one in shared databases).
	tablePrefix string
}

func main() {
	var o options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "listen address")
	flag.StringVar(&o.Data, "data", "", "directory for the SQLite database (default: a new temporary directory)")
	flag.StringVar(&o.Dialect, "dialect", "sqlite", "database: sqlite, postgres, mysql, or memory (nothing stored)")
	flag.StringVar(&o.DSN, "dsn", "", "data source name for postgres or mysql")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, slog.Default()); err != nil {
		slog.Error("webapp", "err", err)
		os.Exit(1)
	}
}

// run opens the store, builds the app and serves until ctx ends, then
// shuts down gracefully.
func run(ctx context.Context, o options, log *slog.Logger) error {
	st, closer, desc, err := openStore(ctx, o)
	if err != nil {
		return err
	}
	a, h, err := newApp(config{Store: st, Closer: closer, Logger: log})
	if err != nil {
		if closer != nil {
			_ = closer.Close()
		}
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("webapp listening", "url", "http://"+ln.Addr().String(), "store", desc)
	err = serve(ctx, ln, h, a, 30*time.Second)
	log.Info("webapp stopped")
	return err
}

// serve runs the HTTP server on ln and the expiry sweeper (every
// sweepEvery) until ctx ends. It then stops accepting requests, waits up to
// 10 seconds for running ones, and returns after every goroutine it started
// has ended.
func serve(ctx context.Context, ln net.Listener, h http.Handler, a *app, sweepEvery time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
			cancel()
		}
	})
	// Records expiries and runs expiry hooks; access never waits for it
	// (Check denies at ExpiresAt anyway). It returns ctx's error when ctx ends.
	wg.Go(func() { _ = a.m.RunExpiry(ctx, sweepEvery) })

	<-ctx.Done()
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	err := srv.Shutdown(shutdownCtx)
	wg.Wait()
	select {
	case serr := <-serveErr:
		return fmt.Errorf("serve: %w", serr)
	default:
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
