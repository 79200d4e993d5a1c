package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func testHookTasksLeased(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, false, true)
	hs := h.hooks()
	g1 := h.grant(sa.GrantInput{Duration: time.Hour})
	g2 := h.grant(sa.GrantInput{Duration: 2 * time.Hour})
	claimedAt := g2.ExpiresAt
	now := claimedAt.Add(30 * time.Second)
	none := func(sa.Grant) ([]sa.Event, error) { return nil, nil }

	claimer := sa.Lease{Token: "claimer", Until: now}
	h.claimStarts(claimedAt)
	claimed, err := hs.ClaimExpirations(h.ctx, g1.ExpiresAt.Add(-time.Microsecond), 10, claimer, none)
	require.NoError(t, err)
	require.Empty(t, claimed, "not due")
	claimed, err = hs.ClaimExpirations(h.ctx, claimedAt, 10, claimer, none)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{g1.ID, g2.ID}, grantIDs(claimed), "in order of expiry")
	again, err := hs.ClaimExpirations(h.ctx, claimedAt, 10, claimer, none)
	require.NoError(t, err)
	require.Empty(t, again)
	plain, err := h.store.ClaimTransitions(h.ctx, sa.TransitionExpired, claimedAt, 10, none)
	require.NoError(t, err)
	require.Empty(t, plain, "ClaimExpirations claims the expired transition")
	held, err := hs.ClaimHookTasks(h.ctx, now.Add(-time.Microsecond), 10, sa.Lease{Token: "other", Until: now.Add(time.Hour)})
	require.NoError(t, err)
	require.Empty(t, held, "the new tasks are leased to the claimer")

	leaseA := sa.Lease{Token: "a", Until: now.Add(5 * time.Minute)}
	ta, err := hs.ClaimHookTasks(h.ctx, now, 1, leaseA)
	require.NoError(t, err)
	require.Len(t, ta, 1)
	first := ta[0]
	want := map[uuid.UUID]sa.Grant{g1.ID: g1, g2.ID: g2}
	require.Equal(t, want[first.Grant.ID], first.Grant, "the task carries its grant")
	require.Zero(t, first.Done)
	require.Zero(t, first.Attempts)
	require.True(t, first.NextAt.Equal(claimedAt))
	require.Equal(t, "a", first.LeaseToken)
	require.True(t, first.LeaseUntil.Equal(leaseA.Until))

	leaseB := sa.Lease{Token: "b", Until: now.Add(time.Minute)}
	tb, err := hs.ClaimHookTasks(h.ctx, now, 10, leaseB)
	require.NoError(t, err)
	require.Len(t, tb, 1, "the other task only")
	second := tb[0]
	require.NotEqual(t, first.Grant.ID, second.Grant.ID)
	none2, err := hs.ClaimHookTasks(h.ctx, now, 10, sa.Lease{Token: "c", Until: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Empty(t, none2, "both leased")

	n, err := hs.FinishHookTasks(h.ctx, "wrong", []sa.HookTask{first}, nil)
	require.NoError(t, err)
	require.Zero(t, n, "not the lease holder")

	retryAt := now.Add(90 * time.Second)
	first.Done, first.Attempts, first.NextAt, first.LastError = 1, 2, retryAt, "directory said: ünavailable 'x'"
	ev := sa.Event{ID: uuid.New(), Time: now, Type: sa.EventExpireHookFailed, TenantID: "acme", GrantID: first.Grant.ID, Actor: sa.SystemActor}
	before := countEvents(h)
	n, err = hs.FinishHookTasks(h.ctx, "a", []sa.HookTask{first}, eventsIfAuditor(h, ev))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	if before >= 0 {
		require.Equal(t, before+1, countEvents(h), "events stored with the finish")
	}
	early, err := hs.ClaimHookTasks(h.ctx, leaseB.Until.Add(-time.Microsecond), 10, sa.Lease{Token: "d", Until: now.Add(time.Hour)})
	require.NoError(t, err)
	require.Empty(t, early, "not before NextAt, nor while leased")
	leaseD := sa.Lease{Token: "d", Until: retryAt.Add(time.Hour)}
	td, err := hs.ClaimHookTasks(h.ctx, retryAt, 10, leaseD)
	require.NoError(t, err)
	require.Len(t, td, 2, "the retry is due and b's lease ran out")
	byID := map[uuid.UUID]sa.HookTask{td[0].Grant.ID: td[0], td[1].Grant.ID: td[1]}
	r := byID[first.Grant.ID]
	require.Equal(t, 1, r.Done)
	require.Equal(t, 2, r.Attempts)
	require.True(t, r.NextAt.Equal(retryAt))
	require.Equal(t, "directory said: ünavailable 'x'", r.LastError)
	require.Equal(t, "d", r.LeaseToken)

	// b's holder comes back too late: its finish changes nothing.
	second.Complete = true
	n, err = hs.FinishHookTasks(h.ctx, "b", []sa.HookTask{second}, nil)
	require.NoError(t, err)
	require.Zero(t, n)

	done := byID[second.Grant.ID]
	done.Complete = true
	r.Complete = true
	n, err = hs.FinishHookTasks(h.ctx, "d", []sa.HookTask{done, r}, nil)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	left, err := hs.ClaimHookTasks(h.ctx, now.Add(24*time.Hour), 10, sa.Lease{Token: "e", Until: now.Add(25 * time.Hour)})
	require.NoError(t, err)
	require.Empty(t, left, "completed tasks are gone")
}

// eventsIfAuditor returns evs when the store records events, else nil.
func eventsIfAuditor(h *harness, evs ...sa.Event) []sa.Event {
	if _, ok := h.store.(sa.Auditor); ok {
		return evs
	}
	return nil
}

func testHookTasksConcurrent(t *testing.T, ns NewStore) {
	h := newLifecycleHarness(t, ns, false, true)
	hs := h.hooks()
	const n = 50
	for i := 0; i < n; i++ {
		h.grant(sa.GrantInput{Duration: time.Duration(i+1) * time.Second})
	}
	now := h.clock.Now().Truncate(time.Microsecond).Add(time.Hour)
	h.claimStarts(now)
	claimed, err := hs.ClaimExpirations(h.ctx, now, n, sa.Lease{Token: "claimer", Until: now}, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
	require.NoError(t, err)
	require.Len(t, claimed, n)
	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease := sa.Lease{Token: fmt.Sprint("worker-", w), Until: now.Add(time.Minute)}
			for {
				ts, err := hs.ClaimHookTasks(h.ctx, now, 3, lease)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(ts) == 0 {
					return
				}
				mu.Lock()
				claims := 0
				for _, x := range ts {
					seen[x.Grant.ID]++
					if x.LeaseToken != lease.Token {
						t.Errorf("task leased to %q returned to %q", x.LeaseToken, lease.Token)
					}
				}
				for _, c := range seen {
					claims += c
				}
				mu.Unlock()
				if claims > n { // a lease not kept: stop rather than spin until the timeout
					t.Errorf("%d leases of %d tasks", claims, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, n)
	for id, c := range seen {
		require.Equal(t, 1, c, "task %s leased %d times", id, c)
	}
}

// hookCounter counts calls per grant and fails for the grants in fail.
type hookCounter struct {
	mu    sync.Mutex
	calls map[uuid.UUID]int
	fail  map[uuid.UUID]bool
}

func (c *hookCounter) hook(_ context.Context, g sa.Grant) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[uuid.UUID]int{}
	}
	c.calls[g.ID]++
	if c.fail[g.ID] {
		return errors.New("account service unavailable")
	}
	return nil
}

func (c *hookCounter) count(id uuid.UUID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

func testHookRetry(t *testing.T, ns NewStore) {
	hc := &hookCounter{fail: map[uuid.UUID]bool{}}
	h := newLifecycleHarness(t, ns, false, true, sa.OnExpire(hc.hook), sa.WithErrorHandler(func(context.Context, error) {}))
	bad := h.grant(sa.GrantInput{Duration: time.Hour})
	good := h.grant(sa.GrantInput{Duration: time.Hour})
	hc.mu.Lock()
	hc.fail[bad.ID] = true
	hc.mu.Unlock()
	h.clock.Set(bad.ExpiresAt)
	n, err := h.m.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, 1, hc.count(bad.ID))
	require.Equal(t, 1, hc.count(good.ID), "a failing hook blocks no other grant")
	if evs, ok := h.eventsOf(sa.EventExpireHookFailed); ok {
		require.Len(t, evs, 1)
		require.Equal(t, bad.ID, evs[0].GrantID)
		require.Equal(t, "account service unavailable", evs[0].Attrs[sa.AttrError])
	}

	h.clock.Advance(time.Second)
	_, err = h.m.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, hc.count(bad.ID), "waits for the retry delay")

	hc.mu.Lock()
	hc.fail[bad.ID] = false
	hc.mu.Unlock()
	h.clock.Advance(sa.DefaultHookRetryMin)
	_, err = h.m.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, hc.count(bad.ID), "retried on a later sweep")
	require.Equal(t, 1, hc.count(good.ID))
	if evs, ok := h.eventsOf(sa.EventExpireHookSucceeded); ok {
		require.Len(t, evs, 1)
		require.Equal(t, bad.ID, evs[0].GrantID)
	}
	h.clock.Advance(sa.DefaultHookRetryMax)
	_, err = h.m.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, hc.count(bad.ID), "done after success")
	left, err := h.hooks().ClaimHookTasks(h.ctx, h.clock.Now().Truncate(time.Microsecond), 10, sa.Lease{Token: "x", Until: h.clock.Now().Add(time.Minute).Truncate(time.Microsecond)})
	require.NoError(t, err)
	require.Empty(t, left, "no task left")
	if evs, ok := h.eventsOf(sa.EventGrantExpired); ok {
		require.Len(t, evs, 2, "the expiry itself is recorded once")
	}
}

// testHookErrorText: a hook's error text is caller text — here invalid
// UTF-8, a NUL and a line break. It is kept as valid single-line text, so
// that the store accepts the batch's results: the failure is recorded, the
// other grant's hook is not run again, and the retry follows the backoff.
func testHookErrorText(t *testing.T, ns NewStore) {
	var mu sync.Mutex
	calls := map[uuid.UUID]int{}
	var bad sa.Grant
	hook := func(_ context.Context, g sa.Grant) error {
		mu.Lock()
		defer mu.Unlock()
		calls[g.ID]++
		if g.ID == bad.ID {
			return errors.New("bad \xff\x00 byte\nsecond line")
		}
		return nil
	}
	count := func(id uuid.UUID) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[id]
	}
	h := newLifecycleHarness(t, ns, false, true, sa.OnExpire(hook), sa.WithErrorHandler(func(context.Context, error) {}))
	mu.Lock()
	bad = h.grant(sa.GrantInput{Duration: time.Hour})
	mu.Unlock()
	good := h.grant(sa.GrantInput{Duration: time.Hour})
	h.clock.Set(bad.ExpiresAt)
	n, err := h.m.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	if evs, ok := h.eventsOf(sa.EventExpireHookFailed); ok {
		require.Len(t, evs, 1)
		require.Equal(t, "bad \uFFFD\uFFFD byte\uFFFDsecond line", evs[0].Attrs[sa.AttrError])
	}
	for range 3 {
		h.clock.Advance(sa.DefaultHookRetryMax)
		_, err = h.m.Sweep(h.ctx)
		require.NoError(t, err, "the stored results let later sweeps run")
	}
	require.Equal(t, 1, count(good.ID), "a hook that succeeded is not run again")
	require.Equal(t, 4, count(bad.ID), "the failing hook is retried once per sweep after its delay")
}

func testHooksOnceAcrossReplicas(t *testing.T, ns NewStore) {
	hc := &hookCounter{}
	h := newLifecycleHarness(t, ns, false, true, sa.OnExpire(hc.hook))
	m2, err := sa.NewManager(h.store, sa.WithNow(h.clock.Now), sa.OnExpire(hc.hook))
	require.NoError(t, err)
	const n = 1000
	for i := 0; i < n; i++ {
		h.grant(sa.GrantInput{Duration: time.Duration(i%97+1) * time.Second})
	}
	h.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < 8; i++ { // 4 goroutines on each of 2 Managers
		m := h.m
		if i%2 == 1 {
			m = m2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := m.Sweep(h.ctx)
			if err != nil {
				t.Errorf("sweep: %v", err)
			}
			mu.Lock()
			total += c
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, n, total, "each expiry counted once")
	hc.mu.Lock()
	require.Len(t, hc.calls, n, "a hook call for every expiry")
	for id, c := range hc.calls {
		require.Equal(t, 1, c, "grant %s: %d hook calls", id, c)
	}
	hc.mu.Unlock()
	if evs, ok := h.eventsOf(sa.EventGrantExpired); ok {
		require.Len(t, evs, n, "one grant.expired per grant")
		ids := map[uuid.UUID]bool{}
		for _, e := range evs {
			ids[e.GrantID] = true
		}
		require.Len(t, ids, n)
	}
	if evs, ok := h.eventsOf(sa.EventGrantStarted); ok {
		require.Len(t, evs, n, "one grant.started per grant")
	}
	again, err := m2.Sweep(h.ctx)
	require.NoError(t, err)
	require.Zero(t, again)
}

// testHooksAtEndOfYear9999: a grant ending in the last hour of year 9999
// (which every store accepts) expires and runs its OnExpire hook like any
// other. The Manager's lease end (now + the hook lease) lay in year 10000,
// which a SQL store refused — every later Sweep failed, for good.
func testHooksAtEndOfYear9999(t *testing.T, ns NewStore) {
	var hooked []uuid.UUID
	hook := func(_ context.Context, g sa.Grant) error {
		hooked = append(hooked, g.ID)
		return nil
	}
	h := newLifecycleHarness(t, ns, false, true, sa.OnExpire(hook))
	h.clock.Set(time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC))
	g, err := h.m.Grant(h.ctx, sa.GrantInput{TenantID: "acme", By: Customer, Duration: 58 * time.Minute})
	require.NoError(t, err)
	h.clock.Set(g.ExpiresAt)
	n, err := h.m.Sweep(h.ctx)
	require.NoError(t, err, "Sweep at %s (the hook lease would end in year 10000)", g.ExpiresAt)
	require.Equal(t, 1, n)
	require.Equal(t, []uuid.UUID{g.ID}, hooked)
}
