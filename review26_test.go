// Review 26: b023d97 (the audit of the grants a re-check adopted no longer
// holds up the poll; a timer ends the request when the events take longer
// than minStaleness), 7f5f058 (telemetry, example webapp) — prefix
// TestReview26.

package supportaccess_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview26AdoptAuditTimerOutlivesRequests: b023d97's auditAdopted
// counts the goroutine that records the support.scope events of the grants
// a re-check adopted in the run's WaitGroup (checks), so the last request
// of a busy period waits for it — WithPollInterval: "the last request of a
// busy period waits for such a Check to return before it finishes (no
// goroutine outlives the requests)". But the time.AfterFunc timer that
// ends the request when those events take longer than adoptAuditTimeout
// runs its callback (fail: the middleware's error handler, then st.end) in
// a goroutine of its own that nothing counts or waits for. When the
// auditor answers after the timer fired (a Record slower than 5 s), the
// record goroutine returns, the run returns, the last request's leave
// returns and ServeHTTP returns — while the timer's callback is still in
// the host's error handler (and has yet to call st.end on the finished
// request). The host's error handler is thus called from a middleware
// goroutine after every request has finished and the watcher stopped: a
// host that tears down its logger once its server drained (or a test whose
// handler calls t.Log, which then panics "Log in goroutine after Test has
// completed") gets a late call no WaitGroup covers.
//
// Here a stream admitted by A is moved onto B when A is revoked; B's
// support.scope Record hangs (deaf to its context) past the timer (shortened
// to 150 ms here), whose callback enters the error handler; then the Record returns and the
// stream finishes. When ServeHTTP returns, the error handler must not
// still be running.
func TestReview26AdoptAuditTimerOutlivesRequests(t *testing.T) {
	t.Cleanup(sa.SetAdoptAuditTimeoutForTest(150 * time.Millisecond)) // real timer: the test stays under a second
	e := newMWEnv(t)
	a := e.grant(sa.GrantInput{Duration: 3 * time.Hour}) // admits the stream
	e.grant(sa.GrantInput{Duration: 2 * time.Hour})      // B: takes over

	var inHandler atomic.Int32
	entered := make(chan struct{})
	releaseErr := make(chan struct{})
	var enterOnce, releaseOnce sync.Once
	onErr := func(ctx context.Context, err error) {
		e.errs.handle(ctx, err)
		inHandler.Add(1)
		defer inHandler.Add(-1)
		enterOnce.Do(func() { close(entered) })
		<-releaseErr // a slow error sink
	}

	finish := make(chan struct{})
	streaming := make(chan *http.Request, 1)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := w.Write([]byte("event: one\n\n")); err != nil { // the support.request event
			return
		}
		streaming <- r
		select {
		case <-r.Context().Done():
		case <-finish:
		}
	}), sa.WithPollInterval(time.Hour), sa.WithMiddlewareErrorHandler(onErr))

	gate := e.store.gate(sa.EventSupportScope, false) // B's event: a Record deaf to its context
	var gateOnce, finishOnce sync.Once
	releaseGate := func() { gateOnce.Do(func() { close(gate.release) }) }
	done := make(chan struct{})
	t.Cleanup(func() {
		releaseGate()
		finishOnce.Do(func() { close(finish) })
		releaseOnce.Do(func() { close(releaseErr) })
		<-done
	})
	go func() {
		defer close(done)
		mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
	}()
	var r *http.Request
	select {
	case r = <-streaming:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not start")
	}
	g, _ := sa.GrantFromContext(r.Context())
	require.Equal(t, a.ID, g.ID, "precondition: A admitted the stream")

	_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed")
	require.NoError(t, err)
	rw24Wait(t, gate.entered, 5*time.Second, "the support.scope Record of the adopted grant B")
	// adoptAuditTimeout (150 ms here) passes: the timer's callback calls
	// the error handler.
	rw24Wait(t, entered, 5*time.Second, "the adoption audit's timer to report the missing answer")

	// The Record returns after all (past its context's deadline); the
	// stream, the only request, finishes.
	releaseGate()
	finishOnce.Do(func() { close(finish) })

	select {
	case <-done:
		// ServeHTTP of the last request returned: nothing of the
		// middleware may still run.
		require.Zero(t, inHandler.Load(),
			"the last request's ServeHTTP returned (watcher stopped) while the adoption audit's AfterFunc callback is still running the error handler: time.AfterFunc's goroutine is not counted in the poll's WaitGroup")
	case <-time.After(300 * time.Millisecond):
		// The middleware waits for its error handler call: correct.
	}
	releaseOnce.Do(func() { close(releaseErr) })
	rw24Wait(t, done, 5*time.Second, "the request to finish")
}
