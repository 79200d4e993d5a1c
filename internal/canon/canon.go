// Package canon holds the canonical form of times that supportaccess and
// its bundled stores share: UTC, to the microsecond, no monotonic reading.
package canon

import "time"

// Time brings t to the canonical form: UTC, microseconds, no monotonic
// reading. A non-zero time never becomes the zero time, which means "none"
// or "unlimited" to the callers: the first microsecond of year 1,
// truncated, is its end (time.Time{} + 1 µs) instead.
func Time(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	// UTC strips the monotonic reading; the nanoseconds within the second
	// are never negative, so subtracting their sub-microsecond part is
	// Truncate(time.Microsecond) without its general division.
	t = t.UTC()
	if r := t.Nanosecond() % 1000; r != 0 {
		t = t.Add(-time.Duration(r))
		if t.IsZero() {
			t = t.Add(time.Microsecond)
		}
	}
	return t
}

// Ceil is Time rounding up: t in the canonical form, moved to the next
// microsecond when it has a fraction of one. Stored times are whole
// microseconds, so a bound rounded up selects exactly what the bound
// itself does: an event is before Ceil(t) when it is before t. The zero
// time stays zero (no bound).
func Ceil(t time.Time) time.Time {
	c := Time(t)
	if c.Before(t) {
		// Never onto the zero time, from the last microsecond before it.
		if c = c.Add(time.Microsecond); c.IsZero() {
			c = c.Add(time.Microsecond)
		}
	}
	return c
}

// Times brings each of ts to the canonical form, in place.
func Times(ts ...*time.Time) {
	for _, t := range ts {
		*t = Time(*t)
	}
}
