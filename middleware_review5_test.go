package supportaccess_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Tests of refusals that concern only a part of an admitted request
// (RequireScope in a sub-handler) and of the middleware applied twice to
// one request, or to a request a handler dispatches again.

// mwUnwrapWriter wraps a ResponseWriter the way logging middleware does:
// it counts writes and lets http.ResponseController reach the writer
// underneath.
type mwUnwrapWriter struct {
	http.ResponseWriter
	writes int
}

func (w *mwUnwrapWriter) Write(b []byte) (int, error) {
	w.writes++
	return w.ResponseWriter.Write(b)
}

func (w *mwUnwrapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// A page renders an optional panel (a RequireScope route) into a recorder
// and shows it only when allowed. A refusal of the panel is a refusal of
// the panel, not of the page: the page support does get is audited as a
// support.request, and it is not sent when that audit fails.
func TestMiddlewareScopeRefusalOfAPartAuditsTheResponse(t *testing.T) {
	const msgs sa.Scope = "messages:read"
	// page returns the page handler; before runs after the panel, before
	// the page is written (nil: nothing).
	page := func(before func(), write bool) (http.Handler, *mwOK, *httptest.ResponseRecorder) {
		next := &mwOK{}
		panel := sa.RequireScope(msgs)(next)
		sub := httptest.NewRecorder()
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panel.ServeHTTP(sub, r)
			if before != nil {
				before()
			}
			if !write {
				return
			}
			_, _ = w.Write([]byte("<settings>"))
			if sub.Code == http.StatusOK {
				_, _ = w.Write(sub.Body.Bytes())
			}
		}), next, sub
	}

	t.Run("panel_refused_page_audited", func(t *testing.T) {
		e := newMWEnv(t)
		g := e.grant(mwScopes(nil)) // read only
		h, next, sub := page(nil, true)
		rec := mwDo(e.wrap(h), mwReq(http.MethodGet, "/settings?x=1", "generic"))
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "<settings>", rec.Body.String())
		require.Equal(t, http.StatusForbidden, sub.Code, "the panel is refused")
		require.Zero(t, next.calls.Load())

		denied := e.events(sa.EventAccessDenied)
		require.Len(t, denied, 1)
		require.Equal(t, "scope not granted: messages:read", denied[0].Reason)
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, 1, "the page support got is audited")
		require.Equal(t, g.ID, evs[0].GrantID)
		require.Equal(t, "200", evs[0].Attrs[sa.AttrStatus])
		require.Equal(t, "/settings", evs[0].Attrs[sa.AttrPath])
		require.Equal(t, "read", evs[0].Attrs[sa.AttrScope])
		require.Empty(t, e.errs.all())
	})
	t.Run("panel_refused_implicit_200_audited", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(mwScopes(nil))
		h, _, _ := page(nil, false) // the handler returns without writing
		require.Equal(t, http.StatusOK, mwDo(e.wrap(h), mwReq(http.MethodGet, "/settings", "generic")).Code)
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, 1)
		require.Equal(t, "200", evs[0].Attrs[sa.AttrStatus])
	})
	t.Run("panel_refused_page_audit_fails_503", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(mwScopes(nil))
		// The panel's access.denied is recorded; then the auditor fails.
		h, _, _ := page(func() { e.store.failRecord.Store(true) }, true)
		rec := mwDo(e.wrap(h), mwReq(http.MethodGet, "/settings", "generic"))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, "a response that cannot be audited is not sent")
		require.NotContains(t, rec.Body.String(), "<settings>")
		require.NotEmpty(t, e.errs.all())
		require.Len(t, e.events(sa.EventAccessDenied), 1)
		require.Empty(t, e.events(sa.EventSupportRequest))
	})
	t.Run("panel_allowed", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(mwScopes([]sa.Scope{sa.ScopeRead, msgs}))
		h, next, _ := page(nil, true)
		rec := mwDo(e.wrap(h), mwReq(http.MethodGet, "/settings", "generic"))
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "<settings>ok", rec.Body.String())
		require.EqualValues(t, 1, next.calls.Load())
		require.Empty(t, e.events(sa.EventAccessDenied))
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, 1)
		require.Equal(t, "read,messages:read", evs[0].Attrs[sa.AttrScope])
	})
	// The refusal that is the response stays an access.denied only, also
	// when the handler wrote through a wrapper of the middleware's writer;
	// the refusal goes straight to the writer underneath, not through the
	// wrapper, which could flush what it buffered of the handler's output
	// with it (TestReview10RefusalFlushesHandlerBytesAfterEnd).
	t.Run("refusal_is_the_response", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(mwScopes(nil))
		next := &mwOK{}
		route := sa.RequireScope(msgs)(next)
		var lw *mwUnwrapWriter
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lw = &mwUnwrapWriter{ResponseWriter: w}
			route.ServeHTTP(lw, r)
		}))
		rec := mwDo(h, mwReq(http.MethodGet, "/messages", "generic"))
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Zero(t, lw.writes, "the refusal did not go through the wrapper")
		require.Zero(t, next.calls.Load())
		require.Len(t, e.events(sa.EventAccessDenied), 1)
		require.Empty(t, e.events(sa.EventSupportRequest), "a refusal is not a support request")
	})
	// A handler runs a refused part inline on its own writer, then writes
	// on: the refusal is the response, and nothing after it reaches
	// support (it would be unaudited).
	t.Run("writes_after_inline_refusal_fail", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(mwScopes(nil))
		panel := sa.RequireScope(msgs)(&mwOK{})
		var werr, ferr error
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panel.ServeHTTP(w, r)
			_, werr = w.Write([]byte("SECRET-PAGE-DATA"))
			ferr = http.NewResponseController(w).Flush()
		}))
		rec := mwDo(h, mwReq(http.MethodGet, "/settings", "generic"))
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.NotContains(t, rec.Body.String(), "SECRET-PAGE-DATA")
		require.ErrorIs(t, werr, sa.ErrForbidden)
		require.ErrorIs(t, ferr, sa.ErrForbidden)
		require.Len(t, e.events(sa.EventAccessDenied), 1)
		require.Empty(t, e.events(sa.EventSupportRequest))
	})
	// The grant ends between admission and a part that needs another
	// scope: the part is refused and the host is told the session has no
	// grant left, as when the middleware itself finds none.
	t.Run("grant_gone_ends_session", func(t *testing.T) {
		e := newMWEnv(t)
		g := e.grant(mwScopes(nil))
		panel := sa.RequireScope(msgs)(&mwOK{})
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.clock.Advance(time.Until(g.ExpiresAt) + time.Second)
			panel.ServeHTTP(w, r)
		}))
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/messages", "generic")).Code)
		ended := e.ended.all()
		require.Len(t, ended, 1)
		require.Contains(t, ended[0], ":"+sa.SessionEndNoGrant)
	})
	// The page first refuses a panel into a recorder, then serves a route
	// whose refusal is its response: only the refusals are audited.
	t.Run("refusal_after_refused_panel", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(mwScopes(nil))
		panel := sa.RequireScope(msgs)(&mwOK{})
		h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panel.ServeHTTP(httptest.NewRecorder(), r)
			panel.ServeHTTP(w, r)
		}))
		require.Equal(t, http.StatusForbidden, mwDo(h, mwReq(http.MethodGet, "/messages", "generic")).Code)
		require.Len(t, e.events(sa.EventAccessDenied), 2)
		require.Empty(t, e.events(sa.EventSupportRequest))
	})
}

// An app-wide middleware wraps a route protected by a stricter one (of the
// same Manager, for the same session): the inner middleware's own rules
// still apply, with its own denied handler.
func TestMiddlewareNestedAppliesInnerOptions(t *testing.T) {
	setup := func(t *testing.T, inner ...sa.MiddlewareOption) (*mwEnv, http.Handler, *mwOK, *mwOK) {
		e := newMWEnv(t)
		e.grant(sa.GrantInput{Grantees: []string{mwEve}})
		e.grant(sa.GrantInput{}) // open grant: the generic user
		admin, other := &mwOK{}, &mwOK{}
		mux := http.NewServeMux()
		mux.Handle("/admin", e.wrap(admin, inner...))
		mux.Handle("/", other)
		return e, e.wrap(mux), admin, other
	}
	mfa := sa.RequireMFA(sa.GenericSupportUser("support+{tenant}@vendor.example"))

	t.Run("mfa_missing_refused", func(t *testing.T) {
		e, app, admin, _ := setup(t, mfa)
		rec := mwDo(app, mwReq(http.MethodGet, "/admin", "eve", "Accept", "application/json"))
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.JSONEq(t, `{"error":"mfa_required","message":"Support access requires a two-factor login."}`, rec.Body.String())
		require.Zero(t, admin.calls.Load(), "the admin handler never runs")
		evs := e.events(sa.EventAccessDenied)
		require.Len(t, evs, 1)
		require.Equal(t, "mfa required", evs[0].Reason)
		require.Equal(t, mwEve, evs[0].Actor.ID)
		require.Equal(t, "/admin", evs[0].Attrs[sa.AttrPath])
		require.Empty(t, e.events(sa.EventSupportRequest), "the refusal is not a support request")
		require.Empty(t, e.ended.all())
	})
	t.Run("inner_denied_handler", func(t *testing.T) {
		var got sa.Denial
		_, app, admin, _ := setup(t, mfa, sa.WithDeniedHandler(func(w http.ResponseWriter, r *http.Request, d sa.Denial) {
			got = d
			http.Redirect(w, r, "/login/2fa", http.StatusSeeOther)
		}))
		rec := mwDo(app, mwReq(http.MethodGet, "/admin", "eve"))
		require.Equal(t, http.StatusSeeOther, rec.Code)
		require.Equal(t, "/login/2fa", rec.Header().Get("Location"))
		require.Equal(t, sa.DeniedMFARequired, got.Code)
		require.Zero(t, admin.calls.Load())
	})
	t.Run("allowed", func(t *testing.T) {
		e, app, admin, other := setup(t, mfa)
		// MFA given; the generic user is exempt; other routes need none.
		require.Equal(t, http.StatusOK, mwDo(app, mwReq(http.MethodGet, "/admin", "eve-mfa")).Code)
		require.Equal(t, http.StatusOK, mwDo(app, mwReq(http.MethodGet, "/admin", "generic")).Code)
		require.Equal(t, http.StatusOK, mwDo(app, mwReq(http.MethodGet, "/home", "eve")).Code)
		require.EqualValues(t, 2, admin.calls.Load())
		require.EqualValues(t, 1, other.calls.Load())
		require.EqualValues(t, 3, e.store.finds.Load(), "one check per request")
		require.Len(t, e.events(sa.EventSupportRequest), 3, "one event per request")
		require.Empty(t, e.events(sa.EventAccessDenied))
	})
}

// A handler dispatches a copy of its request with another method (and
// path) in the same context, through the same middleware: the copy needs
// the scope of its own method, and a response it writes elsewhere than to
// the audited writer is audited as a request of its own.
func TestMiddlewareNestedRedispatch(t *testing.T) {
	// app serves GET /settings by dispatching DELETE /items/7 to itself,
	// to the real writer (same) or into a recorder whose status it then
	// reports.
	setup := func(t *testing.T, same bool) (*mwEnv, http.Handler, *mwOK) {
		e := newMWEnv(t)
		del := &mwOK{}
		var app http.Handler
		mux := http.NewServeMux()
		mux.Handle("DELETE /items/{id}", del)
		mux.HandleFunc("GET /settings", func(w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			r2.Method = http.MethodDelete
			r2.URL.Path = "/items/7"
			if same {
				app.ServeHTTP(w, r2)
				return
			}
			sub := httptest.NewRecorder()
			app.ServeHTTP(sub, r2)
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(http.StatusText(sub.Code)))
		})
		app = e.wrap(mux)
		return e, app, del
	}

	t.Run("same_writer_write_scope_missing", func(t *testing.T) {
		e, app, del := setup(t, true)
		e.grant(mwScopes(nil)) // read only
		rec := mwDo(app, mwReq(http.MethodGet, "/settings", "generic"))
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Zero(t, del.calls.Load(), "the DELETE never runs")
		evs := e.events(sa.EventAccessDenied)
		require.Len(t, evs, 1)
		require.Equal(t, "scope not granted: write", evs[0].Reason)
		require.Equal(t, http.MethodDelete, evs[0].Attrs[sa.AttrMethod])
		require.Equal(t, "/items/7", evs[0].Attrs[sa.AttrPath])
		require.Empty(t, e.events(sa.EventSupportRequest), "the refusal is not a support request")
	})
	t.Run("same_writer_write_scope_on_another_grant", func(t *testing.T) {
		e, app, del := setup(t, true)
		read := e.grant(mwScopes(nil))
		write := e.grant(sa.GrantInput{Duration: sa.Day, Scopes: []sa.Scope{sa.ScopeWrite}})
		rec := mwDo(app, mwReq(http.MethodGet, "/settings", "generic"))
		require.Equal(t, http.StatusOK, rec.Code)
		require.EqualValues(t, 1, del.calls.Load())
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, 1, "one response, one event")
		require.Equal(t, read.ID, evs[0].GrantID, "admitted by the read grant (the longer one)")
		require.Equal(t, "read,write", evs[0].Attrs[sa.AttrScope])
		require.Equal(t, write.ID.String(), evs[0].Attrs[sa.AttrElevatedGrantIDs])
	})
	t.Run("other_writer_write_scope_missing", func(t *testing.T) {
		e, app, del := setup(t, false)
		e.grant(mwScopes(nil))
		rec := mwDo(app, mwReq(http.MethodGet, "/settings", "generic"))
		require.Equal(t, http.StatusAccepted, rec.Code)
		require.Equal(t, "Forbidden", rec.Body.String())
		require.Zero(t, del.calls.Load(), "the DELETE never runs")
		denied := e.events(sa.EventAccessDenied)
		require.Len(t, denied, 1)
		require.Equal(t, "scope not granted: write", denied[0].Reason)
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, 1, "the page is audited")
		require.Equal(t, http.MethodGet, evs[0].Attrs[sa.AttrMethod])
		require.Equal(t, "202", evs[0].Attrs[sa.AttrStatus])
	})
	t.Run("other_writer_allowed_audited_apart", func(t *testing.T) {
		e, app, del := setup(t, false)
		g := e.grant(mwScopes([]sa.Scope{sa.ScopeWrite}))
		rec := mwDo(app, mwReq(http.MethodGet, "/settings", "generic"))
		require.Equal(t, http.StatusAccepted, rec.Code)
		require.Equal(t, "OK", rec.Body.String())
		require.EqualValues(t, 1, del.calls.Load())
		require.Empty(t, e.events(sa.EventAccessDenied))
		evs := e.events(sa.EventSupportRequest)
		require.Len(t, evs, 2, "the DELETE's response and the page")
		byMethod := map[string]sa.Event{}
		for _, ev := range evs {
			require.Equal(t, g.ID, ev.GrantID)
			byMethod[ev.Attrs[sa.AttrMethod]] = ev
		}
		require.Equal(t, "/items/7", byMethod[http.MethodDelete].Attrs[sa.AttrPath])
		require.Equal(t, "200", byMethod[http.MethodDelete].Attrs[sa.AttrStatus])
		require.Equal(t, "write", byMethod[http.MethodDelete].Attrs[sa.AttrScope])
		require.Equal(t, "/settings", byMethod[http.MethodGet].Attrs[sa.AttrPath])
		require.Equal(t, "202", byMethod[http.MethodGet].Attrs[sa.AttrStatus])
	})
	t.Run("other_writer_audit_failure_refuses_the_part", func(t *testing.T) {
		e := newMWEnv(t)
		e.grant(mwScopes([]sa.Scope{sa.ScopeWrite}))
		inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.store.failRecord.Store(true)
			_, _ = w.Write([]byte("secret customer data"))
		}))
		var sub *httptest.ResponseRecorder
		app := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sub = httptest.NewRecorder()
			inner.ServeHTTP(sub, r)
			_, _ = w.Write([]byte("page"))
		}))
		rec := mwDo(app, mwReq(http.MethodGet, "/settings", "generic"))
		require.Equal(t, http.StatusServiceUnavailable, sub.Code, "the part that cannot be audited is refused")
		require.NotContains(t, sub.Body.String(), "secret customer data")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, "and so is the page: the auditor is down")
		require.NotEmpty(t, e.errs.all())
	})
}

// The usual nesting costs nothing: the inner middleware of a request
// whose scope the outer check established, writing to the audited writer,
// neither checks nor audits again.
func TestMiddlewareNestedFastPath(t *testing.T) {
	e := newMWEnv(t)
	e.grant(mwScopes([]sa.Scope{sa.ScopeWrite}))
	next := &mwOK{}
	var ctxOK bool
	inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ctxOK = sa.GrantFromContext(r.Context())
		next.ServeHTTP(w, r)
	}))
	// Through a wrapper that unwraps to the audited writer, and with a GET
	// dispatched inside a POST (write covers read).
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.Method = http.MethodGet
		inner.ServeHTTP(&mwUnwrapWriter{ResponseWriter: w}, r2)
	}))
	rec := mwDo(h, mwReq(http.MethodPost, "/settings", "generic"))
	require.Equal(t, http.StatusOK, rec.Code)
	require.True(t, ctxOK)
	require.EqualValues(t, 1, next.calls.Load())
	require.EqualValues(t, 1, e.store.finds.Load(), "one check")
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1, "one event")
	require.Equal(t, "write", evs[0].Attrs[sa.AttrScope])
	require.Equal(t, http.MethodPost, evs[0].Attrs[sa.AttrMethod])

	// A different writer is a response of its own, even with the scope
	// established: checked and audited apart.
	e2 := newMWEnv(t)
	e2.grant(mwScopes(nil))
	inner2 := e2.wrap(&mwOK{})
	h2 := e2.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner2.ServeHTTP(httptest.NewRecorder(), r)
	}))
	require.Equal(t, http.StatusOK, mwDo(h2, mwReq(http.MethodGet, "/", "generic")).Code)
	require.EqualValues(t, 2, e2.store.finds.Load())
	require.Len(t, e2.events(sa.EventSupportRequest), 2)
}

// mwScopes is a GrantInput for acme open to any principal with scopes (nil:
// read only).
func mwScopes(scopes []sa.Scope) sa.GrantInput { return sa.GrantInput{Scopes: scopes} }

// A store that hangs must not keep a running request alive past its
// grant's end or a revocation: the watcher's re-check gives up after the
// poll interval (250 ms at least) and ends the request (fail closed).
// Before, the one watcher goroutine waited in Check for as long as the
// store hung, and the request ran on.
func TestMiddlewareRecheckOfHungStoreEndsRequest(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		t.Run(fmt.Sprint("revoke=", revoke), func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{Duration: time.Hour})
			if !revoke {
				e.clock.setUntil(g.ExpiresAt, 300*time.Millisecond)
			}
			ended := make(chan error, 1)
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte("start"))
				e.store.hangFind.Store(true)
				if revoke {
					_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "")
					require.NoError(t, err)
				}
				select {
				case <-r.Context().Done():
					ended <- context.Cause(r.Context())
				case <-time.After(5 * time.Second): // far beyond the bound: the bug
					ended <- errors.New("the request never ended")
				}
			}), sa.WithPollInterval(50*time.Millisecond))
			mwDo(h, mwReq(http.MethodGet, "/stream", "generic"))
			require.ErrorIs(t, <-ended, sa.ErrSessionEnded)
			require.NotEmpty(t, e.errs.all(), "the hung re-check is reported")
		})
	}
}

// A store that is slow but answers does not end a long request whose
// grant holds: a re-check without an answer in time is not a denial by
// itself (only at the grant's end, after a revocation, or after 5 s
// without any answer).
func TestMiddlewareSlowRecheckKeepsRequest(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Duration: time.Hour})
	var werr error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("start "))
		e.store.slowFind.Store(int64(300 * time.Millisecond)) // the poll's Checks get 250 ms
		select {
		case <-r.Context().Done():
		case <-time.After(700 * time.Millisecond): // a few re-checks, none answered in time
		}
		_, werr = w.Write([]byte("end"))
	}), sa.WithPollInterval(50*time.Millisecond))
	rec := mwDo(h, mwReq(http.MethodGet, "/stream", "generic"))
	require.NoError(t, werr, "the request was not ended")
	require.Equal(t, "start end", rec.Body.String())
	require.NotEmpty(t, e.errs.all(), "the unanswered re-checks are reported")
	require.Empty(t, e.ended.all())
}
