package supportaccess_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview101SweepExpiryNotDelayedByNotifier: Sweep told each expired
// grant's listeners and then its Notifier, one grant after the other, so
// an in-flight request kept by the batch's second grant ran on for as long
// as the Notifier took with the first (a webhook that takes its time).
// Revoke and RevokeTenant end every in-flight request before the first
// Notifier call (review7); an expiry the request's own timer does not see
// (the grant was shortened on another replica, or the clock moved) must
// not wait either.
func TestReview101SweepExpiryNotDelayedByNotifier(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	notifier := sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
		if n.Type == sa.EventGrantExpired {
			first := false
			once.Do(func() { first = true })
			if first {
				close(entered)
				<-release
			}
		}
		return nil
	})
	e := newMWEnv(t, sa.WithNotifier(notifier))
	e.grant(sa.GrantInput{Duration: sa.Day})     // expires first: told first
	e.grant(sa.GrantInput{Duration: 2 * sa.Day}) // admits the request
	in, probe := make(chan struct{}), make(chan struct{})
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("row 1\n"))
		close(in)
		<-probe
		cause = mwWaitEnd(r, 400*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	done := make(chan struct{})
	go func() { defer close(done); mwDo(h, mwReq(http.MethodGet, "/events", "generic")) }()
	<-in
	e.clock.Advance(3 * sa.Day) // both expired; the request's own timer still waits for day 2
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		_, err := e.m.Sweep(context.Background())
		require.NoError(t, err)
	}()
	<-entered // the first expiry is being told to the customer
	close(probe)
	<-done
	close(release)
	<-sweepDone
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the in-flight request outlives its grant's recorded expiry while the Notifier is busy with another")
}
