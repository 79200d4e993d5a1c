package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServeShutsDownGracefully(t *testing.T) {
	a, h, err := newApp(config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, h, a, time.Millisecond) }()

	res, err := http.Get("http://" + ln.Addr().String() + "/login")
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusOK, res.StatusCode)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
	require.NoError(t, a.Close())
	_, err = http.Get("http://" + ln.Addr().String() + "/login")
	require.Error(t, err, "the listener is closed")
}

func TestOpenStore(t *testing.T) {
	_, _, _, err := openStore(context.Background(), options{Dialect: "oracle"})
	require.ErrorContains(t, err, "unknown -dialect")
	st, closer, _, err := openStore(context.Background(), options{Dialect: "memory"})
	require.NoError(t, err)
	require.NotNil(t, st)
	require.Nil(t, closer)
}
