package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestServeShutsDownGracefully(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, h, err := newApp(config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, h, a, time.Millisecond) }()

	// Exercise the app, impersonated requests (the middleware's watcher)
	// included, over real connections.
	e := &testEnv{t: t, app: a, srv: &httptest.Server{URL: "http://" + ln.Addr().String()}}
	admin := e.login(aliceAdmin)
	admin.grant(url.Values{})
	support := e.login(samEngineer)
	require.Equal(t, http.StatusOK, support.impersonate(acmeTenantID).StatusCode)
	require.Equal(t, http.StatusOK, support.get("/app/settings").StatusCode)
	for _, c := range []*client{admin, support} {
		c.hc.CloseIdleConnections()
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
	require.NoError(t, a.Close())
	require.NoError(t, a.Close(), "Close is idempotent")
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	require.Error(t, err, "the listener is closed")
}
