package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: test
// servers, the middleware's watchers, serve's shutdown, the databases of
// the store tests and the browser of the end-to-end test must all have
// ended.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
