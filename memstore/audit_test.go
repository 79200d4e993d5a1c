package memstore_test

import (
	"context"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// tamperable is a memstore whose audit events the conformance suite can
// change behind its back (storetest.AuditTamperer), through the hooks of
// export_test.go.
type tamperable struct{ *memstore.Store }

var _ storetest.AuditTamperer = tamperable{}

func (s tamperable) TamperReason(_ context.Context, tenantID string, seq int64, reason string) error {
	return memstore.TamperReason(s.Store, tenantID, seq, reason)
}

func (s tamperable) TamperDelete(_ context.Context, tenantID string, seq int64) error {
	return memstore.TamperDelete(s.Store, tenantID, seq)
}

func (s tamperable) TamperSeq(_ context.Context, tenantID string, seq, newSeq int64) error {
	return memstore.TamperSeq(s.Store, tenantID, seq, newSeq)
}

func (s tamperable) TamperInsert(_ context.Context, e sa.Event) error {
	return memstore.TamperInsert(s.Store, e)
}

func (s tamperable) TamperCheckpoint(_ context.Context, tenantID string, cp sa.ChainLink) error {
	return memstore.TamperCheckpoint(s.Store, tenantID, cp)
}
