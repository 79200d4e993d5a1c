package supportaccess_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// Review 151: the middleware across replicas on one SQL database. Replica
// A (a Manager on its own *sql.DB) changes grants; replica B (another
// Manager on another *sql.DB of the same database, SQLite file or
// PostgreSQL/MariaDB when their DSNs are set) serves impersonated
// requests. Each test names the promise it attacks; a passing test is an
// attack that failed.

// r151Interval is B's poll interval: short, so that each test stays well
// under a second of real time.
const r151Interval = 200 * time.Millisecond

// r151Slack is "one Check" and scheduling, over the documented bounds.
const r151Slack = 200 * time.Millisecond

var errR151Down = errors.New("r151: database unreachable")

// Fault modes of a replica's database connections.
const (
	r151OK   int32 = iota
	r151Fail       // every call fails at once (connection refused)
	r151Hang       // every call waits for its context (a dead peer)
	r151Deaf       // every call waits, ignoring its context, until released
)

// r151Fault switches a replica's database between working, failing and
// hanging (every statement, prepare and transaction of the connections).
type r151Fault struct {
	mode    atomic.Int32
	calls   atomic.Int64 // calls that met a fault
	release chan struct{}
	once    sync.Once
}

func newR151Fault() *r151Fault { return &r151Fault{release: make(chan struct{})} }

// heal makes the database work again and lets deaf calls go.
func (f *r151Fault) heal() {
	f.mode.Store(r151OK)
	f.once.Do(func() { close(f.release) })
}

func (f *r151Fault) gate(ctx context.Context) error {
	switch f.mode.Load() {
	case r151Fail:
		f.calls.Add(1)
		return errR151Down
	case r151Hang:
		f.calls.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.release:
			return errR151Down
		}
	case r151Deaf:
		f.calls.Add(1)
		<-f.release
		return errR151Down
	}
	return nil
}

type r151Connector struct {
	drv   driver.Driver
	dsn   string
	fault *r151Fault
}

func (k *r151Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := k.fault.gate(ctx); err != nil {
		return nil, err
	}
	c, err := k.drv.Open(k.dsn)
	if err != nil {
		return nil, err
	}
	return &r151Conn{Conn: c, f: k.fault}, nil
}

func (k *r151Connector) Driver() driver.Driver { return k.drv }

// r151Conn forwards to the driver's connection (modernc, pgx and
// go-sql-driver/mysql implement the context interfaces) through the fault.
type r151Conn struct {
	driver.Conn
	f *r151Fault
}

func (c *r151Conn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}

func (c *r151Conn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	if err := c.f.gate(ctx); err != nil {
		return nil, err
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return &r151Stmt{Stmt: st, f: c.f}, nil
}

func (c *r151Conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *r151Conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.f.gate(ctx); err != nil {
		return nil, err
	}
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *r151Conn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	ex, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	if err := c.f.gate(ctx); err != nil {
		return nil, err
	}
	return ex.ExecContext(ctx, q, args)
}

func (c *r151Conn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	qu, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	if err := c.f.gate(ctx); err != nil {
		return nil, err
	}
	return qu.QueryContext(ctx, q, args)
}

func (c *r151Conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *r151Conn) Ping(ctx context.Context) error {
	if err := c.f.gate(ctx); err != nil {
		return err
	}
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *r151Conn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *r151Conn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

type r151Stmt struct {
	driver.Stmt
	f *r151Fault
}

func (s *r151Stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.f.gate(ctx); err != nil {
		return nil, err
	}
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *r151Stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.f.gate(ctx); err != nil {
		return nil, err
	}
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (s *r151Stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// r151Replica is one replica: a Manager with its own clock on its own
// *sql.DB (whose faults the test switches), and what its middleware told
// the host.
type r151Replica struct {
	m     *sa.Manager
	clock *mwClock
	fault *r151Fault
	errs  *mwErrs
	ended *mwEnded
}

type r151Pair struct {
	t        *testing.T
	a, b     *r151Replica
	sessions *mwSessions
}

// r151Dialects: SQLite always; PostgreSQL and MariaDB when their DSNs are
// set in the environment.
func r151Dialects() []sqlstore.Dialect {
	ds := []sqlstore.Dialect{sqlstore.SQLite}
	if os.Getenv(sqltest.EnvPostgresDSN) != "" {
		ds = append(ds, sqlstore.Postgres)
	}
	if os.Getenv(sqltest.EnvMySQLDSN) != "" {
		ds = append(ds, sqlstore.MySQL)
	}
	return ds
}

// r151Each runs f on a fresh pair of replicas per dialect.
func r151Each(t *testing.T, f func(t *testing.T, p *r151Pair)) {
	for _, d := range r151Dialects() {
		t.Run(d.String(), func(t *testing.T) { f(t, r151NewPair(t, d)) })
	}
}

func r151NewPair(t *testing.T, d sqlstore.Dialect) *r151Pair {
	t.Helper()
	dsn := sqltest.DSN(d)
	if d == sqlstore.SQLite {
		dsn = filepath.Join(t.TempDir(), "r151.db")
	} else if err := sqltest.Available(d); err != nil {
		t.Skipf("%v: %v", d, err)
	}
	probe, err := sql.Open(sqltest.DriverName(d), "")
	require.NoError(t, err)
	drv := probe.Driver()
	_ = probe.Close()
	prefix := sqltest.NewPrefix()
	replica := func() *r151Replica {
		r := &r151Replica{clock: &mwClock{}, fault: newR151Fault(), errs: &mwErrs{}, ended: &mwEnded{}}
		db := sql.OpenDB(&r151Connector{drv: drv, dsn: dsn, fault: r.fault})
		t.Cleanup(func() { _ = db.Close() })
		st := sqltest.NewStoreOn(t, db, d, sqlstore.WithTablePrefix(prefix))
		t.Cleanup(r.fault.heal) // before the store's cleanup drops its tables
		m, err := sa.NewManager(st, sa.WithNow(r.clock.Now), sa.WithErrorHandler(r.errs.handle))
		require.NoError(t, err)
		t.Cleanup(func() { _ = m.Close() })
		r.m = m
		return r
	}
	p := &r151Pair{t: t, a: replica(), b: replica(), sessions: &mwSessions{}}
	p.sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SubjectUserID: "u-42", SessionID: "s-generic"})
	p.sessions.add("generic2", sa.Session{TenantID: "acme", Principal: mwGeneric, SubjectUserID: "u-42", SessionID: "s-generic2"})
	p.sessions.add("eve", sa.Session{TenantID: "acme", Principal: mwEve, SubjectUserID: "u-7", SessionID: "s-eve"})
	p.sessions.add("bob", sa.Session{TenantID: "acme", Principal: "bob@vendor.example", SessionID: "s-bob"})
	p.sessions.add("globex", sa.Session{TenantID: "globex", Principal: "support+globex@vendor.example", SessionID: "s-globex"})
	return p
}

// grant creates a grant on replica A (defaults: acme, open, read).
func (p *r151Pair) grant(in sa.GrantInput) sa.Grant {
	p.t.Helper()
	return mustGrant(p.t, p.a.m, in, mwCustomer)
}

// wrapB wraps h in replica B's middleware.
func (p *r151Pair) wrapB(h http.Handler, opts ...sa.MiddlewareOption) http.Handler {
	base := []sa.MiddlewareOption{sa.WithPollInterval(r151Interval), sa.WithMiddlewareErrorHandler(p.b.errs.handle), sa.OnSessionEnded(p.b.ended.handle)}
	return p.b.m.Middleware(p.sessions.resolve, append(base, opts...)...)(h)
}

// events returns the shared trail's events of tenant of the given types
// (read through replica A).
func (p *r151Pair) events(tenant string, types ...sa.EventType) []sa.Event {
	p.t.Helper()
	evs, err := p.a.m.Events(context.Background(), sa.AuditFilter{TenantID: tenant, Types: types})
	require.NoError(p.t, err)
	return evs
}

// requireChainOK verifies tenant's hash chain, which both replicas appended
// to.
func (p *r151Pair) requireChainOK(tenant string) {
	p.t.Helper()
	rep, err := p.b.m.VerifyAudit(context.Background(), tenant)
	require.NoError(p.t, err)
	require.True(p.t, rep.OK(), "chain of %s intact: %+v", tenant, rep.Break)
}

// r151BySession counts events per Attrs session id.
func r151BySession(evs []sa.Event) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		out[ev.Attrs[sa.AttrSessionID]]++
	}
	return out
}

// TestReview151OtherReplicaEndsStream attacks Middleware's "The context is
// cancelled ... within the poll interval when another replica revokes it
// (see WithPollInterval)", WithPollInterval's "a revocation made by
// another replica ... cancels them within about d plus one Check",
// SECURITY.md's "A response under way when its request ends gets nothing
// more, and is aborted", and RevokeTenant/RevokeTicket's "In-flight
// requests of a revoked grant end". Replica A revokes (three ways) while
// replica B
// streams; B's stream must be cut within the interval plus one Check, B's
// next request refused at once, another tenant's stream on B untouched,
// and the shared trail must hold B's events once each with an intact
// chain.
func TestReview151OtherReplicaEndsStream(t *testing.T) {
	ops := []struct {
		name, reason, event string
		do                  func(p *r151Pair, g sa.Grant) error
	}{
		{"revoke", sa.SessionEndRevoked, string(sa.EventGrantRevoked), func(p *r151Pair, g sa.Grant) error {
			_, err := p.a.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
			return err
		}},
		{"revoke-tenant", sa.SessionEndRevoked, string(sa.EventGrantRevoked), func(p *r151Pair, _ sa.Grant) error {
			gs, err := p.a.m.RevokeTenant(context.Background(), "acme", mwCustomer, "all out")
			if err == nil && len(gs) != 1 {
				err = errors.New("RevokeTenant revoked other than acme's one grant")
			}
			return err
		}},
		{"revoke-ticket", sa.SessionEndRevoked, string(sa.EventGrantRevoked), func(p *r151Pair, _ sa.Grant) error {
			gs, err := p.a.m.RevokeTicket(context.Background(), "acme", "SUP-151", mwCustomer, "ticket closed")
			if err == nil && len(gs) != 1 {
				err = errors.New("RevokeTicket revoked other than the ticket's one grant")
			}
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			r151Each(t, func(t *testing.T, p *r151Pair) {
				g := p.grant(sa.GrantInput{TicketRef: "SUP-151"})
				gx := p.grant(sa.GrantInput{TenantID: "globex", TicketRef: "SUP-151"})
				s, sx := newMWStream(), newMWStream()
				h, hx := p.wrapB(s), p.wrapB(sx)
				rec, finished := s.serve(t, h, mwReq(http.MethodGet, "/events", "generic"))
				recx, finishedx := sx.serve(t, hx, mwReq(http.MethodGet, "/events", "globex"))

				time.Sleep(r151Interval / 3) // the revocation lands between B's polls
				at := time.Now()
				require.NoError(t, op.do(p, g))
				took := s.waitEnd(t, finished, at)
				t.Logf("A's %s to B's cut: %s (interval %s)", op.name, took, r151Interval)
				require.Less(t, took, r151Interval+r151Slack, "B notices within the poll interval plus one Check")
				requireStreamCut(t, s, rec, op.reason)
				require.Equal(t, []string{"s-generic:" + op.reason}, p.b.ended.all())

				// B's next request of the session is refused at once.
				ok := &mwOK{}
				out := mwDo(p.wrapB(ok), mwReq(http.MethodGet, "/x", "generic"))
				require.Equal(t, http.StatusForbidden, out.Code)
				require.Zero(t, ok.calls.Load())
				require.Equal(t, []string{"s-generic:" + op.reason, "s-generic:" + sa.SessionEndNoGrant}, p.b.ended.all())

				// The other tenant's stream on B lives on: a change to acme's
				// grant is not globex's.
				require.False(t, sx.ended(), "globex's stream is not acme's")
				_, err := p.a.m.Revoke(context.Background(), gx.ID, mwCustomer, "done too")
				require.NoError(t, err)
				sx.waitEnd(t, finishedx, at)
				requireStreamCut(t, sx, recx, "revoked")

				// The shared trail: B's support.request and access.denied
				// once each, A's change once, the chain intact.
				reqs := p.events("acme", sa.EventSupportRequest)
				require.Len(t, reqs, 1)
				require.Equal(t, g.ID, reqs[0].GrantID)
				require.Equal(t, "200", reqs[0].Attrs[sa.AttrStatus])
				require.Equal(t, "s-generic", reqs[0].Attrs[sa.AttrSessionID])
				require.Len(t, p.events("acme", sa.EventAccessDenied), 1)
				require.Len(t, p.events("acme", sa.EventType(op.event)), 1)
				require.Len(t, p.events("globex", sa.EventSupportRequest), 1)
				p.requireChainOK("acme")
				p.requireChainOK("globex")
			})
		})
	}
}

// TestReview151ShortenedElsewhereEndsAsExpired attacks Extend's
// "Requests in flight ... end at its new end (on other replicas: when
// their next poll finds it)" with the reason the host is given:
// SessionEndExpired is "that grant reached ExpiresAt", SessionEndRevoked
// "the grant ... was revoked". A shortens the grant to an end that has
// passed by the time B polls (the usual case for "end it in a minute"
// with the default 1 s interval, and any end shorter than the interval).
// The grant was never revoked: B's stream must end as expired, its cause
// "grant expired", OnSessionEnded told "expired". B said "revoked": its
// re-check gets ErrNoActiveGrant and judged the reason by the end it knew
// (a week away), not by the grant's (found by review 151; B now reads the
// grant, endedAs).
func TestReview151ShortenedElsewhereEndsAsExpired(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		g := p.grant(sa.GrantInput{})
		s := newMWStream()
		rec, finished := s.serve(t, p.wrapB(s), mwReq(http.MethodGet, "/events", "generic"))
		at := time.Now()
		g2, err := p.a.m.Extend(context.Background(), g.ID, p.a.m.Now().Add(30*time.Millisecond), mwCustomer)
		require.NoError(t, err)
		took := s.waitEnd(t, finished, at)
		require.Less(t, took, r151Interval+r151Slack, "B notices within the poll interval plus one Check")
		got, err := p.b.m.Get(context.Background(), g.ID)
		require.NoError(t, err)
		require.True(t, got.RevokedAt.IsZero(), "the grant was not revoked")
		require.Equal(t, g2.ExpiresAt, got.ExpiresAt)
		requireStreamCut(t, s, rec, "expired")
		require.Equal(t, []string{"s-generic:" + sa.SessionEndExpired}, p.b.ended.all())
		require.Len(t, p.events("acme", sa.EventSupportRequest), 1)
		require.Len(t, p.events("acme", sa.EventGrantExtended), 1)
	})
}

// TestReview151OtherReplicaShortensToLaterEnd attacks Extend's "Requests
// in flight ... end at its new end (on other replicas: when their next
// poll finds it)": A shortens the grant to an end half a second away,
// several polls later. B's stream must end at that end (its poll adopts
// the new end and its timer fires there), not at the old one a week away.
func TestReview151OtherReplicaShortensToLaterEnd(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		g := p.grant(sa.GrantInput{})
		s := newMWStream()
		rec, finished := s.serve(t, p.wrapB(s), mwReq(http.MethodGet, "/events", "generic"))
		const ahead = 500 * time.Millisecond
		at := time.Now()
		_, err := p.a.m.Extend(context.Background(), g.ID, p.a.m.Now().Add(ahead), mwCustomer)
		require.NoError(t, err)
		took := s.waitEnd(t, finished, at)
		t.Logf("shortened to +%s on A; B's stream ended after %s", ahead, took)
		require.Less(t, took, ahead+r151Slack, "ends at the new end")
		require.Greater(t, took, ahead-50*time.Millisecond, "not long before it either")
		requireStreamCut(t, s, rec, "expired")
		require.Equal(t, []string{"s-generic:" + sa.SessionEndExpired}, p.b.ended.all())
		require.Len(t, p.events("acme", sa.EventSupportRequest), 1)
	})
}

// TestReview151OtherReplicaAddGrantee attacks AddGrantee across replicas:
// a delegation on A must let the delegate in on B at its next request
// (Check reads the store; no replica caches a refusal), must not end the
// original grantee's stream on B (the grant still covers it), and a later
// revocation on A ends that stream within the poll bound. Each of B's
// requests and refusals is in the shared trail once.
func TestReview151OtherReplicaAddGrantee(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		g := p.grant(sa.GrantInput{Grantees: []string{mwEve}})
		s := newMWStream()
		rec, finished := s.serve(t, p.wrapB(s), mwReq(http.MethodGet, "/events", "eve"))

		ok := &mwOK{}
		h := p.wrapB(ok)
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/x", "bob")).Code, "bob is not a grantee yet")
		_, err := p.a.m.AddGrantee(context.Background(), g.ID, "bob@vendor.example", mwCustomer)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/x", "bob")).Code, "the delegate is in at once on B")
		require.EqualValues(t, 1, ok.calls.Load())

		time.Sleep(r151Interval + r151Interval/2) // B's polls see the changed grant
		require.False(t, s.ended(), "the delegation does not end eve's stream")

		at := time.Now()
		_, err = p.a.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
		require.NoError(t, err)
		require.Less(t, s.waitEnd(t, finished, at), r151Interval+r151Slack)
		requireStreamCut(t, s, rec, "revoked")
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/x", "bob")).Code, "nor the delegate")

		require.Equal(t, map[string]int{"s-eve": 1, "s-bob": 1}, r151BySession(p.events("acme", sa.EventSupportRequest)))
		require.Equal(t, map[string]int{"s-bob": 2}, r151BySession(p.events("acme", sa.EventAccessDenied)))
		require.Len(t, p.events("acme", sa.EventGrantDelegated), 1)
		require.Equal(t, []string{"s-bob:" + sa.SessionEndNoGrant, "s-eve:" + sa.SessionEndRevoked, "s-bob:" + sa.SessionEndNoGrant}, p.b.ended.all())
		p.requireChainOK("acme")
	})
}

// TestReview151SkewedReplicaEndsAtItsOwnExpiresAt attacks the expiry
// bound with clocks that disagree: SECURITY.md says windows "are
// evaluated with each replica's clock", and Middleware says the context
// ends "at the grant's ExpiresAt (a timer, computed with the Manager's
// clock)". B's clock is 3 s behind A's; A has already recorded the expiry
// (Sweep). B may keep access for its skew — no longer: its stream ends at
// ExpiresAt by B's clock, its next request is refused, and the expiry is
// recorded once whichever replica sweeps.
func TestReview151SkewedReplicaEndsAtItsOwnExpiresAt(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		const skew = 3 * time.Second
		const left = 300 * time.Millisecond // by B's clock
		g := p.grant(sa.GrantInput{Duration: time.Hour})
		p.b.clock.setUntil(g.ExpiresAt, left)
		p.a.clock.off.Store(p.b.clock.off.Load() + int64(skew))

		_, err := p.a.m.Check(context.Background(), "acme", mwGeneric, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, "expired by A's clock")
		_, err = p.a.m.Sweep(context.Background())
		require.NoError(t, err)
		require.Len(t, p.events("acme", sa.EventGrantExpired), 1)

		s := newMWStream()
		rec, finished := s.serve(t, p.wrapB(s), mwReq(http.MethodGet, "/events", "generic"))
		end := time.Now().Add(g.ExpiresAt.Sub(p.b.m.Now())) // real time of ExpiresAt by B's clock
		s.waitEnd(t, finished, end)
		late := s.endedAt.Sub(end)
		t.Logf("B's stream ended %s after ExpiresAt by B's clock (%s after A's)", late, late+skew)
		require.Less(t, late, 100*time.Millisecond, "B keeps access past ExpiresAt by its skew at most")
		requireStreamCut(t, s, rec, "expired")
		require.Equal(t, []string{"s-generic:" + sa.SessionEndExpired}, p.b.ended.all())

		ok := &mwOK{}
		require.Equal(t, http.StatusForbidden, mwDo(p.wrapB(ok), mwReq(http.MethodGet, "/x", "generic")).Code)
		n, err := p.b.m.Sweep(context.Background())
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, p.events("acme", sa.EventGrantExpired), 1, "the expiry is recorded once")
		require.Len(t, p.events("acme", sa.EventSupportRequest), 1)
		p.requireChainOK("acme")
	})
}

// TestReview151ClockStepPastExpiresAt attacks "ExpiresAt itself end[s]
// requests at once whatever d is" with a replica clock that steps (NTP, a
// VM resumed): B's clock jumps past the grant's end while a stream runs,
// so the real-time timer armed for the old distance (an hour) never fires
// in time. The poll must still end the stream within the interval plus
// one Check.
func TestReview151ClockStepPastExpiresAt(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		p.grant(sa.GrantInput{Duration: time.Hour})
		s := newMWStream()
		rec, finished := s.serve(t, p.wrapB(s), mwReq(http.MethodGet, "/events", "generic"))
		at := time.Now()
		p.b.clock.Advance(2 * time.Hour)
		took := s.waitEnd(t, finished, at)
		t.Logf("B's clock stepped past ExpiresAt; stream ended after %s", took)
		require.Less(t, took, r151Interval+r151Slack)
		requireStreamCut(t, s, rec, "expired")
		require.Equal(t, []string{"s-generic:" + sa.SessionEndExpired}, p.b.ended.all())
	})
}

// TestReview151OutageDuringPollFailsClosed attacks the fail-closed promise
// on B's own store: B's database starts refusing connections while a
// stream runs. WithPollInterval/endReason: "a store failure ends the
// request too (fail closed), reported but not as the end of the session";
// Middleware: new requests get "503 with Retry-After when the store fails
// during the check". The stream must be cut within the poll bound, the
// host not told to drop the session, the error reported; once the
// database is back, B admits again and the trail holds B's requests once.
func TestReview151OutageDuringPollFailsClosed(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		p.grant(sa.GrantInput{})
		s := newMWStream()
		rec, finished := s.serve(t, p.wrapB(s), mwReq(http.MethodGet, "/events", "generic"))
		at := time.Now()
		p.b.fault.mode.Store(r151Fail)
		took := s.waitEnd(t, finished, at)
		require.Less(t, took, r151Interval+r151Slack, "a failing store ends the request at its next poll")
		requireStreamCut(t, s, rec, "check failed")
		require.Empty(t, p.b.ended.all(), "an outage is not the end of the session")
		require.True(t, slices151Contains(p.b.errs.all(), errR151Down), "the failure is reported: %v", p.b.errs.all())

		ok := &mwOK{}
		h := p.wrapB(ok)
		out := mwDo(h, mwReq(http.MethodGet, "/x", "generic"))
		require.Equal(t, http.StatusServiceUnavailable, out.Code)
		require.NotEmpty(t, out.Header().Get("Retry-After"))
		require.Zero(t, ok.calls.Load())

		p.b.fault.heal()
		require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/x", "generic")).Code)
		require.Equal(t, map[string]int{"s-generic": 2}, r151BySession(p.events("acme", sa.EventSupportRequest)))
		p.requireChainOK("acme")
	})
}

func slices151Contains(errs []error, target error) bool {
	for _, err := range errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// TestReview151HungStoreStillEndsAtExpiresAt attacks WithPollInterval's
// "When a grant a request uses reached ExpiresAt ..., its own re-check ...
// waits at most 100 ms for the store before the request ends; ... a poll
// already under way can delay that by up to its time (at most 1 s) and
// 100 ms" and "These bounds hold also with a store that ignores its
// context". B's database stops answering (a dead peer; a driver deaf to
// its context) while a stream runs whose grant ends 400 ms later by B's
// clock: the stream must end by then plus the poll's time (250 ms here)
// and 100 ms.
func TestReview151HungStoreStillEndsAtExpiresAt(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode int32
	}{{"hang", r151Hang}, {"deaf", r151Deaf}} {
		t.Run(mode.name, func(t *testing.T) {
			r151Each(t, func(t *testing.T, p *r151Pair) {
				const left = 400 * time.Millisecond
				g := p.grant(sa.GrantInput{Duration: time.Hour})
				p.b.clock.setUntil(g.ExpiresAt, left)
				end := time.Now().Add(left)
				s := newMWStream()
				rec, finished := s.serve(t, p.wrapB(s), mwReq(http.MethodGet, "/events", "generic"))
				p.b.fault.mode.Store(mode.mode)
				select {
				case <-s.done:
				case <-time.After(2 * time.Second):
					t.Fatal("the stream did not end with the store hung")
				}
				p.b.fault.heal() // the deaf Checks return; the request can finish
				s.waitEnd(t, finished, end)
				late := s.endedAt.Sub(end)
				t.Logf("store %s: stream ended %s after ExpiresAt", mode.name, late)
				require.Less(t, late, 250*time.Millisecond+100*time.Millisecond+100*time.Millisecond)
				requireStreamCut(t, s, rec, "expired")
				require.Equal(t, []string{"s-generic:" + sa.SessionEndExpired}, p.b.ended.all())
				require.Positive(t, p.b.fault.calls.Load(), "the store was asked while hung")
			})
		})
	}
}

// r151Slow is a handler that has not answered when support access ends:
// it waits for its context, then tries to send what it computed.
type r151Slow struct {
	started chan struct{}
	err     error
}

func (h *r151Slow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	close(h.started)
	select {
	case <-r.Context().Done():
	case <-time.After(3 * time.Second):
	}
	w.Header().Set("Content-Type", "text/plain")
	_, h.err = w.Write([]byte("customer secret"))
}

// TestReview151ManyRequestsOneRevocationAuditedOnce attacks "support is
// never sent a response that is not in the audit trail" and "each
// admitted request records one support.request event" across replicas:
// B serves three streams of two sessions and one slow request that has
// not answered; A revokes the tenant. Every stream is cut, the slow
// request gets the 403 session-ended denial instead of its body, each of
// the four is in the shared trail exactly once (the slow one with status
// 403), and the chain both replicas appended to verifies.
func TestReview151ManyRequestsOneRevocationAuditedOnce(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		p.grant(sa.GrantInput{})
		p.grant(sa.GrantInput{Grantees: []string{mwEve}})
		var streams []*mwStream
		var recs []*httptest.ResponseRecorder
		var dones []chan struct{}
		for _, tok := range []string{"generic", "generic2", "eve"} {
			s := newMWStream()
			rec, done := s.serve(t, p.wrapB(s), mwReq(http.MethodGet, "/events/"+tok, tok))
			streams, recs, dones = append(streams, s), append(recs, rec), append(dones, done)
		}
		slow := &r151Slow{started: make(chan struct{})}
		slowRec := httptest.NewRecorder()
		slowDone := make(chan struct{})
		go func() {
			defer close(slowDone)
			mwServeTo(p.wrapB(slow), slowRec, mwReq(http.MethodGet, "/report", "eve"))
		}()
		<-slow.started

		at := time.Now()
		gs, err := p.a.m.RevokeTenant(context.Background(), "acme", mwCustomer, "incident")
		require.NoError(t, err)
		require.Len(t, gs, 2)
		for i, s := range streams {
			require.Less(t, s.waitEnd(t, dones[i], at), r151Interval+r151Slack)
			requireStreamCut(t, s, recs[i], "revoked")
		}
		select {
		case <-slowDone:
		case <-time.After(2 * time.Second):
			t.Fatal("slow request did not finish")
		}
		require.Equal(t, http.StatusForbidden, slowRec.Code)
		require.NotContains(t, slowRec.Body.String(), "customer secret")
		require.ErrorIs(t, slow.err, sa.ErrSessionEnded)

		reqs := p.events("acme", sa.EventSupportRequest)
		require.Equal(t, map[string]int{"s-generic": 1, "s-generic2": 1, "s-eve": 2}, r151BySession(reqs))
		statuses := map[string]int{}
		for _, ev := range reqs {
			statuses[ev.Attrs[sa.AttrPath]+" "+ev.Attrs[sa.AttrStatus]]++
		}
		require.Equal(t, map[string]int{"/events/generic 200": 1, "/events/generic2 200": 1, "/events/eve 200": 1, "/report 403": 1}, statuses)
		require.Len(t, p.b.ended.all(), 4)
		for _, e := range p.b.ended.all() {
			require.True(t, strings.HasSuffix(e, ":"+sa.SessionEndRevoked), e)
		}
		p.requireChainOK("acme")
	})
}

// TestReview151RevokeTicketOnOtherReplicaTakeoverAudited attacks "another
// active grant that covers the session keeps the request alive" together
// with support.scope's "when the middleware's re-check moves a request
// whose event was recorded onto another grant (the one it ran on was
// revoked elsewhere, another still covers it), at that time": A closes
// the ticket whose grant admitted B's stream while another ticket's grant
// still covers the session. The stream goes on, and the trail names the
// grant it goes on with (support.scope, once); closing that ticket too
// ends it within the poll bound.
func TestReview151RevokeTicketOnOtherReplicaTakeoverAudited(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		g1 := p.grant(sa.GrantInput{TicketRef: "SUP-1"})
		g2 := p.grant(sa.GrantInput{TicketRef: "SUP-2"})
		var admitted atomic.Value
		s := newMWStream()
		h := p.wrapB(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g, _ := sa.GrantFromContext(r.Context())
			admitted.Store(g)
			s.ServeHTTP(w, r)
		}))
		rec, finished := s.serve(t, h, mwReq(http.MethodGet, "/events", "generic"))
		first := admitted.Load().(sa.Grant)
		other := g2
		if first.ID == g2.ID {
			other = g1
		}
		_, err := p.a.m.RevokeTicket(context.Background(), "acme", first.TicketRef, mwCustomer, "ticket closed")
		require.NoError(t, err)

		var scopes []sa.Event
		require.Eventually(t, func() bool {
			scopes = p.events("acme", sa.EventSupportScope)
			return len(scopes) > 0
		}, time.Second, 20*time.Millisecond, "the takeover is audited")
		require.False(t, s.ended(), "the other ticket's grant keeps the stream")
		time.Sleep(r151Interval) // another poll: still once
		scopes = p.events("acme", sa.EventSupportScope)
		require.Len(t, scopes, 1)
		require.Equal(t, other.ID, scopes[0].GrantID)

		at := time.Now()
		_, err = p.a.m.RevokeTicket(context.Background(), "acme", other.TicketRef, mwCustomer, "ticket closed")
		require.NoError(t, err)
		require.Less(t, s.waitEnd(t, finished, at), r151Interval+r151Slack)
		requireStreamCut(t, s, rec, "revoked")
		reqs := p.events("acme", sa.EventSupportRequest)
		require.Len(t, reqs, 1)
		require.Equal(t, first.ID, reqs[0].GrantID)
		p.requireChainOK("acme")
	})
}

// TestReview151WriteRevokedElsewhereKeepsRead attacks OnSessionEnded's "It
// is not called ... when an in-flight request ends because a scope it
// used is no longer granted while the session keeps read access — ...
// write for a POST while a grant still allows read (the request's context
// is cancelled with an ErrSessionEnded cause that also wraps
// ErrScopeNotGranted; the session's next GET is admitted)" across
// replicas: A revokes the write grant of B's streaming POST while a read
// grant remains. The POST must be cut within the poll bound, the host not
// told to drop the session, the next GET admitted and the next POST
// refused.
func TestReview151WriteRevokedElsewhereKeepsRead(t *testing.T) {
	r151Each(t, func(t *testing.T, p *r151Pair) {
		p.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeRead}})
		gw := p.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		s := newMWStream()
		rec, finished := s.serve(t, p.wrapB(s), mwReq(http.MethodPost, "/import", "generic"))
		time.Sleep(r151Interval / 3)
		at := time.Now()
		_, err := p.a.m.Revoke(context.Background(), gw.ID, mwCustomer, "no more writes")
		require.NoError(t, err)
		require.Less(t, s.waitEnd(t, finished, at), r151Interval+r151Slack)
		requireStreamCut(t, s, rec, "no longer granted")
		require.ErrorIs(t, s.cause, sa.ErrScopeNotGranted)
		require.Empty(t, p.b.ended.all(), "read is left: the session goes on")

		ok := &mwOK{}
		h := p.wrapB(ok)
		require.Equal(t, http.StatusOK, mwDo(h, mwReq(http.MethodGet, "/x", "generic")).Code)
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodPost, "/x", "generic")).Code)
		reqs := p.events("acme", sa.EventSupportRequest)
		require.Len(t, reqs, 2)
		require.Equal(t, gw.ID, reqs[0].GrantID, "the POST ran on the write grant")
		require.Len(t, p.events("acme", sa.EventAccessDenied), 1)
		p.requireChainOK("acme")
	})
}
