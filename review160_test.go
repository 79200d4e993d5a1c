package supportaccess_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 160: shutdown, Close and goroutine lifetimes under load. The
// promises attacked: "No goroutine outlives Close/Stop" (DESIGN.md),
// Manager.Close's doc comment ("It stops every RunExpiry loop (the Sweep
// in progress is cancelled; each returns ErrClosed) and waits for them to
// return ... The calls of the API keep working after Close ... a
// middleware's watcher goroutines end with the requests they watch"),
// doc.go's "Shutdown" section, RunExpiry's errors, the watcher's "none
// outlives the requests", the Notifier's "called after the change
// committed", ExportAudit's streaming, and sqlstore.Store.Close ("Methods
// that access the database return an error when called after Close").

// r160Wait waits (real time, bounded) for ch, failing t with what.
func r160Wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s\n%s", what, r160Stacks())
	}
	var zero T
	return zero
}

// r160NotYet requires ch to deliver nothing within d (real time, short).
func r160NotYet[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s returned early", what)
	case <-time.After(d):
	}
}

// r160Stacks is every goroutine's stack, for failure messages.
func r160Stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// r160LibraryGoroutines counts the goroutines running code of the
// library (not of its tests): the watcher, re-checks, sweep claimers.
func r160LibraryGoroutines() int {
	n := 0
	for _, g := range strings.Split(r160Stacks(), "\n\n") {
		if strings.Contains(g, "supportaccess/supportaccess.(*watcher)") ||
			strings.Contains(g, "supportaccess/supportaccess.(*Manager).sweep") {
			n++
		}
	}
	return n
}

// TestReview160CloseWithManyStreamsInFlight: Close while 32 impersonated
// streams of four sessions (two tenants) run. Close "does not end"
// requests and returns at once (it waits for RunExpiry loops only); the
// streams keep being watched after it: RevokeTenant ends every acme
// stream at once, the globex ones go on until their own grant is revoked,
// and when the last stream has left no goroutine of the library is left
// ("the middleware's watcher goroutine ends with the last request it
// watches").
func TestReview160CloseWithManyStreamsInFlight(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour})
	gx := mustGrant(t, e.m, sa.GrantInput{TenantID: "globex", Duration: time.Hour}, mwCustomer)
	s := e.streams(sa.WithPollInterval(40 * time.Millisecond))
	defer s.stop()
	type stream struct {
		tenant string
		r      *http.Request
	}
	var streams []stream
	for _, tok := range []string{"generic", "eve", "bob", "globex"} {
		tenant := "acme"
		if tok == "globex" {
			tenant = "globex"
		}
		for range 8 {
			streams = append(streams, stream{tenant, s.serve(tok)})
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- e.m.Close() }()
	require.NoError(t, r160Wait(t, closed, "Close with streams in flight"))
	time.Sleep(60 * time.Millisecond) // a poll or more of the watcher (real time, < 1 s)
	for i, st := range streams {
		require.NoError(t, context.Cause(st.r.Context()), "stream %d ended by Close", i)
	}
	_, err := e.m.RevokeTenant(ctx, "acme", mwCustomer, "close out")
	require.NoError(t, err)
	for i, st := range streams {
		if st.tenant == "acme" {
			require.ErrorIs(t, mwWaitEnd(st.r, time.Second), sa.ErrSessionEnded, "acme stream %d after RevokeTenant", i)
		} else {
			require.NoError(t, context.Cause(st.r.Context()), "globex stream %d ended by acme's revocation", i)
		}
	}
	_, err = e.m.Revoke(ctx, gx.ID, mwCustomer, "close out")
	require.NoError(t, err)
	for i, st := range streams {
		require.ErrorIs(t, mwWaitEnd(st.r, time.Second), sa.ErrSessionEnded, "stream %d", i)
	}
	s.stop()
	// Within moments: a request's timer callback (reqState.expire, which
	// only pokes the watcher) may still be returning as its request leaves.
	require.Eventually(t, func() bool { return r160LibraryGoroutines() == 0 }, time.Second, time.Millisecond,
		"library goroutines left after the last stream:\n%s", r160Stacks())
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, len(streams), "every stream is audited once")
}

// r160Hook is an expiry hook that ignores its context: it tells entered
// and waits for release (host code stuck on a call without a deadline).
type r160Hook struct {
	calls            atomic.Int32
	entered, release chan struct{}
	sawCancel        atomic.Bool
}

func (h *r160Hook) run(ctx context.Context, _ sa.Grant) error {
	if h.calls.Add(1) == 1 {
		close(h.entered)
		<-h.release
		h.sawCancel.Store(ctx.Err() != nil)
	}
	return nil
}

// TestReview160CloseWaitsForHookIgnoringContext: Close "waits for them
// to return" — also for a hook that ignores the cancelled context. While
// it waits, the Manager is not stuck: Check, Grant, Revoke and Sweep of
// other grants go on (no store lock is held while hooks run), a second
// Close waits too and both return the same. The hook that finished after
// Close succeeded: it is not run again and not recorded as failed.
func TestReview160CloseWaitsForHookIgnoringContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := &r160Hook{entered: make(chan struct{}), release: make(chan struct{})}
	errs := &mwErrs{}
	e := newEnv(t, sa.OnExpire(h.run), sa.WithErrorHandler(errs.handle))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Advance(time.Hour)
	other := e.grant(sa.GrantInput{TenantID: "globex", Duration: 2 * time.Hour})

	loop := make(chan error, 1)
	go func() { loop <- e.m.RunExpiry(ctx, time.Hour) }()
	<-h.entered
	closed1, closed2 := make(chan error, 1), make(chan error, 1)
	go func() { closed1 <- e.m.Close() }()
	go func() { closed2 <- e.m.Close() }()
	r160NotYet(t, closed1, 100*time.Millisecond, "Close (its loop's hook still runs)")
	r160NotYet(t, closed2, 0, "a second Close")

	// The Manager works meanwhile.
	_, err := e.m.Check(ctx, "globex", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	g2 := e.grant(sa.GrantInput{TenantID: "initech", Duration: time.Hour})
	_, err = e.m.Revoke(ctx, g2.ID, customer, "done")
	require.NoError(t, err)
	_, err = e.m.Check(ctx, "initech", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	require.ErrorIs(t, e.m.RunExpiry(ctx, time.Hour), sa.ErrClosed, "refused while Close waits")

	close(h.release)
	require.NoError(t, r160Wait(t, closed1, "Close"))
	require.NoError(t, r160Wait(t, closed2, "the second Close"))
	require.ErrorIs(t, r160Wait(t, loop, "RunExpiry"), sa.ErrClosed)
	require.True(t, h.sawCancel.Load(), "the hook's context was cancelled by Close")

	require.Len(t, e.events(sa.EventGrantExpired), 1)
	require.Empty(t, e.events(sa.EventExpireHookFailed), "a hook that returned nil after Close succeeded")
	e.clock.Advance(2 * time.Hour)
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the other grant's expiry")
	require.EqualValues(t, 2, h.calls.Load(), "the first expiry's hook did not run again")
	require.Empty(t, errs.all())
	_ = g
	_ = other
}

// r160Notifier records the notifications it delivers; it honours its
// context as a mail or chat client does (a cancelled one fails the
// delivery). block, when set, makes the first grant.expired (or
// grant.revoked) notification tell entered and wait for its context to
// end (honourCtx) or for release.
type r160Notifier struct {
	mu        sync.Mutex
	delivered map[uuid.UUID][]sa.EventType
	blockOn   sa.EventType
	honourCtx bool
	blocked   atomic.Bool
	entered   chan struct{}
	release   chan struct{}
}

func newR160Notifier(blockOn sa.EventType, honourCtx bool) *r160Notifier {
	return &r160Notifier{delivered: map[uuid.UUID][]sa.EventType{}, blockOn: blockOn, honourCtx: honourCtx,
		entered: make(chan struct{}), release: make(chan struct{})}
}

func (n *r160Notifier) Notify(ctx context.Context, x sa.Notification) error {
	if n.blockOn != "" && x.Type == n.blockOn && n.blocked.CompareAndSwap(false, true) {
		close(n.entered)
		if n.honourCtx {
			select {
			case <-ctx.Done():
			case <-n.release:
			}
		} else {
			<-n.release
		}
	}
	if err := ctx.Err(); err != nil && n.honourCtx {
		return fmt.Errorf("mail: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delivered[x.GrantID] = append(n.delivered[x.GrantID], x.Type)
	return nil
}

func (n *r160Notifier) got(id uuid.UUID, typ sa.EventType) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, x := range n.delivered[id] {
		if x == typ {
			c++
		}
	}
	return c
}

// TestReview160CloseCutsSweepOfManyBatches: Close while RunExpiry's
// Sweep handles the first of three batches of expiries (4 500 grants,
// two claimers), its Notifier waiting on the context. Every expiry is
// recorded exactly once, across the Sweep Close cut and a Sweep after
// it; and none is lost to the customer silently: each recorded expiry
// was either notified or has a notify.failed event ("an error never
// undoes the change, it is recorded as a notify.failed event", also
// "a stopping RunExpiry").
func TestReview160CloseCutsSweepOfManyBatches(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n = 2*sa.SweepBatchSize + 500
	nt := newR160Notifier(sa.EventGrantExpired, true)
	errs := &mwErrs{}
	e := newEnv(t, sa.WithNotifier(nt), sa.WithErrorHandler(errs.handle), sa.WithSweepConcurrency(2))
	ids := make([]uuid.UUID, 0, n)
	for i := range n {
		g := e.grant(sa.GrantInput{TenantID: fmt.Sprintf("t%02d", i%37), Duration: time.Hour})
		ids = append(ids, g.ID)
	}
	e.clock.Advance(time.Hour)
	loop := make(chan error, 1)
	go func() { loop <- e.m.RunExpiry(ctx, time.Hour) }()
	r160Wait(t, nt.entered, "the first expiry's notification")
	require.NoError(t, e.m.Close())
	require.ErrorIs(t, r160Wait(t, loop, "RunExpiry"), sa.ErrClosed)
	cut := len(e.events(sa.EventGrantExpired))
	require.Positive(t, cut, "the batch under way when Close came is recorded")

	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	expired := map[uuid.UUID]int{}
	for _, ev := range e.events(sa.EventGrantExpired) {
		expired[ev.GrantID]++
	}
	failed := map[uuid.UUID]int{}
	for _, ev := range e.events(sa.EventNotifyFailed) {
		if ev.Attrs[sa.AttrAction] == string(sa.EventGrantExpired) {
			failed[ev.GrantID]++
		}
	}
	for _, id := range ids {
		require.Equal(t, 1, expired[id], "grant %s: grant.expired recorded", id)
		require.Equal(t, 1, nt.got(id, sa.EventGrantExpired)+failed[id],
			"grant %s: told once or its failure recorded once (told %d, failed %d)", id, nt.got(id, sa.EventGrantExpired), failed[id])
	}
	t.Logf("Close cut the sweep after %d of %d expiries; %d notifications failed", cut, n, len(failed))
}

// TestReview160CloseRacesRunExpiryStarts: loops started concurrently
// with several Close calls each end with ErrClosed ("ErrClosed when Close
// stopped it ..., or at once after Close") and none is left running:
// Close's wait covers a loop registered while it began.
func TestReview160CloseRacesRunExpiryStarts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for round := range 20 {
		e := newEnv(t)
		e.grant(sa.GrantInput{Duration: time.Hour})
		const loops = 12
		res := make(chan error, loops)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range loops {
			wg.Go(func() {
				<-start
				res <- e.m.RunExpiry(ctx, time.Millisecond)
			})
		}
		closes := make(chan error, 3)
		for range 3 {
			wg.Go(func() {
				<-start
				closes <- e.m.Close()
			})
		}
		close(start)
		for range 3 {
			require.NoError(t, r160Wait(t, closes, "Close"))
		}
		// Every Close has returned: a loop registered before it is
		// done; any other was refused. None may still be sweeping.
		for range loops {
			require.ErrorIs(t, r160Wait(t, res, "a loop"), sa.ErrClosed, "round %d", round)
		}
		wg.Wait()
	}
}

// TestReview160RunExpiryContextAndCloseTogether: the loop's own context
// ending at the same moment as Close gives one of the two documented
// errors, never a hang.
func TestReview160RunExpiryContextAndCloseTogether(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for range 50 {
		e := newEnv(t)
		c, cancel := context.WithCancel(ctx)
		res := make(chan error, 1)
		go func() { res <- e.m.RunExpiry(c, time.Millisecond) }()
		go cancel()
		require.NoError(t, e.m.Close())
		err := r160Wait(t, res, "RunExpiry")
		if !errors.Is(err, sa.ErrClosed) {
			require.ErrorIs(t, err, context.Canceled)
		}
		cancel()
	}
	// A context already ended, after Close: ErrClosed at once.
	e := newEnv(t)
	require.NoError(t, e.m.Close())
	c, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, e.m.RunExpiry(c, time.Hour), sa.ErrClosed)
	require.ErrorIs(t, e.m.RunExpiry(ctx, 0), sa.ErrInvalidInput, "a bad interval is refused first")
}

// TestReview160APIAfterClose: "The calls of the API keep working after
// Close (Check, Grant, Sweep…)". Check still denies what it should
// (default deny, revocation, expiry) and allows what it should; the
// audit methods work.
func TestReview160APIAfterClose(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.m.Close())
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "default deny after Close")
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeWrite)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = e.m.Revoke(ctx, g.ID, customer, "after close")
	require.NoError(t, err)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "a revocation after Close denies")
	g2 := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Advance(time.Hour)
	_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "expiry after Close denies")
	n, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var buf bytes.Buffer
	_, err = e.m.ExportAudit(ctx, &buf, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
	require.NoError(t, err)
	rep, err := e.m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	require.True(t, rep.OK(), "%+v", rep)
	require.NoError(t, e.m.Close())
	_ = g2
}

// r160StuckWriter blocks its first Write until release (a client that
// stopped reading, a full pipe), then takes everything.
type r160StuckWriter struct {
	once             sync.Once
	entered, release chan struct{}
	mu               sync.Mutex
	buf              bytes.Buffer
}

func (w *r160StuckWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.entered)
		<-w.release
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// r160Stores are the stores of the backend tests: memstore, and sqlstore
// on SQLite, PostgreSQL and MariaDB, each SQL one on a pool of ONE
// connection, so that a connection held across host code (a writer, a
// hook) shows as a deadlock.
func r160Stores() map[string]func(t *testing.T) sa.Store {
	stores := map[string]func(t *testing.T) sa.Store{"memstore": func(*testing.T) sa.Store { return memstore.New() }}
	for _, d := range sqltest.Dialects() {
		stores[d.String()] = func(t *testing.T) sa.Store {
			db := sqltest.Open(t, d)
			db.SetMaxOpenConns(1)
			return sqltest.NewStoreOn(t, db, d)
		}
	}
	return stores
}

// TestReview160ExportToStuckWriter: ExportAudit "reading ExportPageSize
// events at a time ... and flushing after each page" to a writer that
// does not return. It runs in the caller's goroutine and holds nothing
// the rest of the Manager needs while it waits for w: Grant, Check,
// Revoke, Sweep, RunExpiry and Close all go on (on a one-connection pool
// too), and Close does not wait for the export. Once w returns, the
// export finishes.
func TestReview160ExportToStuckWriter(t *testing.T) {
	for name, mk := range r160Stores() {
		t.Run(name, func(t *testing.T) {
			st := mk(t)
			clock := storetest.NewClock(storetest.Epoch)
			m, err := sa.NewManager(st, sa.WithNow(clock.Now))
			require.NoError(t, err)
			const grants = 30 // the page's flush is the writer's first Write
			for range grants {
				mustGrant(t, m, sa.GrantInput{Duration: time.Hour}, customer)
			}
			w := &r160StuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
			type result struct {
				n   int
				err error
			}
			exp := make(chan result, 1)
			go func() {
				n, err := m.ExportAudit(ctx, w, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
				exp <- result{n, err}
			}()
			r160Wait(t, w.entered, "the export's first write")

			done := make(chan struct{})
			go func() {
				defer close(done)
				g := mustGrant(t, m, sa.GrantInput{TenantID: "globex", Duration: time.Hour}, customer)
				_, err := m.Check(ctx, "globex", support.ID, sa.ScopeRead)
				require.NoError(t, err)
				_, err = m.Revoke(ctx, g.ID, customer, "done")
				require.NoError(t, err)
				_, err = m.Check(ctx, "globex", support.ID, sa.ScopeRead)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant)
				_, err = m.Sweep(ctx)
				require.NoError(t, err)
				loop := make(chan error, 1)
				go func() { loop <- m.RunExpiry(ctx, time.Hour) }()
				time.Sleep(20 * time.Millisecond) // the loop's first Sweep under way or done
				require.NoError(t, m.Close())
				require.ErrorIs(t, r160Wait(t, loop, "RunExpiry"), sa.ErrClosed)
			}()
			r160Wait(t, done, "the Manager's calls while an export is stuck on its writer")
			r160NotYet(t, exp, 0, "the export")
			close(w.release)
			res := r160Wait(t, exp, "the export")
			require.NoError(t, res.err)
			require.Equal(t, grants, res.n, "acme's grant.created events, read before the stuck write")
			w.mu.Lock()
			lines := bytes.Count(w.buf.Bytes(), []byte("\n"))
			w.mu.Unlock()
			require.Equal(t, res.n, lines)
		})
	}
}

// TestReview160ExportCancelledWhileStuck: the export's context ends while
// its writer is stuck: once the writer returns, the export stops at the
// next page with the context's error and reports only complete pages.
func TestReview160ExportCancelledWhileStuck(t *testing.T) {
	e := newEnv(t)
	for range sa.ExportPageSize + 10 {
		e.grant(sa.GrantInput{Duration: time.Hour})
	}
	w := &r160StuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
	c, cancel := context.WithCancel(ctx)
	type result struct {
		n   int
		err error
	}
	exp := make(chan result, 1)
	go func() {
		n, err := e.m.ExportAudit(c, w, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
		exp <- result{n, err}
	}()
	r160Wait(t, w.entered, "the first write")
	cancel()
	close(w.release)
	res := r160Wait(t, exp, "the export")
	require.ErrorIs(t, res.err, context.Canceled)
	require.Equal(t, sa.ExportPageSize, res.n, "the first page, complete")
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Equal(t, sa.ExportPageSize, bytes.Count(w.buf.Bytes(), []byte("\n")))
}

// TestReview160ClosedSQLStoreUnderRunningManager: the host closes the
// sqlstore (doc.go's shutdown order) while the Manager still works: a
// stream admitted before is running, RunExpiry is sweeping, and new
// requests arrive. Every path fails closed: the stream ends at its next
// re-check (a store failure ends a request), new requests get 503, Check
// errs without claiming "no grant", Grant stores nothing, RunExpiry
// reports errors and goes on until Close stops it (ErrClosed), and no
// goroutine is left.
func TestReview160ClosedSQLStoreUnderRunningManager(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			st := sqltest.NewStore(t, d)
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			errs := &mwErrs{}
			clock := &mwClock{}
			m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithErrorHandler(errs.handle))
			require.NoError(t, err)
			mustGrant(t, m, sa.GrantInput{Duration: time.Hour}, mwCustomer)

			streaming := make(chan *http.Request, 1)
			h := m.Middleware(rw7Session, sa.WithPollInterval(100*time.Millisecond), sa.WithMiddlewareErrorHandler(errs.handle))(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = w.Write([]byte("event: one\n\n"))
					streaming <- r
					<-r.Context().Done()
				}))
			served := make(chan struct{})
			go func() {
				defer close(served)
				mwDo(h, mwReq(http.MethodGet, "/events", ""))
			}()
			r := r160Wait(t, streaming, "the stream")
			loop := make(chan error, 1)
			go func() { loop <- m.RunExpiry(ctx, 20*time.Millisecond) }()

			require.NoError(t, st.Close())
			require.ErrorIs(t, mwWaitEnd(r, 900*time.Millisecond), sa.ErrSessionEnded, "the stream after the store closed")
			r160Wait(t, served, "the stream's handler")

			rec := mwDo(h, mwReq(http.MethodGet, "/page", ""))
			require.Equal(t, http.StatusServiceUnavailable, rec.Code)
			_, err = m.Check(ctx, "acme", mwGeneric, sa.ScopeRead)
			require.Error(t, err)
			require.NotErrorIs(t, err, sa.ErrNoActiveGrant)
			_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: mwCustomer})
			require.Error(t, err)

			require.Eventually(t, func() bool {
				n := 0
				for _, err := range errs.all() {
					if strings.Contains(err.Error(), "run expiry") {
						n++
					}
				}
				return n >= 2
			}, 5*time.Second, 10*time.Millisecond, "RunExpiry reports the closed store and goes on")
			require.NoError(t, m.Close())
			require.ErrorIs(t, r160Wait(t, loop, "RunExpiry"), sa.ErrClosed)
		})
	}
}

// TestReview160RevokeEndsStreamBeforeStuckNotifier: Revoke's Notifier
// ignores its context and does not return. The revoked session's stream
// ends at once all the same ("requests in flight on the revoking replica
// are cancelled at once"), and Close, which waits for RunExpiry loops
// only, returns while the Notifier still hangs.
func TestReview160RevokeEndsStreamBeforeStuckNotifier(t *testing.T) {
	nt := newR160Notifier(sa.EventGrantRevoked, false)
	e := newMWEnv(t, sa.WithNotifier(nt))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	s := e.streams()
	defer s.stop()
	r := s.serve("generic")
	revoked := make(chan error, 1)
	go func() {
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
		revoked <- err
	}()
	r160Wait(t, nt.entered, "the Notifier")
	require.ErrorIs(t, mwWaitEnd(r, time.Second), sa.ErrSessionEnded, "the stream, while the Notifier hangs")
	closed := make(chan error, 1)
	go func() { closed <- e.m.Close() }()
	require.NoError(t, r160Wait(t, closed, "Close while Revoke's Notifier hangs"))
	r160NotYet(t, revoked, 0, "Revoke")
	close(nt.release)
	require.NoError(t, r160Wait(t, revoked, "Revoke"))
}

// TestReview160CloseFromHostCodeOutsideLoops: Close's doc forbids calling
// it from host code "that a RunExpiry loop may be running: it would wait
// for itself". From the hook of a Sweep the host calls itself, or from the
// Notifier of a Revoke, it must not hang — and it still stops a loop
// running beside them.
func TestReview160CloseFromHostCodeOutsideLoops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var e *env
	closedInHook := make(chan error, 1)
	e = newEnv(t, sa.OnExpire(func(context.Context, sa.Grant) error {
		closedInHook <- e.m.Close()
		return nil
	}))
	e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Advance(time.Hour)
	swept := make(chan error, 1)
	go func() {
		_, err := e.m.Sweep(ctx)
		swept <- err
	}()
	require.NoError(t, r160Wait(t, closedInHook, "Close in the hook"))
	require.NoError(t, r160Wait(t, swept, "Sweep"))
	require.ErrorIs(t, e.m.RunExpiry(ctx, time.Hour), sa.ErrClosed)

	var m2 *sa.Manager
	closedInNotifier := make(chan error, 1)
	idle := signalClaims{Store: memstore.New(), entered: make(chan struct{}, 1)}
	m2, err := sa.NewManager(idle, sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error {
		closedInNotifier <- m2.Close()
		return nil
	})))
	require.NoError(t, err)
	loop := make(chan error, 1)
	go func() { loop <- m2.RunExpiry(ctx, time.Hour) }()
	r160Wait(t, idle.entered, "the loop's first claim")
	g := mustGrant(t, m2, sa.GrantInput{Duration: time.Hour}, customer) // Notifier: Close
	require.NoError(t, r160Wait(t, closedInNotifier, "Close in the Notifier"))
	require.ErrorIs(t, r160Wait(t, loop, "the loop beside it"), sa.ErrClosed)
	_, err = m2.Revoke(ctx, g.ID, customer, "done")
	require.NoError(t, err)
}

// r160CountingStore counts the ListGrants calls (the active-grants
// gauge's reads) and can make them wait for release.
type r160CountingStore struct {
	*memstore.Store
	lists   atomic.Int64
	block   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *r160CountingStore) ListGrants(ctx context.Context, f sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	s.lists.Add(1)
	if s.block.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return s.Store.ListGrants(ctx, f, now)
}

// TestReview160CloseDuringGaugeCollection: Close "takes the callback of
// the supportaccess.grants.active gauge ... off the meter provider, which
// would otherwise ... query the store at every collection". With a
// collection under way (its store read in progress), Close waits for it
// rather than return while the callback still reads the store, and no
// collection after Close reads the store — also with collections racing
// Close from other goroutines.
func TestReview160CloseDuringGaugeCollection(t *testing.T) {
	st := &r160CountingStore{Store: memstore.New(), entered: make(chan struct{}), release: make(chan struct{})}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })
	m, err := sa.NewManager(st, sa.WithMeterProvider(mp), sa.WithActiveGrantsGauge(true))
	require.NoError(t, err)
	mustGrant(t, m, sa.GrantInput{Duration: time.Hour}, customer)

	st.block.Store(true)
	collected := make(chan error, 1)
	go func() {
		var rm metricdata.ResourceMetrics
		collected <- reader.Collect(ctx, &rm)
	}()
	r160Wait(t, st.entered, "the gauge's store read")
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	r160NotYet(t, closed, 50*time.Millisecond, "Close during the callback's store read")
	close(st.release)
	require.NoError(t, r160Wait(t, collected, "the collection"))
	require.NoError(t, r160Wait(t, closed, "Close"))
	before := st.lists.Load()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	require.Equal(t, before, st.lists.Load(), "a collection after Close read the store")

	// Collections racing Close: none after Close returned reads the store.
	st2 := &r160CountingStore{Store: memstore.New()}
	reader2 := sdkmetric.NewManualReader()
	mp2 := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader2))
	t.Cleanup(func() { _ = mp2.Shutdown(ctx) })
	m2, err := sa.NewManager(st2, sa.WithMeterProvider(mp2), sa.WithActiveGrantsGauge(true))
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var rm metricdata.ResourceMetrics
				_ = reader2.Collect(ctx, &rm)
			}
		})
	}
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, m2.Close())
	after := st2.lists.Load()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	require.Equal(t, after, st2.lists.Load(), "collections after Close read the store")
}

// TestReview160HostCodeOnOneConnectionPool: hooks and the Notifier run
// "in the goroutine of Sweep after the grant.expired event committed";
// host code there that uses the store through the Manager (a hook that
// reads the trail, a Notifier that checks access) must not find the
// pool's only connection held by the sweep (the other claimer's
// transaction included). RunExpiry then stops at Close.
func TestReview160HostCodeOnOneConnectionPool(t *testing.T) {
	for name, mk := range r160Stores() {
		t.Run(name, func(t *testing.T) {
			st := mk(t)
			clock := storetest.NewClock(storetest.Epoch)
			var m *sa.Manager
			var hooked, told atomic.Int32
			hook := func(ctx context.Context, g sa.Grant) error {
				if _, err := m.Events(ctx, sa.AuditFilter{GrantID: g.ID}); err != nil {
					return err
				}
				_, err := m.Check(ctx, g.TenantID, support.ID, sa.ScopeRead)
				if !errors.Is(err, sa.ErrNoActiveGrant) {
					return fmt.Errorf("check in hook: %v", err)
				}
				hooked.Add(1)
				return nil
			}
			nt := sa.NotifierFunc(func(ctx context.Context, x sa.Notification) error {
				if x.Type == sa.EventGrantExpired {
					if _, err := m.Check(ctx, x.TenantID, support.ID, sa.ScopeRead); !errors.Is(err, sa.ErrNoActiveGrant) {
						return fmt.Errorf("check in notifier: %v", err)
					}
					told.Add(1)
				}
				return nil
			})
			errs := &mwErrs{}
			m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.OnExpire(hook), sa.WithNotifier(nt),
				sa.WithSweepConcurrency(2), sa.WithErrorHandler(errs.handle))
			require.NoError(t, err)
			const n = 5
			for i := range n {
				mustGrant(t, m, sa.GrantInput{TenantID: fmt.Sprintf("t%d", i), Duration: time.Hour}, customer)
			}
			clock.Advance(time.Hour)
			loop := make(chan error, 1)
			go func() { loop <- m.RunExpiry(ctx, time.Hour) }()
			require.Eventually(t, func() bool { return hooked.Load() == n && told.Load() == n }, 10*time.Second, 5*time.Millisecond,
				"hooks %d, notifications %d; errors %v", hooked.Load(), told.Load(), errs.all())
			require.NoError(t, m.Close())
			require.ErrorIs(t, r160Wait(t, loop, "RunExpiry"), sa.ErrClosed)
			require.Empty(t, errs.all())
		})
	}
}

// TestReview160LoadStreamsExpiryAndClose: 24 streams of four tenants whose
// grants end at staggered moments (real time, under a second), RunExpiry
// sweeping every 10 ms, Close in the middle. The streams whose grants
// ended before Close and those ending after it all end at their grant's
// end (the timer, not the loop Close stopped), each session is told
// "expired", a Sweep after Close records each expiry exactly once, and no
// goroutine of the library is left.
func TestReview160LoadStreamsExpiryAndClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newMWEnv(t)
	var grants []sa.Grant
	for k := range 4 {
		tenant := fmt.Sprintf("ten%d", k)
		grants = append(grants, mustGrant(t, e.m, sa.GrantInput{TenantID: tenant, Duration: time.Duration(150+100*k) * time.Millisecond}, mwCustomer))
		for i := range 6 {
			e.sessions.add(fmt.Sprintf("%s-%d", tenant, i), sa.Session{TenantID: tenant, Principal: mwGeneric, SessionID: fmt.Sprintf("s-%s-%d", tenant, i)})
		}
	}
	s := e.streams(sa.WithPollInterval(50 * time.Millisecond))
	defer s.stop()
	type stream struct {
		g sa.Grant
		r *http.Request
	}
	var streams []stream
	for k, g := range grants {
		for i := range 6 {
			streams = append(streams, stream{g, s.serve(fmt.Sprintf("ten%d-%d", k, i))})
		}
	}
	loop := make(chan error, 1)
	go func() { loop <- e.m.RunExpiry(ctx, 10*time.Millisecond) }()
	time.Sleep(time.Until(grants[1].ExpiresAt) + 20*time.Millisecond) // two tenants' grants ended
	require.NoError(t, e.m.Close())
	require.ErrorIs(t, r160Wait(t, loop, "RunExpiry"), sa.ErrClosed)
	for i, st := range streams {
		require.ErrorIs(t, mwWaitEnd(st.r, time.Until(st.g.ExpiresAt)+500*time.Millisecond), sa.ErrSessionEnded, "stream %d", i)
		require.False(t, time.Now().Before(st.g.ExpiresAt), "stream %d ended before its grant did", i)
	}
	s.stop()
	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	for _, g := range grants {
		evs, err := e.m.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{sa.EventGrantExpired}})
		require.NoError(t, err)
		require.Len(t, evs, 1, "grant %s", g.TenantID)
	}
	ended := e.ended.all()
	require.Len(t, ended, len(streams))
	for _, c := range ended {
		require.True(t, strings.HasSuffix(c, ":"+sa.SessionEndExpired), "%s", c)
	}
	require.Eventually(t, func() bool { return r160LibraryGoroutines() == 0 }, time.Second, time.Millisecond, "%s", r160Stacks())
}

// TestReview160ShutdownLeavesHijackedRequestWatched: doc.go's shutdown
// order says "http.Server.Shutdown waits for the requests in flight; the
// middleware's watcher goroutine ends with the last request it watches".
// Shutdown does not wait for hijacked connections (websockets, which
// SECURITY.md tells hosts to put behind the middleware): such a request
// is still running, and watched, after Shutdown and Close returned — the
// watcher goroutine outlives Close. What ends it is the store: closed
// next in doc.go's order, its re-check fails and the request ends (fail
// closed), and with it the watcher goroutine.
func TestReview160ShutdownLeavesHijackedRequestWatched(t *testing.T) {
	st := sqltest.NewStore(t, sqltest.Dialects()[0]) // SQLite
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m, err := sa.NewManager(st, sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	mustGrant(t, m, sa.GrantInput{Duration: time.Hour}, mwCustomer)
	hijacked := make(chan *http.Request, 1)
	handlerDone := make(chan error, 1)
	h := m.Middleware(rw7Session, sa.WithPollInterval(50*time.Millisecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			handlerDone <- err
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		hijacked <- r
		<-r.Context().Done() // a websocket loop that honours its context
		handlerDone <- context.Cause(r.Context())
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	client, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	_, err = client.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
	require.NoError(t, err)
	r := r160Wait(t, hijacked, "the hijacked request")

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Config.Shutdown(sctx), "Shutdown does not wait for a hijacked request")
	require.NoError(t, m.Close())
	time.Sleep(60 * time.Millisecond) // the watcher's first poll (real time)
	require.NoError(t, context.Cause(r.Context()), "Shutdown and Close end nothing")
	require.Positive(t, r160LibraryGoroutines(), "a watcher goroutine outlives Close while the hijacked request runs")

	require.NoError(t, st.Close())
	require.ErrorIs(t, r160Wait(t, handlerDone, "the hijacked request's end"), sa.ErrSessionEnded)
	require.Eventually(t, func() bool { return r160LibraryGoroutines() == 0 }, 5*time.Second, 5*time.Millisecond)
}

// TestReview160RunExpiryResultAfterClose: Close said it "waits for them
// to return" (now: "waits until their work has ended (the ErrClosed of
// each reaches its caller just after)"). What it can wait for is the
// loop's work: when Close returns,
// the loop's Sweep has returned and it starts no other; the RunExpiry call
// itself comes back to its caller a moment later (its deferred calls run
// after Close was released). A host (or test) that reads the loop's
// result with a non-blocking receive right after Close races; a bounded
// wait always gets ErrClosed. Counted here, not required:
// TestReview153ShutdownInDocOrder made that non-blocking receive, and
// failed about one run in six under -race (it now waits).
func TestReview160RunExpiryResultAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	late := 0
	const rounds = 300
	for range rounds {
		st := &r160SweepSignal{signalClaims: signalClaims{Store: memstore.New(), entered: make(chan struct{}, 1)}}
		m, err := sa.NewManager(st)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- m.RunExpiry(ctx, time.Hour) }()
		r160Wait(t, st.entered, "the loop's first claim")
		require.NoError(t, m.Close())
		require.Zero(t, st.inClaim.Load(), "Close returned while the loop's Sweep was in a claim")
		select {
		case err := <-done:
			require.ErrorIs(t, err, sa.ErrClosed)
		default:
			late++
			require.ErrorIs(t, r160Wait(t, done, "RunExpiry"), sa.ErrClosed)
		}
	}
	t.Logf("RunExpiry's result arrived after Close returned in %d of %d rounds", late, rounds)
}

// r160SweepSignal is a signalClaims that counts the claims in progress.
type r160SweepSignal struct {
	signalClaims
	inClaim atomic.Int32
}

func (s *r160SweepSignal) ClaimTransitions(ctx context.Context, tr sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	s.inClaim.Add(1)
	defer s.inClaim.Add(-1)
	return s.signalClaims.ClaimTransitions(ctx, tr, now, limit, events)
}

// r160Child runs test name in a child process with R160_CHILD=name (the
// global meter provider can be set once per process, and would change
// the other tests' telemetry), bounded by d, and reports whether it
// finished (and its output).
func r160Child(t *testing.T, name string, d time.Duration) (finished bool, out string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(c, os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "R160_CHILD="+name)
	b, err := cmd.CombinedOutput()
	if c.Err() != nil {
		return false, string(b)
	}
	require.NoError(t, err, "child:\n%s", b)
	require.Contains(t, string(b), "--- PASS: "+name)
	return true, string(b)
}

// r160GlobalGaugeManagers returns n Managers with the active-grants gauge
// on otel's global meter provider (not set yet), each with a grant, and
// their stores.
func r160GlobalGaugeManagers(t *testing.T, n int) ([]*sa.Manager, []*r160CountingStore) {
	stores := make([]*r160CountingStore, n)
	ms := make([]*sa.Manager, n)
	for i := range n {
		stores[i] = &r160CountingStore{Store: memstore.New()}
		m, err := sa.NewManager(stores[i], sa.WithActiveGrantsGauge(true))
		require.NoError(t, err)
		mustGrant(t, m, sa.GrantInput{}, customer)
		ms[i] = m
	}
	return ms, stores
}

// TestReview160GaugeOnGlobalProviderClose: the gauge's default provider is
// otel's global one, which delegates to the real provider only once the
// host sets it (often after the Manager was made). Managers closed before
// the host sets it leave no callback behind on the real provider, and
// those closed after it take theirs off it: a collection after their
// Close reads none of their stores.
func TestReview160GaugeOnGlobalProviderClose(t *testing.T) {
	const name = "TestReview160GaugeOnGlobalProviderClose"
	if os.Getenv("R160_CHILD") != name {
		finished, out := r160Child(t, name, time.Minute)
		require.True(t, finished, "child:\n%s", out)
		return
	}
	ms, stores := r160GlobalGaugeManagers(t, 4)
	require.NoError(t, ms[0].Close())
	require.NoError(t, ms[1].Close())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(ctx) }()
	otel.SetMeterProvider(mp)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	require.Zero(t, stores[0].lists.Load()+stores[1].lists.Load(), "closed before the provider was set")
	require.EqualValues(t, 1, stores[2].lists.Load(), "an open Manager's gauge is delegated")
	require.NoError(t, ms[2].Close())
	require.NoError(t, ms[3].Close())
	require.NoError(t, reader.Collect(ctx, &rm))
	require.EqualValues(t, 1, stores[2].lists.Load(), "closed after the provider was set")
	require.EqualValues(t, 1, stores[3].lists.Load())
}

// TestReview160GaugeCloseRacingSetMeterProvider: Close "may be called ...
// from several goroutines" and "takes the callback ... off the meter
// provider". With the default (global) provider, a Close that runs while
// the host's start-up work calls otel.SetMeterProvider deadlocks: otel
// v1.47's global meter delegates its registrations holding the meter's
// lock and then each registration's lock (internal/global/meter.go:127,
// 140 → 597), while registration.Unregister holds the registration's lock
// and then takes the meter's (meter.go:623 → 510). Close never returns,
// nor does SetMeterProvider, and the global meter's lock stays held: every
// later NewManager on the global provider (its instruments) hangs too.
// Each child process races 64 Closes against one SetMeterProvider; in
// runs of this test one in two or three children hung. Found by review
// 160; the bug is otel-go's and cannot be fixed here (the library's
// Unregister must run): WithActiveGrantsGauge now says to set the global
// provider before NewManager, or pass WithMeterProvider (pinned by
// TestReview160GaugeGlobalProviderSetFirst), and the callback observes
// nothing once Close began. This reproduction runs with
// SUPPORTACCESS_OTEL_UPSTREAM_REPRO=1.
func TestReview160GaugeCloseRacingSetMeterProvider(t *testing.T) {
	const name = "TestReview160GaugeCloseRacingSetMeterProvider"
	if os.Getenv("R160_CHILD") != name {
		if os.Getenv("SUPPORTACCESS_OTEL_UPSTREAM_REPRO") == "" {
			t.Skip("otel-go's global meter deadlocks an Unregister racing SetMeterProvider (documented on WithActiveGrantsGauge); set SUPPORTACCESS_OTEL_UPSTREAM_REPRO=1 to reproduce")
		}
		for i := range 6 {
			finished, out := r160Child(t, name, 20*time.Second)
			require.True(t, finished, "child %d hung (Close racing SetMeterProvider):\n%s", i, out)
		}
		return
	}
	ms, stores := r160GlobalGaugeManagers(t, 64)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(ctx) }()
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		otel.SetMeterProvider(mp)
	})
	for _, m := range ms {
		wg.Go(func() {
			<-start
			require.NoError(t, m.Close())
		})
	}
	close(start)
	wg.Wait()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	for i, st := range stores {
		require.Zero(t, st.lists.Load(), "manager %d's store read by a collection after its Close", i)
	}
}

// TestReview160GaugeGlobalProviderSetFirst pins the order
// WithActiveGrantsGauge documents for the global provider: set it before
// NewManager. Then 64 Closes racing collections neither hang nor leave a
// callback that reads a store after its Manager's Close.
func TestReview160GaugeGlobalProviderSetFirst(t *testing.T) {
	const name = "TestReview160GaugeGlobalProviderSetFirst"
	if os.Getenv("R160_CHILD") != name {
		finished, out := r160Child(t, name, time.Minute)
		require.True(t, finished, "child:\n%s", out)
		return
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(ctx) }()
	otel.SetMeterProvider(mp)
	ms, stores := r160GlobalGaugeManagers(t, 64)
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		var rm metricdata.ResourceMetrics
		for range 8 {
			require.NoError(t, reader.Collect(ctx, &rm))
		}
	})
	for _, m := range ms {
		wg.Go(func() {
			<-start
			require.NoError(t, m.Close())
		})
	}
	close(start)
	wg.Wait()
	for _, st := range stores {
		st.lists.Store(0)
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	for i, st := range stores {
		require.Zero(t, st.lists.Load(), "manager %d's store read by a collection after its Close", i)
	}
}

// TestReview160StoreClosedMidSweep: the host closes the sqlstore while a
// Sweep with expiry hooks is between batches (closed from the first
// expiry's Notifier, while the other claimer may be in its transaction).
// Whatever the Sweep then reports, nothing is half done: with a new
// store on the same database, a Sweep completes the rest, every expiry is
// recorded exactly once, every hook ran, and every chain verifies.
func TestReview160StoreClosedMidSweep(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := sqltest.Open(t, d)
			st := sqltest.NewStoreOn(t, db, d)
			clock := storetest.NewClock(storetest.Epoch)
			var hooked sync.Map
			hook := func(_ context.Context, g sa.Grant) error {
				hooked.Store(g.ID, true)
				return nil
			}
			var once sync.Once
			nt := sa.NotifierFunc(func(_ context.Context, x sa.Notification) error {
				if x.Type == sa.EventGrantExpired {
					once.Do(func() { _ = st.Close() })
				}
				return nil
			})
			errs := &mwErrs{}
			opts := []sa.Option{sa.WithNow(clock.Now), sa.OnExpire(hook), sa.WithErrorHandler(errs.handle), sa.WithSweepConcurrency(2)}
			m, err := sa.NewManager(st, append(opts, sa.WithNotifier(nt))...)
			require.NoError(t, err)
			const n = 40
			var ids []uuid.UUID
			for i := range n {
				g := mustGrant(t, m, sa.GrantInput{TenantID: fmt.Sprintf("t%d", i%5), Duration: time.Hour}, customer)
				ids = append(ids, g.ID)
			}
			clock.Advance(time.Hour)
			_, err = m.Sweep(ctx)
			t.Logf("sweep over a store closed under it: %v", err)

			st2, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(st.TablePrefix()))
			require.NoError(t, err)
			defer st2.Close()
			m2, err := sa.NewManager(st2, append(opts, sa.WithExpireHookLease(time.Second))...)
			require.NoError(t, err)
			clock.Advance(2 * time.Second) // any lease the first sweep held has run out
			_, err = m2.Sweep(ctx)
			require.NoError(t, err)
			for _, id := range ids {
				evs, err := m2.Events(ctx, sa.AuditFilter{GrantID: id, Types: []sa.EventType{sa.EventGrantExpired, sa.EventGrantStarted}})
				require.NoError(t, err)
				require.Len(t, evs, 2, "grant %s: started and expired once each", id)
				_, ok := hooked.Load(id)
				require.True(t, ok, "grant %s: its hook ran", id)
			}
			for i := range 5 {
				rep, err := m2.VerifyAudit(ctx, fmt.Sprintf("t%d", i))
				require.NoError(t, err)
				require.True(t, rep.OK(), "%+v", rep.Break)
			}
		})
	}
}
