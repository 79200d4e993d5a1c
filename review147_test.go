package supportaccess_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Review 147: the middleware's response writer and request plumbing —
// paths that might get bytes to support after the end of its access, or
// without the support.request event.

// r147Secret is what a handler writes that support must not get once its
// access ended.
const r147Secret = "r147-customer-secret"

// r147HijackHook is a host's wrapper outside the middleware (an access log
// that supports WebSockets): Hijack passes through, and onHijack runs while
// net/http hands the connection over, before the middleware's Hijack
// returns.
type r147HijackHook struct {
	http.ResponseWriter
	onHijack func()
}

func (w *r147HijackHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *r147HijackHook) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.onHijack()
	}
	return c, brw, err
}

// TestReview147HijackAfterEndDuringHandoverIsRefused attacks the
// Middleware's "After the end, writes to the response fail with that error
// … and a response not yet started is replaced by a 403 DeniedSessionEnded
// denial" and AttrStatus "403 when the session ended before the header
// went out": a handler that hijacks an uncommitted response itself (as
// gorilla/websocket's Upgrader does, writing the 101 on the raw
// connection) while the grant is revoked during net/http's hand-over. The
// response has not started when access ends, so the handler must not get
// the connection, and the trail must not record a successful upgrade.
func TestReview147HijackAfterEndDuringHandoverIsRefused(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	var reqCtx context.Context
	hijackErr := make(chan error, 1)
	inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqCtx = r.Context()
		c, brw, err := http.NewResponseController(w).Hijack()
		hijackErr <- err
		if err != nil {
			return
		}
		defer c.Close()
		// What a WebSocket library does next: its own 101, then the
		// application's first frame (a console's screen).
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + r147Secret)
		_ = brw.Flush()
	}))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(&r147HijackHook{ResponseWriter: w, onHijack: func() {
			// The customer revokes while net/http hands the connection
			// over; the watcher ends the request.
			if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
				t.Errorf("revoke: %v", err)
				return
			}
			<-reqCtx.Done()
		}}, r)
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: acme.example\r\nCookie: sid=generic\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	require.NoError(t, err)
	var herr error
	select {
	case herr = <-hijackErr:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not hijack")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)

	require.NotContains(t, string(got), r147Secret, "support got the handler's bytes on a connection hijacked after its access ended")
	require.ErrorIs(t, herr, sa.ErrSessionEnded, "Hijack must fail once access ended during the hand-over")
	for _, ev := range e.events(sa.EventSupportRequest) {
		require.NotEqual(t, "101", ev.Attrs[sa.AttrStatus], "the trail records an upgrade served after access ended: %+v", ev.Attrs)
	}
}

// r147Protos serves h over HTTP/1.1 and over HTTP/2 (TLS), as a real
// net/http server does: the paths that bypass a wrapper (sendfile, 1xx,
// deadlines, stream resets) exist only there.
var r147Protos = []struct {
	name  string
	major int
	start func(http.Handler) *httptest.Server
}{
	{"http1", 1, httptest.NewServer},
	{"http2", 2, func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		return srv
	}},
}

// r147Get sends a request of the generic support session to srv and
// returns the response (redirects not followed) and its body as far as
// it came, with the error that ended the body (nil: a complete response).
func r147Get(t *testing.T, srv *httptest.Server, ctx context.Context, method, path string, header ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := *srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, rerr := io.ReadAll(resp.Body)
	return resp, body, rerr
}

// r147Fix is a directory holding export.csv, which starts with the secret,
// and an empty directory sub; f is export.csv, opened.
type r147Fix struct {
	dir string
	f   *os.File
}

// r147Files makes the fixture, export.csv size bytes long.
func r147Files(t *testing.T, size int) r147Fix {
	t.Helper()
	dir := t.TempDir()
	content := []byte(r147Secret + strings.Repeat("x", max(size-len(r147Secret), 0)))
	p := filepath.Join(dir, "export.csv")
	require.NoError(t, os.WriteFile(p, content, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
	f, err := os.Open(p)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return r147Fix{dir: dir, f: f}
}

// TestReview147WritePathsAfterEndAreDenied attacks "After the end, writes
// to the response fail … and a response not yet started is replaced by a
// 403 DeniedSessionEnded denial" through every way a handler commonly
// writes, some of which skip Write on net/http's own writer: io.Copy from
// an *os.File (net/http's ReadFrom, sendfile), http.ServeContent,
// http.FileServer, io.WriteString (WriteString), a bare
// ResponseController.Flush, a 1xx then a final status, Hijack. The
// handler ignores its context: it waits for the end of access, then
// writes.
func TestReview147WritePathsAfterEndAreDenied(t *testing.T) {
	writers := map[string]func(fx r147Fix, w http.ResponseWriter, r *http.Request){
		"io_copy_os_file": func(fx r147Fix, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(256<<10))
			_, _ = io.Copy(w, fx.f)
		},
		"serve_content": func(fx r147Fix, w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "export.csv", time.Unix(1_700_000_000, 0), fx.f)
		},
		"file_server": func(fx r147Fix, w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/export.csv"
			http.FileServer(http.Dir(fx.dir)).ServeHTTP(w, r2)
		},
		"write_string": func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, r147Secret)
		},
		"controller_flush": func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Secret", r147Secret)
			_ = http.NewResponseController(w).Flush()
		},
		"early_hints_then_200": func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Link", "</"+r147Secret+".css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, r147Secret)
		},
		"hijack": func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + r147Secret)
			_ = brw.Flush()
		},
	}
	for _, p := range r147Protos {
		for name, write := range writers {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				e := newMWEnv(t)
				g := e.grant(sa.GrantInput{})
				fx := r147Files(t, 256<<10)
				admitted := make(chan struct{})
				writeErr := make(chan error, 1)
				h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					close(admitted)
					<-r.Context().Done() // ignored: the handler writes all the same
					write(fx, w, r)
					_, err := w.Write([]byte(r147Secret))
					writeErr <- err
				}))
				srv := p.start(h)
				defer srv.Close()
				go func() {
					<-admitted
					if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
						t.Errorf("revoke: %v", err)
					}
				}()
				var infos []int
				var mu sync.Mutex
				trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
					mu.Lock()
					defer mu.Unlock()
					infos = append(infos, code)
					return nil
				}}
				resp, body, _ := r147Get(t, srv, httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, "/export.csv")
				require.Equal(t, p.major, resp.ProtoMajor)
				require.Equal(t, http.StatusForbidden, resp.StatusCode, "body %q", body)
				require.NotContains(t, string(body), r147Secret)
				for k, vs := range resp.Header {
					require.NotContains(t, strings.Join(vs, ","), r147Secret, "header %s", k)
				}
				mu.Lock()
				require.Empty(t, infos, "informational responses reached support")
				mu.Unlock()
				require.ErrorIs(t, <-writeErr, sa.ErrSessionEnded)
				evs := e.events(sa.EventSupportRequest)
				require.Len(t, evs, 1)
				require.Equal(t, "403", evs[0].Attrs[sa.AttrStatus])
			})
		}
	}
}

// r147StopReader yields head, then (once) calls mid and yields tail: a
// source that is slow in the middle, where the test ends access.
type r147StopReader struct {
	head, tail []byte
	mid        func()
}

func (s *r147StopReader) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	if s.mid != nil {
		s.mid()
		s.mid = nil
	}
	if len(s.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.tail)
	s.tail = s.tail[n:]
	return n, nil
}

// TestReview147StreamCutAcrossEnd attacks "A response already under way
// when support access ends is aborted … so that the client sees it cut,
// not complete and short" and "After the end, writes to the response
// fail": a download copied with io.Copy (with and without Content-Length,
// flushed or not) whose source stalls while the grant is revoked, and a
// handler that ignores its context. Support must get none of the bytes
// after the end, and a body that ends in an error.
func TestReview147StreamCutAcrossEnd(t *testing.T) {
	head := bytes.Repeat([]byte("a"), 96<<10)
	for _, p := range r147Protos {
		for _, withLength := range []bool{false, true} {
			t.Run(p.name+"/content_length="+strconv.FormatBool(withLength), func(t *testing.T) {
				e := newMWEnv(t)
				g := e.grant(sa.GrantInput{})
				copyErr := make(chan error, 1)
				h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if withLength {
						w.Header().Set("Content-Length", strconv.Itoa(len(head)+len(r147Secret)))
					}
					src := &r147StopReader{head: head, tail: []byte(r147Secret), mid: func() {
						_ = http.NewResponseController(w).Flush()
						if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
							t.Errorf("revoke: %v", err)
						}
						<-r.Context().Done()
					}}
					_, err := io.Copy(w, src)
					copyErr <- err
				}))
				srv := p.start(h)
				defer srv.Close()
				resp, body, rerr := r147Get(t, srv, t.Context(), http.MethodGet, "/export.csv")
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.NotContains(t, string(body), r147Secret)
				require.Error(t, rerr, "the cut response looked complete (%d bytes)", len(body))
				require.ErrorIs(t, <-copyErr, sa.ErrSessionEnded)
				evs := e.events(sa.EventSupportRequest)
				require.Len(t, evs, 1)
				require.Equal(t, "200", evs[0].Attrs[sa.AttrStatus])
			})
		}
	}
}

// TestReview147AuditedStatusAndDurationAreTheWire attacks AttrStatus ("the
// status the response's header went out with, recorded then, before the
// body") and AttrDurationMS ("from its arrival at the middleware … to its
// response's header") over real HTTP/1 and HTTP/2 connections, through
// net/http's helpers that pick the status themselves (ServeContent's 304
// and 206, FileServer's redirect), a HEAD, a superfluous WriteHeader, an
// informational status first, a Flush first. The Manager's clock moves
// 1.5 s before the handler answers.
func TestReview147AuditedStatusAndDurationAreTheWire(t *testing.T) {
	modTime := time.Unix(1_700_000_000, 0).UTC()
	cases := []struct {
		name, method string
		header       []string
		handle       func(fx r147Fix, w http.ResponseWriter, r *http.Request)
	}{
		{"serve_content_304", http.MethodGet, []string{"If-Modified-Since", modTime.Format(http.TimeFormat)}, func(fx r147Fix, w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "export.csv", modTime, fx.f)
		}},
		{"serve_content_206", http.MethodGet, []string{"Range", "bytes=0-9"}, func(fx r147Fix, w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "export.csv", modTime, fx.f)
		}},
		{"file_server_redirect", http.MethodGet, nil, func(fx r147Fix, w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/sub"
			http.FileServer(http.Dir(fx.dir)).ServeHTTP(w, r2)
		}},
		{"head", http.MethodHead, nil, func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "body a HEAD does not send")
		}},
		{"double_write_header", http.MethodGet, nil, func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusInternalServerError)
		}},
		{"hints_then_204", http.MethodGet, nil, func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusNoContent)
		}},
		{"flush_then_404", http.MethodGet, nil, func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			_ = http.NewResponseController(w).Flush()
			w.WriteHeader(http.StatusNotFound)
		}},
		{"http_error", http.MethodGet, nil, func(_ r147Fix, w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "teapot", http.StatusTeapot)
		}},
		{"returns_silently", http.MethodGet, nil, func(r147Fix, http.ResponseWriter, *http.Request) {}},
	}
	for _, p := range r147Protos {
		for _, c := range cases {
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				e := newMWEnv(t)
				e.grant(sa.GrantInput{})
				fx := r147Files(t, 1024)
				h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					e.clock.Advance(1500 * time.Millisecond)
					c.handle(fx, w, r)
				}))
				srv := p.start(h)
				defer srv.Close()
				resp, _, err := r147Get(t, srv, t.Context(), c.method, "/export.csv", c.header...)
				require.NoError(t, err)
				evs := e.events(sa.EventSupportRequest)
				require.Len(t, evs, 1)
				require.Equal(t, strconv.Itoa(resp.StatusCode), evs[0].Attrs[sa.AttrStatus], "the trail's status is not the one support got")
				ms, err := strconv.Atoi(evs[0].Attrs[sa.AttrDurationMS])
				require.NoError(t, err)
				require.GreaterOrEqual(t, ms, 1500, "duration_ms stops before the response's header")
				require.Less(t, ms, 10_000)
			})
		}
	}
}

// TestReview147InformationalNeverOnTheWire attacks "Informational
// responses (1xx other than 101 …) of impersonated requests are not
// sent": over real HTTP/1 and HTTP/2 connections, with access intact, no
// 1xx (100, 102, 103, and 101 over HTTP/2, which net/http sends as
// informational) reaches the client, and the final status is the one
// recorded.
func TestReview147InformationalNeverOnTheWire(t *testing.T) {
	for _, p := range r147Protos {
		codes := []int{http.StatusContinue, http.StatusProcessing, http.StatusEarlyHints}
		if p.major == 2 {
			codes = append(codes, http.StatusSwitchingProtocols)
		}
		for _, code := range codes {
			t.Run(p.name+"/"+strconv.Itoa(code), func(t *testing.T) {
				e := newMWEnv(t)
				e.grant(sa.GrantInput{})
				h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Link", "</"+r147Secret+".css>; rel=preload")
					w.WriteHeader(code)
					w.Header().Del("Link")
					w.WriteHeader(http.StatusAccepted)
				}))
				srv := p.start(h)
				defer srv.Close()
				var mu sync.Mutex
				var infos []int
				trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
					mu.Lock()
					defer mu.Unlock()
					infos = append(infos, code)
					return nil
				}}
				resp, _, err := r147Get(t, srv, httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, "/page")
				require.NoError(t, err)
				require.Equal(t, p.major, resp.ProtoMajor)
				require.Equal(t, http.StatusAccepted, resp.StatusCode)
				mu.Lock()
				require.Empty(t, infos, "an informational response went out with the handler's header fields")
				mu.Unlock()
				evs := e.events(sa.EventSupportRequest)
				require.Len(t, evs, 1)
				require.Equal(t, "202", evs[0].Attrs[sa.AttrStatus])
			})
		}
	}
}

// TestReview147HeaderHeldDuringAuditNotSentAfterEnd attacks "recorded when
// the response is committed …, before anything reaches the client" and
// "After the end, writes to the response fail": the grant is revoked
// while the support.request event of a WriteHeader is being recorded (a
// slow auditor), after the middleware looked at the end and before the
// header goes to net/http. The handler then writes its body and returns.
// Support must get neither the body nor the header fields the handler
// set (they may carry what it was not to see), only a cut response.
func TestReview147HeaderHeldDuringAuditNotSentAfterEnd(t *testing.T) {
	for _, p := range r147Protos {
		t.Run(p.name, func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{})
			gate := e.store.gate(sa.EventSupportRequest, false)
			reqs := make(chan *http.Request, 1)
			writeErr := make(chan error, 1)
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqs <- r
				w.Header().Set("X-Export-Token", r147Secret)
				w.WriteHeader(http.StatusOK) // held in the audit
				_, err := io.WriteString(w, r147Secret)
				writeErr <- err
			}))
			srv := p.start(h)
			defer srv.Close()
			go func() {
				r := <-reqs
				<-gate.entered
				if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
					t.Errorf("revoke: %v", err)
				}
				<-r.Context().Done()
				close(gate.release)
			}()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/export", nil)
			require.NoError(t, err)
			req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
			resp, err := srv.Client().Do(req)
			if err == nil {
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NotContains(t, string(body), r147Secret)
				require.Empty(t, resp.Header.Get("X-Export-Token"), "a header field set before the end went out after it")
				require.Error(t, rerr, "a response cut by the end looked complete")
			}
			require.ErrorIs(t, <-writeErr, sa.ErrSessionEnded)
		})
	}
}

// TestReview147ControllerCannotReviveWritesAfterEnd attacks "After the
// end, writes to the response fail with that error, so a stream ends even
// if the handler ignores its context", and the end's past write deadline
// on a stream: a handler that, after the end, clears the write deadline
// and enables full duplex through http.ResponseController (which reach
// net/http's writer through Unwrap), then writes and flushes. Nothing of
// it may reach support, and the stream is cut.
func TestReview147ControllerCannotReviveWritesAfterEnd(t *testing.T) {
	for _, p := range r147Protos {
		t.Run(p.name, func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{})
			started := make(chan struct{})
			errs := make(chan error, 2)
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				_, _ = io.WriteString(w, "data: first\n\n")
				_ = rc.Flush()
				close(started)
				<-r.Context().Done()
				_ = rc.SetWriteDeadline(time.Time{})
				_ = rc.SetWriteDeadline(time.Now().Add(time.Hour))
				_ = rc.EnableFullDuplex()
				_, err := io.WriteString(w, "data: "+r147Secret+"\n\n")
				errs <- err
				errs <- rc.Flush()
			}))
			srv := p.start(h)
			defer srv.Close()
			go func() {
				<-started
				if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
					t.Errorf("revoke: %v", err)
				}
			}()
			resp, body, rerr := r147Get(t, srv, t.Context(), http.MethodGet, "/events")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Contains(t, string(body), "data: first")
			require.NotContains(t, string(body), r147Secret)
			require.Error(t, rerr, "the cut stream looked complete")
			require.ErrorIs(t, <-errs, sa.ErrSessionEnded)
			require.ErrorIs(t, <-errs, sa.ErrSessionEnded)
		})
	}
}

// TestReview147SlowUploadAfterEndCannotCommitChange attacks the documented
// defence for side effects ("a handler that changes configuration calls
// RecordChange before it commits the change, which fails closed"): the
// middleware does not cut the request body, so a handler that ignores its
// context goes on reading support's upload after the grant is revoked. The
// change it then wants to make must be refused, nothing recorded as made,
// and support gets the 403 of a response not yet started.
func TestReview147SlowUploadAfterEndCannotCommitChange(t *testing.T) {
	for _, p := range r147Protos {
		t.Run(p.name, func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
			firstPart := make(chan struct{})
			changeErr := make(chan error, 1)
			var uploaded int
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				buf := make([]byte, 5)
				n, _ := io.ReadFull(r.Body, buf)
				uploaded += n
				close(firstPart)
				<-r.Context().Done() // ignored
				rest, _ := io.ReadAll(r.Body)
				uploaded += len(rest)
				changeErr <- sa.RecordChange(r.Context(), "users.import", nil, map[string]int{"rows": uploaded})
				w.WriteHeader(http.StatusCreated)
			}))
			srv := p.start(h)
			defer srv.Close()
			pr, pw := io.Pipe()
			go func() {
				_, _ = io.WriteString(pw, "rows:")
				<-firstPart
				if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
					t.Errorf("revoke: %v", err)
				}
				_, _ = io.WriteString(pw, strings.Repeat("row\n", 1000))
				_ = pw.Close()
			}()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+"/users/import", pr)
			require.NoError(t, err)
			req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.ErrorIs(t, <-changeErr, sa.ErrSessionEnded)
			require.Equal(t, http.StatusForbidden, resp.StatusCode)
			require.Empty(t, e.events(sa.EventSupportChange))
		})
	}
}

// TestReview147LeftoverGoroutineWritesFailAfterEnd attacks "After the end,
// writes to the response fail with that error": a handler that hands the
// writer to a goroutine (a fan-out renderer) and returns once its context
// ends; the goroutine writes afterwards. (The end comes before the
// handler returns: writes after a handler returned are net/http's misuse,
// and the middleware stops watching the request then.)
func TestReview147LeftoverGoroutineWritesFailAfterEnd(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	started := make(chan struct{})
	returned := make(chan struct{})
	lateErr := make(chan error, 1)
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "page start\n")
		go func() {
			<-returned
			_, err := io.WriteString(w, r147Secret)
			lateErr <- err
		}()
		close(started)
		<-r.Context().Done()
	}))
	go func() {
		<-started
		if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
			t.Errorf("revoke: %v", err)
		}
	}()
	rec, aborted := mwServe(h, mwReq(http.MethodGet, "/page", "generic"))
	close(returned)
	require.ErrorIs(t, <-lateErr, sa.ErrSessionEnded)
	require.True(t, aborted, "the cut response was not aborted")
	require.NotContains(t, rec.Body.String(), r147Secret)
}

// TestReview147AbortPanicAfterEndAudited attacks "A handler that panics
// before committing is recorded with status 500" and "support is never
// sent a response that is not in the audit trail", for a handler that
// panics with http.ErrAbortHandler (as httputil.ReverseProxy does) after
// access ended, before committing: the panic passes through, support gets
// no response, and the request is in the trail all the same.
func TestReview147AbortPanicAfterEndAudited(t *testing.T) {
	for _, p := range r147Protos {
		t.Run(p.name, func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{})
			started := make(chan struct{})
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Secret", r147Secret)
				close(started)
				<-r.Context().Done()
				panic(http.ErrAbortHandler)
			}))
			srv := p.start(h)
			defer srv.Close()
			go func() {
				<-started
				if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
					t.Errorf("revoke: %v", err)
				}
			}()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/proxy", nil)
			require.NoError(t, err)
			req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("support got a response (%d, %v) from a handler that aborted", resp.StatusCode, resp.Header)
			}
			evs := e.events(sa.EventSupportRequest)
			require.Len(t, evs, 1)
			require.Equal(t, "500", evs[0].Attrs[sa.AttrStatus])
		})
	}
}

// TestReview147BodyReadsFailAfterEnd attacks "as soon as support access
// ends … writes to the response fail with that error, so a stream ends
// even if the handler ignores its context" for the other half of a
// bidirectional stream (a web console over HTTP/2, or HTTP/1 with full
// duplex): support's input must not reach the handler after the end
// either. The middleware cut only the response: a handler that ignored
// its context went on reading, and acting on, what support typed after
// the customer revoked — its output failed, its effects did not (found by
// review 147; the body now fails with ErrSessionEnded after the end).
func TestReview147BodyReadsFailAfterEnd(t *testing.T) {
	for _, p := range r147Protos {
		t.Run(p.name, func(t *testing.T) {
			e := newMWEnv(t)
			g := e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
			ready := make(chan struct{})
			type read struct {
				data string
				err  error
			}
			late := make(chan read, 1)
			h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = http.NewResponseController(w).EnableFullDuplex()
				buf := make([]byte, 64)
				n, _ := io.ReadAtLeast(r.Body, buf, len("ls\n"))
				_, _ = w.Write(buf[:n]) // the console echoes
				_ = http.NewResponseController(w).Flush()
				close(ready)
				<-r.Context().Done() // ignored
				n, err := io.ReadAtLeast(r.Body, buf, len("rm -rf /data\n"))
				late <- read{string(buf[:n]), err}
			}))
			srv := p.start(h)
			defer srv.Close()
			pr, pw := io.Pipe()
			defer pw.Close()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/console", pr)
			require.NoError(t, err)
			req.AddCookie(&http.Cookie{Name: "sid", Value: "generic"})
			go func() { _, _ = io.WriteString(pw, "ls\n") }()
			respc := make(chan *http.Response, 1)
			go func() {
				resp, err := srv.Client().Do(req)
				if err != nil {
					respc <- nil
					return
				}
				respc <- resp
			}()
			<-ready
			_, err = e.m.Revoke(context.Background(), g.ID, mwCustomer, "done")
			require.NoError(t, err)
			go func() { _, _ = io.WriteString(pw, "rm -rf /data\n") }() // typed after the end
			var got read
			select {
			case got = <-late:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler's read did not return")
			}
			if resp := <-respc; resp != nil {
				resp.Body.Close()
			}
			require.NotContains(t, got.data, "rm -rf", "support's input reached the handler after its access ended")
			require.ErrorIs(t, got.err, sa.ErrSessionEnded)
		})
	}
}
