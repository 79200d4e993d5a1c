package supportaccess_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

var (
	customer = storetest.Customer
	support  = storetest.Support
	engineer = storetest.Engineer
	system   = sa.Actor{Kind: sa.ActorSystem, ID: "cron"}
	ctx      = context.Background()
	errBoom  = errors.New("boom")
)

// env is a Manager on a memstore with a manual clock.
type env struct {
	t     *testing.T
	store *memstore.Store
	clock *storetest.Clock
	m     *sa.Manager
}

func newEnv(t *testing.T, opts ...sa.Option) *env {
	t.Helper()
	return newEnvOn(t, memstore.New(), opts...)
}

// newEnvOn is newEnv on the given store, for options that name it (as one
// of the auditors, say).
func newEnvOn(t *testing.T, st *memstore.Store, opts ...sa.Option) *env {
	t.Helper()
	e := &env{t: t, store: st, clock: storetest.NewClock(storetest.Epoch)}
	m, err := sa.NewManager(e.store, append([]sa.Option{sa.WithNow(e.clock.Now)}, opts...)...)
	require.NoError(t, err)
	e.m = m
	return e
}

func (e *env) now() time.Time { return e.clock.Now().UTC().Truncate(time.Microsecond) }

func (e *env) grant(in sa.GrantInput) sa.Grant {
	e.t.Helper()
	return mustGrant(e.t, e.m, in, customer)
}

// mustGrant creates a grant on m from in, in tenant acme and by by unless
// in names others, and fails the test if it is refused.
func mustGrant(t *testing.T, m *sa.Manager, in sa.GrantInput, by sa.Actor) sa.Grant {
	t.Helper()
	if in.TenantID == "" {
		in.TenantID = "acme"
	}
	if in.By.IsZero() {
		in.By = by
	}
	g, err := m.Grant(context.Background(), in)
	require.NoError(t, err)
	return g
}

// snapshot is everything the store holds, to prove a refused call changed
// nothing.
type snapshot struct {
	grants []sa.Grant
	events []sa.Event
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	gs, err := e.store.ListGrants(ctx, sa.ListFilter{}, e.now())
	require.NoError(e.t, err)
	evs, err := e.store.Events(ctx, sa.AuditFilter{})
	require.NoError(e.t, err)
	return snapshot{gs, evs}
}

// snapshotWithout is snapshot without the events of the given types.
func (e *env) snapshotWithout(types ...sa.EventType) snapshot {
	e.t.Helper()
	s := e.snapshot()
	var evs []sa.Event
	for _, ev := range s.events {
		if !slices.Contains(types, ev.Type) {
			evs = append(evs, ev)
		}
	}
	s.events = evs
	return s
}

// events returns the stored events of the given types.
func (e *env) events(types ...sa.EventType) []sa.Event {
	e.t.Helper()
	evs, err := e.store.Events(ctx, sa.AuditFilter{Types: types})
	require.NoError(e.t, err)
	return evs
}

// faultyStore wraps a Store and fails the methods selected.
type faultyStore struct {
	*memstore.Store
	failFind, failCreate, failUpdate, failGet bool
}

func (f *faultyStore) FindActiveGrant(ctx context.Context, tenantID, principal string, scope sa.Scope, now time.Time) (sa.Grant, error) {
	if f.failFind {
		return sa.Grant{}, errBoom
	}
	return f.Store.FindActiveGrant(ctx, tenantID, principal, scope, now)
}

func (f *faultyStore) CreateGrant(ctx context.Context, g sa.Grant, evs []sa.Event) error {
	if f.failCreate {
		return errBoom
	}
	return f.Store.CreateGrant(ctx, g, evs)
}

func (f *faultyStore) GetGrant(ctx context.Context, id uuid.UUID) (sa.Grant, error) {
	if f.failGet {
		return sa.Grant{}, errBoom
	}
	return f.Store.GetGrant(ctx, id)
}

func (f *faultyStore) UpdateGrant(ctx context.Context, id uuid.UUID, change func(*sa.Grant) ([]sa.Event, error)) (sa.Grant, error) {
	if f.failUpdate {
		return sa.Grant{}, errBoom
	}
	return f.Store.UpdateGrant(ctx, id, change)
}

// lyingStore returns whatever grant it is told to from FindActiveGrant.
type lyingStore struct {
	*memstore.Store
	answer sa.Grant
}

func (l *lyingStore) FindActiveGrant(context.Context, string, string, sa.Scope, time.Time) (sa.Grant, error) {
	return l.answer, nil
}

// failingAuditor fails every Record.
type failingAuditor struct{}

func (failingAuditor) Record(context.Context, sa.Event) error { return errBoom }

// recordingAuditor keeps the events it records.
type recordingAuditor struct {
	mu     sync.Mutex
	events []sa.Event
}

func (r *recordingAuditor) Record(_ context.Context, e sa.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recordingAuditor) types() []sa.EventType {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sa.EventType
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

var storetestEpoch = storetest.Epoch
