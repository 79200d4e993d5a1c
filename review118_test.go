package supportaccess_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// Review 118: mutation testing of validate.go, scope.go, policy.go and
// authz.go. Each test below kills a mutant the existing tests let live.

// The C1 controls are refused at both ends of their range (U+0080 and
// U+009F), and so are both Unicode separators (line, U+2028, and
// paragraph, U+2029), in every kind of text field: an identifier, a
// one-line name and a multi-line reason. Nothing is stored.
func TestReview118C1ControlsAndSeparatorsRefused(t *testing.T) {
	for name, r := range map[string]string{
		"U+0080 (first C1)":           "\u0080",
		"U+009F (last C1)":            "\u009f",
		"U+2028 line separator":       "\u2028",
		"U+2029 paragraph separator":  "\u2029",
		"U+2029 before a line break":  "\u2029\n",
		"U+009F between CRLF breaks":  "\r\n\u009f\r\n",
		"U+2029 after eight ASCII":    "12345678\u2029",
		"U+009F after a non-ASCII é":  "é\u009f",
		"U+2029 at the start of text": "\u2029x",
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, sa.ValidateActor(sa.Actor{Kind: sa.ActorSupport, ID: "eve" + r + "@vendor.example"}), sa.ErrInvalidInput)
			require.ErrorIs(t, sa.ValidateActor(sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example", Name: "Eve" + r}), sa.ErrInvalidInput)

			e := newEnv(t)
			e.grant(sa.GrantInput{})
			before := e.snapshot()
			for field, in := range map[string]sa.GrantInput{
				"TenantID":  {TenantID: "ac" + r + "me", By: customer},
				"Grantees":  {TenantID: "acme", By: customer, Grantees: []string{"eve" + r + "@vendor.example"}},
				"By.Name":   {TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: customer.ID, Name: "Ada" + r}},
				"Reason":    {TenantID: "acme", By: customer, Reason: "line 1" + r + "line 2"},
				"TicketRef": {TenantID: "acme", By: customer, TicketRef: "T-1" + r},
			} {
				_, err := e.m.Grant(ctx, in)
				require.ErrorIs(t, err, sa.ErrInvalidInput, field)
				require.Contains(t, err.Error(), field, "the error names the field")
			}
			_, err := e.m.Check(ctx, "acme", "eve"+r+"@vendor.example", sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Equal(t, before, e.snapshot(), "nothing stored")
		})
	}
}

// The Braille blank (U+2800) shows nothing but is not white space: in an
// identifier it is refused as an invisible character (two grantees that
// look the same must be the same), and a required reason or ticket of
// only it, or only other invisible characters, is blank. Free text may
// hold it among visible characters.
func TestReview118BrailleBlankAndInvisibleOnlyTexts(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{})
	before := e.snapshot()
	for field, in := range map[string]sa.GrantInput{
		"TenantID": {TenantID: "acme\u2800", By: customer},
		"Grantees": {TenantID: "acme", By: customer, Grantees: []string{"eve\u2800@vendor.example"}},
		"By.ID":    {TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "admin\u2800@acme.example"}},
	} {
		_, err := e.m.Grant(ctx, in)
		require.ErrorIs(t, err, sa.ErrInvalidInput, field)
		require.Contains(t, err.Error(), field)
	}
	_, err := e.m.Check(ctx, "acme", support.ID+"\u2800", sa.ScopeRead)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a Braille blank in the principal is refused, not just not found")
	require.Equal(t, before, e.snapshot(), "nothing stored")

	// In free text among visible characters it is kept (not an identifier).
	g := e.grant(sa.GrantInput{Reason: "see \u2800 ticket", By: sa.Actor{Kind: sa.ActorCustomer, ID: customer.ID, Name: "Ada\u2800"}})
	require.Equal(t, "see \u2800 ticket", g.Reason)

	p := sa.DefaultPolicy()
	p.RequireReason, p.RequireTicketRef = true, true
	for name, blank := range map[string]string{
		"Braille blank":             "\u2800",
		"Braille blanks and spaces": " \u2800 \u2800",
		"zero-width space":          "\u200b",
		"word joiner and ZWNJ":      "\u2060\u200c",
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, sa.WithPolicy(p))
			before := e.snapshot()
			_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Reason: blank, TicketRef: "SUP-1"})
			require.ErrorIs(t, err, sa.ErrInvalidInput, "a reason that shows nothing satisfied RequireReason")
			require.Contains(t, err.Error(), "Reason")
			_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Reason: blank, TicketRef: "SUP-1"})
			require.ErrorIs(t, err, sa.ErrInvalidInput, "request")
			require.Equal(t, before, e.snapshot(), "nothing stored")
		})
	}
}

// An actor's name holds at most MaxActorNameLen bytes (not the
// MaxPrincipalLen of its ID).
func TestReview118ActorNameLimit(t *testing.T) {
	name := func(n int) string { return strings.Repeat("n", n) }
	require.NoError(t, sa.ValidateActor(sa.Actor{Kind: sa.ActorCustomer, ID: customer.ID, Name: name(sa.MaxActorNameLen)}))
	err := sa.ValidateActor(sa.Actor{Kind: sa.ActorCustomer, ID: customer.ID, Name: name(sa.MaxActorNameLen + 1)})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Contains(t, err.Error(), "Name")

	e := newEnv(t)
	e.grant(sa.GrantInput{})
	before := e.snapshot()
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: customer.ID, Name: name(sa.MaxActorNameLen + 1)}})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Contains(t, err.Error(), "By.Name")
	require.Equal(t, before, e.snapshot(), "nothing stored")
}

// review118LenientStore is a memstore whose ListGrants does not check the
// filter (a third-party store may not): it counts its calls and lists
// every grant, so that only the Manager's own validation can refuse.
type review118LenientStore struct {
	*memstore.Store
	lists int
}

func (s *review118LenientStore) ListGrants(ctx context.Context, _ sa.ListFilter, now time.Time) ([]sa.Grant, error) {
	s.lists++
	return s.Store.ListGrants(ctx, sa.ListFilter{}, now)
}

// List refuses a negative Limit and a status it does not know, rather than
// listing everything or nothing, before it asks the store.
func TestReview118ListRefusesNegativeLimitAndUnknownStatus(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{})
	st := &review118LenientStore{Store: e.store}
	m, err := sa.NewManager(st, sa.WithNow(e.clock.Now))
	require.NoError(t, err)
	for name, f := range map[string]sa.ListFilter{
		"negative limit":        {Limit: -1},
		"limit over the max":    {Limit: sa.MaxListLimit + 1},
		"unknown status":        {Statuses: []sa.Status{"bogus"}},
		"other spelling":        {Statuses: []sa.Status{"Active"}},
		"unknown after a known": {TenantID: "acme", Statuses: []sa.Status{sa.StatusActive, "live"}},
	} {
		gs, err := m.List(ctx, f)
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
		require.Empty(t, gs, name)
	}
	require.Zero(t, st.lists, "the store was asked with a malformed filter")
	gs, err := m.List(ctx, sa.ListFilter{Limit: sa.MaxListLimit, Statuses: []sa.Status{sa.StatusActive}})
	require.NoError(t, err)
	require.Len(t, gs, 1)
	require.Equal(t, 1, st.lists)
}

// Policy.Validate refuses a preset above MaxDuration even when the default
// is among the presets (TestPolicyValidate's "preset over max" is refused
// for its default not being a preset), a negative MaxScheduleAhead, and an
// Unlimited default the policy does not allow; NewManager refuses such a
// policy too.
func TestReview118PolicyValidateRefusals(t *testing.T) {
	for name, mut := range map[string]func(*sa.Policy){
		"preset over max beside the default": func(p *sa.Policy) {
			p.Presets = []sa.Preset{{"1 week", 7 * sa.Day}, {"200 days", 200 * sa.Day}}
		},
		"preset one past max": func(p *sa.Policy) {
			p.Presets = []sa.Preset{{"1 week", 7 * sa.Day}, {"max+", p.MaxDuration + time.Microsecond}}
		},
		"negative MaxScheduleAhead": func(p *sa.Policy) { p.MaxScheduleAhead = -time.Hour },
		"unlimited default not allowed": func(p *sa.Policy) {
			p.DefaultDuration = sa.Unlimited
		},
		"unlimited default not allowed, with presets": func(p *sa.Policy) {
			p.DefaultDuration = sa.Unlimited
			p.Presets = []sa.Preset{{"forever", sa.Unlimited}}
		},
	} {
		p := sa.DefaultPolicy()
		mut(&p)
		require.ErrorIs(t, p.Validate(), sa.ErrInvalidInput, name)
		_, err := sa.NewManager(newEnv(t).store, sa.WithPolicy(p))
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
	}
	// The edges that are allowed.
	p := sa.DefaultPolicy()
	p.Presets = []sa.Preset{{"1 week", 7 * sa.Day}, {"max", p.MaxDuration}}
	require.NoError(t, p.Validate())
	p.AllowUnlimited, p.DefaultDuration, p.Presets = true, sa.Unlimited, nil
	require.NoError(t, p.Validate())
}

// Extend of a scheduled grant may not move its end onto its start (a
// window of nothing): ErrInvalidInput, nothing written. One microsecond
// after it is accepted.
func TestReview118ExtendScheduledGrantToItsStartRefused(t *testing.T) {
	e := newEnv(t)
	starts := e.now().Add(5 * time.Hour)
	g := e.grant(sa.GrantInput{StartsAt: starts, Duration: sa.Day})
	before := e.snapshot()
	_, err := e.m.Extend(ctx, g.ID, starts, customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Contains(t, err.Error(), "StartsAt")
	require.Equal(t, before, e.snapshot(), "nothing written")

	got, err := e.m.Extend(ctx, g.ID, starts.Add(time.Microsecond), customer)
	require.NoError(t, err)
	require.Equal(t, starts.Add(time.Microsecond), got.ExpiresAt)
	require.Equal(t, sa.StatusScheduled, got.Status(e.now()))
}

// DefaultAuthorizer, which hosts may call from their own Authorizer before
// checking the tenant, allows exactly what its doc says: customers grant,
// extend, approve and deny; any kind revokes; only support requests
// access; support and customers add grantees; nothing else.
func TestReview118DefaultAuthorizerTable(t *testing.T) {
	kinds := map[sa.ActorKind]sa.Actor{sa.ActorCustomer: customer, sa.ActorSupport: support, sa.ActorSystem: system}
	allowed := map[sa.Action][]sa.ActorKind{
		sa.ActionGrant:      {sa.ActorCustomer},
		sa.ActionExtend:     {sa.ActorCustomer},
		sa.ActionApprove:    {sa.ActorCustomer},
		sa.ActionDeny:       {sa.ActorCustomer},
		sa.ActionRevoke:     {sa.ActorCustomer, sa.ActorSupport, sa.ActorSystem},
		sa.ActionRequest:    {sa.ActorSupport},
		sa.ActionAddGrantee: {sa.ActorCustomer, sa.ActorSupport},
		sa.ActionPurgeAudit: nil,
		"delete_tenant":     nil,
	}
	for action, ok := range allowed {
		for kind, by := range kinds {
			err := sa.DefaultAuthorizer(ctx, action, by, "acme")
			if slices.Contains(ok, kind) {
				require.NoError(t, err, "%s may %s", kind, action)
			} else {
				require.Error(t, err, "%s may not %s", kind, action)
			}
		}
		require.Error(t, sa.DefaultAuthorizer(ctx, action, sa.Actor{Kind: "root", ID: "x"}, "acme"), "unknown kind may not %s", action)
	}
}

// An Authorizer's error that wraps ErrSessionEnded or ErrTampered (a host
// reusing the library's errors) does not make the refusal pass for a
// session's end or a broken audit chain: the Manager's error wraps
// ErrForbidden alone of the library's sentinels, and nothing is stored but
// the refusal.
func TestReview118AuthorizerRefusalHidesSessionAndTamperSentinels(t *testing.T) {
	for _, s := range []error{sa.ErrSessionEnded, sa.ErrTampered} {
		e := newEnv(t, sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error {
			return fmt.Errorf("host: %w", s)
		}))
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
		require.ErrorIs(t, err, sa.ErrForbidden)
		require.NotErrorIs(t, err, s, "the refusal wraps a second sentinel")
		require.Len(t, e.events(sa.EventActionRefused), 1)
		require.Empty(t, e.events(sa.EventGrantCreated))
	}
}
