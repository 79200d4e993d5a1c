package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite" (pure Go)

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
)

// sqliteFile is the database file name inside the -data directory.
const sqliteFile = "webapp.db"

// openStore opens the store the flags ask for and migrates its schema. It
// returns the store, what to close on shutdown (nil for none) and a
// description for the log. Without -data, SQLite lives in a new temporary
// directory that is removed on shutdown.
func openStore(ctx context.Context, o options) (sa.Store, io.Closer, string, error) {
	var (
		driver, dsn, desc string
		dialect           sqlstore.Dialect
		cleanup           func() error
	)
	switch o.Dialect {
	case "memory":
		return memstore.New(), nil, "memory (nothing is kept)", nil
	case "sqlite":
		dir := o.Data
		if dir == "" {
			tmp, err := os.MkdirTemp("", "supportaccess-webapp-")
			if err != nil {
				return nil, nil, "", fmt.Errorf("sqlite: %w", err)
			}
			dir, cleanup = tmp, func() error { return os.RemoveAll(tmp) }
		} else if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, "", fmt.Errorf("sqlite: %w", err)
		}
		driver, dsn, dialect = "sqlite", filepath.Join(dir, sqliteFile), sqlstore.SQLite
		desc = "sqlite " + dsn
		if cleanup != nil {
			desc += " (temporary: removed on exit; use -data to keep it)"
		}
	case "postgres", "mysql":
		if o.DSN == "" {
			return nil, nil, "", fmt.Errorf("-dialect %s needs -dsn", o.Dialect)
		}
		driver, dsn, dialect, desc = "pgx", o.DSN, sqlstore.Postgres, "postgres"
		if o.Dialect == "mysql" {
			driver, dialect, desc = "mysql", sqlstore.MySQL, "mysql"
		}
	default:
		return nil, nil, "", fmt.Errorf("unknown -dialect %q (want sqlite, postgres, mysql or memory)", o.Dialect)
	}

	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, nil, "", errors.Join(fmt.Errorf("open %s: %w", o.Dialect, err), runCleanup(cleanup))
	}
	c := &dbCloser{db: db, cleanup: cleanup}
	fail := func(err error) (sa.Store, io.Closer, string, error) {
		return nil, nil, "", errors.Join(err, c.Close())
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		return fail(fmt.Errorf("connect to %s: %w", o.Dialect, err))
	}
	var sopts []sqlstore.Option
	if o.tablePrefix != "" {
		sopts = append(sopts, sqlstore.WithTablePrefix(o.tablePrefix))
	}
	st, err := sqlstore.New(db, dialect, sopts...)
	if err != nil {
		return fail(err)
	}
	c.store = st
	if err := st.Migrate(ctx); err != nil {
		return fail(fmt.Errorf("migrate %s: %w", o.Dialect, err))
	}
	return st, c, desc, nil
}

// dbCloser closes the store, then the database, then removes a temporary
// SQLite directory.
type dbCloser struct {
	store   *sqlstore.Store
	db      *sql.DB
	cleanup func() error
}

func (c *dbCloser) Close() error {
	var errs []error
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	errs = append(errs, c.db.Close(), runCleanup(c.cleanup))
	return errors.Join(errs...)
}

func runCleanup(f func() error) error {
	if f == nil {
		return nil
	}
	return f()
}
