package supportaccess_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 127: mutation review of manager.go (NewManager, options, Close),
// hooks.go, actor.go, scope.go and middleware_options.go.

// WithAuditor(nil) is ignored: the store stays the auditor, and NewManager
// does not take it for a nil-pointer auditor.
func TestReview127NilAuditorIgnored(t *testing.T) {
	e := newEnv(t, sa.WithAuditor(nil))
	g := e.grant(sa.GrantInput{})
	evs := e.events(sa.EventGrantCreated)
	require.Len(t, evs, 1, "the store still records the trail")
	require.Equal(t, g.ID, evs[0].GrantID)
}

// A later WithAuditor replaces an earlier one rather than adding to it: a
// refusing auditor named first and then replaced does not block changes.
func TestReview127LaterWithAuditorReplacesEarlier(t *testing.T) {
	st := memstore.New()
	e := newEnvOn(t, st, sa.WithAuditor(failingAuditor{}), sa.WithAuditor(st))
	g := e.grant(sa.GrantInput{})
	require.Len(t, e.events(sa.EventGrantCreated), 1)
	require.Equal(t, g.ID, e.events(sa.EventGrantCreated)[0].GrantID)
}

// WithNow(nil) keeps the clock given before it (time.Now by default), and
// WithErrorHandler(nil) keeps the default handler: neither leaves the
// Manager with a nil function that panics at its first use.
func TestReview127NilClockAndErrorHandlerIgnored(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := memstore.New()
	var got []error
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithNow(nil),
		sa.WithAuditor(sa.MultiAuditor(st, &reviewAuditor{fail: sa.EventActionRefused})),
		sa.WithErrorHandler(func(_ context.Context, err error) { got = append(got, err) }), sa.WithErrorHandler(nil))
	require.NoError(t, err)
	require.Equal(t, storetest.Epoch.UTC().Truncate(time.Microsecond), m.Now(), "the earlier clock is kept")
	// A refusal whose audit fails on the second auditor goes to the error
	// handler: the one given before WithErrorHandler(nil).
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support})
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Len(t, got, 1)
	require.ErrorIs(t, got[0], errBoom)

	m, err = sa.NewManager(memstore.New(), sa.WithNow(nil), sa.WithErrorHandler(nil))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), m.Now(), time.Minute, "time.Now is kept")
	e := newEnv(t, sa.WithErrorHandler(nil))
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support})
	require.ErrorIs(t, err, sa.ErrForbidden, "the default handler is kept")
}

// Policy returns a copy: changing the slices of what it returns does not
// change the policy the Manager applies (here, widen the default scopes
// of a grant that names none to write).
func TestReview127PolicyReturnsACopy(t *testing.T) {
	e := newEnv(t)
	p := e.m.Policy()
	require.Equal(t, []sa.Scope{sa.ScopeRead}, p.DefaultScopes)
	p.DefaultScopes[0] = sa.ScopeWrite
	if len(p.Presets) > 0 {
		p.Presets[0].Duration = 1000 * sa.Day
	}
	g := e.grant(sa.GrantInput{})
	require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes, "the Manager's default scopes are unchanged")
	require.Equal(t, []sa.Scope{sa.ScopeRead}, e.m.Policy().DefaultScopes)
	require.Equal(t, sa.DefaultPolicy().Presets, e.m.Policy().Presets)
}

// A failed hook's retry time past the end of year 9999 is capped to the
// last time the trail can write (next_at), rather than written as a year
// 10000 no store need keep.
func TestReview127HookRetryTimeCappedAtYear9999(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook), sa.WithExpireHookRetry(5*time.Hour, 5*time.Hour), sa.WithErrorHandler(func(context.Context, error) {}))
	e.clock.Set(time.Date(9999, 12, 31, 20, 0, 0, 0, time.UTC))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)
	require.Equal(t, 1, e.sweep())
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 1)
	require.Equal(t, "9999-12-31T23:59:59.999999Z", failed[0].Attrs["next_at"])
}

// A standalone event (support.change) goes to the other auditors before
// the store: when one of them refuses it, RecordChange fails and the
// store's trail does not show the change.
func TestReview127RecordChangeOtherAuditorsFirst(t *testing.T) {
	st := memstore.New()
	aud := &reviewAuditor{fail: sa.EventSupportChange}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)), sa.WithErrorHandler(func(context.Context, error) {}))
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var changeErr error
	h := e.m.Middleware(func(*http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-generic"}, true
	}, sa.WithMiddlewareErrorHandler(func(context.Context, error) {}))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		changeErr = sa.RecordChange(r.Context(), "plan", "free", "pro")
		w.WriteHeader(http.StatusNoContent)
	}))
	mwDo(h, mwReq(http.MethodPut, "/settings", "generic"))
	require.ErrorIs(t, changeErr, errBoom)
	require.Empty(t, e.events(sa.EventSupportChange), "the store does not hold a change its failure stopped")
}

// A retry claimed within a lease of the end of year 9999 gets a lease
// capped at that end, which the store accepts: the hook is retried and
// succeeds, rather than every later Sweep failing on the claim.
func TestReview127HookRetryLeaseCappedAtYear9999(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook), sa.WithExpireHookRetry(time.Hour, time.Hour), sa.WithErrorHandler(func(context.Context, error) {}))
	e.clock.Set(time.Date(9999, 12, 31, 19, 0, 0, 0, time.UTC))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)
	require.Equal(t, 1, e.sweep())
	require.Len(t, e.events(sa.EventExpireHookFailed), 1)
	h.setFail(g.ID, nil)
	e.clock.Set(time.Date(9999, 12, 31, 23, 58, 0, 0, time.UTC))
	_, err := e.m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, h.count(g.ID), "retried")
	require.Len(t, e.events(sa.EventExpireHookSucceeded), 1)
}

// WithExpireHookRetry accepts min == max (1µs <= min <= max): a constant
// delay between retries.
func TestReview127HookRetryMinEqualMaxAccepted(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook), sa.WithExpireHookRetry(time.Minute, time.Minute), sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)
	e.sweep()
	for i := range 3 {
		e.clock.Advance(time.Minute - time.Microsecond)
		e.sweep()
		require.Equal(t, i+1, h.count(g.ID), "not before the minute")
		e.clock.Advance(time.Microsecond)
		e.sweep()
		require.Equal(t, i+2, h.count(g.ID), "every minute")
	}
	_, err := sa.NewManager(memstore.New(), sa.WithExpireHookRetry(time.Microsecond, time.Microsecond))
	require.NoError(t, err, "the shortest delay")
}

// The retry delay stops at max also when doubling it would overflow a
// Duration (max near the longest Duration): the next retry is far ahead,
// not in the past (an overflowed, negative delay retries at every Sweep).
func TestReview127HookRetryDelayDoesNotOverflow(t *testing.T) {
	h := &hookLog{}
	lo := time.Duration(1) << 61 // about 73 years
	e := newEnv(t, sa.OnExpire(h.hook), sa.WithExpireHookRetry(lo, math.MaxInt64), sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)
	e.sweep()
	for _, d := range []time.Duration{lo, 2 * lo} {
		e.clock.Advance(d)
		e.sweep()
	}
	require.Equal(t, 3, h.count(g.ID))
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 3)
	next, err := time.Parse(time.RFC3339Nano, failed[2].Attrs["next_at"])
	require.NoError(t, err)
	require.Equal(t, e.now().Add(math.MaxInt64).Truncate(time.Microsecond), next, "capped at max")
	e.sweep()
	e.clock.Advance(sa.DefaultHookRetryMax)
	e.sweep()
	require.Equal(t, 3, h.count(g.ID), "not retried before max passed")
}

// A hook that returns context.Canceled of its own (an HTTP call it
// cancelled, say) while Sweep's context is live failed: the failure is
// recorded and counted, and the retry waits its delay. Only a shutdown
// (Sweep's context cancelled) keeps the attempt uncounted.
func TestReview127HookOwnCanceledIsAFailure(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook), sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, fmt.Errorf("directory call: %w", context.Canceled))
	e.clock.Set(g.ExpiresAt)
	require.Equal(t, 1, e.sweep())
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 1)
	require.Equal(t, "1", failed[0].Attrs["attempt"])
	e.sweep()
	require.Equal(t, 1, h.count(g.ID), "retried after the delay, not at the next Sweep")
}

// r127DeadlineCtx is a context whose deadline the test reaches by calling
// expire: Err is then context.DeadlineExceeded, with no real waiting.
type r127DeadlineCtx struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newR127DeadlineCtx() *r127DeadlineCtx {
	return &r127DeadlineCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *r127DeadlineCtx) expire()                     { c.once.Do(func() { close(c.done) }) }
func (c *r127DeadlineCtx) Done() <-chan struct{}       { return c.done }
func (c *r127DeadlineCtx) Deadline() (time.Time, bool) { return time.Now().Add(time.Hour), true }
func (c *r127DeadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// The caller's deadline is no shutdown: a hook cut off by it failed, is
// recorded as grant.expire_hook_failed (attempt 1) and retried with a
// delay like any other failure; the hooks of the batch's other expiry,
// not started by then, are not called and not recorded as failed.
func TestReview127HookCutByCallerDeadlineIsAFailure(t *testing.T) {
	sweepCtx := newR127DeadlineCtx()
	h := &hookLog{}
	e := newEnv(t, sa.WithErrorHandler(func(context.Context, error) {}), sa.OnExpire(func(ctx context.Context, g sa.Grant) error {
		_ = h.hook(ctx, g)
		sweepCtx.expire()
		<-ctx.Done()
		return ctx.Err()
	}))
	a := e.grant(sa.GrantInput{Duration: time.Hour})
	b := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(a.ExpiresAt)
	_, err := e.m.Sweep(sweepCtx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, 1, h.count(a.ID)+h.count(b.ID), "one hook ran")
	cut := a
	if h.count(b.ID) == 1 {
		cut = b
	}
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 1, "the deadline's cut is a failed attempt; the hook not started is not")
	require.Equal(t, cut.ID, failed[0].GrantID)
	require.Equal(t, "1", failed[0].Attrs["attempt"])
	require.Equal(t, e.now().Add(sa.DefaultHookRetryMin).Format("2006-01-02T15:04:05.000000Z07:00"), failed[0].Attrs["next_at"])
}

// Each hook gets its own copy of the grant: a hook that changes the
// slices of the grant it was given does not change what a later hook
// sees.
func TestReview127HooksGetOwnGrantCopy(t *testing.T) {
	var seen [][]sa.Scope
	e := newEnv(t,
		sa.OnExpire(func(_ context.Context, g sa.Grant) error {
			g.Scopes[0] = "messages:read"
			g.Grantees[0] = "mallory@vendor.example"
			return nil
		}),
		sa.OnExpire(func(_ context.Context, g sa.Grant) error {
			seen = append(seen, slices.Clone(g.Scopes), []sa.Scope{sa.Scope(g.Grantees[0])})
			return nil
		}))
	g := e.grant(sa.GrantInput{Duration: time.Hour, Grantees: []string{support.ID}})
	e.clock.Set(g.ExpiresAt)
	e.sweep()
	require.Equal(t, [][]sa.Scope{{sa.ScopeRead}, {sa.Scope(support.ID)}}, seen)
}

// A failed attempt count stops at the largest the stores keep (2^31-1):
// one more failure is recorded with that count rather than one the store
// refuses, which would fail every later Sweep.
func TestReview127HookAttemptsCappedAtInt32(t *testing.T) {
	h := &hookLog{}
	e := newEnv(t, sa.OnExpire(h.hook), sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	h.setFail(g.ID, errBoom)
	e.clock.Set(g.ExpiresAt)
	e.sweep()
	// As if the hook had failed 2^31-1 times: the task is due now.
	e.clock.Advance(sa.DefaultHookRetryMin)
	lease := sa.Lease{Token: "review127", Until: e.now().Add(time.Minute)}
	tasks, err := e.store.ClaimHookTasks(ctx, e.now(), 10, lease)
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	tasks[0].Attempts, tasks[0].NextAt = math.MaxInt32, e.now()
	_, err = e.store.FinishHookTasks(ctx, lease.Token, tasks, nil)
	require.NoError(t, err)

	e.sweep()
	require.Equal(t, 2, h.count(g.ID))
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 2)
	require.Equal(t, strconv.Itoa(math.MaxInt32), failed[1].Attrs["attempt"])
}

// IsZero is true for the zero Actor only: an Actor with just a Name (or
// just a Kind or an ID) is not zero.
func TestReview127ActorIsZeroOnlyForZero(t *testing.T) {
	require.True(t, sa.Actor{}.IsZero())
	for _, a := range []sa.Actor{{Name: "Eve"}, {Kind: sa.ActorSupport}, {ID: "eve@vendor.example"}} {
		require.False(t, a.IsZero(), "%+v", a)
	}
}

// A host scope implies nothing: a grant of "messages:read" alone allows
// neither read nor write, only itself; write allows read, and read does
// not allow write.
func TestReview127HostScopeDoesNotImplyRead(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{"messages:read"}})
	require.False(t, g.Allows(sa.ScopeRead))
	require.False(t, g.Allows(sa.ScopeWrite))
	require.True(t, g.Allows("messages:read"))
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = e.m.Check(ctx, "acme", support.ID, "messages:read")
	require.NoError(t, err)

	w := sa.Grant{Scopes: []sa.Scope{sa.ScopeWrite}}
	require.True(t, w.Allows(sa.ScopeRead), "write implies read")
	require.False(t, w.Allows("messages:read"), "write implies no host scope")
	require.False(t, sa.Grant{Scopes: []sa.Scope{sa.ScopeRead}}.Allows(sa.ScopeWrite))
}

// Grant normalises a copy of the input's scopes: the caller's slice keeps
// its order and its duplicates.
func TestReview127GrantDoesNotSortCallersScopes(t *testing.T) {
	e := newEnv(t)
	in := []sa.Scope{sa.ScopeWrite, "messages:read", sa.ScopeWrite, sa.ScopeRead}
	g := e.grant(sa.GrantInput{Scopes: in})
	require.Equal(t, []sa.Scope{"messages:read", sa.ScopeRead, sa.ScopeWrite}, g.Scopes)
	require.Equal(t, []sa.Scope{sa.ScopeWrite, "messages:read", sa.ScopeWrite, sa.ScopeRead}, in)
}

// Nil middleware options are ignored and keep what was set before them:
// the denied handler, the session-ended callback and the error handler
// (a nil one would panic, or silently drop the host's callback).
func TestReview127NilMiddlewareOptionsIgnored(t *testing.T) {
	e := newMWEnv(t)
	var denials []sa.Denial
	h := e.wrap(&mwOK{},
		sa.WithDeniedHandler(func(w http.ResponseWriter, _ *http.Request, d sa.Denial) {
			denials = append(denials, d)
			w.WriteHeader(http.StatusTeapot)
		}),
		sa.WithDeniedHandler(nil), sa.OnSessionEnded(nil), sa.WithMiddlewareErrorHandler(nil), nil)
	rec := mwDo(h, mwReq(http.MethodGet, "/", "generic"))
	require.Equal(t, http.StatusTeapot, rec.Code, "the denied handler given first is kept")
	require.Len(t, denials, 1)
	require.Equal(t, []string{"s-generic:" + sa.SessionEndNoGrant}, e.ended.all(), "the session-ended callback given first is kept")

	e.grant(sa.GrantInput{})
	e.store.failFind.Store(true)
	rec = mwDo(h, mwReq(http.MethodGet, "/", "generic"))
	require.NotEqual(t, http.StatusOK, rec.Code, "a store failure denies")
	require.True(t, boomReported(e.errs.all()), "the error handler given first is kept")
}

// WithPollInterval ignores values <= 0 and keeps the interval set before
// (here an hour): a running request is not re-checked at every tick of a
// zero interval. The default is one second.
func TestReview127PollIntervalZeroIgnored(t *testing.T) {
	require.Equal(t, time.Second, sa.DefaultPollInterval)
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(200 * time.Millisecond) // a slow handler, long enough for many polls of a zero interval
		w.WriteHeader(http.StatusNoContent)
	}), sa.WithPollInterval(time.Hour), sa.WithPollInterval(0), sa.WithPollInterval(-time.Second))
	require.Equal(t, http.StatusNoContent, mwDo(h, mwReq(http.MethodGet, "/", "generic")).Code)
	require.Zero(t, e.store.watchReads.Load(), "no re-check within the hour")
}
