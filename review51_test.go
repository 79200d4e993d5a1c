package supportaccess_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview51CheckCountsWhenDurationDropped: Check asks only the
// supportaccess.checks counter whether metrics are wanted (a second
// Enabled call on the default path would cost more than its telemetry
// budget), and an SDK View decides per instrument. The review found that a
// View dropping the counter silently stops the histogram too; that is now
// documented on Check, with the supported way to keep only one instrument:
// drop the duration, and the counter keeps counting — which this test
// holds.
func TestReview51CheckCountsWhenDurationDropped(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	drop := sdkmetric.NewView(sdkmetric.Instrument{Name: "supportaccess.check.duration"},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}})
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithView(drop))
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })
	e := newEnv(t, sa.WithMeterProvider(mp))
	e.grant(sa.GrantInput{})

	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	var count int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			require.NotEqual(t, "supportaccess.check.duration", m.Name, "the view drops the duration")
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "supportaccess.checks" {
				for _, p := range s.DataPoints {
					count += p.Value
				}
			}
		}
	}
	require.EqualValues(t, 1, count, "supportaccess.checks counts the check with the duration dropped")
}

// errStepUp is a host Authorizer's typed refusal.
var errStepUp = errors.New("step-up authentication required")

// TestReview51AuthorizerErrorIsWrapped: the Authorizer doc (authz.go,
// type Authorizer) promises "any error refuses (the Manager wraps it in
// ErrForbidden unless it already is)". Manager.authorize (authz.go,
// `return m.refuse(ctx, action, by, tenantID, grantID, errorText(err))`)
// keeps only the error's text: refuse builds a fresh
// fmt.Errorf("%w: %s", ErrForbidden, why), so errors.Is / errors.As no
// longer find the host's error (a host cannot tell "needs step-up
// authentication" from other refusals to redirect its admin), and an
// error that already wraps ErrForbidden is wrapped again, reading
// "supportaccess: forbidden: supportaccess: forbidden: …". Expected: the
// returned error wraps both ErrForbidden and the Authorizer's error (the
// cleaned text can stay in the audit event, as hostError does for
// notifiers), and is not prefixed twice.
func TestReview51AuthorizerErrorIsWrapped(t *testing.T) {
	e := newEnv(t, sa.WithAuthorizer(func(c ctxT, a sa.Action, by sa.Actor, tenant string) error {
		switch a {
		case sa.ActionApprove:
			return errStepUp
		case sa.ActionDeny:
			return sa.ErrForbidden // already a refusal
		}
		return sa.DefaultAuthorizer(c, a, by, tenant)
	}))
	r := e.request(sa.RequestInput{})

	_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.Len(t, e.events(sa.EventActionRefused), 1, "the refusal is audited")
	require.ErrorIs(t, err, errStepUp, "the Authorizer's error is wrapped, as documented")

	_, err = e.m.Deny(ctx, r.ID, customer, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.NotContains(t, err.Error(), sa.ErrForbidden.Error()+": "+sa.ErrForbidden.Error(),
		"an error that already is ErrForbidden is not wrapped in it again")
}

// TestReview51AddGranteeRefusalOfGenericGrantIsAudited: AddGrantee
// (delegate.go, `if len(cur.Grantees) == 0 { return … ErrInvalidInput … }`)
// rejects a grant open to any support principal before it asks the
// Authorizer. An actor the Authorizer refuses — here the system actor,
// which DefaultAuthorizer never lets add grantees (a host's rule would
// equally refuse a customer of another tenant) — therefore gets
// ErrInvalidInput, learns the shape of a grant it may not touch, and its
// attempt leaves no action.refused event. Everywhere else (Revoke, Extend
// via Manager.update, Approve/Deny via decisionTarget) authorisation comes
// right after the load and before any state check, and every refusal is
// audited. Expected: ErrForbidden and one action.refused event
// (action add_grantee) for an actor the Authorizer refuses, whatever the
// grant's grantees.
func TestReview51AddGranteeRefusalOfGenericGrantIsAudited(t *testing.T) {
	e := newEnv(t)
	g := e.grant(sa.GrantInput{}) // open to any support principal
	_, err := e.m.AddGrantee(ctx, g.ID, "colleague@vendor.example", system)
	require.ErrorIs(t, err, sa.ErrForbidden, "the Authorizer refuses the system actor; got %v", err)
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 1, "the refused attempt is audited")
	require.Equal(t, string(sa.ActionAddGrantee), refused[0].Attrs[sa.AttrAction])
}

// TestReview51RefusedDecisionNamesTheRequest: a refused Approve or Deny is
// audited as action.refused, but decisionTarget (requests.go,
// `m.authorize(ctx, action, by, cur.TenantID, uuid.Nil)` and
// `m.refuse(ctx, action, by, cur.TenantID, uuid.Nil, "only customers decide
// access requests")`) and Approve's policy refusal
// (`m.auditPolicyRefusal(ctx, ActionApprove, by, tenant, uuid.Nil, err)`)
// record it with neither a grant ID nor Attrs[AttrRequestID]: the trail
// says that support tried to approve *something* in the tenant, not which
// request — with several pending requests (one per ticket) an auditor
// cannot tell whether support tried to approve its own request. Refusals of
// grant operations carry the grant's ID (Manager.update passes it), and
// every other request.* event carries AttrRequestID. Expected: the
// action.refused event of a refused decision names the request
// (Attrs[AttrRequestID] = the request's ID).
func TestReview51RefusedDecisionNamesTheRequest(t *testing.T) {
	e := newEnv(t)
	e.request(sa.RequestInput{TicketRef: "T-1"})
	r := e.request(sa.RequestInput{TicketRef: "T-2"})
	_, err := e.m.Approve(ctx, r.ID, engineer, sa.ApproveInput{}) // support approving its own request
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.Deny(ctx, r.ID, system, "")
	require.ErrorIs(t, err, sa.ErrForbidden)
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 2)
	for _, ev := range refused {
		require.Equal(t, r.ID.String(), ev.Attrs[sa.AttrRequestID], "the refused %s names the request", ev.Attrs[sa.AttrAction])
	}
}
