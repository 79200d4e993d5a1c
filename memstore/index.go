package memstore

import (
	"math"
	"slices"
	"strings"
	"time"

	sa "github.com/supportaccess/supportaccess"
)

// The Check index. Each tenant's grants are summarised in one contiguous
// slice of small records (Store.byTenant, in creation order), so FindActiveGrant reads a few cache lines per
// tenant and touches a grant itself only to check a named grantee or a
// host-defined scope and to copy the grant it returns. The records follow
// the grants: CreateGrant appends one, every change of a grant rewrites its
// record (entry.pos says where), and nothing is ever removed.

// checkRec is the part of a grant Check decides on.
type checkRec struct {
	start, end int64 // Unix microseconds; end is math.MaxInt64 when unlimited
	flags      recFlags
	e          *entry
}

type recFlags uint8

const (
	recRevoked recFlags = 1 << iota
	recOpen             // no Grantees: any support principal
	recRead             // Scopes allow ScopeRead (read or write listed)
	recWrite            // Scopes list ScopeWrite
	recOther            // Scopes list a host-defined scope
	// recExact: a time is not a whole microsecond (or out of the Unix
	// microsecond range), so the window is decided on the time.Time values.
	recExact
)

// newCheckRec summarises e's grant.
func newCheckRec(e *entry) checkRec {
	g := &e.g
	r := checkRec{end: math.MaxInt64, e: e}
	var exact bool
	r.start, exact = micros(g.StartsAt)
	if !g.ExpiresAt.IsZero() {
		var endExact bool
		r.end, endExact = micros(g.ExpiresAt)
		exact = exact && endExact
	}
	if !exact {
		r.flags |= recExact
	}
	if !g.RevokedAt.IsZero() {
		r.flags |= recRevoked
	}
	if len(g.Grantees) == 0 {
		r.flags |= recOpen
	}
	for _, s := range g.Scopes {
		switch s {
		case sa.ScopeWrite:
			r.flags |= recWrite | recRead
		case sa.ScopeRead:
			r.flags |= recRead
		default:
			r.flags |= recOther
		}
	}
	return r
}

// maxMicroSec bounds the Unix seconds whose microseconds fit an int64
// with room to spare (about ±146 000 years); times beyond are clamped and
// marked inexact.
const maxMicroSec = math.MaxInt64 / 2 / 1_000_000

// micros returns t in Unix microseconds (clamped to ±maxMicroSec seconds)
// and whether that is t exactly: a whole microsecond within the range.
func micros(t time.Time) (us int64, exact bool) {
	sec := t.Unix()
	switch {
	case sec <= -maxMicroSec:
		return -maxMicroSec * 1_000_000, false
	case sec >= maxMicroSec:
		return maxMicroSec * 1_000_000, false
	}
	ns := int64(t.Nanosecond())
	return sec*1_000_000 + ns/1000, ns%1000 == 0
}

// index adds a new entry to its tenant (and its transitions to the due
// queues); s.mu must be held for writing. All of a tenant's grants and its
// key in s.byTenant share one copy of the tenant ID, so the map's key
// comparison and Check's comparison of the returned grant's TenantID
// (supportaccess.Manager's own check of the store) read the same bytes.
func (s *Store) index(e *entry) {
	recs, ok := s.byTenant[e.g.TenantID]
	if ok {
		e.g.TenantID = recs[0].e.g.TenantID
	} else {
		e.g.TenantID = strings.Clone(e.g.TenantID)
	}
	e.pos = len(recs)
	s.byTenant[e.g.TenantID] = append(recs, newCheckRec(e))
	s.schedule(e)
}

// reindex refreshes the record (and the due times) of an entry whose grant
// changed; s.mu must be held for writing.
func (s *Store) reindex(e *entry) {
	s.byTenant[e.g.TenantID][e.pos] = newCheckRec(e)
	s.schedule(e)
}

// selectActive returns the entry Check returns for principal and scope at
// now among a tenant's records, with exactly the rules of sa.GrantSelector (active,
// covering the principal, allowing the scope; the latest expiry wins, then
// the earliest creation, then the smallest ID), or GrantSelector's
// ErrScopeNotGranted / ErrNoActiveGrant. s.mu must be held.
func selectActive(recs []checkRec, principal string, scope sa.Scope, now time.Time) (*entry, error) {
	nowUS, exactNow := micros(now)
	var want recFlags
	switch scope {
	case sa.ScopeRead:
		want = recRead
	case sa.ScopeWrite:
		want = recWrite
	default:
		want = recOther
	}
	var best *checkRec
	covered := false
	for i := range recs {
		r := &recs[i]
		if r.flags&recRevoked != 0 {
			continue
		}
		if exactNow && r.flags&recExact == 0 {
			if nowUS < r.start || nowUS >= r.end {
				continue
			}
		} else if r.e.g.Status(now) != sa.StatusActive {
			continue // the grant's own window rule, on its time.Time values
		}
		if r.flags&recOpen == 0 && !slices.Contains(r.e.g.Grantees, principal) {
			continue
		}
		covered = true
		if r.flags&want == 0 || (want == recOther && !slices.Contains(r.e.g.Scopes, scope)) {
			continue
		}
		if best == nil || better(r, best, principal, scope, now) {
			best = r
		}
	}
	switch {
	case best != nil:
		return best.e, nil
	case covered:
		return nil, sa.ErrScopeNotGranted
	default:
		return nil, sa.ErrNoActiveGrant
	}
}

// better reports whether a should be chosen over b (both active, covering
// the principal and allowing the scope): the later end on the records,
// else — on equal ends, or times not whole microseconds — the choice of
// sa.GrantSelector itself, so the tie rules live in one place.
func better(a, b *checkRec, principal string, scope sa.Scope, now time.Time) bool {
	if (a.flags|b.flags)&recExact == 0 && a.end != b.end {
		return a.end > b.end // whole microseconds, unlimited as MaxInt64
	}
	sel := sa.GrantSelector{Principal: principal, Scope: scope, Now: now}
	sel.Offer(&b.e.g)
	sel.Offer(&a.e.g)
	best, err := sel.Result()
	return err == nil && best == &a.e.g
}
