package supportaccess_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Regression tests for the sixth review round.

// TestRecordChangeChecksAccessNow: RecordChange must refuse a change once
// the request's access has ended, even before the middleware's watcher
// has noticed — a revocation by this very Manager is seen only
// asynchronously, and an expiry only when the timer fires.
func TestRecordChangeChecksAccessNow(t *testing.T) {
	t.Run("revoked by this manager", func(t *testing.T) {
		e := newMWEnv(t)
		g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		var errAfter error
		var canceled error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop now")
			require.NoError(t, err)
			errAfter = sa.RecordChange(r.Context(), "sso.enforced", false, true)
			canceled = context.Cause(r.Context())
			w.WriteHeader(http.StatusNoContent)
		}))
		mwDo(h, mwReq(http.MethodPut, "/settings/sso", "generic"))
		require.ErrorIs(t, errAfter, sa.ErrSessionEnded)
		require.ErrorContains(t, errAfter, "revoked")
		require.ErrorIs(t, canceled, sa.ErrSessionEnded, "the refusal ends the request")
		require.Empty(t, e.events(sa.EventSupportChange))
	})
	t.Run("expired", func(t *testing.T) {
		e := newMWEnv(t)
		g := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}})
		var errAfter error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.clock.setUntil(g.ExpiresAt, -time.Minute) // the grant ended a minute ago
			errAfter = sa.RecordChange(r.Context(), "sso.enforced", false, true)
			w.WriteHeader(http.StatusNoContent)
		}))
		mwDo(h, mwReq(http.MethodPut, "/settings/sso", "generic"))
		require.ErrorIs(t, errAfter, sa.ErrSessionEnded)
		require.ErrorContains(t, errAfter, "expired")
		require.Empty(t, e.events(sa.EventSupportChange))
	})
	t.Run("another grant took over", func(t *testing.T) {
		e := newMWEnv(t)
		first := e.grant(sa.GrantInput{Duration: 24 * time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}})
		second := e.grant(sa.GrantInput{Duration: time.Hour, Scopes: []sa.Scope{sa.ScopeWrite}})
		var errAfter error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := e.m.Revoke(context.Background(), first.ID, mwCustomer, "one ticket closed")
			require.NoError(t, err)
			errAfter = sa.RecordChange(r.Context(), "sso.enforced", false, true)
			w.WriteHeader(http.StatusNoContent)
		}))
		rec := mwDo(h, mwReq(http.MethodPut, "/settings/sso", "generic"))
		require.NoError(t, errAfter)
		require.Equal(t, http.StatusNoContent, rec.Code)
		evs := e.events(sa.EventSupportChange)
		require.Len(t, evs, 1)
		require.Equal(t, second.ID, evs[0].GrantID, "the change names the grant that allows it now")
	})
	t.Run("store down", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
		var errAfter, canceled error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.store.failFind.Store(true)
			errAfter = sa.RecordChange(r.Context(), "sso.enforced", false, true)
			canceled = context.Cause(r.Context())
			e.store.failFind.Store(false)
			w.WriteHeader(http.StatusNoContent)
		}))
		mwDo(h, mwReq(http.MethodPut, "/settings/sso", "generic"))
		require.ErrorIs(t, errAfter, errMWBoom, "fail closed: no answer, no change")
		require.NoError(t, canceled, "a store failure alone does not end the request here")
		require.Empty(t, e.events(sa.EventSupportChange))
	})
}

// TestRecordChangeNamesElevatedGrants: a change on a route whose
// RequireScope got its scope from another grant names that grant too, as
// the request's own event does.
func TestRecordChangeNamesElevatedGrants(t *testing.T) {
	const billing sa.Scope = "billing:write"
	e := newMWEnv(t)
	w := e.grant(sa.GrantInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}, TicketRef: "SUP-1"})
	el := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{billing}, TicketRef: "SUP-2"})
	h := e.wrap(sa.RequireScope(billing)(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		require.NoError(t, sa.RecordChange(r.Context(), "billing.iban", "DE00 1111", "DE00 2222"))
		rw.WriteHeader(http.StatusNoContent)
	})))
	rec := mwDo(h, mwReq(http.MethodPost, "/billing", "generic"))
	require.Equal(t, http.StatusNoContent, rec.Code)
	req := e.events(sa.EventSupportRequest)
	require.Len(t, req, 1)
	chg := e.events(sa.EventSupportChange)
	require.Len(t, chg, 1)
	require.Equal(t, w.ID, chg[0].GrantID)
	require.Equal(t, el.ID.String(), chg[0].Attrs[sa.AttrElevatedGrantIDs])
	require.Equal(t, req[0].Attrs[sa.AttrElevatedGrantIDs], chg[0].Attrs[sa.AttrElevatedGrantIDs])
	require.Equal(t, "write,billing:write", chg[0].Attrs[sa.AttrScope])
}

// TestRecordChangeAfterRequestLeft: a change recorded by work the handler
// left running after the response (a context.WithoutCancel job) is
// refused once the grant is revoked — the watcher no longer follows the
// request, but RecordChange checks with the store itself.
func TestRecordChangeAfterRequestLeft(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	release := make(chan struct{})
	changeErr := make(chan error, 1)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithoutCancel(r.Context())
		go func() {
			<-release // the job runs later
			changeErr <- sa.RecordChange(ctx, "sso.enforced", true, false)
		}()
		w.WriteHeader(http.StatusAccepted)
	}))
	rec := mwDo(h, mwReq(http.MethodPost, "/settings/sso", "generic"))
	require.Equal(t, http.StatusAccepted, rec.Code)
	_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop")
	require.NoError(t, err)
	close(release)
	require.ErrorIs(t, <-changeErr, sa.ErrSessionEnded)
	require.Empty(t, e.events(sa.EventSupportChange))
}

// TestRequireScopeDoesNotTrustEndedAdmittingGrant: a scope the request
// does not use yet is not taken from the grant that admitted it once that
// grant was revoked by this Manager or reached its end, while another,
// narrower grant keeps the request alive.
func TestRequireScopeDoesNotTrustEndedAdmittingGrant(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	for _, end := range []string{"revoked", "expired"} {
		for _, scope := range []sa.Scope{msgs, sa.ScopeWrite} {
			t.Run(end+"/"+string(scope), func(t *testing.T) {
				e := newMWEnv(t)
				wide := sa.GrantInput{Duration: 2 * sa.Day, Scopes: []sa.Scope{sa.ScopeWrite, msgs}}
				if end == "expired" {
					wide.Duration = time.Hour
				} else {
					e.grant(sa.GrantInput{Duration: sa.Day}) // read only, ends sooner
				}
				a := e.grant(wide)
				secret := &mwOK{}
				panel := sa.RequireScope(scope)(secret)
				h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					g, _ := sa.GrantFromContext(r.Context())
					require.Equal(t, a.ID, g.ID, "admitted by the wide grant")
					if end == "expired" {
						e.grant(sa.GrantInput{Duration: sa.Day}) // read only, takes over
						e.clock.setUntil(a.ExpiresAt, -time.Second)
					} else {
						_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "done with the ticket")
						require.NoError(t, err)
					}
					panel.ServeHTTP(w, r)
				}))
				rec := mwDo(h, mwReq(http.MethodGet, "/page", "generic"))
				require.Zero(t, secret.calls.Load(), "no active grant allows %s", scope)
				require.Equal(t, http.StatusForbidden, rec.Code)
			})
		}
	}
}

// TestShortenedGrantEndsRequestAtNewEnd: Extend on this Manager moving a
// grant's end closer makes an in-flight request using it end at the new
// end, not at the next poll (a real timer, 100 ms).
func TestShortenedGrantEndsRequestAtNewEnd(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Duration: sa.Day})
	type result struct {
		cause error
		late  time.Duration
	}
	res := make(chan result, 1)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("event: hello\n\n"))
		ng, err := e.m.Extend(context.Background(), g.ID, e.clock.Now().Add(100*time.Millisecond), mwCustomer)
		require.NoError(t, err)
		select {
		case <-r.Context().Done():
			res <- result{context.Cause(r.Context()), e.clock.Now().Sub(ng.ExpiresAt)}
		case <-time.After(900 * time.Millisecond):
			_, werr := w.Write([]byte("data after the grant ended"))
			res <- result{werr, e.clock.Now().Sub(ng.ExpiresAt)}
		}
	}), sa.WithPollInterval(time.Minute))
	rec := mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
	got := <-res
	require.ErrorIs(t, got.cause, sa.ErrSessionEnded, "the request ends at the new end")
	require.ErrorContains(t, got.cause, "expired")
	require.GreaterOrEqual(t, got.late, time.Duration(0), "not before the new end")
	require.NotContains(t, rec.Body.String(), "after the grant ended")
}

// TestHungStoreDelaysEndOnlyBriefly: with a store that stops answering,
// a request whose grant reached its end, or was revoked by this Manager,
// ends within endedCheckTimeout (100 ms) of it, not a poll interval (2 s
// here) later. Real timers; each case takes about 0.3 s.
func TestHungStoreDelaysEndOnlyBriefly(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		t.Run(map[bool]string{false: "expiry", true: "revoke"}[revoke], func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{Duration: time.Hour})
			if !revoke {
				e.clock.setUntil(g.ExpiresAt, 100*time.Millisecond)
			}
			var werr error
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte("start "))
				e.store.hangFind.Store(true) // the database stops answering
				endedAt := g.ExpiresAt
				if revoke {
					_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "")
					require.NoError(t, err)
					endedAt = e.clock.Now()
				}
				select {
				case <-r.Context().Done():
				case <-time.After(time.Until(endedAt.Add(-time.Duration(e.clock.off.Load()))) + 300*time.Millisecond):
				}
				_, werr = w.Write([]byte("data 300ms after the grant ended"))
			}), sa.WithPollInterval(2*time.Second))
			rec := mwDo(h, mwReq(http.MethodGet, "/events", "generic"))
			require.ErrorIs(t, werr, sa.ErrSessionEnded, "writes 300 ms after the end fail")
			require.Equal(t, "start ", rec.Body.String())
		})
	}
}

// TestReplacedResponseKeepsOnlyOuterHeaders: a denial that replaces the
// handler's response (here: the audit failed) goes out without the header
// fields the handler set, but with those set before it ran.
func TestReplacedResponseKeepsOnlyOuterHeaders(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{})
	inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Customer-Email", "ceo@acme.example")
		w.Header().Set("X-Total-Count", "4711")
		w.Header().Set("Link", `</api/users?page=2&token=abc>; rel="next"`)
		e.store.failRecord.Store(true)
		_, _ = w.Write([]byte(`[{"email":"ceo@acme.example"}]`))
	}))
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1")
		inner.ServeHTTP(w, r)
	})
	rec := mwDo(outer, mwReq(http.MethodGet, "/api/users", "generic"))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.NotContains(t, rec.Body.String(), "ceo@acme.example")
	require.Empty(t, rec.Header().Get("X-Customer-Email"))
	require.Empty(t, rec.Header().Get("X-Total-Count"))
	require.Empty(t, rec.Header().Get("Link"))
	require.Equal(t, "req-1", rec.Header().Get("X-Request-Id"), "fields set before the handler stay")
}

// TestNoTrailersAfterSessionEnded: trailers a handler sets after its
// support access ended do not reach the client — neither named with
// http.TrailerPrefix nor announced with the Trailer field, also through a
// header map the handler took before the end.
func TestNoTrailersAfterSessionEnded(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Trailer", "X-Checksum")
		_, _ = w.Write([]byte("row 1\n"))
		_ = http.NewResponseController(w).Flush()
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop")
		require.NoError(t, err)
		<-r.Context().Done()
		_, werr := w.Write([]byte("row 2\n"))
		require.ErrorIs(t, werr, sa.ErrSessionEnded)
		hdr.Set(http.TrailerPrefix+"X-Rows", "row 2 ceo@acme.example")
		hdr.Set("X-Checksum", "row 2 ceo@acme.example")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/export", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the cut response is aborted, not ended as if complete")
	_ = resp.Body.Close()
	require.Equal(t, "row 1\n", string(body))
	require.Empty(t, resp.Trailer.Get("X-Rows"))
	require.Empty(t, resp.Trailer.Get("X-Checksum"))
}

// startFailStore fails the claims of grant starts while failing is set.
type startFailStore struct {
	*memstore.Store
	failing atomic.Bool
}

func (s *startFailStore) ClaimTransitions(ctx context.Context, tr sa.Transition, now time.Time, limit int, events func(sa.Grant) ([]sa.Event, error)) ([]sa.Grant, error) {
	if tr == sa.TransitionStarted && s.failing.Load() {
		return nil, errBoom
	}
	return s.Store.ClaimTransitions(ctx, tr, now, limit, events)
}

// TestSweepAfterStartClaimFails: a failing claim of grant starts is
// reported; Sweep still expires access requests, but holds back the
// grants' expiries, so that a start is never recorded after its expiry.
// Once the fault is gone, the next Sweep records start, then expiry.
func TestSweepAfterStartClaimFails(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	st := &startFailStore{Store: memstore.New()}
	var hooked atomic.Int64
	m, err := sa.NewManager(st, sa.WithNow(clock.Now),
		sa.OnExpire(func(context.Context, sa.Grant) error { hooked.Add(1); return nil }))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	r, err := m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example"}, Reason: "ticket"})
	require.NoError(t, err)
	clock.Set(r.ExpiresAt) // past the grant's end too

	st.failing.Store(true)
	n, err := m.Sweep(ctx)
	require.ErrorIs(t, err, errBoom, "the failed step is reported")
	require.Zero(t, n, "no expiry before its start")
	require.Zero(t, hooked.Load())
	got, err := st.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestExpired, got.Status, "the request step still runs")

	st.failing.Store(false)
	clock.Advance(time.Minute)
	n, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.EqualValues(t, 1, hooked.Load())
	evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme", GrantID: g.ID, Types: []sa.EventType{sa.EventGrantStarted, sa.EventGrantExpired}})
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, sa.EventGrantStarted, evs[0].Type)
	require.Equal(t, sa.EventGrantExpired, evs[1].Type)
}

// flakyAuditor records events in memory; it fails every event while fail
// is set, and the grant.expired events of the grants set refused.
type flakyAuditor struct {
	fail   atomic.Bool
	mu     sync.Mutex
	refuse map[uuid.UUID]bool
	events []sa.Event
}

func (a *flakyAuditor) Record(_ context.Context, e sa.Event) error {
	if a.fail.Load() {
		return errBoom
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Type == sa.EventGrantExpired && a.refuse[e.GrantID] {
		return errBoom
	}
	a.events = append(a.events, e)
	return nil
}

func (a *flakyAuditor) setRefused(id uuid.UUID, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refuse == nil {
		a.refuse = make(map[uuid.UUID]bool)
	}
	a.refuse[id] = on
}

// countWhere returns how many recorded events match.
func (a *flakyAuditor) countWhere(match func(sa.Event) bool) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.events {
		if match(e) {
			n++
		}
	}
	return n
}

func (a *flakyAuditor) count(t sa.EventType) int {
	return a.countWhere(func(e sa.Event) bool { return e.Type == t })
}

func (a *flakyAuditor) expiredOf(id uuid.UUID) int {
	return a.countWhere(func(e sa.Event) bool { return e.Type == sa.EventGrantExpired && e.GrantID == id })
}

// TestSweepAuditFailureRecordsNothing: with the audit trail in an auditor
// other than the store, a Sweep while that auditor fails records no
// expiry (and runs no hook) — the claim is abandoned — and a later Sweep
// records each expiry once.
func TestSweepAuditFailureRecordsNothing(t *testing.T) {
	type plainStore struct{ sa.Store } // only the Store methods: not an Auditor
	clock := storetest.NewClock(storetest.Epoch)
	aud := &flakyAuditor{}
	m, err := sa.NewManager(plainStore{memstore.New()}, sa.WithNow(clock.Now), sa.WithAuditor(aud),
		sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "globex", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	require.Equal(t, 2, aud.count(sa.EventGrantCreated))

	clock.Set(g.ExpiresAt)
	aud.fail.Store(true) // the audit destination is briefly down
	n, err := m.Sweep(ctx)
	require.ErrorIs(t, err, errBoom)
	require.Zero(t, n, "nothing expired without its event")
	require.Zero(t, aud.count(sa.EventGrantExpired))

	aud.fail.Store(false)
	n, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, 2, aud.count(sa.EventGrantExpired), "each expiry recorded once")
	require.Equal(t, 2, aud.count(sa.EventGrantStarted))
	n, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 2, aud.count(sa.EventGrantExpired))
}

// TestPolicyRefusalsAudited: a request the policy forbids (an unlimited
// grant it does not allow) is audited as action.refused, like an
// Authorizer's refusal, by Grant, Extend, RequestAccess and Approve;
// malformed input (a duration over the maximum) is not.
func TestPolicyRefusalsAudited(t *testing.T) {
	e := newEnv(t)
	engineer := sa.Actor{Kind: sa.ActorSupport, ID: "eve@vendor.example"}
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: 121 * sa.Day})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.Empty(t, e.events(sa.EventActionRefused), "malformed input is not audited")

	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Unlimited})
	require.ErrorIs(t, err, sa.ErrForbidden)
	_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Duration: sa.Unlimited, Reason: "ticket"})
	require.ErrorIs(t, err, sa.ErrForbidden)

	// A request made while the policy allowed unlimited grants, approved
	// by a Manager whose policy does not.
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	lenient, err := sa.NewManager(e.store, sa.WithNow(e.clock.Now), sa.WithPolicy(p))
	require.NoError(t, err)
	r, err := lenient.RequestAccess(ctx, sa.RequestInput{TenantID: "globex", By: engineer, Duration: sa.Unlimited, Reason: "ticket"})
	require.NoError(t, err)
	_, err = e.m.Approve(ctx, r.ID, customer, sa.ApproveInput{})
	require.ErrorIs(t, err, sa.ErrForbidden)
	got, err := e.store.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status, "the refused approval changed nothing")

	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 3)
	for i, want := range []struct {
		action, tenant string
		by             sa.Actor
	}{{"grant", "acme", customer}, {"request", "acme", engineer}, {"approve", "globex", customer}} {
		require.Equal(t, want.action, refused[i].Attrs[sa.AttrAction])
		require.Equal(t, want.tenant, refused[i].TenantID)
		require.Equal(t, want.by, refused[i].Actor)
		require.Contains(t, refused[i].Reason, "unlimited grants are not allowed by the policy")
	}
}

// TestAuditCursorAtUnixEpoch: a cursor at exactly the Unix epoch is not
// the zero time: paging events recorded at that instant moves on.
func TestAuditCursorAtUnixEpoch(t *testing.T) {
	clock := storetest.NewClock(time.Unix(0, 0).UTC())
	m, err := sa.NewManager(memstore.New(), sa.WithNow(clock.Now))
	require.NoError(t, err)
	for range 3 {
		_, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
		require.NoError(t, err)
	}
	f := sa.AuditFilter{TenantID: "acme", Limit: 2}
	p1, next, err := m.AuditPage(ctx, f, "")
	require.NoError(t, err)
	require.Len(t, p1, 2)
	p2, last, err := m.AuditPage(ctx, f, next)
	require.NoError(t, err)
	require.Len(t, p2, 1)
	require.EqualValues(t, 3, p2[0].Seq)
	require.Empty(t, last)

	for _, c := range []sa.AuditCursor{{}, {Time: time.Unix(0, 0).UTC(), TenantID: "acme", Seq: 2}, {Seq: 7, TenantID: "acme"}, {Time: storetest.Epoch.Truncate(time.Microsecond), Seq: 1}} {
		got, err := sa.ParseAuditCursor(c.String())
		require.NoError(t, err)
		require.Equal(t, c, got)
	}
}

// TestSweepAuditorFailureModes: an auditor other than the store that
// refuses one grant's grant.expired. When it is the whole trail (the
// store keeps no events) the refused expiry waits for a later Sweep, and
// no other expiry is recorded twice because of it. When the store keeps
// the trail, the store records every expiry once, the refusal is reported,
// and the other expiries and hooks go on.
func TestSweepAuditorFailureModes(t *testing.T) {
	type plainStore struct{ sa.Store }
	setup := func(t *testing.T, store sa.Store, opts ...sa.Option) (*sa.Manager, [2]sa.Grant, *mwErrs) {
		clock := storetest.NewClock(storetest.Epoch)
		errs := &mwErrs{}
		m, err := sa.NewManager(store, append([]sa.Option{sa.WithNow(clock.Now), sa.WithErrorHandler(errs.handle)}, opts...)...)
		require.NoError(t, err)
		var gs [2]sa.Grant
		for i, tenant := range []string{"acme", "globex"} {
			gs[i], err = m.Grant(ctx, sa.GrantInput{TenantID: tenant, By: customer, Duration: time.Hour})
			require.NoError(t, err)
			clock.Advance(time.Minute)
		}
		clock.Set(gs[1].ExpiresAt)
		return m, gs, errs
	}
	t.Run("auditor is the trail", func(t *testing.T) {
		aud := &flakyAuditor{}
		m, gs, _ := setup(t, plainStore{memstore.New()}, sa.WithAuditor(aud))
		aud.setRefused(gs[1].ID, true) // the second in due order
		n, err := m.Sweep(ctx)
		require.ErrorIs(t, err, errBoom)
		require.Equal(t, 1, n, "the first expiry, claimed on its own, is recorded")
		aud.setRefused(gs[1].ID, false)
		n, err = m.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, 1, aud.expiredOf(gs[0].ID), "recorded once, not again with the refused one")
		require.Equal(t, 1, aud.expiredOf(gs[1].ID))
	})
	t.Run("store keeps the trail", func(t *testing.T) {
		aud := &flakyAuditor{}
		st := memstore.New()
		var hooked atomic.Int64
		m, gs, errs := setup(t, st, sa.WithAuditor(sa.MultiAuditor(st, aud)),
			sa.OnExpire(func(context.Context, sa.Grant) error { hooked.Add(1); return nil }))
		aud.setRefused(gs[0].ID, true) // the first in due order, for good
		n, err := m.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n, "a refusing auditor holds back no expiry")
		require.EqualValues(t, 2, hooked.Load())
		require.NotEmpty(t, errs.all(), "the refusal is reported")
		require.Zero(t, aud.expiredOf(gs[0].ID))
		require.Equal(t, 1, aud.expiredOf(gs[1].ID))
		evs, err := st.Events(ctx, sa.AuditFilter{Types: []sa.EventType{sa.EventGrantExpired}})
		require.NoError(t, err)
		require.Len(t, evs, 2, "the store's trail has both")
		n, err = m.Sweep(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// gateStore holds the first read Check after armed is set until release.
type gateStore struct {
	*memstore.Store
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *gateStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	g, err := s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
	if scope == sa.ScopeRead && s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return g, err
}

// TestShortenedEndNotLostToInFlightRecheck: an Extend that shortens the
// admitting grant while a watcher re-check has already read its old end
// still ends the request at the new end, and RequireScope no longer takes
// the grant's scopes after it (real timers, 100 ms).
func TestShortenedEndNotLostToInFlightRecheck(t *testing.T) {
	ended, wrote := inFlightRecheckMoves(t, func(m *sa.Manager, g sa.Grant, now time.Time) {
		_, err := m.Extend(context.Background(), g.ID, now.Add(100*time.Millisecond), mwCustomer)
		require.NoError(t, err)
	})
	require.False(t, wrote, "RequireScope(write) after the admitting grant's new end")
	require.True(t, ended, "the request ends at the grant's new end")
}

// inFlightRecheckMoves runs a request admitted by grant g (read, write)
// that also uses messages:read. Revoking the messages grant makes the
// watcher re-check at once (a second messages grant keeps the scope; the
// poll interval is a minute); while that re-check has read g's end and
// waits, move changes g on the Manager (now is the Manager's clock). It
// reports whether the request ended within 400 ms of the re-check's
// answer and, if it did not, whether RequireScope(write) then ran.
func inFlightRecheckMoves(t *testing.T, move func(m *sa.Manager, g sa.Grant, now time.Time)) (ended, wrote bool) {
	const msgs sa.Scope = "messages:read"
	clock := &mwClock{}
	store := &gateStore{Store: memstore.New(), entered: make(chan struct{}), release: make(chan struct{})}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	grant := func(scopes ...sa.Scope) sa.Grant {
		g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: sa.Day, Scopes: scopes})
		require.NoError(t, err)
		return g
	}
	g := grant(sa.ScopeWrite) // admits the request (read), allows write
	h := grant(msgs)          // the messages panel's grant
	secret := &mwOK{}
	writePanel := sa.RequireScope(sa.ScopeWrite)(secret)
	mw := m.Middleware(func(*http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s"}, true
	}, sa.WithPollInterval(time.Minute))
	handler := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, r)
		grant(msgs) // a second messages grant: the request goes on when h is revoked
		store.armed.Store(true)
		_, err := m.Revoke(context.Background(), h.ID, mwCustomer, "panel done") // the watcher re-checks now
		require.NoError(t, err)
		<-store.entered // the re-check of read has read g's old end and waits
		move(m, g, clock.Now())
		close(store.release)
		select {
		case <-r.Context().Done():
			ended = true
		case <-time.After(400 * time.Millisecond):
		}
		if !ended {
			writePanel.ServeHTTP(w, r)
		}
	}))
	mwDo(handler, mwReq(http.MethodGet, "/inbox", ""))
	return ended, secret.calls.Load() > 0
}

// TestHungStoreDelaysEndByAtMostAPoll: when the watcher goroutine is
// busy with another request's Check on a store that stopped answering, a
// request whose grant reached its end ends within that poll's time (the
// interval, 300 ms here; at most 1 s) plus its own 100 ms — not at the
// next poll (real timers, about 0.75 s).
func TestHungStoreDelaysEndByAtMostAPoll(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: sa.Day}) // acme: the other request
	gb := e.grant(sa.GrantInput{TenantID: "globex", Duration: time.Hour})
	e.clock.setUntil(gb.ExpiresAt, 150*time.Millisecond) // globex's grant ends in 150 ms

	aIn, done := make(chan struct{}), make(chan struct{})
	var late time.Duration
	var werr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, _ := e.sessions.resolve(r); s.TenantID == "acme" {
			close(aIn)
			<-done // a long stream in another tenant
			return
		}
		_, _ = w.Write([]byte("start "))
		e.store.hangFind.Store(true) // the database stops answering
		select {
		case <-r.Context().Done():
		case <-time.After(time.Until(gb.ExpiresAt.Add(-time.Duration(e.clock.off.Load()))) + 600*time.Millisecond):
			_, werr = w.Write([]byte("data after the end"))
		}
		late = e.clock.Now().Sub(gb.ExpiresAt)
	}), sa.WithPollInterval(300*time.Millisecond))
	aDone := make(chan struct{})
	go func() { defer close(aDone); mwDo(h, mwReq(http.MethodGet, "/stream", "generic")) }()
	<-aIn
	rec := mwDo(h, mwReq(http.MethodGet, "/events", "globex"))
	close(done)
	<-aDone
	require.NoError(t, werr, "not reached: the request ended first")
	require.Equal(t, "start ", rec.Body.String())
	require.Less(t, late, 550*time.Millisecond, "ended %s after the grant's end", late)
}

// TestEarlierMovedEndDoesNotOverrideNewerEnd: an end Extend gave a grant
// on this Manager before a re-check began is not put back over the end the
// re-check read (set later on another replica), when an unrelated Extend
// happens meanwhile.
func TestEarlierMovedEndDoesNotOverrideNewerEnd(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	clock := &mwClock{}
	mem := memstore.New()
	store := &gateStore{Store: mem, entered: make(chan struct{}), release: make(chan struct{})}
	m1, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	m2, err := sa.NewManager(mem, sa.WithNow(clock.Now)) // another replica
	require.NoError(t, err)
	grant := func(tenant string, scopes ...sa.Scope) sa.Grant {
		g, err := m1.Grant(context.Background(), sa.GrantInput{TenantID: tenant, By: mwCustomer, Duration: sa.Day, Scopes: scopes})
		require.NoError(t, err)
		return g
	}
	g := grant("acme", sa.ScopeWrite) // admits the request (read), allows write
	h := grant("acme", msgs)
	other := grant("globex")
	secret := &mwOK{}
	writePanel := sa.RequireScope(sa.ScopeWrite)(secret)
	var ended bool
	mw := m1.Middleware(func(*http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s"}, true
	}, sa.WithPollInterval(time.Minute))
	handler := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, r)
		_, err := m1.Extend(context.Background(), g.ID, clock.Now().Add(20*time.Hour), mwCustomer) // here
		require.NoError(t, err)
		_, err = m2.Extend(context.Background(), g.ID, clock.Now().Add(100*time.Millisecond), mwCustomer) // elsewhere, later
		require.NoError(t, err)
		grant("acme", msgs) // the request goes on when h is revoked
		store.armed.Store(true)
		_, err = m1.Revoke(context.Background(), h.ID, mwCustomer, "panel done") // the watcher re-checks now
		require.NoError(t, err)
		<-store.entered                                                                              // the re-check has read g's end (100 ms)
		_, err = m1.Extend(context.Background(), other.ID, clock.Now().Add(2*time.Hour), mwCustomer) // unrelated
		require.NoError(t, err)
		close(store.release)
		select {
		case <-r.Context().Done():
			ended = true
		case <-time.After(400 * time.Millisecond):
		}
		if !ended {
			writePanel.ServeHTTP(w, r)
		}
	}))
	mwDo(handler, mwReq(http.MethodGet, "/inbox", ""))
	require.Zero(t, secret.calls.Load(), "RequireScope(write) after the admitting grant ended")
	require.True(t, ended, "the request ends at the end the re-check read")
}

// tenantHangStore hangs the Checks of one tenant (hang) until their
// context ends, and delays those of the others by slow.
type tenantHangStore struct {
	*memstore.Store
	hang   atomic.Value // string
	slow   atomic.Int64 // time.Duration
	armed  atomic.Bool  // the next slow Check closes polled
	polled chan struct{}
}

func (s *tenantHangStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if v, _ := s.hang.Load().(string); v != "" && v == tenantID {
		<-ctx.Done()
		return sa.Grant{}, ctx.Err()
	}
	if d := time.Duration(s.slow.Load()); d > 0 && tenantID != "globex" {
		if s.armed.CompareAndSwap(true, false) {
			close(s.polled)
		}
		time.Sleep(d)
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

// TestSecondEndGetsItsOwnBound: after one grant of a request is revoked
// and a re-check finds another, revoking that one too ends the request
// within a poll's time (250 ms here) and its own 100 ms, although the
// watcher is stuck in another tenant's Check on a store that stopped
// answering for it (real timers).
func TestSecondEndGetsItsOwnBound(t *testing.T) {
	store := &tenantHangStore{Store: memstore.New()}
	store.hang.Store("")
	clock := &mwClock{}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	sessions := &mwSessions{}
	sessions.add("acme", sa.Session{TenantID: "acme", Principal: "support+acme@vendor.example", SessionID: "s-acme"})
	sessions.add("globex", sa.Session{TenantID: "globex", Principal: "support+globex@vendor.example", SessionID: "s-globex"})
	grant := func(tenant string) sa.Grant {
		g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: tenant, By: mwCustomer, Duration: sa.Day})
		require.NoError(t, err)
		return g
	}
	grant("acme")
	ga := grant("globex")
	aIn, gIn, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var gEnd time.Time
	h := m.Middleware(sessions.resolve, sa.WithPollInterval(20*time.Millisecond))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, _ := sessions.resolve(r); s.TenantID == "acme" {
			close(aIn)
			<-done
			return
		}
		close(gIn)
		select {
		case <-r.Context().Done():
			gEnd = time.Now()
		case <-time.After(900 * time.Millisecond):
		}
	}))
	aDone := make(chan struct{})
	go func() { defer close(aDone); mwDo(h, mwReq(http.MethodGet, "/stream", "acme")) }()
	<-aIn
	gDone := make(chan struct{})
	go func() { defer close(gDone); mwDo(h, mwReq(http.MethodGet, "/events", "globex")) }()
	<-gIn
	gb := grant("globex") // a second grant (another ticket)
	_, err = m.Revoke(context.Background(), ga.ID, mwCustomer, "ticket 1 closed")
	require.NoError(t, err)
	time.Sleep(30 * time.Millisecond) // the re-check finds gb: the request goes on
	select {
	case <-gDone:
		t.Fatal("the request ended although gb keeps it alive")
	default:
	}
	store.hang.Store("acme") // acme's Checks stop answering
	time.Sleep(20 * time.Millisecond)
	revoked := time.Now()
	_, err = m.Revoke(context.Background(), gb.ID, mwCustomer, "ticket 2 closed")
	require.NoError(t, err)
	<-gDone
	close(done)
	<-aDone
	require.False(t, gEnd.IsZero(), "the request was never ended")
	require.Less(t, gEnd.Sub(revoked), 500*time.Millisecond, "the poll's deadline is 250 ms")
}

// TestBusyWatcherDoesNotEndKeptRequest: with a healthy store and a poll
// of many sessions under way (about 150 ms), a request whose grant is
// revoked while another keeps it is re-checked before the rest of the
// poll, not ended by the failsafe (real timers).
func TestBusyWatcherDoesNotEndKeptRequest(t *testing.T) {
	store := &tenantHangStore{Store: memstore.New()}
	store.hang.Store("")
	clock := &mwClock{}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	grant := func(tenant string) sa.Grant {
		g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: tenant, By: mwCustomer, Duration: sa.Day})
		require.NoError(t, err)
		return g
	}
	sessions := &mwSessions{}
	for i := range 10 {
		tenant := fmt.Sprintf("t%d", i)
		grant(tenant)
		sessions.add(tenant, sa.Session{TenantID: tenant, Principal: "support+" + tenant + "@vendor.example", SessionID: "s-" + tenant})
	}
	sessions.add("globex", sa.Session{TenantID: "globex", Principal: "support+globex@vendor.example", SessionID: "s-globex"})
	ga := grant("globex")
	done, gIn := make(chan struct{}), make(chan struct{})
	var gCause error
	ended := &mwEnded{}
	h := m.Middleware(sessions.resolve, sa.WithPollInterval(400*time.Millisecond), sa.OnSessionEnded(ended.handle))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, _ := sessions.resolve(r); s.TenantID != "globex" {
			<-done // long streams in other tenants
			return
		}
		close(gIn)
		select {
		case <-r.Context().Done():
			gCause = context.Cause(r.Context())
		case <-time.After(400 * time.Millisecond):
		}
	}))
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/stream", fmt.Sprintf("t%d", i))) }()
	}
	gDone := make(chan struct{})
	go func() { defer close(gDone); mwDo(h, mwReq(http.MethodGet, "/events", "globex")) }()
	<-gIn
	store.polled = make(chan struct{})
	store.armed.Store(true)
	store.slow.Store(int64(15 * time.Millisecond)) // a poll of the ten streams takes ~150 ms
	<-store.polled                                 // such a poll has begun
	grant("globex")                                // gb: another ticket's grant
	_, err = m.Revoke(context.Background(), ga.ID, mwCustomer, "ticket 1 closed")
	require.NoError(t, err)
	<-gDone
	close(done)
	wg.Wait()
	require.NoError(t, gCause, "gb keeps the request and the store answers")
	require.Empty(t, ended.all())
}

// TestImpersonatedRequestCannotActAsCustomer: a host admin UI wrapped by
// the middleware, reached by support impersonating the customer's
// administrator, calls the Manager with the request's context and the
// customer actor it believes in: every change is refused and audited with
// the support principal as actor; support acting as itself may still give
// back its own access.
func TestImpersonatedRequestCannotActAsCustomer(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	named := e.grant(sa.GrantInput{Grantees: []string{mwGeneric}})
	r, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorSupport, ID: mwEve}, Reason: "ticket"})
	require.NoError(t, err)
	before, err := e.store.ListGrants(ctx, sa.ListFilter{}, e.clock.Now())
	require.NoError(t, err)
	admin := mwCustomer
	var errs []error
	var own error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c := req.Context()
		_, err := e.m.Grant(c, sa.GrantInput{TenantID: "acme", By: admin, Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite, "messages:read"}})
		errs = append(errs, err)
		_, err = e.m.Extend(c, g.ID, e.clock.Now().Add(100*sa.Day), admin)
		errs = append(errs, err)
		_, err = e.m.AddGrantee(c, named.ID, mwEve, admin)
		errs = append(errs, err)
		_, err = e.m.Approve(c, r.ID, admin, sa.ApproveInput{})
		errs = append(errs, err)
		_, err = e.m.Deny(c, r.ID, admin, "")
		errs = append(errs, err)
		_, err = e.m.RevokeTenant(c, "acme", admin, "")
		errs = append(errs, err)
		_, err = e.m.PurgeAudit(c, "acme", e.clock.Now())
		errs = append(errs, err)
		_, err = e.m.RequestAccess(c, sa.RequestInput{TenantID: "acme", By: sa.Actor{Kind: sa.ActorSupport, ID: mwEve}, Reason: "as eve"})
		errs = append(errs, err)
		// As itself, support may give back the access it holds.
		_, own = e.m.Revoke(c, g.ID, sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}, "done")
		w.WriteHeader(http.StatusNoContent)
	}))
	mwDo(h, mwReq(http.MethodPost, "/admin/support-access", "generic"))
	for i, err := range errs {
		require.ErrorIs(t, err, sa.ErrForbidden, "call %d", i)
	}
	require.NoError(t, own)
	after, err := e.store.ListGrants(ctx, sa.ListFilter{}, e.clock.Now())
	require.NoError(t, err)
	require.Len(t, after, len(before), "no grant created")
	got, err := e.store.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, sa.RequestPending, got.Status)
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, len(errs))
	for _, ev := range refused {
		require.Equal(t, sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}, ev.Actor, "the refusal names who acted")
		require.Equal(t, "acme", ev.TenantID)
		require.Contains(t, ev.Reason, "impersonated support session")
	}
	require.Len(t, e.events(sa.EventGrantCreated), 2, "only the test's own grants")
	require.Len(t, e.events(sa.EventGrantRevoked), 1, "support's own revocation")

	// Outside an impersonated request the administrator acts as usual.
	_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: admin, Duration: sa.Day})
	require.NoError(t, err)
}

// TestAuditorWithoutStoreHasNoDefaultLog: with WithAuditor naming only
// other auditors, the store receives no events; it is then not the
// default audit log either, so reading the trail fails loudly instead of
// reading as empty and intact. WithAuditLog sets one explicitly.
func TestAuditorWithoutStoreHasNoDefaultLog(t *testing.T) {
	st := memstore.New()
	aud := &flakyAuditor{}
	m, err := sa.NewManager(st, sa.WithAuditor(aud))
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	require.Equal(t, 1, aud.count(sa.EventGrantCreated))
	_, err = m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.ErrorContains(t, err, "no AuditLog configured")
	_, err = m.VerifyAudit(ctx, "acme")
	require.ErrorIs(t, err, sa.ErrInvalidInput)

	m, err = sa.NewManager(st, sa.WithAuditor(aud), sa.WithAuditLog(st))
	require.NoError(t, err)
	evs, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme"})
	require.NoError(t, err)
	require.Empty(t, evs, "the log asked for, however empty")

	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour, Grantees: []string{"eve@vendor.example", ""}})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.ErrorContains(t, err, "Grantees[1] is required", "the empty entry is named")
}

// TestEndOfOneOfTwoGrantsKeepsManyRequests: 60 in-flight streams of one
// support session, two grants cover them; the grant that admitted them is
// revoked by the customer, or reaches its end. The store is healthy (each
// Check answers in 3 ms). Every stream goes on: the other grant keeps them
// (real timers, about 0.5 s per case).
func TestEndOfOneOfTwoGrantsKeepsManyRequests(t *testing.T) {
	for _, expire := range []bool{false, true} {
		t.Run(map[bool]string{false: "revoke", true: "expiry"}[expire], func(t *testing.T) {
			manyRequestsKeptByOtherGrant(t, expire, 3*time.Millisecond, 2*time.Second, 400*time.Millisecond)
		})
	}
}

// manyRequestsKeptByOtherGrant: 60 streams of one session, admitted by
// grant a; grant b, created after, keeps them when a is revoked on this
// Manager (or, with expire, reaches its end 150 ms on). The store answers
// every Check after delay; with poll interval interval, no request may
// have ended after wait.
func manyRequestsKeptByOtherGrant(t *testing.T, expire bool, delay, interval, wait time.Duration) {
	const n = 60
	e := newMWEnv(t)
	a := e.grant(sa.GrantInput{Duration: 2 * sa.Day})
	if expire {
		e.clock.setUntil(a.ExpiresAt, 150*time.Millisecond)
	}
	var in sync.WaitGroup
	in.Add(n)
	release := make(chan struct{})
	causes := make(chan error, n)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, _ := sa.GrantFromContext(r.Context())
		require.Equal(t, a.ID, g.ID)
		in.Done()
		select {
		case <-r.Context().Done():
		case <-release:
		}
		causes <- context.Cause(r.Context())
	}), sa.WithPollInterval(interval))
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/events", "generic")) }()
	}
	in.Wait()
	e.grant(sa.GrantInput{Duration: 3 * sa.Day}) // b: another ticket, keeps access
	e.store.slowFind.Store(int64(delay))         // healthy: a network round trip
	if !expire {
		_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed")
		require.NoError(t, err)
	}
	time.Sleep(wait)
	close(release)
	wg.Wait()
	close(causes)
	ended := 0
	for c := range causes {
		if c != nil {
			ended++
		}
	}
	require.Zero(t, ended, "of %d requests, ended although grant b keeps them; errors: %v", n, e.errs.all())
	require.Empty(t, e.ended.all())
}

// staleReadStore: a Check of globex, once armed, reads the grants, then
// tells readDone and waits for resume before answering (a read completed
// just before a concurrent revocation commits); other tenants' Checks
// take slow.
type staleReadStore struct {
	*memstore.Store
	slow     atomic.Int64
	armed    atomic.Bool
	readDone chan struct{}
	resume   chan struct{}
}

func (s *staleReadStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if tenantID == "globex" {
		g, err := s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
		if s.armed.CompareAndSwap(true, false) {
			close(s.readDone)
			<-s.resume
		}
		return g, err
	}
	if d := time.Duration(s.slow.Load()); d > 0 {
		time.Sleep(d)
	}
	return s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

// TestStaleAnswerDoesNotEndKeptRequest: a poll's answer read just before
// a revocation, reused for a second request of the same session, does
// not end requests that another grant keeps (real timers; two attempts,
// as the poll's order varies).
func TestStaleAnswerDoesNotEndKeptRequest(t *testing.T) {
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			store := &staleReadStore{Store: memstore.New(), readDone: make(chan struct{}), resume: make(chan struct{})}
			clock := &mwClock{}
			errs := &mwErrs{}
			m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(errs.handle))
			require.NoError(t, err)
			grant := func(tenant string, d time.Duration) sa.Grant {
				g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: tenant, By: mwCustomer, Duration: d})
				require.NoError(t, err)
				return g
			}
			sessions := &mwSessions{}
			for i := range 10 {
				tenant := fmt.Sprintf("t%d", i)
				grant(tenant, sa.Day)
				sessions.add(tenant, sa.Session{TenantID: tenant, Principal: "support+" + tenant + "@vendor.example", SessionID: "s-" + tenant})
			}
			sessions.add("globex", sa.Session{TenantID: "globex", Principal: "support+globex@vendor.example", SessionID: "s-globex"})
			ga := grant("globex", 2*sa.Day)
			done := make(chan struct{})
			var others, gIn sync.WaitGroup
			others.Add(10)
			gIn.Add(2)
			causes := make(chan error, 2)
			ended := &mwEnded{}
			h := m.Middleware(sessions.resolve, sa.WithPollInterval(400*time.Millisecond), sa.WithMiddlewareErrorHandler(errs.handle), sa.OnSessionEnded(ended.handle))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if s, _ := sessions.resolve(r); s.TenantID != "globex" {
					others.Done()
					<-done // long streams in other tenants
					return
				}
				gIn.Done()
				select {
				case <-r.Context().Done():
				case <-done:
				}
				causes <- context.Cause(r.Context())
			}))
			var wg sync.WaitGroup
			for i := range 10 {
				wg.Add(1)
				go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/stream", fmt.Sprintf("t%d", i))) }()
			}
			others.Wait()
			time.Sleep(20 * time.Millisecond) // the globex streams are polled after the others' first poll
			for range 2 {
				wg.Add(1)
				go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/events", "globex")) }()
			}
			gIn.Wait()
			grant("globex", sa.Day) // b: another ticket's grant
			store.slow.Store(int64(15 * time.Millisecond))
			store.armed.Store(true)
			<-store.readDone // a poll's Check of the globex session read a
			_, err = m.Revoke(context.Background(), ga.ID, mwCustomer, "ticket 1 closed")
			require.NoError(t, err)
			close(store.resume)
			time.Sleep(400 * time.Millisecond)
			close(done)
			wg.Wait()
			close(causes)
			for c := range causes {
				require.NoError(t, c, "b keeps the request and the store answers; errors: %v", errs.all())
			}
			require.Empty(t, ended.all())
		})
	}
}

// TestRevocationDuringRecheckOfFoundGrant: a revocation on this Manager
// that lands while a re-check's Check is answering with that very grant
// still ends the request at once (the listener did not know the request
// would use it yet).
func TestRevocationDuringRecheckOfFoundGrant(t *testing.T) {
	clock := &mwClock{}
	store := &gateStore{Store: memstore.New(), entered: make(chan struct{}), release: make(chan struct{})}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	grant := func(d time.Duration) sa.Grant {
		g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: d})
		require.NoError(t, err)
		return g
	}
	a := grant(2 * sa.Day) // admits the request (ends last)
	b := grant(sa.Day)     // another ticket's grant
	var cause, werr error
	h := m.Middleware(func(*http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s"}, true
	}, sa.WithPollInterval(time.Minute))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("row 1\n"))
		store.armed.Store(true)
		_, err := m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed") // re-check now
		require.NoError(t, err)
		<-store.entered // the re-check's Check has read b and is answering
		_, err = m.Revoke(context.Background(), b.ID, mwCustomer, "ticket 2 closed")
		require.NoError(t, err)
		close(store.release)
		cause = mwWaitEnd(r, 500*time.Millisecond)
		_, werr = w.Write([]byte("row 2: no grant is active\n"))
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/events", ""))
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "both grants revoked on this Manager: the request ends")
	require.ErrorIs(t, werr, sa.ErrSessionEnded)
	require.NotContains(t, rec.Body.String(), "row 2")
}

// TestRevocationDuringAdmissionCheck: a revocation on this Manager that
// lands while the admission Check answers with the grant ends the request
// at once, and RequireScope does not take the grant's scopes.
func TestRevocationDuringAdmissionCheck(t *testing.T) {
	clock := &mwClock{}
	store := &gateStore{Store: memstore.New(), entered: make(chan struct{}), release: make(chan struct{})}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
	require.NoError(t, err)
	const msgs sa.Scope = "messages:read"
	a, err := m.Grant(context.Background(), sa.GrantInput{TenantID: "acme", By: mwCustomer, Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeRead, msgs}})
	require.NoError(t, err)
	secret := &mwOK{}
	inbox := sa.RequireScope(msgs)(secret)
	var cause, werr error
	h := m.Middleware(func(*http.Request) (sa.Session, bool) {
		return sa.Session{TenantID: "acme", Principal: mwGeneric, SessionID: "s"}, true
	}, sa.WithPollInterval(time.Minute))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inbox.ServeHTTP(httptest.NewRecorder(), r) // Revoke has returned: no grant is active
		cause = mwWaitEnd(r, 500*time.Millisecond)
		_, werr = w.Write([]byte("data after the revocation\n"))
	}))
	store.armed.Store(true)
	done := make(chan struct{})
	var rec *httptest.ResponseRecorder
	go func() { defer close(done); rec = mwDo(h, mwReq(http.MethodGet, "/events", "")) }()
	<-store.entered // the admission Check has read a
	_, err = m.Revoke(context.Background(), a.ID, mwCustomer, "stop now")
	require.NoError(t, err)
	close(store.release)
	<-done
	require.Zero(t, secret.calls.Load(), "RequireScope(%s) after the only grant was revoked on this Manager", msgs)
	require.ErrorIs(t, cause, sa.ErrSessionEnded)
	require.ErrorIs(t, werr, sa.ErrSessionEnded)
	require.NotContains(t, rec.Body.String(), "after the revocation")
}

// TestRevocationNotDelayedByNotifier: Revoke tells this Manager's
// middleware before the Notifier's round trip (an e-mail, a webhook).
func TestRevocationNotDelayedByNotifier(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	notifier := sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
		if n.Type == sa.EventGrantRevoked {
			close(entered)
			<-release
		}
		return nil
	})
	e := newMWEnv(t, sa.WithNotifier(notifier))
	g := e.grant(sa.GrantInput{Duration: sa.Day})
	in, probe := make(chan struct{}), make(chan struct{})
	var werr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("row 1\n"))
		close(in)
		<-probe
		select { // the re-check ends it within milliseconds
		case <-r.Context().Done():
		case <-time.After(300 * time.Millisecond):
		}
		_, werr = w.Write([]byte("row 2\n"))
	}), sa.WithPollInterval(time.Minute))
	done := make(chan struct{})
	var rec *httptest.ResponseRecorder
	go func() { defer close(done); rec = mwDo(h, mwReq(http.MethodGet, "/events", "generic")) }()
	<-in
	revokeDone := make(chan struct{})
	go func() {
		defer close(revokeDone)
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop now")
		require.NoError(t, err)
	}()
	<-entered // committed; the customer is being told
	close(probe)
	<-done
	close(release)
	<-revokeDone
	require.ErrorIs(t, werr, sa.ErrSessionEnded)
	require.NotContains(t, rec.Body.String(), "row 2")
}

// TestRequireScopeAfterElevatedGrantRevokedHere: a scope the request took
// from another grant is not taken again after this Manager revoked that
// grant.
func TestRequireScopeAfterElevatedGrantRevokedHere(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: 2 * sa.Day}) // read: admits the request
	hg := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{msgs}})
	first, second := &mwOK{}, &mwOK{}
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sa.RequireScope(msgs)(first).ServeHTTP(httptest.NewRecorder(), r) // via hg
		_, err := e.m.Revoke(context.Background(), hg.ID, mwCustomer, "no more messages")
		require.NoError(t, err)
		sa.RequireScope(msgs)(second).ServeHTTP(httptest.NewRecorder(), r)
	}))
	mwDo(h, mwReq(http.MethodGet, "/inbox", "generic"))
	require.Equal(t, int64(1), first.calls.Load())
	require.Zero(t, second.calls.Load(), "RequireScope(%s) after its only grant was revoked on this Manager", msgs)
}

// slowAllStore delays every Check by slow; once armed, a successful Check
// of globex closes answered.
type slowAllStore struct {
	*memstore.Store
	slow     atomic.Int64
	armed    atomic.Bool
	answered chan struct{}
}

func (s *slowAllStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if d := time.Duration(s.slow.Load()); d > 0 {
		time.Sleep(d)
	}
	g, err := s.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
	if tenantID == "globex" && err == nil && s.armed.CompareAndSwap(true, false) {
		close(s.answered)
	}
	return g, err
}

// TestSaturatedPollDoesNotEndKeptRequest: when a poll cannot check every
// session before its deadline (many sessions, a healthy store), a request
// whose grant was revoked is still asked about, not ended unasked: another
// grant keeps it (real timers, about 1 s).
func TestSaturatedPollDoesNotEndKeptRequest(t *testing.T) {
	store := &slowAllStore{Store: memstore.New(), answered: make(chan struct{})}
	clock := &mwClock{}
	errs := &mwErrs{}
	m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(errs.handle))
	require.NoError(t, err)
	grant := func(tenant string, d time.Duration) sa.Grant {
		g, err := m.Grant(context.Background(), sa.GrantInput{TenantID: tenant, By: mwCustomer, Duration: d})
		require.NoError(t, err)
		return g
	}
	a := grant("globex", 2*sa.Day) // admits the globex stream
	grant("globex", sa.Day)        // b: another ticket's grant, keeps globex
	sessions := &mwSessions{}
	const n = 50
	for i := range n {
		tenant := fmt.Sprintf("t%d", i)
		grant(tenant, sa.Day)
		sessions.add(tenant, sa.Session{TenantID: tenant, Principal: "support+" + tenant + "@vendor.example", SessionID: "s-" + tenant})
	}
	sessions.add("globex", sa.Session{TenantID: "globex", Principal: "support+globex@vendor.example", SessionID: "s-globex"})
	done := make(chan struct{})
	var others, gIn sync.WaitGroup
	others.Add(n)
	gIn.Add(1)
	var gCause error
	ended := &mwEnded{}
	h := m.Middleware(sessions.resolve, sa.WithPollInterval(250*time.Millisecond), sa.WithMiddlewareErrorHandler(errs.handle), sa.OnSessionEnded(ended.handle))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, _ := sessions.resolve(r); s.TenantID != "globex" {
			others.Done()
			<-done
			return
		}
		gIn.Done()
		select {
		case <-r.Context().Done():
		case <-done:
		}
		gCause = context.Cause(r.Context())
	}))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/stream", fmt.Sprintf("t%d", i))) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/events", "globex")) }()
	others.Wait()
	gIn.Wait()
	store.slow.Store(int64(8 * time.Millisecond)) // healthy: every Check answers; a poll needs ~400 ms
	time.Sleep(300 * time.Millisecond)            // the polls are saturated
	store.armed.Store(true)
	<-store.answered // a re-check of globex answered (grant a): it sorts last in the next poll
	_, err = m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed")
	require.NoError(t, err)
	time.Sleep(400 * time.Millisecond)
	close(done)
	wg.Wait()
	require.NoError(t, gCause, "grant b keeps the globex session and the store answers; errors: %v", errs.all())
	require.Empty(t, ended.all())
}

// TestHungStoreEndsManyExpiredRequestsWithinAPoll: with a store that
// stopped answering, requests of several sessions whose grants reach their
// end together all end within about one poll (300 ms here) plus 100 ms,
// not 100 ms after one another (real timers, about 1 s).
func TestHungStoreEndsManyExpiredRequestsWithinAPoll(t *testing.T) {
	e := newMWEnv(t)
	const n = 8
	var last sa.Grant
	for i := range n {
		tenant := fmt.Sprintf("t%d", i)
		last = e.grant(sa.GrantInput{TenantID: tenant, Duration: time.Hour})
		e.sessions.add(tenant, sa.Session{TenantID: tenant, Principal: "support+" + tenant + "@vendor.example", SessionID: "s-" + tenant})
	}
	e.clock.setUntil(last.ExpiresAt, 250*time.Millisecond) // every grant ends within 250 ms
	endReal := time.Now().Add(250 * time.Millisecond)
	var mu sync.Mutex
	var worst time.Duration
	var in sync.WaitGroup
	in.Add(n)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.Done()
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
		late := time.Since(endReal)
		mu.Lock()
		worst = max(worst, late)
		mu.Unlock()
	}), sa.WithPollInterval(300*time.Millisecond))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/stream", fmt.Sprintf("t%d", i))) }()
	}
	in.Wait()
	time.Sleep(time.Until(endReal) - 40*time.Millisecond)
	e.store.hangFind.Store(true) // the database stops answering just before the ends
	wg.Wait()
	require.Less(t, worst, 600*time.Millisecond, "the last expired request ended %s after its grant's end", worst)
}

// TestRevokedGrantWithManyRequestsOfOneSessionKeptByOtherGrant: one
// session with many in-flight requests, a healthy store answering in 8 ms;
// grant a is revoked on this Manager, grant b keeps the session: no
// request ends, and the re-checks share the Check of the session (real
// timers, under 1 s).
func TestRevokedGrantWithManyRequestsOfOneSessionKeptByOtherGrant(t *testing.T) {
	manyRequestsKeptByOtherGrant(t, false, 8*time.Millisecond, 250*time.Millisecond, 600*time.Millisecond)
}

// TestSharedAnswerFollowsShortenedEnd: grant a is revoked on this
// Manager; requests r1 and r2 of one session used it; grant b keeps them.
// r1's re-check reads b, and before its answer is back the customer moves
// b's end to 300 ms from now (Extend). r2's re-check, reusing that answer,
// still ends at b's new end (real timers, 0.8 s).
func TestSharedAnswerFollowsShortenedEnd(t *testing.T) {
	e := newMWEnv(t)
	store := e.store
	a := e.grant(sa.GrantInput{Duration: 2 * sa.Day})
	const n = 2
	var in sync.WaitGroup
	in.Add(n)
	release := make(chan struct{})
	type result struct {
		cause error
		at    time.Time
	}
	results := make(chan result, n)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.Done()
		select {
		case <-r.Context().Done():
		case <-release:
		}
		results <- result{context.Cause(r.Context()), time.Now()}
	}), sa.WithPollInterval(2*time.Second))
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/events", "generic")) }()
	}
	in.Wait()
	b := e.grant(sa.GrantInput{Duration: 3 * sa.Day}) // keeps access, for now
	newEnd := time.Now().Add(300 * time.Millisecond)
	shorten := func() {
		_, err := e.m.Extend(context.Background(), b.ID, e.clock.Now().Add(300*time.Millisecond), mwCustomer)
		require.NoError(t, err)
	}
	store.after.Store(&shorten)
	_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed")
	require.NoError(t, err)
	time.Sleep(800 * time.Millisecond) // b's new end + 500 ms
	require.Nil(t, store.after.Load(), "the Extend ran")
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		require.ErrorIs(t, r.cause, sa.ErrSessionEnded)
		require.Less(t, r.at.Sub(newEnd), 200*time.Millisecond, "ended soon after b's new end")
	}
}

// TestSharedAnswerOlderThanLaterRequestsAdmission: r1's re-check (its
// grant a revoked) reads grant b; before the answer is back, b's end is
// moved to 100 ms from now on this Manager, and r2 of the same session is
// admitted with that end. When b's end passes, r2's re-check in the same
// poll does not adopt r1's older answer (b's old end): both requests end
// soon after b's new end (real timers, 0.7 s).
func TestSharedAnswerOlderThanLaterRequestsAdmission(t *testing.T) {
	sharedAnswerLaterAdmission(t, false)
}

// TestSharedAnswerExtendDuringLaterAdmission: the same, but the Extend
// commits while r2's admission Check is under way, before the watcher
// follows r2.
func TestSharedAnswerExtendDuringLaterAdmission(t *testing.T) {
	sharedAnswerLaterAdmission(t, true)
}

// sharedAnswerLaterAdmission runs the two tests above; duringAdmission
// says when the Extend commits.
func sharedAnswerLaterAdmission(t *testing.T, duringAdmission bool) {
	e := newMWEnv(t)
	store := e.store
	a := e.grant(sa.GrantInput{Duration: 2 * sa.Day})
	var in sync.WaitGroup
	release := make(chan struct{})
	type result struct {
		name  string
		cause error
		at    time.Time
	}
	results := make(chan result, 2)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.Done()
		select {
		case <-r.Context().Done():
		case <-release:
		}
		results <- result{r.URL.RawQuery, context.Cause(r.Context()), time.Now()}
	}), sa.WithPollInterval(2*time.Second))
	var wg sync.WaitGroup
	in.Add(1)
	wg.Add(1)
	go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/events?r1", "generic")) }()
	in.Wait()
	b := e.grant(sa.GrantInput{Duration: 3 * sa.Day})
	var newEnd time.Time
	extend := func() {
		newEnd = time.Now().Add(100 * time.Millisecond)
		_, err := e.m.Extend(context.Background(), b.ID, e.clock.Now().Add(100*time.Millisecond), mwCustomer)
		require.NoError(t, err)
	}
	hook := func() { // r1's re-check has read b (old end): r2 is admitted now
		if duringAdmission {
			store.before.Store(&extend) // just before r2's admission read
		} else {
			extend()
		}
		in.Add(1)
		wg.Add(1)
		go func() { defer wg.Done(); mwDo(h, mwReq(http.MethodGet, "/events?r2", "generic")) }()
		in.Wait()
		time.Sleep(250 * time.Millisecond) // b's new end passes while the poll runs
	}
	store.after.Store(&hook)
	_, err := e.m.Revoke(context.Background(), a.ID, mwCustomer, "ticket 1 closed")
	require.NoError(t, err)
	time.Sleep(700 * time.Millisecond)
	require.Nil(t, store.after.Load(), "the hook ran")
	require.Nil(t, store.before.Load(), "the extend ran")
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		require.ErrorIs(t, r.cause, sa.ErrSessionEnded, "request %s", r.name)
		require.Less(t, r.at.Sub(newEnd), 400*time.Millisecond, "request %s ended soon after b's new end", r.name)
	}
}
