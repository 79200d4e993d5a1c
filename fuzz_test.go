package supportaccess_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

// Fuzz targets. Their seed corpora (testdata/fuzz/<FuzzName>/) run with
// every `go test`; explore further with, one target at a time,
//
//	go test -run '^$' -fuzz '^FuzzGrantInput$' -fuzztime 60s -fuzzminimizetime 3s .
//
// (-fuzzminimizetime: the default, 60 s, has the JSONL targets spend
// nearly all their time shrinking each new input.)
//
// Lists inside a fuzzed string are separated by newlines (a newline is
// invalid in every listed field, so no valid value is lost).

// fuzzPolicies are the policies FuzzGrantInput picks from.
func fuzzPolicies() []sa.Policy {
	def := sa.DefaultPolicy()
	presets := sa.DefaultPolicy()
	presets.Presets, presets.DefaultDuration, presets.MaxDuration, presets.MaxScheduleAhead = sa.PresetsShort, sa.Day, 7*sa.Day, 30*sa.Day
	unlimited := sa.DefaultPolicy()
	unlimited.AllowUnlimited = true
	unlimited.DefaultScopes = []sa.Scope{sa.ScopeRead, "messages:read"}
	strict := sa.DefaultPolicy()
	strict.RequireReason, strict.RequireTicketRef = true, true
	short := sa.DefaultPolicy()
	short.MaxDuration, short.DefaultDuration, short.DefaultScopes = time.Hour, 30*time.Minute, []sa.Scope{sa.ScopeWrite}
	return []sa.Policy{def, presets, unlimited, strict, short}
}

// splitList splits a fuzzed list ("" is the empty list).
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// fuzzState is everything a store holds, to compare before and after a
// call.
type fuzzState struct {
	grants []sa.Grant
	events []sa.Event
}

func stateOf(t *testing.T, s *memstore.Store, now time.Time) fuzzState {
	t.Helper()
	gs, err := s.ListGrants(ctx, sa.ListFilter{}, now)
	require.NoError(t, err)
	evs, err := s.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain})
	require.NoError(t, err)
	return fuzzState{gs, evs}
}

// newEvents returns the events of after that before does not have (the
// trail only grows).
func newEvents(t *testing.T, before, after fuzzState) []sa.Event {
	t.Helper()
	seen := map[uuid.UUID]bool{}
	for _, e := range before.events {
		seen[e.ID] = true
	}
	var out []sa.Event
	for _, e := range after.events {
		if !seen[e.ID] {
			out = append(out, e)
		}
	}
	require.Len(t, after.events, len(before.events)+len(out), "no event was removed")
	return out
}

// requireOneSentinel asserts err wraps exactly one of the sentinels
// allowed.
func requireOneSentinel(t *testing.T, err error, allowed ...error) {
	t.Helper()
	n := 0
	for _, s := range allowed {
		if errors.Is(err, s) {
			n++
		}
	}
	require.Equal(t, 1, n, "error %q wraps exactly one of %v", err, allowed)
}

func setOf[T comparable](xs []T) map[T]bool {
	m := make(map[T]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// FuzzGrantInput feeds Grant (and then Extend) arbitrary input under
// several policies. A refusal wraps ErrInvalidInput or ErrForbidden and
// changes no grant (an Authorizer refusal adds its action.refused event,
// nothing else); a grant never covers more than was asked and the policy
// allows: its scopes are those asked for (or the policy's default), named
// grantees are never widened to "any principal", its window is the
// duration asked (or the default) within the policy's maximum and
// presets; an extension never goes beyond the policy either.
func FuzzGrantInput(f *testing.F) {
	f.Add("acme", "customer", "admin@acme.example", "Ada", int64(0), int64(0), "", "", "", "", uint8(0), int64(0))
	f.Fuzz(func(t *testing.T, tenant, kind, byID, byName string, dur, startOff int64, grantees, scopes, reason, ticket string, pol uint8, extendOff int64) {
		policies := fuzzPolicies()
		p := policies[int(pol)%len(policies)]
		store := memstore.New()
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithPolicy(p), sa.WithErrorHandler(func(context.Context, error) {}))
		require.NoError(t, err)
		now := storetest.Epoch.Truncate(time.Microsecond)
		in := sa.GrantInput{TenantID: tenant, By: sa.Actor{Kind: sa.ActorKind(kind), ID: byID, Name: byName},
			Duration: time.Duration(dur), Grantees: splitList(grantees), Reason: reason, TicketRef: ticket}
		for _, s := range splitList(scopes) {
			in.Scopes = append(in.Scopes, sa.Scope(s))
		}
		if startOff != 0 {
			in.StartsAt = storetest.Epoch.Add(time.Duration(startOff))
		}
		asked := in
		asked.Grantees, asked.Scopes = slices.Clone(in.Grantees), slices.Clone(in.Scopes)
		before := stateOf(t, store, now)

		g, err := m.Grant(ctx, in)
		require.Equal(t, asked, in, "Grant does not change its input")
		after := stateOf(t, store, now)
		added := newEvents(t, before, after)
		if err != nil {
			requireOneSentinel(t, err, sa.ErrInvalidInput, sa.ErrForbidden)
			require.Zero(t, g)
			require.Equal(t, before.grants, after.grants, "a refused grant changes nothing")
			for _, e := range added {
				require.Equal(t, sa.EventActionRefused, e.Type, "a refusal records nothing but its refusal")
				require.ErrorIs(t, err, sa.ErrForbidden)
			}
			require.LessOrEqual(t, len(added), 1)
			return
		}

		// What was granted is what was asked, within the policy.
		require.Equal(t, tenant, g.TenantID)
		require.Equal(t, in.By, g.GrantedBy)
		require.Equal(t, sa.ActorCustomer, g.GrantedBy.Kind, "only customers grant by default")
		require.Equal(t, now, g.CreatedAt)
		wantScopes := in.Scopes
		if len(wantScopes) == 0 {
			wantScopes = p.DefaultScopes
		}
		if len(wantScopes) == 0 {
			wantScopes = []sa.Scope{sa.ScopeRead}
		}
		require.Equal(t, setOf(wantScopes), setOf(g.Scopes), "scopes are those asked for (or the default)")
		if len(in.Grantees) == 0 {
			require.Nil(t, g.Grantees)
		} else {
			require.NotEmpty(t, g.Grantees, "named grantees never become any principal")
			require.Equal(t, setOf(in.Grantees), setOf(g.Grantees))
		}
		d := in.Duration
		if d == 0 {
			d = p.DefaultDuration
		}
		wantStart := now
		if !in.StartsAt.IsZero() {
			st := in.StartsAt.UTC().Truncate(time.Microsecond)
			require.False(t, st.Before(now.Add(-time.Second)), "a start in the past is refused")
			wantStart = laterOf(st, now)
			if p.MaxScheduleAhead > 0 {
				require.LessOrEqual(t, wantStart.Sub(now), p.MaxScheduleAhead)
			}
		}
		require.Equal(t, wantStart, g.StartsAt)
		if d == sa.Unlimited {
			require.True(t, p.AllowUnlimited, "unlimited only when the policy allows it")
			require.True(t, g.ExpiresAt.IsZero())
		} else {
			require.Equal(t, d.Truncate(time.Microsecond), g.ExpiresAt.Sub(g.StartsAt), "the window is the duration asked for, in whole microseconds")
			require.LessOrEqual(t, d, p.MaxDuration)
			require.True(t, d >= time.Microsecond)
			if len(p.Presets) > 0 {
				require.True(t, slices.ContainsFunc(p.Presets, func(pr sa.Preset) bool { return pr.Duration == d }), "a preset")
			}
		}
		if p.RequireReason {
			require.NotEmpty(t, g.Reason)
		}
		if p.RequireTicketRef {
			require.NotEmpty(t, g.TicketRef)
		}
		require.Len(t, after.grants, 1)
		require.Equal(t, g, after.grants[0], "the stored grant is the returned one")
		require.Len(t, added, 1)
		require.Equal(t, sa.EventGrantCreated, added[0].Type)
		require.Equal(t, g.ID, added[0].GrantID)
		b, err := json.Marshal(g)
		require.NoError(t, err)
		require.JSONEq(t, string(b), string(added[0].After))

		// Extend: refused without a change, or within the policy.
		if extendOff == 0 {
			return
		}
		to := storetest.Epoch.Add(time.Duration(extendOff))
		if extendOff == 1 {
			to = time.Time{} // unlimited
		}
		before = after
		e, err := m.Extend(ctx, g.ID, to, in.By)
		after = stateOf(t, store, now)
		added = newEvents(t, before, after)
		if err != nil {
			requireOneSentinel(t, err, sa.ErrInvalidInput, sa.ErrForbidden)
			require.Equal(t, before.grants, after.grants, "a refused extension changes nothing")
			for _, e := range added {
				require.Equal(t, sa.EventActionRefused, e.Type, "a refusal records nothing but its refusal")
				require.ErrorIs(t, err, sa.ErrForbidden)
			}
			require.LessOrEqual(t, len(added), 1)
			return
		}
		require.Equal(t, to.UTC().Truncate(time.Microsecond), e.ExpiresAt)
		if e.ExpiresAt.IsZero() {
			require.True(t, p.AllowUnlimited)
		} else {
			require.True(t, e.ExpiresAt.After(now) && e.ExpiresAt.After(e.StartsAt))
			require.LessOrEqual(t, e.ExpiresAt.Sub(laterOf(now, e.StartsAt)), p.MaxDuration, "never extended beyond the policy")
		}
		moved := !g.ExpiresAt.Equal(e.ExpiresAt)
		g.ExpiresAt = e.ExpiresAt
		require.Equal(t, g, e, "only the end changed")
		if !moved {
			require.Empty(t, added, "extending to the end it has records nothing")
			return
		}
		require.Len(t, added, 1)
		require.Equal(t, sa.EventGrantExtended, added[0].Type)
	})
}

// fuzzGrants fills store with grants of three tenants, tickets and
// statuses, for the filter targets, and records middleware-like events.
func fuzzGrants(t *testing.T, m *sa.Manager, store *memstore.Store, clock *storetest.Clock) {
	t.Helper()
	mk := func(in sa.GrantInput) sa.Grant {
		in.By = storetest.Customer
		g, err := m.Grant(ctx, in)
		require.NoError(t, err)
		clock.Advance(time.Millisecond)
		return g
	}
	mk(sa.GrantInput{TenantID: "acme", TicketRef: "T-1"})
	mk(sa.GrantInput{TenantID: "acme", TicketRef: "T-2", Grantees: []string{"eve@vendor.example"}, Scopes: []sa.Scope{sa.ScopeWrite}})
	mk(sa.GrantInput{TenantID: "globex", StartsAt: clock.Now().Add(time.Hour)})
	r := mk(sa.GrantInput{TenantID: "ünï", TicketRef: "T-1"})
	_, err := m.Revoke(ctx, r.ID, storetest.Customer, "done")
	require.NoError(t, err)
	x := mk(sa.GrantInput{TenantID: "acme", Duration: time.Minute})
	clock.Advance(2 * time.Minute)
	_, err = m.Sweep(ctx)
	require.NoError(t, err)
	require.NoError(t, store.Record(ctx, sa.Event{ID: uuid.New(), Time: clock.Now().UTC().Truncate(time.Microsecond), Type: sa.EventSupportRequest,
		TenantID: "acme", GrantID: x.ID, Actor: storetest.Support, Attrs: map[string]string{sa.AttrSessionID: "s-1", sa.AttrPath: "/x"}}))
}

// FuzzListFilter: List refuses a malformed filter with ErrInvalidInput and
// otherwise returns exactly the matching grants, newest first, at most
// Limit.
func FuzzListFilter(f *testing.F) {
	f.Add("acme", "active", "T-1", 0)
	f.Fuzz(func(t *testing.T, tenant, statuses, ticket string, limit int) {
		store := memstore.New()
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(store, sa.WithNow(clock.Now))
		require.NoError(t, err)
		fuzzGrants(t, m, store, clock)
		now := clock.Now().UTC().Truncate(time.Microsecond)
		all, err := store.ListGrants(ctx, sa.ListFilter{}, now)
		require.NoError(t, err)
		fl := sa.ListFilter{TenantID: tenant, TicketRef: ticket, Limit: limit}
		for _, s := range splitList(statuses) {
			fl.Statuses = append(fl.Statuses, sa.Status(s))
		}
		got, err := m.List(ctx, fl)
		if err != nil {
			requireOneSentinel(t, err, sa.ErrInvalidInput)
			return
		}
		var want []sa.Grant
		for _, g := range all {
			if (tenant == "" || g.TenantID == tenant) && (ticket == "" || g.TicketRef == ticket) &&
				(len(fl.Statuses) == 0 || slices.Contains(fl.Statuses, g.Status(now))) {
				want = append(want, g)
			}
		}
		slices.SortFunc(want, func(a, b sa.Grant) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return bytes.Compare(b.ID[:], a.ID[:])
		})
		if limit > 0 && len(want) > limit {
			want = want[:limit]
		}
		require.Equal(t, len(want), len(got))
		for i := range want {
			require.Equal(t, want[i].ID, got[i].ID)
		}
	})
}

// FuzzAuditFilter: Events and AuditPage refuse a malformed filter or
// cursor with ErrInvalidInput and otherwise return exactly the matching
// events in the filter's order, at most Limit; a cursor that parses
// prints back to itself.
func FuzzAuditFilter(f *testing.F) {
	f.Add("acme", "support", "", "support.request", "s-1", int64(0), int64(0), 0, false, "acme", int64(1), int64(0), 0, "")
	f.Fuzz(func(t *testing.T, tenant, kind, actorID, types, session string, sinceOff, untilOff int64, order int,
		hasAfter bool, afterTenant string, afterSeq, afterOff int64, limit int, cursor string) {
		store := memstore.New()
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(store, sa.WithNow(clock.Now))
		require.NoError(t, err)
		fuzzGrants(t, m, store, clock)
		base := storetest.Epoch.Truncate(time.Microsecond)
		at := func(off int64) time.Time {
			if off == 0 {
				return time.Time{}
			}
			return base.Add(time.Duration(off%(1<<40)) * time.Microsecond)
		}
		fl := sa.AuditFilter{TenantID: tenant, ActorKind: sa.ActorKind(kind), ActorID: actorID, SessionID: session,
			Since: at(sinceOff), Until: at(untilOff), Order: sa.AuditOrder(order), Limit: limit}
		for _, s := range splitList(types) {
			fl.Types = append(fl.Types, sa.EventType(s))
		}
		if hasAfter {
			fl.After = &sa.AuditCursor{TenantID: afterTenant, Seq: afterSeq, Time: at(afterOff)}
		}
		all, err := store.Events(ctx, sa.AuditFilter{})
		require.NoError(t, err)
		check := func(got []sa.Event, f sa.AuditFilter) {
			t.Helper()
			var want []sa.Event
			for i := range all {
				if f.Match(&all[i]) {
					want = append(want, all[i])
				}
			}
			slices.SortFunc(want, func(a, b sa.Event) int { return f.Compare(&a, &b) })
			if f.Limit > 0 && len(want) > f.Limit {
				want = want[:f.Limit]
			}
			require.Equal(t, len(want), len(got))
			for i := range want {
				require.Equal(t, want[i].ID, got[i].ID)
				if i > 0 {
					require.Negative(t, f.Compare(&got[i-1], &got[i]), "strictly ordered")
				}
				require.True(t, f.TenantID == "" || got[i].TenantID == f.TenantID)
				require.True(t, len(f.Types) == 0 || slices.Contains(f.Types, got[i].Type))
			}
		}
		got, err := m.Events(ctx, fl)
		if err != nil {
			requireOneSentinel(t, err, sa.ErrInvalidInput)
		} else {
			check(got, fl)
		}

		if c, err := sa.ParseAuditCursor(cursor); err == nil {
			again, err := sa.ParseAuditCursor(c.String())
			require.NoError(t, err)
			require.Equal(t, c, again, "a parsed cursor prints back to itself")
		} else {
			requireOneSentinel(t, err, sa.ErrInvalidInput)
		}
		fl.After = nil
		page, next, err := m.AuditPage(ctx, fl, cursor)
		if err != nil {
			requireOneSentinel(t, err, sa.ErrInvalidInput)
			return
		}
		if cursor != "" {
			c, err := sa.ParseAuditCursor(cursor)
			require.NoError(t, err, "AuditPage accepted the cursor")
			fl.After = &c
		}
		if fl.Limit == 0 {
			fl.Limit = sa.DefaultAuditPageSize
		}
		check(page, fl)
		if next != "" {
			_, err := sa.ParseAuditCursor(next)
			require.NoError(t, err)
		}
	})
}

// validText is the oracle's own reading of the library's text rules: at
// most max bytes of valid UTF-8 without control characters (C0, DEL, C1,
// U+2028, U+2029).
func validText(s string, max int, required bool) bool {
	if s == "" {
		return !required
	}
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x2028 || r == 0x2029 {
			return false
		}
	}
	return true
}

// validIdent is validText for an identifier: nothing invisible (format
// characters, other default-ignorable code points, variation selectors,
// spaces other than ASCII's, the Braille blank, the Khitan filler, the
// musical null notehead), no
// space at either end
// and no two spaces in a row.
func validIdent(s string, max int, required bool) bool {
	if !validText(s, max, required) {
		return false
	}
	if s != "" && (s[0] == ' ' || s[len(s)-1] == ' ') || strings.Contains(s, "  ") {
		return false
	}
	for _, r := range s {
		if unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) ||
			r != ' ' && unicode.Is(unicode.Zs, r) || r == 0x2800 || r == 0x16fe4 || r == 0x1d159 {
			return false
		}
	}
	return true
}

// fuzzOverrideHeaders are the method-override headers the middleware knows.
var fuzzOverrideHeaders = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Other"}

// FuzzMiddleware sends requests of arbitrary sessions (the resolver's
// output), methods, paths, override headers and Accept headers through the
// middleware, with a route that demands the messages:read scope. A request
// reaches the handler exactly when an active grant of the session's tenant
// covers its principal with the scope of its method (write for anything
// but GET, HEAD and OPTIONS, or when an override names another method)
// and, on /messages, messages:read; otherwise it gets 403 (no store
// faults here), a HEAD without a body. No grant changes; the request
// leaves exactly one audit event (support.request, or access.denied when
// its tenant and principal can be recorded).
func FuzzMiddleware(f *testing.F) {
	f.Add(true, "acme", "support+acme@vendor.example", "u-1", "s-1", "GET", "/settings", uint8(0), "", "")
	f.Fuzz(func(t *testing.T, impersonated bool, tenant, principal, subject, session, method, path string, hdr uint8, override, accept string) {
		store := memstore.New()
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(store, sa.WithNow(clock.Now), sa.WithErrorHandler(func(context.Context, error) {}))
		require.NoError(t, err)
		var grants []sa.Grant
		for _, in := range []sa.GrantInput{
			{TenantID: "acme"},
			{TenantID: "acme", Grantees: []string{"eve@vendor.example"}, Scopes: []sa.Scope{sa.ScopeWrite, "messages:read"}},
			{TenantID: "globex", StartsAt: clock.Now().Add(time.Hour), Scopes: []sa.Scope{sa.ScopeWrite}},
			{TenantID: "initech", Scopes: []sa.Scope{sa.ScopeWrite, "messages:read"}},
		} {
			in.By = storetest.Customer
			g, err := m.Grant(ctx, in)
			require.NoError(t, err)
			grants = append(grants, g)
		}
		_, err = m.Revoke(ctx, grants[3].ID, storetest.Customer, "")
		require.NoError(t, err)
		now := clock.Now().UTC().Truncate(time.Microsecond)
		before := stateOf(t, store, now)

		sess := sa.Session{TenantID: tenant, Principal: principal, SubjectUserID: subject, SessionID: session}
		called := false
		ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			called = true
			_, _ = w.Write([]byte("ok"))
		})
		routes := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/messages") {
				sa.RequireScope("messages:read")(ok).ServeHTTP(w, r)
				return
			}
			ok(w, r)
		})
		h := m.Middleware(func(*http.Request) (sa.Session, bool) { return sess, impersonated })(routes)
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Method, r.URL, r.RequestURI = method, &url.URL{Path: path}, path
		if override != "" {
			r.Header.Set(fuzzOverrideHeaders[int(hdr)%len(fuzzOverrideHeaders)], override)
		}
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)

		after := stateOf(t, store, now)
		require.Equal(t, before.grants, after.grants, "no request changes a grant")
		added := newEvents(t, before, after)
		if !impersonated {
			require.True(t, called, "requests that are not impersonated pass")
			require.Equal(t, http.StatusOK, rec.Code)
			require.Empty(t, added)
			return
		}

		// The oracle.
		scope := sa.ScopeWrite
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			scope = sa.ScopeRead
			if override != "" && hdr%uint8(len(fuzzOverrideHeaders)) != 3 {
				switch strings.ToUpper(strings.TrimSpace(override)) {
				case "", http.MethodGet, http.MethodHead, http.MethodOptions:
				default:
					scope = sa.ScopeWrite
				}
			}
		}
		needs := []sa.Scope{scope}
		if strings.HasPrefix(path, "/messages") {
			needs = append(needs, "messages:read")
		}
		valid := validIdent(tenant, sa.MaxTenantIDLen, true) && validIdent(principal, sa.MaxPrincipalLen, true) &&
			validIdent(subject, sa.MaxPrincipalLen, false) && validIdent(session, sa.MaxPrincipalLen, false)
		allowed := valid
		for _, need := range needs {
			covered := false
			for _, g := range after.grants {
				if g.TenantID == tenant && g.Status(now) == sa.StatusActive && g.Covers(principal) && g.Allows(need) {
					covered = true
				}
			}
			allowed = allowed && covered
		}

		require.Equal(t, allowed, called, "the handler runs exactly when a grant covers the request")
		if allowed {
			require.Equal(t, http.StatusOK, rec.Code)
			require.Len(t, added, 1)
			require.Equal(t, sa.EventSupportRequest, added[0].Type)
		} else {
			require.Equal(t, http.StatusForbidden, rec.Code)
			require.NotContains(t, rec.Body.String(), "ok")
			if method == http.MethodHead {
				require.Zero(t, rec.Body.Len(), "a denied HEAD has no body")
			}
			if validIdent(tenant, sa.MaxTenantIDLen, true) && validIdent(principal, sa.MaxPrincipalLen, true) {
				require.Len(t, added, 1)
				require.Equal(t, sa.EventAccessDenied, added[0].Type)
			} else {
				require.Empty(t, added, "a session that names no valid tenant or principal is not recorded")
			}
		}
		for _, e := range added {
			require.Equal(t, tenant, e.TenantID)
			require.Equal(t, sa.Actor{Kind: sa.ActorSupport, ID: principal}, e.Actor)
			require.True(t, utf8.ValidString(e.Attrs[sa.AttrPath]), "the audited path is escaped")
			require.NotContains(t, e.Attrs[sa.AttrPath], "?")
		}
	})
}

// normalised returns evs with empty Attrs, Before and After as nil (what
// an export cannot tell apart).
func normalised(evs []sa.Event) []sa.Event {
	out := make([]sa.Event, len(evs))
	for i, e := range evs {
		if len(e.Attrs) == 0 {
			e.Attrs = nil
		}
		if len(e.Before) == 0 {
			e.Before = nil
		}
		if len(e.After) == 0 {
			e.After = nil
		}
		out[i] = e
	}
	return out
}

// FuzzAuditExportRoundTrip stores arbitrary events (any bytes in every
// string, Before and After), exports the trail as JSON Lines and reads it
// back: VerifyJSONL verifies every chain up to the store's head and
// ReadJSONL returns the stored events exactly. Then one byte of the export
// is changed: VerifyJSONL must refuse it (ErrInvalidInput or ErrTampered)
// or report chains other than the original's, which a reader comparing
// Heads and Froms with VerifyAudit's (as VerifyJSONL's doc asks) sees: a
// line whose tenant_id changed, say, is the first of another tenant with
// no prev_hash, so an unverified anchor, and cuts its own chain short. A
// change that reads back the same events reports the same chains.
func FuzzAuditExportRoundTrip(f *testing.F) {
	f.Add("acme", "support.request", "support", "eve@vendor.example", "Ève", "why", "path", "/x", []byte(`{"a":1}`), []byte("not json"), uint8(2), uint32(0), uint8(0))
	f.Fuzz(func(t *testing.T, tenant, typ, kind, actorID, actorName, reason, key, value string, before, after []byte, n uint8, pos uint32, flip uint8) {
		store := memstore.New()
		clock := storetest.NewClock(storetest.Epoch)
		m, err := sa.NewManager(store, sa.WithNow(clock.Now))
		require.NoError(t, err)
		at := storetest.Epoch.Truncate(time.Microsecond)
		count := 1 + int(n%4)
		for i := 0; i < count; i++ {
			e := sa.Event{ID: uuid.New(), Time: at.Add(time.Duration(i) * time.Microsecond), Type: sa.EventType(typ), TenantID: tenant,
				Actor: sa.Actor{Kind: sa.ActorKind(kind), ID: actorID, Name: actorName}, Reason: reason,
				Attrs: map[string]string{key: value}, Before: before, After: after}
			if i%2 == 1 {
				e.GrantID = uuid.New()
				e.Attrs = nil
			}
			err := store.Record(ctx, e)
			if i == 0 && errors.Is(err, sa.ErrInvalidInput) {
				// A value wider than stores keep (the Store doc): refused,
				// and nothing is kept.
				evs, err := store.Events(ctx, sa.AuditFilter{})
				require.NoError(t, err)
				require.Empty(t, evs)
				return
			}
			require.NoError(t, err)
			require.NoError(t, store.Record(ctx, sa.Event{ID: uuid.New(), Time: e.Time, Type: sa.EventGrantExpired, TenantID: "other", Actor: sa.SystemActor}))
		}
		stored, err := store.Events(ctx, sa.AuditFilter{Order: sa.AuditByChain})
		require.NoError(t, err)

		var buf bytes.Buffer
		written, err := m.ExportAudit(ctx, &buf, sa.AuditFilter{Order: sa.AuditByChain})
		require.NoError(t, err)
		require.Equal(t, len(stored), written)
		export := buf.Bytes()
		rep, err := sa.VerifyJSONL(bytes.NewReader(export))
		require.NoError(t, err, "an export verifies")
		require.EqualValues(t, len(stored), rep.Events)
		for _, tn := range []string{tenant, "other"} {
			st, err := store.AuditChain(ctx, tn)
			require.NoError(t, err)
			require.Equal(t, st.Head, rep.Chains[tn].Head, "verified up to the store's head")
			require.Equal(t, sa.ChainLink{}, rep.Chains[tn].From, "from the start of the chain")
		}
		var read []sa.Event
		require.NoError(t, sa.ReadJSONL(bytes.NewReader(export), func(e sa.Event) error { read = append(read, e); return nil }))
		require.Equal(t, normalised(stored), normalised(read), "the export reads back losslessly")

		if flip == 0 {
			return
		}
		changed := bytes.Clone(export)
		changed[int(pos)%len(changed)] ^= flip
		rep2, err := sa.VerifyJSONL(bytes.NewReader(changed))
		if err != nil {
			if !errors.Is(err, sa.ErrTampered) {
				require.ErrorIs(t, err, sa.ErrInvalidInput)
			}
			return
		}
		var read2 []sa.Event
		require.NoError(t, sa.ReadJSONL(bytes.NewReader(changed), func(e sa.Event) error { read2 = append(read2, e); return nil }))
		if !reflect.DeepEqual(normalised(read), normalised(read2)) {
			require.NotEqual(t, rep.Chains, rep2.Chains, "a changed export that verifies shows in its chains' ends")
			return
		}
		require.Equal(t, rep, rep2)
	})
}

// FuzzVerifyJSONL feeds arbitrary bytes to VerifyJSONL and ReadJSONL: they
// never panic, and an error wraps ErrInvalidInput (malformed) or
// ErrTampered (a broken chain). What reads without error verifies the same
// way twice.
func FuzzVerifyJSONL(f *testing.F) {
	f.Add([]byte(`{"v":1,"tenant_id":"acme","seq":1,"id":"0190f5b2-8c1e-7a3b-9f00-123456789abc","time":"2026-03-14T15:09:26.535897Z","type":"x","grant_id":"","actor":{"kind":"system","id":"s","name":""},"reason":"","attrs":{},"hash":"00","prev_hash":""}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := sa.VerifyJSONL(bytes.NewReader(data))
		if err != nil && !errors.Is(err, sa.ErrTampered) {
			require.ErrorIs(t, err, sa.ErrInvalidInput)
		}
		if err == nil {
			require.True(t, rep.OK())
		}
		var n int64
		rerr := sa.ReadJSONL(bytes.NewReader(data), func(sa.Event) error { n++; return nil })
		if rerr != nil {
			require.ErrorIs(t, rerr, sa.ErrInvalidInput)
			return
		}
		require.False(t, errors.Is(err, sa.ErrInvalidInput), "every line read, so none is malformed: %v", err)
		for i, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				require.True(t, json.Valid(line), "line %d was accepted but is not one JSON value: %q", i+1, line)
			}
		}
		if err == nil {
			require.LessOrEqual(t, rep.Events, n, "no more events verified than read")
		}
	})
}

// laterOf returns the later of a and b.
func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
