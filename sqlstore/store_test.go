package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // loc=Asia/Tokyo in a MySQL DSN

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// weird are values shaped like SQL injection, escapes and encodings.
var weird = []string{
	`'; DROP TABLE supportaccess_grants; --`, `" OR 1=1 --`, `back\slash\\`, `\`, `\n`, "line\nbreak",
	`ünï©ødé 🚀`, `%_*?[]`, `$1 :name @p ?`, `{p}`, "trailing space ", " ", "",
}

// TestInjectionShapedValuesRoundTrip stores injection-shaped values in
// every text column through the Store directly (no Manager validation) and
// reads them back byte for byte.
func TestInjectionShapedValuesRoundTrip(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		s := sqltest.NewStore(t, d)
		ctx := context.Background()
		now := storetest.Epoch.Truncate(time.Microsecond)
		for i, w := range weird {
			tenant := "t" + w
			g := sa.Grant{
				ID: uuid.New(), TenantID: tenant, Grantees: []string{w, w + "2", ""}, Scopes: []sa.Scope{sa.Scope(w), sa.ScopeRead},
				Reason: w, TicketRef: w, GrantedBy: sa.Actor{Kind: sa.ActorCustomer, ID: "id" + w, Name: w},
				CreatedAt: now.Add(time.Duration(i) * time.Microsecond), StartsAt: now,
			}
			ev := sa.Event{ID: uuid.New(), Time: now, Type: sa.EventType("t" + w), TenantID: tenant, GrantID: g.ID,
				Actor: sa.Actor{Kind: sa.ActorSupport, ID: "id" + w, Name: w}, Reason: w,
				Attrs: map[string]string{w: w, "k" + w: "", sa.AttrSessionID: w}, Before: []byte(w), After: []byte{}}
			require.NoError(t, s.CreateGrant(ctx, g, []sa.Event{ev}))
			got, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			require.Equal(t, g, got, "%q", w)
			found, err := s.FindActiveGrant(ctx, tenant, w, sa.ScopeRead, now)
			require.NoError(t, err)
			require.Equal(t, g, found)
			list, err := s.ListGrants(ctx, sa.ListFilter{TenantID: tenant, TicketRef: w}, now)
			require.NoError(t, err)
			require.Equal(t, []sa.Grant{g}, list)
			evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant, ActorID: "id" + w, Types: []sa.EventType{ev.Type}, SessionID: w})
			require.NoError(t, err)
			require.Len(t, evs, 1, "%q", w)
			ev.Seq = 1
			ev.Hash = ev.ChainHash(nil)
			require.Equal(t, ev, evs[0])
		}
		all, err := s.ListGrants(ctx, sa.ListFilter{}, now)
		require.NoError(t, err)
		require.Len(t, all, len(weird), "every value stayed data")
		// Pattern characters do not match other tenants.
		_, err = s.FindActiveGrant(ctx, "t%", "x", sa.ScopeRead, now)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	})
}

// TestCanceledContextEveryMethod: a canceled context fails every method
// with an error wrapping context.Canceled, and writes nothing.
func TestCanceledContextEveryMethod(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		s := sqltest.NewStore(t, d)
		live := context.Background()
		now := storetest.Epoch.Truncate(time.Microsecond)
		g := sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer, CreatedAt: now, StartsAt: now}
		require.NoError(t, s.CreateGrant(live, g, nil))
		ctx, cancel := context.WithCancel(live)
		cancel()
		ev := sa.Event{ID: uuid.New(), Time: now, Type: sa.EventSupportRequest, TenantID: "acme", Actor: storetest.Support}
		g2 := g
		g2.ID = uuid.New()
		called := false
		change := func(x *sa.Grant) ([]sa.Event, error) { called = true; x.RevokedAt = now; return nil, nil }
		for name, err := range map[string]error{
			"CreateGrant":      s.CreateGrant(ctx, g2, []sa.Event{ev}),
			"GetGrant":         second(s.GetGrant(ctx, g.ID)),
			"ListGrants":       second(s.ListGrants(ctx, sa.ListFilter{}, now)),
			"FindActiveGrant":  second(s.FindActiveGrant(ctx, "acme", "x", sa.ScopeRead, now)),
			"UpdateGrant":      second(s.UpdateGrant(ctx, g.ID, change)),
			"ClaimTransitions": second(s.ClaimTransitions(ctx, sa.TransitionStarted, now, 10, nil)),
			"Record":           s.Record(ctx, ev),
			"Events":           second(s.Events(ctx, sa.AuditFilter{})),
			"Migrate":          s.Migrate(ctx),
		} {
			require.ErrorIs(t, err, context.Canceled, name)
		}
		require.False(t, called, "change not called")
		got, err := s.GetGrant(live, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got)
		_, err = s.GetGrant(live, g2.ID)
		require.ErrorIs(t, err, sa.ErrNotFound)
		evs, err := s.Events(live, sa.AuditFilter{})
		require.NoError(t, err)
		require.Empty(t, evs)
	})
}

func second[T any](_ T, err error) error { return err }

// TestContextDeadlineWhileWaitingForLock: a write that waits for a row
// lock (PostgreSQL, MySQL) or the database write lock (SQLite) held by
// another transaction returns when its context ends.
func TestContextDeadlineWhileWaitingForLock(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		s := sqltest.NewStoreOn(t, db, d)
		ctx := context.Background()
		now := storetest.Epoch.Truncate(time.Microsecond)
		g := sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer, CreatedAt: now, StartsAt: now}
		require.NoError(t, s.CreateGrant(ctx, g, nil))

		// Another session holds the lock.
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		lockSQL := map[sqlstore.Dialect]string{
			sqlstore.Postgres: `SELECT 1 FROM ` + s.TablePrefix() + `grants WHERE id = $1 FOR UPDATE`,
			sqlstore.MySQL:    `SELECT 1 FROM ` + s.TablePrefix() + `grants WHERE id = ? FOR UPDATE`,
		}
		if d == sqlstore.SQLite {
			_, err = conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
		} else {
			_, err = conn.ExecContext(ctx, `BEGIN`)
			require.NoError(t, err)
			_, err = conn.ExecContext(ctx, lockSQL[d], g.ID.String())
		}
		require.NoError(t, err)
		defer func() { _, _ = conn.ExecContext(ctx, `ROLLBACK`) }()

		tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = s.UpdateGrant(tctx, g.ID, func(x *sa.Grant) ([]sa.Event, error) { x.RevokedAt = now; return nil, nil })
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 10*time.Second, "returned soon after the deadline")
	})
}

func TestClosedStore(t *testing.T) {
	s := sqltest.NewStore(t, sqlstore.SQLite)
	ctx := context.Background()
	_, err := s.FindActiveGrant(ctx, "acme", "x", sa.ScopeRead, time.Now())
	require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "idempotent")
	_, err = s.FindActiveGrant(ctx, "acme", "x", sa.ScopeRead, time.Now())
	require.Error(t, err)
	require.NotErrorIs(t, err, sa.ErrNoActiveGrant, "fails closed")
	require.Error(t, s.Record(ctx, sa.Event{ID: uuid.New(), Time: time.Now(), TenantID: "acme", Type: sa.EventSupportRequest}))
	require.Error(t, s.Migrate(ctx))
}

// TestChainNeverForks: many writers append to a few tenants at once —
// tenants that have no events yet included — through two stores on
// separate connection pools; every chain is 1..n and verifies.
func TestChainNeverForks(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		a := sqltest.NewStoreOn(t, db, d)
		other := db
		if d != sqlstore.SQLite {
			other = sqltest.Open(t, d)
		}
		b, err := sqlstore.New(other, d, sqlstore.WithTablePrefix(a.TablePrefix()))
		require.NoError(t, err)
		defer b.Close()
		ctx := context.Background()
		clock := storetest.NewClock(storetest.Epoch)
		tenants := []string{"acme", "globex", "initech"}
		const writers, each = 8, 12
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := a
				if w%2 == 1 {
					s = b
				}
				m, err := sa.NewManager(s, sa.WithNow(clock.Now))
				if err != nil {
					t.Error(err)
					return
				}
				for i := 0; i < each; i++ {
					tenant := tenants[(w+i)%len(tenants)]
					switch i % 3 {
					case 0:
						err = s.Record(ctx, sa.Event{ID: uuid.New(), Time: clock.Now().Truncate(time.Microsecond), Type: sa.EventSupportRequest,
							TenantID: tenant, Actor: storetest.Support, Attrs: map[string]string{"w": fmt.Sprint(w)}})
					case 1:
						_, err = m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: storetest.Customer})
					case 2:
						var g sa.Grant
						g, err = m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: storetest.Customer})
						if err == nil {
							_, err = m.Revoke(ctx, g.ID, storetest.Customer, "done")
						}
					}
					if err != nil {
						t.Errorf("writer %d op %d: %v", w, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		m, err := sa.NewManager(a, sa.WithNow(clock.Now))
		require.NoError(t, err)
		total := 0
		for _, tenant := range tenants {
			evs, err := a.Events(ctx, sa.AuditFilter{TenantID: tenant, Order: sa.AuditByChain})
			require.NoError(t, err)
			for i, e := range evs {
				require.EqualValues(t, i+1, e.Seq, "%s: consecutive Seq", tenant)
			}
			total += len(evs)
			rep, err := m.VerifyAudit(ctx, tenant)
			require.NoError(t, err)
			require.True(t, rep.OK(), "%s: %+v", tenant, rep.Break)
		}
		// Per writer: 4 records, 4 grants, 4 grants + 4 revokes.
		require.Equal(t, writers*each/3*4, total)
	})
}

// TestMySQLAnyDSNTimeSettings: the store keeps UTC microseconds whatever
// the host's DSN says about parseTime and loc, including a loc with
// daylight saving time: a stored UTC wall clock that falls into loc's
// spring-forward gap (it does not exist there) or its repeated hour reads
// back unchanged through every read path — grants (Get, List, Check,
// UpdateGrant, both claims), events (Events, VerifyAudit), requests (Get,
// List, Update, the expiry claim) and hook tasks (claim, retry).
func TestMySQLAnyDSNTimeSettings(t *testing.T) {
	if err := sqltest.Available(sqlstore.MySQL); err != nil {
		sqltest.Open(t, sqlstore.MySQL) // skips or fails with the how-to message
	}
	base := sqltest.DSN(sqlstore.MySQL)
	sep := "?"
	if containsByte(base, '?') {
		sep = "&"
	}
	// UTC wall clocks in New York's and London's 2026 spring-forward gaps
	// and autumn repeated hours.
	nyGap := time.Date(2026, 3, 8, 2, 30, 0, 123_456_000, time.UTC)
	nyRepeat := time.Date(2026, 11, 1, 1, 30, 0, 654_321_000, time.UTC)
	londonGap := time.Date(2026, 3, 29, 1, 15, 0, 1000, time.UTC)
	londonRepeat := time.Date(2026, 10, 25, 1, 45, 59, 999_999_000, time.UTC)
	for _, c := range []struct {
		params      string
		gap, repeat time.Time
	}{
		{"parseTime=true", nyGap, nyRepeat},
		{"parseTime=true&loc=Asia%2FTokyo", nyGap, nyRepeat},
		{"parseTime=false&loc=Local", nyGap, nyRepeat},
		{"interpolateParams=true&parseTime=true&loc=Asia%2FTokyo", nyGap, nyRepeat},
		{"parseTime=true&loc=America%2FNew_York", nyGap, nyRepeat},
		{"interpolateParams=true&parseTime=true&loc=America%2FNew_York", nyGap, nyRepeat},
		{"parseTime=true&loc=Europe%2FLondon", londonGap, londonRepeat},
		{"parseTime=false&loc=Europe%2FLondon", londonGap, londonRepeat},
	} {
		t.Run(c.params, func(t *testing.T) {
			db, err := sql.Open("mysql", base+sep+c.params)
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			s := sqltest.NewStoreOn(t, db, sqlstore.MySQL)
			ctx := context.Background()
			created := time.Date(2026, 7, 1, 23, 59, 59, 999_999_000, time.UTC)
			g := sa.Grant{ID: uuid.New(), TenantID: "acme", Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer,
				CreatedAt: created, StartsAt: created.Add(time.Microsecond), ExpiresAt: created.Add(time.Hour + 7*time.Microsecond)}
			require.NoError(t, s.CreateGrant(ctx, g, nil))
			got, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			require.Equal(t, g, got)
			_, err = s.FindActiveGrant(ctx, "acme", "x", sa.ScopeRead, g.StartsAt)
			require.NoError(t, err, "active from StartsAt")
			_, err = s.FindActiveGrant(ctx, "acme", "x", sa.ScopeRead, g.StartsAt.Add(-time.Microsecond))
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)
			_, err = s.FindActiveGrant(ctx, "acme", "x", sa.ScopeRead, g.ExpiresAt)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)

			// Own tables: the claims see only the rows checkDSTTimes writes.
			checkDSTTimes(t, sqltest.NewStoreOn(t, db, sqlstore.MySQL), c.gap, c.repeat)
		})
	}
}

// checkDSTTimes stores times in a zone's spring-forward gap (gap) and
// repeated hour (repeat), as UTC wall clocks, through every kind of row
// and reads them back.
func checkDSTTimes(t *testing.T, s *sqlstore.Store, gap, repeat time.Time) {
	ctx := context.Background()
	const tenant = "dst"
	ev := func(at time.Time) sa.Event {
		return sa.Event{ID: uuid.New(), Time: at, Type: sa.EventSupportRequest, TenantID: tenant, Actor: storetest.Support}
	}

	// Grants: scheduled to start in the gap, expiring in the repeated hour.
	g := sa.Grant{ID: uuid.New(), TenantID: tenant, Scopes: []sa.Scope{sa.ScopeRead}, GrantedBy: storetest.Customer,
		CreatedAt: gap.Add(-2 * time.Hour), StartsAt: gap, ExpiresAt: repeat}
	require.NoError(t, s.CreateGrant(ctx, g, []sa.Event{ev(gap)}))
	got, err := s.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got)
	g, err = s.UpdateGrant(ctx, g.ID, func(x *sa.Grant) ([]sa.Event, error) {
		x.Grantees = append(x.Grantees, storetest.Engineer.ID)
		return []sa.Event{ev(repeat)}, nil
	})
	require.NoError(t, err)
	got, err = s.GetGrant(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g, got, "written back unchanged")
	list, err := s.ListGrants(ctx, sa.ListFilter{TenantID: tenant}, gap)
	require.NoError(t, err)
	require.Equal(t, []sa.Grant{g}, list)
	_, err = s.FindActiveGrant(ctx, tenant, storetest.Engineer.ID, sa.ScopeRead, gap.Add(-time.Microsecond))
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "not before StartsAt")
	got, err = s.FindActiveGrant(ctx, tenant, storetest.Engineer.ID, sa.ScopeRead, gap)
	require.NoError(t, err, "active from StartsAt")
	require.Equal(t, g, got)
	_, err = s.FindActiveGrant(ctx, tenant, storetest.Engineer.ID, sa.ScopeRead, repeat)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "not from ExpiresAt")
	claimed, err := s.ClaimTransitions(ctx, sa.TransitionStarted, gap.Add(-time.Microsecond), 10, nil)
	require.NoError(t, err)
	require.Empty(t, claimed, "not due before StartsAt")
	claimed, err = s.ClaimTransitions(ctx, sa.TransitionStarted, gap, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []sa.Grant{g}, claimed)
	lease := sa.Lease{Token: "lease-1", Until: repeat.Add(time.Hour)}
	claimed, err = s.ClaimExpirations(ctx, repeat.Add(-time.Microsecond), 10, lease, nil)
	require.NoError(t, err)
	require.Empty(t, claimed, "not due before ExpiresAt")
	claimed, err = s.ClaimExpirations(ctx, repeat, 10, lease, nil)
	require.NoError(t, err)
	require.Equal(t, []sa.Grant{g}, claimed)

	// Hook tasks: due at the expiry (repeated hour), retried at gap + 1y.
	tasks, err := s.ClaimHookTasks(ctx, lease.Until, 10, sa.Lease{Token: "lease-2", Until: lease.Until.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	require.Equal(t, repeat, tasks[0].NextAt)
	require.Equal(t, g, tasks[0].Grant)
	retry := gap.AddDate(1, 0, 0)
	tasks[0].Attempts, tasks[0].NextAt = 1, retry
	n, err := s.FinishHookTasks(ctx, "lease-2", tasks, nil)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	tasks, err = s.ClaimHookTasks(ctx, retry.Add(-time.Microsecond), 10, sa.Lease{Token: "lease-3", Until: retry.Add(time.Hour)})
	require.NoError(t, err)
	require.Empty(t, tasks, "not due before NextAt")
	tasks, err = s.ClaimHookTasks(ctx, retry, 10, sa.Lease{Token: "lease-3", Until: retry.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	require.Equal(t, retry, tasks[0].NextAt)

	// Requests: created in the gap, expiring in the repeated hour; one
	// decided in the gap.
	r := sa.AccessRequest{ID: uuid.New(), TenantID: tenant, RequestedBy: storetest.Support, Scopes: []sa.Scope{sa.ScopeRead},
		StartsAt: gap, Status: sa.RequestPending, CreatedAt: gap.Add(-time.Hour), ExpiresAt: repeat}
	require.NoError(t, s.CreateRequest(ctx, r, []sa.Event{ev(gap)}))
	gotR, err := s.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, gotR)
	r, err = s.UpdateRequest(ctx, r.ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
		x.Reason = "changed"
		return nil, nil
	})
	require.NoError(t, err)
	gotR, err = s.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, gotR, "written back unchanged")
	d := sa.AccessRequest{ID: uuid.New(), TenantID: tenant, RequestedBy: storetest.Support, Scopes: []sa.Scope{sa.ScopeRead},
		Status: sa.RequestDenied, CreatedAt: gap.Add(-time.Hour), ExpiresAt: repeat, DecidedAt: gap, DecidedBy: storetest.Customer}
	require.NoError(t, s.CreateRequest(ctx, d, nil))
	reqs, err := s.ListRequests(ctx, sa.RequestFilter{TenantID: tenant}, gap)
	require.NoError(t, err)
	require.ElementsMatch(t, []sa.AccessRequest{r, d}, reqs)
	expired, err := s.ClaimExpiredRequests(ctx, repeat.Add(-time.Microsecond), 10, nil)
	require.NoError(t, err)
	require.Empty(t, expired, "not due before ExpiresAt")
	expired, err = s.ClaimExpiredRequests(ctx, repeat, 10, nil)
	require.NoError(t, err)
	r.Status = sa.RequestExpired
	require.Equal(t, []sa.AccessRequest{r}, expired)

	// Events: recorded in the gap and the repeated hour, read back and
	// verified.
	require.NoError(t, s.Record(ctx, ev(gap)))
	require.NoError(t, s.Record(ctx, ev(repeat)))
	evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant, Order: sa.AuditByChain})
	require.NoError(t, err)
	var times []time.Time
	for _, e := range evs {
		times = append(times, e.Time)
	}
	require.Equal(t, []time.Time{gap, repeat, gap, gap, repeat}, times)
	evs, err = s.Events(ctx, sa.AuditFilter{TenantID: tenant, Since: gap, Until: gap.Add(time.Microsecond)})
	require.NoError(t, err)
	require.Len(t, evs, 3, "the events at gap")
	m, err := sa.NewManager(s)
	require.NoError(t, err)
	rep, err := m.VerifyAudit(ctx, tenant)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%+v", rep.Break)
}

func containsByte(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

// TestDriverErrorsAreWrapped: a database error reaches the caller wrapped
// with the operation, and a missing table is not reported as "not found".
func TestDriverErrorsAreWrapped(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		s := unmigrated(t, db, d)
		_, err := s.GetGrant(context.Background(), uuid.New())
		require.Error(t, err)
		require.False(t, errors.Is(err, sa.ErrNotFound), "no table is a failure, not a missing grant")
		require.Contains(t, err.Error(), "sqlstore: get grant")
	})
}

func TestRecordRefusesEventWithoutTime(t *testing.T) {
	s := sqltest.NewStore(t, sqlstore.SQLite)
	err := s.Record(context.Background(), sa.Event{ID: uuid.New(), TenantID: "acme", Type: sa.EventSupportRequest, Actor: storetest.Support})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// TestFindActiveGrantMatchesGranteesExactly: the query's grantee test
// matches whole elements only — no prefixes, suffixes, neighbours joined
// across the separator, escapes or case folding — and an empty non-nil
// list is open to everyone, like a nil one.
func TestFindActiveGrantMatchesGranteesExactly(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		s := sqltest.NewStore(t, d)
		ctx := context.Background()
		now := fixtureNow
		add := func(tenant string, grantees []string) sa.Grant {
			g := sa.Grant{ID: uuid.New(), TenantID: tenant, Grantees: grantees, Scopes: []sa.Scope{sa.ScopeRead},
				GrantedBy: storetest.Customer, CreatedAt: now, StartsAt: now}
			require.NoError(t, s.CreateGrant(ctx, g, nil))
			return g
		}
		named := add("acme", []string{"ann@v.example", "bob@v.example", `c\d`, "e\nf"})
		for _, p := range []string{"ann@v.example", "bob@v.example", `c\d`, "e\nf"} {
			got, err := s.FindActiveGrant(ctx, "acme", p, sa.ScopeRead, now)
			require.NoError(t, err, "%q", p)
			require.Equal(t, named.ID, got.ID)
		}
		for _, p := range []string{"ann", "nn@v.example", "ann@v.example\nbob@v.example", "ANN@v.example", `c`, `d`, "e", "f",
			`c\\d`, `e\nf`, "ann@v.example ", "%", "_nn@v.example", ""} {
			_, err := s.FindActiveGrant(ctx, "acme", p, sa.ScopeRead, now)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, "%q", p)
		}
		empty := add("globex", []string{})
		got, err := s.FindActiveGrant(ctx, "globex", "anyone@v.example", sa.ScopeRead, now)
		require.NoError(t, err)
		require.Equal(t, empty.ID, got.ID)
		require.NotNil(t, got.Grantees, "an empty list stays empty, not nil")
		blank := add("initech", []string{""})
		got, err = s.FindActiveGrant(ctx, "initech", "", sa.ScopeRead, now)
		require.NoError(t, err)
		require.Equal(t, blank.ID, got.ID)
		_, err = s.FindActiveGrant(ctx, "initech", "x", sa.ScopeRead, now)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	})
}

// TestSmallPoolNoDeadlock: with a pool of two connections and a fresh
// store (nothing prepared yet), eight concurrent writers finish — a
// transaction never waits for a second connection of the pool.
func TestSmallPoolNoDeadlock(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		db := sqltest.Open(t, d)
		db.SetMaxOpenConns(2)
		s := sqltest.NewStoreOn(t, db, d)
		m, err := sa.NewManager(s)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 3; i++ {
					g, err := m.Grant(ctx, sa.GrantInput{TenantID: fmt.Sprint("t", w%3), By: storetest.Customer})
					if err == nil {
						_, err = m.Revoke(ctx, g.ID, storetest.Customer, "")
					}
					if err == nil {
						_, err = m.Sweep(ctx)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})
}
