// Package stored brings the times of the grants and access requests a
// store keeps to the canonical form (canon.Time: UTC, microseconds), the
// same for memstore and sqlstore, so that a write returns what a read does.
package stored

import (
	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/internal/canon"
)

// Grant brings g's times to the canonical form, in place.
func Grant(g *sa.Grant) { canon.Times(&g.CreatedAt, &g.StartsAt, &g.ExpiresAt, &g.RevokedAt) }

// Request brings r's times to the canonical form, in place.
func Request(r *sa.AccessRequest) { canon.Times(&r.StartsAt, &r.CreatedAt, &r.ExpiresAt, &r.DecidedAt) }
