package sqlstore_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// Review 170: the audit trail across releases. Chains the previous
// release (commit faa02a5, schema version 5) wrote must stay verifiable
// after this release's Migrate, continue correctly when this release
// appends (also interleaved with a replica of the previous release, a
// rolling upgrade), export and re-verify; a tamper in the old part must
// still be found. Promises attacked:
//
//   - audit.go, Event.ChainHash: "The canonical encoding (version
//     \"supportaccess.event.v1\") is, in order: …", "Anyone can recompute
//     it from an export (see ExportAudit)";
//   - audit_export.go, ExportAudit: "Field names and order are stable",
//     "To re-verify an export with VerifyJSONL, export whole chains in
//     AuditByChain order";
//   - SECURITY.md, "Tamper evidence": "edits, deletions, insertions and
//     reorderings of stored events break it, and so does deleting the
//     oldest events and moving the purge checkpoint: a checkpoint must be
//     the one the chain's latest audit.purged event of its own records";
//   - SECURITY.md, "Upgrade all replicas together": "An older replica
//     keeps working on the migrated database".
//
// The previous release is driven through a binary of its own built from
// commit faa02a5 with the driver r170DriverSource (review 154's driver
// knows neither SQLite nor requests, hooks, purges, the middleware or
// exports). r170OldBin finds it in SUPPORTACCESS_REVIEW170_OLD_BIN, or
// builds it once from the clone's history (git archive faa02a5 and go
// build, a few seconds) into the temporary directory; without git history
// or Go the tests that need it skip.

// r170OldCommit is the previous release.
const r170OldCommit = "faa02a5"

// r170GoldenHash is Event.ChainHash([]byte("previous")) of r170Golden as
// the previous release computes it (its driver's "hash" command).
const r170GoldenHash = "bbf3580c6949d50c3e15c37c5a72042e189e258179945007d8769a5a7671a9f5"

// r170Golden is the driver's GoldenEvent: every field set, attributes
// this release records (method_override, request_id) among them, keys
// out of byte order, non-ASCII text.
func r170Golden() sa.Event {
	return sa.Event{
		ID:       uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057"),
		Time:     time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC),
		Type:     sa.EventSupportRequest,
		TenantID: "acme-é",
		GrantID:  uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8058"),
		Actor:    sa.Actor{Kind: sa.ActorSupport, ID: "support@vendor.example", Name: "Sam ✓"},
		Reason:   "looking at invoices",
		Attrs: map[string]string{sa.AttrMethod: "POST", sa.AttrMethodOverride: "DELETE", sa.AttrRequestID: "r-1",
			sa.AttrPath: "/invoices/1", sa.AttrStatus: "204", sa.AttrSessionID: "s-1", "Z": "", "é": "x"},
		Before: []byte(`{"a":1}`),
		After:  []byte(`{"a":2}`),
		Seq:    42,
	}
}

// r170Canonical is the canonical encoding as audit.go documents it,
// written from the documentation alone: the version string, prev, Seq,
// ID, Time (Unix microseconds; zero time math.MinInt64), Type, TenantID,
// GrantID, Actor.Kind, Actor.ID, Actor.Name, Reason, the number of Attrs
// and each key and value in byte order of the keys, Before and After;
// numbers 8-byte big-endian, byte strings length-prefixed.
func r170Canonical(e sa.Event, prev []byte) []byte {
	var b []byte
	num := func(n uint64) { b = binary.BigEndian.AppendUint64(b, n) }
	bs := func(v []byte) { num(uint64(len(v))); b = append(b, v...) }
	bs([]byte("supportaccess.event.v1"))
	bs(prev)
	num(uint64(e.Seq))
	bs(e.ID[:])
	if e.Time.IsZero() {
		num(uint64(1) << 63) // math.MinInt64
	} else {
		num(uint64(e.Time.UnixMicro()))
	}
	bs([]byte(e.Type))
	bs([]byte(e.TenantID))
	bs(e.GrantID[:])
	bs([]byte(e.Actor.Kind))
	bs([]byte(e.Actor.ID))
	bs([]byte(e.Actor.Name))
	bs([]byte(e.Reason))
	num(uint64(len(e.Attrs)))
	keys := make([]string, 0, len(e.Attrs))
	for k := range e.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		bs([]byte(k))
		bs([]byte(e.Attrs[k]))
	}
	bs(e.Before)
	bs(e.After)
	return b
}

// r170Hash is SHA-256 of r170Canonical.
func r170Hash(e sa.Event, prev []byte) []byte {
	sum := sha256.Sum256(r170Canonical(e, prev))
	return sum[:]
}

// TestReview170CanonicalEncodingUnchanged: Event.ChainHash of this
// release equals the previous release's for an event with every field
// (the pinned r170GoldenHash, and the old driver's own answer when it is
// there), and equals the documented encoding recomputed independently,
// for the attributes added since (method_override, request_id,
// elevated_grant_ids), the zero time, the Unix epoch, negative times,
// empty versus absent Before/After and Attrs.
func TestReview170CanonicalEncodingUnchanged(t *testing.T) {
	g := r170Golden()
	require.Equal(t, r170GoldenHash, hex.EncodeToString(g.ChainHash([]byte("previous"))), "this release's hash of the golden event")
	require.Equal(t, r170GoldenHash, hex.EncodeToString(r170Hash(g, []byte("previous"))), "the documented encoding")
	minTime := int64(math.MinInt64)
	require.Equal(t, uint64(1)<<63, uint64(minTime))

	base := sa.Event{ID: uuid.New(), Time: storetest.Epoch, Type: sa.EventSupportRequest, TenantID: "t", Actor: storetest.Support}
	variants := map[string]func(e *sa.Event){
		"plain":       func(*sa.Event) {},
		"zero time":   func(e *sa.Event) { e.Time = time.Time{} },
		"unix epoch":  func(e *sa.Event) { e.Time = time.Unix(0, 0).UTC() },
		"before 1970": func(e *sa.Event) { e.Time = time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC) },
		"method override": func(e *sa.Event) {
			e.Attrs = map[string]string{sa.AttrMethod: "POST", sa.AttrMethodOverride: "PATCH,DELETE"}
		},
		"request id": func(e *sa.Event) { e.Attrs = map[string]string{sa.AttrRequestID: uuid.NewString()} },
		"elevated grants": func(e *sa.Event) {
			e.Attrs = map[string]string{sa.AttrElevatedGrantIDs: uuid.NewString() + "," + uuid.NewString()}
		},
		"empty attrs map":  func(e *sa.Event) { e.Attrs = map[string]string{} },
		"empty attr value": func(e *sa.Event) { e.Attrs = map[string]string{"": ""} },
		"empty before":     func(e *sa.Event) { e.Before = json.RawMessage{} },
		"before and after": func(e *sa.Event) { e.Before, e.After = []byte(`null`), []byte(`{"x":"é"}`) },
		"grant id":         func(e *sa.Event) { e.GrantID = uuid.New() },
		"seq":              func(e *sa.Event) { e.Seq = 1 << 40 },
		"non-ascii keys":   func(e *sa.Event) { e.Attrs = map[string]string{"é": "1", "z": "2", "Z": "3", "a\x00": "4"} },
		"seventeen attrs": func(e *sa.Event) {
			e.Attrs = map[string]string{}
			for i := 0; i < 17; i++ {
				e.Attrs[fmt.Sprint("k", i)] = "v"
			}
		},
		"long reason":     func(e *sa.Event) { e.Reason = strings.Repeat("r", 600) },
		"time with nanos": func(e *sa.Event) { e.Time = storetest.Epoch.Add(999 * time.Nanosecond) },
	}
	for name, mut := range variants {
		e := base.Clone()
		mut(&e)
		for _, prev := range [][]byte{nil, {}, bytes.Repeat([]byte{7}, 32)} {
			require.Equal(t, r170Hash(e, prev), e.ChainHash(prev), "%s, prev %x", name, prev)
		}
	}
	// Absent and empty encode alike (both length 0): a store may give back
	// either.
	a, b := base.Clone(), base.Clone()
	b.Attrs, b.Before, b.After = map[string]string{}, json.RawMessage{}, json.RawMessage{}
	require.Equal(t, a.ChainHash(nil), b.ChainHash(nil))

	if bin := r170OldBinIfAny(t); bin != "" {
		dir := t.TempDir()
		old := r170StartOldOn(t, bin, sqlstore.SQLite, filepath.Join(dir, "golden.db"), "g_")
		require.Equal(t, r170GoldenHash, old.do("hash").Hash, "the previous release's hash of the golden event")
	}
}

// r170Reply is one answer of the old driver.
type r170Reply struct {
	OK       bool     `json:"ok"`
	Err      string   `json:"err"`
	TooNew   bool     `json:"too_new"`
	IDs      []string `json:"ids"`
	N        int      `json:"n"`
	Verified bool     `json:"verified"`
	Events   int64    `json:"events"`
	Break    string   `json:"break"`
	Version  int      `json:"version"`
	Hash     string   `json:"hash"`
	Status   int      `json:"status"`
}

var (
	r170BuildOnce sync.Once
	r170Built     string
	r170BuildErr  error
)

// r170OldBinIfAny returns the previous release's driver, building it once
// per test process when SUPPORTACCESS_REVIEW170_OLD_BIN does not name
// one; "" when it cannot be had (no git history, no go command).
func r170OldBinIfAny(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SUPPORTACCESS_REVIEW170_OLD_BIN"); p != "" {
		_, err := os.Stat(p)
		require.NoError(t, err, "SUPPORTACCESS_REVIEW170_OLD_BIN")
		return p
	}
	r170BuildOnce.Do(func() { r170Built, r170BuildErr = r170Build() })
	if r170BuildErr != nil {
		t.Logf("previous release's driver not available: %v", r170BuildErr)
		return ""
	}
	return r170Built
}

// r170OldBin is r170OldBinIfAny, skipping the test without a driver.
func r170OldBin(t *testing.T) string {
	t.Helper()
	bin := r170OldBinIfAny(t)
	if bin == "" {
		t.Skipf("previous release's driver (commit %s) cannot be built here: %v", r170OldCommit, r170BuildErr)
	}
	return bin
}

// r170Build builds the driver from commit r170OldCommit into the
// temporary directory (reused when the driver's source is unchanged).
func r170Build() (string, error) {
	sum := sha256.Sum256([]byte(r170OldCommit + r170DriverSource))
	bin := filepath.Join(os.TempDir(), "rev170old-"+hex.EncodeToString(sum[:6])+".bin")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	for _, tool := range []string{"git", "go", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", err
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--verify", r170OldCommit+"^{commit}").CombinedOutput(); err != nil {
		return "", fmt.Errorf("commit %s not in this clone: %v: %s", r170OldCommit, err, out)
	}
	src, err := os.MkdirTemp("", "rev170old-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	archive := exec.Command("sh", "-c", `cd "$(git rev-parse --show-toplevel)" && git archive "$1" | tar -x -C "$2"`, "sh", r170OldCommit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive: %v: %s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(src, "cmd", "r170old"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "cmd", "r170old", "main.go"), []byte(r170DriverSource), 0o644); err != nil {
		return "", err
	}
	tmp := bin + fmt.Sprint(".", os.Getpid())
	build := exec.Command("go", "build", "-o", tmp, "./cmd/r170old")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, out)
	}
	return bin, os.Rename(tmp, bin)
}

// r170Old is a running replica of the previous release.
type r170Old struct {
	t   *testing.T
	in  io.WriteCloser
	out *bufio.Scanner
}

// r170StartOldOn starts the driver on dsn (SQLite: the file's path).
func r170StartOldOn(t *testing.T, bin string, d sqlstore.Dialect, dsn, prefix string, args ...string) *r170Old {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-dialect", d.String(), "-dsn", dsn, "-prefix", prefix}, args...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	o := &r170Old{t: t, in: in, out: bufio.NewScanner(out)}
	o.out.Buffer(make([]byte, 1<<20), 16<<20)
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	require.Equal(t, 5, o.do("version").Version, "the previous release's schema version")
	return o
}

func (o *r170Old) do(cmd string) r170Reply {
	o.t.Helper()
	_, err := io.WriteString(o.in, cmd+"\n")
	require.NoError(o.t, err)
	if !o.out.Scan() {
		o.t.Fatalf("previous release's driver ended: %v", o.out.Err())
	}
	var r r170Reply
	require.NoError(o.t, json.Unmarshal(o.out.Bytes(), &r))
	return r
}

// must runs cmd and requires success.
func (o *r170Old) must(cmd string) r170Reply {
	o.t.Helper()
	r := o.do(cmd)
	require.True(o.t, r.OK, "old %q: %s", cmd, r.Err)
	return r
}

// r170Env is a database of dialect d under a fresh prefix (dropped at the
// end) with a replica of the previous release on it, migrated to 5.
type r170Env struct {
	t      *testing.T
	d      sqlstore.Dialect
	db     *sql.DB
	prefix string
	dir    string // where exports go
	old    *r170Old
}

func r170NewEnv(t *testing.T, d sqlstore.Dialect, args ...string) *r170Env {
	t.Helper()
	bin := r170OldBin(t)
	env := &r170Env{t: t, d: d, prefix: r154Prefix(), dir: t.TempDir()}
	dsn := sqltest.DSN(d)
	if d == sqlstore.SQLite {
		dsn = filepath.Join(env.dir, "trail.db")
		env.db = sqltest.OpenSQLite(t, dsn)
	} else {
		env.db = sqltest.Open(t, d) // skips when the server is unreachable
		t.Cleanup(func() { r154Drop(t, env.db, d, env.prefix) })
	}
	env.old = r170StartOldOn(t, bin, d, dsn, env.prefix, args...)
	env.old.must("migrate")
	return env
}

// store returns a store of this release on the environment's tables.
func (env *r170Env) store() *sqlstore.Store {
	s, err := sqlstore.New(env.db, env.d, sqlstore.WithTablePrefix(env.prefix))
	require.NoError(env.t, err)
	env.t.Cleanup(func() { _ = s.Close() })
	return s
}

// q renders placeholders for the dialect.
func (env *r170Env) q(s string) string {
	return review148Placeholders(env.d, strings.ReplaceAll(s, "{p}", env.prefix))
}

// r170E0 is when the previous release's scenario starts.
var r170E0 = time.Date(2026, 1, 5, 9, 0, 0, 123456000, time.UTC)

// r170Tenants are the tenants the scenarios write.
var r170Tenants = []string{"acme", "hk-beta", "nf-gamma", "denied-t"}

// r170OldScenario has the previous release write every kind of event it
// records: grants (named, scheduled, with write scope), the middleware's
// support.request (with a method override) and support.change, refusals
// (support granting, support in the customer's admin UI), access.denied,
// delegation, extension, revocation, access requests approved, denied and
// expired, starts and expiries, a failed and then succeeded expiry hook,
// a failed notification, and a purge of acme followed by more events. It
// returns the old replica's clock at the end.
func r170OldScenario(env *r170Env) time.Time {
	o := env.old
	o.must("set " + r170E0.Format(time.RFC3339Nano))
	g1 := o.must("grant acme 60 support@vendor.example").IDs[0]
	o.must("record acme first")
	o.must("http acme GET /purged")
	o.must("advance 10m")      // what came before is purged below
	o.must("advance 876544us") // whole seconds from here: the export's time keeps its six digits
	require.Equal(env.t, http.StatusCreated, o.must("http acme GET /invoices").Status)
	require.Equal(env.t, http.StatusCreated, o.must("http acme POST /settings DELETE change=1").Status)
	require.Equal(env.t, http.StatusForbidden, o.must("http acme POST /admin/grants - admin=1").Status)
	o.must("refuse acme")
	o.must("delegate " + g1 + " colleague@vendor.example")
	o.must("extend " + g1 + " 2h")
	q1 := o.must("request acme").IDs[0]
	g2 := o.must("approve " + q1).IDs[0]
	q2 := o.must("request acme").IDs[0]
	o.must("deny " + q2)
	o.must("request acme") // left to expire
	o.must("schedule acme 30")
	o.must("revoke " + g2)
	o.must("grant hk-beta 60")
	g5 := o.must("grant nf-gamma 60").IDs[0]
	o.must("revoke " + g5)
	require.Equal(env.t, http.StatusForbidden, o.must("http denied-t GET /x").Status)
	o.must("advance 30m")
	o.must("sweep") // the scheduled grant starts
	o.must("advance 4h")
	o.must("sweep") // expiries; hk-beta's hook fails
	o.must("advance 2m")
	o.must("sweep") // the hook's retry succeeds
	o.must("advance 80h")
	o.must("sweep") // the last request expires
	p := o.must("purge acme " + r170E0.Add(5*time.Minute).Format(time.RFC3339Nano))
	require.Positive(env.t, p.N, "old purge deleted events")
	g6 := o.must("grant acme 60 support@vendor.example").IDs[0]
	o.must("http acme GET /after-purge")
	o.must("revoke " + g6)
	return r170E0.Add(10*time.Minute + 876544*time.Microsecond + 30*time.Minute + 4*time.Hour + 2*time.Minute + 80*time.Hour)
}

// r170WantTypes are the event types the scenario must have produced.
var r170WantTypes = []sa.EventType{sa.EventGrantCreated, sa.EventGrantExtended, sa.EventGrantRevoked, sa.EventGrantExpired,
	sa.EventGrantStarted, sa.EventGrantDelegated, sa.EventActionRefused, sa.EventAccessDenied, sa.EventSupportRequest,
	sa.EventSupportChange, sa.EventRequestCreated, sa.EventRequestApproved, sa.EventRequestDenied, sa.EventRequestExpired,
	sa.EventNotifyFailed, sa.EventExpireHookFailed, sa.EventExpireHookSucceeded, sa.EventAuditPurged}

// r170Chains reads every tenant's stored chain in chain order and checks
// it with the documented encoding (r170Hash), independently of
// Event.ChainHash and VerifyAudit: numbered without gaps from the
// checkpoint, each hash chained from the one before (the checkpoint's
// for the first), ending at the head.
func r170Chains(t *testing.T, s *sqlstore.Store) map[string][]sa.Event {
	t.Helper()
	ctx := context.Background()
	evs, err := s.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	by := map[string][]sa.Event{}
	for _, e := range evs {
		by[e.TenantID] = append(by[e.TenantID], e)
	}
	for tenant, evs := range by {
		st, err := s.AuditChain(ctx, tenant)
		require.NoError(t, err)
		seq, prev := st.Checkpoint.Seq, st.Checkpoint.Hash
		for _, e := range evs {
			seq++
			require.Equal(t, seq, e.Seq, "tenant %q", tenant)
			require.Equal(t, r170Hash(e, prev), e.Hash, "tenant %q seq %d (%s) by the documented encoding", tenant, e.Seq, e.Type)
			prev = e.Hash
		}
		require.Equal(t, st.Head, sa.ChainLink{Seq: seq, Hash: prev}, "head of %q", tenant)
	}
	return by
}

// r170VerifyAll requires this release's VerifyAudit of every tenant to
// pass and returns how many events it verified per tenant.
func r170VerifyAll(t *testing.T, m *sa.Manager, tenants []string) map[string]int64 {
	t.Helper()
	n := map[string]int64{}
	for _, tenant := range tenants {
		rep, err := m.VerifyAudit(context.Background(), tenant)
		require.NoError(t, err, "this release's VerifyAudit of %q", tenant)
		require.True(t, rep.OK(), "%q: %+v", tenant, rep.Break)
		n[tenant] = rep.Events
	}
	return n
}

// r170Export is this release's export of the whole trail in chain order.
func r170Export(t *testing.T, m *sa.Manager, f sa.AuditFilter) []byte {
	t.Helper()
	var buf bytes.Buffer
	f.Order = sa.AuditByChain
	_, err := m.ExportAudit(context.Background(), &buf, f)
	require.NoError(t, err)
	return buf.Bytes()
}

// r170NewManager is a Manager of this release configured like the old
// driver's (a hook failing once for hk-* tenants, a notifier failing for
// nf-* tenants).
func r170NewManager(t *testing.T, s *sqlstore.Store, clock *storetest.Clock) *sa.Manager {
	t.Helper()
	var mu sync.Mutex
	failed := map[uuid.UUID]bool{}
	hook := func(ctx context.Context, g sa.Grant) error {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(g.TenantID, "hk") && !failed[g.ID] {
			failed[g.ID] = true
			return errors.New("support user busy")
		}
		return nil
	}
	notifier := sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
		if strings.HasPrefix(n.TenantID, "nf") {
			return errors.New("mail server down")
		}
		return nil
	})
	m, err := sa.NewManager(s, sa.WithNow(clock.Now), sa.OnExpire(hook),
		sa.WithExpireHookRetry(time.Minute, time.Minute), sa.WithNotifier(notifier))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

var (
	r170Customer = sa.Actor{Kind: sa.ActorCustomer, ID: "admin-1", Name: "Ada Admin"}
	r170Support  = sa.Actor{Kind: sa.ActorSupport, ID: "support@vendor.example", Name: "Sam Support"}
)

// r170NewScenario has this release write to the same tenants what the old
// one did, with what it records since: method_override from a handler
// that changed the method (_method), request_id, a purge of acme over the
// old purge.
func r170NewScenario(t *testing.T, m *sa.Manager, clock *storetest.Clock) {
	t.Helper()
	ctx := context.Background()
	h := m.Middleware(func(r *http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: r.Header.Get("X-Tenant"), Principal: r170Support.ID, SubjectUserID: "user-7", SessionID: "new-sess"}, true
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := r.URL.Query().Get("_method"); m != "" {
			// A framework honouring a _method field inside the
			// middleware changes the request it was passed.
			r.Method = m
		}
		if r.URL.Query().Get("change") != "" {
			if err := sa.RecordChange(r.Context(), "settings.sso", map[string]any{"enabled": false}, map[string]any{"enabled": true}); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	serve := func(tenant, method, target, override string) int {
		req := httptest.NewRequest(method, target, nil)
		req.Header.Set("X-Tenant", tenant)
		if override != "" {
			req.Header.Set("X-HTTP-Method-Override", override)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: r170Customer, Duration: time.Hour, Reason: "new release",
		TicketRef: "SUP-2000", Grantees: []string{r170Support.ID}, Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeWrite}})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, serve("acme", http.MethodGet, "/invoices", ""))
	require.Equal(t, http.StatusAccepted, serve("acme", http.MethodPost, "/settings?change=1", "PATCH"))
	require.Equal(t, http.StatusAccepted, serve("acme", http.MethodPost, "/settings?_method=PUT", ""))
	require.Equal(t, http.StatusForbidden, serve("denied-t", http.MethodGet, "/x", ""))
	_, err = m.AddGrantee(ctx, g.ID, "colleague2@vendor.example", r170Support)
	require.NoError(t, err)
	_, err = m.Extend(ctx, g.ID, clock.Now().Add(2*time.Hour), r170Customer)
	require.NoError(t, err)
	q, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: r170Support, Duration: 2 * time.Hour, Reason: "new ask"})
	require.NoError(t, err)
	g2, err := m.Approve(ctx, q.ID, r170Customer, sa.ApproveInput{Duration: time.Hour})
	require.NoError(t, err)
	_, err = m.Revoke(ctx, g2.ID, r170Customer, "done")
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "hk-beta", By: r170Customer, Duration: time.Hour})
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "nf-gamma", By: r170Customer, Duration: time.Hour})
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: r170Support, Duration: time.Hour})
	require.ErrorIs(t, err, sa.ErrForbidden)
	clock.Advance(3 * time.Hour)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	clock.Advance(2 * time.Minute)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
}

// asyncMany sends cmds at once; the function returned waits for all
// their answers.
func (o *r170Old) asyncMany(cmds []string) func() []r170Reply {
	_, err := io.WriteString(o.in, strings.Join(cmds, "\n")+"\n")
	require.NoError(o.t, err)
	ch := make(chan []r170Reply, 1)
	go func() {
		var rs []r170Reply
		for range cmds {
			var r r170Reply
			if !o.out.Scan() {
				r.Err = fmt.Sprint("driver ended: ", o.out.Err())
				rs = append(rs, r)
				break
			}
			if err := json.Unmarshal(o.out.Bytes(), &r); err != nil {
				r.Err = err.Error()
			}
			rs = append(rs, r)
		}
		ch <- rs
	}()
	return func() []r170Reply { return <-ch }
}

// r170Types returns the event types of the chains.
func r170Types(chains map[string][]sa.Event) map[sa.EventType]int {
	n := map[sa.EventType]int{}
	for _, evs := range chains {
		for _, e := range evs {
			n[e.Type]++
		}
	}
	return n
}

// r170VerifyFile runs this release's VerifyJSONL on an export.
func r170VerifyFile(t *testing.T, b []byte) (sa.VerifyReport, error) {
	t.Helper()
	return sa.VerifyJSONL(bytes.NewReader(b))
}

// TestReview170OldTrailVerifiesAfterUpgrade: on SQLite (a file the old
// process and this one share), PostgreSQL and MariaDB, the previous
// release writes every kind of event it records, purges, verifies and
// exports; after this release's Migrate: the stored chains follow the
// documented encoding, this release's VerifyAudit passes with as many
// events as the old one's, this release's export of the same trail is
// byte for byte the old release's export, and VerifyJSONL accepts the old
// export. Then both releases write interleaved (a rolling upgrade; the
// old replica's purge of a chain this release appended to, this
// release's purge of a chain whose latest purge the old one recorded):
// every chain verifies with both releases' VerifyAudit, both releases
// export the same bytes and both releases' VerifyJSONL accept them.
func TestReview170OldTrailVerifiesAfterUpgrade(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		env := r170NewEnv(t, d)
		old := env.old
		end := r170OldScenario(env)
		oldN := map[string]int64{}
		for _, tenant := range r170Tenants {
			v := old.must("verify " + tenant)
			require.True(t, v.Verified, "old VerifyAudit of %q: %s", tenant, v.Break)
			oldN[tenant] = v.Events
		}
		oldAll := filepath.Join(env.dir, "old-all.jsonl")
		oldAcme := filepath.Join(env.dir, "old-acme.jsonl")
		old.must("export " + oldAll)
		old.must("export " + oldAcme + " acme")

		s := env.store()
		require.NoError(t, s.Migrate(ctx))
		require.Equal(t, wantVersions(), versions(t, env.db, s))
		clock := storetest.NewClock(end.Add(time.Hour))
		m := r170NewManager(t, s, clock)

		chains := r170Chains(t, s)
		types := r170Types(chains)
		for _, ty := range r170WantTypes {
			require.Positive(t, types[ty], "the old scenario recorded %s", ty)
		}
		require.Equal(t, oldN, r170VerifyAll(t, m, r170Tenants), "this release verifies what the old one did")

		b, err := os.ReadFile(oldAll)
		require.NoError(t, err)
		require.Equal(t, string(b), string(r170Export(t, m, sa.AuditFilter{})), "this release exports the old trail as the old release did")
		rep, err := r170VerifyFile(t, b)
		require.NoError(t, err, "this release's VerifyJSONL of the old release's export")
		var total int64
		for _, n := range oldN {
			total += n
		}
		require.Equal(t, total, rep.Events)
		ba, err := os.ReadFile(oldAcme)
		require.NoError(t, err)
		require.Equal(t, string(ba), string(r170Export(t, m, sa.AuditFilter{TenantID: "acme"})))
		rep, err = r170VerifyFile(t, ba)
		require.NoError(t, err)
		require.Equal(t, oldN["acme"], rep.Events)
		st, err := s.AuditChain(ctx, "acme")
		require.NoError(t, err)
		require.Equal(t, st.Checkpoint, rep.Chains["acme"].From, "the old export starts at the old purge's checkpoint")

		// The rolling upgrade: the old replica writes while this release
		// does (clocks in sync).
		old.must("set " + clock.Now().Format(time.RFC3339Nano))
		wait := old.asyncMany([]string{"record acme roll", "grant acme 60 support@vendor.example", "http acme GET /rolling",
			"http acme POST /s DELETE change=1", "request acme", "grant hk-beta 60", "sweep", "record hk-beta roll",
			"http denied-t GET /y", "grant nf-gamma 30"})
		r170NewScenario(t, m, clock)
		for i, r := range wait() {
			require.True(t, r.OK, "old rolling command %d: %s", i, r.Err)
		}
		old.must("set " + clock.Now().Format(time.RFC3339Nano))
		old.must("advance 5h")
		old.must("sweep")
		old.must("advance 2m")
		old.must("sweep")
		clock.Advance(5*time.Hour + 3*time.Minute)
		_, err = m.Sweep(ctx)
		require.NoError(t, err)

		// Purges across releases: this release purges acme past the old
		// release's audit.purged; the old replica purges hk-beta, which
		// this release appended to.
		pa, err := m.PurgeAudit(ctx, "acme", end.Add(30*time.Minute))
		require.NoError(t, err)
		require.Positive(t, pa.Deleted)
		p := old.must("purge hk-beta " + end.Add(2*time.Hour).Format(time.RFC3339Nano))
		require.Positive(t, p.N)
		old.must("record hk-beta after-old-purge")
		_, err = m.Grant(ctx, sa.GrantInput{TenantID: "hk-beta", By: r170Customer, Duration: time.Hour})
		require.NoError(t, err)
		old.must("record acme after-new-purge")

		chains = r170Chains(t, s)
		for _, tenant := range []string{"acme", "hk-beta"} {
			r170Seq(t, chains[tenant], sa.EventAuditPurged)
		}
		overridden := false
		for _, e := range chains["acme"] {
			overridden = overridden || e.Attrs[sa.AttrMethodOverride] != ""
		}
		require.True(t, overridden, "a method_override event hashed by the documented encoding")
		newN := r170VerifyAll(t, m, r170Tenants)
		total = 0
		for _, tenant := range r170Tenants {
			v := old.must("verify " + tenant)
			require.True(t, v.Verified, "the old release's VerifyAudit of %q after the upgrade: %s", tenant, v.Break)
			require.Equal(t, newN[tenant], v.Events, tenant)
			require.EqualValues(t, len(chains[tenant]), newN[tenant], tenant)
			total += newN[tenant]
		}
		exp := r170Export(t, m, sa.AuditFilter{})
		rep, err = r170VerifyFile(t, exp)
		require.NoError(t, err)
		require.Equal(t, total, rep.Events)
		old.must("export " + oldAll)
		b, err = os.ReadFile(oldAll)
		require.NoError(t, err)
		require.Equal(t, string(exp), string(b), "both releases export the mixed trail alike")
		newFile := filepath.Join(env.dir, "new-all.jsonl")
		require.NoError(t, os.WriteFile(newFile, exp, 0o600))
		v := old.must("verifyjsonl " + newFile)
		require.True(t, v.Verified, "the old release's VerifyJSONL of this release's export: %s", v.Break)
		require.Equal(t, total, v.Events)
	})
}

// r170Seq returns the seq of the first event of tenant with type ty.
func r170Seq(t *testing.T, chain []sa.Event, ty sa.EventType) sa.Event {
	t.Helper()
	for _, e := range chain {
		if e.Type == ty {
			return e
		}
	}
	t.Fatalf("no %s in the chain", ty)
	return sa.Event{}
}

// TestReview170OldTamperFoundAfterUpgrade: tampering with the part of a
// chain the previous release wrote — an UPDATE of a reason, a DELETE of
// a row, a checkpoint moved over deleted events (with and without editing
// the old audit.purged event to vouch for it, or deleting it), a reset
// checkpoint — is found by this release's VerifyAudit after Migrate and
// after this release appended more events; an edited line of the old
// release's export is found by VerifyJSONL.
func TestReview170OldTamperFoundAfterUpgrade(t *testing.T) {
	type tamper struct {
		name   string
		tenant string
		kinds  []sa.BreakKind
		do     func(t *testing.T, env *r170Env, chain []sa.Event, st sa.AuditChainState) int64 // the seq to be reported (0: any)
	}
	execSQL := func(t *testing.T, env *r170Env, q string, args ...any) {
		t.Helper()
		res, err := env.db.Exec(env.q(q), args...)
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.Positive(t, n, "%s", q)
	}
	// moveCheckpoint deletes acme's events after the checkpoint up to and
	// including to, and sets the checkpoint there.
	moveCheckpoint := func(t *testing.T, env *r170Env, chain []sa.Event, st sa.AuditChainState, to sa.Event) {
		execSQL(t, env, `DELETE FROM {p}audit_events WHERE tenant_id = ? AND seq > ? AND seq <= ?`, "acme", st.Checkpoint.Seq, to.Seq)
		execSQL(t, env, `UPDATE {p}audit_heads SET checkpoint_seq = ?, checkpoint_hash = ? WHERE tenant_id = ?`, to.Seq, to.Hash, "acme")
	}
	tampers := []tamper{
		{name: "update_reason", tenant: "acme", kinds: []sa.BreakKind{sa.BreakHashMismatch},
			do: func(t *testing.T, env *r170Env, chain []sa.Event, _ sa.AuditChainState) int64 {
				e := r170Seq(t, chain, sa.EventRequestDenied)
				execSQL(t, env, `UPDATE {p}audit_events SET reason = ? WHERE tenant_id = ? AND seq = ?`, "approved after all", "acme", e.Seq)
				return e.Seq
			}},
		{name: "update_attr", tenant: "acme", kinds: []sa.BreakKind{sa.BreakHashMismatch},
			do: func(t *testing.T, env *r170Env, chain []sa.Event, _ sa.AuditChainState) int64 {
				e := r170Seq(t, chain, sa.EventSupportChange)
				var attrs string
				require.NoError(t, env.db.QueryRow(env.q(`SELECT attrs FROM {p}audit_events WHERE tenant_id = ? AND seq = ?`), "acme", e.Seq).Scan(&attrs))
				require.Contains(t, attrs, "settings.sso")
				execSQL(t, env, `UPDATE {p}audit_events SET attrs = ? WHERE tenant_id = ? AND seq = ?`, strings.Replace(attrs, "settings.sso", "settings.logo", 1), "acme", e.Seq)
				return e.Seq
			}},
		{name: "delete_row", tenant: "hk-beta", kinds: []sa.BreakKind{sa.BreakGap},
			do: func(t *testing.T, env *r170Env, chain []sa.Event, _ sa.AuditChainState) int64 {
				e := r170Seq(t, chain, sa.EventExpireHookFailed)
				execSQL(t, env, `DELETE FROM {p}audit_events WHERE tenant_id = ? AND seq = ?`, "hk-beta", e.Seq)
				return e.Seq
			}},
		{name: "move_checkpoint", tenant: "acme", kinds: []sa.BreakKind{sa.BreakCheckpoint},
			do: func(t *testing.T, env *r170Env, chain []sa.Event, st sa.AuditChainState) int64 {
				to := r170Seq(t, chain, sa.EventRequestDenied)
				moveCheckpoint(t, env, chain, st, to)
				return 0
			}},
		{name: "move_checkpoint_and_edit_old_purged", tenant: "acme", kinds: nil,
			do: func(t *testing.T, env *r170Env, chain []sa.Event, st sa.AuditChainState) int64 {
				to := r170Seq(t, chain, sa.EventRequestDenied)
				purged := r170Seq(t, chain, sa.EventAuditPurged)
				moveCheckpoint(t, env, chain, st, to)
				var attrs string
				require.NoError(t, env.db.QueryRow(env.q(`SELECT attrs FROM {p}audit_events WHERE tenant_id = ? AND seq = ?`), "acme", purged.Seq).Scan(&attrs))
				edited := strings.Replace(attrs, "checkpoint_seq\n"+fmt.Sprint(st.Checkpoint.Seq)+"\n", "checkpoint_seq\n"+fmt.Sprint(to.Seq)+"\n", 1)
				edited = strings.Replace(edited, hex.EncodeToString(st.Checkpoint.Hash), hex.EncodeToString(to.Hash), 1)
				require.NotEqual(t, attrs, edited)
				execSQL(t, env, `UPDATE {p}audit_events SET attrs = ? WHERE tenant_id = ? AND seq = ?`, edited, "acme", purged.Seq)
				return 0
			}},
		{name: "delete_through_old_purged", tenant: "acme", kinds: []sa.BreakKind{sa.BreakCheckpoint},
			do: func(t *testing.T, env *r170Env, chain []sa.Event, st sa.AuditChainState) int64 {
				moveCheckpoint(t, env, chain, st, r170Seq(t, chain, sa.EventAuditPurged))
				return 0
			}},
		{name: "reset_checkpoint", tenant: "acme", kinds: []sa.BreakKind{sa.BreakCheckpoint},
			do: func(t *testing.T, env *r170Env, chain []sa.Event, st sa.AuditChainState) int64 {
				execSQL(t, env, `UPDATE {p}audit_heads SET checkpoint_seq = 0, checkpoint_hash = NULL WHERE tenant_id = ?`, "acme")
				return 0
			}},
	}
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		for _, tc := range tampers {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				env := r170NewEnv(t, d)
				end := r170OldScenario(env)
				s := env.store()
				require.NoError(t, s.Migrate(ctx))
				clock := storetest.NewClock(end.Add(time.Hour))
				m := r170NewManager(t, s, clock)
				r170VerifyAll(t, m, r170Tenants)
				chains := r170Chains(t, s)
				st, err := s.AuditChain(ctx, tc.tenant)
				require.NoError(t, err)
				seq := tc.do(t, env, chains[tc.tenant], st)
				// This release appends after the tamper.
				_, err = m.Grant(ctx, sa.GrantInput{TenantID: tc.tenant, By: r170Customer, Duration: time.Hour})
				require.NoError(t, err)
				rep, err := m.VerifyAudit(ctx, tc.tenant)
				require.ErrorIs(t, err, sa.ErrTampered, "tamper %s not found", tc.name)
				require.NotNil(t, rep.Break)
				if tc.kinds != nil {
					require.Contains(t, tc.kinds, rep.Break.Kind, "%+v", rep.Break)
				}
				if seq != 0 {
					require.Equal(t, seq, rep.Break.Seq, "%+v", rep.Break)
				}
				v := env.old.must("verify " + tc.tenant)
				require.False(t, v.Verified, "the old release finds it too")
				for _, other := range r170Tenants {
					if other == tc.tenant {
						continue
					}
					rep, err := m.VerifyAudit(ctx, other)
					require.NoError(t, err, other)
					require.True(t, rep.OK())
				}
			})
		}
	})
}

// TestReview170EditedOldExportFound: the previous release's export of a
// chain, edited (a reason, a line removed, two lines swapped, the first
// line's prev_hash replaced, a line's hash recomputed with the documented
// encoding but not the next line's prev link), fails this release's
// VerifyJSONL; unedited it passes.
func TestReview170EditedOldExportFound(t *testing.T) {
	env := r170NewEnv(t, sqlstore.SQLite)
	r170OldScenario(env)
	file := filepath.Join(env.dir, "acme.jsonl")
	env.old.must("export " + file + " acme")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	require.Greater(t, len(lines), 5)
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }
	_, err = r170VerifyFile(t, join(lines))
	require.NoError(t, err)

	edits := map[string]func(ls []string) []string{
		"reason": func(ls []string) []string {
			for i, l := range ls {
				if strings.Contains(l, `"reason":"no"`) {
					ls[i] = strings.Replace(l, `"reason":"no"`, `"reason":"ok"`, 1)
					return ls
				}
			}
			t.Fatal("no denial line")
			return nil
		},
		"line_removed": func(ls []string) []string { return append(ls[:3:3], ls[4:]...) },
		"lines_swapped": func(ls []string) []string {
			ls[3], ls[4] = ls[4], ls[3]
			return ls
		},
		"prev_hash": func(ls []string) []string {
			var l map[string]any
			require.NoError(t, json.Unmarshal([]byte(ls[0]), &l))
			ph, _ := l["prev_hash"].(string)
			require.NotEmpty(t, ph, "the export starts after the old purge")
			ls[0] = strings.Replace(ls[0], `"prev_hash":"`+ph+`"`, `"prev_hash":"`+strings.Repeat("0", 64)+`"`, 1)
			return ls
		},
		"last_line_removed": func(ls []string) []string { return ls[:len(ls)-1] },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			ls := edit(slices.Clone(lines))
			rep, err := r170VerifyFile(t, join(ls))
			if name == "last_line_removed" {
				// The newest events need a head kept elsewhere (documented):
				// the shorter export verifies, with one event fewer.
				require.NoError(t, err)
				require.Equal(t, int64(len(lines)-1), rep.Events)
				return
			}
			require.ErrorIs(t, err, sa.ErrTampered, name)
			require.NotNil(t, rep.Break)
		})
	}
}

// TestReview170OldOddEventsExportAndVerify: events the previous
// release's store kept that an export must escape — a Before that is not
// compact JSON, an After that is not UTF-8 (before_b64/after_b64), a
// reason and attribute value that are not UTF-8 ("encoding": "base64"),
// attributes holding newlines and backslashes (sqlstore's list escape),
// U+2028, an actor without ID — and tenants stored before the identifier
// rules (a zero-width space, two spaces, a leading space, which
// SECURITY.md says stay "readable, verifiable, purgeable") verify after
// Migrate, export byte for byte as the old release exported them, pass
// VerifyJSONL, and can be purged and verified again by this release.
func TestReview170OldOddEventsExportAndVerify(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		ctx := context.Background()
		env := r170NewEnv(t, d)
		old := env.old
		old.must("set " + r170E0.Format(time.RFC3339Nano))
		odd := old.must("recordodd odd")
		t.Logf("%v: old release kept %d of 4 odd events (%s)", d, len(odd.IDs), odd.Err)
		require.GreaterOrEqual(t, len(odd.IDs), 2)
		weird := old.must("recordweird")
		t.Logf("%v: old release kept %d of 9 events of legacy tenants (%s)", d, len(weird.IDs), weird.Err)
		old.must("advance 1h")
		old.must("recordodd odd")
		tenants := []string{"odd", "legacy\u200btenant", "legacy  two", " lead"}
		oldFile := filepath.Join(env.dir, "old.jsonl")
		old.must("export " + oldFile)

		s := env.store()
		require.NoError(t, s.Migrate(ctx))
		clock := storetest.NewClock(r170E0.Add(2 * time.Hour))
		m := r170NewManager(t, s, clock)
		chains := r170Chains(t, s)
		var have []string
		for _, tenant := range tenants {
			if len(chains[tenant]) > 0 {
				have = append(have, tenant)
			}
		}
		require.Contains(t, have, "odd")
		r170VerifyAll(t, m, have)
		b, err := os.ReadFile(oldFile)
		require.NoError(t, err)
		require.Equal(t, string(b), string(r170Export(t, m, sa.AuditFilter{})), "this release exports the old odd events as the old one did")
		rep, err := r170VerifyFile(t, b)
		require.NoError(t, err)
		require.EqualValues(t, len(odd.IDs)*2+len(weird.IDs), rep.Events)
		if len(odd.IDs) == 4 { // PostgreSQL and MariaDB refuse the invalid UTF-8 reason
			require.Contains(t, string(b), `"encoding":"base64"`)
		}
		require.Contains(t, string(b), `"after_b64"`)

		for _, tenant := range have {
			p, err := m.PurgeAudit(ctx, tenant, r170E0.Add(30*time.Minute))
			require.NoError(t, err, "purge %q", tenant)
			require.Positive(t, p.Deleted, tenant)
		}
		r170Chains(t, s)
		r170VerifyAll(t, m, have)
		exp := r170Export(t, m, sa.AuditFilter{})
		_, err = r170VerifyFile(t, exp)
		require.NoError(t, err)
		for _, tenant := range have {
			v := old.must("verify " + tenant)
			require.True(t, v.Verified, "old release's VerifyAudit of %q after this release's purge: %s", tenant, v.Break)
		}
	})
}

// TestReview170OldPurgeCopyVouchesForNothing: the previous release kept a
// second store through MultiAuditor; its purge of the first store wrote
// the audit.purged copy (AttrPurgeCopy) into the second. After the
// upgrade, someone who deletes the second store's events up to the first
// store's checkpoint and moves the second store's checkpoint there must
// be found by this release's VerifyAudit of the second store (SECURITY.md:
// "the copies other auditors receive are marked as such, AttrPurgeCopy,
// and vouch for nothing in their chains").
//
// Not on SQLite: there the copy store shares the first store's file, and
// PurgeAudit waits for ever for the file's write lock its own transaction
// holds (SQLITE_BUSY after the busy timeout, also with this release).
func TestReview170OldPurgeCopyVouchesForNothing(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(d.String(), func(t *testing.T) { r170PurgeCopy(t, d) })
	}
}

func r170PurgeCopy(t *testing.T, d sqlstore.Dialect) {
	{
		ctx := context.Background()
		copyPrefix := r154Prefix()
		env := r170NewEnv(t, d, "-copyprefix", copyPrefix)
		t.Cleanup(func() { r154Drop(t, env.db, d, copyPrefix) })
		old := env.old
		old.must("set " + r170E0.Format(time.RFC3339Nano))
		for i := 0; i < 3; i++ { // Manager's events only: both stores get them
			old.must("grant acme 60 support@vendor.example")
			old.must("http acme GET /x")
			old.must("advance 10m")
		}
		old.must("purge acme " + r170E0.Add(15*time.Minute).Format(time.RFC3339Nano))
		old.must("http acme GET /after")

		a := env.store()
		require.NoError(t, a.Migrate(ctx))
		b, err := sqlstore.New(env.db, d, sqlstore.WithTablePrefix(copyPrefix))
		require.NoError(t, err)
		defer b.Close()
		require.NoError(t, b.Migrate(ctx))
		clock := storetest.NewClock(r170E0.Add(2 * time.Hour))
		mb, err := sa.NewManager(b, sa.WithNow(clock.Now))
		require.NoError(t, err)
		defer mb.Close()
		ma := r170NewManager(t, a, clock)
		r170VerifyAll(t, ma, []string{"acme"})
		r170VerifyAll(t, mb, []string{"acme"})
		stA, err := a.AuditChain(ctx, "acme")
		require.NoError(t, err)
		require.Positive(t, stA.Checkpoint.Seq)
		copyChain := r170Chains(t, b)["acme"]
		purged := r170Seq(t, copyChain, sa.EventAuditPurged)
		require.Equal(t, "true", purged.Attrs[sa.AttrPurgeCopy], "the old release marked the copy")
		at := copyChain[stA.Checkpoint.Seq-1]
		require.Equal(t, stA.Checkpoint, sa.ChainLink{Seq: at.Seq, Hash: at.Hash}, "the copy's chain equals the first store's up to its checkpoint")

		q := func(s string) string { return review148Placeholders(d, strings.ReplaceAll(s, "{p}", copyPrefix)) }
		_, err = env.db.Exec(q(`DELETE FROM {p}audit_events WHERE tenant_id = ? AND seq <= ?`), "acme", at.Seq)
		require.NoError(t, err)
		_, err = env.db.Exec(q(`UPDATE {p}audit_heads SET checkpoint_seq = ?, checkpoint_hash = ? WHERE tenant_id = ?`), at.Seq, at.Hash, "acme")
		require.NoError(t, err)
		require.NoError(t, b.Record(ctx, sa.Event{ID: uuid.New(), Time: clock.Now(), Type: sa.EventSupportRequest, TenantID: "acme", Actor: r170Support}))
		rep, err := mb.VerifyAudit(ctx, "acme")
		require.ErrorIs(t, err, sa.ErrTampered, "the old release's purge copy vouched for events deleted from the copy")
		require.Equal(t, sa.BreakCheckpoint, rep.Break.Kind)
		require.True(t, old.must("verify acme").Verified, "the first store is untouched")
	}
}

// r170DriverSource is the previous release's driver (cmd/r170old/main.go
// in a checkout of r170OldCommit).
const r170DriverSource = `// Command r170old drives the previous release (commit faa02a5, schema
// version 5) of supportaccess for review 170: it writes audit trails with
// every kind of event the release records, exports and verifies them.
// One command a line on stdin, one JSON line on stdout.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
)

type reply struct {
	OK       bool     "json:\"ok\""
	Err      string   "json:\"err,omitempty\""
	TooNew   bool     "json:\"too_new,omitempty\""
	IDs      []string "json:\"ids,omitempty\""
	N        int      "json:\"n,omitempty\""
	Verified bool     "json:\"verified,omitempty\""
	Events   int64    "json:\"events,omitempty\""
	Break    string   "json:\"break,omitempty\""
	Version  int      "json:\"version,omitempty\""
	Hash     string   "json:\"hash,omitempty\""
	Status   int      "json:\"status,omitempty\""
}

var (
	customer = sa.Actor{Kind: sa.ActorCustomer, ID: "admin-1", Name: "Ada Admin"}
	support  = sa.Actor{Kind: sa.ActorSupport, ID: "support@vendor.example", Name: "Sam Support"}
)

// GoldenEvent is the event whose ChainHash the "hash" command prints.
func GoldenEvent() sa.Event {
	return sa.Event{
		ID:       uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057"),
		Time:     time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC),
		Type:     sa.EventSupportRequest,
		TenantID: "acme-é",
		GrantID:  uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8058"),
		Actor:    sa.Actor{Kind: sa.ActorSupport, ID: "support@vendor.example", Name: "Sam ✓"},
		Reason:   "looking at invoices",
		Attrs: map[string]string{sa.AttrMethod: "POST", sa.AttrMethodOverride: "DELETE", sa.AttrRequestID: "r-1",
			sa.AttrPath: "/invoices/1", sa.AttrStatus: "204", sa.AttrSessionID: "s-1", "Z": "", "é": "x"},
		Before: []byte("{\"a\":1}"),
		After:  []byte("{\"a\":2}"),
		Seq:    42,
	}
}

func main() {
	dialect := flag.String("dialect", "", "sqlite, postgres or mysql")
	dsn := flag.String("dsn", "", "data source name (sqlite: file path)")
	prefix := flag.String("prefix", "", "table prefix")
	copyPrefix := flag.String("copyprefix", "", "table prefix of a second store kept through MultiAuditor")
	flag.Parse()
	var d sqlstore.Dialect
	driver := ""
	switch *dialect {
	case "postgres":
		d, driver = sqlstore.Postgres, "pgx"
	case "mysql":
		d, driver = sqlstore.MySQL, "mysql"
	case "sqlite":
		d, driver = sqlstore.SQLite, "sqlite"
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
	var s2 *sqlstore.Store
	if *copyPrefix != "" {
		if s2, err = sqlstore.New(db, d, sqlstore.WithTablePrefix(*copyPrefix)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	var mu sync.Mutex
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	failedHook := map[uuid.UUID]bool{}
	hook := func(ctx context.Context, g sa.Grant) error {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(g.TenantID, "hk") && !failedHook[g.ID] {
			failedHook[g.ID] = true
			return errors.New("support user busy")
		}
		return nil
	}
	notifier := sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
		if strings.HasPrefix(n.TenantID, "nf") {
			return errors.New("mail server down")
		}
		return nil
	})
	pol := sa.DefaultPolicy()
	opts := []sa.Option{sa.WithNow(clock), sa.WithPolicy(pol), sa.OnExpire(hook),
		sa.WithExpireHookRetry(time.Minute, time.Minute), sa.WithNotifier(notifier),
		sa.WithErrorHandler(func(context.Context, error) {})}
	if s2 != nil {
		opts = append(opts, sa.WithAuditor(sa.MultiAuditor(s, s2)))
	}
	m, err := sa.NewManager(s, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer m.Close()
	ctx := context.Background()
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	fail := func(r *reply, err error) {
		r.OK = false
		r.Err = err.Error()
		r.TooNew = errors.Is(err, sqlstore.ErrSchemaTooNew)
	}
	mw := func(tenant string) http.Handler {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("change") != "" {
				if err := sa.RecordChange(r.Context(), "settings.sso", map[string]any{"enabled": true}, map[string]any{"enabled": false, "note": "é\u2028"}); err != nil {
					http.Error(w, err.Error(), http.StatusForbidden)
					return
				}
			}
			if r.URL.Query().Get("admin") != "" {
				// support using the admin UI in the customer's name
				_, err := m.Grant(r.Context(), sa.GrantInput{TenantID: tenant, By: customer, Duration: time.Hour, Reason: "self"})
				if err != nil {
					http.Error(w, err.Error(), http.StatusForbidden)
					return
				}
			}
			w.WriteHeader(http.StatusCreated)
		})
		resolve := func(r *http.Request) (sa.Session, bool) {
			return sa.Session{TenantID: tenant, Principal: support.ID, SubjectUserID: "user-7", SessionID: "sess-" + tenant}, true
		}
		return m.Middleware(resolve)(h)
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
		id := func(i int) uuid.UUID { u, _ := uuid.Parse(arg(i)); return u }
		var err error
		switch f[0] {
		case "version":
			r.Version = sqlstore.SchemaVersion
		case "migrate":
			err = s.Migrate(ctx)
			if err == nil && s2 != nil {
				err = s2.Migrate(ctx)
			}
		case "set":
			var at time.Time
			if at, err = time.Parse(time.RFC3339Nano, arg(1)); err == nil {
				mu.Lock()
				now = at.UTC().Truncate(time.Microsecond)
				mu.Unlock()
			}
		case "advance":
			var dur time.Duration
			if dur, err = time.ParseDuration(arg(1)); err == nil {
				mu.Lock()
				now = now.Add(dur)
				mu.Unlock()
			}
		case "now":
			r.Hash = clock().Format(time.RFC3339Nano)
		case "hash":
			r.Hash = hex.EncodeToString(GoldenEvent().ChainHash([]byte("previous")))
		case "record":
			e := sa.Event{ID: uuid.New(), Time: clock(), Type: sa.EventSupportRequest, TenantID: arg(1),
				Actor: support, Reason: "old " + arg(2), Attrs: map[string]string{sa.AttrMethod: "GET", sa.AttrPath: "/x"}}
			r.IDs = []string{e.ID.String()}
			err = s.Record(ctx, e)
		case "recordodd": // events a store keeps that the export escapes
			evs := []sa.Event{
				{Before: []byte("{ \"a\" : 1 }"), After: []byte{0xff, 0xfe, '{'}, Reason: "line\u2028sep <b>&amp;",
					Attrs: map[string]string{"multi\nline": "back\\slash\n", "empty": "", "é": "\u00e9"}},
				{Before: []byte("null"), After: []byte("[1,2]"), Attrs: map[string]string{}},
				{Reason: "bad \xff utf-8", Attrs: map[string]string{"k": "v\xfe"}},
				{Actor: sa.Actor{Kind: "robot", ID: "", Name: ""}, Reason: ""},
			}
			for i, e := range evs {
				e.ID, e.Time, e.Type, e.TenantID = uuid.New(), clock().Add(time.Duration(i)), sa.EventSupportChange, arg(1)
				if e.Actor.Kind == "" {
					e.Actor = support
				}
				if rerr := s.Record(ctx, e); rerr != nil {
					r.Err += fmt.Sprintf("event %d: %v; ", i, rerr)
					continue
				}
				r.IDs = append(r.IDs, e.ID.String())
			}
		case "recordweird": // tenants stored before the identifier rules
			for _, tenant := range []string{"legacy\u200btenant", "legacy  two", " lead"} {
				for i := 0; i < 3; i++ {
					e := sa.Event{ID: uuid.New(), Time: clock(), Type: sa.EventSupportRequest, TenantID: tenant, Actor: support, Reason: "weird"}
					if rerr := s.Record(ctx, e); rerr != nil {
						r.Err += fmt.Sprintf("%q: %v; ", tenant, rerr)
						break
					}
					r.IDs = append(r.IDs, e.ID.String())
				}
			}
		case "grant": // grant T [minutes] [grantee]
			mins, _ := strconv.Atoi(arg(2))
			if mins == 0 {
				mins = 60
			}
			in := sa.GrantInput{TenantID: arg(1), By: customer, Duration: time.Duration(mins) * time.Minute,
				Reason: "invoice export fails", TicketRef: "SUP-1042", Scopes: []sa.Scope{sa.ScopeRead, sa.ScopeWrite}}
			if arg(3) != "" {
				in.Grantees = []string{arg(3)}
			}
			var g sa.Grant
			if g, err = m.Grant(ctx, in); err == nil {
				r.IDs = []string{g.ID.String()}
			}
		case "schedule": // schedule T startMinutes
			mins, _ := strconv.Atoi(arg(2))
			var g sa.Grant
			if g, err = m.Grant(ctx, sa.GrantInput{TenantID: arg(1), By: customer, Duration: time.Hour,
				StartsAt: clock().Add(time.Duration(mins) * time.Minute), Reason: "later"}); err == nil {
				r.IDs = []string{g.ID.String()}
			}
		case "revoke":
			_, err = m.Revoke(ctx, id(1), customer, "done")
		case "extend":
			var dur time.Duration
			if dur, err = time.ParseDuration(arg(2)); err == nil {
				_, err = m.Extend(ctx, id(1), clock().Add(dur), customer)
			}
		case "delegate":
			_, err = m.AddGrantee(ctx, id(1), arg(2), support)
		case "refuse": // support trying to grant: action.refused
			_, err = m.Grant(ctx, sa.GrantInput{TenantID: arg(1), By: support, Duration: time.Hour})
			if errors.Is(err, sa.ErrForbidden) {
				err = nil
			} else if err == nil {
				err = errors.New("support's grant was not refused")
			}
		case "request":
			var q sa.AccessRequest
			if q, err = m.RequestAccess(ctx, sa.RequestInput{TenantID: arg(1), By: support, Duration: 2 * time.Hour,
				Reason: "customer called", TicketRef: "SUP-7"}); err == nil {
				r.IDs = []string{q.ID.String()}
			}
		case "approve":
			var g sa.Grant
			if g, err = m.Approve(ctx, id(1), customer, sa.ApproveInput{Duration: time.Hour, Reason: "ok"}); err == nil {
				r.IDs = []string{g.ID.String()}
			}
		case "deny":
			_, err = m.Deny(ctx, id(1), customer, "no")
		case "sweep":
			r.N, err = m.Sweep(ctx)
		case "http": // http T METHOD PATH [override|-] [query]
			target := arg(3)
			if arg(5) != "" {
				target += "?" + arg(5)
			}
			req := httptest.NewRequest(arg(2), target, nil)
			if o := arg(4); o != "" && o != "-" {
				req.Header.Set("X-HTTP-Method-Override", o)
			}
			w := httptest.NewRecorder()
			mw(arg(1)).ServeHTTP(w, req)
			r.Status = w.Code
		case "purge": // purge T RFC3339
			var at time.Time
			if at, err = time.Parse(time.RFC3339Nano, arg(2)); err == nil {
				var p sa.AuditPurge
				p, err = m.PurgeAudit(ctx, arg(1), at)
				r.N = int(p.Deleted)
			}
		case "export": // export FILE [T]
			var fh *os.File
			if fh, err = os.Create(arg(1)); err == nil {
				r.N, err = m.ExportAudit(ctx, fh, sa.AuditFilter{TenantID: arg(2), Order: sa.AuditByChain})
				if cerr := fh.Close(); err == nil {
					err = cerr
				}
			}
		case "verifyjsonl": // verifyjsonl FILE
			var fh *os.File
			if fh, err = os.Open(arg(1)); err == nil {
				var rep sa.VerifyReport
				rep, err = sa.VerifyJSONL(fh)
				fh.Close()
				r.Verified, r.Events = rep.OK(), rep.Events
				if rep.Break != nil {
					r.Break = fmt.Sprintf("%+v", *rep.Break)
					err = nil
				}
			}
		case "verify":
			var rep sa.VerifyReport
			rep, err = m.VerifyAudit(ctx, arg(1))
			r.Verified, r.Events = rep.OK(), rep.Events
			if rep.Break != nil {
				r.Break = fmt.Sprintf("%+v", *rep.Break)
				err = nil
			}
		case "quit":
			_ = out.Encode(r)
			return
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		if err != nil {
			fail(&r, err)
		}
		_ = out.Encode(r)
	}
}
`
