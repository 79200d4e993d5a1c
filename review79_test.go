package supportaccess_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// TestReview79PolicyUnlimitedDefaultNamed: 11bc39e introduced durationText
// so that a message names Unlimited "unlimited" ("which Duration.String
// would print as 292 years"), after e65197b promised that Grant's presets
// message "names it 'unlimited' instead of printing 292 years". The
// sibling presets message of Policy.Validate (policy.go:103) still prints
// the raw duration: a policy that allows unlimited grants and defaults to
// them, with presets that leave Unlimited out, is refused with
// "DefaultDuration 2562047h47m16.854775807s is not one of the Presets".
// Expected: "DefaultDuration unlimited is not one of the Presets" (or
// "Unlimited", as the message two checks above says).
func TestReview79PolicyUnlimitedDefaultNamed(t *testing.T) {
	p := sa.DefaultPolicy()
	p.AllowUnlimited = true
	p.DefaultDuration = sa.Unlimited
	p.MaxDuration = 7 * 24 * time.Hour
	p.Presets = []sa.Preset{{Label: "24 hours", Duration: 24 * time.Hour}}
	err := p.Validate()
	require.ErrorIs(t, err, sa.ErrInvalidInput)
	require.ErrorContains(t, err, "is not one of the Presets")
	require.NotContains(t, err.Error(), "2562047h", "Unlimited printed as 292 years")
}
