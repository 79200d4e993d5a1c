package supportaccess_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Extend's expiresAt is truncated to microseconds before it is judged, and
// truncate maps a non-zero time within the first microsecond of year 1 to
// the zero time — which Extend reads as "unlimited". An end that lies in
// the past must be refused with ErrInvalidInput ("expiresAt must be in the
// future"), not turned into a grant that never ends.
func TestReview22ExtendSubMicrosecondEndIsNotUnlimited(t *testing.T) {
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	e := newEnv(t, sa.WithPolicy(p))
	g := e.grant(sa.GrantInput{Duration: sa.Day})
	before := e.snapshot()

	past := time.Time{}.Add(time.Nanosecond) // not the zero time: IsZero is false
	require.False(t, past.IsZero())
	got, err := e.m.Extend(ctx, g.ID, past, customer)
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a past end is invalid input; got grant ending %v (unlimited: %v)", got.ExpiresAt, got.Unlimited())
	require.Equal(t, before, e.snapshot(), "nothing written")
	cur, err := e.m.Get(ctx, g.ID)
	require.NoError(t, err)
	require.Equal(t, g.ExpiresAt, cur.ExpiresAt, "the grant keeps its end")
}

// RequestAccess sets ExpiresAt = now + RequestTTL without truncating it to
// microseconds, while the Manager judges StatusAt with a clock truncated to
// microseconds. With a RequestTTL that has a sub-microsecond part the
// request is still "pending" for up to a microsecond after its ExpiresAt
// (as returned to the caller and notified as RespondBy), and can be
// approved then. A pending request past ExpiresAt must not be approvable.
func TestReview22RequestPastExpiresAtCannotBeApproved(t *testing.T) {
	p := sa.DefaultPolicy()
	p.RequestTTL = time.Hour + 500*time.Nanosecond
	require.NoError(t, p.Validate())
	e := newEnv(t, sa.WithPolicy(p))
	r := e.request(sa.RequestInput{})

	e.clock.Set(r.ExpiresAt) // the request's own ExpiresAt: expired from here on
	before := e.snapshot()
	_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a request at its ExpiresAt (%v) is expired", r.ExpiresAt)
	require.Equal(t, before, e.snapshot(), "no grant created")
	require.Equal(t, r.ExpiresAt.Truncate(time.Microsecond), r.ExpiresAt,
		"times are truncated to microseconds by the Manager (DESIGN: rules that hold everywhere)")
}

// Policy.Validate accepts a DefaultDuration below a microsecond although
// Grant refuses the same duration when given explicitly ("Duration must be
// at least a microsecond"). Grant with Duration 0 then creates a grant whose
// ExpiresAt equals its StartsAt — expired at birth — and records
// grant.created (and tells the Notifier the customer granted access) for a
// window that does not exist. Either the policy or the grant must be
// refused with ErrInvalidInput.
func TestReview22SubMicrosecondDefaultDurationRefused(t *testing.T) {
	p := sa.DefaultPolicy()
	p.DefaultDuration = 500 * time.Nanosecond
	if err := p.Validate(); err != nil {
		require.ErrorIs(t, err, sa.ErrInvalidInput)
		return
	}
	e := newEnv(t, sa.WithPolicy(p))
	before := e.snapshot()
	g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "zero-length grant %v..%v created", g.StartsAt, g.ExpiresAt)
	require.Equal(t, before, e.snapshot(), "nothing written")
}

// Manager.Events truncated the filter's Until after validating it, and a
// non-zero Until in the first microsecond of year 1 became the zero time:
// no upper bound. Such an Until lets no event through.
func TestReview22EventsTinyUntilIsABound(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{Duration: sa.Day})
	all, err := e.m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.NotEmpty(t, all)
	got, err := e.m.Events(ctx, sa.AuditFilter{TenantID: "acme", Until: time.Time{}.Add(time.Nanosecond)})
	require.NoError(t, err)
	require.Empty(t, got, "an Until in year 1 keeps every event out")
}

// A RequestTTL below a microsecond gives a request that has expired when
// it is made: Policy.Validate refuses it, as it refuses such a
// MaxDuration or preset.
func TestReview22PolicyRefusesSubMicrosecondDurations(t *testing.T) {
	for name, edit := range map[string]func(*sa.Policy){
		"RequestTTL":  func(p *sa.Policy) { p.RequestTTL = 999 * time.Nanosecond },
		"MaxDuration": func(p *sa.Policy) { p.MaxDuration = time.Nanosecond; p.DefaultDuration = time.Nanosecond },
		"Presets": func(p *sa.Policy) {
			p.Presets = []sa.Preset{{Label: "1 d", Duration: sa.Day}, {Label: "tiny", Duration: 10 * time.Nanosecond}}
			p.DefaultDuration = sa.Day
		},
	} {
		p := sa.DefaultPolicy()
		edit(&p)
		require.ErrorIs(t, p.Validate(), sa.ErrInvalidInput, name)
		_, err := sa.NewManager(newEnv(t).store, sa.WithPolicy(p))
		require.ErrorIs(t, err, sa.ErrInvalidInput, name)
	}
}
