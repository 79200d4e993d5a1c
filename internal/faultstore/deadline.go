package faultstore

import (
	"context"
	"testing"
	"time"
)

// MaxOvershoot is how long after its context's deadline a call may still
// run: the library promises that no call outlives its context by more.
const MaxOvershoot = 100 * time.Millisecond

// overshootAttempts is how many times WithinDeadline measures a call
// before it fails the test. A call that really ignores its context
// overshoots every time; a single overshoot on a loaded machine (the race
// detector, two cores shared with other test binaries) is a scheduling
// delay, logged and measured again.
const overshootAttempts = 3

// WithinDeadline calls fn with a context that ends after timeout and fails
// t unless fn returns within MaxOvershoot of that deadline. setup, if not
// nil, runs before each attempt, outside the measured time (calls with side
// effects prepare fresh state there). It returns fn's error of the
// attempt that kept the promise.
func WithinDeadline(t testing.TB, name string, timeout time.Duration, setup func(), fn func(ctx context.Context) error) error {
	t.Helper()
	for attempt := 1; ; attempt++ {
		if setup != nil {
			setup()
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		deadline, _ := ctx.Deadline()
		err := fn(ctx)
		over := time.Since(deadline)
		cancel()
		if over <= MaxOvershoot {
			return err
		}
		if attempt == overshootAttempts {
			t.Fatalf("%s returned %v after its context's deadline (limit %v), %d times in a row", name, over.Round(time.Millisecond), MaxOvershoot, attempt)
		}
		t.Logf("%s returned %v after its context's deadline; measuring again", name, over.Round(time.Millisecond))
	}
}
