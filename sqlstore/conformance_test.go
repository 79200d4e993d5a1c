package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

func TestConformance(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) sa.Store {
				db := sqltest.Open(t, d)
				return tamperStore{sqltest.NewStoreOn(t, db, d), db, d}
			})
		})
	}
}

// tamperStore is the store with storetest.AuditTamperer: plain SQL on the
// events table behind the store's back, leaving the chain head alone.
type tamperStore struct {
	*sqlstore.Store
	db *sql.DB
	d  sqlstore.Dialect
}

var _ storetest.AuditTamperer = tamperStore{}

func (s tamperStore) exec(ctx context.Context, q string, args ...any) error {
	q = "UPDATE " + s.TablePrefix() + q
	if s.d == sqlstore.Postgres {
		q = dollar(q)
	}
	_, err := s.db.ExecContext(ctx, q, args...)
	return err
}

func (s tamperStore) TamperReason(ctx context.Context, tenantID string, seq int64, reason string) error {
	return s.exec(ctx, `audit_events SET reason = ? WHERE tenant_id = ? AND seq = ?`, reason, tenantID, seq)
}

func (s tamperStore) TamperDelete(ctx context.Context, tenantID string, seq int64) error {
	q := `DELETE FROM ` + s.TablePrefix() + `audit_events WHERE tenant_id = ? AND seq = ?`
	if s.d == sqlstore.Postgres {
		q = dollar(q)
	}
	_, err := s.db.ExecContext(ctx, q, tenantID, seq)
	return err
}

func (s tamperStore) TamperSeq(ctx context.Context, tenantID string, seq, newSeq int64) error {
	return s.exec(ctx, `audit_events SET seq = ? WHERE tenant_id = ? AND seq = ?`, newSeq, tenantID, seq)
}

func (s tamperStore) TamperInsert(ctx context.Context, e sa.Event) error {
	return s.InsertEventForTest(ctx, e)
}

var _ storetest.CheckpointTamperer = tamperStore{}

func (s tamperStore) TamperCheckpoint(ctx context.Context, tenantID string, cp sa.ChainLink) error {
	var hash any // NULL for the start of the chain, as the store leaves it
	if cp.Hash != nil {
		hash = cp.Hash
	}
	return s.exec(ctx, `audit_heads SET checkpoint_seq = ?, checkpoint_hash = ? WHERE tenant_id = ?`, cp.Seq, hash, tenantID)
}

// TestConformanceSQLiteOneConnection runs the suite on a pool of one
// connection, a common SQLite setting: the store never needs a second
// connection while it holds one (no deadlock on the pool).
func TestConformanceSQLiteOneConnection(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sa.Store {
		db := sqltest.Open(t, sqlstore.SQLite)
		db.SetMaxOpenConns(1)
		return tamperStore{sqltest.NewStoreOn(t, db, sqlstore.SQLite), db, sqlstore.SQLite}
	})
}
