package supportaccess_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestReview101SweepExpiryNotDelayedByNotifier: Sweep told each expired
// grant's listeners and then its Notifier, one grant after the other, so
// an in-flight request kept by the batch's second grant ran on for as long
// as the Notifier took with the first (a webhook that takes its time).
// Revoke and RevokeTenant end every in-flight request before the first
// Notifier call (review7); an expiry the request's own timer does not see
// (the grant was shortened on another replica, or the clock moved) must
// not wait either.
func TestReview101SweepExpiryNotDelayedByNotifier(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	notifier := sa.NotifierFunc(func(ctx context.Context, n sa.Notification) error {
		if n.Type == sa.EventGrantExpired {
			first := false
			once.Do(func() { first = true })
			if first {
				close(entered)
				<-release
			}
		}
		return nil
	})
	e := newMWEnv(t, sa.WithNotifier(notifier))
	e.grant(sa.GrantInput{Duration: sa.Day})     // expires first: told first
	e.grant(sa.GrantInput{Duration: 2 * sa.Day}) // admits the request
	in, probe := make(chan struct{}), make(chan struct{})
	var cause error
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("row 1\n"))
		close(in)
		<-probe
		cause = mwWaitEnd(r, 400*time.Millisecond)
	}), sa.WithPollInterval(time.Minute))
	done := make(chan struct{})
	go func() { defer close(done); mwDo(h, mwReq(http.MethodGet, "/events", "generic")) }()
	<-in
	e.clock.Advance(3 * sa.Day) // both expired; the request's own timer still waits for day 2
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		_, err := e.m.Sweep(context.Background())
		require.NoError(t, err)
	}()
	<-entered // the first expiry is being told to the customer
	close(probe)
	<-done
	close(release)
	<-sweepDone
	require.ErrorIs(t, cause, sa.ErrSessionEnded, "the in-flight request outlives its grant's recorded expiry while the Notifier is busy with another")
}

// purgingLog is a memstore whose chain walks a purge overtakes: before the
// first page of each of the next `disturb` walks of tenant acme it purges
// the tenant's trail up to one more of times.
type purgingLog struct {
	*memstore.Store
	m       *sa.Manager
	disturb int
	times   []time.Time
	busy    bool
}

func (p *purgingLog) Events(ctx context.Context, f sa.AuditFilter) ([]sa.Event, error) {
	if f.TenantID == "acme" && f.Order == sa.AuditByChain && len(f.Types) == 0 && f.After == nil && p.disturb > 0 && !p.busy {
		p.disturb--
		p.busy = true
		_, err := p.m.PurgeAudit(ctx, "acme", p.times[0])
		p.busy = false
		if err != nil {
			return nil, err
		}
		p.times = p.times[1:]
	}
	return p.Store.Events(ctx, f)
}

// TestReview101VerifyOvertakenByPurgesIsNoTamper: a purge that deletes
// the start of the chain while VerifyAudit walks it (here before each
// walk's first page) is no tampering: the walk goes on from the new
// checkpoint, which the purge's own audit.purged event records, and the
// chain verifies — not a ChainBreak wrapping ErrTampered that would send
// an auditor after an intruder.
func TestReview101VerifyOvertakenByPurgesIsNoTamper(t *testing.T) {
	clock := storetest.NewClock(storetest.Epoch)
	p := &purgingLog{Store: memstore.New()}
	m, err := sa.NewManager(p, sa.WithNow(clock.Now))
	require.NoError(t, err)
	p.m = m
	for range 8 {
		g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: storetest.Customer, Duration: time.Hour})
		require.NoError(t, err)
		clock.Advance(time.Minute)
		p.times = append(p.times, g.CreatedAt.Add(time.Microsecond))
	}
	for round := range 2 {
		p.disturb = 3 // a purge overtakes every walk VerifyAudit makes
		rep, err := m.VerifyAudit(ctx, "acme")
		require.NoError(t, err, "round %d: overtaken by a purge", round)
		require.Nil(t, rep.Break)
		require.Equal(t, 2, p.disturb, "one walk, which a purge overtook, verified the chain")
		st, err := p.AuditChain(ctx, "acme")
		require.NoError(t, err)
		require.Equal(t, st.Checkpoint, rep.Chains["acme"].From, "verified from the checkpoint the purge set")
		require.Equal(t, st.Head, rep.Chains["acme"].Head, "up to the head, the purge's own event included")
	}
}
