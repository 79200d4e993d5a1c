// Review 24: the fixes of 94a5c77, 8c75b76, 02646bf, 9c3a6d0, 5e1982b —
// prefix TestReview24.

package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// rw24Hook installs f as the store's hook run before the next Check.
func rw24Hook(e *mwEnv, f func()) { e.store.before.Store(&f) }

// rw24Wait waits (real time) for ch, failing the test after d.
func rw24Wait(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestReview24DeafAuditorOfAdoptedGrantStallsRevocations: 9c3a6d0 makes
// the watcher goroutine record a support.scope event itself when a
// re-check adopts another grant for a request whose record is made
// (recheck → auditAdopted → Manager.record → Auditor.Record), inline, with
// only a context deadline to bound it. Every Check the watcher makes runs
// in a goroutine of its own (boundedCheck) precisely so that a store that
// does not honour its context (a driver stuck on a dead connection) cannot
// hold up the watcher "and with it the end of every request it watches";
// WithPollInterval documents the bound (a poll's time, at most 1 s, plus
// 100 ms) "also with a store that ignores its context". The store is the
// auditor (memstore, sqlstore): a Record stuck on the same dead connection
// now stops the watcher outright. Here stream 1 (acme) is admitted by A;
// A is revoked and the re-check adopts B, whose support.scope Record
// hangs, ignoring its context. Stream 2 (globex) has its only grant Z
// revoked on the same Manager: the revocation must end it within the
// documented bound, but the watcher never gets to it — the stream keeps
// sending tenant data to support on a revoked grant for as long as the
// auditor hangs (and the last request's leave, and so the handler's
// return, waits for it too).
func TestReview24DeafAuditorOfAdoptedGrantStallsRevocations(t *testing.T) {
	e := newMWEnv(t)
	a := e.grant(sa.GrantInput{Duration: 3 * time.Hour}) // admits stream 1
	e.grant(sa.GrantInput{Duration: 2 * time.Hour})      // B: takes over
	z := e.grant(sa.GrantInput{TenantID: "globex", Duration: time.Hour})

	srv := e.streams(sa.WithPollInterval(time.Hour))
	r2 := srv.serve("globex")
	_ = srv.serve("generic")

	gate := e.store.gate(sa.EventSupportScope, false) // a Record deaf to its context
	released := false
	release := func() {
		if !released {
			released = true
			close(gate.release)
		}
	}
	t.Cleanup(func() {
		release()
		srv.stop()
	})

	_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed")
	require.NoError(t, err)
	rw24Wait(t, gate.entered, 5*time.Second, "the watcher's support.scope Record of the adopted grant B")

	_, err = e.m.Revoke(context.Background(), z.ID, mwCustomer, "wrong tenant")
	require.NoError(t, err)
	// Documented: within a poll's time (at most 1 s) plus 100 ms.
	cause := mwWaitEnd(r2, 2*time.Second)
	require.ErrorIs(t, cause, sa.ErrSessionEnded,
		"grant %s was revoked on the middleware's own Manager 2 s ago and stream 2 still runs: the watcher is stuck in auditAdopted's Record of another request's adopted grant", z.ID)
}

// TestReview24RecheckReplacesPendingScopeUnaudited: 9c3a6d0 gives a grant
// the watcher's re-check adopts after the request's record a support.scope
// event — but only when the need it replaces is not pending
// (`audited && !old.pending`). A pending need is one establish set for a
// scope taken after the record and whose own support.scope event (naming
// the grant establish found) is still being recorded. The re-check
// overwrites that need's grant with the one it found and keeps
// pending/tok; establish then records its event for the old grant and
// confirmNeed (matching the tok) un-pends the need, now on the re-check's
// grant, which no event names. Here a part behind RequireScope(msgs)
// finds X; while its support.scope(msgs, X) Record runs, X is revoked and
// the re-check adopts Y for msgs. The request then uses msgs on Y
// (another part runs without a Check) and no support event names Y with
// msgs — the unaudited takeover review22 closed, through establish's
// window.
func TestReview24RecheckReplacesPendingScopeUnaudited(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: 3 * time.Hour})                                // read: admits
	x := e.grant(sa.GrantInput{Duration: 2 * time.Hour, Scopes: []sa.Scope{msgs}}) // found first
	y := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})     // takes over
	z := e.grant(sa.GrantInput{TenantID: "globex", Duration: time.Hour})

	finish := make(chan struct{})
	streaming := make(chan *http.Request, 1)
	first, second := &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := w.Write([]byte("event: one\n\n")); err != nil { // the support.request event
			return
		}
		if r.URL.Path == "/globex" {
			streaming <- r
			select {
			case <-r.Context().Done():
			case <-finish:
			}
			return
		}
		sa.RequireScope(msgs)(first).ServeHTTP(httptest.NewRecorder(), r)  // Check: X; its event waits
		sa.RequireScope(msgs)(second).ServeHTTP(httptest.NewRecorder(), r) // uses what the request holds
	}), sa.WithPollInterval(time.Hour))

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		mwDo(h, mwReq(http.MethodGet, "/globex", "globex"))
	}()
	select {
	case <-streaming:
	case <-time.After(5 * time.Second):
		t.Fatal("the globex stream did not start")
	}
	gate := e.store.gate(sa.EventSupportScope, false)
	go func() {
		defer wg.Done()
		mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	}()
	var once sync.Once
	release := func() { once.Do(func() { close(gate.release) }) }
	t.Cleanup(func() {
		release()
		close(finish)
		wg.Wait()
	})
	rw24Wait(t, gate.entered, 5*time.Second, "establish's support.scope(messages:read, X) Record")

	// The re-check X's revocation triggers Checks read, then msgs (finds
	// Y). During the latter, Z's revocation flags the globex stream, which
	// the same poll re-checks after the inbox request's re-check is
	// written back: its Check tells the test that write-back is done.
	rechecked := make(chan struct{})
	rw24Hook(e, func() { // the re-check's Check of read
		rw24Hook(e, func() { // its Check of msgs
			_, err := e.m.Revoke(context.Background(), z.ID, mwCustomer, "done")
			require.NoError(t, err)
			rw24Hook(e, func() { close(rechecked) }) // the globex stream's re-check
		})
	})
	_, err := e.m.Revoke(context.Background(), x.ID, mwCustomer, "wrong ticket")
	require.NoError(t, err)
	rw24Wait(t, rechecked, 5*time.Second, "the watcher's re-checks")

	release()
	wg.Wait()
	require.Equal(t, int64(1), first.calls.Load())
	require.Equal(t, int64(1), second.calls.Load(), "precondition: the request uses messages:read (on Y) without a Check")
	require.True(t, rw22Names(e, y.ID.String(), msgs),
		"the request ran a part with messages:read on grant %s, which a re-check adopted, and no support event names it (events: %s)",
		y.ID, mwJSON(t, e.events(sa.EventSupportRequest, sa.EventSupportScope)))
}
