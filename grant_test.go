package supportaccess_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestGrant(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Reason: "ticket 7"})
		require.Equal(t, e.now(), g.CreatedAt)
		require.Equal(t, e.now(), g.StartsAt)
		require.Equal(t, e.now().Add(7*24*time.Hour), g.ExpiresAt, "policy default: 1 week")
		require.Equal(t, []sa.Scope{sa.ScopeRead}, g.Scopes, "read-only by default")
		require.Nil(t, g.Grantees, "any support principal")
		require.Equal(t, customer, g.GrantedBy)
		require.Equal(t, sa.StatusActive, g.Status(e.now()))
		evs := e.events(sa.EventGrantCreated)
		require.Len(t, evs, 1)
		require.Equal(t, g.ID, evs[0].GrantID)
		require.Equal(t, "acme", evs[0].TenantID)
		require.Equal(t, customer, evs[0].Actor)
		require.Equal(t, "ticket 7", evs[0].Reason)
		var after sa.Grant
		require.NoError(t, json.Unmarshal(evs[0].After, &after))
		require.Equal(t, g, after)
	})
	t.Run("grantees and scopes are normalised", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{Grantees: []string{"b@v.example", "a@v.example", "b@v.example"},
			Scopes: []sa.Scope{sa.ScopeWrite, "messages:read", sa.ScopeWrite}})
		require.Equal(t, []string{"a@v.example", "b@v.example"}, g.Grantees)
		require.Equal(t, []sa.Scope{"messages:read", sa.ScopeWrite}, g.Scopes)
	})
	t.Run("returned grant is a copy", func(t *testing.T) {
		e := newEnv(t)
		in := sa.GrantInput{Grantees: []string{engineer.ID}}
		g := e.grant(in)
		in.Grantees[0] = "mallory@evil.example"
		g.Grantees[0] = "mallory@evil.example"
		_, err := e.m.Check(ctx, "acme", "mallory@evil.example", sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		_, err = e.m.Check(ctx, "acme", engineer.ID, sa.ScopeRead)
		require.NoError(t, err)
	})
	t.Run("scheduled start", func(t *testing.T) {
		e := newEnv(t)
		starts := e.now().Add(48 * time.Hour)
		g := e.grant(sa.GrantInput{StartsAt: starts, Duration: 24 * time.Hour})
		require.Equal(t, starts, g.StartsAt)
		require.Equal(t, starts.Add(24*time.Hour), g.ExpiresAt)
		require.Equal(t, sa.StatusScheduled, g.Status(e.now()))
	})
	t.Run("start a moment in the past is clamped to now", func(t *testing.T) {
		e := newEnv(t)
		g := e.grant(sa.GrantInput{StartsAt: e.now().Add(-500 * time.Millisecond)})
		require.Equal(t, e.now(), g.StartsAt)
	})
	t.Run("presets", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.Presets = sa.PresetsShort
		p.DefaultDuration = 24 * time.Hour
		e := newEnv(t, sa.WithPolicy(p))
		g := e.grant(sa.GrantInput{Duration: 3 * sa.Day})
		require.Equal(t, g.StartsAt.Add(72*time.Hour), g.ExpiresAt)
		g = e.grant(sa.GrantInput{})
		require.Equal(t, g.StartsAt.Add(24*time.Hour), g.ExpiresAt, "default")
		before := e.snapshot()
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 2 * sa.Day})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Contains(t, err.Error(), "Duration")
		require.Equal(t, before, e.snapshot())
		require.Equal(t, sa.PresetsShort, e.m.Policy().Presets, "presets are data for the UI")

		// Unlimited allowed, but not among the presets: not offered.
		p.AllowUnlimited = true
		e = newEnv(t, sa.WithPolicy(p))
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Unlimited})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Contains(t, err.Error(), "Duration unlimited is not one of the policy presets", "named, not printed as 292 years")
		require.Empty(t, e.snapshot().grants)
	})
	t.Run("unlimited", func(t *testing.T) {
		e := newEnv(t)
		before := e.snapshot()
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Unlimited})
		require.ErrorIs(t, err, sa.ErrForbidden)
		require.Equal(t, before, e.snapshotWithout(sa.EventActionRefused))
		refused := e.events(sa.EventActionRefused)
		require.Len(t, refused, 1, "the policy's refusal is audited")
		require.Equal(t, "grant", refused[0].Attrs[sa.AttrAction])
		require.Equal(t, customer, refused[0].Actor)
		require.Contains(t, refused[0].Reason, "unlimited")

		p := sa.DefaultPolicy()
		p.AllowUnlimited = true
		e = newEnv(t, sa.WithPolicy(p))
		g := e.grant(sa.GrantInput{Duration: sa.Unlimited})
		require.True(t, g.Unlimited())
		e.clock.Advance(10 * 365 * 24 * time.Hour)
		_, err = e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.NoError(t, err)
	})
	t.Run("required reason and ticket", func(t *testing.T) {
		p := sa.DefaultPolicy()
		p.RequireReason, p.RequireTicketRef = true, true
		e := newEnv(t, sa.WithPolicy(p))
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, TicketRef: "T-1"})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Contains(t, err.Error(), "Reason")
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Reason: "why"})
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		require.Contains(t, err.Error(), "TicketRef")
		require.Empty(t, e.snapshot().grants)
		e.grant(sa.GrantInput{Reason: "why", TicketRef: "T-1"})
	})
}

func TestGrantRefusesBadInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	p := sa.DefaultPolicy()
	p.MaxScheduleAhead = 30 * sa.Day
	cases := []struct {
		name  string
		in    sa.GrantInput
		field string
	}{
		{"empty tenant", sa.GrantInput{}, "TenantID"},
		{"tenant too long", sa.GrantInput{TenantID: long(sa.MaxTenantIDLen + 1)}, "TenantID"},
		{"tenant with NUL", sa.GrantInput{TenantID: "ac\x00me"}, "TenantID"},
		{"tenant with newline", sa.GrantInput{TenantID: "acme\n"}, "TenantID"},
		{"tenant with DEL", sa.GrantInput{TenantID: "acme\x7f"}, "TenantID"},
		{"tenant with C1 control", sa.GrantInput{TenantID: "acme\u0085"}, "TenantID"},
		{"tenant invalid UTF-8", sa.GrantInput{TenantID: "acme\xff"}, "TenantID"},
		{"actor without kind", sa.GrantInput{TenantID: "acme", By: sa.Actor{ID: "x"}}, "By.Kind"},
		{"actor unknown kind", sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: "root", ID: "x"}}, "By.Kind"},
		{"actor without id", sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer}}, "By.ID"},
		{"actor id too long", sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: long(sa.MaxPrincipalLen + 1)}}, "By.ID"},
		{"actor name with control", sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "a", Name: "a\x1b[31m"}}, "By.Name"},
		{"empty grantee", sa.GrantInput{TenantID: "acme", Grantees: []string{""}}, "Grantees"},
		{"grantee invalid UTF-8", sa.GrantInput{TenantID: "acme", Grantees: []string{"\xc3\x28"}}, "Grantees"},
		{"too many grantees", sa.GrantInput{TenantID: "acme", Grantees: manyStrings(sa.MaxGrantees + 1)}, "Grantees"},
		{"empty scope", sa.GrantInput{TenantID: "acme", Scopes: []sa.Scope{""}}, "Scopes"},
		{"scope with space", sa.GrantInput{TenantID: "acme", Scopes: []sa.Scope{"read write"}}, "Scopes"},
		{"scope too long", sa.GrantInput{TenantID: "acme", Scopes: []sa.Scope{sa.Scope(long(sa.MaxScopeLen + 1))}}, "Scopes"},
		{"reason too long", sa.GrantInput{TenantID: "acme", Reason: long(sa.MaxReasonLen + 1)}, "Reason"},
		{"reason with NUL", sa.GrantInput{TenantID: "acme", Reason: "a\x00b"}, "Reason"},
		{"reason invalid UTF-8", sa.GrantInput{TenantID: "acme", Reason: "\xed\xa0\x80"}, "Reason"},
		{"reason with a lone CR", sa.GrantInput{TenantID: "acme", Reason: "export invoices\rdelete the SSO config"}, "Reason"},
		{"reason ending in CR", sa.GrantInput{TenantID: "acme", Reason: "export invoices\r"}, "Reason"},
		{"reason with CR CR LF", sa.GrantInput{TenantID: "acme", Reason: "a\r\r\nb"}, "Reason"},
		{"ticket with newline", sa.GrantInput{TenantID: "acme", TicketRef: "T-1\nX"}, "TicketRef"},
		{"ticket too long", sa.GrantInput{TenantID: "acme", TicketRef: long(sa.MaxTicketRefLen + 1)}, "TicketRef"},
		{"negative duration", sa.GrantInput{TenantID: "acme", Duration: -time.Hour}, "Duration"},
		{"duration below a microsecond", sa.GrantInput{TenantID: "acme", Duration: time.Nanosecond}, "Duration"},
		{"duration over the maximum", sa.GrantInput{TenantID: "acme", Duration: 121 * sa.Day}, "Duration"},
		{"start in the past", sa.GrantInput{TenantID: "acme", StartsAt: storetestEpoch.Add(-time.Hour)}, "StartsAt"},
		{"start too far ahead", sa.GrantInput{TenantID: "acme", StartsAt: storetestEpoch.Add(31 * sa.Day)}, "StartsAt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, sa.WithPolicy(p))
			e.grant(sa.GrantInput{TenantID: "acme"}) // existing state must survive
			before := e.snapshot()
			in := c.in
			if in.By.IsZero() {
				in.By = customer
			}
			_, err := e.m.Grant(ctx, in)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Contains(t, err.Error(), c.field)
			require.Equal(t, before, e.snapshot(), "nothing stored")
		})
	}
}

// A reason keeps its line feeds, CRLF line breaks (what a browser's
// textarea sends) and tabs as given; a carriage return elsewhere is
// refused above.
func TestGrantReasonKeepsLineBreaks(t *testing.T) {
	e := newEnv(t)
	for _, reason := range []string{"line 1\nline 2", "line 1\r\nline 2\r\n", "key:\tvalue"} {
		g := e.grant(sa.GrantInput{Reason: reason})
		require.Equal(t, reason, g.Reason)
		got, err := e.m.Revoke(ctx, g.ID, customer, reason)
		require.NoError(t, err)
		require.Equal(t, reason, got.RevokeReason)
	}
}

func manyStrings(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strings.Repeat("p", i+1)
	}
	return out
}

func TestCheckRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	for _, c := range []struct {
		tenant, principal string
		scope             sa.Scope
	}{
		{"", support.ID, sa.ScopeRead},
		{"acme", "", sa.ScopeRead},
		{"acme", support.ID, ""},
		{"acme\x00", support.ID, sa.ScopeRead},
		{"acme", support.ID + "\x00", sa.ScopeRead},
		{"acme", "\xff", sa.ScopeRead},
		{"acme", support.ID, "read\n"},
		{strings.Repeat("a", 1000), support.ID, sa.ScopeRead},
	} {
		_, err := e.m.Check(ctx, c.tenant, c.principal, c.scope)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%q %q %q", c.tenant, c.principal, c.scope)
	}
}

func TestCheckFailsClosed(t *testing.T) {
	t.Run("store error denies", func(t *testing.T) {
		e := newEnv(t)
		e.grant(sa.GrantInput{})
		fs := &faultyStore{Store: e.store, failFind: true}
		m, err := sa.NewManager(fs, sa.WithNow(e.clock.Now), sa.WithAuditor(e.store))
		require.NoError(t, err)
		g, err := m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, errBoom)
		require.Zero(t, g.ID, "no grant is returned with an error")
	})
	t.Run("a store answering with a wrong grant is not trusted", func(t *testing.T) {
		e := newEnv(t)
		other := e.grant(sa.GrantInput{TenantID: "globex"})
		expired := e.grant(sa.GrantInput{Duration: time.Hour})
		revoked := e.grant(sa.GrantInput{})
		_, err := e.m.Revoke(ctx, revoked.ID, customer, "")
		require.NoError(t, err)
		revoked, err = e.m.Get(ctx, revoked.ID)
		require.NoError(t, err)
		named := e.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
		readOnly := e.grant(sa.GrantInput{})
		ls := &lyingStore{Store: e.store}
		m, err := sa.NewManager(ls, sa.WithNow(func() time.Time { return e.clock.Now().Add(2 * time.Hour) }))
		require.NoError(t, err)
		for name, c := range map[string]struct {
			g     sa.Grant
			scope sa.Scope
		}{
			"other tenant": {other, sa.ScopeRead}, "expired": {expired, sa.ScopeRead}, "revoked": {revoked, sa.ScopeRead},
			"other principal": {named, sa.ScopeRead}, "missing scope": {readOnly, sa.ScopeWrite},
		} {
			ls.answer = c.g
			_, err := m.Check(ctx, "acme", support.ID, c.scope)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, name)
		}
	})
	t.Run("nothing granted denies", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	})
}

func TestStatus(t *testing.T) {
	t0 := storetestEpoch.Truncate(time.Microsecond)
	g := sa.Grant{StartsAt: t0, ExpiresAt: t0.Add(time.Hour)}
	require.Equal(t, sa.StatusScheduled, g.Status(t0.Add(-time.Microsecond)))
	require.Equal(t, sa.StatusActive, g.Status(t0))
	require.Equal(t, sa.StatusActive, g.Status(t0.Add(time.Hour-time.Microsecond)))
	require.Equal(t, sa.StatusExpired, g.Status(t0.Add(time.Hour)))
	g.RevokedAt = t0.Add(time.Minute)
	require.Equal(t, sa.StatusRevoked, g.Status(t0.Add(2*time.Hour)), "revocation wins")
	require.Equal(t, sa.StatusRevoked, g.Status(t0.Add(-time.Hour)))
	u := sa.Grant{StartsAt: t0}
	require.Equal(t, sa.StatusActive, u.Status(t0.Add(1000*time.Hour)), "unlimited")
}
