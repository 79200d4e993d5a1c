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
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Regression tests from the review of the grant_due claim (fdc5f8c); each
// failed on PostgreSQL and SQLite before the fixes.

// F1: an expiry claimed once must never be claimed again, also when the
// grant is made unlimited and then limited again (syncDue once re-inserted
// the expiry row, taking "no row" for "unlimited").
func TestReviewDueExpiryClaimedOnceAcrossUnlimited(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		s := sqltest.NewStore(t, d)
		now := storetest.Epoch.UTC().Truncate(time.Microsecond)
		g := sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
			CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		_, err := storetest.ClaimStarts(ctx, s, now)
		require.NoError(t, err)
		claim := func(at time.Time) int {
			gs, err := s.ClaimTransitions(ctx, sa.TransitionExpired, at, 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
			require.NoError(t, err)
			return len(gs)
		}
		set := func(exp time.Time) {
			_, err := s.UpdateGrant(ctx, g.ID, func(g *sa.Grant) ([]sa.Event, error) { g.ExpiresAt = exp; return nil, nil })
			// Since the fifth review a grant whose expiry is recorded is
			// final: the change is refused outright.
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		}
		require.Equal(t, 1, claim(now.Add(2*time.Hour)), "the expiry, claimed")
		set(time.Time{})            // made unlimited ...
		set(now.Add(3 * time.Hour)) // ... and limited again
		require.Zero(t, claim(now.Add(4*time.Hour)), "the expiry was claimed already: ClaimTransitions must not claim it a second time")
	})
}

// F1 through the Manager: two replicas whose clocks differ by 2 s. The
// sweeper (clock ahead) records the expiry; the other replica still sees
// the grant active and tries to extend it to unlimited and back
// (AllowUnlimited): refused, since the expiry is recorded (fifth review;
// the extensions once succeeded). grant.expired must be recorded once.
func TestReviewDueExpiryRecordedTwiceWithClockSkew(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		t0 := storetest.Epoch.UTC().Truncate(time.Second)
		a, b, setClocks := skewedReplicas(t, sqltest.NewStore(t, d), t0)
		g, err := a.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)

		setClocks(t0.Add(time.Hour+time.Second), t0.Add(time.Hour-time.Second))
		_, err = a.Sweep(ctx) // records grant.expired
		require.NoError(t, err)
		_, err = b.Extend(ctx, g.ID, time.Time{}, storetest.Customer) // B: still active by its clock
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = b.Extend(ctx, g.ID, t0.Add(2*time.Hour), storetest.Customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)

		setClocks(t0.Add(3*time.Hour), t0.Add(time.Hour-time.Second))
		_, err = a.Sweep(ctx)
		require.NoError(t, err)
		evs, err := a.Events(ctx, sa.AuditFilter{TenantID: "acme"})
		require.NoError(t, err)
		expired := 0
		for _, e := range evs {
			if e.Type == sa.EventGrantExpired {
				expired++
			}
		}
		require.Equal(t, 1, expired, "grant.expired is recorded exactly once per grant")
	})
}

// skewedReplicas returns two Managers on s (replicas A and B, policy
// allowing unlimited grants, plus opts) whose clocks start at t0, and a
// function that sets both clocks.
func skewedReplicas(t *testing.T, s *sqlstore.Store, t0 time.Time, opts ...sa.Option) (a, b *sa.Manager, setClocks func(a, b time.Time)) {
	t.Helper()
	var mu sync.Mutex
	clockA, clockB := t0, t0
	clock := func(c *time.Time) func() time.Time {
		return func() time.Time { mu.Lock(); defer mu.Unlock(); return *c }
	}
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	replica := func(c *time.Time) *sa.Manager {
		m, err := sa.NewManager(s, append([]sa.Option{sa.WithNow(clock(c)), sa.WithPolicy(p)}, opts...)...)
		require.NoError(t, err)
		return m
	}
	return replica(&clockA), replica(&clockB), func(a, b time.Time) { mu.Lock(); clockA, clockB = a, b; mu.Unlock() }
}

// F2: due rows of grants a host deleted must not stop a Sweep. A claim
// batch that held only such rows returned no grant, and Sweep takes an
// empty batch for "nothing left", so a live grant's expiry behind
// SweepBatchSize such rows waited for later runs. Now the foreign key
// deletes them with the grant (PostgreSQL; SQLite with foreign keys on),
// and SQLite's claim goes on past a batch of only such rows.
func TestReviewDueOrphansStallSweep(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		sweepsPastHostChange(t, d, "DELETE FROM {p}grants WHERE tenant_id = ?") // the host erases a tenant
	})
}

// sweepsPastHostChange stores SweepBatchSize grants of the tenant "host"
// expiring first and a live grant expiring after them, lets the host's own
// SQL hostSQL (one argument: the tenant) change the first ones, and
// requires one Sweep (one claimer) to record the live grant's expiry.
func sweepsPastHostChange(t *testing.T, d sqlstore.Dialect, hostSQL string, args ...any) {
	ctx := context.Background()
	s := sqltest.NewStore(t, d)
	now := storetest.Epoch.UTC().Truncate(time.Microsecond)
	mk := func(tenant string, exp time.Time) sa.Grant {
		return sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: tenant, GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
			CreatedAt: now, StartsAt: now, ExpiresAt: exp}
	}
	var gs []sa.Grant
	for i := range sa.SweepBatchSize {
		gs = append(gs, mk("host", now.Add(time.Minute+time.Duration(i)*time.Millisecond)))
	}
	gs = append(gs, mk("acme", now.Add(30*time.Minute)))
	require.NoError(t, s.InsertGrantsForTest(ctx, gs))
	require.NoError(t, s.ExecForTest(ctx, hostSQL, append(args, "host")...))

	m, err := sa.NewManager(s, sa.WithNow(func() time.Time { return now.Add(time.Hour) }), sa.WithSweepConcurrency(1))
	require.NoError(t, err)
	n, err := m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the live grant's expiry is due and must be recorded by this Sweep")
}

// F3: a grant revoked by a writer that does not maintain grant_due — a
// replica of the previous release during an upgrade (its UpdateGrant is
// exactly this UPDATE), or a host's own SQL — keeps its due rows; the
// claim must still never record grant.started/grant.expired for it (nor
// run its expiry hooks): it checks revoked_at, as version 4's did. (A grant the previous release inserts after the upgrade has no
// due rows at all: the upgrade rule — no replica of an older release runs
// once Migrate has — is documented in the migration and the package doc.)
func TestReviewDueRevokedByOlderReplicaIsNotClaimed(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, d)
		s := sqltest.NewStoreOn(t, db, d)
		now := storetest.Epoch.UTC().Truncate(time.Microsecond)
		g := sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
			CreatedAt: now, StartsAt: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		// The previous release's UpdateGrant of a Revoke: the grants row only.
		require.NoError(t, s.ExecForTest(ctx, "UPDATE {p}grants SET revoked_at = ?, revoked_by_kind = 'customer', "+
			"revoked_by_id = 'c', revoke_reason = 'r' WHERE id = ?", now.Add(time.Second), g.ID))
		got, err := s.GetGrant(ctx, g.ID)
		require.NoError(t, err)
		require.False(t, got.RevokedAt.IsZero())

		for _, tr := range []sa.Transition{sa.TransitionStarted, sa.TransitionExpired} {
			claimed, err := s.ClaimTransitions(ctx, tr, now.Add(2*time.Hour), 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
			require.NoError(t, err)
			require.Empty(t, claimed, "%v of a revoked grant must not be claimed", tr)
		}

	})
}

// F1, amplified by expiry hooks: while the first expiry's hook task was
// still being retried (a hook that fails; retries never stop), a second
// claim of the same expiry inserted a second hook task for the grant,
// which violated hook_tasks' primary key: the whole claim batch rolled
// back, so no other grant's expiry in it (here: y) was recorded either.
func TestReviewDueDoubleExpiryStallsSweepWithHooks(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		t0 := storetest.Epoch.UTC().Truncate(time.Second)
		failing := sa.OnExpire(func(ctx context.Context, g sa.Grant) error { return errors.New("downstream unavailable") })
		quiet := sa.WithErrorHandler(func(context.Context, error) {})
		a, b, setClocks := skewedReplicas(t, sqltest.NewStore(t, d), t0, failing, quiet)
		x, err := a.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
		y, err := a.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: 150 * time.Minute})
		require.NoError(t, err)

		setClocks(t0.Add(time.Hour+time.Second), t0.Add(time.Hour-time.Second))
		n, err := a.Sweep(ctx) // x expires; its hook fails and is kept for retry
		require.NoError(t, err)
		require.Equal(t, 1, n)
		_, err = b.Extend(ctx, x.ID, time.Time{}, storetest.Customer) // refused since the fifth review
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		_, err = b.Extend(ctx, x.ID, t0.Add(2*time.Hour), storetest.Customer)
		require.ErrorIs(t, err, sa.ErrInvalidInput)

		setClocks(t0.Add(3*time.Hour), t0.Add(3*time.Hour))
		_, err = a.Sweep(ctx)
		require.NoError(t, err, "the sweep of y's expiry")
		got, err := a.Events(ctx, sa.AuditFilter{TenantID: "acme", GrantID: y.ID, Types: []sa.EventType{sa.EventGrantExpired}})
		require.NoError(t, err)
		require.Len(t, got, 1, "y's expiry is recorded")
	})
}

// F4: migration 5 must be re-runnable on PostgreSQL and SQLite: a host
// tool that applies the file statement by statement (as applyFile does)
// and is interrupted after the first INSERT … SELECT — before the version
// row — applies the file again (the copy skips rows already there).
func TestReviewDueMigration5ReRunnable(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		if d == sqlstore.MySQL {
			continue // version 5 only records the version on MySQL
		}
		t.Run(d.String(), func(t *testing.T) { testMigration5ReRunnable(t, d) })
	}
}

func testMigration5ReRunnable(t *testing.T, d sqlstore.Dialect) {
	ctx := context.Background()
	db := sqltest.Open(t, d)
	s := atVersion4(t, db, d)
	now := storetest.Epoch.UTC().Truncate(time.Microsecond)
	g := sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
		CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}
	require.NoError(t, s.InsertV4GrantsForTest(ctx, []sa.Grant{g}, nil))
	// The first three statements of 0005 (table, index, first copy),
	// then the tool stops.
	applySome(t, db, s, "0005_grant_due.sql", func(i int, _ string) bool { return i < 3 })
	applyFile(t, db, s, "0005_grant_due.sql") // the tool's retry
	require.NoError(t, s.Migrate(ctx))
}

// F3, during the upgrade itself (PostgreSQL): a revocation by a running
// replica of the previous release, in flight when Migrate starts, must not
// leave the revoked grant's transitions pending: migration 5 locks grants
// against writers before it copies them, so it waits for the revocation.
func TestReviewDueMigrationRacesOlderWriter(t *testing.T) {
	ctx := context.Background()
	d := sqlstore.Postgres
	db := sqltest.Open(t, d)
	s := atVersion4(t, db, d)
	now := storetest.Epoch.UTC().Truncate(time.Microsecond)
	g := sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
		CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Hour)}
	require.NoError(t, s.InsertV4GrantsForTest(ctx, []sa.Grant{g}, nil))

	// A v4 replica's Revoke: its UPDATE is done, its COMMIT not yet.
	w, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = w.ExecContext(ctx, "UPDATE "+s.TablePrefix()+"grants SET revoked_at = $1, revoked_by_kind = 'customer' WHERE id = $2", now.Add(time.Second), g.ID)
	require.NoError(t, err)
	migrated := make(chan error, 1)
	go func() { migrated <- s.Migrate(ctx) }()
	// Wait until Migrate waits for the writer's lock (no sleep: poll the
	// server's lock table), then let the writer commit.
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&waiting))
		return waiting > 0
	}, 10*time.Second, 5*time.Millisecond, "Migrate blocks on the in-flight revocation")
	require.NoError(t, w.Commit())
	require.NoError(t, <-migrated)

	for _, tr := range []sa.Transition{sa.TransitionStarted, sa.TransitionExpired} {
		claimed, err := s.ClaimTransitions(ctx, tr, now.Add(2*time.Hour), 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
		require.NoError(t, err)
		require.Empty(t, claimed, "%v of a grant revoked during the upgrade", tr)
	}
}

// F5 (SQLite): a claim larger than SQLite's 32 766 bound variables must
// work (the claim bound one parameter per grant; it now selects and
// deletes by subquery, as version 4's single UPDATE did).
func TestReviewDueSQLiteLargeClaim(t *testing.T) {
	ctx := context.Background()
	s := sqltest.NewStore(t, sqlstore.SQLite)
	now := storetest.Epoch.UTC().Truncate(time.Microsecond)
	var gs []sa.Grant
	for i := range 33000 {
		gs = append(gs, sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
			CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Minute + time.Duration(i)*time.Microsecond)})
	}
	require.NoError(t, s.InsertGrantsForTest(ctx, gs))
	started, err := storetest.ClaimStarts(ctx, s, now)
	require.NoError(t, err)
	require.Equal(t, len(gs), started)
	claimed, err := s.ClaimTransitions(ctx, sa.TransitionExpired, now.Add(time.Hour), 40000, nil)
	require.NoError(t, err)
	require.Len(t, claimed, len(gs))
}
