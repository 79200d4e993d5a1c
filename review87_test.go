package supportaccess_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// An impersonated request served inside another one of another session
// (here a route middleware of the same Manager with a resolver of its
// own), writing to the outer request's writer: its session ends while its
// response is under way, its writes are refused, and the response is the
// one sent to the client. Nothing aborts: the inner request is not the
// outermost, and the outer one's session did not end. The client gets a
// clean, complete-looking but truncated response (SECURITY.md: "A response
// under way when its request ends ... is aborted ... so the client sees it
// cut, not complete"). Before 2a2d0b6 the inner request aborted it.
func TestReview87InnerSessionEndOnSharedResponseNotAborted(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Grantees: []string{mwGeneric}})
	g2 := e.grant(sa.GrantInput{Grantees: []string{mwEve}})
	eve := sa.Session{TenantID: "acme", Principal: mwEve, SubjectUserID: "u-42", SessionID: "s-eve"}
	var refused atomic.Bool
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("part;"))
		_, err := e.m.Revoke(context.Background(), g2.ID, mwCustomer, "stop")
		require.NoError(t, err)
		<-r.Context().Done()
		_, err = w.Write([]byte("more"))
		refused.Store(err != nil)
	})
	inner := e.m.Middleware(func(*http.Request) (sa.Session, bool) { return eve, true },
		sa.WithMiddlewareErrorHandler(e.errs.handle))(handler)
	outer := e.wrap(inner)
	rec, aborted := mwServe(outer, mwReq(http.MethodGet, "/export", "generic"))
	require.True(t, refused.Load(), "the inner request's write was refused: its session ended")
	require.Equal(t, "part;", rec.Body.String())
	require.True(t, aborted, "the response was cut by the end of the session that wrote it: it must not look complete")
}

// The caller's deadline passes while runHookTasks claims retries (a slow
// store): the first task's hook is never called, yet it is recorded as a
// failed attempt ("context deadline exceeded"), its attempt counted and
// its retry pushed back. The commit's own rule: a hook whose deadline
// passed before it was called must not "fail" uncalled (the lease's
// deadline case is released untouched; the caller's deadline is not).
// Before cb53658 a passed context kept the task as it was.
func TestReview87CallerDeadlineDuringClaimFailsHookUncalled(t *testing.T) {
	st := &slowHookClaims{Store: memstore.New()}
	clock := storetest.NewClock(storetest.Epoch)
	var calls atomic.Int32
	var failing atomic.Bool
	failing.Store(true)
	m, err := sa.NewManager(st, sa.WithNow(clock.Now),
		sa.WithErrorHandler(func(context.Context, error) {}),
		sa.OnExpire(func(context.Context, sa.Grant) error {
			calls.Add(1)
			if failing.Load() {
				return errBoom
			}
			return nil
		}))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Reason: "r"})
	require.NoError(t, err)
	clock.Set(g.ExpiresAt)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(1), calls.Load())
	failing.Store(false)

	clock.Advance(sa.DefaultHookRetryMin)
	st.delay.Store(int64(150 * time.Millisecond))
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, _ = m.Sweep(dctx)
	require.Equal(t, int32(1), calls.Load(), "the retry's hook was not called (the deadline passed during the claim)")
	evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventExpireHookFailed}})
	require.NoError(t, err)
	for _, ev := range evs {
		t.Logf("failed: attempt=%s err=%q next_at=%s", ev.Attrs["attempt"], ev.Attrs[sa.AttrError], ev.Attrs["next_at"])
	}
	require.Len(t, evs, 1, "a hook that was never called is not recorded as a failed attempt")

	// And it runs at once on the next Sweep, not after a doubled delay.
	st.delay.Store(0)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load(), "the untouched retry runs at the next Sweep")
}
