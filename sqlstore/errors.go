package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	sa "github.com/supportaccess/supportaccess"
)

// ErrSchemaTooNew is returned by Migrate when the database records a schema
// version newer than this library knows (a newer release migrated it).
// The store refuses to downgrade it. Like ErrSchemaTooOld it is a fault of
// the deployment, not malformed input: it wraps no sentinel of the root
// package.
var ErrSchemaTooNew = errors.New("sqlstore: database schema is newer than this library")

// ErrSchemaTooOld is returned by every method but Migrate while the
// database records a schema version older than this library needs (Migrate
// was not run, or failed part of the way, with this table prefix): the
// store refuses to work on tables that lack what it writes and reads, so
// Check fails closed and nothing is half-written. Run Migrate. It is a
// fault, like a database that does not answer, and wraps no sentinel of
// the root package: the Manager's telemetry counts it as outcome "error"
// and the middleware answers 503, so monitoring sees an outage.
var ErrSchemaTooOld = errors.New("sqlstore: database schema is older than this library needs")

// errClosed is returned by every method after Close.
var errClosed = errors.New("sqlstore: store is closed")

// The package imports no driver, so driver errors are recognised by the
// methods and fields the common drivers expose: SQLSTATE via SQLState()
// (pgx), the MySQL error number in a Number field (go-sql-driver/mysql), the
// SQLite result code via Code() (modernc.org/sqlite) and, as a last resort,
// the message.

// sqlState returns the SQLSTATE of a PostgreSQL error, or "".
func sqlState(err error) string {
	var e interface{ SQLState() string }
	if errors.As(err, &e) {
		return e.SQLState()
	}
	return ""
}

// mysqlNumber returns the MySQL error number, or 0.
func mysqlNumber(err error) int {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			continue
		}
		if f := v.FieldByName("Number"); f.IsValid() && f.CanUint() && strings.Contains(v.Type().PkgPath(), "mysql") {
			return int(f.Uint())
		}
	}
	return 0
}

// sqliteCode returns the primary SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var e interface{ Code() int }
	if errors.As(err, &e) {
		return e.Code() & 0xff
	}
	return 0
}

// isBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED, the errors a
// write transaction on SQLite retries.
func isBusy(err error) bool {
	if err == nil {
		return false
	}
	switch sqliteCode(err) {
	case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") ||
		strings.Contains(msg, "database table is locked") ||
		strings.Contains(msg, "SQLITE_BUSY") ||
		strings.Contains(msg, "SQLITE_LOCKED")
}

// isDeadlock reports whether the server aborted the transaction to break a
// deadlock or a serialisation conflict.
func isDeadlock(err error) bool {
	switch sqlState(err) {
	case "40001", "40P01":
		return true
	}
	switch mysqlNumber(err) {
	case 1213, 1205: // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
		return true
	}
	return false
}

// wrap adds the operation to err. A deadlock or serialisation failure
// also wraps sa.ErrConflict (a concurrent change won; a retry may succeed),
// and when ctx is done the error wraps ctx.Err(), whatever the driver made
// of the cancellation.
func wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("sqlstore: %s: %w (%w)", op, cerr, err)
	}
	if isDeadlock(err) {
		return fmt.Errorf("sqlstore: %s: %w: %w", op, sa.ErrConflict, err)
	}
	if isTooWide(err) {
		return fmt.Errorf("sqlstore: %s: %w: a value is wider than the database keeps: %w", op, sa.ErrInvalidInput, err)
	}
	if isUnkeepableText(err) {
		return fmt.Errorf("sqlstore: %s: %w: a value holds text the database cannot keep (a NUL byte or invalid UTF-8): %w", op, sa.ErrInvalidInput, err)
	}
	if isMissingSchema(err) && !errors.As(err, new(*missingSchemaError)) {
		return &missingSchemaError{fmt.Errorf("sqlstore: %s: %w (the store's tables are missing: run Migrate, with this table prefix, before using it)", op, err)}
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

// missingSchemaError is an error wrap gave the hint to run Migrate, so
// that wrapping it again does not repeat the hint.
type missingSchemaError struct{ err error }

func (e *missingSchemaError) Error() string { return e.err.Error() }
func (e *missingSchemaError) Unwrap() error { return e.err }

// isTooWide reports whether the server refused a value wider than its
// column or index holds (the statement changed nothing). The stores
// refuse such values themselves (internal/stored), so this is only for
// fields no check covers, such as a long list of scopes on MySQL.
func isTooWide(err error) bool {
	switch sqlState(err) {
	case "22001", "54000": // string_data_right_truncation, program_limit_exceeded (index row size)
		return true
	}
	return mysqlNumber(err) == 1406 // ER_DATA_TOO_LONG
}

// errNULText is refuseNUL's error.
var errNULText = errors.New("a text argument holds a NUL byte, which PostgreSQL cannot keep")

// refuseNUL refuses, on PostgreSQL, statement arguments of which a string
// holds a NUL byte, before the statement is sent: the server refuses such
// text in a bound parameter (SQLSTATE 22021, see isUnkeepableText), but
// with pgx's simple protocol (default_query_exec_mode=simple_protocol in
// the DSN) an unprepared statement carries its arguments in its text, and
// the server answers a bare protocol error (08P01) a caller could not tell
// from an outage.
func (s *Store) refuseNUL(args []any) error {
	if s.d.Dialect != Postgres {
		return nil
	}
	for _, a := range args {
		if v, ok := a.(string); ok && strings.IndexByte(v, 0) >= 0 {
			return errNULText
		}
	}
	return nil
}

// isUnkeepableText reports whether the server refused text its columns
// cannot hold: PostgreSQL's NUL bytes (also refused before sending, by
// refuseNUL) and invalid UTF-8, MySQL's invalid UTF-8 in a utf8mb4 column
// (the statement changed nothing). The Manager never passes such text; a
// direct call may.
func isUnkeepableText(err error) bool {
	if errors.Is(err, errNULText) {
		return true
	}
	switch sqlState(err) {
	case "22021", "22P05": // character_not_in_repertoire, untranslatable_character
		return true
	}
	switch mysqlNumber(err) {
	case 1366: // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: for text, "Incorrect string value" (other values: not this)
		return strings.Contains(err.Error(), "Incorrect string value")
	case 1300: // ER_INVALID_CHARACTER_STRING
		return true
	}
	return false
}

// isMissingSchema reports whether err says a table (or, on MySQL, the
// audit_append procedure) does not exist: the schema was not migrated.
func isMissingSchema(err error) bool {
	if sqlState(err) == "42P01" { // undefined_table
		return true
	}
	switch mysqlNumber(err) {
	case 1146, 1305: // ER_NO_SUCH_TABLE, ER_SP_DOES_NOT_EXIST
		return true
	}
	return sqliteCode(err) == 1 && strings.Contains(err.Error(), "no such table")
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation
// (the statement changed nothing).
func isUniqueViolation(err error) bool { return sqlState(err) == "23505" }

// mayBeDuplicateKey reports whether err may be a duplicate key on any
// dialect: PostgreSQL's unique_violation, MySQL's ER_DUP_ENTRY or any
// SQLite constraint failure (whose extended code the driver may not
// expose). Callers confirm what collided by reading.
func mayBeDuplicateKey(err error) bool {
	return isUniqueViolation(err) || mysqlNumber(err) == 1062 || sqliteCode(err) == 19 ||
		strings.Contains(err.Error(), "UNIQUE constraint failed")
}
