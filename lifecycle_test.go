package supportaccess_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Helpers shared by the lifecycle tests (requests, delegation, expiry
// hooks, notifications).

// notes records notifications; fail makes Notify return an error.
type notes struct {
	mu   sync.Mutex
	all  []sa.Notification
	fail error
	// during, when set, runs inside Notify (to look at the store).
	during func(sa.Notification)
}

func (n *notes) Notify(_ context.Context, x sa.Notification) error {
	if n.during != nil {
		n.during(x)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.all = append(n.all, x)
	return n.fail
}

func (n *notes) types() []sa.EventType {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []sa.EventType{}
	for _, x := range n.all {
		out = append(out, x.Type)
	}
	return out
}

func (n *notes) last(t *testing.T) sa.Notification {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	require.NotEmpty(t, n.all)
	return n.all[len(n.all)-1]
}

// errs collects what reaches the error handler.
type errs struct {
	mu  sync.Mutex
	all []error
}

func (e *errs) handle(_ context.Context, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, err)
}

func (e *errs) list() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.all...)
}

// ctxT shortens Authorizer literals.
type ctxT = context.Context

// plainStore hides every optional interface of the memstore: a Store only.
type plainStore struct{ sa.Store }

// requests returns every stored access request.
func (e *env) requests() []sa.AccessRequest {
	e.t.Helper()
	rs, err := e.store.ListRequests(ctx, sa.RequestFilter{}, e.now())
	require.NoError(e.t, err)
	return rs
}

// request asks for access as support with in's fields (tenant acme by
// default).
func (e *env) request(in sa.RequestInput) sa.AccessRequest {
	e.t.Helper()
	if in.TenantID == "" {
		in.TenantID = "acme"
	}
	if in.By.IsZero() {
		in.By = engineer
	}
	r, err := e.m.RequestAccess(ctx, in)
	require.NoError(e.t, err)
	return r
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
