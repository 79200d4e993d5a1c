package supportaccess_test

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 166: configuration misuse — policies, Manager options and
// replicas of one product configured differently. Each test names the
// promise it attacks.

// TestReview166InvalidPoliciesRefused attacks Policy.Validate ("reports an
// inconsistent policy with an ErrInvalidInput error") and WithPolicy
// ("NewManager returns an ErrInvalidInput error for an inconsistent
// policy") with policies review 135 did not try: the zero Policy, a
// maximum under a microsecond, a later preset over the maximum or
// unlabelled, an unlimited default missing from the presets, too many or
// malformed default scopes, a negative RequestTTL. Each error names the
// field, and NewManager returns no Manager.
func TestReview166InvalidPoliciesRefused(t *testing.T) {
	manyScopes := make([]sa.Scope, sa.MaxScopes+1)
	for i := range manyScopes {
		manyScopes[i] = sa.Scope("s" + strings.Repeat("x", i))
	}
	for _, c := range []struct {
		name  string
		p     sa.Policy
		field string
	}{
		{"zero policy", sa.Policy{}, "MaxDuration"},
		{"max under a microsecond", sa.Policy{DefaultDuration: time.Nanosecond, MaxDuration: 999}, "MaxDuration"},
		{"default zero", sa.Policy{MaxDuration: sa.Day}, "DefaultDuration"},
		{"second preset over max", sa.Policy{DefaultDuration: sa.Day, MaxDuration: sa.Day, Presets: []sa.Preset{{"1 day", sa.Day}, {"2 days", 2 * sa.Day}}}, "Presets[1]"},
		{"second preset unlabelled", sa.Policy{DefaultDuration: sa.Day, MaxDuration: 2 * sa.Day, Presets: []sa.Preset{{"1 day", sa.Day}, {"", 2 * sa.Day}}}, "Presets[1]"},
		{"unlimited default not a preset", sa.Policy{AllowUnlimited: true, DefaultDuration: sa.Unlimited, MaxDuration: sa.Day, Presets: []sa.Preset{{"1 day", sa.Day}}}, "unlimited is not one of the Presets"},
		{"default unlimited without AllowUnlimited", sa.Policy{DefaultDuration: sa.Unlimited, MaxDuration: sa.Day}, "AllowUnlimited"},
		{"too many default scopes", sa.Policy{DefaultDuration: sa.Day, MaxDuration: sa.Day, DefaultScopes: manyScopes}, "DefaultScopes"},
		{"default scope with a space", sa.Policy{DefaultDuration: sa.Day, MaxDuration: sa.Day, DefaultScopes: []sa.Scope{"messages read"}}, "DefaultScopes"},
		{"default scope READ", sa.Policy{DefaultDuration: sa.Day, MaxDuration: sa.Day, DefaultScopes: []sa.Scope{"READ"}}, "DefaultScopes"},
		{"request ttl negative", sa.Policy{DefaultDuration: sa.Day, MaxDuration: sa.Day, RequestTTL: -time.Hour}, "RequestTTL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.p.Validate()
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.ErrorContains(t, err, c.field)
			m, err := sa.NewManager(memstore.New(), sa.WithPolicy(c.p))
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.ErrorContains(t, err, "new manager: policy:")
			require.ErrorContains(t, err, c.field)
			require.Nil(t, m)
		})
	}
}

// TestReview166EdgePoliciesAccepted pins what Validate lets through and
// how the Manager then behaves, each time within the documented rules:
//   - duplicate presets (one duration under two labels, one label on two
//     durations) are accepted; Grant accepts each listed duration;
//   - labels are not validated beyond "not empty": HTML, control and
//     bidirectional characters come back from Policy() byte for byte (the
//     host escapes what it renders, as the webapp's html/template does);
//   - DefaultScopes naming a host scope only give default grants that
//     admit nobody through the middleware (Check of read: fail closed);
//   - MaxScheduleAhead of 1 ns (positive, under a microsecond) allows no
//     later start at all, but a StartsAt within the past second is now.
func TestReview166EdgePoliciesAccepted(t *testing.T) {
	t.Run("duplicate presets", func(t *testing.T) {
		p := sa.Policy{DefaultDuration: 7 * sa.Day, MaxDuration: 14 * sa.Day, Presets: []sa.Preset{
			{"1 week", 7 * sa.Day}, {"7 days", 7 * sa.Day}, {"1 week", 14 * sa.Day},
		}}
		require.NoError(t, p.Validate())
		e := newEnv(t, sa.WithPolicy(p))
		g := e.grant(sa.GrantInput{Duration: 14 * sa.Day})
		require.Equal(t, 14*sa.Day, g.ExpiresAt.Sub(g.StartsAt))
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 10 * sa.Day})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
	})
	t.Run("labels not validated", func(t *testing.T) {
		labels := []string{"<b onmouseover=alert(1)>1 day</b>", "1\tday\x00", "\u202eyad 1", "   ", "\xff"}
		var presets []sa.Preset
		for i, l := range labels {
			presets = append(presets, sa.Preset{Label: l, Duration: time.Duration(i+1) * sa.Day})
		}
		p := sa.Policy{DefaultDuration: sa.Day, MaxDuration: 30 * sa.Day, Presets: presets}
		require.NoError(t, p.Validate(), "labels are the host's data: only an empty one is refused")
		e := newEnv(t, sa.WithPolicy(p))
		got := e.m.Policy().Presets
		require.Len(t, got, len(labels))
		for i, l := range labels {
			require.Equal(t, l, got[i].Label)
		}
	})
	t.Run("host-only default scopes", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.DefaultScopes = []sa.Scope{"messages:read"}
		e := newEnv(t, sa.WithPolicy(p))
		g := e.grant(sa.GrantInput{})
		require.Equal(t, []sa.Scope{"messages:read"}, g.Scopes)
		_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrScopeNotGranted, "a grant without read admits no request")
		_, err = e.m.Check(ctx, "acme", support.ID, "messages:read")
		require.NoError(t, err)
	})
	t.Run("MaxScheduleAhead edges", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.MaxScheduleAhead = time.Nanosecond
		require.NoError(t, p.Validate())
		e := newEnv(t, sa.WithPolicy(p))
		now := e.m.Now()
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: now.Add(time.Microsecond)})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		g := e.grant(sa.GrantInput{StartsAt: now.Add(-500 * time.Millisecond)})
		require.Equal(t, now, g.StartsAt)

		p.MaxScheduleAhead = time.Microsecond
		e = newEnv(t, sa.WithPolicy(p))
		now = e.m.Now()
		g = e.grant(sa.GrantInput{StartsAt: now.Add(time.Microsecond + 999)})
		require.Equal(t, now.Add(time.Microsecond), g.StartsAt)
		before := e.snapshot()
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, StartsAt: now.Add(2 * time.Microsecond)})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.ErrorContains(t, err, "StartsAt")
		_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, StartsAt: now.Add(2 * time.Microsecond)})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Equal(t, before, e.snapshot(), "refused, nothing stored")
		r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, StartsAt: now.Add(time.Microsecond)})
		require.NoError(t, err)
		require.Equal(t, now.Add(time.Microsecond), r.StartsAt)
	})
}

// TestReview166OptionOrderAndBounds attacks the options' documented
// bounds and what happens when an option is given twice:
// WithSweepConcurrency (1..MaxSweepConcurrency), WithExpireHookLease
// (>= 1 s), WithExpireHookRetry (1µs <= min <= max). A bad value of these
// is refused even when a good one follows (nothing is silently
// replaced); WithPolicy is validated once, after all options, so the
// last WithPolicy decides. WithAuditor and WithNow given twice: the last
// one wins, and a later nil does not undo an earlier value.
func TestReview166OptionOrderAndBounds(t *testing.T) {
	good := sa.DefaultPolicy()
	bad := sa.Policy{DefaultDuration: 2 * sa.Day, MaxDuration: sa.Day}
	for _, c := range []struct {
		name string
		opts []sa.Option
		want string // "" accepted; else a part of the error
	}{
		{"concurrency 1", []sa.Option{sa.WithSweepConcurrency(1)}, ""},
		{"concurrency max", []sa.Option{sa.WithSweepConcurrency(sa.MaxSweepConcurrency)}, ""},
		{"concurrency 0", []sa.Option{sa.WithSweepConcurrency(0)}, "sweep concurrency"},
		{"concurrency -1", []sa.Option{sa.WithSweepConcurrency(-1)}, "sweep concurrency"},
		{"concurrency max+1", []sa.Option{sa.WithSweepConcurrency(sa.MaxSweepConcurrency + 1)}, "sweep concurrency"},
		{"concurrency bad then good", []sa.Option{sa.WithSweepConcurrency(0), sa.WithSweepConcurrency(2)}, "sweep concurrency"},
		{"lease 1s", []sa.Option{sa.WithExpireHookLease(time.Second)}, ""},
		{"lease huge", []sa.Option{sa.WithExpireHookLease(1<<63 - 1)}, ""},
		{"lease 999ms", []sa.Option{sa.WithExpireHookLease(999 * time.Millisecond)}, "expire hook lease"},
		{"lease negative", []sa.Option{sa.WithExpireHookLease(-time.Hour)}, "expire hook lease"},
		{"lease bad then good", []sa.Option{sa.WithExpireHookLease(0), sa.WithExpireHookLease(time.Minute)}, "expire hook lease"},
		{"retry 1µs,1µs", []sa.Option{sa.WithExpireHookRetry(time.Microsecond, time.Microsecond)}, ""},
		{"retry 1s,huge", []sa.Option{sa.WithExpireHookRetry(time.Second, 1<<63-1)}, ""},
		{"retry 999ns", []sa.Option{sa.WithExpireHookRetry(999, time.Second)}, "expire hook retry"},
		{"retry zero", []sa.Option{sa.WithExpireHookRetry(0, 0)}, "expire hook retry"},
		{"retry min>max", []sa.Option{sa.WithExpireHookRetry(2*time.Second, time.Second)}, "expire hook retry"},
		{"retry negative", []sa.Option{sa.WithExpireHookRetry(-time.Second, time.Second)}, "expire hook retry"},
		{"retry bad then good", []sa.Option{sa.WithExpireHookRetry(time.Hour, time.Second), sa.WithExpireHookRetry(time.Second, time.Hour)}, "expire hook retry"},
		{"policy bad then good", []sa.Option{sa.WithPolicy(bad), sa.WithPolicy(good)}, ""},
		{"policy good then bad", []sa.Option{sa.WithPolicy(good), sa.WithPolicy(bad)}, "DefaultDuration"},
		{"bad policy and bad lease", []sa.Option{sa.WithPolicy(bad), sa.WithExpireHookLease(0)}, "new manager"},
		{"empty MultiAuditor", []sa.Option{sa.WithAuditor(sa.MultiAuditor())}, "no WithAuditor"},
		{"MultiAuditor of nils", []sa.Option{sa.WithAuditor(sa.MultiAuditor(nil, nil))}, "no WithAuditor"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := sa.NewManager(memstore.New(), c.opts...)
			if c.want == "" {
				require.NoError(t, err)
				require.NotNil(t, m)
				require.NoError(t, m.Close())
				return
			}
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, m)
		})
	}

	t.Run("last WithPolicy applies", func(t *testing.T) {
		m, err := sa.NewManager(memstore.New(), sa.WithPolicy(bad), sa.WithPolicy(good))
		require.NoError(t, err)
		require.Equal(t, good, m.Policy())
	})

	t.Run("WithAuditor and WithNow twice", func(t *testing.T) {
		st := memstore.New()
		first, second := &recordingAuditor{}, &recordingAuditor{}
		c1, c2 := storetest.NewClock(storetest.Epoch), storetest.NewClock(storetest.Epoch.Add(time.Hour))
		m, err := sa.NewManager(st, sa.WithAuditor(first), sa.WithAuditor(second), sa.WithAuditor(nil),
			sa.WithNow(c1.Now), sa.WithNow(c2.Now), sa.WithNow(nil))
		require.NoError(t, err)
		g := mustGrant(t, m, sa.GrantInput{}, customer)
		require.Equal(t, c2.Now().Truncate(time.Microsecond), g.CreatedAt, "the last clock")
		require.Empty(t, first.types(), "replaced")
		require.Equal(t, []sa.EventType{sa.EventGrantCreated}, second.types())
		evs, err := st.Events(ctx, sa.AuditFilter{})
		require.NoError(t, err)
		require.Empty(t, evs, "the store is not among the auditors")
	})
}

// TestReview166NilOptionsKeepDefaults attacks "A nil Option is ignored"
// and each option's "Nil is ignored": a Manager given nil for every
// option that takes a value keeps the defaults — time.Now, the
// DefaultAuthorizer (support cannot grant), the store as auditor and
// audit log — and works.
func TestReview166NilOptionsKeepDefaults(t *testing.T) {
	st := memstore.New()
	var nilNotifier *struct{ sa.Notifier }
	m, err := sa.NewManager(st, nil, sa.WithNow(nil), sa.WithAuthorizer(nil), sa.WithNotifier(nil),
		sa.WithNotifier(sa.NotifierFunc(nil)), sa.WithNotifier(nilNotifier), sa.WithErrorHandler(nil),
		sa.WithAuditor(nil), sa.WithAuditLog(nil), sa.OnExpire(nil), sa.WithTracerProvider(nil),
		sa.WithMeterProvider(nil))
	require.NoError(t, err)
	before := time.Now()
	g := mustGrant(t, m, sa.GrantInput{}, customer)
	require.WithinDuration(t, before, g.CreatedAt, time.Minute, "time.Now")
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: support})
	require.ErrorIs(t, err, sa.ErrForbidden, "DefaultAuthorizer")
	evs, err := m.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantCreated}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "the store audits and is the log")
	n, err := m.Sweep(ctx)
	require.NoError(t, err, "no hooks registered: a nil OnExpire is not a hook")
	require.Zero(t, n)
}

// TestReview166BestEffortOfNilAuditorNoTrail attacks NewManager's "a
// Manager never runs without an audit trail": WithAuditor given only a
// BestEffortAuditor of nil (a secondary destination that was not
// configured) replaces the store as auditor, and that auditor records
// nothing. NewManager accepts it; every grant is then created without
// any event anywhere, and Events has no log. Found by review 166; now
// NewManager refuses it, and auditors that are all best-effort.
func TestReview166BestEffortOfNilAuditorNoTrail(t *testing.T) {
	_, err := sa.NewManager(memstore.New(), sa.WithAuditor(sa.BestEffortAuditor(memstore.New(), nil)))
	require.ErrorIs(t, err, sa.ErrInvalidInput, "no auditor that must succeed")
	m, err := sa.NewManager(memstore.New(), sa.WithAuditor(sa.BestEffortAuditor(nil, nil)))
	if err == nil {
		g, gerr := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.NoError(t, gerr)
		t.Logf("grant %s created; its trail: none", g.ID)
	}
	require.ErrorIs(t, err, sa.ErrInvalidInput, "no auditor that records anything")
}

// TestReview166BestEffortOfNilPointerAuditor attacks NewManager's
// "ErrInvalidInput when ... an auditor (WithAuditor) ... is a nil
// pointer" (and the code's "would panic at the first audited change:
// refused here"; DESIGN.md: bad input "never panics"): a store whose
// constructor's error was dropped, wrapped in BestEffortAuditor as the
// README suggests for a secondary destination, passes NewManager (the
// nil-pointer test looked only at the top level) and the first Grant
// panicked. Found by review 166; now NewManager refuses it.
func TestReview166BestEffortOfNilPointerAuditor(t *testing.T) {
	var secondary *memstore.Store // sqlstore.New's error dropped, say
	st := memstore.New()
	m, err := sa.NewManager(st, sa.WithAuditor(sa.MultiAuditor(st, sa.BestEffortAuditor(secondary, nil))))
	if err == nil {
		require.NotPanics(t, func() {
			_, _ = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		}, "a Manager NewManager accepted must not panic at its first change")
	}
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a nil-pointer auditor is refused")
}

// TestReview166RequireReasonBlank attacks Policy.RequireReason
// ("ErrInvalidInput when missing, or blank: only white space or
// invisible characters") with reasons made of every kind of blank the
// identifier rules know, on Grant and RequestAccess, and a request made
// before RequireReason was turned on, approved after (Approve's doc:
// refused). Nothing is stored for a refusal; a reason of letters with
// combining marks is not blank.
func TestReview166RequireReasonBlank(t *testing.T) {
	p := sa.DefaultPolicy()
	p.RequireReason = true
	e := newEnv(t, sa.WithPolicy(p))
	before := e.snapshot()
	for _, r := range []string{
		" ", "\t\n", "\r\n \r\n", "\u00a0", "\u3000", "\u2007\u202f", "\u200b", "\u2060", "\ufeff",
		"\u00ad", "\u3164", "\u115f\u1160", "\uffa0", "\u2800", "\u034f", "\U000E0020", "\ufe0f",
		"\u180e", "\U00016FE4", "\U0001D159", "\u200d\u200c", "\u061c", " \u2800 \u3164\n",
	} {
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Reason: r})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "Grant reason %q", r)
		require.ErrorContains(t, err, "Reason")
		_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Reason: r})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "RequestAccess reason %q", r)
	}
	require.Equal(t, before, e.snapshot(), "refused, nothing stored or audited")
	g := e.grant(sa.GrantInput{Reason: "e\u0301"})
	require.Equal(t, "e\u0301", g.Reason)

	// A request made where the reason was optional, approved where it is
	// required.
	loose := newEnvOn(t, e.store)
	r, err := loose.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support})
	require.NoError(t, err)
	_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
}

// r166StepClock is a WithNow clock that moves by step at every reading:
// with it, two readings within one operation disagree.
type r166StepClock struct {
	base time.Time
	step time.Duration
	n    atomic.Int64
}

func (c *r166StepClock) Now() time.Time {
	return c.base.Add(time.Duration(c.n.Add(1)) * c.step)
}

// TestReview166OneClockReadingPerChange attacks DESIGN's "Times are UTC,
// truncated to microseconds by the Manager" and the Manager's promise
// that a change's times are the time it is made at (changeNow: "the time
// it is made at, and of its event") with a clock that is not monotonic —
// it moves forward, or backward, at every reading. Within one change
// every stored time and its events' times must come from one reading:
// a grant's CreatedAt is its StartsAt and its grant.created time; an
// approval's DecidedAt is its grant's CreatedAt and both events' time; a
// revocation's RevokedAt is its event's time; a request's ExpiresAt is
// CreatedAt plus RequestTTL.
func TestReview166OneClockReadingPerChange(t *testing.T) {
	for _, step := range []time.Duration{time.Minute, -time.Minute} {
		t.Run(step.String(), func(t *testing.T) {
			st := memstore.New()
			c := &r166StepClock{base: storetest.Epoch, step: step}
			m, err := sa.NewManager(st, sa.WithNow(c.Now))
			require.NoError(t, err)
			eventOf := func(typ sa.EventType, pick func(sa.Event) bool) sa.Event {
				t.Helper()
				evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{typ}})
				require.NoError(t, err)
				for _, ev := range evs {
					if pick(ev) {
						return ev
					}
				}
				t.Fatalf("no %s event", typ)
				return sa.Event{}
			}

			g := mustGrant(t, m, sa.GrantInput{Duration: sa.Day}, customer)
			require.Equal(t, g.CreatedAt, g.StartsAt)
			require.Equal(t, sa.Day, g.ExpiresAt.Sub(g.StartsAt))
			created := eventOf(sa.EventGrantCreated, func(ev sa.Event) bool { return ev.GrantID == g.ID })
			require.Equal(t, g.CreatedAt, created.Time)

			x, err := m.Extend(ctx, g.ID, g.ExpiresAt.Add(time.Hour), customer)
			require.NoError(t, err)
			ext := eventOf(sa.EventGrantExtended, func(ev sa.Event) bool { return ev.GrantID == g.ID })
			require.LessOrEqual(t, x.ExpiresAt.Sub(ext.Time), sa.DefaultPolicy().MaxDuration)

			rv, err := m.Revoke(ctx, g.ID, customer, "done")
			require.NoError(t, err)
			revoked := eventOf(sa.EventGrantRevoked, func(ev sa.Event) bool { return ev.GrantID == g.ID })
			require.Equal(t, rv.RevokedAt, revoked.Time)

			r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: sa.Day})
			require.NoError(t, err)
			require.Equal(t, 72*time.Hour, r.ExpiresAt.Sub(r.CreatedAt))
			rc := eventOf(sa.EventRequestCreated, func(ev sa.Event) bool { return ev.Attrs[sa.AttrRequestID] == r.ID.String() })
			require.Equal(t, r.CreatedAt, rc.Time)

			ag, err := m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
			require.NoError(t, err)
			require.Equal(t, ag.CreatedAt, ag.StartsAt)
			require.Equal(t, sa.Day, ag.ExpiresAt.Sub(ag.StartsAt))
			ar, err := m.GetRequest(ctx, r.ID)
			require.NoError(t, err)
			require.Equal(t, ag.CreatedAt, ar.DecidedAt)
			approved := eventOf(sa.EventRequestApproved, func(ev sa.Event) bool { return ev.Attrs[sa.AttrRequestID] == r.ID.String() })
			require.Equal(t, ag.CreatedAt, approved.Time)
			agc := eventOf(sa.EventGrantCreated, func(ev sa.Event) bool { return ev.GrantID == ag.ID })
			require.Equal(t, ag.CreatedAt, agc.Time)
		})
	}
}

// TestReview166DenialAtBrokenClock attacks WithNow's "At a reading outside
// the years 1000 to 9999 (the zero time of an unset fake, say), which no
// record may hold, ... [changes are] refused ... before any auditor
// hears of it" for the middleware's own records. Refusals by the
// Authorizer record nothing at such a clock (refuseAs); the middleware's
// denial, though, hands every auditor an access.denied event stamped at
// year 1: the store refuses it (reported), while another auditor (a log
// shipper, a second store) gets a record no store may hold.
// (Minor: the request is refused either way.) Found by review 166; now
// the denial goes to the error handler, unaudited, as refuseAs does.
func TestReview166DenialAtBrokenClock(t *testing.T) {
	st := memstore.New()
	rec := &recordingAuditor{}
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithAuditor(rec), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	mustGrant(t, m, sa.GrantInput{}, customer)
	heard := len(rec.types())
	clock.Set(time.Time{})
	sessions := &mwSessions{}
	sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s1"})
	h := m.Middleware(sessions.resolve)(&mwOK{})
	rr := mwDo(h, mwReq(http.MethodGet, "/x", "generic"))
	require.NotEqual(t, http.StatusOK, rr.Code, "fail closed")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ev := range rec.events[heard:] {
		require.False(t, ev.Time.Before(time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)), "%s recorded at %s", ev.Type, ev.Time)
	}
}

// TestReview166RequestTTLOfApprover attacks the replica rule (a change is
// judged by the policy of the replica that makes it) for Approve: its
// doc lists the policy changes made since a request that Approve applies
// (duration, presets, RequireReason/RequireTicketRef, MaxScheduleAhead,
// unlimited). RequestTTL is not among them: a replica whose policy lets
// requests wait an hour approves a request another replica (or this one
// before its policy was tightened) made two days earlier with a 30-day
// TTL, and its Sweep does not expire it either. Review 166 asked whether
// that is a bug or a missing sentence; Policy.RequestTTL now says the TTL
// is applied when the request is made (its ExpiresAt stored), which this
// test pins: the request is still pending and its approval succeeds.
func TestReview166RequestTTLOfApprover(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	loose, tight := sa.DefaultPolicy(), sa.DefaultPolicy()
	loose.RequestTTL = 30 * sa.Day
	tight.RequestTTL = time.Hour
	a, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithPolicy(loose))
	require.NoError(t, err)
	b, err := sa.NewManager(st, sa.WithNow(clock.Now), sa.WithPolicy(tight))
	require.NoError(t, err)
	r, err := a.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Reason: "SUP-1"})
	require.NoError(t, err)
	clock.Advance(2 * sa.Day)
	_, err = b.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.NoError(t, err, "the TTL is the one the request was made with (Policy.RequestTTL)")
}

// r166Replicas are two Managers of one product sharing a SQL store, each
// on its own connection pool, on one clock: a (DefaultPolicy with
// AllowUnlimited, DefaultAuthorizer) and b (a tight policy and an
// Authorizer that refuses the intern).
type r166Replicas struct {
	clock *storetest.Clock
	a, b  *sa.Manager
	store *sqlstore.Store
}

var r166Intern = sa.Actor{Kind: sa.ActorCustomer, ID: "intern@acme.example"}

func r166Tight() sa.Policy {
	return sa.Policy{
		DefaultDuration:  sa.Day,
		MaxDuration:      7 * sa.Day,
		Presets:          []sa.Preset{{"24 hours", sa.Day}, {"3 days", 3 * sa.Day}, {"7 days", 7 * sa.Day}},
		RequireReason:    true,
		MaxScheduleAhead: 30 * sa.Day,
		RequestTTL:       72 * time.Hour,
	}
}

func newR166Replicas(t *testing.T, d sqlstore.Dialect) *r166Replicas {
	t.Helper()
	open := func(t *testing.T) *sql.DB { return sqltest.Open(t, d) }
	if d == sqlstore.SQLite {
		path := filepath.Join(t.TempDir(), "r166.db")
		open = func(t *testing.T) *sql.DB { return sqltest.OpenSQLite(t, path) }
	}
	base := sqltest.NewStoreOn(t, open(t), d)
	other, err := sqlstore.New(open(t), d, sqlstore.WithTablePrefix(base.TablePrefix()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	c := &r166Replicas{clock: storetest.NewClock(storetest.Epoch), store: base}
	loose := sa.DefaultPolicy()
	loose.AllowUnlimited = true
	c.a, err = sa.NewManager(base, sa.WithNow(c.clock.Now), sa.WithPolicy(loose))
	require.NoError(t, err)
	strict := func(ctx context.Context, action sa.Action, by sa.Actor, tenantID string) error {
		if by == r166Intern {
			return sa.ErrForbidden
		}
		return sa.DefaultAuthorizer(ctx, action, by, tenantID)
	}
	c.b, err = sa.NewManager(other, sa.WithNow(c.clock.Now), sa.WithPolicy(r166Tight()), sa.WithAuthorizer(strict))
	require.NoError(t, err)
	return c
}

// TestReview166ReplicasWithDifferentPolicies attacks "a change is judged
// by the policy (and Authorizer) of the replica making it" on SQLite,
// PostgreSQL and MariaDB with a loose replica a and a tight replica b
// sharing one store:
//   - b refuses what its policy forbids (a grant over its maximum, not a
//     preset, without a reason, unlimited), whatever a allows;
//   - b's Extend of a's long grant is bounded by b's maximum (also to
//     shorten it to 60 days: the remaining window, not the change, is
//     judged) and may not make it unlimited; a extends by its own;
//   - b's Approve re-judges requests a took: a duration over its maximum
//     or not its preset, an unlimited one (ErrForbidden, audited), a
//     start beyond its MaxScheduleAhead, a missing reason — and a
//     narrower approval is accepted;
//   - b's Authorizer refuses the intern a's lets through;
//   - b's Check honours a's 120-day grant (a policy judges changes, not
//     access: tightening a replica's policy does not shorten grants).
func TestReview166ReplicasWithDifferentPolicies(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			c := newR166Replicas(t, d)
			a, b := c.a, c.b
			var now time.Time
			in := func(dur time.Duration, reason string) sa.GrantInput {
				return sa.GrantInput{TenantID: "acme", By: customer, Duration: dur, Reason: reason}
			}

			// Grants on b, by b's policy.
			countGrants := func() int {
				gs, err := a.List(ctx, sa.ListFilter{TenantID: "acme"})
				require.NoError(t, err)
				return len(gs)
			}
			n0 := countGrants()
			for _, gi := range []sa.GrantInput{in(14*sa.Day, "x"), in(2*sa.Day, "x"), in(3*sa.Day, ""), in(3*sa.Day, " \u3164")} {
				_, err := b.Grant(ctx, gi)
				require.ErrorIs(t, err, sa.ErrInvalidInput, "%+v", gi)
			}
			_, err := b.Grant(ctx, in(sa.Unlimited, "x"))
			require.ErrorIs(t, err, sa.ErrForbidden)
			require.Equal(t, n0, countGrants(), "nothing stored")

			// a's long grant: b admits it, and bounds its extensions.
			long, err := a.Grant(ctx, in(120*sa.Day, ""))
			require.NoError(t, err)
			c.clock.Advance(time.Hour)
			now = a.Now()
			_, err = b.Check(ctx, "acme", support.ID, sa.ScopeRead)
			require.NoError(t, err, "b admits a grant longer than its own maximum")
			for _, end := range []time.Time{now.Add(8 * sa.Day), now.Add(60 * sa.Day)} {
				_, err = b.Extend(ctx, long.ID, end, customer)
				require.ErrorIs(t, err, sa.ErrInvalidInput, "b: end %s", end)
			}
			_, err = b.Extend(ctx, long.ID, time.Time{}, customer)
			require.ErrorIs(t, err, sa.ErrForbidden)
			cur, err := a.Get(ctx, long.ID)
			require.NoError(t, err)
			require.Equal(t, long, cur, "refused Extends changed nothing")
			x, err := b.Extend(ctx, long.ID, now.Add(7*sa.Day), customer)
			require.NoError(t, err)
			require.Equal(t, now.Add(7*sa.Day), x.ExpiresAt)
			x, err = a.Extend(ctx, long.ID, now.Add(100*sa.Day), customer)
			require.NoError(t, err, "a judges by its own policy")
			require.Equal(t, now.Add(100*sa.Day), x.ExpiresAt)

			// a's unlimited grant: b may bound it, not keep it unlimited.
			forever, err := a.Grant(ctx, in(sa.Unlimited, ""))
			require.NoError(t, err)
			_, err = b.Extend(ctx, forever.ID, time.Time{}, customer)
			require.ErrorIs(t, err, sa.ErrForbidden, "even as a no-op retry")
			x, err = b.Extend(ctx, forever.ID, now.Add(3*sa.Day), customer)
			require.NoError(t, err)
			require.Equal(t, now.Add(3*sa.Day), x.ExpiresAt)

			// Requests a took, decided on b.
			req := func(ri sa.RequestInput) sa.AccessRequest {
				t.Helper()
				ri.TenantID, ri.By = "acme", support
				r, err := a.RequestAccess(ctx, ri)
				require.NoError(t, err)
				return r
			}
			pending := func(id sa.AccessRequest) {
				t.Helper()
				r, err := a.GetRequest(ctx, id.ID)
				require.NoError(t, err)
				require.Equal(t, sa.RequestPending, r.Status)
			}
			over := req(sa.RequestInput{Duration: 30 * sa.Day, Reason: "SUP-1"})
			_, err = b.Approve(ctx, over.ID, customer, sa.ApproveInput{})
			require.ErrorIs(t, err, sa.ErrInvalidInput, "30 days: over b's maximum")
			_, err = b.Approve(ctx, over.ID, customer, sa.ApproveInput{Duration: 5 * sa.Day})
			require.ErrorIs(t, err, sa.ErrInvalidInput, "5 days: not b's preset")
			pending(over)
			g, err := b.Approve(ctx, over.ID, customer, sa.ApproveInput{Duration: 3 * sa.Day})
			require.NoError(t, err)
			require.Equal(t, 3*sa.Day, g.ExpiresAt.Sub(g.StartsAt))

			unl := req(sa.RequestInput{Duration: sa.Unlimited, Reason: "SUP-2"})
			_, err = b.Approve(ctx, unl.ID, customer, sa.ApproveInput{})
			require.ErrorIs(t, err, sa.ErrForbidden)
			refused, err := b.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventActionRefused}})
			require.NoError(t, err)
			require.NotEmpty(t, refused)
			last := refused[len(refused)-1]
			require.Equal(t, string(sa.ActionApprove), last.Attrs[sa.AttrAction])
			require.Equal(t, unl.ID.String(), last.Attrs[sa.AttrRequestID])
			pending(unl)
			g, err = b.Approve(ctx, unl.ID, customer, sa.ApproveInput{Duration: 7 * sa.Day})
			require.NoError(t, err)
			require.Equal(t, 7*sa.Day, g.ExpiresAt.Sub(g.StartsAt))

			late := req(sa.RequestInput{Duration: sa.Day, Reason: "SUP-3", StartsAt: now.Add(60 * sa.Day)})
			_, err = b.Approve(ctx, late.ID, customer, sa.ApproveInput{})
			require.ErrorIs(t, err, sa.ErrInvalidInput, "beyond b's MaxScheduleAhead")
			pending(late)

			mute := req(sa.RequestInput{Duration: sa.Day})
			_, err = b.Approve(ctx, mute.ID, customer, sa.ApproveInput{Reason: "approved by me"})
			require.ErrorIs(t, err, sa.ErrInvalidInput, "the request has no reason; the approver's comment is not one")
			pending(mute)

			// Authorizers.
			_, err = b.Revoke(ctx, long.ID, r166Intern, "")
			require.ErrorIs(t, err, sa.ErrForbidden)
			cur, err = a.Get(ctx, long.ID)
			require.NoError(t, err)
			require.True(t, cur.RevokedAt.IsZero())
			_, err = a.Revoke(ctx, long.ID, r166Intern, "")
			require.NoError(t, err, "a's DefaultAuthorizer lets any customer revoke")

			vr, err := a.VerifyAudit(ctx, "acme")
			require.NoError(t, err)
			require.True(t, vr.OK(), "one chain, written by both replicas")
		})
	}
}
