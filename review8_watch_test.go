package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Regression tests of the eighth review round: the changes of commit
// 4cf8250 to the middleware's watcher and establish (prefix TestReview8).

// TestReview8RefusedRetryLeavesNeedOfEndedGrant: RequireScope(msgs) renders
// an optional part of a page into a recorder. Its Check finds grant x, and
// while the answer comes back the customer revokes x on this Manager.
// establish now makes the need {msgs, x} visible (setNeed) before it asks
// the end log; the end log says x ended, the retry's Check refuses (no
// grant allows msgs) — and the refusal returns leaving {msgs, x} in the
// request's needs. The listener ran before the need existed, so x is not
// in endedGrants: the next RequireScope(msgs) finds msgs "in use" and
// runs its route without a Check, on a grant revoked before it started.
func TestReview8RefusedRetryLeavesNeedOfEndedGrant(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	store := e.store
	e.grant(sa.GrantInput{Duration: sa.Day}) // read: admits the request
	x := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	first, second := &mwOK{}, &mwOK{}
	var firstCode, secondCode int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoke := func() {
			_, err := e.m.Revoke(context.Background(), x.ID, mwCustomer, "no more messages")
			require.NoError(t, err)
		}
		store.after.Store(&revoke) // inside RequireScope's Check, after the store read x
		rec := httptest.NewRecorder()
		sa.RequireScope(msgs)(first).ServeHTTP(rec, r)
		firstCode = rec.Code
		require.Nil(t, store.after.Load(), "the revocation ran")
		rec = httptest.NewRecorder()
		sa.RequireScope(msgs)(second).ServeHTTP(rec, r)
		secondCode = rec.Code
		_, _ = w.Write([]byte("page"))
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/page", "generic"))
	require.Zero(t, first.calls.Load(), "x was revoked during the first Check: refused")
	require.Equal(t, http.StatusForbidden, firstCode)
	require.Zero(t, second.calls.Load(), "RequireScope(%s) ran its route on revoked grant x without a Check (status %d)", msgs, secondCode)
}

// TestReview8EndedRefusalCarriesHandlerHeaders: the watcher ended the
// request (its only grant was revoked). The handler, still running, sets a
// header naming a customer file and reaches a RequireScope route. establish
// now refuses (DeniedSessionEnded) through refuse, which writes the denial
// as the response with every header the handler set: unlike the writer's
// own replacement of an ended request's response (replace: base headers
// only), the header reaches support after the access ended. (Before
// 4cf8250 the same scenario was refused by a failed Check, 503, with the
// same headers: refuse never clears them.)
func TestReview8EndedRefusalCarriesHandlerHeaders(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
	route := &mwOK{}
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop now")
		require.NoError(t, err)
		cause = mwWaitEnd(r, 900*time.Millisecond)
		w.Header().Set("X-Export-File", "acme-payroll-2025.csv")
		sa.RequireScope(sa.ScopeWrite)(route).ServeHTTP(w, r)
	}), sa.WithPollInterval(time.Minute))
	rec := mwDo(h, mwReq(http.MethodGet, "/export", "generic", "Accept", "application/json"))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the watcher ended the request")
	require.Zero(t, route.calls.Load())
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, rec.Header().Get("X-Export-File"), "a header the handler set after the access ended reached support with the refusal")
	// And the refusal goes out whole (review 9: the writer refused the
	// denial's own body once the request had ended).
	require.Contains(t, rec.Body.String(), sa.DeniedSessionEnded, "the refusal went out without its body")
}

// TestReview8LossOfOnlyReadGrantEndsSession: grant a (read) admitted the
// request; grant b of the same tenant carries only messages:read. The
// customer revokes a. The re-check of the request's own scope (read) gets
// ErrScopeNotGranted — b "covers" the principal — and since 4cf8250 that
// is reported as "scope no longer granted": OnSessionEnded is not called.
// But no grant allows read or write any more: every later request of the
// session is refused (403, and admission calls OnSessionEnded only for
// ErrNoActiveGrant), so the host is never told that the session ended.
func TestReview8LossOfOnlyReadGrantEndsSession(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	a := e.grant(sa.GrantInput{Duration: sa.Day})                          // read: admits the session
	e.grant(sa.GrantInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{msgs}}) // b: messages only
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "support is done")
		require.NoError(t, err)
		cause = mwWaitEnd(r, 500*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
	require.ErrorIs(t, cause, sa.ErrSessionEnded)
	require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/home", "generic")).Code, "no grant admits the session any more")
	require.Contains(t, e.ended.all(), "s-generic:"+sa.SessionEndRevoked,
		"the session's only read grant was revoked, no request of it is admitted any more, and the host is not told (cause: %v)", cause)
}

// rw8DeafStore is a memstore whose Check, once deaf is set, ignores its
// context and blocks until release is closed; it counts the Checks
// blocked at once.
type rw8DeafStore struct {
	*memstore.Store
	deaf     atomic.Bool
	release  chan struct{}
	inFlight atomic.Int64
	peak     atomic.Int64
}

func (s *rw8DeafStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if s.deaf.Load() {
		n := s.inFlight.Add(1)
		for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
		}
		<-s.release
		s.inFlight.Add(-1)
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

// TestReview8DeafStoreChecksDoNotPileUp: with a store that ignores its
// context and hangs (the case boundedCheck was made for), every poll
// starts a new Check goroutine for the same session and scope while the
// earlier ones are still blocked in the store: one request of one session
// has several store calls (goroutines, pooled connections) hanging after
// 0.8 s, and their number grows by one per poll deadline for as long as
// the request runs (max(3 intervals, 5 s) at least) — against a store
// already in trouble, and one that the admission Checks of other requests
// need. Before 4cf8250 there was at most one. Now at most four
// (maxPendingChecks): calls stuck on dead connections must not keep a
// healthy store from being asked again
// (TestReview9PendingCheckEndsRequestKeptByOtherGrant,
// TestReview10TwoHungChecksEndRequestKeptByOtherGrant).
func TestReview8DeafStoreChecksDoNotPileUp(t *testing.T) {
	clock := &mwClock{}
	store := &rw8DeafStore{Store: memstore.New(), release: make(chan struct{})}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	_, err = m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: sa.Day})
	require.NoError(t, err)
	var peak int64
	h := m.Middleware(rw7Session, sa.WithPollInterval(50*time.Millisecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("row 1\n"))
		store.deaf.Store(true) // the database stops answering, deaf to contexts
		select {
		case <-r.Context().Done():
		case <-time.After(800 * time.Millisecond):
		}
		peak = store.peak.Load()
		close(store.release) // lets the Checks return (and the request leave)
	}))
	mwDo(h, mwReq(http.MethodGet, "/events", ""))
	require.LessOrEqual(t, peak, int64(4), "store calls of one request's re-checks hanging at once")
}

// TestReview8ReplacedNeedKeepsGrantInAudit: route 1 runs on
// messages:read from grant x (RequireScope); the customer revokes x and a
// second RequireScope(messages:read) finds grant y. setNeed now replaces
// the need {msgs, x} by {msgs, y}, so the support.request event recorded
// when the response commits lists only y in elevated_grant_ids: the grant
// under which route 1 ran (its side effects included) is in no event of
// the request. (The watcher's re-check write-back does the same, racily,
// since before 4cf8250; setNeed makes it certain.)
func TestReview8ReplacedNeedKeepsGrantInAudit(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: sa.Day}) // read: admits the request
	x := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	y := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{msgs}})
	one, two := &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(one).ServeHTTP(httptest.NewRecorder(), r) // x: it ends last
		_, err := e.m.Revoke(context.Background(), x.ID, mwCustomer, "wrong ticket")
		require.NoError(t, err)
		sa.RequireScope(msgs)(two).ServeHTTP(httptest.NewRecorder(), r) // y
		_, _ = w.Write([]byte("page"))
	}), sa.WithPollInterval(time.Minute))
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/inbox", "generic")).Code)
	require.Equal(t, int64(1), one.calls.Load())
	require.Equal(t, int64(1), two.calls.Load())
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	ids := strings.Split(evs[0].Attrs[sa.AttrElevatedGrantIDs], ",")
	require.Contains(t, ids, y.ID.String())
	require.Contains(t, ids, x.ID.String(), "route 1 ran on grant x: the request's event does not name it")
}

// rw8UpdateHookStore is a memstore that runs onUpdate (when set) before
// each UpdateGrant.
type rw8UpdateHookStore struct {
	*memstore.Store
	onUpdate func()
}

func (s *rw8UpdateHookStore) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	if s.onUpdate != nil {
		s.onUpdate()
	}
	return s.Store.UpdateGrant(ctx, id, change)
}

// TestReview8RevokeTenantNotifiesCommittedRevocation: RevokeTenant now
// sends every notification after the last revocation. When the caller's
// context ends during the loop (an admin's HTTP client goes away while the
// second grant is revoked), the first grant's revocation has committed,
// but its notification is only attempted afterwards, with the ended
// context: a Notifier that honours its context fails and the customer is
// never told of a revocation that took effect. Before 4cf8250 it was
// delivered as soon as it committed.
func TestReview8RevokeTenantNotifiesCommittedRevocation(t *testing.T) {
	var mu sync.Mutex
	var delivered []uuid.UUID
	notifier := sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
		if n.Type != sa.EventGrantRevoked {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err // a webhook call with a dead context
		}
		mu.Lock()
		defer mu.Unlock()
		delivered = append(delivered, n.GrantID)
		return nil
	})
	clock := &mwClock{}
	store := &rw8UpdateHookStore{Store: memstore.New()}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithNotifier(notifier), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	for range 2 {
		_, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: sa.Day})
		require.NoError(t, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := 0
	store.onUpdate = func() {
		if updates++; updates == 2 {
			cancel() // the caller goes away during the second revocation
		}
	}
	revoked, err := m.RevokeTenant(ctx, "acme", mwCustomer, "all support access ends now")
	require.ErrorIs(t, err, context.Canceled, "the second revocation failed: the caller went away")
	require.NotEmpty(t, revoked, "the first revocation committed")
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, delivered, revoked[0].ID, "the committed revocation of %s was never notified", revoked[0].ID)
}

// rw8TwoCallerStore is a memstore whose Checks of scope, once armed, are
// ordered: the watcher's (its context has a deadline) waits until the
// request's own Check (RequireScope: no deadline) has started; that one
// then takes delay (a slow read), so the watcher's re-check completes
// first.
type rw8TwoCallerStore struct {
	*memstore.Store
	scope   sa.Scope
	delay   time.Duration
	armed   atomic.Bool
	started chan struct{}
	once    sync.Once
}

func (s *rw8TwoCallerStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if scope == s.scope && s.armed.Load() {
		if _, watcher := ctx.Deadline(); watcher {
			select {
			case <-s.started:
			case <-ctx.Done():
				return sa.Grant{}, ctx.Err()
			}
		} else {
			s.once.Do(func() { close(s.started) })
			time.Sleep(s.delay) // a slow store, not a wait for an expiry
		}
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

// TestReview8RecheckNeedsAliasRace: recheck writes its copy of the needs
// back as st.needs (st.needs = needs) and then, without st.mu, ranges over
// that same slice for its end-log test. setNeed now replaces a need in
// place (st.needs[i] = n) under st.mu — a data race with that read (as is
// moveEnd's in-place write of expires). Here grant x (messages:read) is
// revoked on this Manager; the watcher's re-check and a RequireScope
// Check both find grant y; the re-check writes back and reads its slice,
// then RequireScope's setNeed overwrites the element. Fails under -race.
func TestReview8RecheckNeedsAliasRace(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	clock := &mwClock{}
	store := &rw8TwoCallerStore{Store: memstore.New(), scope: msgs, delay: 200 * time.Millisecond, started: make(chan struct{})}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	grant := func(d time.Duration, scopes ...sa.Scope) sa.Grant {
		g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: d, Scopes: scopes})
		require.NoError(t, err)
		return g
	}
	grant(sa.Day)              // read: admits the request
	x := grant(2*sa.Day, msgs) // found first: it ends last
	grant(time.Hour, msgs)     // y: takes over from x
	one, two := &mwOK{}, &mwOK{}
	h := m.Middleware(rw7Session, sa.WithPollInterval(time.Minute))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(one).ServeHTTP(httptest.NewRecorder(), r)
		store.armed.Store(true)
		_, err := m.Revoke(context.Background(), x.ID, mwCustomer, "wrong ticket") // the watcher re-checks at once
		require.NoError(t, err)
		rw8CallSite(func() { sa.RequireScope(msgs)(two).ServeHTTP(httptest.NewRecorder(), r) })
		_, _ = w.Write([]byte("page"))
	}))
	require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/inbox", "")).Code)
	require.Equal(t, int64(1), one.calls.Load())
	require.Equal(t, int64(1), two.calls.Load())
}

// rw8Runs and rw8CallSite give each run of a test (-count=N) a call stack
// of its own: the race detector reports a race once per pair of stacks
// and process, and would let the later runs pass.
var rw8Runs atomic.Int64

func rw8CallSite(f func()) {
	switch rw8Runs.Add(1) % 8 {
	case 0:
		f()
	case 1:
		func() { f() }()
	case 2:
		func() { func() { f() }() }()
	case 3:
		func() { func() { func() { f() }() }() }()
	case 4:
		func() { func() { func() { func() { f() }() }() }() }()
	case 5:
		func() { func() { func() { func() { func() { f() }() }() }() }() }()
	case 6:
		func() { func() { func() { func() { func() { func() { f() }() }() }() }() }() }()
	default:
		func() { func() { func() { func() { func() { func() { func() { f() }() }() }() }() }() }() }()
	}
}
