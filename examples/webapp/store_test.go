package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// startOn builds the app on st (closed with the app) behind a test server.
func startOn(t *testing.T, st sa.Store, closer io.Closer) *testEnv {
	t.Helper()
	a, h, err := newApp(config{Store: st, Closer: closer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	return &testEnv{t: t, app: a, srv: httptest.NewServer(h)}
}

func (e *testEnv) stop() {
	e.t.Helper()
	e.srv.Close()
	require.NoError(e.t, e.app.Close())
}

// supportSavesSettings runs the write flow on e: a write grant, support
// saves the settings, the audit has the request and the change.
func supportSavesSettings(t *testing.T, e *testEnv) {
	t.Helper()
	e.login(aliceAdmin).grant(url.Values{"scope_write": {"1"}, "reason": {"db check"}})
	sam := e.login(samEngineer)
	require.Equal(t, http.StatusOK, sam.impersonate(acmeTenantID).StatusCode)
	r := sam.post("/app/settings", url.Values{"company_name": {"Acme on a database"}, "theme": {"dark"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Len(t, e.events(acmeTenantID, sa.EventSupportChange), 1)
	require.NotEmpty(t, e.events(acmeTenantID, sa.EventSupportRequest))
	require.Contains(t, e.login(aliceAdmin).get("/admin/audit?type=support.change").Body, "Acme on a database")
}

func TestOpenStore(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown_dialect", func(t *testing.T) {
		_, _, _, err := openStore(ctx, options{Dialect: "oracle"})
		require.ErrorContains(t, err, "unknown -dialect")
	})
	t.Run("server_dialects_need_a_dsn", func(t *testing.T) {
		for _, d := range []string{"postgres", "mysql"} {
			_, _, _, err := openStore(ctx, options{Dialect: d})
			require.ErrorContains(t, err, "needs -dsn", d)
		}
	})
	t.Run("memory", func(t *testing.T) {
		st, closer, _, err := openStore(ctx, options{Dialect: "memory"})
		require.NoError(t, err)
		require.NotNil(t, st)
		require.Nil(t, closer)
	})
	t.Run("sqlite_in_a_data_dir_is_migrated_and_kept", func(t *testing.T) {
		dir := t.TempDir()
		open := func() *testEnv {
			st, closer, desc, err := openStore(ctx, options{Dialect: "sqlite", Data: dir})
			require.NoError(t, err)
			require.Contains(t, desc, filepath.Join(dir, sqliteFile))
			return startOn(t, st, closer)
		}
		e := open()
		supportSavesSettings(t, e)
		e.stop()
		require.FileExists(t, filepath.Join(dir, sqliteFile))

		// A restart finds the grant and its audit trail.
		e = open()
		defer e.stop()
		gs, err := e.app.m.List(ctx, sa.ListFilter{TenantID: acmeTenantID})
		require.NoError(t, err)
		require.Len(t, gs, 1)
		require.Equal(t, "db check", gs[0].Reason)
		require.Len(t, e.events(acmeTenantID, sa.EventSupportChange), 1)
	})
	t.Run("sqlite_without_a_data_dir_is_temporary", func(t *testing.T) {
		st, closer, desc, err := openStore(ctx, options{Dialect: "sqlite"})
		require.NoError(t, err)
		require.NotNil(t, st)
		require.Contains(t, desc, "temporary")
		path, _, ok := strings.Cut(strings.TrimPrefix(desc, "sqlite "), " ")
		require.True(t, ok, desc)
		require.FileExists(t, path)
		require.NoError(t, closer.Close())
		_, err = os.Stat(filepath.Dir(path))
		require.True(t, os.IsNotExist(err), "the temporary directory is removed")
	})
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			db := sqltest.Open(t, d) // skips (or fails under SUPPORTACCESS_REQUIRE_BACKENDS=1) without a server
			prefix := sqltest.NewPrefix()
			t.Cleanup(func() { require.NoError(t, sqltest.DropTables(context.Background(), db, d, prefix)) })
			st, closer, _, err := openStore(ctx, options{Dialect: d.String(), DSN: sqltest.DSN(d), tablePrefix: prefix})
			require.NoError(t, err)
			e := startOn(t, st, closer)
			defer e.stop()
			supportSavesSettings(t, e)
		})
	}
	t.Run("unreachable_server_is_an_error", func(t *testing.T) {
		_, _, _, err := openStore(ctx, options{Dialect: "postgres", DSN: "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"})
		require.ErrorContains(t, err, "connect to postgres")
	})
}
