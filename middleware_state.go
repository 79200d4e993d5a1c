package supportaccess

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// reqState is the middleware's record of one admitted impersonated request.
type reqState struct {
	g      *guard
	m      *Manager
	r      *http.Request // as passed to the handler
	sess   Session
	grant  Grant // admitted the request; never changed
	start  time.Time
	line   requestLine // as audited
	cancel context.CancelCauseFunc

	ended atomic.Bool
	// out is the writer the handler's response goes to (that of the
	// supportWriter), when a cut response is aborted (see serveSupport);
	// streaming: the handler's response went out, the handler has not
	// returned (never set again once it has: a response the middleware
	// commits afterwards is complete) and has not taken the connection
	// (Hijack). An end then also sets a past write deadline on out, so
	// that a handler blocked in a write to a slow client (a large export
	// in one Write) is unblocked at once instead of sending the rest.
	// outMu makes setting the deadline and clearing streaming exclusive:
	// once streaming is cleared, no deadline is being set or will be (on
	// HTTP/2, setting one after the handler returned would dereference a
	// released stream).
	out       http.ResponseWriter
	outMu     sync.Mutex
	streaming bool
	// audited: the response's record is made or under way — the
	// support.request event took the request's scopes, or a refusal became
	// the response — so a scope taken from now on gets a support.scope
	// event of its own (auditLateScope).
	audited   atomic.Bool
	recheck   atomic.Bool  // the watcher should check the grants now
	checkedAt atomic.Int64 // real time (UnixNano) of the last check
	okAt      atomic.Int64 // real time (UnixNano) of the last check that answered
	// grantGone: the Manager ended (revoked, or recorded the expiry of) a
	// grant the request uses; a re-check that cannot answer then ends it.
	grantGone atomic.Bool

	mu        sync.Mutex
	needs     []need // the scopes the request uses and the grants allowing them
	timer     *time.Timer
	firstPoll time.Time // real time the watcher must start polling st; zero once done
	// timerPolls: timer is set for firstPoll rather than the grant's end.
	timerPolls bool
	// admitSeq, admitMove: the end log's and the watcher's move numbers
	// once the watcher follows the request (before that, before its
	// admission Check); an answer a poll cached before them is not the
	// request's to use (see watcher.recheck).
	admitSeq, admitMove atomic.Uint64
	// endedGrants: the grants of the request (the admitting one, those of
	// its needs) this Manager ended while it ran; never relied on again
	// without a Check (see usesScope, admittedEnd).
	endedGrants map[uuid.UUID]bool
	// used: the grants establish let a part of the request run on (see
	// markUsed); the event names them even when a later check replaced
	// them in needs.
	used      []need // scope and grant only
	needTok   uint64 // numbers the needs setNeed sets
	left      bool
	endReason string
}

// need is a scope a request uses and the grant that allows it. pending:
// taken after the response's record was made, its support.scope event is
// not recorded yet (see auditLateScope): not relied on until it is.
type need struct {
	scope   Scope
	id      uuid.UUID
	expires time.Time
	pending bool
	tok     uint64 // tells apart the needs setNeed sets (restoreNeed, confirmNeed)
}

// setNeed records that the request uses scope s, allowed by g (in place
// of the grant an earlier check found for s, which no longer holds), with
// g's end as an Extend on this Manager moved it after move — the number
// the caller read before the Check that found g (see moveEnd). It returns
// the need it set.
func (st *reqState) setNeed(s Scope, g Grant, move uint64) need {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.needTok++
	n := need{scope: s, id: g.ID, expires: st.g.watch.moved.earliestEnd(g.ID, g.ExpiresAt, move), pending: st.audited.Load(), tok: st.needTok}
	if i := slices.IndexFunc(st.needs, func(x need) bool { return x.scope == s }); i >= 0 {
		st.needs[i] = n
	} else {
		st.needs = append(st.needs, n)
	}
	st.armLocked(0)
	return n
}

// usesScope reports whether the request uses scope s already (ScopeWrite
// covers ScopeRead): its checks established that s is allowed, by a grant
// this Manager has not ended since and whose end has not passed.
func (st *reqState) usesScope(s Scope) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.m.now()
	for _, n := range st.needs {
		if n.pending || st.endedGrants[n.id] || pastEnd(n.expires, now) {
			continue
		}
		if hasScope([]Scope{n.scope}, s) {
			return true
		}
	}
	return false
}

// confirmNeed marks the need establish set (mine) as audited (its
// support.scope event is recorded), if it is still there.
func (st *reqState) confirmNeed(mine need) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if i := slices.IndexFunc(st.needs, func(x need) bool { return x.tok == mine.tok }); i >= 0 {
		st.needs[i].pending = false
	}
}

// endsBefore reports whether grant end a (zero: unlimited) comes before b.
func endsBefore(a, b time.Time) bool {
	return !a.IsZero() && (b.IsZero() || a.Before(b))
}

// earlierEnd returns the earlier of two grant ends (zero: unlimited).
func earlierEnd(a, b time.Time) time.Time {
	if endsBefore(b, a) {
		return b
	}
	return a
}

// grantEnded records that this Manager ended grant id (the watcher's
// listener, or a Check that found it while it ended): if the request was
// admitted by it or uses it, it is not relied on again without a Check and
// the request is to be checked again at once. It reports whether the
// request uses it.
func (st *reqState) grantEnded(id uuid.UUID) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	used := slices.ContainsFunc(st.needs, func(n need) bool { return n.id == id })
	if !used && id != st.grant.ID {
		return false
	}
	if st.endedGrants == nil {
		st.endedGrants = make(map[uuid.UUID]bool)
	}
	st.endedGrants[id] = true
	if used {
		st.grantGone.Store(true)
		st.recheck.Store(true)
	}
	return used
}

// grantMayHaveEnded records that grant id, which the request uses, may
// have ended on this Manager (more grants ended while a Check answered
// with it than the end log keeps): it is not relied on again without a
// Check (endedGrants), and the request is re-checked at once — but as one
// whose grant did not end (no grantGone): a re-check without an answer
// ends nothing by itself. It reports whether the request uses it.
func (st *reqState) grantMayHaveEnded(id uuid.UUID) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !slices.ContainsFunc(st.needs, func(n need) bool { return n.id == id }) && id != st.grant.ID {
		return false
	}
	if st.endedGrants == nil {
		st.endedGrants = make(map[uuid.UUID]bool)
	}
	st.endedGrants[id] = true
	st.recheck.Store(true)
	return true
}

// grantWasEnded reports whether this Manager ended grant id while the
// request used it (see grantEnded).
func (st *reqState) grantWasEnded(id uuid.UUID) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.endedGrants[id]
}

// establish makes sure the admitted request st may also use scope s (for
// a RequireScope route, or a request g, nested, sees again): a scope the
// request uses already (kept current by the watcher), the grant that
// admitted the request if it allows s and is, as far as this Manager
// knows, still the one in force (admittedEnd), or else a grant a Check
// finds now; the request then uses s (its event lists s; the watcher
// covers that grant). When no grant allows s, or the request's access
// ended already, g refuses with its denied handler (see refuse) and
// establish returns false.
func (st *reqState) establish(g *guard, w http.ResponseWriter, r *http.Request, s Scope) bool {
	if st.ended.Load() {
		// Ended by the watcher (a revocation elsewhere, a failed
		// re-check): nothing of the request runs on, whatever its
		// grants allowed before.
		st.refuseEnded(g, w, r, s)
		return false
	}
	if st.usesScope(s) {
		return true
	}
	watch := st.g.watch
	// The request's need for s before this call: put back if a need this
	// call set is not used after all (its grant ended, then a refusal).
	orig, had := st.needFor(s)
	set, mine := false, need{}
	refuse := func(status int, code, reason string, err error) bool {
		if set {
			st.restoreNeed(mine, orig, had)
		}
		if st.ended.Load() {
			st.refuseEnded(g, w, r, s)
		} else {
			st.refuse(g, w, r, s, status, code, reason, err)
		}
		return false
	}
	refuseErr := func(err error) bool {
		status, code, reason := g.checkRefusal(r, st.sess, s, err)
		return refuse(status, code, reason, err)
	}
	// take lets the part run on the need just set: once its support.scope
	// event, if one is due, is recorded.
	take := func(id uuid.UUID) bool {
		if err := st.auditLateScope(s, id); err != nil {
			return refuseErr(err)
		}
		st.confirmNeed(mine)
		st.markUsed(s, id)
		return true
	}
	if gr := st.grant; gr.Allows(s) {
		move := watch.moves.Load()
		if end, ok := st.admittedEnd(); ok {
			gr.ExpiresAt = end
			mine, set = st.setNeed(s, gr, move), true
			return take(gr.ID)
		}
	}
	for range establishAttempts {
		// The end and move numbers before the Check: an end or a move
		// after them, before setNeed makes the need visible to the
		// listener, is in the end log or the moveLog.
		seq, move := watch.ends.now(), watch.moves.Load()
		gr, err := st.m.Check(r.Context(), st.sess.TenantID, st.sess.Principal, s)
		if st.ended.Load() {
			// The request ended while the Check ran (err may be the
			// cancellation of its context): a session end, not an outage.
			return refuse(0, "", "", nil)
		}
		if err != nil {
			return refuseErr(err)
		}
		// A grant this Manager ended while the Check answered: ask again
		// (the end has committed); nothing is recorded for the answer.
		// When the end log cannot tell (a Check longer than endLogAge),
		// the answer is used, and checked again at once (noteEnded).
		if ended, _ := watch.ends.since(seq, gr.ID); ended {
			continue
		}
		mine = st.setNeed(s, gr, move)
		set = true
		if ended, unsure := watch.ends.since(seq, gr.ID); ended || unsure {
			watch.noteEnded(st, seq, gr.ID)
			watch.poke()
			if ended {
				// Ended before setNeed made the need visible to the
				// listener: not relied on again without a Check; asked
				// again.
				continue
			}
		}
		if st.ended.Load() {
			return refuse(0, "", "", nil)
		}
		return take(gr.ID)
	}
	// Every grant found ended as it was found (grants ending one after
	// the other, RevokeTenant say): refused as an outage, not run on a
	// grant known to have ended.
	return refuseErr(errGrantsKeptEnding(fmt.Sprintf("scope %q", string(s))))
}

// needFor returns the request's need for scope s, if it has one.
func (st *reqState) needFor(s Scope) (need, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if i := slices.IndexFunc(st.needs, func(n need) bool { return n.scope == s }); i >= 0 {
		return st.needs[i], true
	}
	return need{}, false
}

// restoreNeed puts the request's need for mine.scope back to n (had), or
// removes it (!had): a need establish set (mine) whose grant ended before
// it was used. A need changed since (by the watcher, or another
// establish) is left as it is.
func (st *reqState) restoreNeed(mine, n need, had bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	i := slices.IndexFunc(st.needs, func(x need) bool { return x.scope == mine.scope })
	switch {
	case i < 0 || st.needs[i].tok != mine.tok:
	case had:
		st.needs[i] = n
	default:
		st.needs = slices.Delete(st.needs, i, i+1)
	}
	st.armLocked(0)
}

// auditLateScope records a support.scope event for scope s, allowed by
// grant id, when the request's support.request event was recorded already
// (its response had started): that event does not list s. An error means
// the scope may not be used (fail closed, as for the request).
func (st *reqState) auditLateScope(s Scope, id uuid.UUID) error {
	if !st.audited.Load() {
		return nil // listed in the support.request event, still to come
	}
	ctx, cancel := auditContext(st.r.Context())
	defer cancel()
	return st.recordScope(ctx, st.m.now(), s, id)
}

// recordScope records a support.scope event, at time at, for scope s
// allowed by grant id.
func (st *reqState) recordScope(ctx context.Context, at time.Time, s Scope, id uuid.UUID) error {
	ev := requestEvent(st.m, EventSupportScope, at, st.sess, id, st.servedLine(), string(s), "")
	if err := st.m.record(ctx, ev); err != nil {
		return fmt.Errorf("supportaccess: middleware: audit of scope %q: %w", string(s), err)
	}
	return nil
}

// establishAttempts bounds the Checks of one establish whose answers'
// grants end as they are found.
const establishAttempts = 3

// refuseEnded refuses a part of the request st with the session-ended
// denial (the watcher ended the request).
func (st *reqState) refuseEnded(g *guard, w http.ResponseWriter, r *http.Request, s Scope) {
	reason := st.reason()
	st.refuse(g, w, r, s, http.StatusForbidden, DeniedSessionEnded, "session ended: "+reason, endCause(reason))
}

// markUsed records that a part of the request ran on grant id with scope
// s (see used).
func (st *reqState) markUsed(s Scope, id uuid.UUID) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.markUsedLocked(s, id)
}

// markUsedLocked is markUsed with st.mu held.
func (st *reqState) markUsedLocked(s Scope, id uuid.UUID) {
	if u := (need{scope: s, id: id}); !slices.Contains(st.used, u) {
		st.used = append(st.used, u)
	}
}

// admittedEnd reports whether the grant that admitted st may be relied
// on without asking the store again, and its end: this Manager has not
// ended it (endedGrants), the watcher's re-checks still find it for the
// request's own scope (not another grant that took over after a
// revocation elsewhere), and its end — as moved by Extend on this Manager
// or found by a re-check — has not passed by the Manager's clock.
func (st *reqState) admittedEnd() (time.Time, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.endedGrants[st.grant.ID] || len(st.needs) == 0 || st.needs[0].id != st.grant.ID {
		return time.Time{}, false
	}
	end := st.needs[0].expires
	return end, !pastEnd(end, st.m.now())
}

// moveEnd records that grant id, of the request's tenant, now ends at end
// (Extend on this Manager): the needs on it and the request's expiry timer
// follow. (A re-check or RequireScope Check in flight, which may adopt the
// grant after this, finds the move in the watcher's moveLog.)
func (st *reqState) moveEnd(id uuid.UUID, end time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	hit := false
	for i := range st.needs {
		if st.needs[i].id == id {
			st.needs[i].expires = end
			hit = true
		}
	}
	if hit {
		st.armLocked(0)
	}
}

// withCurrentEnd is need n, taken from a copy of st.needs, with the end st
// now keeps for its grant: moveEnd has set it since if an Extend on this
// Manager moved it. It tells an expiry from a revocation when a Check
// refuses n.
func (st *reqState) withCurrentEnd(n need) need {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, x := range st.needs {
		if x.id == n.id {
			n.expires = x.expires
			break
		}
	}
	return n
}

// maxUnwrap bounds the walk down a chain of wrapping ResponseWriters.
const maxUnwrap = 32

// writerIn returns st's audited writer if w is it or wraps it (through
// Unwrap, as http.ResponseController does), and nil otherwise: a
// recorder, or a wrapper that does not tell what it wraps.
func (st *reqState) writerIn(w http.ResponseWriter) *supportWriter {
	return findSupportWriter(w, func(sw *supportWriter) bool { return sw.st == st })
}

// refuse writes g's refusal of a part of the admitted request st (a
// RequireScope route, or a request a middleware of the same Manager sees
// again) and audits it as access.denied. If w is or wraps the audited
// writer and the response is not committed yet, the refusal is the
// response: it is written straight to the writer underneath (so that
// nothing a wrapper in between buffered goes out with it), with only the
// header fields set before the handler ran, and is not a support.request;
// the handler's further writes fail (errRefused): they would reach support
// unaudited. A refusal written anywhere else (a recorder rendering an
// optional part of a page) leaves the audit of the response as it is.
func (st *reqState) refuse(g *guard, w http.ResponseWriter, r *http.Request, scope Scope, status int, code, reason string, err error) {
	var taken []need
	sw := st.writerIn(w)
	if sw != nil && sw.committed && (sw.sent || sw.hijacked) {
		// The response is under way (a panel of a streaming page): the
		// part refused is left out of it. The denial is recorded, and
		// nothing is written into the response: neither a second status
		// nor a denial's text in the middle of the page.
		g.recordDenial(r, st.sess, st.grant.ID, string(scope), st.m.now(), status, reason, err)
		return
	}
	if sw != nil && !sw.committed {
		sw.resetHeaders()
		sw.committed = true
		sw.blocked = errRefused
		// No support.request will list the scopes parts of the request
		// took so far, nor later ones: each gets a support.scope event.
		taken = st.recordedElsewhere(scope)
		w = sw.w
	}
	g.deny(w, r, st.sess, st.grant.ID, scope, st.m.now(), status, code, reason, err)
	if len(taken) == 0 {
		return
	}
	ctx, cancel := auditContext(st.r.Context())
	defer cancel()
	for _, n := range taken {
		// Dated like the support.request event they stand in for: the
		// request's start (the scopes were taken while it ran, some on
		// grants that may have ended since).
		if err := st.recordScope(ctx, st.start, n.scope, n.id); err != nil {
			// A scope in no record may not be used on: the request ends,
			// as when its support.request event cannot be recorded.
			g.cfg.onError(r.Context(), err)
			st.end(endReasonAuditFailed)
		}
	}
}

// recordedElsewhere marks the request as one whose response's record is
// made (audited) without a support.request event, and returns the scopes
// and grants such an event would have listed that the access.denied event
// of the refusal does not: every need beyond the request's own scope that
// is not waiting for a support.scope event of its own, every grant a part
// of the request ran on (used) that a later check replaced, and the
// request's own scope when it is write or held by another grant than the
// admitting one, unless it is the scope refused (refused) on the
// admitting grant — each scope and grant once.
func (st *reqState) recordedElsewhere(refused Scope) []need {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.audited.Swap(true) {
		return nil
	}
	var taken []need
	add := func(n need) {
		n = need{scope: n.scope, id: n.id}
		if !slices.Contains(taken, n) {
			taken = append(taken, n)
		}
	}
	// The scopes parts of the request took first, then its own.
	for _, n := range st.needs[min(1, len(st.needs)):] {
		if !n.pending {
			add(n)
		}
	}
	for _, u := range st.used {
		add(u)
	}
	// The request's own scope, when the access.denied event does not say
	// it already: write (a change may have been made before the refusal),
	// or a grant other than the admitting one, which that event names —
	// unless it is the very scope refused on the admitting grant.
	if len(st.needs) > 0 {
		n := st.needs[0]
		refusedOwn := n.scope == refused && n.id == st.grant.ID
		if !n.pending && !refusedOwn && !st.admittedRead(n) {
			add(n)
		}
	}
	return taken
}

// admittedRead reports whether n, the request's own scope, is read on the
// admitting grant: what every event of the request (support.request,
// access.denied) names already, so it needs no mention of its own.
func (st *reqState) admittedRead(n need) bool {
	return n.scope == ScopeRead && n.id == st.grant.ID
}

// errGrantsKeptEnding is the error of Checks (of what: a scope, or a
// change's scopes) whose grants ended on this Manager each time one was
// found (establish, holds); it wraps ErrConflict: asked again later, the
// answer may be final.
func errGrantsKeptEnding(what string) error {
	return fmt.Errorf("supportaccess: the grants found for %s kept ending while they were checked: %w", what, ErrConflict)
}

// reason returns why the request's access ended ("" while it holds).
func (st *reqState) reason() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.endReason
}

// end ends the request's support access (once): writes fail from now on
// and the context is cancelled with the reason's cause.
func (st *reqState) end(reason string) {
	st.mu.Lock()
	if st.endReason != "" {
		st.mu.Unlock()
		return
	}
	st.endReason = reason
	st.ended.Store(true)
	if st.timer != nil {
		st.timer.Stop()
	}
	st.mu.Unlock()
	st.cancel(endCause(reason))
	st.cutWrites()
}

// cutWrites sets a past write deadline on the response while it streams.
// It runs after ended is set: a handler that returns after it sees ended
// and aborts the response (serveSupport clears streaming before it judges
// the cut), so the deadline never outlives the response on a connection
// kept alive. Writers that cannot set one (a recorder) are left to the
// next write's refusal.
func (st *reqState) cutWrites() {
	st.outMu.Lock()
	defer st.outMu.Unlock()
	if st.streaming {
		_ = http.NewResponseController(st.out).SetWriteDeadline(time.Unix(1, 0))
	}
}

// setStreaming sets streaming (see out); clearing it waits for a
// cutWrites under way.
func (st *reqState) setStreaming(on bool) {
	st.outMu.Lock()
	st.streaming = on
	st.outMu.Unlock()
}

// held is what holds found: the grant that allows the request's own scope,
// the scopes the request uses (comma-separated), the other grants that
// allow some of them (elevated_grant_ids), as in the support.request
// event, and the time at which they all held.
type held struct {
	grant            uuid.UUID
	scopes, elevated string
	at               time.Time
}

// holds checks with the store, now, every scope the request uses, and
// write, which a change needs (RecordChange), when the request does not use
// it. A refusal of the request's scopes ends the request (revoked, or
// expired when that grant's end has passed by the Manager's clock) and
// returns its ErrSessionEnded cause, and so does a refusal of write that
// finds read gone too (readLost); a refusal of write alone, read still
// held, refuses the change (ErrScopeNotGranted, audited as access.denied)
// and ends nothing; a store failure is returned as it is and ends nothing.
// A change must not be made on a grant whose revocation has returned to
// the customer or whose end has passed: when a grant the pass found ended
// on this Manager after the pass began (or the end log cannot tell), or
// reached its end by the Manager's clock, before the pass was through or
// before a refusal it met is acted on, the whole pass is made again, so
// that a scope only that grant allowed is refused, and for the reason it
// is; grants that keep ending are errGrantsKeptEnding.
func (st *reqState) holds(ctx context.Context) (held, error) {
	needs := func() []need {
		st.mu.Lock()
		defer st.mu.Unlock()
		return append([]need(nil), st.needs...)
	}
	// A change needs write, also in a request whose method needed only
	// read (a WebSocket console, a GraphQL query over GET).
	writeToo := !slices.ContainsFunc(needs(), func(n need) bool { return n.scope == ScopeWrite })
	for range establishAttempts {
		// The needs as they are now: a pass made again follows the ends
		// an Extend on this Manager moved meanwhile (moveEnd).
		h, err := st.holdsPass(ctx, needs(), writeToo)
		if err != errPassStale {
			return h, err
		}
	}
	return held{}, errGrantsKeptEnding("the change's scopes and write")
}

// errPassStale is holdsPass' answer when a grant it found ended before the
// pass was through: the pass is made again.
var errPassStale = errors.New("supportaccess: a grant found ended during the check")

// holdsPass is one pass of holds' Checks: the request's needs, then, with
// writeToo, write — after the request's own scopes, whose refusal ends the
// request; write is not one of them, and its refusal alone refuses the
// change only. It returns what it found, or errPassStale when a grant it
// found ended meanwhile (see holds).
func (st *reqState) holdsPass(ctx context.Context, needs []need, writeToo bool) (held, error) {
	seq, move := st.g.watch.ends.now(), st.g.watch.moves.Load()
	h := held{grant: st.grant.ID}
	var scopes, others []string
	var found []Grant
	// stale reports whether a grant found so far has ended by now: this
	// Manager ended it (or cannot tell), or its end — as an Extend on this
	// Manager may have moved it since the pass began — has passed.
	stale := func() bool {
		now := st.m.now()
		return slices.ContainsFunc(found, func(g Grant) bool {
			if ended, unsure := st.g.watch.ends.since(seq, g.ID); ended || unsure {
				return true
			}
			return pastEnd(st.g.watch.moved.earliestEnd(g.ID, g.ExpiresAt, move), now)
		})
	}
	take := func(i int, s Scope, g Grant) {
		switch {
		case i == 0:
			h.grant = g.ID
		case g.ID != h.grant && !slices.Contains(others, g.ID.String()):
			others = append(others, g.ID.String())
		}
		found = append(found, g)
		scopes = append(scopes, string(s))
	}
	// A refusal is acted on only while what the pass found still holds,
	// also after readLost's own Check.
	for i, n := range needs {
		g, err := st.m.Check(ctx, st.sess.TenantID, st.sess.Principal, n.scope)
		switch {
		case isDenial(err):
			if stale() {
				return held{}, errPassStale
			}
			// needs[0], read or write, was just allowed; a refused write
			// (needs[0]) leaves read unless read is refused too.
			readLeft := i > 0 || n.scope != ScopeRead && !st.readLost(ctx, err)
			if readLeft && stale() {
				return held{}, errPassStale
			}
			st.end(st.m.endedAs(ctx, st.withCurrentEnd(n), readLeft, err, nil, nil))
			return held{}, endCause(st.reason())
		case err != nil:
			return held{}, err
		}
		take(i, n.scope, g)
	}
	if writeToo {
		g, err := st.m.Check(ctx, st.sess.TenantID, st.sess.Principal, ScopeWrite)
		switch {
		case st.ended.Load(): // the watcher ended it meanwhile
			return held{}, endCause(st.reason())
		case isDenial(err):
			if stale() {
				return held{}, errPassStale
			}
			if len(needs) > 0 && st.readLost(ctx, err) {
				// No grant allows the request's own scope any more
				// (revoked or expired since its scopes were checked): its
				// end, not a refused change.
				st.end(st.m.endedAs(ctx, st.withCurrentEnd(needs[0]), false, err, nil, nil))
				return held{}, endCause(st.reason())
			}
			if stale() {
				return held{}, errPassStale
			}
			st.g.recordDenial(st.r, st.sess, st.grant.ID, string(ScopeWrite), st.m.now(), http.StatusForbidden, clip("change refused: "+errorText(err), MaxReasonLen), err)
			return held{}, err
		case err != nil:
			return held{}, err
		}
		take(len(needs), ScopeWrite, g)
	}
	if st.ended.Load() { // the watcher ended it meanwhile
		return held{}, endCause(st.reason())
	}
	h.at = st.m.now()
	if stale() {
		return held{}, errPassStale
	}
	h.scopes, h.elevated = strings.Join(scopes, ","), strings.Join(others, ",")
	return h, nil
}

// readLost reports whether the denial err of write means read is gone
// too: no grant covers the session (ErrNoActiveGrant), or a Check of read
// now refuses it (a grant of the session without read may be left). Only
// a denial of read ends the session: a failure of that Check is reported
// and counts as not lost.
func (st *reqState) readLost(ctx context.Context, err error) bool {
	if errors.Is(err, ErrNoActiveGrant) {
		return true
	}
	_, rerr := st.m.Check(ctx, st.sess.TenantID, st.sess.Principal, ScopeRead)
	if rerr != nil && !isDenial(rerr) {
		st.g.cfg.onError(ctx, fmt.Errorf("supportaccess: middleware: check of read for a refused write: %w", rerr))
	}
	return isDenial(rerr)
}

// audit records the support.request event with the final status.
func (st *reqState) audit(status int, reason string) error {
	st.mu.Lock()
	// Under the lock that setNeed takes: a scope added after this copy of
	// the needs sees audited and is recorded on its own.
	st.audited.Store(true)
	var scopes []string
	var others []string
	other := func(id uuid.UUID) {
		if id == st.grant.ID {
			return
		}
		if s := id.String(); !slices.Contains(others, s) {
			others = append(others, s)
		}
	}
	for _, n := range st.needs {
		scopes = append(scopes, string(n.scope))
		other(n.id)
	}
	for _, u := range st.used {
		id := u.id
		other(id)
	}
	st.mu.Unlock()
	ev := requestEvent(st.m, EventSupportRequest, st.start, st.sess, st.grant.ID, st.servedLine(), strings.Join(scopes, ","), reason)
	ev.Attrs[AttrStatus] = statusText(status)
	ev.Attrs[AttrDurationMS] = fmt.Sprint(st.m.now().Sub(st.start).Milliseconds())
	if len(others) > 0 {
		ev.Attrs[AttrElevatedGrantIDs] = strings.Join(others, ",")
	}
	ctx, cancel := auditContext(st.r.Context())
	defer cancel()
	return st.m.record(ctx, ev)
}
