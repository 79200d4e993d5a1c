package supportaccess_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// TestReview93NilPointerAuditor: NewManager refuses a nil-pointer store
// with ErrInvalidInput ("a nil *sqlstore.Store, say, from a New whose error
// was dropped", manager.go:237) and WithTracerProvider/WithMeterProvider
// ignore nil pointers, but WithAuditor and WithAuditLog take a nil pointer
// (the same dropped-error mistake, for the audit store) as a working
// auditor/log: NewManager succeeds, and the first Grant (or Events) panics
// with a nil dereference instead of returning an error.
func TestReview93NilPointerAuditor(t *testing.T) {
	var audit *memstore.Store // from a constructor whose error was dropped
	for name, opt := range map[string]sa.Option{
		"WithAuditor":               sa.WithAuditor(audit),
		"WithAuditor(MultiAuditor)": sa.WithAuditor(sa.MultiAuditor(memstore.New(), audit)),
		"WithAuditLog":              sa.WithAuditLog(audit),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := sa.NewManager(memstore.New(), opt)
			if err == nil {
				require.NotPanics(t, func() {
					_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer})
					if err == nil {
						_, err = m.Events(ctx, sa.AuditFilter{})
					}
				}, "NewManager accepted a nil-pointer audit store")
			}
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		})
	}
}
