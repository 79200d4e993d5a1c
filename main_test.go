package supportaccess_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// middleware's watchers, RunExpiry, test servers and the *sql.DB handles
// of the SQLite tests must all have ended (the databases are closed in
// cleanups, not ignored here).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
