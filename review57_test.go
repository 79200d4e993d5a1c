package supportaccess_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// TestReview57RevokeTenantAuditRefusalNotReportedAsSuccess: RevokeTenant
// skips a grant whose revocation fails with any error wrapping
// ErrInvalidInput, taking it for "ended meanwhile". An auditor's refusal
// is such an error when the host's audit sink wraps the library's
// sentinel (hostError/auditError keep the chain). The revocation is then
// not made — the grant keeps its access — and RevokeTenant returns no
// error at all: the customer's "revoke all support access now" reports
// success while support still gets in. Expected, as RevokeTenant's doc
// says and as Revoke does for the same failure: the auditor's error is
// returned (fail closed), never swallowed; only a grant that really ended
// (its status, or its recorded expiry) may be skipped.
func TestReview57RevokeTenantAuditRefusalNotReportedAsSuccess(t *testing.T) {
	st := memstore.New()
	aud := &reviewAuditor{fail: sa.EventGrantRevoked, failErr: fmt.Errorf("siem: event refused: %w", sa.ErrInvalidInput)}
	e := newEnvOn(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)))
	g := e.grant(sa.GrantInput{Duration: time.Hour})

	// The single-grant path reports the failure.
	_, err := e.m.Revoke(ctx, g.ID, customer, "incident")
	require.Error(t, err, "Revoke reports the auditor's refusal")

	revoked, err := e.m.RevokeTenant(ctx, "acme", customer, "incident")
	_, checkErr := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, checkErr, "precondition: the revocation was not made (the auditor refused it)")
	require.Empty(t, revoked)
	require.Error(t, err, "RevokeTenant reports success although the tenant's grant is still active")
}
