package supportaccess_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// r86Get GETs url with the generic support session's cookie.
func r86Get(t *testing.T, c *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	return c.Do(req)
}

// A: a response under way, the session ends, Hijack is refused, then a
// write is refused: the response must be aborted like any other refused
// write, yet the Hijack's refusal set blocked without cut, so every later
// refused write returns early in ready() and the response ends cleanly.
func TestReview86HijackRefusedThenWriteNotAborted(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("part;"))
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop")
		require.NoError(t, err)
		<-r.Context().Done()
		_, _, herr := http.NewResponseController(w).Hijack()
		require.ErrorIs(t, herr, sa.ErrSessionEnded)
		_, err = w.Write([]byte("more"))
		require.ErrorIs(t, err, sa.ErrSessionEnded, "the write is refused because the session ended")
	}))
	rec, aborted := mwServe(h, mwReq(http.MethodGet, "/export", "generic"))
	require.Equal(t, "part;", rec.Body.String())
	require.True(t, aborted, "a response under way refused a write because its session ended is aborted")
}

// B: a page renders a fragment by dispatching an inner request through
// the app (middleware included) into a recorder: the inner request is one
// of its own. The session ends while the fragment streams into the
// recorder; its refused write makes the inner middleware panic with
// http.ErrAbortHandler, which escapes into the page handler and the outer
// middleware: the outer response, not started when the session ended,
// is not replaced by the 403 DeniedSessionEnded denial but aborted, and
// its support.request event says 500 "handler panicked".
func TestReview86InnerRecorderAbortEscapesToOuter(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	mux := http.NewServeMux()
	var app http.Handler
	mux.HandleFunc("/fragment", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("frag;"))
		_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop")
		require.NoError(t, err)
		<-r.Context().Done()
		_, _ = w.Write([]byte("more")) // refused
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		sub := r.Clone(r.Context())
		sub.URL.Path = "/fragment"
		frag := httptest.NewRecorder()
		app.ServeHTTP(frag, sub)
		_, _ = w.Write([]byte("<page>" + frag.Body.String() + "</page>"))
	})
	app = e.wrap(mux)
	rec, aborted := mwServe(app, mwReq(http.MethodGet, "/page", "generic"))
	evs := e.events(sa.EventSupportRequest)
	for _, ev := range evs {
		t.Logf("event %s status=%s reason=%q", ev.Attrs[sa.AttrPath], ev.Attrs[sa.AttrStatus], ev.Reason)
	}
	require.False(t, aborted, "the page's response had not started: it gets the session-ended denial, not an abort")
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Len(t, evs, 2)
	for _, ev := range evs {
		if ev.Attrs[sa.AttrPath] == "/page" {
			require.Equal(t, "403", ev.Attrs[sa.AttrStatus], "the page's record says what support got")
			require.NotContains(t, ev.Reason, "panicked")
		}
	}
}

// C: the idiomatic stream that stops when its request context ends (it
// writes nothing after the end) ends cleanly: the client sees a complete,
// short response. SECURITY.md promises "A response under way when its
// request ends ... is aborted ... so the client sees it cut, not complete".
func TestReview86ContextAwareStreamEndsClean(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := 0; ; i++ {
			if r.Context().Err() != nil {
				return // the request ended: stop streaming
			}
			_, _ = w.Write([]byte("row\n"))
			_ = rc.Flush()
			if i == 1 {
				_, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "stop")
				require.NoError(t, err)
				<-r.Context().Done()
			}
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := r86Get(t, srv.Client(), srv.URL+"/export")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, "row\nrow\n", string(b))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the export cut by the revocation must not look complete")
}
