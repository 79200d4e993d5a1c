package supportaccess_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview25ActorAttributesAreValidatedBeforeRecording: every Manager
// operation puts the actor's kind (and, with WithPrincipalAttributes, its
// ID) on its span through actorAttrs when the span starts — before the
// actor is validated. A malformed actor (invalid UTF-8, or an ID of any
// length) is refused with ErrInvalidInput, yet its raw bytes are already on
// the exported span: invalid UTF-8 makes an OTLP (protobuf) export of the
// whole batch fail, and an unbounded value lands in the trace backend.
// Check shows the intended rule: it only records a tenant or principal
// that passed validation.
func TestReview25ActorAttributesAreValidatedBeforeRecording(t *testing.T) {
	o := newOtelEnv(t, sa.WithPrincipalAttributes(true))
	g := o.grant(sa.GrantInput{})

	badKind := sa.Actor{Kind: sa.ActorKind("customer\xff"), ID: customer.ID}
	badID := sa.Actor{Kind: sa.ActorCustomer, ID: "alice\xff@acme.example"}
	longID := sa.Actor{Kind: sa.ActorSupport, ID: strings.Repeat("x", 64<<10) + "@vendor.example"}

	_, err := o.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: badKind})
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = o.m.Revoke(ctx, g.ID, badID, "")
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	_, err = o.m.Extend(ctx, g.ID, g.ExpiresAt.Add(1), longID)
	require.Error(t, err)
	_, err = o.m.AddGrantee(ctx, uuid.New(), support.ID, badKind)
	require.ErrorIs(t, err, sa.ErrInvalidInput)

	for _, s := range o.spans.Ended() {
		for _, kv := range s.Attributes() {
			if kv.Value.Type() != attribute.STRING {
				continue
			}
			v := kv.Value.AsString()
			require.True(t, utf8.ValidString(v), "span %s: attribute %s holds invalid UTF-8 %q", s.Name(), kv.Key, v)
			require.LessOrEqual(t, len(v), sa.MaxPrincipalLen, "span %s: attribute %s holds an unvalidated %d-byte value", s.Name(), kv.Key, len(v))
		}
	}
}
