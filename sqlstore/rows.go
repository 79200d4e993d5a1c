package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

// queryAll runs the rendered query q and returns every row scanned by
// scan, on SQLite retrying while the database is busy. One round trip.
func queryAll[T any](ctx context.Context, s *Store, op, q string, args []any, scan func(scan func(dest ...any) error) (T, error)) ([]T, error) {
	var out []T
	err := s.read(ctx, func() error {
		out = out[:0]
		if err := s.refuseNUL(args); err != nil {
			return err
		}
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
	q, args = s.limit(q, args, limit)
	return s.sql(q), args
}

// limit appends to the query q a LIMIT of n rows (0: all) and its
// argument. On MySQL "all" is an explicit LIMIT too: it overrides a
// sql_select_limit set after the store checked the session (SET GLOBAL,
// or SET SESSION on a connection the host shares), which would otherwise
// cut a list short — and with it the revocations that act on the list.
func (s *Store) limit(q string, args []any, n int) (string, []any) {
	switch {
	case n > 0:
		return q + ` LIMIT ?`, append(args, n)
	case s.d.Dialect == MySQL:
		return q + ` LIMIT ` + noSelectLimit, args
	}
	return q, args
}

// queryByID runs the rendered single-row query q with id and scans the row
// with scan, on SQLite retrying while busy. A missing row is
// sql.ErrNoRows, unwrapped, so callers can map it to ErrNotFound. One
// round trip.
func (s *Store) queryByID(ctx context.Context, q string, id any, scan func(scan func(dest ...any) error) error) error {
	return s.queryRow(ctx, q, []any{id}, scan)
}

// queryRow is queryByID with any arguments.
func (s *Store) queryRow(ctx context.Context, q string, args []any, scan func(scan func(dest ...any) error) error) error {
	return s.read(ctx, func() error {
		if err := s.refuseNUL(args); err != nil {
			return err
		}
		st, err := s.stmt(ctx, q)
		if err != nil {
			return err
		}
		return scan(st.QueryRowContext(ctx, args...).Scan)
	})
}

// exists reports whether the fixed single-row query q finds a row for its
// arguments (an id, usually).
func (s *Store) exists(ctx context.Context, q string, args ...any) (bool, error) {
	var one int
	err := s.queryRow(ctx, q, args, func(scan func(...any) error) error { return scan(&one) })
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// affected returns how many rows the Exec whose results it is given
// changed, or that Exec's error.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
