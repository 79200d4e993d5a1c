package supportaccess_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// A product wraps its mux with the middleware. The resolver recognises the
// host's own support sessions (here bearer tokens; a cookie works the same);
// every other request passes untouched. The grant allows reading, so the
// support user may view the settings but not change them, and the
// /messages route additionally needs the elevated "messages:read" scope.
// Everything support did, allowed or not, is in the audit trail.
func ExampleManager_Middleware() {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	m, err := sa.NewManager(memstore.New(), sa.WithNow(func() time.Time { return now }))
	if err != nil {
		panic(err)
	}
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}
	if _, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: admin, Duration: 24 * time.Hour, Reason: "SUP-1042"}); err != nil {
		panic(err)
	}

	// The host's support sessions, by token.
	sessions := map[string]sa.Session{
		"tok-7f3a": {TenantID: "acme", Principal: "support+acme@vendor.example", SubjectUserID: "u-42", SessionID: "sess-1"},
	}
	resolve := func(r *http.Request) (sa.Session, bool) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return sa.Session{}, false
		}
		s, ok := sessions[tok]
		return s, ok
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/settings", func(w http.ResponseWriter, r *http.Request) {
		if g, ok := sa.GrantFromContext(r.Context()); ok {
			fmt.Fprintf(w, "settings; support access active until %s", g.ExpiresAt.Format(time.RFC3339))
			return
		}
		fmt.Fprint(w, "settings")
	})
	mux.Handle("/messages", sa.RequireScope("messages:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "messages")
	})))
	handler := m.Middleware(resolve)(mux)

	for _, c := range []struct{ method, path, token string }{
		{http.MethodGet, "/settings", ""},         // the customer's own user
		{http.MethodGet, "/settings", "tok-7f3a"}, // support, reading
		{http.MethodPost, "/settings", "tok-7f3a"},
		{http.MethodGet, "/messages?page=2", "tok-7f3a"},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		if c.token != "" {
			r.Header.Set("Authorization", "Bearer "+c.token)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, r)
		fmt.Printf("%s %s support=%t: %d %s\n", c.method, c.path, c.token != "", rec.Code, strings.TrimSpace(rec.Body.String()))
	}

	events, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme", ActorKind: sa.ActorSupport})
	if err != nil {
		panic(err)
	}
	for _, e := range events {
		fmt.Println(strings.TrimSpace(fmt.Sprintln(e.Type, e.Attrs[sa.AttrMethod], e.Attrs[sa.AttrPath], e.Attrs[sa.AttrStatus], e.Reason)))
	}
	// Output:
	// GET /settings support=false: 200 settings
	// GET /settings support=true: 200 settings; support access active until 2026-11-29T09:00:00Z
	// POST /settings support=true: 403 Support access does not allow this request.
	// GET /messages?page=2 support=true: 403 Support access does not allow this request.
	// support.request GET /settings 200
	// access.denied POST /settings 403 scope not granted: write
	// access.denied GET /messages 403 scope not granted: messages:read
}

// A handler that changes configuration on behalf of support records the
// change, with the values before and after, before it commits it; when the
// event cannot be written (or support access ended meanwhile) it does not
// make the change.
func ExampleRecordChange() {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	m, err := sa.NewManager(memstore.New(), sa.WithNow(func() time.Time { return now }))
	if err != nil {
		panic(err)
	}
	admin := sa.Actor{Kind: sa.ActorCustomer, ID: "ada@acme.example"}
	if _, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: admin, Scopes: []sa.Scope{sa.ScopeWrite}}); err != nil {
		panic(err)
	}
	type ssoSettings struct {
		Enforced bool `json:"enforced"`
	}
	current := ssoSettings{Enforced: false}

	setSSO := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next := ssoSettings{Enforced: r.FormValue("enforced") == "true"}
		if err := sa.RecordChange(r.Context(), "sso", current, next); err != nil {
			http.Error(w, "change not recorded, not made", http.StatusServiceUnavailable)
			return
		}
		current = next
		w.WriteHeader(http.StatusNoContent)
	})
	resolve := func(r *http.Request) (sa.Session, bool) {
		if r.Header.Get("Authorization") != "Bearer tok-7f3a" {
			return sa.Session{}, false
		}
		return sa.Session{TenantID: "acme", Principal: "support+acme@vendor.example", SessionID: "sess-1"}, true
	}
	handler := m.Middleware(resolve)(setSSO)

	r := httptest.NewRequest(http.MethodPost, "/settings/sso", strings.NewReader("enforced=true"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Bearer tok-7f3a")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, r)
	fmt.Println("status:", rec.Code, "enforced:", current.Enforced)

	events, err := m.Events(ctx, sa.AuditFilter{TenantID: "acme", Types: []sa.EventType{sa.EventSupportChange}})
	if err != nil {
		panic(err)
	}
	for _, e := range events {
		fmt.Println(e.Type, e.Actor.ID, e.Attrs[sa.AttrWhat], string(e.Before), "->", string(e.After))
	}
	// Output:
	// status: 204 enforced: true
	// support.change support+acme@vendor.example sso {"enforced":false} -> {"enforced":true}
}
