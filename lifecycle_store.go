package supportaccess

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// RequestStore is implemented by stores that keep access requests (the
// bundled memstore and sqlstore do). The Manager discovers it by type
// assertion; RequestAccess, Approve, Deny, GetRequest and ListRequests
// return an error wrapping errors.ErrUnsupported when the store lacks it.
//
// As with Store, events handed to a write method are the audit events of
// that change and commit in the same transaction (nil when the store is not
// the Auditor); returned values are copies; times are UTC microseconds.
type RequestStore interface {
	// CreateRequest stores the new request r with events. A duplicate ID is
	// an error wrapping ErrConflict; a Status that is not Valid is
	// ErrInvalidInput (also for UpdateRequest and ApproveRequest).
	CreateRequest(ctx context.Context, r AccessRequest, events []Event) error

	// GetRequest returns the request with the given ID as stored (Status
	// is the stored status; the Manager computes expiry at read time), or
	// an error wrapping ErrNotFound.
	GetRequest(ctx context.Context, id uuid.UUID) (AccessRequest, error)

	// ListRequests returns the requests matching f (see RequestFilter.Match:
	// statuses are evaluated at now), ordered by CreatedAt descending then
	// ID descending, at most f.Limit (all when 0 or negative). No match
	// is an empty result, not an error; a status in f.Statuses that is
	// not Valid is ErrInvalidInput.
	ListRequests(ctx context.Context, f RequestFilter, now time.Time) ([]AccessRequest, error)

	// UpdateRequest changes one request atomically, like
	// Store.UpdateGrant: it reads the request under a lock, calls change
	// with a copy and, if change returns no error, stores the changed
	// request and the returned events in one transaction. Concurrent
	// updates of one request are serialised. An error from change is
	// returned unchanged and nothing is written. A missing request is
	// ErrNotFound (change is not called). change must not alter ID,
	// TenantID or CreatedAt, or clear ExpiresAt (ErrInvalidInput, nothing
	// written).
	UpdateRequest(ctx context.Context, id uuid.UUID, change func(r *AccessRequest) ([]Event, error)) (AccessRequest, error)

	// ApproveRequest is UpdateRequest that also creates a grant: approve
	// receives a copy of the locked request, changes it and returns the new
	// grant and the events; the store then saves the request, creates the
	// grant and stores the events in one transaction, or does nothing at
	// all. Of concurrent calls for one request the second sees the first's
	// result. A grant ID that exists already is ErrConflict (nothing is
	// written); a missing request is ErrNotFound.
	ApproveRequest(ctx context.Context, id uuid.UUID, approve func(r *AccessRequest) (Grant, []Event, error)) (AccessRequest, Grant, error)

	// ClaimExpiredRequests finds up to limit requests whose stored Status is
	// RequestPending and whose ExpiresAt <= now, in order of ExpiresAt
	// (requests expiring at one time in byte order of their IDs, as
	// ClaimTransitions orders grants), sets their Status to
	// RequestExpired and stores the events events(r) returns for each, all
	// in one transaction, and returns them (with the new status).
	// Concurrent callers never claim the same request. If events returns
	// an error nothing is claimed or stored and that error is returned; if
	// it panics, nothing is claimed or stored either (as for
	// Store.ClaimTransitions).
	ClaimExpiredRequests(ctx context.Context, now time.Time, limit int, events func(AccessRequest) ([]Event, error)) ([]AccessRequest, error)
}

// HookStore is implemented by stores that keep the persistent state of
// expiry hooks (the bundled memstore and sqlstore do). A Manager with
// OnExpire hooks requires it: NewManager returns an error wrapping
// errors.ErrUnsupported otherwise.
//
// For every expiry it claims, ClaimExpirations creates a hook task in the
// same transaction, leased to the claimer, so a replica that stops right
// after the claim leaves a task another replica runs once the lease ends.
// Tasks are leased: ClaimHookTasks hands a task to one caller until its
// lease ends, FinishHookTasks deletes it (hooks done) or stores its retry
// state and ends the lease.
type HookStore interface {
	// ClaimExpirations is ClaimTransitions(ctx, TransitionExpired, now,
	// limit, events) that also creates, in the same transaction, one
	// HookTask per claimed grant: Done 0, Attempts 0, NextAt now, leased to
	// lease.Token until lease.Until.
	ClaimExpirations(ctx context.Context, now time.Time, limit int, lease Lease, events func(Grant) ([]Event, error)) ([]Grant, error)

	// ClaimHookTasks leases up to limit tasks with NextAt <= now whose
	// lease is free (LeaseUntil zero or <= now), in order of NextAt then
	// grant ID, to lease.Token until lease.Until, and returns them with
	// their grants. Concurrent callers never lease the same task at once.
	ClaimHookTasks(ctx context.Context, now time.Time, limit int, lease Lease) ([]HookTask, error)

	// FinishHookTasks ends the leases of tasks that are still leased to
	// token, in one transaction with events: a task with Complete set is
	// deleted; the others keep the Done, Attempts, NextAt and LastError
	// given and become claimable again (LeaseToken and LeaseUntil cleared).
	// Tasks no longer leased to token (their lease ran out and another
	// caller took them) are left alone. It returns how many tasks it
	// finished. events are stored whatever that number. A task that is
	// not Complete and has no NextAt, or a Done or Attempts outside
	// [0, 2³¹−1], is ErrInvalidInput (nothing is written).
	FinishHookTasks(ctx context.Context, token string, tasks []HookTask, events []Event) (int, error)
}

// Lease is a claim on hook tasks until a time. A lease without a Token or
// an Until, or with a Token over 255 bytes, is refused with
// ErrInvalidInput by the bundled stores.
type Lease struct {
	// Token identifies the claim; the Manager uses a fresh one per claim.
	Token string
	// Until is when the claim ends and the task may be claimed again.
	Until time.Time
}

// HookTask is the persistent state of the expiry hooks of one expired
// grant, kept by a HookStore until every hook succeeded.
type HookTask struct {
	// Grant is the expired grant (the key is Grant.ID).
	Grant Grant
	// Done counts the hooks, in registration order, that already
	// succeeded; a retry starts with hook number Done.
	Done int
	// Attempts counts failed attempts.
	Attempts int
	// NextAt is the earliest time the task may be claimed.
	NextAt time.Time
	// LastError is the message of the last failure (at most
	// MaxReasonLen bytes).
	LastError string
	// LeaseToken and LeaseUntil describe the current lease (zero: none).
	LeaseToken string
	LeaseUntil time.Time
	// Complete asks FinishHookTasks to delete the task. It is input only
	// and never stored.
	Complete bool
}
