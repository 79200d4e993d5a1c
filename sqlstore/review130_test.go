package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 130: sqlstore under database semantics (collations, character
// sets, time zones, limits) and concurrency (replicas racing on one
// database, a transaction failing half-way).

// r130Grant is a grant of tenant stored directly (no Manager), active from
// at for an hour.
func r130Grant(tenant string, at time.Time, grantees ...string) sa.Grant {
	at = at.UTC().Truncate(time.Microsecond)
	return sa.Grant{ID: uuid.New(), TenantID: tenant, Grantees: grantees, Scopes: []sa.Scope{sa.ScopeRead},
		Reason: "case 1", TicketRef: "T-1", GrantedBy: storetest.Customer,
		CreatedAt: at, StartsAt: at, ExpiresAt: at.Add(time.Hour)}
}

// r130Event is an event of tenant at time at.
func r130Event(tenant string, at time.Time, actor sa.Actor) sa.Event {
	return sa.Event{ID: uuid.New(), Time: at.UTC().Truncate(time.Microsecond), Type: sa.EventGrantCreated,
		TenantID: tenant, Actor: actor, Reason: "r"}
}

// r130Open opens d's test database with extra DSN parameters (PostgreSQL:
// URL query; MySQL: DSN query), skipping like sqltest.Open.
func r130Open(t *testing.T, d sqlstore.Dialect, params string) *sql.DB {
	t.Helper()
	sqltest.Open(t, d) // skips or fails with the how-to message
	base := sqltest.DSN(d)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	db, err := sql.Open(sqltest.DriverName(d), base+sep+params)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestReview130LookalikeTenantsStaySeparate attacks tenant isolation
// through the databases' comparison rules: MariaDB's server collation here
// is utf8mb4_general_ci, which folds case and accents, pads trailing spaces
// and weighs every 4-byte character alike; PostgreSQL's default collation
// may be a linguistic one. If any identifier column compared that way,
// tenant "ACME", "acme ", "acmé", "ａｃｍｅ" or "acme😁" would reach the
// grants, requests, audit events or chain of "acme" / "acme😀"
// (SECURITY.md: "Tenant and principal IDs compare byte for byte"). Called
// on the store directly, so that no Manager re-check hides what the SQL
// selects; each look-alike also gets a chain head of its own (a
// case-insensitive primary key would collide or share one chain).
func TestReview130LookalikeTenantsStaySeparate(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			s := sqltest.NewStore(t, d)
			ctx := context.Background()
			now := storetest.Epoch
			for _, tenant := range []string{"acme", "acme😀"} {
				g := r130Grant(tenant, now, "Alice@vendor.example")
				ev := r130Event(tenant, now, storetest.Customer)
				ev.GrantID = g.ID
				require.NoError(t, s.CreateGrant(ctx, g, []sa.Event{ev}))
			}
			looks := []string{"ACME", "Acme", "acme ", "acmé", "ａｃｍｅ", "acme\u200b", "acme😁", "acme?", "acme\ufffd", " acme"}
			for _, tenant := range looks {
				_, err := s.FindActiveGrant(ctx, tenant, "Alice@vendor.example", sa.ScopeRead, now)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant, "Check of %q", tenant)
				gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: tenant}, now)
				require.NoError(t, err)
				require.Empty(t, gs, "ListGrants of %q", tenant)
				evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant})
				require.NoError(t, err)
				require.Empty(t, evs, "Events of %q", tenant)
				st, err := s.AuditChain(ctx, tenant)
				require.NoError(t, err)
				require.Zero(t, st.Head.Seq, "chain head of %q", tenant)
				// A chain of its own: the first event of the look-alike
				// is seq 1, whatever "acme" holds.
				require.NoError(t, s.Record(ctx, r130Event(tenant, now, storetest.Customer)), "Record for %q", tenant)
				st, err = s.AuditChain(ctx, tenant)
				require.NoError(t, err)
				require.Equal(t, int64(1), st.Head.Seq, "chain of %q", tenant)
			}
			// Principals: case, padding and 4-byte characters.
			for _, p := range []string{"alice@vendor.example", "ALICE@VENDOR.EXAMPLE", "Alice@vendor.example ", "Alicé@vendor.example"} {
				_, err := s.FindActiveGrant(ctx, "acme", p, sa.ScopeRead, now)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant, "principal %q", p)
			}
			// The genuine tenants are untouched: one event each, chain
			// intact, grant active.
			for _, tenant := range []string{"acme", "acme😀"} {
				st, err := s.AuditChain(ctx, tenant)
				require.NoError(t, err)
				require.Equal(t, int64(1), st.Head.Seq, tenant)
				evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant})
				require.NoError(t, err)
				require.Len(t, evs, 1)
				require.Equal(t, tenant, evs[0].TenantID)
				g, err := s.FindActiveGrant(ctx, tenant, "Alice@vendor.example", sa.ScopeRead, now)
				require.NoError(t, err)
				require.Equal(t, tenant, g.TenantID)
			}
			// Purging a look-alike's trail leaves "acme"'s alone.
			m, err := sa.NewManager(s, sa.WithNow(func() time.Time { return now.Add(2 * time.Hour) }))
			require.NoError(t, err)
			_, err = m.PurgeAudit(ctx, "ACME", now.Add(time.Hour))
			require.NoError(t, err)
			evs, err := s.Events(ctx, sa.AuditFilter{TenantID: "acme"})
			require.NoError(t, err)
			require.Len(t, evs, 1, "acme's events survive a purge of ACME")

			// Through the Manager: RevokeTenant and RevokeTicket of a
			// look-alike revoke nothing of "acme".
			m, err = sa.NewManager(s, sa.WithNow(func() time.Time { return now }))
			require.NoError(t, err)
			for _, tenant := range []string{"ACME", "acmé", "ａｃｍｅ"} {
				out, err := m.RevokeTenant(ctx, tenant, storetest.Customer, "r")
				require.NoError(t, err)
				require.Empty(t, out, "RevokeTenant(%q)", tenant)
				out, err = m.RevokeTicket(ctx, tenant, "T-1", storetest.Customer, "r")
				require.NoError(t, err)
				require.Empty(t, out, "RevokeTicket(%q)", tenant)
			}
			out, err := m.RevokeTicket(ctx, "acme", "t-1", storetest.Customer, "r")
			require.NoError(t, err)
			require.Empty(t, out, "ticket refs compare byte for byte")
			_, err = m.Check(ctx, "acme", "Alice@vendor.example", sa.ScopeRead)
			require.NoError(t, err, "acme keeps its access")
			rep, err := verifyStore(ctx, s)
			require.NoError(t, err)
			require.True(t, rep.OK(), "%+v", rep.Break)
		})
	}
}

// TestReview130FilterValuesCompareExactly: the filters of Events
// (ActorID, SessionID, Types), ListGrants (TicketRef) and ListRequests
// (RequestedBy, TicketRef) must select exactly the stored bytes, not a
// collation's equivalents (a case-folded actor, a padded session ID, an
// emoji weighed like another): an audit query for one support engineer
// must not list another's actions (SECURITY.md "compare byte for byte";
// DESIGN.md: the trail is queryable by actor kind, event type …).
func TestReview130FilterValuesCompareExactly(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			s := sqltest.NewStore(t, d)
			ctx := context.Background()
			now := storetest.Epoch
			eve := sa.Actor{Kind: sa.ActorSupport, ID: "eve😀@vendor.example", Name: "Eve"}
			ev := r130Event("acme", now, eve)
			ev.Type = "support.request"
			ev.Attrs = map[string]string{sa.AttrSessionID: "Sess-1😀"}
			require.NoError(t, s.Record(ctx, ev))
			g := r130Grant("acme", now)
			g.TicketRef = "Tkt-😀"
			require.NoError(t, s.CreateGrant(ctx, g, nil))

			for _, f := range []sa.AuditFilter{
				{ActorID: "EVE😀@vendor.example"}, {ActorID: "eve😁@vendor.example"}, {ActorID: "eve😀@vendor.example "},
				{ActorID: "eve?@vendor.example"}, {SessionID: "sess-1😀"}, {SessionID: "Sess-1😀 "}, {SessionID: "Sess-1😁"},
				{Types: []sa.EventType{"SUPPORT.REQUEST"}}, {Types: []sa.EventType{"support.request "}},
				{ActorKind: "SUPPORT"}, {ActorKind: "support "},
			} {
				evs, err := s.Events(ctx, f)
				require.NoError(t, err)
				require.Empty(t, evs, "filter %+v", f)
			}
			evs, err := s.Events(ctx, sa.AuditFilter{ActorID: eve.ID, SessionID: "Sess-1😀", ActorKind: sa.ActorSupport})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.Equal(t, eve, evs[0].Actor)
			require.Equal(t, "Sess-1😀", evs[0].Attrs[sa.AttrSessionID])

			for _, ref := range []string{"tkt-😀", "Tkt-😁", "Tkt-😀 ", "Tkt-?"} {
				gs, err := s.ListGrants(ctx, sa.ListFilter{TicketRef: ref}, now)
				require.NoError(t, err)
				require.Empty(t, gs, "ticket %q", ref)
			}
			gs, err := s.ListGrants(ctx, sa.ListFilter{TicketRef: "Tkt-😀"}, now)
			require.NoError(t, err)
			require.Len(t, gs, 1)

			r := sa.AccessRequest{ID: uuid.New(), TenantID: "acme", RequestedBy: eve, Duration: time.Hour,
				Reason: "why", TicketRef: "Tkt-😀", Status: sa.RequestPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			require.NoError(t, s.CreateRequest(ctx, r, nil))
			for _, f := range []sa.RequestFilter{
				{TenantID: "ACME"}, {TenantID: "acme "}, {RequestedBy: "EVE😀@vendor.example"}, {RequestedBy: "eve😁@vendor.example"},
				{TicketRef: "tkt-😀"}, {TicketRef: "Tkt-😀 "},
			} {
				rs, err := s.ListRequests(ctx, f, now)
				require.NoError(t, err)
				require.Empty(t, rs, "request filter %+v", f)
			}
			rs, err := s.ListRequests(ctx, sa.RequestFilter{TenantID: "acme", RequestedBy: eve.ID, TicketRef: "Tkt-😀"}, now)
			require.NoError(t, err)
			require.Len(t, rs, 1)
		})
	}
}

// TestReview130ExactBytesAtTheLimits: values at the widths every store
// keeps (internal/stored: 512-byte tenant IDs and ticket refs, 1280-byte
// actor IDs, 1000-character names, 65535-byte reasons), written with
// 4-byte characters so that a utf8mb3 or character-counted column would
// cut or mangle them, and with characters MySQL's lenient modes would
// replace, must come back byte for byte from every backend (DESIGN.md:
// "every backend returns what it was given"); one byte more is refused
// with ErrInvalidInput before anything is stored.
func TestReview130ExactBytesAtTheLimits(t *testing.T) {
	emoji := func(n int) string { return strings.Repeat("😀", n) } // 4 bytes each
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			s := sqltest.NewStore(t, d)
			ctx := context.Background()
			now := storetest.Epoch.Truncate(time.Microsecond)
			tenant := emoji(128)                             // 512 bytes
			reason := emoji(16383) + "abc"                   // 65535 bytes
			name := emoji(1000)                              // 1000 characters, 4000 bytes
			actorID := emoji(320)                            // 1280 bytes
			grantees := []string{emoji(80) + "\\n\n", "a\\"} // escapes of the list codec
			g := r130Grant(tenant, now, grantees...)
			g.Reason = reason
			g.TicketRef = "T" + emoji(127) + "xyz" // 512 bytes
			g.GrantedBy = sa.Actor{Kind: sa.ActorCustomer, ID: actorID, Name: name}
			g.Scopes = []sa.Scope{"messages:read😀", sa.ScopeRead}
			ev := sa.Event{ID: uuid.New(), Time: now, Type: sa.EventGrantCreated, TenantID: tenant, GrantID: g.ID,
				Actor: g.GrantedBy, Reason: reason, Attrs: map[string]string{sa.AttrSessionID: emoji(320), "k😀\n": "v\\\n😀"},
				Before: []byte(`{"a":"😀"}`), After: []byte(`{"a":"\u0000"}`)}
			require.NoError(t, s.CreateGrant(ctx, g, []sa.Event{ev}))
			got, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			require.True(t, r130Same(g, got), "grant changed by the round trip")
			found, err := s.FindActiveGrant(ctx, tenant, grantees[0], sa.ScopeRead, now)
			require.NoError(t, err)
			require.Equal(t, g.ID, found.ID)
			_, err = s.FindActiveGrant(ctx, tenant, emoji(80)+"\\n", sa.ScopeRead, now)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, "an element's prefix is not the element")
			evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant, SessionID: emoji(320)})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			want := ev
			want.Seq, want.Hash = 1, evs[0].Hash
			require.True(t, r130Same(want, evs[0]), "event changed by the round trip")

			// The same values through Record (PostgreSQL's one-statement
			// append, MySQL's procedure, whose parameters have widths of
			// their own): the cached head exists after CreateGrant.
			ev2 := ev
			ev2.ID = uuid.New()
			require.NoError(t, s.Record(ctx, ev2))
			evs, err = s.Events(ctx, sa.AuditFilter{TenantID: tenant})
			require.NoError(t, err)
			require.Len(t, evs, 2)
			want2 := ev2
			want2.Seq = 2
			want2.Hash = want2.ChainHash(evs[0].Hash)
			require.True(t, r130Same(want2, evs[1]), "event changed by Record's round trip")

			// One byte more: refused, nothing stored.
			for name, mut := range map[string]func(g *sa.Grant){
				"tenant":  func(g *sa.Grant) { g.TenantID += "x" },
				"ticket":  func(g *sa.Grant) { g.TicketRef += "x" },
				"reason":  func(g *sa.Grant) { g.Reason += "x" },
				"actorID": func(g *sa.Grant) { g.GrantedBy.ID += "x" },
				"name":    func(g *sa.Grant) { g.GrantedBy.Name += "x" },
			} {
				g2 := r130Grant("acme-limits", now)
				g2.TenantID, g2.TicketRef, g2.Reason, g2.GrantedBy = g.TenantID, g.TicketRef, g.Reason, g.GrantedBy
				mut(&g2)
				err := s.CreateGrant(ctx, g2, []sa.Event{r130Event("acme-limits", now, storetest.Customer)})
				require.ErrorIs(t, err, sa.ErrInvalidInput, name)
				_, err = s.GetGrant(ctx, g2.ID)
				require.ErrorIs(t, err, sa.ErrNotFound, name)
			}
			evs, err = s.Events(ctx, sa.AuditFilter{TenantID: "acme-limits"})
			require.NoError(t, err)
			require.Empty(t, evs)
		})
	}
}

// r130Same reports whether a and b are equal (without printing values of
// tens of kilobytes on failure).
func r130Same[T any](a, b T) bool { return reflect.DeepEqual(a, b) }

// TestReview130UnkeepableTextChangesNothing: a direct store call with
// text a backend cannot keep as given (a NUL byte, which PostgreSQL text
// cannot hold; invalid UTF-8, which utf8mb4 columns refuse) either keeps
// it byte for byte or fails with ErrInvalidInput — and then stores
// neither the change nor any of its events (DESIGN.md: "a grant whose
// audit event cannot be written is not created"; "in sqlstore a state
// change and its audit event commit in one transaction"). The bad text is
// in the event, not the grant, so the grant's own INSERT succeeds first.
func TestReview130UnkeepableTextChangesNothing(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			s := sqltest.NewStore(t, d)
			ctx := context.Background()
			now := storetest.Epoch
			for _, bad := range []string{"nul\x00byte", "bad\xff\xfeutf8", "half\xf0\x9f\x98"} {
				g := r130Grant("acme", now)
				ok := r130Event("acme", now, storetest.Customer)
				ev := r130Event("acme", now, storetest.Customer)
				ev.Reason = bad
				err := s.CreateGrant(ctx, g, []sa.Event{ok, ev})
				if err != nil {
					require.ErrorIs(t, err, sa.ErrInvalidInput, "%q: %v", bad, err)
					_, gerr := s.GetGrant(ctx, g.ID)
					require.ErrorIs(t, gerr, sa.ErrNotFound, "%q: grant stored without its events", bad)
					evs, eerr := s.Events(ctx, sa.AuditFilter{GrantID: g.ID})
					require.NoError(t, eerr)
					require.Empty(t, evs)
				} else {
					evs, eerr := s.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventGrantCreated}})
					require.NoError(t, eerr)
					var kept bool
					for _, e := range evs {
						if e.ID == ev.ID {
							require.Equal(t, bad, e.Reason, "kept byte for byte")
							kept = true
						}
					}
					require.True(t, kept)
				}

				// An update whose event cannot be kept leaves the grant as
				// it was.
				g2 := r130Grant("acme", now)
				require.NoError(t, s.CreateGrant(ctx, g2, nil))
				_, err = s.UpdateGrant(ctx, g2.ID, func(cur *sa.Grant) ([]sa.Event, error) {
					cur.RevokedAt, cur.RevokedBy, cur.RevokeReason = now, storetest.Customer, "done"
					e := r130Event("acme", now, storetest.Customer)
					e.Type, e.GrantID = sa.EventGrantRevoked, cur.ID
					e.Attrs = map[string]string{"path": bad}
					return []sa.Event{e}, nil
				})
				after, gerr := s.GetGrant(ctx, g2.ID)
				require.NoError(t, gerr)
				if err != nil {
					require.ErrorIs(t, err, sa.ErrInvalidInput, "%q: %v", bad, err)
					require.True(t, after.RevokedAt.IsZero(), "%q: revocation stored without its event", bad)
					_, ferr := s.FindActiveGrant(ctx, "acme", "x", sa.ScopeRead, now)
					require.NoError(t, ferr)
				} else {
					require.False(t, after.RevokedAt.IsZero())
					evs, eerr := s.Events(ctx, sa.AuditFilter{GrantID: g2.ID})
					require.NoError(t, eerr)
					require.Len(t, evs, 1)
					require.Equal(t, bad, evs[0].Attrs["path"])
				}
			}
			rep, err := verifyStore(ctx, s)
			require.NoError(t, err)
			require.True(t, rep.OK(), "%+v", rep.Break)
		})
	}
}

// verifyStore verifies the chain of every tenant with events in s through
// a Manager, and returns the first report that is not OK (or the last).
func verifyStore(ctx context.Context, s sa.Store) (sa.VerifyReport, error) {
	m, err := sa.NewManager(s)
	if err != nil {
		return sa.VerifyReport{}, err
	}
	evs, err := m.Events(ctx, sa.AuditFilter{})
	if err != nil {
		return sa.VerifyReport{}, err
	}
	seen := map[string]bool{}
	var rep sa.VerifyReport
	for _, e := range evs {
		if seen[e.TenantID] {
			continue
		}
		seen[e.TenantID] = true
		if rep, err = m.VerifyAudit(ctx, e.TenantID); err != nil || !rep.OK() {
			return rep, err
		}
	}
	return rep, nil
}

// TestReview130SessionTimeZonesDoNotMoveWindows: the host's database
// session may run in any time zone — PostgreSQL's TimeZone (far from UTC,
// with a 45-minute offset, or one whose historical offsets have seconds),
// with pgx's binary or simple protocol; MySQL's time_zone — and that must
// not change which grants are active at a microsecond, what is stored, or
// which events a time range selects (DESIGN.md: "Times are UTC";
// "Expiry … happens at ExpiresAt to the microsecond"). A second replica
// on a UTC session shares the tables: both must answer alike.
func TestReview130SessionTimeZonesDoNotMoveWindows(t *testing.T) {
	cases := []struct {
		d      sqlstore.Dialect
		params string
	}{
		{sqlstore.Postgres, "timezone=Pacific%2FChatham"},
		{sqlstore.Postgres, "timezone=Pacific%2FChatham&default_query_exec_mode=simple_protocol"},
		{sqlstore.Postgres, "timezone=Europe%2FAmsterdam&default_query_exec_mode=simple_protocol"},
		{sqlstore.Postgres, "timezone=America%2FSt_Johns&default_query_exec_mode=exec"},
		{sqlstore.MySQL, "time_zone=%27%2B12%3A45%27"},
		{sqlstore.MySQL, "time_zone=%27-11%3A00%27&interpolateParams=true&parseTime=true&loc=Pacific%2FChatham"},
	}
	for _, c := range cases {
		t.Run(c.d.String()+"/"+c.params, func(t *testing.T) {
			ctx := context.Background()
			zdb := r130Open(t, c.d, c.params)
			zs := sqltest.NewStoreOn(t, zdb, c.d)
			us, err := sqlstore.New(sqltest.Open(t, c.d), c.d, sqlstore.WithTablePrefix(zs.TablePrefix()))
			require.NoError(t, err)
			t.Cleanup(func() { _ = us.Close() })

			clock := storetest.NewClock(storetest.Epoch)
			zm, err := sa.NewManager(zs, sa.WithNow(clock.Now))
			require.NoError(t, err)
			um, err := sa.NewManager(us, sa.WithNow(clock.Now))
			require.NoError(t, err)
			g, err := zm.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: 24 * time.Hour,
				StartsAt: storetest.Epoch.Add(time.Hour), Reason: "tz"})
			require.NoError(t, err)
			for _, s := range []*sqlstore.Store{zs, us} {
				got, err := s.GetGrant(ctx, g.ID)
				require.NoError(t, err)
				require.Equal(t, g, got)
				require.Equal(t, time.UTC, got.ExpiresAt.Location())
			}
			for _, at := range []struct {
				t      time.Time
				active bool
			}{
				{g.StartsAt.Add(-time.Microsecond), false}, {g.StartsAt, true},
				{g.ExpiresAt.Add(-time.Microsecond), true}, {g.ExpiresAt, false},
			} {
				clock.Set(at.t)
				for i, m := range []*sa.Manager{zm, um} {
					_, err := m.Check(ctx, "acme", "anyone@vendor.example", sa.ScopeRead)
					if at.active {
						require.NoError(t, err, "replica %d at %v", i, at.t)
					} else {
						require.ErrorIs(t, err, sa.ErrNoActiveGrant, "replica %d at %v", i, at.t)
					}
					gs, err := m.List(ctx, sa.ListFilter{TenantID: "acme", Statuses: []sa.Status{sa.StatusActive}})
					require.NoError(t, err)
					require.Len(t, gs, map[bool]int{true: 1, false: 0}[at.active], "replica %d List at %v", i, at.t)
				}
			}
			// Sweep in the shifted zone records the start and the expiry
			// exactly at their microseconds, not an offset away.
			clock.Set(g.StartsAt.Add(-time.Microsecond))
			n, err := zm.Sweep(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "nothing due a microsecond before the start")
			clock.Set(g.ExpiresAt.Add(-time.Microsecond))
			_, err = zm.Sweep(ctx)
			require.NoError(t, err)
			evs, err := zm.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventGrantExpired}})
			require.NoError(t, err)
			require.Empty(t, evs, "no expiry a microsecond early")
			clock.Set(g.ExpiresAt)
			_, err = zm.Sweep(ctx)
			require.NoError(t, err)
			evs, err = um.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventGrantExpired}})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.True(t, evs[0].Time.Equal(g.ExpiresAt), "expiry at %v, grant ends %v", evs[0].Time, g.ExpiresAt)
			// Time ranges select the same events from both sessions.
			all, err := zm.Events(ctx, sa.AuditFilter{TenantID: "acme"})
			require.NoError(t, err)
			for _, e := range all {
				for i, s := range []*sqlstore.Store{zs, us} {
					got, err := s.Events(ctx, sa.AuditFilter{TenantID: "acme", Since: e.Time, Until: e.Time.Add(time.Microsecond)})
					require.NoError(t, err)
					var ids []uuid.UUID
					for _, x := range got {
						ids = append(ids, x.ID)
						require.True(t, x.Time.Equal(e.Time))
					}
					require.Contains(t, ids, e.ID, "replica %d, event at %v", i, e.Time)
				}
			}
			rep, err := um.VerifyAudit(ctx, "acme")
			require.NoError(t, err)
			require.True(t, rep.OK(), "%+v", rep.Break)

			// Times far from now (a direct store call may store them),
			// where the zone's offset had seconds (Amsterdam's LMT) or
			// the calendar reform happened.
			for _, at := range []time.Time{
				time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1582, 10, 10, 12, 0, 0, 1000, time.UTC),
				time.Date(1900, 1, 1, 0, 0, 0, 999_999_000, time.UTC), time.Date(9999, 12, 31, 22, 59, 59, 999_999_000, time.UTC),
			} {
				old := r130Grant("old", at)
				require.NoError(t, zs.CreateGrant(ctx, old, []sa.Event{r130Event("old", at, storetest.Customer)}))
				for i, s := range []*sqlstore.Store{zs, us} {
					got, err := s.GetGrant(ctx, old.ID)
					require.NoError(t, err, "replica %d at %v", i, at)
					require.Equal(t, old, got, "replica %d at %v", i, at)
					_, err = s.FindActiveGrant(ctx, "old", "x", sa.ScopeRead, at)
					require.NoError(t, err, "replica %d active at its start %v", i, at)
					_, err = s.FindActiveGrant(ctx, "old", "x", sa.ScopeRead, at.Add(-time.Microsecond))
					require.ErrorIs(t, err, sa.ErrNoActiveGrant, "replica %d before %v", i, at)
				}
			}
			oldEvs, err := zs.Events(ctx, sa.AuditFilter{TenantID: "old"})
			require.NoError(t, err)
			rep, err = um.VerifyAudit(ctx, "old")
			require.NoError(t, err)
			require.True(t, rep.OK(), "%+v", rep.Break)
			require.Len(t, oldEvs, 4)
		})
	}
}

// TestReview130InjectionThroughClientSideInterpolation: with
// go-sql-driver's interpolateParams=true the arguments are spliced into
// the SQL text by the client (escaping backslashes unless the server says
// NO_BACKSLASH_ESCAPES), and with pgx's simple protocol likewise; a
// tenant or filter value shaped as SQL must still be one value, never
// select another tenant's rows or change any (SECURITY.md: "Every SQL
// value is a bound parameter"). NO_BACKSLASH_ESCAPES set by the DSN flips
// the escaping mid-connection.
func TestReview130InjectionThroughClientSideInterpolation(t *testing.T) {
	cases := []struct {
		d      sqlstore.Dialect
		params string
	}{
		{sqlstore.MySQL, "interpolateParams=true"},
		{sqlstore.MySQL, "interpolateParams=true&sql_mode=%27STRICT_TRANS_TABLES%2CNO_BACKSLASH_ESCAPES%27"},
		{sqlstore.Postgres, "default_query_exec_mode=simple_protocol"},
	}
	evil := []string{
		`x' OR '1'='1`, `x\' OR 1=1 -- `, `x\\' OR 1=1 #`, `acme' -- `, `'); DELETE FROM grants; --`,
		"x\\", `x" OR "1"="1`, `$1`, `?`, `{p}grants`, `acme\`,
	}
	for _, c := range cases {
		t.Run(c.d.String()+"/"+c.params, func(t *testing.T) {
			ctx := context.Background()
			s := sqltest.NewStoreOn(t, r130Open(t, c.d, c.params), c.d)
			now := storetest.Epoch
			victim := r130Grant("acme", now)
			require.NoError(t, s.CreateGrant(ctx, victim, []sa.Event{r130Event("acme", now, storetest.Customer)}))
			for _, v := range evil {
				_, err := s.FindActiveGrant(ctx, v, v, sa.ScopeRead, now)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant, "%q", v)
				gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: v, TicketRef: v}, now)
				require.NoError(t, err)
				require.Empty(t, gs, "%q", v)
				evs, err := s.Events(ctx, sa.AuditFilter{TenantID: v, ActorID: v, SessionID: v, Types: []sa.EventType{sa.EventType(v)}})
				require.NoError(t, err)
				require.Empty(t, evs, "%q", v)
				_, err = s.Events(ctx, sa.AuditFilter{After: &sa.AuditCursor{TenantID: v, Seq: 0, Time: now}})
				require.NoError(t, err)
				// Store the value everywhere and read it back.
				g := r130Grant(v, now, v)
				g.TicketRef, g.Reason = v, v
				ev := r130Event(v, now, sa.Actor{Kind: sa.ActorSupport, ID: v, Name: v})
				ev.Attrs = map[string]string{sa.AttrSessionID: v, v: v}
				require.NoError(t, s.CreateGrant(ctx, g, []sa.Event{ev}), "%q", v)
				got, err := s.GetGrant(ctx, g.ID)
				require.NoError(t, err)
				require.Equal(t, g, got)
				f, err := s.FindActiveGrant(ctx, v, v, sa.ScopeRead, now)
				require.NoError(t, err)
				require.Equal(t, g.ID, f.ID)
				evs, err = s.Events(ctx, sa.AuditFilter{TenantID: v, ActorID: v, SessionID: v})
				require.NoError(t, err)
				require.Len(t, evs, 1, "%q", v)
				require.Equal(t, v, evs[0].Attrs[v])
				require.NoError(t, s.Record(ctx, ev2(ev)), "%q", v)
			}
			got, err := s.GetGrant(ctx, victim.ID)
			require.NoError(t, err)
			require.Equal(t, victim, got)
			gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, now)
			require.NoError(t, err)
			require.Len(t, gs, 1)
			rep, err := verifyStore(ctx, s)
			require.NoError(t, err)
			require.True(t, rep.OK(), "%+v", rep.Break)
		})
	}
}

// ev2 is e again under a new ID.
func ev2(e sa.Event) sa.Event { e.ID = uuid.New(); return e }

// r130Replicas returns three stores on one database through separate
// r130Managers returns a Manager on each replica, all on one injected
// clock at storetest.Epoch, and the clock.
func r130Managers(t *testing.T, rs []*sqlstore.Store) ([]*sa.Manager, *storetest.Clock) {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	ms := make([]*sa.Manager, len(rs))
	for i, s := range rs {
		m, err := sa.NewManager(s, sa.WithNow(clock.Now))
		require.NoError(t, err)
		ms[i] = m
	}
	return ms, clock
}

// pools (SQLite: three handles on one file).
func r130Replicas(t *testing.T, d sqlstore.Dialect) []*sqlstore.Store {
	t.Helper()
	open := func(t testing.TB, d sqlstore.Dialect) *sql.DB { return sqltest.Open(t, d) }
	if d == sqlstore.SQLite {
		path := filepath.Join(t.TempDir(), "r130.db")
		open = func(t testing.TB, _ sqlstore.Dialect) *sql.DB { return sqltest.OpenSQLite(t, path) }
	}
	a := sqltest.NewStoreOn(t, open(t, d), d)
	out := []*sqlstore.Store{a}
	for range 2 {
		b, err := sqlstore.New(open(t, d), d, sqlstore.WithTablePrefix(a.TablePrefix()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		out = append(out, b)
	}
	return out
}

// TestReview130RevokeRacesExtendAcrossReplicas: replica A revokes a grant
// while replicas B and C extend it and B, C check it, on one database.
// Promises: Revoke is immediate on every replica (no Check that starts
// after Revoke returned allows); a revocation is never undone or outlived
// by a later Extend (the stored grant stays revoked with its revoker);
// exactly one grant.revoked event even when two replicas revoke at once;
// one grant.extended event per Extend that succeeded (no change without
// its event, no event without its change); the chain verifies.
func TestReview130RevokeRacesExtendAcrossReplicas(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			rs := r130Replicas(t, d)
			ms, _ := r130Managers(t, rs)
			const rounds = 6
			for round := range rounds {
				g, err := ms[0].Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: 24 * time.Hour, Reason: "race"})
				require.NoError(t, err)
				var extended atomic.Int64
				var revokedAt atomic.Pointer[time.Time] // monotonic time Revoke returned
				var wg sync.WaitGroup
				errs := make(chan error, 64)
				stop := make(chan struct{})
				for i := 1; i <= 2; i++ {
					wg.Add(1)
					go func(m *sa.Manager, i int) {
						defer wg.Done()
						for k := 1; ; k++ {
							select {
							case <-stop:
								return
							default:
							}
							started := time.Now()
							_, err := m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Duration(k*10+i)*time.Minute), storetest.Customer)
							if err == nil {
								extended.Add(1)
								if p := revokedAt.Load(); p != nil && started.After(*p) {
									errs <- fmt.Errorf("replica %d extended grant %s after its revocation returned", i, g.ID)
								}
							} else if !errors.Is(err, sa.ErrInvalidInput) && !errors.Is(err, sa.ErrConflict) {
								errs <- fmt.Errorf("extend: %w", err)
							}
							started = time.Now()
							_, err = m.Check(ctx, "acme", "x@vendor.example", sa.ScopeRead)
							if err == nil {
								if p := revokedAt.Load(); p != nil && started.After(*p) {
									errs <- fmt.Errorf("replica %d allowed after the revocation returned", i)
								}
							} else if !errors.Is(err, sa.ErrNoActiveGrant) {
								errs <- fmt.Errorf("check: %w", err)
							}
						}
					}(ms[i], i)
				}
				time.Sleep(time.Duration(5+round*3) * time.Millisecond) // let the extensions run first
				var revokes sync.WaitGroup
				var revokedOK atomic.Int64
				for _, m := range []*sa.Manager{ms[0], ms[2]} {
					revokes.Add(1)
					go func() {
						defer revokes.Done()
						_, err := m.Revoke(ctx, g.ID, storetest.Customer, "stop")
						if err == nil {
							revokedOK.Add(1)
							now := time.Now()
							revokedAt.CompareAndSwap(nil, &now)
						} else if !errors.Is(err, sa.ErrInvalidInput) && !errors.Is(err, sa.ErrConflict) {
							errs <- fmt.Errorf("revoke: %w", err)
						}
					}()
				}
				revokes.Wait()
				time.Sleep(20 * time.Millisecond) // checks and extends after the revocation
				close(stop)
				wg.Wait()
				close(errs)
				for err := range errs {
					require.NoError(t, err)
				}
				require.Equal(t, int64(1), revokedOK.Load(), "exactly one Revoke succeeds")
				for i, s := range rs {
					got, err := s.GetGrant(ctx, g.ID)
					require.NoError(t, err)
					require.False(t, got.RevokedAt.IsZero(), "replica %d: revoked", i)
					require.Equal(t, storetest.Customer, got.RevokedBy)
					_, err = ms[i].Check(ctx, "acme", "x@vendor.example", sa.ScopeRead)
					require.ErrorIs(t, err, sa.ErrNoActiveGrant)
				}
				evs, err := ms[1].Events(ctx, sa.AuditFilter{GrantID: g.ID})
				require.NoError(t, err)
				counts := map[sa.EventType]int64{}
				for _, e := range evs {
					counts[e.Type]++
				}
				require.Equal(t, int64(1), counts[sa.EventGrantRevoked], "round %d: %v", round, counts)
				require.Equal(t, extended.Load(), counts[sa.EventGrantExtended], "round %d: one event per Extend that succeeded", round)
				// No extension after the revocation in the chain.
				var seenRevoke bool
				for _, e := range evs {
					if e.Type == sa.EventGrantRevoked {
						seenRevoke = true
					}
					require.False(t, seenRevoke && e.Type == sa.EventGrantExtended, "extension chained after the revocation")
				}
			}
			rep, err := verifyStore(ctx, rs[2])
			require.NoError(t, err)
			require.True(t, rep.OK(), "%+v", rep.Break)
		})
	}
}

// TestReview130RevokeTenantRacesGrantAndRecord: replica A revokes the
// whole tenant while B grants new access and C appends support.request
// events through its own pool (PostgreSQL and MySQL: the one-statement
// compare-and-set append from a cache the other pools keep making stale).
// Promises: every grant whose Grant returned before RevokeTenant started
// is revoked when it returns; the tenant's chain never forks (Seq 1…n
// without gaps, VerifyAudit clean) across three pools; each grant's
// revocation is recorded once.
func TestReview130RevokeTenantRacesGrantAndRecord(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			rs := r130Replicas(t, d)
			ms, clock := r130Managers(t, rs)
			var mu sync.Mutex
			type created struct {
				id   uuid.UUID
				done time.Time
			}
			var grants []created
			stop := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			var records atomic.Int64
			wg.Add(2)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					g, err := ms[1].Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: 24 * time.Hour, Reason: "g"})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					grants = append(grants, created{g.ID, time.Now()})
					mu.Unlock()
				}
			}()
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := rs[2].Record(ctx, r130Event("acme", clock.Now(), storetest.Support)); err != nil {
						errs <- err
						return
					}
					records.Add(1)
				}
			}()
			for range 5 {
				time.Sleep(15 * time.Millisecond)
				start := time.Now()
				out, err := ms[0].RevokeTenant(ctx, "acme", storetest.Customer, "all")
				require.NoError(t, err)
				revoked := map[uuid.UUID]bool{}
				for _, g := range out {
					revoked[g.ID] = true
				}
				mu.Lock()
				before := append([]created(nil), grants...)
				mu.Unlock()
				for _, c := range before {
					if c.done.Before(start) {
						g, err := rs[0].GetGrant(ctx, c.id)
						require.NoError(t, err)
						require.False(t, g.RevokedAt.IsZero(), "grant %s created before RevokeTenant started survived it", c.id)
					}
				}
			}
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			_, err := ms[0].RevokeTenant(ctx, "acme", storetest.Customer, "final")
			require.NoError(t, err)
			evs, err := rs[1].Events(ctx, sa.AuditFilter{TenantID: "acme", Order: sa.AuditByChain})
			require.NoError(t, err)
			perGrant := map[uuid.UUID]int{}
			var support int64
			for i, e := range evs {
				require.Equal(t, int64(i+1), e.Seq, "chain without gaps or forks")
				if e.Type == sa.EventGrantRevoked {
					perGrant[e.GrantID]++
				}
				if e.Actor == storetest.Support {
					support++
				}
			}
			require.Equal(t, records.Load(), support, "every Record is in the chain once")
			mu.Lock()
			defer mu.Unlock()
			for _, c := range grants {
				require.Equal(t, 1, perGrant[c.id], "grant %s revoked once", c.id)
			}
			rep, err := ms[2].VerifyAudit(ctx, "acme")
			require.NoError(t, err)
			require.True(t, rep.OK(), "%+v", rep.Break)
			require.Equal(t, int64(len(evs)), rep.Events)
		})
	}
}

// TestReview130CancelledMidTransactionStoresNothing: the context of a
// Revoke ends while the store's transaction is open (inside the change
// callback, after the grant's row is locked, before the UPDATE and the
// event's INSERT); and a grant's CreateGrant whose context ends between
// statements (an event list long enough to need several INSERTs). Neither
// may leave the change without its events or the events without the
// change (DESIGN.md: "In sqlstore a state change and its audit event
// commit in one transaction"); the grant must still be usable afterwards
// (no lock left behind: a later Revoke on another replica succeeds).
func TestReview130CancelledMidTransactionStoresNothing(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			rs := r130Replicas(t, d)
			s, other := rs[0], rs[1]
			bg := context.Background()
			now := storetest.Epoch
			g := r130Grant("acme", now)
			require.NoError(t, s.CreateGrant(bg, g, nil))

			ctx, cancel := context.WithCancel(bg)
			_, err := s.UpdateGrant(ctx, g.ID, func(cur *sa.Grant) ([]sa.Event, error) {
				cur.RevokedAt, cur.RevokedBy, cur.RevokeReason = now, storetest.Customer, "x"
				cancel()
				e := r130Event("acme", now, storetest.Customer)
				e.Type, e.GrantID = sa.EventGrantRevoked, cur.ID
				return []sa.Event{e}, nil
			})
			require.Error(t, err)
			got, err := other.GetGrant(bg, g.ID)
			require.NoError(t, err)
			require.Equal(t, g, got, "nothing changed")
			evs, err := other.Events(bg, sa.AuditFilter{TenantID: "acme"})
			require.NoError(t, err)
			require.Empty(t, evs)

			lctx, lcancel := context.WithTimeout(bg, 20*time.Second)
			defer lcancel()
			_, err = other.UpdateGrant(lctx, g.ID, func(cur *sa.Grant) ([]sa.Event, error) {
				cur.RevokedAt, cur.RevokedBy, cur.RevokeReason = now, storetest.Customer, "y"
				e := r130Event("acme", now, storetest.Customer)
				e.Type, e.GrantID = sa.EventGrantRevoked, cur.ID
				return []sa.Event{e}, nil
			})
			require.NoError(t, err, "no lock left behind by the cancelled transaction")

			// CreateGrant with 450 events (three INSERTs of 200) whose
			// context dies after a few milliseconds, many times: each
			// attempt stores the grant with all its events or nothing.
			for i := range 15 {
				g := r130Grant("bulk", now)
				var events []sa.Event
				for range 450 {
					events = append(events, r130Event("bulk", now, storetest.Customer))
				}
				ctx, cancel := context.WithTimeout(bg, time.Duration(i%5+1)*time.Millisecond)
				err := s.CreateGrant(ctx, g, events)
				cancel()
				_, gerr := other.GetGrant(bg, g.ID)
				if err != nil {
					if gerr == nil {
						// The commit may have landed as the context ended.
						t.Logf("attempt %d: error %v but the grant is stored", i, err)
					} else {
						require.ErrorIs(t, gerr, sa.ErrNotFound)
					}
				} else {
					require.NoError(t, gerr)
				}
				all, err := other.Events(bg, sa.AuditFilter{TenantID: "bulk"})
				require.NoError(t, err)
				require.Zero(t, len(all)%450, "attempt %d: events of a grant stored in part (%d)", i, len(all))
				var stored int
				gs, err := other.ListGrants(bg, sa.ListFilter{TenantID: "bulk"}, now)
				require.NoError(t, err)
				stored = len(gs)
				require.Equal(t, stored*450, len(all), "attempt %d: grants and events disagree", i)
			}
			rep, err := verifyStore(bg, other)
			require.NoError(t, err)
			require.True(t, rep.OK(), "%+v", rep.Break)
		})
	}
}

// TestReview130MySQLConnectionCollationDoesNotFold: a host
// whose DSN asks for another connection collation (collation=
// utf8mb4_general_ci, the server's own default here, or a case- and
// accent-insensitive Unicode one) changes what a comparison of a bound
// string with a column of another collation means — unless the columns
// compare as bytes. Check, List, Events and RevokeTenant of "ACME" and
// "acme " must still see nothing of "acme".
func TestReview130MySQLConnectionCollationDoesNotFold(t *testing.T) {
	for _, params := range []string{
		"collation=utf8mb4_general_ci",
		"collation=utf8mb4_unicode_ci",
		"collation=utf8mb4_unicode_520_ci&interpolateParams=true",
	} {
		t.Run(params, func(t *testing.T) {
			ctx := context.Background()
			db := r130Open(t, sqlstore.MySQL, params)
			s := sqltest.NewStoreOn(t, db, sqlstore.MySQL)
			now := storetest.Epoch
			g := r130Grant("acme", now, "Ops😀@vendor.example")
			require.NoError(t, s.CreateGrant(ctx, g, []sa.Event{r130Event("acme", now, storetest.Customer)}))
			for _, tenant := range []string{"ACME", "acme ", "acmé", "ａｃｍｅ"} {
				_, err := s.FindActiveGrant(ctx, tenant, "Ops😀@vendor.example", sa.ScopeRead, now)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant, tenant)
				gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: tenant}, now)
				require.NoError(t, err)
				require.Empty(t, gs, tenant)
				evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant})
				require.NoError(t, err)
				require.Empty(t, evs, tenant)
			}
			for _, p := range []string{"ops😀@vendor.example", "Ops😁@vendor.example", "Ops?@vendor.example", "Ops😀@vendor.example "} {
				_, err := s.FindActiveGrant(ctx, "acme", p, sa.ScopeRead, now)
				require.ErrorIs(t, err, sa.ErrNoActiveGrant, p)
			}
			got, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			require.Equal(t, g, got)
		})
	}
}

// TestReview130CursorPagingAcrossCollations: keyset paging over all
// tenants compares tenant IDs in the database (tenant_id > ?) and in Go
// (the cursor's tenant against the filter's). If a database ordered them
// by a linguistic collation ("B" before "a", "é" beside "e", fullwidth
// beside ASCII, a padded "a " equal to "a") the pages would skip or repeat
// events — an audit export that silently drops support's actions
// (DESIGN.md: the trail is queryable and verifiable). Paging one event at
// a time, in chain order and in time order, must list every event exactly
// once on every backend.
func TestReview130CursorPagingAcrossCollations(t *testing.T) {
	tenants := []string{"a", "a ", "B", "b", "e", "é", "ｅ", "😀", "😁", "Z", "a😀", "a\u00a0"}
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			s := sqltest.NewStore(t, d)
			ctx := context.Background()
			now := storetest.Epoch.Truncate(time.Microsecond)
			want := map[uuid.UUID]bool{}
			for i := range 3 {
				for _, tenant := range tenants {
					e := r130Event(tenant, now.Add(time.Duration(i)*time.Second), storetest.Customer) // equal times across tenants
					require.NoError(t, s.Record(ctx, e))
					want[e.ID] = true
				}
			}
			for _, order := range []sa.AuditOrder{sa.AuditByTime, sa.AuditByChain} {
				for _, f := range []sa.AuditFilter{{Order: order}, {Order: order, TenantID: "a"}, {Order: order, TenantID: "é"}} {
					seen := map[uuid.UUID]bool{}
					var after *sa.AuditCursor
					for range 100 {
						f.After, f.Limit = after, 1
						page, err := s.Events(ctx, f)
						require.NoError(t, err)
						if len(page) == 0 {
							break
						}
						e := page[0]
						require.False(t, seen[e.ID], "order %v, filter %q: event repeated", order, f.TenantID)
						seen[e.ID] = true
						after = &sa.AuditCursor{TenantID: e.TenantID, Seq: e.Seq, Time: e.Time}
					}
					n := len(want)
					if f.TenantID != "" {
						n = 3
					}
					require.Len(t, seen, n, "order %v, filter %q: events skipped", order, f.TenantID)
				}
			}
		})
	}
}
