// Review 32: access requests, delegation, sessions and notifications —
// prefix TestReview32.

package supportaccess_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Notification.Reason is "the reason given for the change, else the
// grant's or request's reason". For request.approved the reason given for
// the change is the approver's ApproveInput.Reason (kept as
// DecisionReason and recorded as the request.approved event's Reason), but
// Approve passes the request's own reason, so the customer's contacts never
// see the approver's comment (Deny passes its reason correctly).
func TestReview32ApproveNotificationCarriesApproverReason(t *testing.T) {
	n := &notes{}
	e := newEnv(t, sa.WithNotifier(n))
	r := e.request(sa.RequestInput{Reason: "fix import"})
	_, err := e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{Reason: "ok, read only, one day"})
	require.NoError(t, err)
	evs := e.events(sa.EventRequestApproved)
	require.Len(t, evs, 1)
	require.Equal(t, "ok, read only, one day", evs[0].Reason, "the audit trail has the approver's reason")
	x := n.last(t)
	require.Equal(t, sa.EventRequestApproved, x.Type)
	require.Equal(t, "ok, read only, one day", x.Reason, "the notification should carry the reason given for the approval")
}

// Approve of a request whose duration the policy no longer allows (made
// under a longer MaxDuration): ErrInvalidInput naming Duration, as Grant
// answers the same duration, and nothing changes — the request stays
// pending and no event is written; the approver can approve it with a
// shorter duration. (The doc promised ErrForbidden, audited, which only an
// unlimited grant the policy refuses gets; the doc now says so.)
func TestReview32ApproveDurationThePolicyNoLongerAllows(t *testing.T) {
	e := newEnv(t)
	r := e.request(sa.RequestInput{Duration: 100 * sa.Day})
	p := sa.DefaultPolicy()
	p.MaxDuration = 30 * sa.Day
	m2, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithPolicy(p))
	require.NoError(t, err)
	before := e.snapshot()
	_, err = m2.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.NotErrorIs(t, err, sa.ErrForbidden)
	require.ErrorContains(t, err, "Duration")
	require.Equal(t, before, e.snapshot(), "nothing approved, nothing recorded")
	got, err := e.m.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)

	g, err := m2.Approve(ctx, r.ID, customer, sa.ApproveInput{Duration: 30 * sa.Day})
	require.NoError(t, err)
	require.Equal(t, e.clock.Now().Add(30*sa.Day).Truncate(time.Microsecond), g.ExpiresAt)
}
