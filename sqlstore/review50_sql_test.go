package sqlstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review round 50: the Store, AuditLog, RequestStore and HookStore
// contracts against memstore and sqlstore (SQLite, PostgreSQL, MariaDB).

// review50Store is what the bundled stores implement.
type review50Store interface {
	sa.Store
	sa.Auditor
	sa.AuditLog
	sa.RequestStore
	sa.HookStore
	sa.AuditPurger
	sa.AuditChainReader
}

// review50Each runs f on memstore and on a fresh store of every SQL
// dialect.
func review50Each(t *testing.T, f func(t *testing.T, s review50Store)) {
	t.Run("memstore", func(t *testing.T) { f(t, memstore.New()) })
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) { f(t, sqltest.NewStore(t, d)) })
	}
}

var review50Now = storetest.Epoch.Truncate(time.Microsecond)

func review50Grant(tenant string) sa.Grant {
	return sa.Grant{ID: uuid.New(), TenantID: tenant, Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer,
		CreatedAt: review50Now, StartsAt: review50Now, ExpiresAt: review50Now.Add(time.Hour)}
}

func review50Request(tenant string) sa.AccessRequest {
	return sa.AccessRequest{ID: uuid.New(), TenantID: tenant, RequestedBy: storetest.Support, Duration: time.Hour,
		Scopes: []sa.Scope{sa.ScopeRead}, Status: sa.RequestPending, CreatedAt: review50Now, ExpiresAt: review50Now.Add(72 * time.Hour)}
}

// TestReview50RequestTimesOutsideStorableRangeClamped: sqlstore refuses a
// grant time outside years 1000–9999 with ErrInvalidInput
// (checkGrantTimes in CreateGrant and UpdateGrant, sqlstore/grants.go),
// so that timeArg's clamping (sqlstore/dialect.go, timeArg) never changes
// a stored value. The request paths skip that check: CreateRequest and
// changeRequest (UpdateRequest, ApproveRequest) in sqlstore/requests.go
// write r.StartsAt/ExpiresAt/DecidedAt and — for ApproveRequest — the new
// grant's times through timeArg unchecked, so a year-10001 time is stored
// as 9999-12-31T23:59:59.999999 (and a year-500 one as year 1000) and the
// call succeeds. ApproveRequest even returns the unclamped grant while
// GetGrant returns the clamped one. memstore keeps the values exactly.
// Expected (Store contract: a store keeps what it is given): either
// refuse with ErrInvalidInput and write nothing (as CreateGrant does) or
// keep the time exactly. Fails on sqlite, postgres and mysql. Severity:
// low — the Manager caps every time at year 9999 before it reaches the
// store, so only a host calling the store directly (or a future Manager
// path) gets a silently altered row.
func TestReview50RequestTimesOutsideStorableRangeClamped(t *testing.T) {
	ctx := context.Background()
	far := time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC)
	review50Each(t, func(t *testing.T, s review50Store) {
		t.Run("CreateRequest", func(t *testing.T) {
			r := review50Request("acme")
			r.StartsAt = far
			err := s.CreateRequest(ctx, r, nil)
			if err != nil {
				require.ErrorIs(t, err, sa.ErrInvalidInput)
				_, gerr := s.GetRequest(ctx, r.ID)
				require.ErrorIs(t, gerr, sa.ErrNotFound, "refused: nothing stored")
				return
			}
			got, err := s.GetRequest(ctx, r.ID)
			require.NoError(t, err)
			require.True(t, got.StartsAt.Equal(far), "stored StartsAt %s, given %s", got.StartsAt, far)
		})
		t.Run("ApproveRequest", func(t *testing.T) {
			r := review50Request("acme")
			require.NoError(t, s.CreateRequest(ctx, r, nil))
			g := review50Grant("acme")
			g.StartsAt, g.ExpiresAt = far, far.Add(time.Hour)
			_, ret, err := s.ApproveRequest(ctx, r.ID, func(r *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
				r.Status, r.DecidedAt, r.DecidedBy, r.GrantID = sa.RequestApproved, review50Now, storetest.Customer, g.ID
				return g, nil, nil
			})
			if err != nil {
				require.ErrorIs(t, err, sa.ErrInvalidInput)
				_, gerr := s.GetGrant(ctx, g.ID)
				require.ErrorIs(t, gerr, sa.ErrNotFound, "refused: nothing stored")
				return
			}
			got, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			require.True(t, got.StartsAt.Equal(far), "stored StartsAt %s, given %s", got.StartsAt, far)
			require.Equal(t, ret, got, "ApproveRequest returns the grant as stored")
		})
	})
}

// TestReview50MemstoreWritesAcceptEventsWithoutTime: the Auditor contract
// (audit.go, Auditor) says the bundled stores refuse an event without a
// Time with ErrInvalidInput, and both do in Record. The write methods
// differ: sqlstore's appendEvents (sqlstore/audit.go) refuses such an event
// and rolls back the whole change, but memstore's appendEvents
// (memstore/audit.go) and so CreateGrant, UpdateGrant, the request writes,
// FinishHookTasks and PurgeAudit store it — the grant is created and its
// event is chained with the zero Time (which also makes it sort before
// every other event of the trail). Expected: ErrInvalidInput and nothing
// written, on every backend. Fails on memstore. Severity: low (the Manager
// always dates its events; a host calling the store directly, or a
// wrapper store, gets a different answer per backend).
func TestReview50MemstoreWritesAcceptEventsWithoutTime(t *testing.T) {
	ctx := context.Background()
	review50Each(t, func(t *testing.T, s review50Store) {
		g := review50Grant("acme")
		ev := sa.Event{ID: uuid.New(), Type: sa.EventGrantCreated, TenantID: "acme", GrantID: g.ID, Actor: storetest.Customer}
		err := s.CreateGrant(ctx, g, []sa.Event{ev})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "an event without a Time is refused, as by Record")
		_, err = s.GetGrant(ctx, g.ID)
		require.ErrorIs(t, err, sa.ErrNotFound, "nothing written")
		evs, err := s.Events(ctx, sa.AuditFilter{TenantID: "acme"})
		require.NoError(t, err)
		require.Empty(t, evs)
	})
}

// TestReview50EventsSubMicrosecondBounds: AuditLog.Events must return "the
// events matching f (see AuditFilter.Match)". Match compares Since, Until
// and After.Time exactly; memstore follows it. sqlstore's eventsQuery and
// auditKeyset (sqlstore/audit.go, sqlstore/audit_chain.go) bind the bounds
// through timeArg, which truncates them to the microsecond: with an event
// at T, Since T+500ns returns the event (Match: it is before Since),
// Until T+500ns leaves it out (Match: it is before Until), and a cursor at
// (T+500ns, "", 0) returns it although it sorts before the cursor.
// Expected: exactly the events Match accepts (or the bounds rounded the
// way that keeps Match's answer: Since and After up, Until up). Fails on
// sqlite, postgres and mysql. Severity: low — Manager.Events truncates
// the bounds before calling the log, so only direct AuditLog users and
// wrappers see it.
func TestReview50EventsSubMicrosecondBounds(t *testing.T) {
	ctx := context.Background()
	review50Each(t, func(t *testing.T, s review50Store) {
		e := sa.Event{ID: uuid.New(), Time: review50Now, Type: sa.EventSupportChange, TenantID: "acme", Actor: storetest.Support}
		require.NoError(t, s.Record(ctx, e))
		stored, err := s.Events(ctx, sa.AuditFilter{TenantID: "acme"})
		require.NoError(t, err)
		require.Len(t, stored, 1)
		half := review50Now.Add(500 * time.Nanosecond)
		for _, c := range []struct {
			name string
			f    sa.AuditFilter
		}{
			{"Since", sa.AuditFilter{TenantID: "acme", Since: half}},
			{"Until", sa.AuditFilter{TenantID: "acme", Until: half}},
			{"After", sa.AuditFilter{After: &sa.AuditCursor{Time: half}}},
			{"AfterTenant", sa.AuditFilter{TenantID: "acme", After: &sa.AuditCursor{Time: half, TenantID: "acme"}}},
		} {
			evs, err := s.Events(ctx, c.f)
			require.NoError(t, err)
			want := 0
			if c.f.Match(&stored[0]) {
				want = 1
			}
			require.Len(t, evs, want, "%s: AuditFilter.Match says %v", c.name, want == 1)
		}
	})
}

// TestReview50StoredTimesNotNormalised: the Store contract
// (store.go: "keep times to the microsecond in UTC"; lifecycle_store.go:
// "times are UTC microseconds") holds for sqlstore, which writes every
// time through timeArg, but memstore stores grants, requests and hook
// tasks as given (memstore.go newEntry/set, requests.go CreateRequest,
// hooks.go ClaimExpirations/ClaimHookTasks/FinishHookTasks): a grant
// created with times in another zone and with nanoseconds reads back with
// that zone and those nanoseconds, and a hook task whose NextAt has
// nanoseconds is not claimable at the microsecond every SQL backend makes
// it due. In the other direction sqlstore's UpdateGrant returns g.Clone()
// (sqlstore/grants.go UpdateGrant, `out = g.Clone()`) — the caller's
// nanosecond times — while GetGrant returns the truncated stored ones.
// Expected: every backend stores and returns UTC microseconds, and a
// write returns what a read then returns. Fails on memstore (first two
// subtests) and on sqlite, postgres, mysql (UpdateGrantReturnsStored).
// Severity: low at the store level; see TestReview50HookRetryDueDiffers
// for the path through the Manager.
func TestReview50StoredTimesNotNormalised(t *testing.T) {
	ctx := context.Background()
	zone := time.FixedZone("UTC+2", 2*3600)
	review50Each(t, func(t *testing.T, s review50Store) {
		t.Run("Grant", func(t *testing.T) {
			g := review50Grant("acme")
			g.CreatedAt = review50Now.In(zone)
			g.StartsAt = review50Now.Add(time.Minute + 700*time.Nanosecond).In(zone)
			g.ExpiresAt = g.StartsAt.Add(time.Hour)
			require.NoError(t, s.CreateGrant(ctx, g, nil))
			got, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			for _, ts := range []time.Time{got.CreatedAt, got.StartsAt, got.ExpiresAt} {
				require.Equal(t, time.UTC, ts.Location(), "%s is not UTC", ts)
				require.Zero(t, ts.Nanosecond()%1000, "%s has nanoseconds", ts)
			}
		})
		t.Run("HookTaskNextAt", func(t *testing.T) {
			g := review50Grant("hooks")
			require.NoError(t, s.CreateGrant(ctx, g, nil))
			lease := sa.Lease{Token: "a", Until: g.ExpiresAt.Add(time.Minute)}
			claimed, err := s.ClaimExpirations(ctx, g.ExpiresAt, 10, lease, nil)
			require.NoError(t, err)
			require.Len(t, claimed, 1)
			next := g.ExpiresAt.Add(time.Second + 500*time.Nanosecond)
			n, err := s.FinishHookTasks(ctx, "a", []sa.HookTask{{Grant: claimed[0], Attempts: 1, NextAt: next, LastError: "x"}}, nil)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			// Stored to the microsecond, the retry is due from
			// next.Truncate(µs) on.
			tasks, err := s.ClaimHookTasks(ctx, next.Truncate(time.Microsecond), 10, sa.Lease{Token: "b", Until: next.Add(time.Minute)})
			require.NoError(t, err)
			require.Len(t, tasks, 1, "NextAt %s is kept to the microsecond", next)
			require.Zero(t, tasks[0].NextAt.Nanosecond()%1000)
		})
		t.Run("UpdateGrantReturnsStored", func(t *testing.T) {
			g := review50Grant("upd")
			require.NoError(t, s.CreateGrant(ctx, g, nil))
			ret, err := s.UpdateGrant(ctx, g.ID, func(g *sa.Grant) ([]sa.Event, error) {
				g.ExpiresAt = g.ExpiresAt.Add(time.Hour + 300*time.Nanosecond)
				return nil, nil
			})
			require.NoError(t, err)
			got, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			require.Equal(t, got, ret, "UpdateGrant returns the grant as stored")
		})
	})
}

// TestReview50HookRetryDueDiffers: the same thing through the Manager.
// The retry time of a failed expiry hook is now + retryDelay (hooks.go,
// `t.NextAt = now.Add(m.life.retryDelay(t.Attempts))`), not truncated,
// unlike every other time the Manager hands a store (truncate in
// manager.go). WithExpireHookRetry accepts any positive delay, e.g.
// 1.5 µs. sqlstore stores NextAt truncated (T+1µs) and runs the retry on
// the Sweep at T+1µs; memstore keeps T+1.5µs and does not. Expected: one
// answer on every backend — with times kept to the microsecond, the retry
// is due at T+1µs. Fails on memstore. Severity: low (sub-microsecond
// delays are unusual, but the backends' schedules differ, and the fix is
// to truncate NextAt in the Manager or in memstore).
func TestReview50HookRetryDueDiffers(t *testing.T) {
	review50Each(t, func(t *testing.T, s review50Store) {
		ctx := t.Context()
		clock := storetest.NewClock(storetest.Epoch)
		var mu sync.Mutex
		calls := 0
		hook := func(context.Context, sa.Grant) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 1 {
				return errors.New("first attempt fails")
			}
			return nil
		}
		m, err := sa.NewManager(s, sa.WithNow(clock.Now), sa.OnExpire(hook),
			sa.WithExpireHookRetry(1500*time.Nanosecond, 1500*time.Nanosecond),
			sa.WithErrorHandler(func(context.Context, error) {}))
		require.NoError(t, err)
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
		clock.Set(g.ExpiresAt)
		_, err = m.Sweep(ctx)
		require.NoError(t, err)
		mu.Lock()
		require.Equal(t, 1, calls)
		mu.Unlock()
		clock.Set(g.ExpiresAt.Add(time.Microsecond))
		_, err = m.Sweep(ctx)
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, 2, calls, "the retry at T+1.5µs, kept to the microsecond, is due at T+1µs")
	})
}
