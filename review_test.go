package supportaccess_test

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Review of the Check/checkInstrumented split: the defence-in-depth re-check
// of a store's answer must also apply on the instrumented path (metrics on,
// WithCheckSpans, inside a recording span).
func TestReviewInstrumentedCheckDistrustsStore(t *testing.T) {
	o := newOtelEnv(t, sa.WithCheckSpans(true))
	other := o.grant(sa.GrantInput{TenantID: "globex"})
	expired := o.grant(sa.GrantInput{Duration: time.Hour})
	named := o.grant(sa.GrantInput{Grantees: []string{engineer.ID}})
	readOnly := o.grant(sa.GrantInput{})
	scheduled := o.grant(sa.GrantInput{StartsAt: o.clock.Now().Add(3 * time.Hour)})
	ls := &lyingStore{Store: o.store}
	m, err := sa.NewManager(ls, sa.WithTracerProvider(o.tp), sa.WithCheckSpans(true),
		sa.WithNow(func() time.Time { return o.clock.Now().Add(2 * time.Hour) }))
	require.NoError(t, err)
	pctx, parent := o.tp.Tracer("test").Start(ctx, "GET /x")
	defer parent.End()
	for name, c := range map[string]struct {
		g     sa.Grant
		scope sa.Scope
	}{
		"other tenant": {other, sa.ScopeRead}, "expired": {expired, sa.ScopeRead}, "other principal": {named, sa.ScopeRead},
		"missing scope": {readOnly, sa.ScopeWrite}, "host scope": {readOnly, "messages:read"}, "scheduled": {scheduled, sa.ScopeRead},
		"zero grant": {sa.Grant{}, sa.ScopeRead},
	} {
		ls.answer = c.g
		g, err := m.Check(pctx, "acme", support.ID, c.scope)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant, name)
		require.Zero(t, g.ID, name)
	}
}

// Review of ServeHTTP's single defer: a panic of next on the pass-through
// path (request not impersonated) must propagate unchanged, not be turned
// into a "resolver panicked" denial.
func TestReviewPassThroughPanicPropagates(t *testing.T) {
	e := newMWEnv(t)
	denied := 0
	h := e.m.Middleware(func(*http.Request) (sa.Session, bool) { return sa.Session{}, false },
		sa.WithMiddlewareErrorHandler(e.errs.handle),
		sa.WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d sa.Denial) { denied++ }),
	)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("next bug") }))
	require.PanicsWithValue(t, "next bug", func() { mwDo(h, mwReq(http.MethodGet, "/", "")) })
	require.Zero(t, denied, "a panic of next is not a resolver panic")
	require.Empty(t, e.errs.all())
}

// Review of the SWAR asciiPrefix in checkText (reached through
// ValidateActor's ID, a single-line field): random strings dense in
// boundary bytes (controls, DEL, C1 lead bytes, truncated and overlong
// sequences, U+2028) are accepted exactly when a reference rune loop
// (validIdent) accepts them.
func TestReviewCheckTextMatchesReference(t *testing.T) {
	ref := func(s string) bool { return validIdent(s, sa.MaxPrincipalLen, true) } // fuzz_test.go
	alphabet := []string{"a", "~", " ", "\x1f", "\x7f", "\x00", "\n", "\x80", "\xc2\x85", "\xc2\xa0", "\xe2\x80\xa8",
		"\xe2\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "é", "🚀", "\xff", "\x20", "\x21", "\x9f", "\xe0"}
	rng := rand.New(rand.NewPCG(7, 9))
	for i := 0; i < 200000; i++ {
		var b []byte
		// mostly printable runs of varying length so that words and tails both
		// meet the odd byte at every lane
		for n := rng.IntN(6); n >= 0; n-- {
			for k := rng.IntN(12); k > 0; k-- {
				b = append(b, byte(0x20+rng.IntN(0x5f)))
			}
			b = append(b, alphabet[rng.IntN(len(alphabet))]...)
		}
		s := string(b)
		err := sa.ValidateActor(sa.Actor{Kind: sa.ActorSupport, ID: s})
		require.Equal(t, ref(s), err == nil, "%q: %v", s, err)
		if err != nil {
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		}
	}
}
