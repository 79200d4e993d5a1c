package supportaccess_test

// Review 136: adversarial tests of the day's changes to the library
// (Event.Clone and the copies handed to auditors, checkClock in newGrant,
// the store-answer check in Manager.update, the middleware's redaction of
// credentials in request targets, U+16FE4 in identifiers, the hook
// attribute constants). Each test names the promise it attacks; a passing
// test is an attack that failed.

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// rv136Editor is a careless host auditor: it redacts the event it is
// handed in place, and keeps it to edit again later (an asynchronous
// shipper that rewrites its batch after Record returned).
type rv136Editor struct {
	mu   sync.Mutex
	kept []sa.Event
}

func rv136Edit(e sa.Event) {
	if e.Attrs != nil {
		for k := range e.Attrs {
			e.Attrs[k] = "redacted"
		}
		e.Attrs["redacted_by"] = "host"
	}
	for _, b := range [][]byte{e.Before, e.After, e.Hash} {
		for i := range b {
			b[i] = ' '
		}
	}
}

func (a *rv136Editor) Record(_ context.Context, e sa.Event) error {
	rv136Edit(e)
	a.mu.Lock()
	a.kept = append(a.kept, e)
	a.mu.Unlock()
	return nil
}

// editAgain rewrites every event it kept.
func (a *rv136Editor) editAgain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.kept {
		rv136Edit(e)
	}
}

// rv136Seeing keeps the events it is handed, with deep copies taken at
// Record time (what it saw then).
type rv136Seeing struct {
	mu        sync.Mutex
	kept, saw []sa.Event
}

func (a *rv136Seeing) Record(_ context.Context, e sa.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kept = append(a.kept, e)
	a.saw = append(a.saw, e.Clone())
	return nil
}

func (a *rv136Seeing) events() (kept, saw []sa.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]sa.Event(nil), a.kept...), append([]sa.Event(nil), a.saw...)
}

// rv136RequireUnedited requires no event of evs to carry the editor's
// marks.
func rv136RequireUnedited(t *testing.T, evs []sa.Event, what string) {
	t.Helper()
	for _, e := range evs {
		require.NotContains(t, e.Attrs, "redacted_by", "%s: %s carries another auditor's edit", what, e.Type)
		for k, v := range e.Attrs {
			require.NotEqual(t, "redacted", v, "%s: %s attr %s", what, e.Type, k)
		}
		for _, b := range [][]byte{e.Before, e.After} {
			if len(b) > 0 {
				require.NotEqual(t, byte(' '), b[0], "%s: %s JSON blanked", what, e.Type)
			}
		}
	}
}

// TestReview136CloneIsDeep attacks Event.Clone's doc ("its Attrs, Before,
// After and Hash are its own (nil stays nil), so that changing one never
// changes the other"): every reference field of the copy is written
// through, and the original must not change; nil fields stay nil, empty
// ones stay empty (an auditor that tells nil from empty sees the same).
func TestReview136CloneIsDeep(t *testing.T) {
	orig := sa.Event{
		ID: uuid.New(), Time: time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC), Type: sa.EventSupportRequest,
		TenantID: "acme", GrantID: uuid.New(), Actor: support, Reason: "why",
		Attrs:  map[string]string{sa.AttrPath: "/x", sa.AttrSessionID: "s-1"},
		Before: []byte(`{"a":1}`), After: []byte(`{"a":2}`), Seq: 7, Hash: bytes.Repeat([]byte{9}, 32),
	}
	keep := orig.Clone()
	c := orig.Clone()
	require.Equal(t, keep, c)
	rv136Edit(c)
	c.Attrs["new"] = "x"
	c.Before = append(c.Before[:0], "zzzzzzz"...)
	require.Equal(t, keep, orig, "editing the clone edited the original")

	// Appending to a clone's slice must not write into the original's
	// spare capacity either.
	spare := sa.Event{Before: make([]byte, 1, 64)}
	sc := spare.Clone()
	sc.Before = append(sc.Before, 'x')
	require.Equal(t, []byte{0}, []byte(spare.Before))
	require.Equal(t, byte(0), spare.Before[:2][1], "the original's spare capacity is untouched")

	empty := sa.Event{Attrs: map[string]string{}, Before: []byte{}, After: nil}
	ec := empty.Clone()
	require.NotNil(t, ec.Attrs)
	require.NotNil(t, ec.Before)
	require.Nil(t, ec.After)
	require.Nil(t, ec.Hash)
	var zero sa.Event
	require.Equal(t, zero, zero.Clone())
}

// TestReview136EachAuditorItsOwnCopyOnEveryPath attacks SECURITY.md's
// "Each auditor gets its own copy of an event, so one that redacts what it
// ships cannot change what the store's chain records" on every path that
// hands events to auditors (today's commit changed recordExtra,
// recordEach, recordLifecycle, PurgeAudit and multiAuditor): grant,
// extend, delegation, revocation, request, approval, denial, Sweep's
// start and expiry records, refusals, notify.failed, the middleware's
// support.request, access.denied and support.change, and the purge's
// copies. An editor placed before another auditor edits in place and
// again after Record returned. The store's events must hold what the
// Manager built (its chain verifies and its attributes are not the
// editor's), and the auditor after the editor must see, then and later,
// the event unedited.
func TestReview136EachAuditorItsOwnCopyOnEveryPath(t *testing.T) {
	for _, cfg := range []string{"store first", "store last", "nested in BestEffortAuditor"} {
		t.Run(cfg, func(t *testing.T) {
			st := memstore.New()
			ed, seen := &rv136Editor{}, &rv136Seeing{}
			var aud sa.Auditor
			switch cfg {
			case "store first":
				aud = sa.MultiAuditor(st, ed, seen)
			case "store last":
				aud = sa.MultiAuditor(ed, seen, st)
			default:
				aud = sa.MultiAuditor(st, sa.BestEffortAuditor(sa.MultiAuditor(ed, seen), nil))
			}
			notifyErr := errors.New("mail server down")
			e := newEnvOn(t, st, sa.WithAuditor(aud),
				sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error { return notifyErr })),
				sa.WithErrorHandler(func(context.Context, error) {}))

			named := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, Reason: "named"})
			_, err := e.m.Extend(ctx, named.ID, e.now().Add(48*time.Hour), customer)
			require.NoError(t, err)
			_, err = e.m.AddGrantee(ctx, named.ID, "colleague@vendor.example", engineer)
			require.NoError(t, err)
			sched := e.grant(sa.GrantInput{StartsAt: e.now().Add(time.Hour), Duration: 24 * time.Hour})
			req, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "please"})
			require.NoError(t, err)
			_, err = e.m.Approve(ctx, req.ID, customer, sa.ApproveInput{Reason: "ok"})
			require.NoError(t, err)
			req2, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "again"})
			require.NoError(t, err)
			_, err = e.m.Deny(ctx, req2.ID, customer, "no")
			require.NoError(t, err)
			_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support})
			require.ErrorIs(t, err, sa.ErrForbidden, "refused: action.refused")

			// The middleware: a write with a recorded change (engineer, on a
			// write grant) and a refused request (a principal without one).
			e.grant(sa.GrantInput{Grantees: []string{engineer.ID}, Scopes: []sa.Scope{sa.ScopeWrite}, Reason: "write"})
			resolve := func(r *http.Request) (sa.Session, bool) {
				p := engineer.ID
				if r.Header.Get("X-Who") != "" {
					p = r.Header.Get("X-Who")
				}
				return sa.Session{TenantID: "acme", Principal: p, SubjectUserID: "u-1", SessionID: "s-1"}, true
			}
			h := e.m.Middleware(resolve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.NoError(t, sa.RecordChange(r.Context(), "settings", map[string]int{"a": 1}, map[string]int{"a": 2}))
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x?token=1", nil))
			require.Equal(t, http.StatusOK, rec.Code)
			denied := httptest.NewRequest(http.MethodGet, "/x", nil)
			denied.Header.Set("X-Who", "nobody@vendor.example")
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, denied)
			require.Equal(t, http.StatusForbidden, rec.Code)

			e.clock.Advance(2 * time.Hour)
			_, err = e.m.Sweep(ctx) // sched's start
			require.NoError(t, err)
			_, err = e.m.Revoke(ctx, sched.ID, customer, "done")
			require.NoError(t, err)
			e.clock.Advance(10 * 24 * time.Hour)
			_, err = e.m.Sweep(ctx) // expiries
			require.NoError(t, err)
			_, err = e.m.PurgeAudit(ctx, "acme", e.now().Add(-9*24*time.Hour))
			require.NoError(t, err)
			ed.editAgain()

			stored := e.events()
			byID := make(map[uuid.UUID]sa.Event, len(stored))
			for _, ev := range stored {
				byID[ev.ID] = ev
			}
			rv136RequireUnedited(t, stored, "store")
			rep, err := e.m.VerifyAudit(ctx, "acme")
			require.NoError(t, err)
			require.Nil(t, rep.Break, "the store's chain verifies")

			kept, saw := seen.events()
			require.NotEmpty(t, kept)
			rv136RequireUnedited(t, saw, "the next auditor, at Record")
			rv136RequireUnedited(t, kept, "the next auditor, later")
			types := map[sa.EventType]bool{}
			for i, ev := range kept {
				types[ev.Type] = true
				if s, ok := byID[ev.ID]; ok && ev.Type != sa.EventAuditPurged { // a purge's copy is marked (AttrPurgeCopy)
					require.True(t, maps.Equal(s.Attrs, ev.Attrs), "%s: the store and the next auditor agree: %v vs %v", ev.Type, s.Attrs, ev.Attrs)
					require.Equal(t, string(s.After), string(ev.After), ev.Type)
				}
				require.Equal(t, saw[i], ev, "what the next auditor kept changed after Record")
			}
			for _, typ := range []sa.EventType{
				sa.EventGrantCreated, sa.EventGrantExtended, sa.EventGrantDelegated, sa.EventGrantRevoked,
				sa.EventGrantStarted, sa.EventGrantExpired, sa.EventRequestCreated, sa.EventRequestApproved,
				sa.EventRequestDenied, sa.EventActionRefused, sa.EventNotifyFailed, sa.EventSupportRequest,
				sa.EventAccessDenied, sa.EventSupportChange, sa.EventAuditPurged,
			} {
				require.True(t, types[typ], "path %s reached the auditors", typ)
			}
		})
	}
}

// TestReview136CheckDoesNotClone attacks the performance promise of
// Check (BENCHMARKS.md; the clone "must not be on Check's path"): with
// three auditors besides the store, Check allocates no more than with
// the store alone.
func TestReview136CheckDoesNotClone(t *testing.T) {
	allocs := func(opts ...sa.Option) float64 {
		st := memstore.New()
		e := newEnvOn(t, st, opts...)
		e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		return testing.AllocsPerRun(200, func() {
			if _, err := e.m.Check(ctx, "acme", engineer.ID, sa.ScopeRead); err != nil {
				panic(err)
			}
		})
	}
	base := allocs()
	with := func() float64 {
		st := memstore.New()
		e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, &rv136Editor{}, &rv136Seeing{}, &recordingAuditor{})))
		e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		return testing.AllocsPerRun(200, func() {
			if _, err := e.m.Check(ctx, "acme", engineer.ID, sa.ScopeRead); err != nil {
				panic(err)
			}
		})
	}()
	require.Equal(t, base, with, "Check allocates for the auditors")
}

// TestReview136BrokenClockCreatesNothingAnywhere attacks checkClock
// (manager.go: "a change made at a broken clock's time is refused by the
// Manager itself, whatever the store and the other auditors would keep")
// on every path that creates a grant or a request: Grant, Grant of a
// scheduled grant, Approve and RequestAccess at a clock before year 1000
// (zero included, and a nanosecond reading just below it) and after 9999.
// No auditor may hear of them and the store must not change. The edges
// are accepted: the first microsecond of year 1000.
func TestReview136BrokenClockCreatesNothingAnywhere(t *testing.T) {
	for name, at := range map[string]time.Time{
		"zero":             {},
		"just before 1000": time.Date(999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		"zoned before 1000": time.Date(1000, 1, 1, 0, 30, 0, 0,
			time.FixedZone("east", 3600)), // 0999-12-31T23:30Z
		"year 10000": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			rec := &recordingAuditor{}
			p := sa.DefaultPolicy()
			p.AllowUnlimited = true
			e := newEnvOn(t, st, sa.WithPolicy(p), sa.WithAuditor(sa.MultiAuditor(st, rec)))
			req, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "r"})
			require.NoError(t, err)
			good := e.clock.Now()
			before := e.snapshot()
			heard := len(rec.types())

			e.clock.Set(at)
			for _, in := range []sa.GrantInput{
				{TenantID: "acme", By: customer},
				{TenantID: "acme", By: customer, Duration: sa.Unlimited},
				{TenantID: "acme", By: customer, StartsAt: good.Add(time.Hour)},
			} {
				_, err := e.m.Grant(ctx, in)
				require.ErrorIs(t, err, sa.ErrInvalidInput)
			}
			_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "r2"})
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			_, err = e.m.Approve(ctx, req.ID, customer, sa.ApproveInput{})
			require.ErrorIs(t, err, sa.ErrInvalidInput)

			for _, typ := range rec.types()[heard:] {
				require.NotContains(t, []sa.EventType{sa.EventGrantCreated, sa.EventRequestCreated, sa.EventRequestApproved}, typ,
					"another auditor heard of a creation at a broken clock")
			}
			e.clock.Set(good)
			require.Equal(t, before, e.snapshot(), "a broken clock created nothing")
		})
	}
	t.Run("first microsecond of year 1000", func(t *testing.T) {
		e := newEnv(t)
		e.clock.Set(time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC))
		g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.NoError(t, err)
		_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.NoError(t, err)
		require.Equal(t, e.now(), g.CreatedAt)
	})
}

// rv136SwappingStore hands UpdateGrant's change function another grant
// than the one asked for (a buggy or hostile store: a wrong WHERE clause,
// a cache keyed by something else).
type rv136SwappingStore struct {
	*memstore.Store
	swap func(id uuid.UUID) uuid.UUID
	edit func(g *sa.Grant)
}

func (s *rv136SwappingStore) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	if s.swap != nil {
		id = s.swap(id)
	}
	return s.Store.UpdateGrant(ctx, id, func(g *sa.Grant) ([]sa.Event, error) {
		if s.edit != nil {
			s.edit(g)
		}
		return change(g)
	})
}

// TestReview136UpdateRefusesAGrantItDidNotAuthorise attacks the new check
// in Manager.update ("a store that hands over another grant (of another
// tenant, say) gets no change of it"): globex's administrator, whose
// Authorizer allows globex only, revokes, extends or delegates a globex
// grant; the store hands over acme's grant instead, another globex
// grant, or globex's grant relabelled as acme's. Every call must fail
// with nothing changed and no auditor hearing of a change. (AddGrantee:
// TestReview136AddGranteeRefusesAGrantItDidNotAuthorise.)
func TestReview136UpdateRefusesAGrantItDidNotAuthorise(t *testing.T) {
	rv136UpdateRefuses(t, func(m *sa.Manager, target sa.Grant, admin sa.Actor, clock time.Time) {
		_, err := m.Revoke(ctx, target.ID, admin, "done")
		require.Error(t, err)
		_, err = m.Extend(ctx, target.ID, clock.Add(48*time.Hour), admin)
		require.Error(t, err)
	})
}

// TestReview136AddGranteeRefusesAGrantItDidNotAuthorise attacks the same
// promise ("Revoke, Extend and the other grant changes refuse a grant the
// store's UpdateGrant hands over that is not the one authorised", commit
// d9554e3) through AddGrantee, which calls the store's UpdateGrant itself
// (delegate.go) instead of Manager.update: the engineer named on globex's
// grant delegates it, the store hands over acme's grant, and the
// colleague is added to acme's grant, which the Authorizer never judged.
// Must fail: nothing changes.
func TestReview136AddGranteeRefusesAGrantItDidNotAuthorise(t *testing.T) {
	rv136UpdateRefuses(t, func(m *sa.Manager, target sa.Grant, _ sa.Actor, _ time.Time) {
		_, err := m.AddGrantee(ctx, target.ID, "colleague@vendor.example", engineer)
		require.Error(t, err)
	})
}

// rv136UpdateRefuses runs call (changes of globex's grant target by its
// administrator) over a store that hands over another grant, and
// requires that nothing changed and no auditor heard of a change.
func rv136UpdateRefuses(t *testing.T, call func(m *sa.Manager, target sa.Grant, admin sa.Actor, clock time.Time)) {
	globexAdmin := sa.Actor{Kind: sa.ActorCustomer, ID: "admin@globex.example"}
	authz := func(_ context.Context, action sa.Action, by sa.Actor, tenantID string) error {
		if by.Kind == sa.ActorCustomer && (by.ID == "admin@globex.example") != (tenantID == "globex") {
			return sa.ErrForbidden
		}
		return sa.DefaultAuthorizer(ctx, action, by, tenantID)
	}
	for _, c := range []string{"other tenant", "same tenant other grant", "relabelled"} {
		t.Run(c, func(t *testing.T) {
			st := &rv136SwappingStore{Store: memstore.New()}
			rec := &recordingAuditor{}
			clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			m, err := sa.NewManager(st, sa.WithNow(func() time.Time { return clock }), sa.WithAuthorizer(authz),
				sa.WithAuditor(sa.MultiAuditor(st, rec)))
			require.NoError(t, err)
			mk := func(tenant string, by sa.Actor) sa.Grant {
				g, err := m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: by, Grantees: []string{engineer.ID}})
				require.NoError(t, err)
				return g
			}
			acme := mk("acme", customer)
			target := mk("globex", globexAdmin)
			other := mk("globex", globexAdmin)
			switch c {
			case "other tenant":
				st.swap = func(uuid.UUID) uuid.UUID { return acme.ID }
			case "same tenant other grant":
				st.swap = func(uuid.UUID) uuid.UUID { return other.ID }
			default:
				st.edit = func(g *sa.Grant) { g.TenantID = "acme" }
			}
			beforeGrants, err := st.Store.ListGrants(ctx, sa.ListFilter{}, clock)
			require.NoError(t, err)
			heard := len(rec.types())

			call(m, target, globexAdmin, clock)

			after, err := st.Store.ListGrants(ctx, sa.ListFilter{}, clock)
			require.NoError(t, err)
			require.Equal(t, beforeGrants, after, "a grant changed")
			for _, typ := range rec.types()[heard:] {
				require.NotContains(t, []sa.EventType{sa.EventGrantRevoked, sa.EventGrantExtended, sa.EventGrantDelegated}, typ)
			}
			_, err = m.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
			require.NoError(t, err, "acme's grant still admits")
		})
	}
}

// rv136Raw sends raw request lines to a server wrapping the middleware
// and returns the request_target and path of the last audited event.
func rv136Raw(t *testing.T, e *mwEnv, srv *httptest.Server, method, target string) (path, tgt string) {
	t.Helper()
	n := len(e.events(sa.EventSupportRequest, sa.EventAccessDenied))
	resp, err := rv132RawRequest(t, srv, method+" "+target+" HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.Less(t, resp.StatusCode, 500)
	evs := e.events(sa.EventSupportRequest, sa.EventAccessDenied)
	require.Len(t, evs, n+1, "%s %s is audited once", method, target)
	ev := evs[len(evs)-1]
	rv132RequireCleanAttrs(t, ev, "hunter2")
	return ev.Attrs[sa.AttrPath], ev.Attrs[sa.AttrRequestTarget]
}

// TestReview136RequestTargetCredentialsNeverRecorded attacks auditLine's
// redaction (middleware_audit.go: "A target with credentials (absolute
// form, with or without a host, or a CONNECT's authority form): they are
// never recorded") with the spellings net/http accepts: a user without a
// password, a password without a user, an IPv6 host with a port, an
// upper-case scheme, a percent-encoded colon, no path, a fragment sign,
// and a POST refused under a read grant. "OPTIONS *" is answered by
// net/http itself and never reaches the middleware.
func TestReview136RequestTargetCredentialsNeverRecorded(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	srv := httptest.NewServer(e.wrap(&mwOK{}))
	defer srv.Close()
	for target, want := range map[string]string{
		"http://sam@host/x":               "http://host/x",
		"https://:hunter2@host/x":         "https://host/x",
		"http://sam:hunter2@[::1]:8080/x": "http://[::1]:8080/x",
		"HTTP://sam:hunter2@host/x":       "HTTP://host/x", // as sent
		"http://sam%3Ahunter2@host/x":     "http://host/x",
		"http://sam:hunter2@host":         "http://host",
		"http://sam:hunter2@host/x#y":     "http://host/x#y", // as sent, less the credentials
	} {
		_, got := rv136Raw(t, e, srv, http.MethodGet, target)
		require.Equal(t, want, got, target)
		require.NotContains(t, got, "sam", target)
	}
	_, got := rv136Raw(t, e, srv, http.MethodPost, "http://sam:hunter2@[fe80::1%25en0]:8443/x")
	require.Equal(t, "http://[fe80::1%25en0]:8443/x", got, "as sent, without user info")

	n := len(e.events())
	resp, err := rv132RawRequest(t, srv, "OPTIONS * HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, e.events(), n, "net/http answers OPTIONS * itself")

	// "//user:pw@host/x" is origin form: a path, which net/http serves as
	// such; it is audited as the path (paths are audited as requested).
	p, got := rv136Raw(t, e, srv, http.MethodGet, "/x")
	require.Equal(t, "/x", p)
	require.Empty(t, got)
}

// TestReview136TargetRedactionTrustsTheRequestURI attacks the same
// promise with a careless host: a router in front of the middleware
// rebuilds r.URL from the path (as some routers and normalisers do),
// leaving r.RequestURI as sent. auditLine decides whether to redact from
// r.URL.User but records r.RequestURI, so the credentials of an
// absolute-form target reach request_target. Must fail: credentials in
// the target the middleware records are never recorded.
func TestReview136TargetRedactionTrustsTheRequestURI(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	mw := e.wrap(&mwOK{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL = &url.URL{Path: r.URL.Path} // a host's normalised URL
		mw.ServeHTTP(w, r)
	}))
	defer srv.Close()
	for _, target := range []string{"http://sam:hunter2@host/x", "https://:hunter2@[::1]:8080/x"} {
		_, got := rv136Raw(t, e, srv, http.MethodGet, target)
		require.NotContains(t, got, "hunter2", target)
	}
}

// TestReview136KhitanFillerRefusedInEveryIdentifier attacks the new rule
// (validate.go hiddenRune: U+16FE4 KHITAN SMALL SCRIPT FILLER) on every
// identifier the Manager and the middleware take: a grant's tenant,
// grantee and ticket reference, an actor's ID, Check's tenant and
// principal, a request's fields, the middleware's session fields. Each is
// ErrInvalidInput (the middleware: a denial) with nothing stored, while
// a filter naming such an identifier still answers (data stored before
// the rule stays reachable).
func TestReview136KhitanFillerRefusedInEveryIdentifier(t *testing.T) {
	const f = "\U00016FE4"
	e := newEnv(t)
	e.grant(sa.GrantInput{})
	before := e.snapshotWithout(sa.EventActionRefused)
	for _, in := range []sa.GrantInput{
		{TenantID: "ac" + f + "me", By: customer},
		{TenantID: "acme", By: customer, Grantees: []string{"sam" + f + "@vendor.example"}},
		{TenantID: "acme", By: customer, TicketRef: "T-1" + f},
		{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "alice" + f}},
	} {
		_, err := e.m.Grant(ctx, in)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%+v", in)
	}
	_, err := e.m.Check(ctx, "acme"+f, support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.Check(ctx, "acme", support.ID+f, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorSupport, ID: "eng" + f}, Reason: "r"})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "r", TicketRef: f + "T"})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused), "nothing stored")

	// A filter still answers.
	_, err = e.m.Events(ctx, sa.AuditFilter{TenantID: "ac" + f + "me"})
	require.NoError(t, err)
	_, err = e.m.List(ctx, sa.ListFilter{TenantID: "ac" + f + "me"})
	require.NoError(t, err)

	// The middleware refuses such a session (fail closed), whatever grant
	// the tenant has.
	for _, s := range []sa.Session{
		{TenantID: "acme", Principal: support.ID + f, SessionID: "s"},
		{TenantID: "acme", Principal: support.ID, SessionID: "s" + f},
		{TenantID: "acme", Principal: support.ID, SubjectUserID: f, SessionID: "s"},
	} {
		inner := &mwOK{}
		h := e.m.Middleware(func(*http.Request) (sa.Session, bool) { return s, true })(inner)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
		require.GreaterOrEqual(t, rec.Code, 400, "%+v", s)
		require.Zero(t, inner.calls.Load(), "%+v", s)
	}
}

// TestReview136OtherBlankGlyphsInIdentifiers attacks the rule behind
// U+16FE4 ("two identifiers cannot differ only by something an audit view
// does not show") with another assigned character drawn blank that Go's
// tables do not list as default-ignorable: U+1D159 MUSICAL SYMBOL NULL
// NOTEHEAD (the code chart draws it as a dashed box, as it does the
// Braille blank and the Khitan filler). "acme" and "ac\U0001D159me" read
// alike in an audit view. Must fail: refused with ErrInvalidInput.
func TestReview136OtherBlankGlyphsInIdentifiers(t *testing.T) {
	e := newEnv(t)
	_, err := e.m.Check(ctx, "ac\U0001D159me", support.ID, sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
}

// TestReview136HookAttrConstantsMatchTheEvents attacks the new constants
// (hooks.go AttrHook, AttrAttempt, AttrNextAt, AttrAttempts): a host that
// reads hook failures by them must find the values the events carry
// (decimal integers, next_at in RFC 3339 with microseconds, UTC), and
// renaming them must not have renamed the stored keys ("hook",
// "attempt", "next_at", "attempts" as before today).
func TestReview136HookAttrConstantsMatchTheEvents(t *testing.T) {
	require.Equal(t, "hook", sa.AttrHook)
	require.Equal(t, "attempt", sa.AttrAttempt)
	require.Equal(t, "next_at", sa.AttrNextAt)
	require.Equal(t, "attempts", sa.AttrAttempts)

	var fail sync.Mutex
	failing := true
	hook := func(context.Context, sa.Grant) error {
		fail.Lock()
		defer fail.Unlock()
		if failing {
			return errors.New("hook down")
		}
		return nil
	}
	e := newEnv(t, sa.OnExpire(hook), sa.WithErrorHandler(func(context.Context, error) {}))
	g := e.grant(sa.GrantInput{Duration: 24 * time.Hour})
	e.clock.Advance(25 * time.Hour)
	_, _ = e.m.Sweep(ctx)
	failed := e.events(sa.EventExpireHookFailed)
	require.Len(t, failed, 1)
	a := failed[0].Attrs
	require.Equal(t, g.ID, failed[0].GrantID)
	require.Equal(t, "0", a[sa.AttrHook])
	require.Equal(t, "1", a[sa.AttrAttempt])
	require.Contains(t, a[sa.AttrError], "hook down")
	next, err := time.Parse(time.RFC3339Nano, a[sa.AttrNextAt])
	require.NoError(t, err)
	require.True(t, next.After(e.now()))
	require.True(t, strings.HasSuffix(a[sa.AttrNextAt], "Z"))

	fail.Lock()
	failing = false
	fail.Unlock()
	e.clock.Set(next)
	_, err = e.m.Sweep(ctx)
	require.NoError(t, err)
	ok := e.events(sa.EventExpireHookSucceeded)
	require.Len(t, ok, 1)
	require.Equal(t, "1", ok[0].Attrs[sa.AttrAttempts])
}
