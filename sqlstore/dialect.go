package sqlstore

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

// Dialect selects the SQL flavour of the database behind the *sql.DB.
type Dialect int

// Supported dialects.
const (
	// Postgres is PostgreSQL 12 or newer (tested with the pgx driver).
	Postgres Dialect = iota + 1
	// MySQL is MySQL 8 or MariaDB 10.6 or newer (tested with
	// go-sql-driver/mysql; any DSN works, parseTime and loc included).
	MySQL
	// SQLite is SQLite 3.35 or newer (tested with the pure-Go
	// modernc.org/sqlite driver).
	SQLite
)

// String returns "postgres", "mysql" or "sqlite".
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	case SQLite:
		return "sqlite"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// dialect holds everything that differs between the databases, so that the
// rest of the package writes one SQL text per statement. SQL is written with
// "?" placeholders and "{p}" for the table prefix; Store.sql renders it.
type dialect struct {
	Dialect
	// dollar renders placeholders as $1, $2, … (PostgreSQL).
	dollar bool
	// forUpdate is appended to a SELECT that locks the rows it reads;
	// empty on SQLite, where the transaction holds the write lock from its
	// first statement.
	forUpdate string
	// skipLocked is appended to the SELECT of ClaimTransitions.
	skipLocked string
	// byPK follows the table of an UPDATE … WHERE id IN (…) of rows the
	// transaction locked (MySQL: FORCE INDEX (PRIMARY)). On a small table
	// MariaDB otherwise scans the whole primary key for a long IN list,
	// waits for rows a concurrent claimer holds, and the two deadlock.
	byPK string
	// dueTable: pending transitions are rows of grant_due (migration 5),
	// which writers keep and claims delete (see claimQuery); on MySQL the
	// grants' flags mark claimed transitions instead.
	dueTable bool
	// dueOrNever renders a bound time as a grant_due.due_at: the time, or
	// "never" (the type's largest value) for NULL — an unlimited grant's
	// pending expiry.
	dueOrNever string
	// writeLock, when set, is the first statement of every write
	// transaction: a no-op write that takes the database write lock at
	// once (BEGIN IMMEDIATE semantics on SQLite, whose database/sql driver
	// issues a deferred BEGIN).
	writeLock string
	// insertHeadFirst makes lockHead create a missing head row before the
	// locking read (MySQL, where a locking read of a missing row takes a
	// gap lock and two such transactions would deadlock on insert).
	insertHeadFirst bool
	// busyRetry retries SQLITE_BUSY / SQLITE_LOCKED.
	busyRetry bool
	// claimTx are the options of ClaimTransitions' transaction: READ
	// COMMITTED on MySQL, where REPEATABLE READ's gap locks on the scanned
	// index range make concurrent claimers (FOR UPDATE SKIP LOCKED, then
	// UPDATE of the same index) deadlock each other; READ COMMITTED on
	// PostgreSQL too (see txDefault). Nil on SQLite.
	claimTx *sql.TxOptions
	// txDefault are the options of every other write transaction (nil:
	// the server's default). PostgreSQL: READ COMMITTED whatever
	// default_transaction_isolation says — at REPEATABLE READ a statement
	// that waited for a lock would still read the snapshot from before
	// the lock holder committed (a claim's deletion of a grant_due row),
	// and the locking protocol here assumes each statement sees what
	// committed before it got its locks.
	txDefault *sql.TxOptions
	// unexpired tests "expires_at is NULL or after the bound time" the way
	// the dialect's Check index answers it (see queries.go).
	unexpired string
	// covers tests that the grantees column covers the principal, given
	// as the bound needle "\n"+escaped principal+"\n" (see queries.go).
	// The search is bytewise on every dialect (MySQL: CHAR(10) is a binary
	// string, which makes the CONCAT and LOCATE binary, whatever the
	// collations).
	covers string
}

var dialects = map[Dialect]*dialect{
	Postgres: {
		Dialect:    Postgres,
		dollar:     true,
		unexpired:  `COALESCE(expires_at, 'infinity'::timestamptz) > ?`,
		covers:     `(grantees IS NULL OR grantees = '' OR strpos(chr(10) || grantees, ?) > 0)`,
		forUpdate:  " FOR UPDATE",
		skipLocked: " FOR UPDATE SKIP LOCKED",
		dueTable:   true,
		dueOrNever: `COALESCE(CAST(? AS timestamptz), 'infinity'::timestamptz)`,
		claimTx:    &sql.TxOptions{Isolation: sql.LevelReadCommitted},
		txDefault:  &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	},
	MySQL: {
		Dialect:         MySQL,
		forUpdate:       " FOR UPDATE",
		skipLocked:      " FOR UPDATE SKIP LOCKED",
		insertHeadFirst: true,
		byPK:            " FORCE INDEX (PRIMARY)",
		claimTx:         &sql.TxOptions{Isolation: sql.LevelReadCommitted},
		unexpired:       `(expires_at IS NULL OR expires_at > ?)`,
		covers:          `(grantees IS NULL OR grantees = '' OR LOCATE(?, CONCAT(CHAR(10), grantees)) > 0)`,
	},
	SQLite: {
		Dialect:    SQLite,
		writeLock:  `UPDATE {p}audit_heads SET seq = seq WHERE 0 = 1`,
		busyRetry:  true,
		dueTable:   true,
		dueOrNever: `coalesce(?, 9223372036854775807)`,
		unexpired:  `coalesce(expires_at, 9223372036854775807) > ?`,
		covers:     `(grantees IS NULL OR grantees = '' OR instr(char(10) || grantees, ?) > 0)`,
	},
}

// render substitutes the table prefix for {p} and, on PostgreSQL, numbers
// the placeholders. The package's SQL never has "?" or "{p}" inside a
// string literal.
func (d *dialect) render(prefix, q string) string {
	q = strings.ReplaceAll(q, "{p}", prefix)
	if !d.dollar {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// placeholders returns n comma-separated "?" (for IN lists and multi-row
// INSERTs; render numbers them).
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// mysqlTime is how times are sent to and read from a DATETIME(6) column.
// Sending text makes the store independent of the driver's parseTime and
// loc settings.
const mysqlTime = "2006-01-02 15:04:05.000000"

// minTime and maxTime bound the times the store writes and compares: the
// range of MySQL's DATETIME, which PostgreSQL and SQLite hold too. Outside
// it PostgreSQL's driver and SQLite's Unix microseconds would wrap around
// (a start in year 586 000 landing next week), and MySQL would refuse.
var (
	minTime = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)
)

// checkStorable refuses, with supportaccess.ErrInvalidInput, a time t
// (zero: none) outside [minTime, maxTime], which timeArg would clamp; what
// names it in the error.
func checkStorable(what string, t time.Time) error {
	if t.IsZero() || !t.Before(minTime) && !t.After(maxTime) {
		return nil
	}
	return fmt.Errorf("%w: %s %s is outside years 1000 to 9999", sa.ErrInvalidInput, what, t.UTC().Format(time.RFC3339Nano))
}

// checkGrantTimes refuses, with supportaccess.ErrInvalidInput, a grant
// with a time outside [minTime, maxTime], so that timeArg's clamping never
// changes a stored grant.
func checkGrantTimes(g *sa.Grant) error {
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"CreatedAt", g.CreatedAt}, {"StartsAt", g.StartsAt}, {"ExpiresAt", g.ExpiresAt}, {"RevokedAt", g.RevokedAt}} {
		if err := checkStorable(f.name, f.t); err != nil {
			return fmt.Errorf("sqlstore: grant %s: %w", g.ID, err)
		}
	}
	return nil
}

// checkEventTime refuses, with supportaccess.ErrInvalidInput, an event
// without a Time or with one outside [minTime, maxTime]: timeArg would
// store a clamped time the event's hash does not cover, and VerifyAudit
// would report the genuine event as tampered.
func checkEventTime(e *sa.Event) error {
	if e.Time.IsZero() {
		return fmt.Errorf("%w: event %s has no Time", sa.ErrInvalidInput, e.ID)
	}
	return checkStorable("event "+e.ID.String()+": Time", e.Time)
}

// timeArg encodes t as a query argument: NULL for the zero time, else UTC
// truncated to microseconds and clamped to [minTime, maxTime] (a query
// bound beyond them means the same as the limit) — timestamptz on
// PostgreSQL, DATETIME(6) text on MySQL, Unix microseconds on SQLite.
func (d *dialect) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	switch {
	case t.Before(minTime):
		t = minTime
	case t.After(maxTime):
		t = maxTime
	}
	t = t.UTC().Truncate(time.Microsecond)
	switch d.Dialect {
	case MySQL:
		return t.Format(mysqlTime)
	case SQLite:
		return t.UnixMicro()
	}
	return t
}

// timeScanner scans a column written by timeArg into *t (NULL: zero time).
type timeScanner struct {
	d Dialect
	t *time.Time
}

// Scan implements sql.Scanner.
func (s *timeScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.t = time.Time{}
	case int64:
		*s.t = time.UnixMicro(v).UTC()
	case time.Time:
		if s.d == MySQL {
			// The driver (parseTime=true) read the stored wall clock into
			// its loc; the wall clock is UTC whatever loc says.
			*s.t = time.Date(v.Year(), v.Month(), v.Day(), v.Hour(), v.Minute(), v.Second(), v.Nanosecond(), time.UTC)
		} else {
			*s.t = v.UTC()
		}
		*s.t = s.t.Truncate(time.Microsecond)
	case []byte:
		return s.parse(string(v))
	case string:
		return s.parse(v)
	default:
		return fmt.Errorf("sqlstore: cannot scan %T into a time", src)
	}
	return nil
}

func (s *timeScanner) parse(v string) error {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", v, time.UTC)
	if err != nil {
		t, err = time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("sqlstore: cannot parse time %q", v)
		}
	}
	*s.t = t.UTC().Truncate(time.Microsecond)
	return nil
}
