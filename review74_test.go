package supportaccess_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// review74SlowClaims is a memstore whose first ClaimTransitions tells
// entered and then waits for release, ignoring its context (a store
// driver in the middle of a round trip); later claims just report their
// context's error.
type review74SlowClaims struct {
	*memstore.Store
	calls   *atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (s review74SlowClaims) ClaimTransitions(ctx context.Context, _ sa.Transition, _ time.Time, _ int, _ func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if s.calls.Add(1) == 1 {
		close(s.entered)
		<-s.release
	}
	return nil, ctx.Err()
}

// TestReview74CloseThenParentCancelReturnsErrClosed: Close's doc says it
// stops every RunExpiry loop and "each returns ErrClosed"; RunExpiry's
// says "ErrClosed when Close stopped it". Here Close stops the loop first
// (its Sweep is cancelled and Close is waiting for it), and only then —
// while the Sweep in progress is still winding down — does the parent
// context end (the host's shutdown cancelling everything). RunExpiry
// checks parent.Err() first, whatever happened first, and returns
// context.Canceled: the caller cannot tell that Close stopped its loop.
// (Fix: cancel the loop's context with a cause — context.WithCancelCause,
// Close cancelling with ErrClosed — and return what stopped it first,
// context.Cause(ctx).)
func TestReview74CloseThenParentCancelReturnsErrClosed(t *testing.T) {
	st := review74SlowClaims{Store: memstore.New(), calls: new(atomic.Int32), entered: make(chan struct{}), release: make(chan struct{})}
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)

	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	done := make(chan error, 1)
	go func() { done <- m.RunExpiry(parent, time.Hour) }()
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first Sweep did not start")
	}

	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	// Wait until Close has marked the Manager closed (and so cancelled the
	// loop): a RunExpiry on an ended context then returns ErrClosed.
	ended, cancelEnded := context.WithCancel(context.Background())
	cancelEnded()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := m.RunExpiry(ended, time.Hour); errors.Is(err, sa.ErrClosed) {
			break
		}
		require.True(t, time.Now().Before(deadline), "Close did not mark the Manager closed")
		time.Sleep(time.Millisecond)
	}

	cancelParent() // after Close stopped the loop
	close(st.release)
	require.NoError(t, <-closed)
	require.ErrorIs(t, <-done, sa.ErrClosed, "Close stopped the loop before its parent context ended")
}
