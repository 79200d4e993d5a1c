package supportaccess_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview94SweepDeadlineCutFirstHooksReturnsNil: review85 made Sweep
// return the context's error when the caller's deadline cuts a hook
// batch — but only in runHookTasks (retries). When the deadline cuts the
// hooks of the batch Sweep just claimed (the `after` path inside
// m.sweep), the claimer has already sent its final, empty batch, so
// m.sweep returns nil; Sweep then skips the hook-task and request sweeps
// (ctx.Err() != nil) and returns (1, nil): a Sweep that did not do its
// work reports success, and its span ends outcome "ok", status Unset. Doc
// (Sweep): "Errors: the context's error, or the store's".
func TestReview94SweepDeadlineCutFirstHooksReturnsNil(t *testing.T) {
	o := newOtelEnv(t, sa.OnExpire(func(ctx context.Context, _ sa.Grant) error {
		<-ctx.Done() // slower than the caller's deadline
		return ctx.Err()
	}))
	o.grant(sa.GrantInput{Duration: time.Hour, Reason: "r"})
	r, err := o.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: support, Duration: time.Hour})
	require.NoError(t, err)
	o.clock.Advance(48 * time.Hour) // the grant and the pending request are both past their end

	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	n, err := o.m.Sweep(dctx)
	require.Equal(t, 1, n)

	rs, rerr := o.m.ListRequests(ctx, sa.RequestFilter{TenantID: "acme"})
	require.NoError(t, rerr)
	require.Len(t, rs, 1)
	expiredRecorded := len(o.events(sa.EventRequestExpired)) > 0
	s := o.span("supportaccess.Sweep")
	require.Error(t, err, "the deadline cut the hooks and the request sweep was skipped (request expiry recorded: %v, request %s), yet Sweep returned nil", expiredRecorded, r.ID)
	require.NotEqual(t, sa.OutcomeOK, attrs(s)[sa.AttrKeyOutcome])
	require.Equal(t, codes.Error, s.Status().Code)
}

// TestReview94GoexitAfterFirstAssignmentIsOK: errNotReturned's comment
// says that for runtime.Goexit (which endOp cannot recover) "each
// operation sets its named error result to errNotReturned first, and
// every return overwrites it" — but AddGrantee's `cur, err :=
// m.store.GetGrant(...)` assigns the named err (nil) before the
// Authorizer (host code) runs. runtime.Goexit in the Authorizer (t.FailNow
// in a test's fake, a case Sweep's doc names) ends the span with outcome
// "ok", status Unset. Same for RequestAccess (rs, err :=
// m.requestStore()), Approve/Deny (decisionTarget), ListRequests and
// Sweep (_, err = m.sweep(...) before hooks and the request sweep).
func TestReview94GoexitAfterFirstAssignmentIsOK(t *testing.T) {
	var goexit bool
	o := newOtelEnv(t, sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error {
		if goexit {
			runtime.Goexit()
		}
		return nil
	}))
	g := o.grant(sa.GrantInput{Grantees: []string{engineer.ID}, Duration: time.Hour})
	goexit = true
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = o.m.AddGrantee(ctx, g.ID, "colleague@vendor.example", customer)
	}()
	<-done
	s := o.span("supportaccess.AddGrantee")
	require.NotEqual(t, sa.OutcomeOK, attrs(s)[sa.AttrKeyOutcome], "an AddGrantee that never returned is not ok")
	require.Equal(t, codes.Error, s.Status().Code)
}

// TestReview94CommittedGrantNotCountedWhenPanicFollows: Grant (and
// Approve) add to supportaccess.grants.created in the deferred telemetry
// only when err == nil; a panic after the commit (the error handler's,
// reporting a failed notification — host code, which the library lets
// through) leaves a grant that exists uncounted. Revoke counts at the
// commit (revokeQuietly) and Sweep counts committed expiries before
// raising a panic, so created and revoked/expired diverge for the same
// kind of event.
func TestReview94CommittedGrantNotCountedWhenPanicFollows(t *testing.T) {
	var panicky bool
	o := newOtelEnv(t,
		sa.WithNotifier(sa.NotifierFunc(func(context.Context, sa.Notification) error { return errBoom })),
		sa.WithErrorHandler(func(context.Context, error) {
			if panicky {
				panic("error handler bug")
			}
		}))
	panicky = true
	require.PanicsWithValue(t, "error handler bug", func() {
		_, _ = o.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	})
	gs, err := o.store.ListGrants(ctx, sa.ListFilter{}, o.now())
	require.NoError(t, err)
	require.Len(t, gs, 1, "the grant was created")
	require.Panics(t, func() { _, _ = o.m.Revoke(ctx, gs[0].ID, customer, "") })
	got := o.metrics()
	require.EqualValues(t, 1, got["supportaccess.grants.revoked"], "Revoke counts its committed revocation")
	require.EqualValues(t, 1, got["supportaccess.grants.created"], "the committed grant is not counted")
}
