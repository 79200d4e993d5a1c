package supportaccess_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
)

// Review 129: adversarial attacks through the public API.

// TestReview129InteriorSpaceRunInTicketRef: support asks for access with
// the ticket reference "SUP  1042" (two spaces); every HTML view shows
// "SUP 1042" (browsers collapse white space), so the administrator would
// approve it, and the host's RevokeTicket(…, "SUP 1042") when that ticket
// closes would revoke nothing. Identifiers may not hold two spaces in a
// row: the request is refused and nothing is stored.
func TestReview129InteriorSpaceRunInTicketRef(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	_, err := e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "export fails", TicketRef: "SUP  1042"})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "a ticket reference with a run of spaces reads as another one in an audit view")
	require.ErrorContains(t, err, "TicketRef holds two spaces in a row")
	require.Equal(t, before, e.snapshot(), "nothing stored")
	_, err = e.m.RequestAccess(ctx, sa.RequestInput{TenantID: "acme", By: engineer, Reason: "export fails", TicketRef: "SUP 1042"})
	require.NoError(t, err, "one space between words is fine")
}

// TestReview129LowercaseMethodNeedsWrite: a request a handler dispatches
// again (a batch endpoint) carries a method support chose; "get" or "Get"
// is not GET to net/http, and a framework that compares methods without
// case would serve it as a read. The middleware asks write for it: with a
// read-only grant it is refused (403, audited with scope write and the
// method as sent) and the inner handler never runs.
func TestReview129LowercaseMethodNeedsWrite(t *testing.T) {
	for _, method := range []string{"get", "Get", "hEAD", "options"} {
		t.Run(method, func(t *testing.T) {
			e := newMWEnv(t)
			e.grant(sa.GrantInput{}) // read only
			inner := &mwOK{}
			h := e.wrap(inner)
			rec := mwDo(h, mwReq(method, "/settings", "generic"))
			require.Equal(t, http.StatusForbidden, rec.Code)
			require.Zero(t, inner.calls.Load(), "the handler must not run")
			denied := e.events(sa.EventAccessDenied)
			require.Len(t, denied, 1)
			require.Equal(t, string(sa.ScopeWrite), denied[0].Attrs[sa.AttrScope])
			require.Equal(t, method, denied[0].Attrs[sa.AttrMethod])
			require.Equal(t, sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}, denied[0].Actor)
			require.Equal(t, "acme", denied[0].TenantID)
			require.Empty(t, e.events(sa.EventSupportRequest))
		})
	}
}

// TestReview129ExpectContinueDeniedWithoutBody: a POST with "Expect:
// 100-continue" under a read-only grant, over a real server. The denial
// goes out before the client is told to continue: the handler never runs,
// the body is never sent (so it reaches nothing), and the refusal is
// audited once.
func TestReview129ExpectContinueDeniedWithoutBody(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // read only
	inner := &mwOK{}
	srv := httptest.NewServer(e.wrap(inner))
	defer srv.Close()

	var sent atomic.Int64
	body := &countingReader{r: strings.NewReader(strings.Repeat("x", 1<<16)), n: &sent}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/settings", io.NopCloser(body))
	require.NoError(t, err)
	req.ContentLength = 1 << 16
	req.Header.Set("Expect", "100-continue")
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Zero(t, inner.calls.Load(), "the handler must not run")
	require.Zero(t, sent.Load(), "the client was never told to send the body")
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, 1)
	require.Equal(t, http.MethodPost, denied[0].Attrs[sa.AttrMethod])
	require.Equal(t, string(sa.ScopeWrite), denied[0].Attrs[sa.AttrScope])
	require.Empty(t, e.events(sa.EventSupportRequest))
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestReview129NestedDispatchToOtherTenantIsChecked: a handler admitted for
// acme dispatches a request of another session (the globex generic user)
// through the same middleware, writing to its own writer. The inner
// request is not covered by the outer admission: it is checked for globex
// (no grant there), refused, audited in globex's trail, and its handler
// never runs.
func TestReview129NestedDispatchToOtherTenantIsChecked(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	inner := &mwOK{}
	var mw http.Handler
	mux := http.NewServeMux()
	mux.Handle("/inner", inner)
	mux.HandleFunc("/batch", func(w http.ResponseWriter, r *http.Request) {
		sub := r.Clone(r.Context())
		sub.URL.Path = "/inner"
		sub.Header = http.Header{}
		sub.AddCookie(&http.Cookie{Name: "sid", Value: "globex"})
		mw.ServeHTTP(w, sub)
	})
	mw = e.wrap(mux)
	rec := mwDo(mw, mwReq(http.MethodGet, "/batch", "generic"))
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Zero(t, inner.calls.Load(), "globex has no grant: its handler must not run")
	denied := e.events(sa.EventAccessDenied)
	require.Len(t, denied, 1)
	require.Equal(t, "globex", denied[0].TenantID)
	require.Equal(t, "support+globex@vendor.example", denied[0].Actor.ID)
	// The outer response (the refusal it carried) is audited in acme's trail.
	reqs := e.events(sa.EventSupportRequest)
	require.Len(t, reqs, 1)
	require.Equal(t, "acme", reqs[0].TenantID)
	require.Equal(t, "403", reqs[0].Attrs[sa.AttrStatus])
}

// TestReview129SessionRevokeTenantOfOtherTenant: support impersonating in
// acme calls RevokeTenant on globex as itself. It gives back only the
// globex grants that cover it (not the one naming a colleague); the
// revocations are recorded in globex's trail under the support principal
// without acme's session or user ids; the same call naming the customer
// is refused and audited with the support principal as actor.
func TestReview129SessionRevokeTenantOfOtherTenant(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // acme: lets the session in
	open := e.grant(sa.GrantInput{TenantID: "globex"})
	mine := e.grant(sa.GrantInput{TenantID: "globex", Grantees: []string{mwGeneric}})
	colleague := e.grant(sa.GrantInput{TenantID: "globex", Grantees: []string{"carol@vendor.example"}})
	me := sa.Actor{Kind: sa.ActorSupport, ID: mwGeneric}

	var asMe, asCustomer error
	var got []sa.Grant
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, asCustomer = e.m.RevokeTenant(r.Context(), "globex", mwCustomer, "")
		got, asMe = e.m.RevokeTenant(r.Context(), "globex", me, "done here")
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := mwDo(h, mwReq(http.MethodGet, "/x", "generic"))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.ErrorIs(t, asCustomer, sa.ErrForbidden)
	require.NoError(t, asMe)
	ids := map[string]bool{}
	for _, g := range got {
		ids[g.ID.String()] = true
	}
	require.Equal(t, map[string]bool{open.ID.String(): true, mine.ID.String(): true}, ids)
	cur, err := e.m.Get(ctx, colleague.ID)
	require.NoError(t, err)
	require.Equal(t, sa.StatusActive, cur.Status(e.m.Now()), "a colleague's grant is not support's to give back")

	revoked := e.events(sa.EventGrantRevoked)
	require.Len(t, revoked, 2)
	for _, ev := range revoked {
		require.Equal(t, "globex", ev.TenantID)
		require.Equal(t, me, ev.Actor)
		require.NotContains(t, ev.Attrs, sa.AttrSessionID, "acme's session id does not belong in globex's trail")
		require.NotContains(t, ev.Attrs, sa.AttrSubjectUserID)
	}
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 1)
	require.Equal(t, me, refused[0].Actor, "the refusal names who acted")
	require.Equal(t, "globex", refused[0].TenantID)
	for _, tenant := range []string{"acme", "globex"} {
		rep, err := e.m.VerifyAudit(ctx, tenant)
		require.NoError(t, err)
		require.True(t, rep.OK())
	}
}

// TestReview129AddGranteeRacesRevoke: a named support engineer delegates
// to a colleague while the customer revokes the grant. Exactly one order
// wins: either the delegation is recorded before the revocation, or it is
// refused (ErrInvalidInput) and recorded nowhere. Either way the
// colleague has no access afterwards and the trail verifies.
func TestReview129AddGranteeRacesRevoke(t *testing.T) {
	run := func(t *testing.T, m *sa.Manager, log sa.AuditLog) {
		const colleague = "carol@vendor.example"
		for i := 0; i < 20; i++ {
			g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Grantees: []string{engineer.ID}, Duration: sa.Day})
			require.NoError(t, err)
			var wg sync.WaitGroup
			var addErr, revErr error
			start := make(chan struct{})
			wg.Add(2)
			go func() {
				defer wg.Done()
				<-start
				_, addErr = m.AddGrantee(ctx, g.ID, colleague, engineer)
			}()
			go func() {
				defer wg.Done()
				<-start
				_, revErr = m.Revoke(ctx, g.ID, customer, "race")
			}()
			close(start)
			wg.Wait()
			require.NoError(t, revErr)
			evs, err := log.Events(ctx, sa.AuditFilter{TenantID: "acme", GrantID: g.ID, Order: sa.AuditByChain})
			require.NoError(t, err)
			var types []sa.EventType
			for _, ev := range evs {
				types = append(types, ev.Type)
			}
			cur, err := m.Get(ctx, g.ID)
			require.NoError(t, err)
			if addErr == nil {
				require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantDelegated, sa.EventGrantRevoked}, types)
				require.Contains(t, cur.Grantees, colleague)
			} else {
				require.ErrorIs(t, addErr, sa.ErrInvalidInput)
				require.Equal(t, []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked}, types)
				require.NotContains(t, cur.Grantees, colleague, "a refused delegation changes nothing")
			}
			_, err = m.Check(ctx, "acme", colleague, sa.ScopeRead)
			require.ErrorIs(t, err, sa.ErrNoActiveGrant)
		}
		rep, err := m.VerifyAudit(ctx, "acme")
		require.NoError(t, err)
		require.True(t, rep.OK())
	}
	t.Run("memstore", func(t *testing.T) {
		e := newEnv(t)
		run(t, e.m, e.store)
	})
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "race.db")
		st := sqltest.NewStoreOn(t, sqltest.OpenSQLite(t, path), sqlstore.SQLite, sqlstore.WithTablePrefix(sqltest.NewPrefix()))
		m, err := sa.NewManager(st)
		require.NoError(t, err)
		run(t, m, st)
	})
}

// TestReview129AuthorizerTypedNilRefuses: a host Authorizer that returns a
// typed nil pointer as its error (a classic Go slip: "var err *denyErr;
// return err") has refused, not allowed: the grant is not created, the
// error wraps ErrForbidden only, and the refusal is audited.
func TestReview129AuthorizerTypedNilRefuses(t *testing.T) {
	e := newEnv(t, sa.WithAuthorizer(func(context.Context, sa.Action, sa.Actor, string) error {
		var err *review129DenyErr
		return err
	}))
	before := e.snapshot()
	_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: sa.Day})
	require.ErrorIs(t, err, sa.ErrForbidden)
	require.False(t, errors.Is(err, sa.ErrNotFound))
	after := e.snapshot()
	require.Equal(t, before.grants, after.grants, "no grant created")
	refused := e.events(sa.EventActionRefused)
	require.Len(t, refused, 1)
	require.Equal(t, customer.ID, refused[0].Actor.ID)
	require.Equal(t, string(sa.ActionGrant), refused[0].Attrs[sa.AttrAction])
}

type review129DenyErr struct{ who string }

func (e *review129DenyErr) Error() string { return "denied: " + e.who } // panics on a nil receiver
func (e *review129DenyErr) Unwrap() error {
	if e.who == "" { // panics on a nil receiver
		return sa.ErrNotFound
	}
	return nil
}
