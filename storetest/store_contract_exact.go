package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Conformance cases of review 149 (memstore wrapped in deliberately broken
// stores), registered in contractCases: copies returned by the lists, a
// failed change's in-place edits, concurrent decisions on one request,
// exact tenant and principal comparison, a limit applied after the
// filters, request times kept on update and concurrent request expiry
// claims. Each failed for a broken store that the rest of the suite let
// pass.

// exactGrant is contractGrant naming grantees, with scopes, created d
// after contractNow.
func exactGrant(tenant string, d time.Duration, grantees []string, scopes ...sa.Scope) sa.Grant {
	g := contractGrant(tenant)
	g.CreatedAt = contractNow.Add(d)
	g.Grantees = grantees
	if len(scopes) > 0 {
		g.Scopes = scopes
	}
	return g
}

// exactRequest is contractRequest created d after contractNow, with two
// scopes.
func exactRequest(tenant string, d time.Duration) sa.AccessRequest {
	r := contractRequest(tenant)
	r.CreatedAt = contractNow.Add(d)
	r.Scopes = []sa.Scope{sa.ScopeRead, "messages:read"}
	return r
}

// requestIDs returns the IDs of rr in order.
func requestIDs(rr []sa.AccessRequest) []uuid.UUID {
	return idsOf(rr, func(r *sa.AccessRequest) uuid.UUID { return r.ID })
}

// eventIDs returns the IDs of evs in order.
func eventIDs(evs []sa.Event) []uuid.UUID {
	return idsOf(evs, func(e *sa.Event) uuid.UUID { return e.ID })
}

// testContractListResultsAreCopies: the grants ListGrants returns and the
// requests ListRequests returns share no state with the store: changing
// their Grantees and Scopes in place changes nothing stored, nothing a
// later list returns, and not whom a grant covers or what it allows (the
// suite checks GetGrant, FindActiveGrant and GetRequest only). Kills:
// ListGrants or ListRequests returning the stored values without cloning
// their slices. Contract: store.go:15-16 ("return copies (callers may not
// be able to change stored state through a value they ... got back)"),
// lifecycle_store.go:17 ("returned values are copies").
func testContractListResultsAreCopies(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	// Two scopes (memstore keeps them inline) and three (it does not).
	a := exactGrant("acme", 0, []string{"alice"}, sa.ScopeRead, "messages:read")
	b := exactGrant("acme", time.Second, []string{"bob"}, sa.ScopeRead, "messages:read", "billing:read")
	for _, g := range []sa.Grant{a, b} {
		require.NoError(t, s.CreateGrant(ctx, g, nil))
	}
	want := []sa.Grant{b.Clone(), a.Clone()} // newest first
	now := contractNow.Add(time.Minute)
	for _, f := range []sa.ListFilter{
		{TenantID: "acme"},
		{},
		{TenantID: "acme", Statuses: []sa.Status{sa.StatusActive}},
	} {
		gs, err := s.ListGrants(ctx, f, now)
		require.NoError(t, err)
		require.Equal(t, want, gs, "%+v", f)
		for i := range gs {
			gs[i].Grantees[0] = "mallory"
			gs[i].Scopes[0] = sa.ScopeWrite
			gs[i].Scopes[len(gs[i].Scopes)-1] = "admin"
		}
		again, err := s.ListGrants(ctx, f, now)
		require.NoError(t, err)
		require.Equal(t, want, again, "%+v: the store's grants unchanged", f)
	}
	for _, g := range []sa.Grant{a, b} {
		got, err := s.GetGrant(ctx, g.ID)
		require.NoError(t, err)
		require.Equal(t, g, got)
	}
	_, err := s.FindActiveGrant(ctx, "acme", "mallory", sa.ScopeRead, now)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "no one named mallory")
	_, err = s.FindActiveGrant(ctx, "acme", "alice", sa.ScopeWrite, now)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = s.FindActiveGrant(ctx, "acme", "bob", "admin", now)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	got, err := s.FindActiveGrant(ctx, "acme", "bob", "billing:read", now)
	require.NoError(t, err)
	require.Equal(t, b.ID, got.ID)

	rs, ok := s.(sa.RequestStore)
	if !ok {
		return
	}
	r := exactRequest("acme", 0)
	require.NoError(t, rs.CreateRequest(ctx, r, nil))
	for _, f := range []sa.RequestFilter{
		{TenantID: "acme"},
		{TenantID: "acme", Statuses: []sa.RequestStatus{sa.RequestPending}},
	} {
		rr, err := rs.ListRequests(ctx, f, now)
		require.NoError(t, err)
		require.Equal(t, []sa.AccessRequest{r}, rr, "%+v", f)
		rr[0].Scopes[0] = sa.ScopeWrite
		rr[0].Scopes[1] = "admin"
		again, err := rs.ListRequests(ctx, f, now)
		require.NoError(t, err)
		require.Equal(t, []sa.AccessRequest{r}, again, "%+v: the store's request unchanged", f)
	}
	gotR, err := rs.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, gotR)
}

// testContractFailedChangeEditsNothing: a change function that edits the
// grant's or request's slices in place and then fails (or makes a change
// the store refuses) leaves the stored grant or request as it was: change
// gets a deep copy. The suite's UpdateErrorWritesNothing changes a scalar
// field only. Kills: UpdateGrant, UpdateRequest or ApproveRequest calling
// change with a copy that shares Grantees or Scopes with the stored value.
// Contract: store.go:69-75 ("calls change with a copy ... An error from
// change is returned unchanged and nothing is written"),
// lifecycle_store.go:36-44 and 47-51 (UpdateRequest and ApproveRequest
// alike).
func testContractFailedChangeEditsNothing(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	_, auditor := s.(sa.Auditor)
	boom := errors.New("boom")
	events := func(tenant string) []sa.Event {
		if !auditor {
			return nil
		}
		return []sa.Event{contractEvent(tenant, contractNow)}
	}
	now := contractNow.Add(time.Minute)
	a := exactGrant("acme", 0, []string{"alice"}, sa.ScopeRead, "messages:read")
	b := exactGrant("acme", time.Second, []string{"bob", "carol"}, sa.ScopeRead, "messages:read", "billing:read")
	for _, g := range []sa.Grant{a, b} {
		require.NoError(t, s.CreateGrant(ctx, g, nil))
	}
	edit := func(x *sa.Grant) {
		x.Grantees[0] = "mallory"
		x.Scopes[0] = sa.ScopeWrite
		x.Scopes[len(x.Scopes)-1] = "admin"
		x.Reason = "edited"
	}
	for _, g := range []sa.Grant{a, b} {
		for name, c := range map[string]struct {
			change func(x *sa.Grant) ([]sa.Event, error)
			want   error
		}{
			"change fails": {func(x *sa.Grant) ([]sa.Event, error) {
				edit(x)
				return events(x.TenantID), boom
			}, boom},
			"change refused": {func(x *sa.Grant) ([]sa.Event, error) {
				edit(x)
				x.TenantID = "globex"
				return events(x.TenantID), nil
			}, sa.ErrInvalidInput},
		} {
			_, err := s.UpdateGrant(ctx, g.ID, c.change)
			require.ErrorIs(t, err, c.want, name)
			got, err := s.GetGrant(ctx, g.ID)
			require.NoError(t, err)
			require.Equal(t, g, got, "%s: nothing written", name)
		}
	}
	gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, now)
	require.NoError(t, err)
	require.Equal(t, []sa.Grant{b, a}, gs)
	_, err = s.FindActiveGrant(ctx, "acme", "mallory", sa.ScopeRead, now)
	require.ErrorIs(t, err, sa.ErrNoActiveGrant, "no one named mallory")
	_, err = s.FindActiveGrant(ctx, "acme", "alice", sa.ScopeWrite, now)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	_, err = s.FindActiveGrant(ctx, "acme", "bob", "admin", now)
	require.ErrorIs(t, err, sa.ErrScopeNotGranted)
	for _, p := range []string{"alice", "bob", "carol"} {
		_, err = s.FindActiveGrant(ctx, "acme", p, "messages:read", now)
		require.NoError(t, err, p)
	}

	rs, ok := s.(sa.RequestStore)
	if !ok {
		return
	}
	r := exactRequest("acme", 0)
	require.NoError(t, rs.CreateRequest(ctx, r, nil))
	editR := func(x *sa.AccessRequest) {
		x.Scopes[0] = sa.ScopeWrite
		x.Scopes[1] = "admin"
	}
	_, err = rs.UpdateRequest(ctx, r.ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
		editR(x)
		x.Status, x.DecidedAt, x.DecidedBy = sa.RequestDenied, contractNow, contractCustomer
		return events(x.TenantID), boom
	})
	require.ErrorIs(t, err, boom, "UpdateRequest")
	_, err = rs.UpdateRequest(ctx, r.ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
		editR(x)
		x.TenantID = "globex"
		return events(x.TenantID), nil
	})
	require.ErrorIs(t, err, sa.ErrInvalidInput, "UpdateRequest refused")
	g := contractGrant("acme")
	_, _, err = rs.ApproveRequest(ctx, r.ID, func(x *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
		editR(x)
		x.Status, x.DecidedAt, x.DecidedBy, x.GrantID = sa.RequestApproved, contractNow, contractCustomer, g.ID
		return g, events(x.TenantID), boom
	})
	require.ErrorIs(t, err, boom, "ApproveRequest")
	got, err := rs.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r, got, "nothing written")
	rr, err := rs.ListRequests(ctx, sa.RequestFilter{TenantID: "acme"}, now)
	require.NoError(t, err)
	require.Equal(t, []sa.AccessRequest{r}, rr)
	_, err = s.GetGrant(ctx, g.ID)
	require.ErrorIs(t, err, sa.ErrNotFound, "no grant created")
	for _, tenant := range []string{"acme", "globex"} {
		if evs, ok := contractEvents(t, s, tenant); ok {
			require.Empty(t, evs, "no event written")
		}
	}
}

// testContractConcurrentDecisionsOneWins: an approval (ApproveRequest)
// and a denial (UpdateRequest) of one pending request, each deciding only
// a pending request, never both succeed: the second to lock the request
// sees the first's decision. The decision whose change runs first holds
// the request while the other is tried, so that an unserialised store
// lets the other finish meanwhile and the first then overwrites it (the
// suite's ApproveConcurrentOneWins races the Manager's calls and rarely
// interleaves them so). A denied request has no grant; an approved one
// has the grant it names. Kills: UpdateRequest (or ApproveRequest) not
// holding the request's lock while change runs — a Deny written over an
// Approve left the request denied and its grant active. Contract:
// lifecycle_store.go:36-40 ("Concurrent updates of one request are
// serialised"), 51-52 ("Of concurrent calls for one request the second
// sees the first's result").
func testContractConcurrentDecisionsOneWins(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	rs, ok := s.(sa.RequestStore)
	if !ok {
		t.Skip("store does not implement RequestStore")
	}
	// hold is how long the first change waits for the other call to
	// finish: a serialised store makes it wait the whole time.
	const hold = 100 * time.Millisecond
	pending := func(x *sa.AccessRequest) error {
		if x.Status != sa.RequestPending {
			return fmt.Errorf("%w: request is %s", sa.ErrInvalidInput, x.Status)
		}
		return nil
	}
	for round, denyFirst := range []bool{true, false, true, false} {
		r := contractRequest("acme")
		require.NoError(t, rs.CreateRequest(ctx, r, nil))
		g := contractGrant("acme")
		g.Grantees, g.RequestID = []string{r.RequestedBy.ID}, r.ID
		entered, otherDone := make(chan struct{}), make(chan struct{})
		var once sync.Once
		wait := func(first bool) {
			if !first {
				return
			}
			once.Do(func() { close(entered) })
			select {
			case <-otherDone:
			case <-time.After(hold):
			}
		}
		deny := func() error {
			_, err := rs.UpdateRequest(ctx, r.ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
				wait(denyFirst)
				if err := pending(x); err != nil {
					return nil, err
				}
				x.Status, x.DecidedAt, x.DecidedBy = sa.RequestDenied, contractNow, contractCustomer
				return nil, nil
			})
			return err
		}
		approve := func() error {
			_, _, err := rs.ApproveRequest(ctx, r.ID, func(x *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
				wait(!denyFirst)
				if err := pending(x); err != nil {
					return sa.Grant{}, nil, err
				}
				x.Status, x.DecidedAt, x.DecidedBy, x.GrantID = sa.RequestApproved, contractNow, contractCustomer, g.ID
				return g, nil, nil
			})
			return err
		}
		first, second := deny, approve
		if !denyFirst {
			first, second = approve, deny
		}
		var firstErr, secondErr error
		firstDone := make(chan struct{})
		go func() {
			defer close(firstDone)
			firstErr = first()
		}()
		select {
		case <-entered:
			secondErr = second()
			close(otherDone)
		case <-firstDone:
			t.Fatalf("round %d: the first decision returned before its change ran: %v", round, firstErr)
		}
		<-firstDone

		msg := fmt.Sprintf("round %d (deny first %v): first %v, second %v", round, denyFirst, firstErr, secondErr)
		require.True(t, (firstErr == nil) != (secondErr == nil), "exactly one decision wins: %s", msg)
		for _, err := range []error{firstErr, secondErr} {
			if err != nil {
				require.True(t, isInvalidOrConflict(err), "the other fails: %s", msg)
			}
		}
		got, err := rs.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		approved := denyFirst == (secondErr == nil)
		gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, contractNow)
		require.NoError(t, err)
		var linked []uuid.UUID
		for _, x := range gs {
			if x.RequestID == r.ID {
				linked = append(linked, x.ID)
			}
		}
		if approved {
			require.Equal(t, sa.RequestApproved, got.Status, msg)
			require.Equal(t, g.ID, got.GrantID, msg)
			require.Equal(t, []uuid.UUID{g.ID}, linked, "the approval's grant: %s", msg)
		} else {
			require.Equal(t, sa.RequestDenied, got.Status, msg)
			require.Equal(t, uuid.Nil, got.GrantID, msg)
			require.Empty(t, linked, "a denied request has no grant: %s", msg)
			_, err = s.GetGrant(ctx, g.ID)
			require.ErrorIs(t, err, sa.ErrNotFound, msg)
		}
	}
	// Nothing of any round is active for the requester but the approved
	// rounds' grants, each linked to an approved request.
	gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: "acme"}, contractNow)
	require.NoError(t, err)
	for _, x := range gs {
		r, err := rs.GetRequest(ctx, x.RequestID)
		require.NoError(t, err)
		require.Equal(t, sa.RequestApproved, r.Status, "grant %s of a request that is not approved", x.ID)
	}
}

// testContractTenantAndPrincipalCompareExactly: tenant IDs and principals
// are compared byte for byte: no case folding, no prefix match. Grants of
// tenants "acme" and "ACME" name "Sam@vendor.example" and
// "sam@vendor.example"; each is found, listed and audited under its own
// tenant and principal only. Kills: FindActiveGrant folding the tenant's
// or the grantee's case, ListGrants, ListRequests or Events folding the
// tenant's case (a collation that is not binary). Contract: store.go:62-66
// ("It must not look at other tenants' grants"), requests.go
// (RequestFilter.Match: "r.TenantID == f.TenantID", RequestedBy "exactly
// this"), audit.go (AuditFilter.Match: "e.TenantID == f.TenantID").
func testContractTenantAndPrincipalCompareExactly(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	const upper, lower = "Sam@vendor.example", "sam@vendor.example"
	a := exactGrant("acme", 0, []string{upper})
	b := exactGrant("ACME", time.Second, []string{lower})
	for _, g := range []sa.Grant{a, b} {
		require.NoError(t, s.CreateGrant(ctx, g, nil))
	}
	now := contractNow.Add(time.Minute)
	for _, c := range []struct {
		tenant, principal string
		want              uuid.UUID // uuid.Nil: none
	}{
		{"acme", upper, a.ID},
		{"ACME", lower, b.ID},
		{"acme", lower, uuid.Nil},
		{"ACME", upper, uuid.Nil},
		{"Acme", upper, uuid.Nil},
		{"Acme", lower, uuid.Nil},
		{"acm", upper, uuid.Nil},
		{"acme", "SAM@VENDOR.EXAMPLE", uuid.Nil},
		{"acme", "Sam@vendor.exampl", uuid.Nil},
	} {
		got, err := s.FindActiveGrant(ctx, c.tenant, c.principal, sa.ScopeRead, now)
		if c.want == uuid.Nil {
			require.ErrorIs(t, err, sa.ErrNoActiveGrant, "%q %q", c.tenant, c.principal)
			continue
		}
		require.NoError(t, err, "%q %q", c.tenant, c.principal)
		require.Equal(t, c.want, got.ID, "%q %q", c.tenant, c.principal)
	}
	listGrants := func(tenant string) []uuid.UUID {
		t.Helper()
		gs, err := s.ListGrants(ctx, sa.ListFilter{TenantID: tenant}, now)
		require.NoError(t, err)
		return grantIDs(gs)
	}
	require.Equal(t, []uuid.UUID{a.ID}, listGrants("acme"))
	require.Equal(t, []uuid.UUID{b.ID}, listGrants("ACME"))
	require.Empty(t, listGrants("Acme"))
	require.Empty(t, listGrants("acm"))

	if au, ok := s.(sa.Auditor); ok {
		ea, eb := contractEvent("acme", contractNow), contractEvent("ACME", contractNow.Add(time.Second))
		ea.Actor.ID, eb.Actor.ID = upper, lower
		require.NoError(t, au.Record(ctx, ea))
		require.NoError(t, au.Record(ctx, eb))
		if l, ok := s.(sa.AuditLog); ok {
			events := func(f sa.AuditFilter) []uuid.UUID {
				t.Helper()
				evs, err := l.Events(ctx, f)
				require.NoError(t, err)
				return eventIDs(evs)
			}
			for _, order := range []sa.AuditOrder{sa.AuditByTime, sa.AuditByChain} {
				require.Equal(t, []uuid.UUID{ea.ID}, events(sa.AuditFilter{TenantID: "acme", Order: order}), order)
				require.Equal(t, []uuid.UUID{eb.ID}, events(sa.AuditFilter{TenantID: "ACME", Order: order}), order)
				require.Empty(t, events(sa.AuditFilter{TenantID: "Acme", Order: order}), order)
				require.Empty(t, events(sa.AuditFilter{TenantID: "acm", Order: order}), order)
			}
			require.Equal(t, []uuid.UUID{ea.ID}, events(sa.AuditFilter{ActorID: upper}))
			require.Equal(t, []uuid.UUID{eb.ID}, events(sa.AuditFilter{ActorID: lower}))
		}
	}

	rs, ok := s.(sa.RequestStore)
	if !ok {
		return
	}
	ra, rb := exactRequest("acme", 0), exactRequest("ACME", time.Second)
	ra.RequestedBy.ID, rb.RequestedBy.ID = upper, lower
	for _, r := range []sa.AccessRequest{ra, rb} {
		require.NoError(t, rs.CreateRequest(ctx, r, nil))
	}
	listRequests := func(f sa.RequestFilter) []uuid.UUID {
		t.Helper()
		rr, err := rs.ListRequests(ctx, f, now)
		require.NoError(t, err)
		return requestIDs(rr)
	}
	require.Equal(t, []uuid.UUID{ra.ID}, listRequests(sa.RequestFilter{TenantID: "acme"}))
	require.Equal(t, []uuid.UUID{rb.ID}, listRequests(sa.RequestFilter{TenantID: "ACME"}))
	require.Empty(t, listRequests(sa.RequestFilter{TenantID: "Acme"}))
	require.Empty(t, listRequests(sa.RequestFilter{TenantID: "acm"}))
	require.Equal(t, []uuid.UUID{ra.ID}, listRequests(sa.RequestFilter{RequestedBy: upper}))
	require.Equal(t, []uuid.UUID{rb.ID}, listRequests(sa.RequestFilter{RequestedBy: lower}))
	require.Empty(t, listRequests(sa.RequestFilter{TenantID: "acme", RequestedBy: lower}))
}

// testContractLimitAppliesAfterFilters: Limit caps the grants, requests
// or events that pass every filter, not the rows read before a filter:
// the newest grants and requests, and the earliest events, are the ones
// the filters leave out, so a limit applied first leaves too few. The
// suite's limit cases filter by tenant only. Kills: ListGrants or
// ListRequests applying Limit before the Statuses (or TicketRef,
// RequestedBy) filter, Events before the Types filter. Contract:
// store.go:55-57 ("returns the grants matching f ... at most f.Limit"),
// lifecycle_store.go:29-31, audit.go:180-182 ("the events matching f
// ... at most f.Limit of them").
func testContractLimitAppliesAfterFilters(t *testing.T, ns NewStore) {
	ctx := context.Background()
	s := ns(t)
	now := contractNow.Add(time.Minute)
	// Oldest first: g0, g1 active with ticket T-1, g2 active with T-2, g3
	// revoked, g4 scheduled.
	var gs []sa.Grant
	for i := range 5 {
		g := exactGrant("acme", time.Duration(i)*time.Second, nil)
		g.TicketRef = "T-1"
		switch i {
		case 2:
			g.TicketRef = "T-2"
		case 4:
			g.StartsAt = contractNow.Add(time.Hour)
			g.ExpiresAt = contractNow.Add(2 * time.Hour)
		}
		require.NoError(t, s.CreateGrant(ctx, g, nil))
		gs = append(gs, g)
	}
	_, err := s.UpdateGrant(ctx, gs[3].ID, func(x *sa.Grant) ([]sa.Event, error) {
		x.RevokedAt, x.RevokedBy = contractNow, contractCustomer
		return nil, nil
	})
	require.NoError(t, err)
	listGrants := func(f sa.ListFilter) []uuid.UUID {
		t.Helper()
		got, err := s.ListGrants(ctx, f, now)
		require.NoError(t, err)
		return grantIDs(got)
	}
	active := []sa.Status{sa.StatusActive}
	for _, tenant := range []string{"acme", ""} {
		require.Equal(t, []uuid.UUID{gs[2].ID}, listGrants(sa.ListFilter{TenantID: tenant, Statuses: active, Limit: 1}))
		require.Equal(t, []uuid.UUID{gs[2].ID, gs[1].ID}, listGrants(sa.ListFilter{TenantID: tenant, Statuses: active, Limit: 2}))
		require.Equal(t, []uuid.UUID{gs[1].ID}, listGrants(sa.ListFilter{TenantID: tenant, Statuses: active, TicketRef: "T-1", Limit: 1}))
		require.Equal(t, []uuid.UUID{gs[3].ID}, listGrants(sa.ListFilter{TenantID: tenant, Statuses: []sa.Status{sa.StatusRevoked}, Limit: 1}))
		require.Equal(t, []uuid.UUID{gs[2].ID}, listGrants(sa.ListFilter{TenantID: tenant, TicketRef: "T-2", Limit: 1}))
		require.Equal(t, []uuid.UUID{gs[4].ID, gs[2].ID}, listGrants(sa.ListFilter{TenantID: tenant,
			Statuses: []sa.Status{sa.StatusScheduled, sa.StatusActive}, Limit: 2}))
	}

	if au, ok := s.(sa.Auditor); ok {
		// Earliest first: three support.request events, then a
		// grant.created and a grant.revoked.
		var evs []sa.Event
		for i, typ := range []sa.EventType{sa.EventSupportRequest, sa.EventSupportRequest, sa.EventSupportRequest,
			sa.EventGrantCreated, sa.EventGrantRevoked} {
			ev := contractEvent("limits", contractNow.Add(time.Duration(i)*time.Second))
			ev.Type = typ
			require.NoError(t, au.Record(ctx, ev))
			evs = append(evs, ev)
		}
		if l, ok := s.(sa.AuditLog); ok {
			events := func(f sa.AuditFilter) []uuid.UUID {
				t.Helper()
				got, err := l.Events(ctx, f)
				require.NoError(t, err)
				return eventIDs(got)
			}
			types := []sa.EventType{sa.EventGrantCreated, sa.EventGrantRevoked}
			for _, order := range []sa.AuditOrder{sa.AuditByTime, sa.AuditByChain} {
				for _, tenant := range []string{"limits", ""} {
					f := sa.AuditFilter{TenantID: tenant, Types: types, Order: order, Limit: 1}
					require.Equal(t, []uuid.UUID{evs[3].ID}, events(f), "%+v", f)
					f.Limit = 2
					require.Equal(t, []uuid.UUID{evs[3].ID, evs[4].ID}, events(f), "%+v", f)
				}
			}
		}
	}

	rs, ok := s.(sa.RequestStore)
	if !ok {
		return
	}
	// Oldest first: r0 pending with T-1, r1 pending by Engineer, r2
	// denied, r3 approved, r4 expired (pending past its ExpiresAt).
	var rr []sa.AccessRequest
	for i := range 5 {
		r := exactRequest("acme", time.Duration(i)*time.Second)
		switch i {
		case 0:
			r.TicketRef = "T-1"
		case 1:
			r.RequestedBy = Engineer
		case 4:
			r.ExpiresAt = contractNow.Add(30 * time.Second)
		}
		require.NoError(t, rs.CreateRequest(ctx, r, nil))
		rr = append(rr, r)
	}
	for i, st := range map[int]sa.RequestStatus{2: sa.RequestDenied, 3: sa.RequestApproved} {
		_, err := rs.UpdateRequest(ctx, rr[i].ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
			x.Status, x.DecidedAt, x.DecidedBy = st, contractNow, contractCustomer
			if st == sa.RequestApproved {
				x.GrantID = uuid.New()
			}
			return nil, nil
		})
		require.NoError(t, err)
	}
	listRequests := func(f sa.RequestFilter) []uuid.UUID {
		t.Helper()
		got, err := rs.ListRequests(ctx, f, now)
		require.NoError(t, err)
		return requestIDs(got)
	}
	pending := []sa.RequestStatus{sa.RequestPending}
	for _, tenant := range []string{"acme", ""} {
		require.Equal(t, []uuid.UUID{rr[1].ID}, listRequests(sa.RequestFilter{TenantID: tenant, Statuses: pending, Limit: 1}))
		require.Equal(t, []uuid.UUID{rr[1].ID, rr[0].ID}, listRequests(sa.RequestFilter{TenantID: tenant, Statuses: pending, Limit: 2}))
		require.Equal(t, []uuid.UUID{rr[2].ID}, listRequests(sa.RequestFilter{TenantID: tenant, Statuses: []sa.RequestStatus{sa.RequestDenied}, Limit: 1}))
		require.Equal(t, []uuid.UUID{rr[4].ID}, listRequests(sa.RequestFilter{TenantID: tenant, Statuses: []sa.RequestStatus{sa.RequestExpired}, Limit: 1}))
		require.Equal(t, []uuid.UUID{rr[0].ID}, listRequests(sa.RequestFilter{TenantID: tenant, TicketRef: "T-1", Limit: 1}))
		require.Equal(t, []uuid.UUID{rr[1].ID}, listRequests(sa.RequestFilter{TenantID: tenant, RequestedBy: Engineer.ID, Limit: 1}))
	}
}

// testContractRequestTimesKeptOnUpdate: the times UpdateRequest and
// ApproveRequest store (DecidedAt, StartsAt, ExpiresAt) come back to the
// microsecond, in UTC, from the write, GetRequest and ListRequests — as
// given, not merely in canonical form (the suite's
// TimesKeptAsUTCMicroseconds checks the form only, and
// UpdateStoresEveryField compares the write with the read). Kills:
// UpdateRequest keeping DecidedAt to the millisecond. Contract: store.go
// ("keep times to the microsecond in UTC"), lifecycle_store.go:17
// ("times are UTC microseconds").
func testContractRequestTimesKeptOnUpdate(t *testing.T, ns NewStore) {
	ctx := context.Background()
	rs := contractRequestStore(t, ns)
	zone := time.FixedZone("UTC-3:30", -(3*3600 + 1800))
	// contractNow ends in 535897 µs: none of these is a whole millisecond.
	decided := contractNow.Add(time.Minute + time.Microsecond)
	starts := contractNow.Add(2*time.Hour + 7*time.Microsecond)
	expires := contractNow.Add(48*time.Hour + 3*time.Microsecond)
	check := func(name string, want, ret sa.AccessRequest) {
		t.Helper()
		require.Equal(t, want, ret, "%s returns the times given", name)
		got, err := rs.GetRequest(ctx, want.ID)
		require.NoError(t, err)
		require.Equal(t, want, got, "%s: GetRequest", name)
		rr, err := rs.ListRequests(ctx, sa.RequestFilter{TenantID: want.TenantID}, contractNow)
		require.NoError(t, err)
		require.Equal(t, []sa.AccessRequest{want}, rr, "%s: ListRequests", name)
	}

	r := contractRequest("update")
	require.NoError(t, rs.CreateRequest(ctx, r, nil))
	want := r.Clone()
	want.Status, want.DecidedAt, want.DecidedBy, want.DecisionReason = sa.RequestDenied, decided, contractCustomer, "no"
	want.StartsAt, want.ExpiresAt = starts, expires
	ret, err := rs.UpdateRequest(ctx, r.ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
		x.Status, x.DecidedBy, x.DecisionReason = sa.RequestDenied, contractCustomer, "no"
		x.DecidedAt, x.StartsAt, x.ExpiresAt = decided.In(zone), starts.In(zone), expires.In(zone)
		return nil, nil
	})
	require.NoError(t, err)
	check("UpdateRequest", want, ret)

	// A second update keeps the times it does not change.
	want.DecisionReason = "still no"
	ret, err = rs.UpdateRequest(ctx, r.ID, func(x *sa.AccessRequest) ([]sa.Event, error) {
		x.DecisionReason = "still no"
		return nil, nil
	})
	require.NoError(t, err)
	check("UpdateRequest again", want, ret)

	a := contractRequest("approve")
	require.NoError(t, rs.CreateRequest(ctx, a, nil))
	g := contractGrant("approve")
	wantA := a.Clone()
	wantA.Status, wantA.DecidedAt, wantA.DecidedBy, wantA.GrantID = sa.RequestApproved, decided, contractCustomer, g.ID
	retA, _, err := rs.ApproveRequest(ctx, a.ID, func(x *sa.AccessRequest) (sa.Grant, []sa.Event, error) {
		x.Status, x.DecidedAt, x.DecidedBy, x.GrantID = sa.RequestApproved, decided.In(zone), contractCustomer, g.ID
		return g, nil, nil
	})
	require.NoError(t, err)
	check("ApproveRequest", wantA, retA)
}

// testContractClaimExpiredRequestsConcurrentOnce: many claimers racing
// ClaimExpiredRequests over many due requests, in small batches, claim
// each request exactly once, each returned expired, and leave every
// request expired (the suite's RequestsExpireOnce races four sweeps over
// one request, which a claim that is not atomic rarely fails). The events
// function sleeps, so that each claim holds its requests over a
// millisecond while the others wait: a claim that lets go of them between
// choosing and updating them, even for an instant, lets another claimer
// in (Go's sync.Mutex hands itself to a waiter that waited that long).
// Kills: ClaimExpiredRequests selecting the due requests and updating them
// under separate locks (or outside one transaction). Contract:
// lifecycle_store.go:56-62 ("Concurrent callers never claim the same
// request").
func testContractClaimExpiredRequestsConcurrentOnce(t *testing.T, ns NewStore) {
	ctx := context.Background()
	rs := contractRequestStore(t, ns)
	const n, claimers, limit = 120, 8, 3
	want := map[uuid.UUID]bool{}
	for i := range n {
		r := contractRequest("acme")
		if i%2 == 1 {
			r.TenantID = "globex"
		}
		r.ExpiresAt = contractNow.Add(time.Duration(i%7) * time.Second) // ties too
		require.NoError(t, rs.CreateRequest(ctx, r, nil))
		want[r.ID] = true
	}
	now := contractNow.Add(time.Minute)
	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				rr, err := rs.ClaimExpiredRequests(ctx, now, limit, func(sa.AccessRequest) ([]sa.Event, error) {
					time.Sleep(400 * time.Microsecond)
					return nil, nil
				})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				mu.Lock()
				for _, r := range rr {
					seen[r.ID]++
					if r.Status != sa.RequestExpired {
						t.Errorf("request %s claimed with status %s", r.ID, r.Status)
					}
				}
				mu.Unlock()
				if len(rr) == 0 {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Len(t, seen, n, "every due request claimed")
	for id, c := range seen {
		require.True(t, want[id], "request %s was not created", id)
		require.Equal(t, 1, c, "request %s claimed %d times", id, c)
	}
	for _, tenant := range []string{"acme", "globex"} {
		rr, err := rs.ListRequests(ctx, sa.RequestFilter{TenantID: tenant}, contractNow)
		require.NoError(t, err)
		require.Len(t, rr, n/2)
		for _, r := range rr {
			require.Equal(t, sa.RequestExpired, r.Status, "stored")
		}
	}
	rr, err := rs.ClaimExpiredRequests(ctx, now, n, nil)
	require.NoError(t, err)
	require.Empty(t, rr, "nothing left to claim")
}
