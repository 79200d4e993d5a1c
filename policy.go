package supportaccess

import (
	"fmt"
	"slices"
	"time"
)

// Day is 24 hours, for writing policies.
const Day = 24 * time.Hour

// Preset is a duration choice the host's grant dialog offers. Its Label is
// the host's text, not validated beyond being present: escape it where it
// is rendered (html/template does).
type Preset struct {
	Label    string        `json:"label"`
	Duration time.Duration `json:"duration"` // Unlimited for "no end"
}

// Preset lists used by real products, ready to put in Policy.Presets.
var (
	// PresetsShort: 24 hours, 3 days, 7 days.
	PresetsShort = []Preset{{"24 hours", Day}, {"3 days", 3 * Day}, {"7 days", 7 * Day}}
	// PresetsLong: 1 day, 1 week, 2 weeks, 1 month (30 days), 4 months
	// (120 days).
	PresetsLong = []Preset{{"1 day", Day}, {"1 week", 7 * Day}, {"2 weeks", 14 * Day}, {"1 month", 30 * Day}, {"4 months", 120 * Day}}
)

// Policy is the vendor's (or tenant's) rule for grants. Use DefaultPolicy
// and change what differs. It judges changes (Grant, Extend, RequestAccess,
// Approve) when they are made, by the Manager that makes them: a tighter
// policy does not shorten grants made before it (revoke those), and
// replicas running different policies each apply their own.
type Policy struct {
	// DefaultDuration is used when GrantInput.Duration is 0.
	DefaultDuration time.Duration
	// MaxDuration caps every grant window and every extension (measured
	// from the later of now and StartsAt).
	MaxDuration time.Duration
	// Presets, when not empty, are the only durations Grant accepts (plus 0
	// for the default). They are data for the host's UI as well. Extend
	// sets an end, which presets do not restrict: MaxDuration bounds it,
	// and AllowUnlimited alone decides whether it may remove the end.
	Presets []Preset
	// AllowUnlimited permits grants without an end (Duration: Unlimited,
	// or Extend to a zero time). Refused with ErrForbidden otherwise.
	AllowUnlimited bool
	// DefaultScopes are granted when GrantInput.Scopes is empty. Empty
	// means {ScopeRead}. At most MaxScopes, as for a grant.
	DefaultScopes []Scope
	// RequireReason and RequireTicketRef make the reason and the ticket
	// reference mandatory on every grant and access request
	// (ErrInvalidInput when missing, or blank: only white space or
	// invisible characters).
	RequireReason, RequireTicketRef bool
	// MaxScheduleAhead limits how far in the future a grant may start;
	// 0 means no limit.
	MaxScheduleAhead time.Duration
	// RequestTTL is how long an access request waits for a decision before
	// it expires. 0 means 72 hours. It is applied when the request is made
	// (its ExpiresAt is stored): a shorter TTL on the replica that approves
	// it, or after a restart, does not expire requests made before; Deny
	// those.
	RequestTTL time.Duration
}

// DefaultPolicy returns the default policy: 1 week by default, 120 days at
// most, any duration up to that, no unlimited grants, read-only by default,
// reason and ticket optional, requests expire after 72 hours.
func DefaultPolicy() Policy {
	return Policy{
		DefaultDuration: 7 * Day,
		MaxDuration:     120 * Day,
		DefaultScopes:   []Scope{ScopeRead},
		RequestTTL:      72 * time.Hour,
	}
}

// Validate reports an inconsistent policy with an ErrInvalidInput error:
// non-positive default or maximum, default above maximum, presets outside
// the limits or not containing the default, invalid default scopes.
func (p Policy) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("policy: %w: "+format, append([]any{ErrInvalidInput}, a...)...)
	}
	// A grant's times are whole microseconds: a shorter duration would
	// give a grant that ends as it starts.
	if p.MaxDuration < time.Microsecond {
		return bad("MaxDuration must be at least a microsecond")
	}
	if p.DefaultDuration < time.Microsecond {
		return bad("DefaultDuration must be at least a microsecond")
	}
	if p.DefaultDuration == Unlimited && !p.AllowUnlimited {
		return bad("DefaultDuration is Unlimited but AllowUnlimited is false")
	}
	if p.DefaultDuration != Unlimited && p.DefaultDuration > p.MaxDuration {
		return bad("DefaultDuration %s exceeds MaxDuration %s", p.DefaultDuration, p.MaxDuration)
	}
	for i, pr := range p.Presets {
		switch {
		case pr.Duration == Unlimited && !p.AllowUnlimited:
			return bad("Presets[%d] is Unlimited but AllowUnlimited is false", i)
		case pr.Duration != Unlimited && (pr.Duration < time.Microsecond || pr.Duration > p.MaxDuration):
			return bad("Presets[%d] duration %s is outside [1µs, MaxDuration]", i, pr.Duration)
		case pr.Label == "":
			return bad("Presets[%d] has no label", i)
		}
	}
	if len(p.Presets) > 0 && !p.hasPreset(p.DefaultDuration) {
		return bad("DefaultDuration %s is not one of the Presets", durationText(p.DefaultDuration))
	}
	// As many as a grant may have: a grant or request given none gets
	// them all, and Approve checks a request's scopes as Grant checks its
	// input.
	if err := validateScopes("DefaultScopes", p.DefaultScopes); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if p.RequestTTL < 0 || p.MaxScheduleAhead < 0 {
		return bad("RequestTTL and MaxScheduleAhead may not be negative")
	}
	if p.RequestTTL > 0 && p.RequestTTL < time.Microsecond {
		return bad("RequestTTL must be 0 (the default) or at least a microsecond")
	}
	return nil
}

func (p Policy) hasPreset(d time.Duration) bool {
	return slices.ContainsFunc(p.Presets, func(pr Preset) bool { return pr.Duration == d })
}

// clone returns a deep copy of p: its slices are copied (Preset holds no
// references).
func (p Policy) clone() Policy {
	p.Presets = slices.Clone(p.Presets)
	p.DefaultScopes = slices.Clone(p.DefaultScopes)
	return p
}

// requestTTL returns the effective request TTL.
func (p Policy) requestTTL() time.Duration {
	if p.RequestTTL == 0 {
		return 72 * time.Hour
	}
	return p.RequestTTL
}

// duration resolves a requested grant duration under the policy.
func (p Policy) duration(d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return p.DefaultDuration, nil
	case d == Unlimited:
		if !p.AllowUnlimited {
			return 0, &policyRefusal{"Duration: unlimited grants are not allowed by the policy"}
		}
	case d < 0:
		return 0, fmt.Errorf("%w: Duration must not be negative", ErrInvalidInput)
	case d < time.Microsecond:
		return 0, fmt.Errorf("%w: Duration must be at least a microsecond", ErrInvalidInput)
	case d > p.MaxDuration:
		return 0, fmt.Errorf("%w: Duration %s exceeds the policy maximum %s", ErrInvalidInput, d, p.MaxDuration)
	}
	if len(p.Presets) > 0 && !p.hasPreset(d) {
		return 0, fmt.Errorf("%w: Duration %s is not one of the policy presets", ErrInvalidInput, durationText(d))
	}
	return d, nil
}

// durationText is d for a message: "unlimited" for Unlimited, which
// Duration.String would print as 292 years.
func durationText(d time.Duration) string {
	if d == Unlimited {
		return "unlimited"
	}
	return d.String()
}

// requireTexts enforces RequireReason / RequireTicketRef.
func (p Policy) requireTexts(reason, ticket string) error {
	if p.RequireReason && blank(reason) {
		return fmt.Errorf("%w: Reason is required by the policy", ErrInvalidInput)
	}
	if p.RequireTicketRef && blank(ticket) {
		return fmt.Errorf("%w: TicketRef is required by the policy", ErrInvalidInput)
	}
	return nil
}

// checkEnd validates a new end for a grant starting at starts.
func (p Policy) checkEnd(starts, end, now time.Time) error {
	if end.IsZero() {
		if !p.AllowUnlimited {
			return &policyRefusal{"expiresAt: unlimited grants are not allowed by the policy"}
		}
		return nil
	}
	if !end.After(now) {
		return fmt.Errorf("%w: expiresAt must be in the future", ErrInvalidInput)
	}
	if !end.After(starts) {
		return fmt.Errorf("%w: expiresAt must be after StartsAt", ErrInvalidInput)
	}
	if end.After(maxTime) {
		return fmt.Errorf("%w: expiresAt is after %s", ErrInvalidInput, maxTime.Format(time.RFC3339))
	}
	from := now
	if starts.After(now) {
		from = starts
	}
	if end.Sub(from) > p.MaxDuration {
		return fmt.Errorf("%w: expiresAt is more than the policy maximum %s away", ErrInvalidInput, p.MaxDuration)
	}
	return nil
}

// policyRefusal is a request the policy forbids, as opposed to malformed
// input: it wraps ErrForbidden and the Manager audits it as action.refused,
// like an Authorizer's refusal (see Manager.auditPolicyRefusal).
type policyRefusal struct{ why string }

func (e *policyRefusal) Error() string { return ErrForbidden.Error() + ": " + e.why }
func (e *policyRefusal) Unwrap() error { return ErrForbidden }
