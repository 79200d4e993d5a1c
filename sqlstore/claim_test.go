package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

// TestClaimBatchEventsRoundTrip claims a batch of expiries over several
// tenants, one of them new, with events whose text and byte fields hold
// everything the batched append must quote (PostgreSQL sends them as array
// literals: quotes, backslashes, braces, commas, NULL-like text, empty
// versus nil bytes), and reads every event back unchanged and chained.
func TestClaimBatchEventsRoundTrip(t *testing.T) {
	texts := []string{`plain`, `"quoted"`, `back\slash\\`, `{braces},comma`, `NULL`, ``, " spaced ", "line\nbreak", "ünï©ødé 🚀", `\x00`}
	tenants := []string{`t-"q"`, `t-\b`, `t-{a,b}`, `NULL`, `t plain`}
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			s := sqltest.NewStore(t, d)
			now := storetest.Epoch.Truncate(time.Microsecond)
			// tenant 0 has a chain already; the others get their first event.
			require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.Must(uuid.NewV7()), Time: now, Type: "x", TenantID: tenants[0], Actor: storetest.Customer}))
			const n = 23
			for i := 0; i < n; i++ {
				g := sa.Grant{
					ID: uuid.Must(uuid.NewV7()), TenantID: tenants[i%len(tenants)], GrantedBy: storetest.Customer,
					CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Duration(i) * time.Second),
				}
				require.NoError(t, s.CreateGrant(ctx, g, nil))
			}
			_, err := storetest.ClaimStarts(ctx, s, now.Add(time.Hour))
			require.NoError(t, err)
			want := map[uuid.UUID]sa.Event{}
			claimed, err := s.ClaimTransitions(ctx, sa.TransitionExpired, now.Add(time.Hour), 100, func(g sa.Grant) ([]sa.Event, error) {
				i := len(want)
				txt := texts[i%len(texts)]
				e := sa.Event{
					ID: uuid.Must(uuid.NewV7()), Time: now.Add(time.Duration(i) * time.Microsecond), Type: sa.EventGrantExpired,
					TenantID: g.TenantID, GrantID: g.ID, Actor: sa.Actor{Kind: sa.ActorSystem, ID: txt, Name: txt}, Reason: txt,
					Attrs: map[string]string{"k": txt, `"{}\`: txt},
				}
				switch i % 3 {
				case 0:
					e.Before, e.After = []byte(`{"a":"\"\\"}`), []byte{}
				case 1:
					e.After = []byte(fmt.Sprintf(`{"t":%q}`, txt))
				}
				if i%4 == 0 {
					e.Attrs[sa.AttrSessionID] = txt
				}
				if i%5 == 0 {
					e.GrantID = uuid.Nil
				}
				want[e.ID] = e
				return []sa.Event{e}, nil
			})
			require.NoError(t, err)
			require.Len(t, claimed, n)
			for i := 1; i < n; i++ {
				require.False(t, claimed[i].ExpiresAt.Before(claimed[i-1].ExpiresAt), "claim order")
			}
			got := 0
			for _, tenant := range tenants {
				evs, err := s.Events(ctx, sa.AuditFilter{TenantID: tenant, Order: sa.AuditByChain})
				require.NoError(t, err)
				var prev []byte
				for i, e := range evs {
					require.Equal(t, int64(i+1), e.Seq, tenant)
					require.Equal(t, e.ChainHash(prev), e.Hash, "chain of %q at %d", tenant, e.Seq)
					prev = e.Hash
					w, ok := want[e.ID]
					if !ok {
						continue
					}
					got++
					require.Equal(t, w.Time.UTC(), e.Time.UTC())
					w.Time, e.Time = time.Time{}, time.Time{}
					w.Seq, w.Hash = e.Seq, e.Hash
					require.Equal(t, w, e)
				}
				st, err := s.AuditChain(ctx, tenant)
				require.NoError(t, err)
				require.Equal(t, int64(len(evs)), st.Head.Seq)
				require.Equal(t, prev, st.Head.Hash)
			}
			require.Equal(t, n, got)
		})
	}
}

// TestClaimDropsTransitionsOfDeletedGrants: a host that deletes grant rows
// itself (a tenant's data erased) must not get transitions claimed for
// them, nor have them stall the claims of the grants left. On PostgreSQL
// the foreign key deletes their grant_due rows with them; on SQLite,
// unless the connection enforces foreign keys, the rows stay and the claim
// drops them.
func TestClaimDropsTransitionsOfDeletedGrants(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, d)
			s := sqltest.NewStoreOn(t, db, d)
			now := storetest.Epoch.UTC().Truncate(time.Microsecond)
			var gs []sa.Grant
			for i := range 5 {
				gs = append(gs, sa.Grant{ID: uuid.Must(uuid.NewV7()), TenantID: "acme", GrantedBy: storetest.Customer, Scopes: []sa.Scope{sa.ScopeRead},
					CreatedAt: now, StartsAt: now, ExpiresAt: now.Add(time.Duration(i+1) * time.Minute)})
			}
			require.NoError(t, s.InsertGrantsForTest(ctx, gs))
			// The three expiring first are erased.
			for _, g := range gs[:3] {
				require.NoError(t, s.ExecForTest(ctx, "DELETE FROM {p}grants WHERE id = ?", g.ID))
			}
			claimed, err := s.ClaimTransitions(ctx, sa.TransitionStarted, now.Add(time.Hour), 10, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
			require.NoError(t, err)
			require.Len(t, claimed, 2, "the starts of the grants left only")
			// Batches of 2: whatever each backend left of the deleted
			// grants, the two left are claimed once, in order.
			var got []uuid.UUID
			for range 4 {
				claimed, err := s.ClaimTransitions(ctx, sa.TransitionExpired, now.Add(time.Hour), 2, func(sa.Grant) ([]sa.Event, error) { return nil, nil })
				require.NoError(t, err)
				for _, g := range claimed {
					got = append(got, g.ID)
				}
			}
			require.Equal(t, []uuid.UUID{gs[3].ID, gs[4].ID}, got, "the grants left, once each, in order")
		})
	}
}

// TestLockHeadsPhasesDoNotDeadlock interleaves two claims that take chain
// heads in batches. A holds the head it created for tenant z and has yet
// to lock the existing head of tenant a; B takes more tenants than one
// head statement holds, a in its first statement and z in its second. Had
// lockHeads locked B's first chunk of existing heads before creating its
// second chunk's rows, B would hold a and wait for z while A waits for a:
// a deadlock, which the server breaks by failing one of them. Both must
// commit. (SQLite has one writer at a time: B could not start.)
func TestLockHeadsPhasesDoNotDeadlock(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		if d == sqlstore.SQLite {
			continue
		}
		t.Run(d.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := sqltest.NewStore(t, d)
			many := make([]string, sqlstore.MaxHeadsPerStatement+2)
			for i := range many {
				many[i] = fmt.Sprintf("tenant-%05d", i)
			}
			first, last := many[0], many[len(many)-1]
			// a has a head; z has none yet.
			require.NoError(t, s.Record(ctx, sa.Event{ID: uuid.Must(uuid.NewV7()), Time: storetest.Epoch, Type: "x", TenantID: first, Actor: storetest.Customer}))

			a, err := s.BeginHeadsForTest(ctx)
			require.NoError(t, err)
			defer a.Rollback()
			require.NoError(t, a.CreateHeads([]string{first, last}))

			b, err := s.BeginHeadsForTest(ctx)
			require.NoError(t, err)
			defer b.Rollback()
			bID, err := b.SessionID()
			require.NoError(t, err)
			bDone := make(chan error, 1)
			go func() {
				err := b.LockHeads(many)
				if err == nil {
					err = b.Commit()
				}
				bDone <- err
			}()
			// Wait until B waits for a row A holds: z on PostgreSQL, where
			// B already created its first chunk's rows; a on MySQL, where
			// A's INSERT … ON DUPLICATE KEY locked a as well.
			for {
				waits, err := s.InInsertForTest(ctx, bID)
				require.NoError(t, err)
				if waits {
					break
				}
				select {
				case err := <-bDone:
					t.Fatalf("B finished without waiting for A: %v", err)
				case <-ctx.Done():
					t.Fatal("B never waited for A")
				case <-time.After(5 * time.Millisecond):
				}
			}
			require.NoError(t, a.LockExisting([]string{first, last}), "A must get a's head")
			require.NoError(t, a.Commit())
			require.NoError(t, <-bDone, "B must get every head once A committed")
		})
	}
}
