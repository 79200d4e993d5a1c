package main

import (
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview48NilIDInURLIsNotFound: the revoke, approve and deny routes
// parse the {id} path segment with uuid.Parse and hand it to Manager.Get /
// Manager.GetRequest. The nil UUID (00000000-0000-0000-0000-000000000000)
// parses fine, but the library refuses it with ErrInvalidInput ("id is
// empty"), and tenantGrant (admin.go, the `if err != nil { a.serverError }`
// after the ErrNotFound test) and tenantRequest (requests.go, same shape)
// only map ErrNotFound to a 404: every other error becomes a 500 "Internal
// server error" and an ERROR log line. Any signed-in customer can thus
// produce server errors (and alerting noise) at will with a malformed ID.
// Expected: a malformed or nil ID is answered like any unknown ID — 404
// "There is no such grant/request" — and nothing is logged as a server
// error.
func TestReview48NilIDInURLIsNotFound(t *testing.T) {
	e := newTestEnv(t)
	admin := e.login(aliceAdmin)
	const nilID = "00000000-0000-0000-0000-000000000000"
	for _, p := range []string{
		"/admin/support-access/grants/" + nilID + "/revoke",
		"/admin/support-access/requests/" + nilID + "/approve",
		"/admin/support-access/requests/" + nilID + "/deny",
	} {
		t.Run(p, func(t *testing.T) {
			r := admin.post(p, url.Values{})
			require.Equal(t, http.StatusNotFound, r.StatusCode, "a nil ID is an unknown ID, not a server error: %s", r.Body)
		})
	}
}

// countingBody streams a multipart/form-data body whose first part is a
// large "file" of n bytes, followed by a user field, and counts how many
// bytes the server pulled.
type countingBody struct {
	read      atomic.Int64
	pre, post string
	n         int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	off := c.read.Load()
	pre, fill := int64(len(c.pre)), c.n
	total := pre + fill + int64(len(c.post))
	if off >= total {
		return 0, io.EOF
	}
	k := 0
	for ; k < len(p) && off < total; k, off = k+1, off+1 {
		switch {
		case off < pre:
			p[k] = c.pre[off]
		case off < pre+fill:
			p[k] = 'a'
		default:
			p[k] = c.post[off-pre-fill]
		}
	}
	c.read.Store(off)
	return k, nil
}

// TestReview48FormBodiesAreBounded: no handler limits the size of a
// request body (there is no http.MaxBytesReader anywhere in the app), and
// every form handler reads it with r.PostFormValue / r.ParseForm. For a
// multipart/form-data body that means ParseMultipartForm(32 MiB): the
// server reads the whole body, keeps up to 32 MiB in memory per request
// and spills the rest of a "file" part to a temporary file on disk — and
// this on POST /login (loginSubmit, auth.go), which needs no session at
// all (cross-origin protection lets non-browser clients through). With
// serve's 30 s ReadTimeout one client can push gigabytes per request.
// Here a 40 MiB multipart body is read to the end and the sign-in even
// succeeds. The app's forms are a few kilobytes at most (reason ≤ 2000
// bytes). Expected: form bodies are capped (http.MaxBytesReader of e.g.
// 64 KiB in a wrapper around the mux or in each handler) and larger ones
// are refused (413) without being read, and never signed in.
func TestReview48FormBodiesAreBounded(t *testing.T) {
	e := newTestEnv(t)
	const boundary = "review48boundary"
	body := &countingBody{
		n:   40 << 20,
		pre: "--" + boundary + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n",
		post: "\r\n--" + boundary + "\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n" + aliceAdmin +
			"\r\n--" + boundary + "--\r\n",
	}
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/login", body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Do(req)
	if err == nil { // a server that refuses early may close the connection instead
		_, _ = io.Copy(io.Discard, res.Body)
		require.NoError(t, res.Body.Close())
		require.GreaterOrEqual(t, res.StatusCode, 400, "a 40 MiB form is refused, not processed (got %d, cookie %q)",
			res.StatusCode, res.Header.Get("Set-Cookie"))
	}
	require.Less(t, body.read.Load(), int64(16<<20), "the server read %d bytes of an unauthenticated form post", body.read.Load())
}

// TestReview48CompanyNameRefusesControlAndBidiCharacters: the settings
// form is the one free-text field the app stores itself, and
// tenantSettings.validate (settings.go) checks only emptiness, length and
// UTF-8 validity. A support engineer with the write scope (or the admin)
// can store a company name containing NUL, line breaks or the Unicode
// bidirectional override U+202E. The name is shown in every page header
// (layout.html brand), on the dashboard, and — for support's changes — in
// the customer's audit log as the support.change before/after JSON, where
// json.Marshal escapes control characters but not U+202E: the audit view
// then displays reordered text, exactly what the library refuses in its
// own text fields (validate.go controlRune: "a reason could then read
// differently in an audit view than it is"). Expected: validate refuses
// control characters (C0, DEL, C1, U+2028/2029) and bidi controls
// (U+202A–U+202E, U+2066–U+2069) with a 400 "Not saved" and nothing is
// stored or recorded as a change.
func TestReview48CompanyNameRefusesControlAndBidiCharacters(t *testing.T) {
	for name, value := range map[string]string{
		"bidi_override": "Acme \u202egnissecorp\u202c Corp",
		"nul":           "Acme\x00Corp",
		"newline":       "Acme\nCorp",
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			e.login(aliceAdmin).grant(url.Values{"scope_write": {"1"}})
			support := e.login(samEngineer)
			require.Equal(t, http.StatusOK, support.impersonate(acmeTenantID).StatusCode)
			r := support.post("/app/settings", url.Values{"company_name": {value}, "theme": {"light"}})
			require.Equal(t, http.StatusBadRequest, r.StatusCode, "stored %q", e.app.settings.get(acmeTenantID).CompanyName)
			require.Equal(t, "Acme Corporation", e.app.settings.get(acmeTenantID).CompanyName)
			require.Empty(t, e.events(acmeTenantID, sa.EventSupportChange))
		})
	}
}
