package supportaccess_test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// rawCase is one request sent byte for byte to a real server running the
// middleware, and what it must lead to.
type rawCase struct {
	name    string
	raw     string // the request line and headers, without Host and the blank line
	body    string
	status  int
	reached bool         // the handler ran
	support bool         // ... for an impersonated request
	event   sa.EventType // the one audit event the request leaves, "" for none
	path    string       // the audited path, when event is set
}

// rawReq returns the request line and header lines of a raw request.
func rawReq(lines ...string) string { return strings.Join(lines, "\r\n") }

// sendRaw sends raw (adding Host, Content-Length for a body and the end of
// the header) on a new connection and reads the response.
func sendRaw(t *testing.T, addr, raw, body string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	var b strings.Builder
	b.WriteString(raw + "\r\nHost: app.example\r\nConnection: close\r\n")
	if body != "" {
		b.WriteString("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	_, _ = conn.Write([]byte(b.String())) // a server that refuses early may stop reading: its answer decides
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	require.NoError(t, err)
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp, out.String()
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestHTTPBadInputs sends malformed, oversized, odd-method and
// traversal-shaped requests over real connections to a server whose
// handler is wrapped in the middleware, with a read-only grant for acme.
// Each request gets the status asserted, reaches the handler only when a
// grant covers it (method overrides never lower the scope: a POST stays a
// write whatever _method or X-HTTP-Method-Override say), changes no grant
// and leaves at most one audit event, whose path is escaped, without the
// query and valid UTF-8. At the end the trail verifies and exports.
func TestHTTPBadInputs(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{}) // acme, any support principal, read only
	var mu sync.Mutex
	var calls, supportCalls int
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, support := sa.SessionFromContext(r.Context())
		mu.Lock()
		calls++
		if support {
			supportCalls++
		}
		mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	cookie := "Cookie: sid=generic"
	globex := "Cookie: sid=globex" // a session without any grant
	big := func(n int) string { return strings.Repeat("a", n) }
	long := "/" + big(3000) + "/users/42/delete"

	cases := []rawCase{
		{name: "get_allowed", raw: rawReq("GET /settings HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/settings"},
		{name: "head_allowed", raw: rawReq("HEAD /settings HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/settings"},
		{name: "options_allowed", raw: rawReq("OPTIONS /settings HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/settings"},
		{name: "options_star_answered_by_the_server", raw: rawReq("OPTIONS * HTTP/1.1", cookie), status: 200},
		{name: "head_without_grant", raw: rawReq("HEAD /settings HTTP/1.1", globex), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "options_without_grant", raw: rawReq("OPTIONS /settings HTTP/1.1", globex), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "post_read_only", raw: rawReq("POST /settings HTTP/1.1", cookie), body: "theme=dark", status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "post_form_method_get", raw: rawReq("POST /settings HTTP/1.1", cookie), body: "_method=GET&theme=dark", status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "post_query_method_get", raw: rawReq("POST /settings?_method=GET HTTP/1.1", cookie), body: "theme=dark", status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "post_override_header_get", raw: rawReq("POST /settings HTTP/1.1", cookie, "X-HTTP-Method-Override: GET"), body: "theme=dark", status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "post_override_x_method_head", raw: rawReq("POST /settings HTTP/1.1", cookie, "X-Method-Override: HEAD"), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "get_override_delete", raw: rawReq("GET /settings HTTP/1.1", cookie, "X-HTTP-Method-Override: DELETE"), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "get_override_second_value_patch", raw: rawReq("GET /settings HTTP/1.1", cookie, "X-HTTP-Method-Override: GET", "X-HTTP-Method-Override: PATCH"), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "head_override_post", raw: rawReq("HEAD /settings HTTP/1.1", cookie, "X-HTTP-Method: POST"), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "get_override_get", raw: rawReq("GET /settings HTTP/1.1", cookie, "X-HTTP-Method-Override: get"), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/settings"},
		{name: "lowercase_get_is_not_safe", raw: rawReq("get /settings HTTP/1.1", cookie), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "propfind", raw: rawReq("PROPFIND /settings HTTP/1.1", cookie), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "trace", raw: rawReq("TRACE /settings HTTP/1.1", cookie), status: 403, event: sa.EventAccessDenied, path: "/settings"},
		{name: "connect", raw: rawReq("CONNECT db.internal:5432 HTTP/1.1", cookie), status: 403, event: sa.EventAccessDenied, path: ""},
		{name: "invalid_utf8_path", raw: rawReq("GET /settings/\xff\xfe HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/settings/%FF%FE"},
		{name: "invalid_utf8_cookie_is_no_session", raw: rawReq("GET /settings HTTP/1.1", "Cookie: sid=gen\xffric"), status: 200, reached: true},
		{name: "invalid_utf8_header", raw: rawReq("GET /settings HTTP/1.1", cookie, "X-Note: a\xffb"), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/settings"},
		{name: "traversal_dotdot", raw: rawReq("GET /../../etc/passwd HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/../../etc/passwd"},
		{name: "traversal_encoded", raw: rawReq("GET /a/%2e%2e/%2E%2E/admin HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/a/%2e%2e/%2E%2E/admin"},
		{name: "traversal_encoded_slash", raw: rawReq("GET /a/..%2f..%2fadmin HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/a/..%2f..%2fadmin"},
		{name: "traversal_double_slash", raw: rawReq("GET //evil.example/x HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "//evil.example/x"},
		{name: "traversal_post", raw: rawReq("POST /../settings HTTP/1.1", cookie), status: 403, event: sa.EventAccessDenied, path: "/../settings"},
		{name: "query_not_audited", raw: rawReq("GET /settings?token=secret HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/settings"},
		{name: "long_path_cut", raw: rawReq("GET "+long+" HTTP/1.1", cookie), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: long[:510] + "..." + long[len(long)-511:]},
		{name: "large_header_under_the_limit", raw: rawReq("GET /settings HTTP/1.1", cookie, "X-Big: "+big(512<<10)), status: 200, reached: true, support: true, event: sa.EventSupportRequest, path: "/settings"},
		{name: "oversized_header", raw: rawReq("GET /settings HTTP/1.1", cookie, "X-Big: "+big(http.DefaultMaxHeaderBytes+8192)), status: 431},
		{name: "oversized_cookie", raw: rawReq("POST /settings HTTP/1.1", cookie+"; pad="+big(http.DefaultMaxHeaderBytes+8192)), status: 431},
		{name: "space_in_path", raw: rawReq("GET /a b HTTP/1.1", cookie), status: 400},
		{name: "control_char_in_path", raw: rawReq("GET /\x01 HTTP/1.1", cookie), status: 400},
		{name: "invalid_method_byte", raw: rawReq("G\xffT /settings HTTP/1.1", cookie), status: 400},
	}
	initial := stateOf(t, e.store.Store, e.clock.Now())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			calls0, support0 := calls, supportCalls
			mu.Unlock()
			before := stateOf(t, e.store.Store, e.clock.Now())
			resp, body := sendRaw(t, addr, c.raw, c.body)
			require.Equal(t, c.status, resp.StatusCode, body)
			if strings.HasPrefix(c.raw, "HEAD ") {
				require.Empty(t, body, "no body for HEAD")
			}
			mu.Lock()
			reached, support := calls > calls0, supportCalls > support0
			mu.Unlock()
			require.Equal(t, c.reached, reached, "reached the handler")
			require.Equal(t, c.support, support, "as an impersonated request")
			if !c.reached {
				require.NotContains(t, body, "ok")
			}
			after := stateOf(t, e.store.Store, e.clock.Now())
			require.Equal(t, initial.grants, after.grants, "no grant changed")
			added := newEvents(t, before, after)
			if c.event == "" {
				require.Empty(t, added)
				return
			}
			require.Len(t, added, 1)
			ev := added[0]
			require.Equal(t, c.event, ev.Type)
			require.Equal(t, c.path, ev.Attrs[sa.AttrPath])
			require.True(t, utf8.ValidString(ev.Attrs[sa.AttrPath]))
			require.True(t, utf8.ValidString(ev.Attrs[sa.AttrMethod]))
		})
	}
	rep, err := e.m.VerifyAudit(ctx, "acme")
	require.NoError(t, err)
	require.True(t, rep.OK())
	var buf bytes.Buffer
	_, err = e.m.ExportAudit(ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	_, err = sa.VerifyJSONL(&buf)
	require.NoError(t, err, "the trail of odd requests exports and verifies")
}
