// Command r154old drives the previous release (schema version 5) of
// supportaccess/sqlstore for review 154's rolling-upgrade tests. It reads
// one command a line on stdin and answers one JSON line on stdout.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/storetest"
)

type reply struct {
	OK       bool     `json:"ok"`
	Err      string   `json:"err,omitempty"`
	TooNew   bool     `json:"too_new,omitempty"`
	TooOld   bool     `json:"too_old,omitempty"`
	IDs      []string `json:"ids,omitempty"`
	N        int      `json:"n,omitempty"`
	Verified bool     `json:"verified,omitempty"`
	Events   int64    `json:"events,omitempty"`
	Break    string   `json:"break,omitempty"`
	Version  int      `json:"version,omitempty"`
	Failures []string `json:"failures,omitempty"`
}

func main() {
	dialect := flag.String("dialect", "", "postgres or mysql")
	dsn := flag.String("dsn", "", "data source name")
	prefix := flag.String("prefix", "", "table prefix")
	flag.Parse()
	var d sqlstore.Dialect
	driver := ""
	switch *dialect {
	case "postgres":
		d, driver = sqlstore.Postgres, "pgx"
	case "mysql":
		d, driver = sqlstore.MySQL, "mysql"
	default:
		fmt.Fprintln(os.Stderr, "bad -dialect")
		os.Exit(2)
	}
	db, err := sql.Open(driver, *dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer db.Close()
	s, err := sqlstore.New(db, d, sqlstore.WithTablePrefix(*prefix))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(s, sa.WithNow(clock.Now))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	fail := func(r *reply, err error) {
		r.OK = false
		r.Err = err.Error()
		r.TooNew = errors.Is(err, sqlstore.ErrSchemaTooNew)
		r.TooOld = errors.Is(err, sqlstore.ErrSchemaTooOld)
	}
	record := func(tenant, reason string) (string, error) {
		e := sa.Event{ID: uuid.New(), Time: clock.Now(), Type: sa.EventSupportRequest, TenantID: tenant,
			Actor: storetest.Support, Reason: reason}
		return e.ID.String(), s.Record(ctx, e)
	}
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		r := reply{OK: true}
		arg := func(i int) string {
			if i < len(f) {
				return f[i]
			}
			return ""
		}
		switch f[0] {
		case "version":
			r.Version = sqlstore.SchemaVersion
		case "migrate":
			if err := s.Migrate(ctx); err != nil {
				fail(&r, err)
			}
		case "record":
			id, err := record(arg(1), "old "+arg(2))
			r.IDs = []string{id}
			if err != nil {
				fail(&r, err)
			}
		case "grant":
			g, err := m.Grant(ctx, sa.GrantInput{TenantID: arg(1), By: storetest.Customer, Duration: time.Hour, Reason: "old"})
			if err != nil {
				fail(&r, err)
			} else {
				r.IDs = []string{g.ID.String()}
			}
		case "revoke":
			id, err := uuid.Parse(arg(1))
			if err == nil {
				_, err = m.Revoke(ctx, id, storetest.Customer, "old")
			}
			if err != nil {
				fail(&r, err)
			}
		case "check":
			if _, err := m.Check(ctx, arg(1), storetest.Support.ID, sa.ScopeRead); err != nil {
				fail(&r, err)
			}
		case "sweep":
			n, err := m.Sweep(ctx)
			r.N = n
			if err != nil {
				fail(&r, err)
			}
		case "advance":
			dur, err := time.ParseDuration(arg(1))
			if err != nil {
				fail(&r, err)
			} else {
				clock.Advance(dur)
			}
		case "set":
			at, err := time.Parse(time.RFC3339Nano, arg(1))
			if err != nil {
				fail(&r, err)
			} else {
				clock.Set(at)
			}
		case "verify":
			rep, err := m.VerifyAudit(ctx, arg(1))
			if err != nil {
				fail(&r, err)
			} else {
				r.Verified, r.Events = rep.OK(), rep.Events
				if rep.Break != nil {
					r.Break = fmt.Sprintf("%+v", *rep.Break)
				}
			}
		case "mix": // mix <tenant> <rounds>: Record ×3, Grant, Revoke every other, Sweep
			n, _ := strconv.Atoi(arg(2))
			for i := 0; i < n; i++ {
				for j := 0; j < 3; j++ {
					id, err := record(arg(1), fmt.Sprintf("mix %d.%d", i, j))
					if err != nil {
						r.Failures = append(r.Failures, "record: "+err.Error())
						continue
					}
					r.IDs = append(r.IDs, id)
				}
				g, err := m.Grant(ctx, sa.GrantInput{TenantID: arg(1), By: storetest.Customer, Duration: time.Hour, Reason: "old"})
				if err != nil {
					r.Failures = append(r.Failures, "grant: "+err.Error())
				} else if i%2 == 1 {
					if _, err := m.Revoke(ctx, g.ID, storetest.Customer, "old"); err != nil {
						r.Failures = append(r.Failures, "revoke: "+err.Error())
					}
				}
				if _, err := m.Sweep(ctx); err != nil {
					r.Failures = append(r.Failures, "sweep: "+err.Error())
				}
				clock.Advance(20 * time.Minute)
				r.N++
			}
			r.OK = len(r.Failures) == 0
		case "quit":
			_ = out.Encode(r)
			return
		default:
			fail(&r, fmt.Errorf("unknown command %q", f[0]))
		}
		_ = out.Encode(r)
	}
}
