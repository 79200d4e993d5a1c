package supportaccess_test

// Review 167: is revocation linearizable through the middleware? The
// stores' and the Manager's histories are checked by sqlstore's
// review167_test.go (memstore, SQLite, PostgreSQL, MariaDB); here the
// middleware: an impersonated request that starts after a revocation
// returned — on the replica that revoked, or on another one — is refused,
// also a request a running handler dispatches once its own request ended.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// r167Req is one request of the history.
type r167Req struct {
	round     int
	replica   int
	token     string
	method    string
	inv, resp int64
	code      int
	reached   bool
}

// TestReview167MiddlewareRevocationHistory: two Managers (replicas) over
// one memstore, each with its middleware; workers send requests of two
// sessions through both while, round after round, grants are made and
// ended in every way — Revoke and RevokeTenant and RevokeTicket on either
// replica, an Extend that shortens the grant followed by the clock passing
// the new end. Every request is numbered (invocation, response) with the
// ending calls on one counter; a request that began after the ending call
// returned must be refused, whichever replica serves it.
func TestReview167MiddlewareRevocationHistory(t *testing.T) {
	st := memstore.New()
	clock := storetest.NewClock(storetest.Epoch)
	var ms []*sa.Manager
	for range 2 {
		m, err := sa.NewManager(st, sa.WithNow(clock.Now))
		require.NoError(t, err)
		ms = append(ms, m)
	}
	sessions := &mwSessions{}
	sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-generic"})
	sessions.add("eve", sa.Session{TenantID: "acme", Principal: mwEve, SessionID: "s-eve"})
	var reached atomic.Int64
	var hs []http.Handler
	for _, m := range ms {
		hs = append(hs, m.Middleware(sessions.resolve, sa.WithPollInterval(50*time.Millisecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached.Add(1)
			w.Header().Set("X-Reached", "1")
			_, _ = w.Write([]byte("ok"))
		})))
	}
	var seq atomic.Int64
	var mu sync.Mutex
	var reqs []r167Req

	type ending struct {
		how       string
		round     int
		inv, resp int64
		token     string // the session the ended grant covered
	}
	var endings []ending
	ways := []string{"Revoke@A", "Revoke@B", "RevokeTenant@A", "RevokeTenant@B", "RevokeTicket@A", "RevokeTicket@B", "ExtendAndExpire@A", "ExtendAndExpire@B"}
	for round, how := range ways {
		// The grant of this round: generic (any principal, read) or
		// named eve (read and write), on ticket T<round>.
		token := []string{"generic", "eve"}[round%2]
		in := sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: time.Hour, TicketRef: fmt.Sprint("T", round)}
		if token == "eve" {
			in.Grantees, in.Scopes = []string{mwEve}, []sa.Scope{sa.ScopeWrite}
		}
		g, err := ms[round%2].Grant(ctx, in)
		require.NoError(t, err)
		stop := make(chan struct{})
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for i := 0; i < 3000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					q := r167Req{round: round, replica: r.IntN(2), token: token, method: http.MethodGet}
					if token == "eve" && r.IntN(2) == 0 {
						q.method = http.MethodPost
					}
					q.inv = seq.Add(1)
					rec := mwDo(hs[q.replica], mwReq(q.method, "/settings", q.token))
					q.resp = seq.Add(1)
					q.code, q.reached = rec.Code, rec.Header().Get("X-Reached") == "1"
					if q.code == http.StatusOK {
						admitted.Add(1)
					}
					mu.Lock()
					reqs = append(reqs, q)
					mu.Unlock()
				}
			}()
		}
		for admitted.Load() < 20 {
			time.Sleep(time.Millisecond)
		}
		m := ms[0]
		if strings.HasSuffix(how, "@B") {
			m = ms[1]
		}
		e := ending{how: how, round: round, token: token}
		e.inv = seq.Add(1)
		switch {
		case strings.HasPrefix(how, "RevokeTenant"):
			var gs []sa.Grant
			gs, err = m.RevokeTenant(ctx, "acme", mwCustomer, "")
			require.Len(t, gs, 1)
		case strings.HasPrefix(how, "RevokeTicket"):
			var gs []sa.Grant
			gs, err = m.RevokeTicket(ctx, "acme", g.TicketRef, mwCustomer, "")
			require.Len(t, gs, 1)
		case strings.HasPrefix(how, "Revoke"):
			_, err = m.Revoke(ctx, g.ID, mwCustomer, "")
		default:
			end := clock.Now().Add(time.Minute)
			_, err = m.Extend(ctx, g.ID, end, mwCustomer)
			if err == nil {
				clock.Set(end) // the new end has come
			}
		}
		e.resp = seq.Add(1)
		require.NoError(t, err, how)
		endings = append(endings, e)
		// Some more requests after the end, then the next round.
		after := seq.Load() + 400
		for seq.Load() < after {
			time.Sleep(time.Millisecond)
		}
		close(stop)
		wg.Wait()
	}
	checked := 0
	for _, e := range endings {
		for _, q := range reqs {
			if q.round != e.round || q.inv < e.resp {
				continue
			}
			checked++
			if q.code != http.StatusForbidden || q.reached {
				t.Errorf("VIOLATION: after %s returned [%d,%d], a %s of %s on replica %d [%d,%d] got %d (handler reached: %v)",
					e.how, e.inv, e.resp, q.method, q.token, q.replica, q.inv, q.resp, q.code, q.reached)
			}
		}
	}
	t.Logf("%d requests, %d after an ending call, %d reached the handler", len(reqs), checked, reached.Load())
	require.NotZero(t, checked)
}

// r167Stream is a handler that answers once, then waits until its context
// ends or it is told to go on, then dispatches a nested request through
// the middleware again (the same writer, or a recorder of its own) and
// reports whether the nested handler ran.
type r167Stream struct {
	entered   chan struct{}
	goOn      chan struct{}
	ended     chan error
	nestedRan atomic.Bool
	nestedOK  chan bool
	mw        atomic.Pointer[http.Handler]
	ownWriter bool
	waitEnd   bool
}

func newR167Stream(ownWriter, waitEnd bool) *r167Stream {
	return &r167Stream{entered: make(chan struct{}), goOn: make(chan struct{}), ended: make(chan error, 1),
		nestedOK: make(chan bool, 1), ownWriter: ownWriter, waitEnd: waitEnd}
}

func (s *r167Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/nested" {
		s.nestedRan.Store(true)
		_, _ = w.Write([]byte("secret"))
		return
	}
	_, _ = w.Write([]byte("event: 1\n"))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	close(s.entered)
	if s.waitEnd {
		select {
		case <-r.Context().Done():
			s.ended <- context.Cause(r.Context())
		case <-time.After(2 * time.Second):
			s.ended <- nil
		}
	} else {
		<-s.goOn
	}
	nr := r.Clone(r.Context())
	nr.URL.Path = "/nested"
	nr.RequestURI = "/nested"
	ww := w
	var rec *httptest.ResponseRecorder
	if s.ownWriter {
		rec = httptest.NewRecorder()
		ww = rec
	}
	(*s.mw.Load()).ServeHTTP(ww, nr)
	if rec != nil {
		s.nestedOK <- rec.Code == http.StatusOK
	} else {
		s.nestedOK <- s.nestedRan.Load()
	}
}

// TestReview167MiddlewareInFlightOtherReplica: a request admitted on
// replica B keeps running while replica A revokes its grant; within the
// poll interval its context ends with ErrSessionEnded, and a request its
// handler dispatches then (through B's middleware, into its own response
// or into a recorder) is refused. New requests on B after A's Revoke
// returned are refused at once.
func TestReview167MiddlewareInFlightOtherReplica(t *testing.T) {
	for _, own := range []bool{false, true} {
		t.Run(fmt.Sprintf("ownWriter=%v", own), func(t *testing.T) {
			st := memstore.New()
			clock := storetest.NewClock(storetest.Epoch)
			a, err := sa.NewManager(st, sa.WithNow(clock.Now))
			require.NoError(t, err)
			b, err := sa.NewManager(st, sa.WithNow(clock.Now))
			require.NoError(t, err)
			sessions := &mwSessions{}
			sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1"})
			g, err := a.Grant(ctx, sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: time.Hour})
			require.NoError(t, err)
			const interval = 60 * time.Millisecond
			s := newR167Stream(own, true)
			h := b.Middleware(sessions.resolve, sa.WithPollInterval(interval))(s)
			s.mw.Store(&h)
			done := make(chan struct{})
			go func() {
				defer close(done)
				mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
			}()
			<-s.entered
			at := time.Now()
			_, err = a.Revoke(ctx, g.ID, mwCustomer, "")
			require.NoError(t, err)
			// A new request on B, after A's Revoke returned: refused.
			rec := mwDo(h, mwReq(http.MethodGet, "/nested", "generic"))
			require.Equal(t, http.StatusForbidden, rec.Code)
			require.False(t, s.nestedRan.Load(), "a new request on the other replica reached the handler")
			cause := <-s.ended
			took := time.Since(at)
			require.ErrorIs(t, cause, sa.ErrSessionEnded, "the in-flight request on the other replica ends")
			require.Less(t, took, 10*interval, "within about the poll interval")
			require.False(t, <-s.nestedOK, "a request dispatched after the end was admitted")
			require.False(t, s.nestedRan.Load())
			<-done
		})
	}
}

// TestReview167MiddlewareNestedAfterRevokeSameReplica: on the replica that
// revokes, the end is immediate: a request the running handler dispatches
// right after Revoke returned (without waiting for its own context) is
// refused, into its own response or a recorder; so after RevokeTenant and
// after an Extend whose new end the clock then passes.
func TestReview167MiddlewareNestedAfterRevokeSameReplica(t *testing.T) {
	for _, how := range []string{"Revoke", "RevokeTenant", "ExtendAndExpire"} {
		for _, own := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ownWriter=%v", how, own), func(t *testing.T) {
				st := memstore.New()
				clock := &mwClock{}
				m, err := sa.NewManager(st, sa.WithNow(clock.Now))
				require.NoError(t, err)
				sessions := &mwSessions{}
				sessions.add("generic", sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s-1"})
				g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: time.Hour})
				require.NoError(t, err)
				s := newR167Stream(own, false)
				h := m.Middleware(sessions.resolve, sa.WithPollInterval(time.Hour))(s)
				s.mw.Store(&h)
				done := make(chan struct{})
				go func() {
					defer close(done)
					mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
				}()
				<-s.entered
				switch how {
				case "Revoke":
					_, err = m.Revoke(ctx, g.ID, mwCustomer, "")
				case "RevokeTenant":
					_, err = m.RevokeTenant(ctx, "acme", mwCustomer, "")
				default:
					end := clock.Now().Add(time.Minute)
					_, err = m.Extend(ctx, g.ID, end, mwCustomer)
					clock.setUntil(end, -time.Millisecond) // the new end passed a millisecond ago
				}
				require.NoError(t, err)
				close(s.goOn)
				require.False(t, <-s.nestedOK, "a request dispatched after %s returned was admitted", how)
				require.False(t, s.nestedRan.Load())
				<-done
			})
		}
	}
}

// TestReview167ConcurrentRevokesOneWinner: Revoke, RevokeTenant and
// RevokeTicket of one grant race on two replicas; exactly one reports it,
// one grant.revoked is recorded, and every loser gets ErrInvalidInput (or,
// for the bulk calls, an empty list).
func TestReview167ConcurrentRevokesOneWinner(t *testing.T) {
	for round := range 30 {
		st := memstore.New()
		clock := storetest.NewClock(storetest.Epoch)
		var ms []*sa.Manager
		for range 2 {
			m, err := sa.NewManager(st, sa.WithNow(clock.Now))
			require.NoError(t, err)
			ms = append(ms, m)
		}
		g, err := ms[0].Grant(ctx, sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: time.Hour, TicketRef: "T1",
			StartsAt: clock.Now().Add(time.Duration(round%2) * time.Minute)}) // scheduled every other round
		require.NoError(t, err)
		var wins atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				m := ms[w%2]
				var gs []sa.Grant
				var err error
				switch w % 3 {
				case 0:
					var r sa.Grant
					r, err = m.Revoke(ctx, g.ID, mwCustomer, "")
					if err == nil {
						gs = []sa.Grant{r}
					} else if !errors.Is(err, sa.ErrInvalidInput) {
						t.Errorf("revoke: %v", err)
					}
					err = nil
				case 1:
					gs, err = m.RevokeTenant(ctx, "acme", mwCustomer, "")
				default:
					gs, err = m.RevokeTicket(ctx, "acme", "T1", mwCustomer, "")
				}
				if err != nil {
					t.Errorf("bulk revoke: %v", err)
				}
				for _, x := range gs {
					if x.ID != g.ID {
						t.Errorf("revoked %s, not %s", x.ID, g.ID)
					}
					wins.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		require.EqualValues(t, 1, wins.Load(), "round %d: exactly one revocation wins", round)
		evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantRevoked}})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		_, err = ms[1].Check(ctx, "acme", mwGeneric, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrNoActiveGrant)
	}
}
