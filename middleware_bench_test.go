package supportaccess_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// mwBenchWriter is a ResponseWriter that discards everything (a recorder
// would dominate the measurement).
type mwBenchWriter struct{ h http.Header }

func (w *mwBenchWriter) Header() http.Header         { return w.h }
func (w *mwBenchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *mwBenchWriter) WriteHeader(int)             {}

// mwBenchHandler is the product's handler in the benchmarks.
var mwBenchHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusNoContent)
})

// mwBenchResolve is a typical cheap resolver: the host looks for its
// support session header (by its canonical key, as Header.Get would after
// canonicalising) and finds none on ordinary requests.
func mwBenchResolve(r *http.Request) (sa.Session, bool) {
	if len(r.Header["X-Support-Session"]) == 0 {
		return sa.Session{}, false
	}
	return sa.Session{TenantID: "acme", Principal: "support+acme@vendor.example", SubjectUserID: "u-42", SessionID: "s-1"}, true
}

func mwBenchManager(b *testing.B) *sa.Manager {
	b.Helper()
	m, err := sa.NewManager(memstore.New())
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkHandlerDirect is the baseline: the handler without middleware.
func BenchmarkHandlerDirect(b *testing.B) {
	w := &mwBenchWriter{h: http.Header{}}
	r := httptest.NewRequest(http.MethodGet, "/settings", nil)
	var h http.Handler = mwBenchHandler
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// mwBenchResolveVar keeps the resolver a function value, as the middleware
// holds it (a direct call would be inlined).
var mwBenchResolveVar = mwBenchResolve

// BenchmarkHandlerDirectWithResolver is the baseline plus the host's
// resolver called by hand: BenchmarkMiddlewarePassThrough minus this is
// what the middleware itself costs.
func BenchmarkHandlerDirectWithResolver(b *testing.B) {
	w := &mwBenchWriter{h: http.Header{}}
	r := httptest.NewRequest(http.MethodGet, "/settings", nil)
	var h http.Handler = mwBenchHandler
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := mwBenchResolveVar(r); !ok {
			h.ServeHTTP(w, r)
		}
	}
}

// BenchmarkMiddlewarePassThrough is a request that is not impersonated
// (resolver included): compare with BenchmarkHandlerDirect.
func BenchmarkMiddlewarePassThrough(b *testing.B) {
	m := mwBenchManager(b)
	h := m.Middleware(mwBenchResolve)(mwBenchHandler)
	w := &mwBenchWriter{h: http.Header{}}
	r := httptest.NewRequest(http.MethodGet, "/settings", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkMiddlewareImpersonated is an admitted impersonated request on
// memstore: resolve, Check, context, expiry timer, the support.request
// audit event (kept in the store's hash chain), clean-up.
func BenchmarkMiddlewareImpersonated(b *testing.B) {
	for _, bc := range []struct {
		name   string
		method string
		scopes []sa.Scope
	}{
		{"GET", http.MethodGet, nil},
		{"POST", http.MethodPost, []sa.Scope{sa.ScopeWrite}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := mwBenchManager(b)
			_, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: 7 * sa.Day, Scopes: bc.scopes})
			if err != nil {
				b.Fatal(err)
			}
			h := m.Middleware(mwBenchResolve, sa.WithPollInterval(time.Second))(mwBenchHandler)
			w := &mwBenchWriter{h: http.Header{}}
			r := httptest.NewRequest(bc.method, "/settings?tab=sso", nil)
			r.Header.Set("X-Support-Session", "1")
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
				// Each response of a server starts with a header of its
				// own: the Cache-Control the middleware set must not
				// make the next request's header bigger.
				delete(w.h, "Cache-Control")
			}
		})
	}
}

// BenchmarkMiddlewareImpersonatedParallel is the same on all CPUs: the
// requests overlap, so the shared watcher goroutine stays up.
func BenchmarkMiddlewareImpersonatedParallel(b *testing.B) {
	m := mwBenchManager(b)
	if _, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer}); err != nil {
		b.Fatal(err)
	}
	h := m.Middleware(mwBenchResolve)(mwBenchHandler)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &mwBenchWriter{h: http.Header{}}
		r := httptest.NewRequest(http.MethodGet, "/settings", nil)
		r.Header.Set("X-Support-Session", "1")
		for pb.Next() {
			h.ServeHTTP(w, r)
			delete(w.h, "Cache-Control") // a fresh header each response, as above
		}
	})
}

// BenchmarkMiddlewareImpersonatedSQLite is an admitted impersonated GET on
// the SQL store with SQLite (a file in a temporary directory): one check
// query and one audit transaction per request.
func BenchmarkMiddlewareImpersonatedSQLite(b *testing.B) {
	m, err := sa.NewManager(sqltest.NewStore(b, sqlstore.SQLite))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer}); err != nil {
		b.Fatal(err)
	}
	h := m.Middleware(mwBenchResolve)(mwBenchHandler)
	w := &mwBenchWriter{h: http.Header{}}
	r := httptest.NewRequest(http.MethodGet, "/settings", nil)
	r.Header.Set("X-Support-Session", "1")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
		delete(w.h, "Cache-Control") // a fresh header each response, as above
	}
}
