package supportaccess_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	sa "github.com/supportaccess/supportaccess"
)

// Helpers of the expiry worker's review tests (rounds 34–43): an auditor
// that records, refuses or panics, and an error handler that panics.

// errAuditDown is a reviewAuditor's refusal when the test must tell it
// from the other errors reported (a failed hook's errBoom).
var errAuditDown = errors.New("review auditor down")

// reviewAuditor records every event it is given, as a host's audit sink
// does, except those it is set to refuse or panic on (it records nothing
// for them):
//   - fail: every event of that type is refused with failErr (errBoom when
//     nil);
//   - panicOn: every event of that type panics with panicValue ("auditor
//     bug" when nil); with panicNth > 0 only the panicNth of them (counted
//     from 1), once;
//   - ctxAware: any event whose context has ended is refused with ctx.Err(),
//     as a database or HTTP auditor does.
//
// Set the fields before use, or later through failOn and panicOnce.
type reviewAuditor struct {
	mu         sync.Mutex
	events     []sa.Event
	fail       sa.EventType
	failErr    error
	panicOn    sa.EventType
	panicValue any
	panicNth   int
	seen       int // events of type panicOn seen (with panicNth)
	ctxAware   bool
}

func (a *reviewAuditor) Record(ctx context.Context, e sa.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctxAware && ctx.Err() != nil {
		return ctx.Err()
	}
	if a.fail != "" && e.Type == a.fail {
		if a.failErr != nil {
			return a.failErr
		}
		return errBoom
	}
	if a.panicOn != "" && e.Type == a.panicOn {
		a.seen++
		if a.panicNth == 0 || a.seen == a.panicNth {
			if a.panicNth > 0 {
				a.panicOn = "" // once
			}
			if a.panicValue != nil {
				panic(a.panicValue)
			}
			panic("auditor bug")
		}
	}
	a.events = append(a.events, e)
	return nil
}

// failOn makes the auditor refuse (mode "error", with errBoom) or panic on
// (mode "panic", with "auditor bug") every later event of type typ; typ ""
// ends either.
func (a *reviewAuditor) failOn(typ sa.EventType, mode string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail, a.panicOn, a.panicNth, a.seen = "", "", 0, 0
	if mode == "panic" {
		a.panicOn = typ
	} else {
		a.fail = typ
	}
}

// panicOnce makes the auditor panic ("auditor bug") on the n-th later
// event of type typ (from 1), once.
func (a *reviewAuditor) panicOnce(typ sa.EventType, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.panicOn, a.panicNth, a.seen = typ, n, 0
}

// find returns the recorded events of type typ about grant id.
func (a *reviewAuditor) find(typ sa.EventType, id uuid.UUID) []sa.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []sa.Event
	for _, e := range a.events {
		if e.Type == typ && e.GrantID == id {
			out = append(out, e)
		}
	}
	return out
}

// count is the number of recorded events of type typ about grant id.
func (a *reviewAuditor) count(typ sa.EventType, id uuid.UUID) int {
	return len(a.find(typ, id))
}

// withPanickingHandler is an error handler whose first call panics ("error
// handler bug"), as host code may; each error goes to log first when log
// is not nil.
func withPanickingHandler(log *mwErrs) sa.Option {
	var panicked atomic.Bool
	return sa.WithErrorHandler(func(ctx context.Context, err error) {
		if log != nil {
			log.handle(ctx, err)
		}
		if panicked.CompareAndSwap(false, true) {
			panic("error handler bug")
		}
	})
}

// has reports whether an error handed to the handler is target or wraps it.
func (e *mwErrs) has(target error) bool {
	return slices.ContainsFunc(e.all(), func(err error) bool { return errors.Is(err, target) })
}
