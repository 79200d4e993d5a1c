package supportaccess

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Notification tells a tenant's contacts about a change of support access:
// who gained or lost access, to which tenant, why and until when.
type Notification struct {
	Type      EventType // grant.created, grant.extended, grant.revoked, grant.expired, grant.delegated, request.*
	TenantID  string
	GrantID   uuid.UUID
	RequestID uuid.UUID
	By        Actor    // who made the change
	Grantees  []string // who has access (empty: any support principal)
	Scopes    []Scope
	Reason    string
	TicketRef string
	StartsAt  time.Time
	ExpiresAt time.Time // zero: unlimited
}

// Notifier delivers notifications (e-mail, chat, in-app). It is called after
// the change committed; an error never undoes the change, it is recorded as
// a notify.failed event and passed to the error handler.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, n Notification) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n Notification) error { return f(ctx, n) }

// WithNotifier sets the Notifier. Default: none. Nil is ignored.
func WithNotifier(n Notifier) Option {
	return optionFunc(func(m *Manager) {
		if n != nil {
			m.notifier = n
		}
	})
}

// notify tells the Notifier about a committed change of g.
func (m *Manager) notify(ctx context.Context, t EventType, g Grant, by Actor, reason string) {
	if m.notifier == nil {
		return
	}
	if reason == "" {
		reason = g.Reason
	}
	n := Notification{
		Type: t, TenantID: g.TenantID, GrantID: g.ID, RequestID: g.RequestID, By: by,
		Grantees: g.Grantees, Scopes: g.Scopes, Reason: reason, TicketRef: g.TicketRef,
		StartsAt: g.StartsAt, ExpiresAt: g.ExpiresAt,
	}
	m.deliver(ctx, n)
}

// deliver calls the Notifier and records a failure.
func (m *Manager) deliver(ctx context.Context, n Notification) {
	err := m.notifier.Notify(ctx, n)
	if err == nil {
		return
	}
	ev := m.newEvent(m.now(), EventNotifyFailed, n.TenantID, n.GrantID, SystemActor, "")
	ev.Attrs = map[string]string{AttrAction: string(n.Type), AttrError: err.Error()}
	if aerr := m.record(ctx, ev); aerr != nil {
		err = fmt.Errorf("%w (and recording the failure: %v)", err, aerr)
	}
	m.reportError(ctx, fmt.Errorf("notify %s: %w", n.Type, err))
}
