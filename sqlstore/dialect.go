package sqlstore

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/canon"
	"github.com/supportaccess/supportaccess/internal/stored"
)

// Dialect selects the SQL flavour of the database behind the *sql.DB.
type Dialect int

// Supported dialects.
const (
	// Postgres is PostgreSQL 12 or newer (tested with the pgx driver).
	Postgres Dialect = iota + 1
	// MySQL is MySQL 8 or MariaDB 10.6 or newer (tested with
	// go-sql-driver/mysql; parseTime and loc do not matter: the store sends
	// and reads times as text, which the driver does not convert; the
	// session must have the settings listed in the package documentation,
	// under MySQL and MariaDB).
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
	// lists replaces the column-list tokens of SELECTs with the
	// dialect's reading form of the lists (see selectList); set by init.
	lists *strings.Replacer
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

func init() {
	for _, d := range dialects {
		var pairs []string
		for _, l := range listTokens {
			pairs = append(pairs, l.token, d.selectList(l.cols))
		}
		d.lists = strings.NewReplacer(pairs...)
	}
}

// listTokens are the column lists a SELECT reads rows with, by the token
// that names them in the package's SQL: every SELECT whose rows a
// grantRow, eventRow, requestRow or hook task scan reads writes its list
// as the token, never as the Go constant (which INSERTs use), so that
// render gives it the dialect's reading form (selectList).
var listTokens = []struct{ token, cols string }{
	{"{grantCols}", grantCols},
	{"{eventSelectCols}", eventSelectCols},
	{"{requestCols}", requestCols},
	{"{hookCols}", hookCols},
}

// timeCols are the DATETIME(6) columns (MySQL) of the column lists of
// listTokens.
var timeCols = map[string]bool{
	"created_at": true, "starts_at": true, "expires_at": true, "revoked_at": true,
	"occurred_at": true, "decided_at": true, "next_at": true,
}

// selectList returns the column list cols (names separated by ", ") as a
// SELECT of the dialect reads it. On MySQL/MariaDB each time column is read
// as text, DATE_FORMAT(col, '%Y-%m-%d %H:%i:%s.%f'), which timeScanner
// parses as UTC: with parseTime=true the driver would build a DATETIME's
// wall clock in the DSN's loc, and one in loc's spring-forward gap does
// not exist there — Go moves it by an hour, and the stored UTC wall clock
// cannot be recovered. The expressions have no alias, so that ORDER BY and
// WHERE still name the columns (and their indexes), not the text. Other
// dialects read cols unchanged.
func (d *dialect) selectList(cols string) string {
	if d.Dialect != MySQL {
		return cols
	}
	names := strings.Split(cols, ", ")
	for i, c := range names {
		if timeCols[c] {
			names[i] = `DATE_FORMAT(` + c + `, '%Y-%m-%d %H:%i:%s.%f')`
		}
	}
	return strings.Join(names, ", ")
}

// render substitutes the dialect's column lists for their tokens (see
// listTokens) and the table prefix for {p} and, on PostgreSQL, numbers
// the placeholders. The package's SQL never has "?" or "{p}" inside a
// string literal.
func (d *dialect) render(prefix, q string) string {
	if d.lists != nil {
		q = d.lists.Replace(q)
	}
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

// mysqlTime is how times are sent to a DATETIME(6) column (and, with up
// to six fractional digits, how selectList reads them back). Text both
// ways makes the store independent of the driver's parseTime and loc
// settings.
const mysqlTime = "2006-01-02 15:04:05.000000"

// minTime and maxTime bound the times the store writes and compares: the
// range of MySQL's DATETIME, which PostgreSQL and SQLite hold too. Outside
// it PostgreSQL's driver and SQLite's Unix microseconds would wrap around
// (a start in year 586 000 landing next week), and MySQL would refuse.
var minTime, maxTime = stored.MinTime, stored.MaxTime

// checkGrant refuses, with supportaccess.ErrInvalidInput, a grant the
// stores refuse alike (stored.CheckGrant, which includes the range of its
// times, so that timeArg's clamping never changes a stored grant): the
// checks of a new grant. An update checks stored.CheckGrantUpdate.
func checkGrant(g *sa.Grant) error {
	if err := stored.CheckGrant(g); err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	return nil
}

// ceilMicro rounds t up to the microsecond (the zero time stays zero).
// Stored times are whole microseconds, so a bound rounded up selects
// exactly what the bound itself does in AuditFilter.Match: an event is at
// or after Since, before Until, or after a cursor's time when it is at or
// after that time rounded up — timeArg's truncation would move such a
// bound onto the event before it.
func ceilMicro(t time.Time) time.Time { return canon.Ceil(t) }

// checkTaskTime refuses, with supportaccess.ErrInvalidInput, a claim's
// now that is zero or outside [minTime, maxTime] (stored.CheckTime):
// timeArg would store NULL (refused by the column) or a clamped time. (A
// lease's Until and a task's NextAt are checked alike by stored.CheckLease
// and stored.CheckHookTask.)
func checkTaskTime(what string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("sqlstore: %s: %w: zero time", what, sa.ErrInvalidInput)
	}
	if err := stored.CheckTime(what, t); err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	return nil
}

// checkRequest is checkGrant for a new request (stored.CheckRequest).
func checkRequest(r *sa.AccessRequest) error {
	if err := stored.CheckRequest(r); err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	return nil
}

// afterMax reports whether t, to the microsecond, is after maxTime: as a
// query bound timeArg clamps it onto maxTime, where an event may be.
func afterMax(t time.Time) bool { return t.Truncate(time.Microsecond).After(maxTime) }

// notBefore returns the comparison, with a ? for timeArg(t), of a column
// that must not be before t: ">= ?", or "> ?" when t is after maxTime (no
// stored time is after the maxTime it is clamped to).
func (d *dialect) notBefore(t time.Time) string {
	if afterMax(t) {
		return `> ?`
	}
	return `>= ?`
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
// On MySQL the column must be read as text (see selectList): a time.Time
// from the driver is refused, as its wall clock may have been moved by the
// DSN's loc.
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
			// The driver (parseTime=true) built the stored UTC wall clock
			// in its loc, which moves one in loc's spring-forward gap by
			// an hour: the query did not read the column as text.
			return fmt.Errorf("sqlstore: a MySQL time column was read as a time.Time (%s), not as text", v.Format(mysqlTime))
		}
		*s.t = v.UTC().Truncate(time.Microsecond)
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
