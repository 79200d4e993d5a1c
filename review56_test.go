// Review 56: second reading of 16df4a0, f32e00c, ccbee34, b3d24f6 —
// prefix TestReview56.

package supportaccess_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview56DeniedScopeAttrUnbounded: 16df4a0 replaced
// `attrs[AttrScope] = cleanText(scope)` with cleanChars(scope) in
// requestEvent (middleware_audit.go) so that support.request's
// comma-joined scope list is kept whole. But requestEvent also builds the
// access.denied event (recordDenial, middleware.go) and support.scope,
// where the scope is the one a RequireScope was given — "RequireScope
// takes any Scope": it is never validated before it is audited, and a
// scope longer than MaxScopeLen is refused by Check as malformed and then
// recorded as is. Before the commit cleanText clipped it to MaxReasonLen;
// now any length reaches the tenant's hash-chained trail (a host building
// the scope from the request — RequireScope(Scope("doc:"+id)) — lets the
// support user write up to the server's header limit, ~1 MB, into an
// event per request; the export, VerifyAudit and every page read carry
// it). Only the list of granted scopes (each valid, at most MaxScopeLen)
// needed to escape the clip. Expected: an access.denied event's scope
// attribute stays bounded (at most MaxReasonLen bytes, as before).
func TestReview56DeniedScopeAttrUnbounded(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour})
	long := sa.Scope("doc:" + strings.Repeat("x", 200_000))
	h := sa.RequireScope(long)(&mwOK{})
	rec := mwDo(e.wrap(h), mwReq(http.MethodGet, "/reports", "generic"))
	require.NotEqual(t, http.StatusOK, rec.Code, "a malformed scope is refused")
	evs := e.events(sa.EventAccessDenied)
	require.Len(t, evs, 1)
	require.LessOrEqual(t, len(evs[0].Attrs[sa.AttrScope]), sa.MaxReasonLen,
		"the denied scope is recorded with %d bytes", len(evs[0].Attrs[sa.AttrScope]))
}

// TestReview56TypedNilAuthorizerErrorPanicsTracedGrant: 16df4a0 guarded
// the one errors.Is that authorizerError (authz.go) makes on an
// Authorizer's error (hostIs) against a host Unwrap that panics (a typed
// nil pointer returned as an error), but the error it returns still holds
// that host error: forbiddenError.Unwrap yields [ErrForbidden, err].
// Every later errors.Is with another target walks past ErrForbidden into
// the host's Unwrap — and the Manager makes such calls itself: with a
// tracer provider installed, Grant's deferred endSpan (telemetry.go)
// classifies the error with outcomeOf, whose first case is
// errors.Is(err, ErrNoActiveGrant). So a traced Manager panics out of
// Grant on the very refusal review 54 fixed (the refusal is audited, but
// the caller gets a panic instead of ErrForbidden). Expected: as without
// tracing, Grant returns an error wrapping ErrForbidden and does not
// panic (keep the host error out of the walk once it panicked, or
// classify with a guarded errors.Is).
func TestReview56TypedNilAuthorizerErrorPanicsTracedGrant(t *testing.T) {
	e := newOtelEnv(t, sa.WithAuthorizer(func(c ctxT, a sa.Action, by sa.Actor, tenant string) error {
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
	require.Nil(t, p, "Grant panicked on the Authorizer's typed nil refusal (with tracing)")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Len(t, e.events(sa.EventActionRefused), 1, "the refusal is audited")
}
