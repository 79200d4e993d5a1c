package sqlstore

import (
	"context"
	"strings"
)

// queryAll runs the rendered query q and returns every row scanned by
// scan, on SQLite retrying while the database is busy. One round trip.
func queryAll[T any](ctx context.Context, s *Store, op, q string, args []any, scan func(scan func(dest ...any) error) (T, error)) ([]T, error) {
	var out []T
	err := s.read(ctx, func() error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows.Scan)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap(ctx, op, err)
	}
	return out, nil
}

// listQuery completes a List… query: base (a SELECT … FROM) with the
// conditions where joined by AND, newest first (created_at, then id,
// descending) and at most limit rows (0: all). It returns the rendered
// statement and its arguments.
func (s *Store) listQuery(base string, where []string, args []any, limit int) (string, []any) {
	q := base
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY created_at DESC, id DESC`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	return s.sql(q), args
}
