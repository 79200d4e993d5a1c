// Review 54: second reading of today's root-package fixes (8eb5b91,
// 3a50da4, e6eabf8, e5f2d20, d0fc12a, 8c9a841) — prefix TestReview54.

package supportaccess_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// review54NilCauseErr is a host refusal type with a cause: its methods
// dereference the receiver, so a typed nil *review54NilCauseErr returned
// as an error panics in Error and in Unwrap (the classic typed-nil gotcha,
// which errorMessage exists to survive).
type review54NilCauseErr struct{ cause error }

func (e *review54NilCauseErr) Error() string { return "needs step-up: " + e.cause.Error() }
func (e *review54NilCauseErr) Unwrap() error { return e.cause }

// TestReview54TypedNilAuthorizerErrorRefusalIsAudited: before e5f2d20,
// Manager.authorize turned any Authorizer error into a refusal with
// errorText(err) — errorMessage recovers a panicking Error method ("host
// code, which must not keep a failure from being recorded"), so a typed
// nil error still produced an audited action.refused and ErrForbidden.
// e5f2d20 added authorizerError (authz.go, `if errors.Is(err,
// ErrForbidden)`), evaluated as an argument of refuseAs before the event
// is recorded: errors.Is calls the host error's Unwrap method outside any
// recover, so an error type whose Unwrap dereferences its receiver panics
// there. The refused Grant then panics out of the Manager and the refusal
// never reaches the audit trail. Expected (as before the commit, and as
// errorMessage promises for host errors): ErrForbidden returned and one
// action.refused event recorded; whatever the Unwrap walk does must not
// keep the refusal from being audited.
func TestReview54TypedNilAuthorizerErrorRefusalIsAudited(t *testing.T) {
	e := newEnv(t, sa.WithAuthorizer(func(c ctxT, a sa.Action, by sa.Actor, tenant string) error {
		if a == sa.ActionGrant {
			var err *review54NilCauseErr
			return err // non-nil error holding a nil pointer
		}
		return sa.DefaultAuthorizer(c, a, by, tenant)
	}))
	var err error
	p := func() (p any) {
		defer func() { p = recover() }()
		_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		return nil
	}()
	require.Nil(t, p, "Grant panicked on the Authorizer's typed nil refusal")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Len(t, e.events(sa.EventActionRefused), 1, "the refusal is audited")
}

// TestReview54ScopeListNotClippedInSupportRequest: e6eabf8 made
// requestEvent (middleware_audit.go, `attrs[AttrScope] = cleanText(scope)`)
// clean the scope attribute to keep a malformed RequireScope scope's
// control characters out of the trail. But cleanText (notify.go) also
// clips to MaxReasonLen (2000 bytes) — checkText fails on length alone —
// and the support.request event's scope attribute is not one scope but
// the comma-joined list of every scope the request relied on
// (reqState.audit, `strings.Join(scopes, ",")`; support.change likewise).
// A grant may hold MaxScopes scopes of MaxScopeLen bytes each, so a
// request that requires all of them has a list of over 2000 bytes of
// perfectly valid text: it is now silently cut mid-scope (no marker), and
// the audit trail no longer says which scopes the request used.
// Expected: a valid scope list is recorded whole (clean the control
// characters, do not clip a list no longer than the scopes it names).
func TestReview54ScopeListNotClippedInSupportRequest(t *testing.T) {
	e := newMWEnv(t)
	scopes := []sa.Scope{sa.ScopeRead}
	for i := 1; i < sa.MaxScopes; i++ {
		s := fmt.Sprintf("s%02d:", i)
		scopes = append(scopes, sa.Scope(s+strings.Repeat("x", sa.MaxScopeLen-len(s))))
	}
	e.grant(sa.GrantInput{Scopes: scopes, Duration: time.Hour})
	var h http.Handler = &mwOK{}
	for _, s := range scopes[1:] {
		h = sa.RequireScope(s)(h)
	}
	rec := mwDo(e.wrap(h), mwReq(http.MethodGet, "/reports", "generic"))
	require.Equal(t, http.StatusOK, rec.Code, "every scope is granted")
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	attr := evs[0].Attrs[sa.AttrScope]
	got := strings.Split(attr, ",")
	for _, s := range scopes {
		require.True(t, slices.Contains(got, string(s)), "scope %s… missing from the recorded list (%d bytes recorded)", s[:min(4, len(s))], len(attr))
	}
}

// TestReview54DecidingAuditorSelfPanickingErrorPanicsSweep: 3a50da4 made
// every auditor error go through auditError (errorMessage: Error called
// once, its panic recovered) — recordExtra, record, recordFact and
// recordEach — because fmt's %w calls a host error's Error method again
// and re-panics when it panics with itself (review 48). It left one
// auditor error on fmt: recordLifecycle (expiry.go, `return nil,
// fmt.Errorf("audit: %w", err)`), the refusal of the auditor that decides
// Sweep's records when the store is not among the auditors (WithAuditor
// naming others only). There, a refusal whose Error method panics with
// itself makes fmt.Errorf panic inside the claim: the claimer's recover
// hands the panic to Sweep, which panics with the auditor's error value
// instead of returning the refusal (documented: "a failure of the first
// auditor leaves it due for the next Sweep"). With RunExpiry every tick
// then crashes, where any other auditor's identical refusal is merely
// reported. Expected: Sweep returns an error wrapping the auditor's,
// without panicking; the grant stays due.
func TestReview54DecidingAuditorSelfPanickingErrorPanicsSweep(t *testing.T) {
	var calls atomic.Int32
	aud := &review48ErrAuditor{typ: sa.EventGrantExpired, err: review48SelfPanicErr{&calls}}
	e := newEnv(t, sa.WithAuditor(aud), sa.WithErrorHandler((&mwErrs{}).handle))
	g := e.grant(sa.GrantInput{Duration: time.Hour})
	e.clock.Set(g.ExpiresAt)

	var err error
	var p any
	func() {
		defer func() { p = recover() }() // p is not formatted: fmt would re-panic
		_, err = e.m.Sweep(ctx)
	}()
	_, isAuditorErr := p.(review48SelfPanicErr)
	require.False(t, p != nil, "the deciding auditor's refusal became a panic of Sweep (with the auditor's error: %t; Error called %d times)",
		isAuditorErr, calls.Load())
	require.Error(t, err, "the refusal is returned")
	require.Empty(t, aud.find(sa.EventGrantExpired, g.ID))
}
