package sqlstore

import (
	"context"

	sa "github.com/supportaccess/supportaccess"
)

// Test hooks of the audit benchmarks. They exist only in this package's
// test binary.

// RecordUnchained is Record without the hash chain: the same statements
// (lock the head, insert, update the head) with an empty hash. It is the
// baseline of BenchmarkRecord.
func RecordUnchained(ctx context.Context, s *Store, e sa.Event) error {
	return s.inTxRetry(ctx, "record unchained", func(t *txn) error {
		h, err := s.lockHead(t, e.TenantID)
		if err != nil {
			return err
		}
		e.Seq, e.Hash = h.seq+1, []byte{}
		if err := s.insertEvents(t, []sa.Event{e}); err != nil {
			return err
		}
		_, err = t.exec(s.q.updateHead, e.Seq, e.Hash, e.TenantID)
		return err
	})
}

// SeedChain appends the already chained events evs (one tenant, Seq from
// the head's on) in transactions of maxEventsPerInsert-row INSERTs and
// moves the head to the last one: the fast way to build a long chain for
// benchmarks.
func SeedChain(ctx context.Context, s *Store, evs []sa.Event) error {
	const perTx = 20 * maxEventsPerInsert
	for len(evs) > 0 {
		n := min(len(evs), perTx)
		chunk := evs[:n]
		evs = evs[n:]
		err := s.inTx(ctx, "seed chain", func(t *txn) error {
			if _, err := s.lockHead(t, chunk[0].TenantID); err != nil {
				return err
			}
			for i := 0; i < len(chunk); i += maxEventsPerInsert {
				if err := s.insertEvents(t, chunk[i:min(i+maxEventsPerInsert, len(chunk))]); err != nil {
					return err
				}
			}
			last := chunk[len(chunk)-1]
			_, err := t.exec(s.q.updateHead, last.Seq, last.Hash, last.TenantID)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// EventsQueryForTest returns the SQL and arguments of Events(f), for the
// EXPLAIN tests.
func (s *Store) EventsQueryForTest(f sa.AuditFilter) (string, []any) { return s.eventsQuery(f) }
