package supportaccess_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// r108DeadlineConn reports the first past write deadline set on a
// connection.
type r108DeadlineConn struct {
	net.Conn
	once *sync.Once
	past chan struct{}
}

func (c *r108DeadlineConn) SetWriteDeadline(t time.Time) error {
	err := c.Conn.SetWriteDeadline(t)
	if !t.IsZero() && t.Before(time.Now()) {
		c.once.Do(func() { close(c.past) })
	}
	return err
}

type r108Listener struct {
	net.Listener
	once sync.Once
	past chan struct{}
}

func (l *r108Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &r108DeadlineConn{Conn: c, once: &l.once, past: l.past}, nil
}

// r108HijackHook is a host's wrapper installed outside the middleware (an
// access log that supports WebSockets): Hijack passes through, Unwrap
// exposes what it wraps. onHijack runs once net/http handed the connection
// over (where a log line would be written, or Server.ConnState runs).
type r108HijackHook struct {
	http.ResponseWriter
	onHijack func()
}

func (w *r108HijackHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *r108HijackHook) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.onHijack()
	}
	return c, brw, err
}

// TestReview108EndDuringHijackSetsDeadlineOnOwnedConnection — 343eb7a
// made Hijack clear 'streaming' so that the end of support access never
// sets its past write deadline on a connection the handler owns (Hijack's
// doc: "the handler owns the connection afterwards and must end it when
// the request context is cancelled"; a WebSocket says goodbye then). But
// supportWriter.Hijack reads 'ended' first, then hijacks through net/http
// (which waits for the connection's background read to stop), and clears
// 'streaming' only afterwards. An end that falls in between — the watcher
// ending the request while the upgrade is under way, after WriteHeader(101)
// committed the response as coder/websocket does — sees 'streaming' still
// set and puts the past deadline on the connection the handler then gets:
// its goodbye fails with a timeout (an abnormal closure for the client).
// Here a host wrapper outside the middleware revokes the grant as the
// hijack begins, which stands for the watcher ending the request at that
// moment. Clearing 'streaming' before hijacking and reading 'ended' after
// it (the order reqState.end relies on) would close the window.
func TestReview108EndDuringHijackSetsDeadlineOnOwnedConnection(t *testing.T) {
	e := newMWEnv(t)
	g := e.grant(sa.GrantInput{})
	ln := (*r108Listener)(nil)
	var reqCtx context.Context
	byeErr := make(chan error, 1)
	inner := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqCtx = r.Context()
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			byeErr <- nil // refused: the handler owns nothing, nothing to say
			return
		}
		defer c.Close()
		<-r.Context().Done() // support access ended: say goodbye and close
		_, err = io.WriteString(c, "bye: session ended\n")
		byeErr <- err
	}))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(&r108HijackHook{ResponseWriter: w, onHijack: func() {
			// The watcher ends the request now (a revocation).
			if _, err := e.m.Revoke(context.Background(), g.ID, mwCustomer, "done"); err != nil {
				t.Errorf("revoke: %v", err)
				return
			}
			<-reqCtx.Done()
			select { // the end's write deadline, if it sets one
			case <-ln.past:
			case <-time.After(500 * time.Millisecond):
			}
		}}, r)
	})
	srv := httptest.NewUnstartedServer(h)
	ln = &r108Listener{Listener: srv.Listener, past: make(chan struct{})}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app\r\nCookie: sid=generic\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	require.NoError(t, err)
	select {
	case err = <-byeErr:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not finish")
	}
	require.NoError(t, err, "the handler got the hijacked connection, but its goodbye failed: the end of support access set a past write deadline on the connection the handler owns")
}
