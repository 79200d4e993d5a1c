// Review 46: 41f0991 (hostError: deliver and the hook run report a host
// error under its errorText-cleaned text) — prefix TestReview46.

package supportaccess_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// errReview46Long is a host error whose text passes MaxReasonLen: a
// webhook Notifier quoting a response body, say, with the cause at the end.
var errReview46Long = errors.New(strings.Repeat("x", sa.MaxReasonLen) + " 550 mailbox unavailable")

type review46Reported struct {
	mu   sync.Mutex
	errs []error
}

func (r *review46Reported) handle(_ context.Context, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *review46Reported) list() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// TestReview46NotifyErrorMessageClippedForHandler: before 41f0991 the
// error handler got fmt.Errorf("notify %s: %w", ...) — the Notifier's
// whole text. deliver (notify.go:157) now builds the message from
// ev.Attrs[AttrError], i.e. errorText, which clips to MaxReasonLen (and
// turns line breaks into U+FFFD) for the stores' sake: the handler's
// log line loses the tail of a long error. errors.Is still works.
func TestReview46NotifyErrorMessageClippedForHandler(t *testing.T) {
	var rep review46Reported
	n := sa.NotifierFunc(func(context.Context, sa.Notification) error { return errReview46Long })
	m, err := sa.NewManager(memstore.New(), sa.WithNotifier(n), sa.WithErrorHandler(rep.handle))
	require.NoError(t, err)
	_, err = m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	got := rep.list()
	require.Len(t, got, 1)
	require.ErrorIs(t, got[0], errReview46Long, "sanity: the Notifier's error is still in the chain")
	require.True(t, strings.HasSuffix(got[0].Error(), " 550 mailbox unavailable"),
		"the error handler's message lost the tail of the Notifier's error (clipped to MaxReasonLen as the audit attr is)")
}

// TestReview46HookErrorMessageClippedForHandler: the same for an expire
// hook's error: hooks.go:245 reports t.LastError (errorText) where it
// used to wrap the error with %w.
func TestReview46HookErrorMessageClippedForHandler(t *testing.T) {
	var rep review46Reported
	clock := storetest.NewClock(storetest.Epoch)
	m, err := sa.NewManager(memstore.New(), sa.WithNow(clock.Now),
		sa.OnExpire(func(context.Context, sa.Grant) error { return errReview46Long }),
		sa.WithErrorHandler(rep.handle))
	require.NoError(t, err)
	g, err := m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Duration: time.Hour})
	require.NoError(t, err)
	clock.Set(g.ExpiresAt)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	var hookErr error
	for _, e := range rep.list() {
		if errors.Is(e, errReview46Long) {
			hookErr = e
		}
	}
	require.NotNil(t, hookErr, "sanity: the hook's error was reported, still in the chain")
	require.True(t, strings.HasSuffix(hookErr.Error(), " 550 mailbox unavailable"),
		"the error handler's message lost the tail of the hook's error (clipped to MaxReasonLen as the stored LastError is)")
}
