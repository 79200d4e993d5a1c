package supportaccess_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Tests of the ninth review round (Manager API and audit side).

// legacyTenant is a tenant ID the library accepted until fa4c48c (it holds
// a zero-width space) and that databases upgraded from an earlier version
// therefore hold, in grants and in audit chains; Sweep keeps appending
// events for such a tenant's grants (the store's own writes do not
// validate the tenant).
const legacyTenant = "acme\u200b"

// recordLegacy appends n events of legacyTenant straight to the store, as
// the library did before the identifier check was tightened.
func recordLegacy(t *testing.T, e *env, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventGrantExpired,
			TenantID: legacyTenant, Actor: sa.SystemActor}))
	}
}

// TestReview9APIExportAllTenantsSurvivesLegacyTenantID: fa4c48c made every
// filter and cursor tenant ID an "identity" (validateTenant refuses
// invisible characters), including AuditFilter.After.TenantID. ExportAudit
// of all tenants pages with f.After = the last event's cursor; when a page
// ends on an event of a tenant stored before the upgrade (legacyTenant),
// the next m.Events call fails f.Validate and the export aborts after
// ExportPageSize lines with ErrInvalidInput: the whole-store export —
// every tenant after that one included — can no longer be taken. The same
// check refuses AuditPage's next cursor, and VerifyAudit and PurgeAudit
// of that tenant (its trail can be neither verified nor purged for
// retention).
func TestReview9APIExportAllTenantsSurvivesLegacyTenantID(t *testing.T) {
	e := newEnv(t)
	recordLegacy(t, e, sa.ExportPageSize+1)
	require.NoError(t, e.store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.now(), Type: sa.EventGrantExpired,
		TenantID: "zeta", Actor: sa.SystemActor}))

	t.Run("ExportAudit", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := e.m.ExportAudit(ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain})
		require.NoError(t, err, "export of all tenants aborted after %d lines", n)
		require.Equal(t, sa.ExportPageSize+2, n)
	})
	t.Run("AuditPage", func(t *testing.T) {
		_, next, err := e.m.AuditPage(ctx, sa.AuditFilter{Order: sa.AuditByChain, Limit: 1}, "")
		require.NoError(t, err)
		_, _, err = e.m.AuditPage(ctx, sa.AuditFilter{Order: sa.AuditByChain, Limit: 1}, next)
		require.NoError(t, err, "the cursor AuditPage returned is refused")
	})
	t.Run("VerifyAudit", func(t *testing.T) {
		rep, err := e.m.VerifyAudit(ctx, legacyTenant)
		require.NoError(t, err)
		require.Equal(t, int64(sa.ExportPageSize+1), rep.Events)
	})
	t.Run("PurgeAudit", func(t *testing.T) {
		_, err := e.m.PurgeAudit(ctx, legacyTenant, e.now().Add(time.Hour))
		require.NoError(t, err, "retention cannot purge the tenant's trail")
	})
}

// (TestReview9APIZeroTimeExportFromBeforeVerifies was here: an export of a
// memstore event without a Time, taken before the canonical encoding of
// the zero time changed, no longer verified. No store takes such an event
// any more — the conformance case AuditRecordRefusesZeroTime — so no chain
// or export of the library's can hold one.)

// TestReview9APIIdentifierInvisibleWhitespace: SECURITY.md now says that
// identifiers may not hold invisible characters, "so two that look the
// same are the same". hiddenRune covers Cf, Other_Default_Ignorable and
// variation selectors, but not the Unicode space separators (no-break
// space, figure space, ideographic space …) nor the Braille blank, which
// render exactly as an ASCII space (or as nothing at the end of an ID): a
// tenant "acme corp" and "acme\u00a0corp" look the same in an audit view
// and are different tenants.
func TestReview9APIIdentifierInvisibleWhitespace(t *testing.T) {
	e := newEnv(t)
	for _, tenant := range []string{"acme\u00a0corp", "acme\u2007corp", "acme\u202fcorp", "acme\u3000corp", "acme\u2800"} {
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: customer})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "tenant %q looks like an ASCII-spaced one", tenant)
	}
}
