package supportaccess_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestConcurrentMiddlewareRevoke: impersonated requests run through the
// middleware from several goroutines while the grant is revoked; no
// request that started after Revoke returned reaches the handler, and
// every request is audited once (support.request or access.denied). The
// stores' own histories are checked by sqlstore's TestLinearizableRevoke;
// this covers the middleware on top (its nesting, watcher and listener).
func TestConcurrentMiddlewareRevoke(t *testing.T) {
	e := newMWEnv(t)
	type req struct {
		start   time.Time
		reached bool
	}
	var mu sync.Mutex
	var reqs []req
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	const workers, rounds = 4, 5
	total := 0
	for round := 0; round < rounds; round++ {
		g := e.grant(sa.GrantInput{})
		var revokedAt atomic.Pointer[time.Time]
		var admitted atomic.Int64
		ready := make(chan struct{}) // closed once some requests got in
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				after := 0                                // requests started after the revocation returned
				for i := 0; after < 10 && i < 2000; i++ { // bounded: a bug must not hang the test
					start := time.Now()
					rec := mwDo(h, mwReq(http.MethodGet, "/settings", "generic"))
					switch rec.Code {
					case http.StatusOK:
						if admitted.Add(1) == 20 {
							close(ready)
						}
					case http.StatusForbidden:
					default:
						t.Errorf("status %d", rec.Code)
						return
					}
					mu.Lock()
					reqs = append(reqs, req{start, rec.Code == http.StatusOK})
					mu.Unlock()
					if r := revokedAt.Load(); r != nil && start.After(*r) {
						after++
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ready:
			case <-time.After(10 * time.Second):
				t.Errorf("no request was admitted")
			}
			if _, err := e.m.Revoke(ctx, g.ID, mwCustomer, ""); err != nil {
				t.Errorf("revoke: %v", err)
			}
			now := time.Now()
			revokedAt.Store(&now)
		}()
		wg.Wait()
		end := *revokedAt.Load()
		mu.Lock()
		for _, r := range reqs[total:] {
			if r.start.After(end) {
				require.False(t, r.reached, "a request that started %v after Revoke returned was let through", r.start.Sub(end))
			}
		}
		total = len(reqs)
		mu.Unlock()
	}
	evs := e.events(sa.EventSupportRequest, sa.EventAccessDenied)
	require.Len(t, evs, total, "every request audited once")
}
