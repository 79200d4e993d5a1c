package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/faultstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestFaultProperties runs the fault-injection properties (see
// faultstore.RunProperties) on every database.
func TestFaultProperties(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		faultstore.RunProperties(t, func(t *testing.T) faultstore.Inner { return sqltest.NewStore(t, d) })
	})
}

// lockTables makes another session hold locks that block the store: on
// PostgreSQL and MySQL every table of the store, reads included (ACCESS
// EXCLUSIVE; LOCK TABLES … WRITE), on SQLite the database's write lock
// (readers go on in WAL mode). It returns the function that releases them.
func lockTables(t *testing.T, db *sql.DB, d sqlstore.Dialect, prefix string) (unlock func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	tables := []string{prefix + "grants", prefix + "audit_events", prefix + "audit_heads"}
	switch d {
	case sqlstore.Postgres:
		_, err = conn.ExecContext(ctx, `BEGIN`)
		require.NoError(t, err)
		_, err = conn.ExecContext(ctx, `LOCK TABLE `+tables[0]+`, `+tables[1]+`, `+tables[2]+` IN ACCESS EXCLUSIVE MODE`)
	case sqlstore.MySQL:
		_, err = conn.ExecContext(ctx, `LOCK TABLES `+tables[0]+` WRITE, `+tables[1]+` WRITE, `+tables[2]+` WRITE`)
	default:
		_, err = conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
	}
	require.NoError(t, err)
	done := false
	unlock = func() {
		if done {
			return
		}
		done = true
		q := `ROLLBACK`
		if d == sqlstore.MySQL {
			q = `UNLOCK TABLES`
		}
		_, err := conn.ExecContext(ctx, q)
		require.NoError(t, err)
		require.NoError(t, conn.Close())
	}
	t.Cleanup(unlock)
	return unlock
}

// TestFaultDeadlineWhileLocked: with the store's tables locked by another
// session (a long migration, a stuck transaction), every Manager call
// returns within faultstore.MaxOvershoot of its context's deadline, with
// an error wrapping context.DeadlineExceeded, and changes nothing.
func TestFaultDeadlineWhileLocked(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		s := sqltest.NewStoreOn(t, db, d)
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(s, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
		require.NoError(t, err)
		ctx := context.Background()
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
		clock.Advance(2 * time.Hour) // for Sweep: the grant is due

		unlock := lockTables(t, db, d, s.TablePrefix())
		calls := map[string]func(ctx context.Context) error{
			"Grant": func(ctx context.Context) error {
				_, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer})
				return err
			},
			"Revoke": func(ctx context.Context) error { _, err := m.Revoke(ctx, g.ID, storetest.Customer, ""); return err },
			"Extend": func(ctx context.Context) error {
				_, err := m.Extend(ctx, g.ID, clock.Now().Add(time.Hour), storetest.Customer)
				return err
			},
			"Sweep": func(ctx context.Context) error { _, err := m.Sweep(ctx); return err },
			"Record": func(ctx context.Context) error {
				return s.Record(ctx, sa.Event{ID: uuid.New(), Time: clock.Now().Truncate(time.Microsecond), Type: sa.EventSupportRequest,
					TenantID: "acme", Actor: storetest.Support})
			},
		}
		if d != sqlstore.SQLite { // SQLite readers are not blocked by a writer
			calls["Check"] = func(ctx context.Context) error {
				_, err := m.Check(ctx, "acme", storetest.Support.ID, sa.ScopeRead)
				return err
			}
			calls["Events"] = func(ctx context.Context) error {
				_, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
				return err
			}
		}
		for name, call := range calls {
			err := faultstore.WithinDeadline(t, name, 100*time.Millisecond, nil, call)
			require.ErrorIs(t, err, context.DeadlineExceeded, name)
		}
		unlock()
		got, err := m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got, "nothing changed")
		gs, err := m.List(ctx, sa.ListFilter{})
		require.NoError(t, err)
		require.Len(t, gs, 1)
		faultstore.AssertConsistent(t, s, clock.Now())
	})
}

// pgKiller is an extra auditor that terminates the PostgreSQL backends of
// one application name (the store's connection pool) the next time it is
// asked to record an event. Revoke and Extend call it inside the store's
// transaction (after SELECT … FOR UPDATE), Sweep inside its claim, Grant
// just before its transaction: the connection dies in the middle of the
// work, as when the server restarts or a network path fails.
type pgKiller struct {
	admin  *sql.DB
	app    string
	states []string // the backend states to kill: "idle in transaction", "idle"
	armed  atomic.Bool
	killed atomic.Int64
}

func (k *pgKiller) arm(states ...string) {
	k.states = states
	k.armed.Store(true)
}

func (k *pgKiller) Record(context.Context, sa.Event) error {
	if !k.armed.Swap(false) {
		return nil
	}
	n, err := k.kill(k.states...)
	k.killed.Add(int64(n))
	return err
}

// kill terminates the pool's backends in the given states and waits until
// they are gone.
func (k *pgKiller) kill(states ...string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := k.admin.QueryContext(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
		WHERE application_name = $1 AND state = ANY($2::text[]) AND pid <> pg_backend_pid()`, k.app, pgArray(states))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var ok bool
		if err := rows.Scan(&ok); err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, rows.Err()
}

// pgArray renders strings as a PostgreSQL text array literal.
func pgArray(ss []string) string {
	out := "{"
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += `"` + s + `"`
	}
	return out + "}"
}

// withAppName returns dsn (a URL) with application_name set.
func withAppName(t *testing.T, dsn, app string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestFaultPostgresConnectionKilled kills the store's PostgreSQL connection
// with pg_terminate_backend in the middle of Revoke, Extend and Sweep
// transactions, between requests (Grant) and while a Check waits for a
// lock. Each call fails (Check denies), nothing is half-done (every grant
// is the After of its last event, the chains verify), and a retry works.
func TestFaultPostgresConnectionKilled(t *testing.T) {
	admin := sqltest.Open(t, sqlstore.Postgres)
	app := "sa_victim_" + sqltest.NewPrefix()[2:10]
	victim, err := sql.Open(sqltest.DriverName(sqlstore.Postgres), withAppName(t, sqltest.DSN(sqlstore.Postgres), app))
	require.NoError(t, err)
	t.Cleanup(func() { _ = victim.Close() })
	s := sqltest.NewStoreOn(t, victim, sqlstore.Postgres)
	killer := &pgKiller{admin: admin, app: app}
	clock := storetest.NewClock(storetest.Epoch)
	// One claim at a time: the pool then holds no spare connection from
	// the sweep's concurrent claims for the "grant" case's kill of idle
	// backends to take down with the one it aims at.
	m, err := sa.NewManager(s, sa.WithNow(clock.Now), sa.WithAuditor(sa.MultiAuditor(s, killer)),
		sa.WithErrorHandler(func(context.Context, error) {}), sa.WithSweepConcurrency(1))
	require.NoError(t, err)
	ctx := context.Background()
	grant := func(tenant string) sa.Grant {
		t.Helper()
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
		return g
	}
	check := func(tenant string) error {
		_, err := m.Check(ctx, tenant, storetest.Support.ID, sa.ScopeRead)
		return err
	}
	count := func(g sa.Grant, typ sa.EventType) int {
		evs, err := m.Events(ctx, sa.AuditFilter{GrantID: g.ID, Types: []sa.EventType{typ}})
		require.NoError(t, err)
		return len(evs)
	}
	const inTx = "idle in transaction"

	t.Run("revoke", func(t *testing.T) {
		g := grant("revoke")
		killer.arm(inTx)
		_, err := m.Revoke(ctx, g.ID, storetest.Customer, "killed")
		require.Error(t, err)
		require.EqualValues(t, 1, killer.killed.Swap(0), "the transaction's connection was killed")
		require.NoError(t, check("revoke"), "the revocation did not happen")
		require.Zero(t, count(g, sa.EventGrantRevoked))
		_, err = m.Revoke(ctx, g.ID, storetest.Customer, "retry")
		require.NoError(t, err, "a retry succeeds")
		require.ErrorIs(t, check("revoke"), sa.ErrNoActiveGrant)
		require.Equal(t, 1, count(g, sa.EventGrantRevoked))
	})
	t.Run("extend", func(t *testing.T) {
		g := grant("extend")
		killer.arm(inTx)
		_, err := m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), storetest.Customer)
		require.Error(t, err)
		require.EqualValues(t, 1, killer.killed.Swap(0))
		got, err := m.Get(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got, "unchanged")
		_, err = m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), storetest.Customer)
		require.NoError(t, err)
	})
	t.Run("sweep", func(t *testing.T) {
		g := grant("sweep")
		clock.Set(g.ExpiresAt.Add(time.Minute))
		defer clock.Set(storetest.Epoch)
		killer.arm(inTx)
		_, err := m.Sweep(ctx)
		require.Error(t, err)
		require.EqualValues(t, 1, killer.killed.Swap(0))
		require.ErrorIs(t, check("sweep"), sa.ErrNoActiveGrant, "expired at ExpiresAt, swept or not")
		_, err = m.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, count(g, sa.EventGrantStarted))
		require.Equal(t, 1, count(g, sa.EventGrantExpired))
	})
	t.Run("grant", func(t *testing.T) {
		killer.arm("idle")
		_, err := m.Grant(ctx, sa.GrantInput{TenantID: "grant", By: storetest.Customer, Duration: time.Hour})
		gs, lerr := m.List(ctx, sa.ListFilter{TenantID: "grant"})
		require.NoError(t, lerr)
		if err != nil {
			require.Empty(t, gs, "a failed grant does not exist")
		} else {
			require.Len(t, gs, 1)
		}
		grant("grant")
	})
	t.Run("check_waiting_for_a_lock", func(t *testing.T) {
		grant("check")
		unlock := lockTables(t, admin, sqlstore.Postgres, s.TablePrefix())
		defer unlock()
		done := make(chan error, 1)
		go func() { done <- check("check") }()
		require.Eventually(t, func() bool {
			var n int
			err := admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&n)
			return err == nil && n == 1
		}, 10*time.Second, 5*time.Millisecond, "the check waits for the lock")
		n, err := killer.kill("active")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		select {
		case err := <-done:
			require.Error(t, err, "a check whose connection died denies")
			require.False(t, errors.Is(err, sa.ErrNoActiveGrant), "reported as an outage: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("the check did not return after its connection was killed")
		}
		unlock()
		require.NoError(t, check("check"), "the pool replaces the dead connection")
	})
	faultstore.AssertConsistent(t, s, clock.Now())
}
