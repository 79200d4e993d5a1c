package supportaccess

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/google/uuid"
)

// watcher ends in-flight impersonated requests whose support access ends.
// One watcher serves all the handlers of one Middleware call.
//
// Each request has one timer, at the earlier of its grant's end (by the
// Manager's clock) and half a poll interval after it started; when it
// fires, the request is flagged for a re-check and the watcher goroutine is
// woken, started if needed. Requests that finish sooner cost a timer and no
// goroutine. Once running, the goroutine also re-checks, every half
// interval, the requests whose last check is half an interval old, and the
// requests flagged by the Manager's end-of-grant listener; a revocation by
// another replica is thus noticed within one interval. The last request of
// a busy period stops the goroutine and waits for it: none outlives the
// requests. The listener is registered with the Manager on the first
// request; the Manager holds the watcher weakly (see listening).
type watcher struct {
	m        *Manager
	interval time.Duration
	onError  func(context.Context, error)
	wake     chan struct{} // capacity 1: "flagged requests are waiting"

	mu     sync.Mutex
	active map[*reqState]struct{}
	stop   context.CancelFunc // nil when no goroutine runs
	done   chan struct{}

	ends   endLog        // the grants the Manager ended (see endLog)
	moves  atomic.Uint64 // numbers the ends Extend on the Manager moved
	moved  moveLog       // the latest of those moves per grant, recent ones
	listen sync.Once     // registers grantChanged with the Manager

	pendMu  sync.Mutex
	pending map[checkKey]int // re-checks whose store calls are still out (see boundedCheck)
}

// listening makes sure the watcher hears of the grants the Manager ends
// and moves: called before the first impersonated request's Check, so
// that a middleware that only ever passes requests through registers
// nothing. The Manager holds the watcher weakly: a middleware the host no
// longer uses (no request of it in flight) can be collected, and its
// listener goes at the Manager's next grant change.
func (w *watcher) listening() {
	w.listen.Do(func() {
		wp := weak.Make(w)
		w.m.onGrantChange(func(g Grant, ended bool) bool {
			w := wp.Value()
			if w == nil {
				return false
			}
			w.grantChanged(g, ended)
			return true
		})
	})
}

func newWatcher(m *Manager, interval time.Duration, onError func(context.Context, error)) *watcher {
	w := &watcher{
		m:        m,
		interval: interval,
		onError:  onError,
		wake:     make(chan struct{}, 1),
		active:   make(map[*reqState]struct{}),
	}
	return w
}

// enter starts watching st (whose grants were just checked).
func (w *watcher) enter(st *reqState) {
	now := time.Now()
	st.checkedAt.Store(now.UnixNano())
	st.okAt.Store(now.UnixNano())
	w.mu.Lock()
	w.active[st] = struct{}{}
	w.mu.Unlock()
	st.mu.Lock()
	st.firstPoll = now.Add(w.interval / 2)
	st.armLocked(0)
	st.mu.Unlock()
}

// leave stops watching st; the last request of a busy period stops the
// goroutine, if one runs, and waits for it.
func (w *watcher) leave(st *reqState) {
	st.mu.Lock()
	if st.left { // already (finish after a panic)
		st.mu.Unlock()
		return
	}
	st.left = true
	if st.timer != nil {
		st.timer.Stop()
	}
	st.mu.Unlock()

	w.mu.Lock()
	delete(w.active, st)
	var done chan struct{}
	if len(w.active) == 0 && w.stop != nil {
		// Cancelled under mu: a goroutine that has not seen it yet finds it
		// when it takes mu, before it could look at a newer request.
		w.stop()
		done = w.done
		w.stop, w.done = nil, nil
	}
	w.mu.Unlock()
	if done != nil {
		<-done
	}
}

// poke asks the goroutine to check the flagged requests now, starting it
// if requests are in flight and none runs.
func (w *watcher) poke() {
	w.mu.Lock()
	if w.stop == nil && len(w.active) > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		w.stop, w.done = cancel, make(chan struct{})
		go w.run(ctx, w.done)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// grantChanged is the Manager's listener: requests using a grant that
// ended are checked again at once; those using a grant whose end moved
// are timed to its new end.
func (w *watcher) grantChanged(g Grant, ended bool) {
	if !ended {
		move := w.moves.Add(1)
		w.moved.add(g.ID, g.ExpiresAt, move)
		w.mu.Lock()
		for st := range w.active {
			if st.sess.TenantID == g.TenantID {
				st.moveEnd(g.ID, g.ExpiresAt)
			}
		}
		w.mu.Unlock()
		return
	}
	hit := false
	w.ends.add(g.ID)
	w.mu.Lock()
	for st := range w.active {
		if st.grantEnded(g.ID) {
			hit = true
		}
	}
	w.mu.Unlock()
	if hit {
		w.poke()
	}
}

// run is the watcher goroutine of one busy period.
// It returns once ctx is cancelled and every Check it started returned
// (see boundedCheck).
func (w *watcher) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	var checks sync.WaitGroup
	defer checks.Wait()
	t := time.NewTicker(max(w.interval/2, time.Millisecond))
	defer t.Stop()
	w.poll(ctx, false, &checks)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll(ctx, false, &checks)
		case <-w.wake:
			w.poll(ctx, true, &checks)
		}
	}
}

// boundedCheck is Check for a re-check, answered by cctx's deadline at the
// latest: the Check runs in a goroutine of its own (counted in checks), so
// that a store that does not honour its context (a driver stuck on a dead
// connection) cannot hold up the watcher — and with it the end of every
// request it watches — past the deadline. A late answer is dropped; run
// waits for such Checks before it returns. While maxPendingChecks Checks
// of key are still out (from earlier polls), no other is started for it
// unless urgent (the request's grant ended or passed its end: it ends
// unless the store says another grant keeps it): timedOut at once, so
// that a hung store is not sent one more call per poll — but calls stuck
// on dead connections do not keep a healthy store from being asked.
// timedOut reports that no answer came in time (a denial is an answer,
// also a late one).
func (w *watcher) boundedCheck(cctx context.Context, key checkKey, urgent bool, checks *sync.WaitGroup) (g Grant, timedOut bool, err error) {
	w.pendMu.Lock()
	if !urgent && w.pending[key] >= maxPendingChecks {
		w.pendMu.Unlock()
		return Grant{}, true, errCheckPending
	}
	if w.pending == nil {
		w.pending = make(map[checkKey]int)
	}
	w.pending[key]++
	w.pendMu.Unlock()
	type answer struct {
		g   Grant
		err error
	}
	ch := make(chan answer, 1)
	checks.Add(1)
	go func() {
		defer checks.Done()
		g, err := w.recoveredCheck(cctx, key)
		w.pendMu.Lock()
		if w.pending[key]--; w.pending[key] == 0 {
			delete(w.pending, key)
		}
		w.pendMu.Unlock()
		ch <- answer{g, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-cctx.Done():
		select { // an answer that raced the deadline still counts
		case a = <-ch:
		default:
			return Grant{}, true, fmt.Errorf("supportaccess: store did not answer: %w", context.Cause(cctx))
		}
	}
	return a.g, a.err != nil && cctx.Err() != nil && !isDenial(a.err), a.err
}

// recoveredCheck is Check for key, run in a re-check's own goroutine: a
// panic of host code in it (the store, a telemetry provider) is a failed
// Check — the request ends as on a store failure, and the error handler
// hears of the panic (endReason) — rather than a crash of the process,
// which no handler of the host's could recover from there.
func (w *watcher) recoveredCheck(ctx context.Context, key checkKey) (g Grant, err error) {
	defer func() {
		if p := recover(); p != nil {
			g, err = Grant{}, fmt.Errorf("supportaccess: the check panicked: %s", panicText(p))
		}
	}()
	return w.m.Check(ctx, key.tenant, key.principal, key.scope)
}

// isDenial reports whether err is Check's answer that no grant allows the
// request (as opposed to a failure to answer).
func isDenial(err error) bool {
	return errors.Is(err, ErrNoActiveGrant) || errors.Is(err, ErrScopeNotGranted)
}

// maxPendingChecks bounds the store calls of re-checks of one session and
// scope that may be out at once (see boundedCheck).
const maxPendingChecks = 4

// errCheckPending is the error of a re-check not made because the store
// has not answered earlier ones of the same session and scope yet.
var errCheckPending = errors.New("supportaccess: an earlier check of the session is still waiting for the store")

// pollAnswers are the answers of one poll's Checks: cache, shared by its
// re-checks, and fresh, the answers given since the Manager last ended a
// grant (end number freshSeq), shared by the re-checks of requests whose
// grant ended — so that many requests of one session cost one Check.
type pollAnswers struct {
	checks   *sync.WaitGroup // the run's Checks (see boundedCheck)
	cache    map[checkKey]checkResult
	fresh    map[checkKey]checkResult
	freshSeq uint64
	// endings holds endedAs's answers by grant, so that the requests that
	// end on one grant in a poll cost one read of it.
	endings map[uuid.UUID]string
}

// sinceLastEnd returns the answers given since end number seq, the latest.
func (a *pollAnswers) sinceLastEnd(seq uint64) map[checkKey]checkResult {
	if a.fresh == nil || a.freshSeq != seq {
		a.fresh, a.freshSeq = make(map[checkKey]checkResult), seq
	}
	return a.fresh
}

// checkKey identifies a Check call; one poll makes each at most once.
type checkKey struct {
	tenant, principal string
	scope             Scope
}

type checkResult struct {
	seq, move uint64 // the end log's and the moves' numbers before the Check
	id        uuid.UUID
	expires   time.Time
	err       error
	timedOut  bool // no answer within the poll's deadline
	skipped   bool // the deadline had passed: not asked (nothing to report)
}

// poll re-checks the flagged requests and, unless flaggedOnly, those whose
// last check is at least half an interval old.
func (w *watcher) poll(ctx context.Context, flaggedOnly bool, checks *sync.WaitGroup) {
	now := time.Now().UnixNano()
	half := int64(w.interval / 2)
	var due, flagged []*reqState
	w.mu.Lock()
	if ctx.Err() != nil {
		w.mu.Unlock()
		if flaggedOnly {
			w.poke() // hand the wake-up on to the next busy period
		}
		return
	}
	for st := range w.active {
		switch {
		case st.recheck.Swap(false):
			flagged = append(flagged, st)
		case !flaggedOnly && now-st.checkedAt.Load() >= half:
			due = append(due, st)
		}
	}
	w.mu.Unlock()
	if len(due)+len(flagged) == 0 {
		return
	}
	// One deadline for the whole poll: with a store that hangs, every
	// request of the poll has its answer (none) within it, however many
	// sessions there are. Flagged requests (a grant ended, its end came,
	// a re-check to repeat) go first; then those that have waited longest
	// for an answer, so that when a poll cannot check them all (many
	// sessions, a store that takes its time), each still gets its turn.
	deadline := time.Now().Add(min(max(w.interval, time.Duration(minRecheckTimeout.Load())), maxRecheckTimeout))
	byAnswer := func(a, b *reqState) int { return cmp.Compare(a.okAt.Load(), b.okAt.Load()) }
	goneFirst := func(a, b *reqState) int {
		// Of those, first the requests whose grant this Manager ended.
		if ga, gb := a.grantGone.Load(), b.grantGone.Load(); ga != gb {
			if ga {
				return -1
			}
			return 1
		}
		return byAnswer(a, b)
	}
	slices.SortFunc(flagged, goneFirst)
	slices.SortFunc(due, byAnswer)
	due = append(flagged, due...)
	answers := &pollAnswers{cache: make(map[checkKey]checkResult), checks: checks}
	seen := make(map[*reqState]bool, len(due))
	for len(due) > 0 {
		for _, st := range due {
			seen[st] = true
			if st.ended.Load() {
				continue
			}
			st.checkedAt.Store(now)
			if !w.recheck(ctx, st, answers, deadline) {
				return // stopping: every request has left
			}
		}
		// Requests flagged while this poll ran (a grant ended meanwhile)
		// are taken now, within its time, rather than by the next poll
		// with a time of its own; those it took once wait for the next.
		due = due[:0]
		w.mu.Lock()
		for st := range w.active {
			if !seen[st] && st.recheck.Swap(false) {
				due = append(due, st)
			}
		}
		w.mu.Unlock()
		slices.SortFunc(due, goneFirst)
	}
}

// minRecheckTimeout (a time.Duration) and maxRecheckTimeout bound the
// time one poll's Checks get (see WithPollInterval): the poll interval, at
// least 250 ms so that a healthy store answers, at most 1 s so that a
// store that stopped answering holds up the re-checks of other requests
// (whose grant may have ended) no longer than that, whatever the
// interval. Tests of hung stores shorten the least.
var minRecheckTimeout atomic.Int64

func init() { minRecheckTimeout.Store(int64(250 * time.Millisecond)) }

const maxRecheckTimeout = time.Second

// endedCheckTimeout bounds the wait for a re-check of a request whose
// grant ended by what the Manager knows without the store (see recheck).
const endedCheckTimeout = 100 * time.Millisecond

// minStaleness is the least time a request runs on without an answered
// re-check (see unanswered).
const minStaleness = 5 * time.Second

// recheck checks every scope st uses and ends st when one is no longer
// allowed; otherwise it adopts the grants found (another grant may have
// taken over, or the grant been extended) and re-arms the expiry timer.
// The poll's Checks share one deadline (the poll interval, at least
// minRecheckTimeout): the one watcher goroutine must not hang with a store
// that does. A Check that gets no answer by then is handled by unanswered.
// It returns false when ctx was cancelled.
func (w *watcher) recheck(ctx context.Context, st *reqState, answers *pollAnswers, deadline time.Time) bool {
	cache := answers.cache
	// A grant ended before this re-check is known to it from here on; an
	// answered re-check settles it (another grant may have taken over).
	gone := st.grantGone.Swap(false)
	st.mu.Lock()
	needs := append([]need(nil), st.needs...)
	st.mu.Unlock()
	// Of each need's answer, when it was asked (possibly for another
	// request of the poll): the end and move numbers before its Check.
	asked := make([]checkResult, len(needs))
	// When the request's access ended by what the Manager knows (a grant
	// it uses revoked or expired by this Manager, or past its end by the
	// clock), a slow store may delay that end only briefly: past
	// endedCheckTimeout, unanswered ends the request.
	urgent := gone || endPassed(needs, w.m.now())
	if urgent {
		// Asked afresh: an answer this poll cached before the end would
		// be stale; answers given since the last end are shared.
		cache = answers.sinceLastEnd(w.ends.now())
		// Its own 100 ms at most, and asked, not skipped, also when the
		// poll's time is up (many sessions), so that a healthy store can
		// still say that another grant keeps it — but within the poll's
		// time plus 100 ms, so that a store that stopped answering delays
		// the poll by no more than that however many such requests wait.
		deadline = minTime(deadline.Add(endedCheckTimeout), time.Now().Add(endedCheckTimeout))
	}
	for i, n := range needs {
		res, ok := w.answer(ctx, st, checkKey{st.sess.TenantID, st.sess.Principal, n.scope}, cache, deadline, urgent, answers.checks)
		if !ok {
			return false
		}
		asked[i] = res
		if res.timedOut {
			if gone {
				st.grantGone.Store(true)
			}
			if !res.skipped {
				w.onError(ctx, fmt.Errorf("supportaccess: middleware: re-check of an in-flight request got no answer: %w", res.err))
			}
			w.unanswered(st, needs)
			return true
		}
		if res.err != nil {
			// Read access is left when the request's own scope (needs[0],
			// read or write) was just found allowed, or when it is write
			// and a Check of read still finds a grant.
			readLeft := i > 0
			if i == 0 && n.scope != ScopeRead && errors.Is(res.err, ErrScopeNotGranted) {
				// Asked once per poll for all the session's requests (the
				// poll's answers), like any other Check.
				rres, ok := w.answer(ctx, st, checkKey{st.sess.TenantID, st.sess.Principal, ScopeRead}, cache, deadline.Add(endedCheckTimeout), true, answers.checks)
				if !ok {
					return false
				}
				// Not knowing (a store failure, no answer) is not the end
				// of the session: only a denial of read is.
				readLeft = !isDenial(rres.err)
				if rres.err != nil && readLeft {
					w.onError(ctx, fmt.Errorf("supportaccess: middleware: re-check of read for an in-flight request: %w", rres.err))
				}
			}
			st.end(w.endReason(ctx, readLeft, st.withCurrentEnd(n), res.err, answers))
			return true
		}
		needs[i].id, needs[i].expires = res.id, res.expires
	}
	st.okAt.Store(time.Now().UnixNano())
	st.mu.Lock()
	st.firstPoll = time.Time{}
	// An end Extend moved after an answer's Check began is newer than
	// what that Check may have read (ends moved earlier are not: the
	// Check read them, or later ones made elsewhere).
	// Which of the two the Check read cannot be told: the earlier end
	// holds until the next re-check.
	for i := range needs {
		needs[i].expires = w.moved.earliestEnd(needs[i].id, needs[i].expires, asked[i].move)
	}
	// By scope: RequireScope may have added a need meanwhile, or put one
	// back (restoreNeed); only the grant and its end are the re-check's.
	// A grant replaced by another stays named by the request's events
	// (used). When the request's record is made already, it does not
	// name the grant adopted: that gets a support.scope event, and is
	// not relied on (pending) until the event is recorded — unless the
	// request has left or ended meanwhile (it runs on no grant any more).
	var late []need
	audited := st.audited.Load()
	adoptedAt := w.m.now() // when the request moved: the events' time
	for _, n := range needs {
		i := slices.IndexFunc(st.needs, func(x need) bool { return x.scope == n.scope })
		if i < 0 {
			continue
		}
		if old := st.needs[i]; old.id != n.id {
			if i > 0 || !st.admittedRead(old) {
				st.markUsedLocked(old.scope, old.id)
			}
			// Also over a pending need: the event under way names the
			// grant replaced, and must not confirm this one (new tok).
			if audited && !st.left && st.endReason == "" {
				st.needTok++
				st.needs[i].pending, st.needs[i].tok = true, st.needTok
				late = append(late, need{scope: n.scope, id: n.id, tok: st.needTok})
			}
		}
		st.needs[i].id, st.needs[i].expires = n.id, n.expires
	}
	st.armLocked(time.Millisecond)
	st.mu.Unlock()
	if len(late) > 0 {
		w.auditAdopted(ctx, st, late, adoptedAt, answers.checks)
	}
	// A grant this Manager ended while the Checks answered with it: the
	// listener did not know the request used it yet.
	again := false
	for i, n := range needs {
		if w.noteEnded(st, asked[i].seq, n.id) {
			again = true
		}
	}
	if again {
		w.poke()
	}
	return true
}

// auditAdopted records, at time at, a support.scope event for each need
// in late: a grant a re-check adopted for the request after its record was
// made; each need is relied on (confirmNeed) once its event is recorded.
// The events are recorded in a goroutine of their own (counted in checks)
// that the watcher does not wait for: an auditor that is slow, or stuck on
// a dead connection ignoring its context, must not hold up the re-checks
// of other requests, however many requests a revocation moved. A failure,
// or no answer within adoptAuditTimeout, ends the request (fail closed: no
// grant in no record is relied on for longer).
func (w *watcher) auditAdopted(ctx context.Context, st *reqState, late []need, at time.Time, checks *sync.WaitGroup) {
	fail := func(err error) {
		w.onError(ctx, err)
		st.end(endReasonAuditFailed)
	}
	// Ends the request when the events take too long, even if the
	// auditor ignores its context; stopped once they are recorded. Both
	// the timer's callback and the goroutine count in checks, so that
	// neither outlives the requests: whichever stops the timer, or the
	// callback, is done with it.
	timeout := time.Duration(adoptAuditTimeout.Load())
	checks.Add(2)
	timer := time.AfterFunc(timeout, func() {
		defer checks.Done()
		fail(errors.New("supportaccess: middleware: audit of a grant a re-check adopted: no answer in time"))
	})
	go func() {
		defer checks.Done()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		var err error
		for _, n := range late {
			if err = st.recordScope(actx, at, n.scope, n.id); err != nil {
				break
			}
			st.confirmNeed(n)
		}
		if timer.Stop() {
			checks.Done() // the callback's count: it will not run
			if err != nil {
				fail(err)
			}
		}
	}()
}

// adoptAuditTimeout (a time.Duration) bounds the audit of the grants a
// re-check adopted (see auditAdopted): as long as a request may run on
// without an answered re-check at the least. Tests shorten it.
var adoptAuditTimeout atomic.Int64

func init() { adoptAuditTimeout.Store(int64(minStaleness)) }

// noteEnded tells st that grant id, which a Check begun at end number seq
// found for it, ended on this Manager since (grantEnded: the request is
// re-checked at once, and ends if the store then gives no answer) or may
// have — the end log cannot tell after a Check that took longer than
// endLogAge — (grantMayHaveEnded: a re-check at once, with no more urgency
// than a poll's). It reports whether st is to be re-checked.
func (w *watcher) noteEnded(st *reqState, seq uint64, id uuid.UUID) bool {
	switch ended, unsure := w.ends.since(seq, id); {
	case ended:
		return st.grantEnded(id)
	case unsure:
		return st.grantMayHaveEnded(id)
	}
	return false
}

// answer returns the poll's answer to key for st: one the poll has already
// (cache) if it is still good for st — the grant it found has not reached
// its end, and it is not older than st's admission, whose moved ends and
// ends were not recorded for st before — or else, before deadline, a
// Check's (kept in cache; see boundedCheck for urgent), or past deadline a
// skipped timeout. It returns false when ctx was cancelled (the watcher
// stops).
func (w *watcher) answer(ctx context.Context, st *reqState, key checkKey, cache map[checkKey]checkResult, deadline time.Time,
	urgent bool, checks *sync.WaitGroup) (checkResult, bool) {
	if res, ok := cache[key]; ok && !pastEnd(res.expires, w.m.now()) &&
		res.seq >= st.admitSeq.Load() && res.move >= st.admitMove.Load() {
		return res, true
	}
	if !time.Now().Before(deadline) {
		return checkResult{timedOut: true, skipped: true}, true
	}
	seq, move := w.ends.now(), w.moves.Load()
	cctx, cancel := context.WithDeadline(ctx, deadline)
	g, timedOut, err := w.boundedCheck(cctx, key, urgent, checks)
	cancel()
	if ctx.Err() != nil {
		return checkResult{}, false
	}
	res := checkResult{seq: seq, move: move, id: g.ID, expires: g.ExpiresAt, err: err, timedOut: timedOut}
	cache[key] = res
	return res, true
}

// unanswered handles a re-check of st that got no answer in time (a slow
// or hung store): not knowing is not a denial by itself, so a healthy but
// briefly slow store does not end long requests. st ends (fail closed)
// when it has a reason to without the store: a grant it uses reached its
// end by the Manager's clock, or the Manager ended one (a revocation or a
// recorded expiry), or no re-check has answered for max(3 intervals,
// minStaleness). Otherwise it is checked again at the next tick.
func (w *watcher) unanswered(st *reqState, needs []need) {
	// The grant of the request's own scope (needs[0]) ending ends the
	// session as far as the Manager knows; another one only a scope.
	switch {
	case pastEnd(needs[0].expires, w.m.now()):
		st.end(SessionEndExpired)
	case endPassed(needs, w.m.now()):
		st.end(endReasonScopeLost)
	case st.grantGone.Load() && st.grantWasEnded(needs[0].id):
		st.end(SessionEndRevoked)
	case st.grantGone.Load():
		st.end(endReasonScopeLost)
	case time.Since(time.Unix(0, st.okAt.Load())) >= max(3*w.interval, minStaleness):
		st.end(endReasonCheckFailed)
	default:
		st.recheck.Store(true) // again at the next tick
	}
}

// pastEnd reports whether a grant's end (zero: unlimited) has come at now.
func pastEnd(end, now time.Time) bool { return !end.IsZero() && !now.Before(end) }

// denialReason is why a request ends when a Check refuses n with err (a
// denial). readLeft: the session still has read access (the request's own
// scope, or read, was just found allowed), so that ErrScopeNotGranted is
// a lost scope: the session's next GET is admitted. Otherwise the session
// ends as far as the Manager can tell: expired when the end of n's grant
// has come, revoked if not.
func (n need) denialReason(readLeft bool, err error, now time.Time) string {
	if readLeft && errors.Is(err, ErrScopeNotGranted) {
		return endReasonScopeLost
	}
	if pastEnd(n.expires, now) {
		return SessionEndExpired
	}
	return SessionEndRevoked
}

// endedAs is n.denialReason at the Manager's clock, told apart from the
// store when it would say "revoked": a grant shortened on another replica
// to an end that passed before this one looked again is refused as any
// revoked one is, but it expired. The grant is read only then, once per
// grant with memo (nil: no memo). With checks (the watcher's), the read
// runs in a goroutine of its own, counted in checks, and is waited for
// at most endedAsWait, so that a store deaf to its context cannot hold
// the watcher; without, in the caller's goroutine (a request's own). No
// answer in time, a failed read or a panic keeps "revoked".
func (m *Manager) endedAs(ctx context.Context, n need, readLeft bool, err error, memo map[uuid.UUID]string, checks *sync.WaitGroup) string {
	now := m.now()
	reason := n.denialReason(readLeft, err, now)
	if reason != SessionEndRevoked {
		return reason
	}
	if r, ok := memo[n.id]; ok {
		return r
	}
	gctx, cancel := context.WithTimeout(ctx, endedAsWait)
	defer cancel()
	expired := func() bool {
		defer func() { _ = recover() }() // host code (the store): a panic is no answer
		g, gerr := m.store.GetGrant(gctx, n.id)
		return gerr == nil && g.ID == n.id && g.RevokedAt.IsZero() && pastEnd(g.ExpiresAt, now)
	}
	var isExpired bool
	if checks == nil {
		isExpired = expired()
	} else {
		ch := make(chan bool, 1)
		checks.Add(1)
		go func() {
			defer checks.Done()
			ch <- expired()
		}()
		select {
		case isExpired = <-ch:
		case <-gctx.Done():
		}
	}
	if isExpired {
		reason = SessionEndExpired
	}
	if memo != nil {
		memo[n.id] = reason
	}
	return reason
}

// endedAsWait bounds endedAs's read of the grant: the request's end waits
// for it.
const endedAsWait = 100 * time.Millisecond

// endPassed reports whether the end of a grant one of needs relies on has
// passed at now.
func endPassed(needs []need, now time.Time) bool {
	return slices.ContainsFunc(needs, func(n need) bool { return pastEnd(n.expires, now) })
}

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// endReason tells why a re-check refused n (see need.denialReason: a lost
// scope when readLeft, else expired or revoked); a store failure ends the
// request too (fail closed), reported but not as the end of the session.
func (w *watcher) endReason(ctx context.Context, readLeft bool, n need, err error, answers *pollAnswers) string {
	if !isDenial(err) {
		w.onError(ctx, fmt.Errorf("supportaccess: middleware: re-check of an in-flight request: %w", err))
		return endReasonCheckFailed
	}
	if answers.endings == nil {
		answers.endings = make(map[uuid.UUID]string)
	}
	return w.m.endedAs(ctx, n, readLeft, err, answers.endings, answers.checks)
}

// armLocked sets st's timer to the earliest end among the grants st uses,
// measured with the Manager's clock, or to st's first poll if that comes
// sooner, at least minDelay from now (so that a clock that stands still
// cannot make the watcher spin). st.mu must be held.
func (st *reqState) armLocked(minDelay time.Duration) {
	if st.left || st.endReason != "" {
		return
	}
	var exp time.Time
	for _, n := range st.needs {
		if !n.expires.IsZero() && (exp.IsZero() || n.expires.Before(exp)) {
			exp = n.expires
		}
	}
	d := time.Duration(-1)
	if !exp.IsZero() {
		d = max(exp.Sub(st.m.now()), minDelay)
	}
	if !st.firstPoll.IsZero() {
		if p := time.Until(st.firstPoll); d < 0 || p < d {
			d = max(p, minDelay)
		}
	}
	st.timerPolls = !st.firstPoll.IsZero() && (exp.IsZero() || time.Until(st.firstPoll) < exp.Sub(st.m.now()))
	switch {
	case d < 0:
		if st.timer != nil {
			st.timer.Stop()
		}
	case st.timer == nil:
		st.timer = time.AfterFunc(d, st.expire)
	default:
		st.timer.Reset(d)
	}
}

// expire runs on st's timer. At the grant's end the watcher checks st at
// once. At the first poll it only makes sure the watcher goroutine runs:
// its ticks re-check st from then on, together with the other requests of
// the same session (one Check per session and tick).
func (st *reqState) expire() {
	st.mu.Lock()
	polls := st.timerPolls
	if polls {
		st.firstPoll = time.Time{}
		st.armLocked(0) // now for the grant's end only
	}
	st.mu.Unlock()
	if !polls {
		st.recheck.Store(true)
	}
	st.g.watch.poke()
}
