package sqlstore

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

func TestListCodecRoundTrip(t *testing.T) {
	cases := [][]string{
		nil,
		{},
		{""},
		{"", ""},
		{"a"},
		{"a", "b"},
		{"line\nbreak", `back\slash`, `\`, `\n`, "\\\n", "trailing\\"},
		{"'; DROP TABLE supportaccess_grants; --", `" OR 1=1 --`, "ünï©ødé 🚀", "%_*?[]", "$1 :name @p", "\x00\x1f"},
	}
	for _, in := range cases {
		enc := encodeList(in)
		if in == nil {
			require.Nil(t, enc)
			continue
		}
		s, ok := enc.(string)
		require.True(t, ok)
		got, err := decodeList[string](s)
		require.NoError(t, err)
		require.Equal(t, in, got, "encoded as %q", s)
		require.NotNil(t, got)
	}
}

func TestListCodecRejectsMalformed(t *testing.T) {
	for _, s := range []string{"a", "a\\\n", "a\\x\n", "ok\nbad"} {
		_, err := decodeList[string](s)
		require.Error(t, err, "%q", s)
	}
}

func TestAttrsCodecRoundTrip(t *testing.T) {
	for _, in := range []map[string]string{
		nil, {}, {"": ""}, {"k": "v", "empty": "", "multi\nline": `x\y`},
	} {
		enc := encodeAttrs(in)
		if in == nil {
			require.Nil(t, enc)
			continue
		}
		got, err := decodeAttrs(enc.(string))
		require.NoError(t, err)
		require.Equal(t, in, got)
	}
	_, err := decodeAttrs("odd\n")
	require.Error(t, err)
}

func TestTimeScanner(t *testing.T) {
	want := time.Date(2026, 3, 14, 15, 9, 26, 535897_000, time.UTC)
	tokyo := time.FixedZone("JST", 9*3600)
	for name, c := range map[string]struct {
		d   Dialect
		src any
	}{
		"sqlite micros":         {SQLite, want.UnixMicro()},
		"postgres other zone":   {Postgres, want.In(tokyo)},
		"mysql text":            {MySQL, []byte("2026-03-14 15:09:26.535897")},
		"mysql string":          {MySQL, "2026-03-14 15:09:26.535897"},
		"postgres nanoseconds":  {Postgres, want.Add(999)},
		"mysql text, fewer µs":  {MySQL, "2026-03-14 15:09:26.535897"},
		"sqlite negative micro": {SQLite, want.UnixMicro()},
	} {
		var got time.Time
		require.NoError(t, (&timeScanner{c.d, &got}).Scan(c.src), name)
		require.Equal(t, want, got, name)
	}
	var got time.Time
	require.NoError(t, (&timeScanner{SQLite, &got}).Scan(nil))
	require.True(t, got.IsZero())
	require.Error(t, (&timeScanner{MySQL, &got}).Scan("yesterday"))
	require.Error(t, (&timeScanner{MySQL, &got}).Scan(3.5))
	// On MySQL times are selected as text (selectList): a time.Time
	// means the driver applied its loc, which may have moved the time.
	require.Error(t, (&timeScanner{MySQL, &got}).Scan(time.Date(2026, 3, 14, 15, 9, 26, 535897_000, tokyo)))
	old := time.Date(1960, 1, 1, 0, 0, 0, 1000, time.UTC)
	require.NoError(t, (&timeScanner{SQLite, &got}).Scan(dialects[SQLite].timeArg(old)))
	require.Equal(t, old, got, "before 1970")
}

func TestTimeArg(t *testing.T) {
	ts := time.Date(2026, 7, 1, 23, 59, 59, 999_999_999, time.FixedZone("X", 5*3600+1800))
	require.Nil(t, dialects[Postgres].timeArg(time.Time{}))
	require.Equal(t, "2026-07-01 18:29:59.999999", dialects[MySQL].timeArg(ts))
	require.Equal(t, ts.UTC().Truncate(time.Microsecond).UnixMicro(), dialects[SQLite].timeArg(ts))
	pg := dialects[Postgres].timeArg(ts).(time.Time)
	require.Equal(t, time.UTC, pg.Location())
	require.Zero(t, pg.Nanosecond()%1000)

	// Beyond years 1000–9999 a time is clamped, never wrapped around: a
	// bound far in the future still compares after every stored time.
	far := time.Unix(18_446_744_073_709+1e9, 0)
	past := time.Date(-3000, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, maxTime.UnixMicro(), dialects[SQLite].timeArg(far))
	require.Equal(t, minTime.UnixMicro(), dialects[SQLite].timeArg(past))
	require.Equal(t, "9999-12-31 23:59:59.999999", dialects[MySQL].timeArg(far))
	require.Equal(t, "1000-01-01 00:00:00.000000", dialects[MySQL].timeArg(past))
	require.Equal(t, maxTime, dialects[Postgres].timeArg(far))
	require.ErrorIs(t, checkGrant(&sa.Grant{CreatedAt: ts, StartsAt: far}), sa.ErrInvalidInput)
	require.ErrorIs(t, checkGrant(&sa.Grant{CreatedAt: ts, StartsAt: ts, ExpiresAt: maxTime.Add(time.Microsecond)}), sa.ErrInvalidInput)
	require.ErrorIs(t, checkGrant(&sa.Grant{CreatedAt: past, StartsAt: ts}), sa.ErrInvalidInput)
	require.NoError(t, checkGrant(&sa.Grant{CreatedAt: ts, StartsAt: minTime, ExpiresAt: maxTime}))
}

func TestRender(t *testing.T) {
	require.Equal(t, "SELECT a FROM x_t WHERE a = $1 AND b IN ($2, $3)",
		dialects[Postgres].render("x_", "SELECT a FROM {p}t WHERE a = ? AND b IN ("+placeholders(2)+")"))
	require.Equal(t, "SELECT a FROM x_t WHERE a = ?", dialects[MySQL].render("x_", "SELECT a FROM {p}t WHERE a = ?"))
	require.Equal(t, "", placeholders(0))

	// Column-list tokens: MySQL reads the time columns as text, without
	// an alias (ORDER BY and WHERE name the columns); the others read the
	// columns themselves.
	q := "SELECT {hookCols} FROM {p}hook_tasks ORDER BY next_at"
	require.Equal(t, "SELECT grant_id, done, attempts, DATE_FORMAT(next_at, '%Y-%m-%d %H:%i:%s.%f'), last_error FROM x_hook_tasks ORDER BY next_at",
		dialects[MySQL].render("x_", q))
	require.Equal(t, "SELECT "+hookCols+" FROM x_hook_tasks ORDER BY next_at", dialects[SQLite].render("x_", q))
	require.Equal(t, "SELECT "+hookCols+" FROM x_hook_tasks ORDER BY next_at", dialects[Postgres].render("x_", q))
	for _, l := range listTokens {
		mysql := dialects[MySQL].render("", "SELECT "+l.token)
		require.NotContains(t, mysql, "{", l.token)
		n := 0
		for _, c := range strings.Split(l.cols, ", ") {
			if timeCols[c] {
				n++
				require.Contains(t, mysql, "DATE_FORMAT("+c+", ", l.token)
			}
		}
		require.Positive(t, n, "%s has time columns", l.token)
		require.Equal(t, strings.Count(mysql, "DATE_FORMAT("), n, l.token)
		require.Equal(t, "SELECT "+l.cols, dialects[Postgres].render("", "SELECT "+l.token))
	}
}

func TestStatements(t *testing.T) {
	got := statements("-- comment; with semicolon\nCREATE TABLE a (\n    x INT -- not a comment line\n);\n\n-- another\nINSERT INTO a VALUES (1);\nSELECT 1")
	require.Equal(t, []string{"CREATE TABLE a (\n    x INT -- not a comment line\n)", "INSERT INTO a VALUES (1)", "SELECT 1"}, got)
}

func TestMigrationFiles(t *testing.T) {
	for d := range dialects {
		ms := migrationsFor(d)
		require.NotEmpty(t, ms, "%v", d)
		require.Equal(t, SchemaVersion, ms[len(ms)-1].version, "%v: SchemaVersion is the newest file", d)
		for i, m := range ms {
			require.Equal(t, i+1, m.version, "%v: versions are 1, 2, …", d)
			stmts := statements(m.text)
			require.Contains(t, stmts[len(stmts)-1], "INSERT INTO {p}schema_version (version) VALUES ("+
				strings.TrimLeft(m.name[:4], "0")+")", "%v %s records its version last", d, m.name)
		}
		require.Equal(t, versionTable[d], statements(ms[0].text)[0], "%v: Migrate creates the version table as migration 1 does", d)

		fsys := Migrations(d)
		names, err := fs.Glob(fsys, "*.sql")
		require.NoError(t, err)
		require.Len(t, names, len(ms))
		b, err := fs.ReadFile(fsys, names[0])
		require.NoError(t, err)
		require.NotContains(t, string(b), "{p}")
		require.Contains(t, string(b), "supportaccess_grants")
		require.NoError(t, fstestWalk(fsys))
	}
	require.Nil(t, Migrations(Dialect(99)))
}

// fstestWalk opens and reads every file of fsys.
func fstestWalk(fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		_, err = fs.ReadFile(fsys, p)
		return err
	})
}

func TestValidPrefix(t *testing.T) {
	for _, p := range []string{"a", "_", "supportaccess_", "Tenant_DB_1_", strings.Repeat("x", maxPrefixLen)} {
		require.NoError(t, validPrefix(p), p)
	}
	for _, p := range []string{"", "1abc", "a-b", "a b", "x;DROP TABLE y;--", "é_", "a\"b", "a`b", "a.b", strings.Repeat("x", maxPrefixLen+1)} {
		require.ErrorIs(t, validPrefix(p), sa.ErrInvalidInput, p)
	}
}

type codeErr int

func (e codeErr) Error() string { return "code" }
func (e codeErr) Code() int     { return int(e) }

type stateErr string

func (e stateErr) Error() string    { return "state" }
func (e stateErr) SQLState() string { return string(e) }

func TestErrorClassification(t *testing.T) {
	require.True(t, isBusy(codeErr(5)))
	require.True(t, isBusy(codeErr(517)), "SQLITE_BUSY_SNAPSHOT")
	require.True(t, isBusy(codeErr(6)))
	require.True(t, isBusy(errors.New("database is locked (5) (SQLITE_BUSY)")))
	require.False(t, isBusy(codeErr(19)))
	require.False(t, isBusy(nil))
	require.True(t, isDeadlock(stateErr("40P01")))
	require.True(t, isDeadlock(stateErr("40001")))
	require.False(t, isDeadlock(stateErr("23505")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := wrap(ctx, "op", errors.New("driver: bad connection"))
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, wrap(context.Background(), "op", stateErr("40P01")), sa.ErrConflict)
}
