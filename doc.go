// Package supportaccess lets a SaaS product's customers grant the vendor's
// support staff time-boxed, revocable, audited access to their tenant.
//
// # Model
//
// Support has no access to a tenant unless a Grant exists (default deny).
// A customer-side Actor creates a grant with Manager.Grant: for a tenant, a
// validity window (starting now or at a chosen time, ending at ExpiresAt;
// durations come from the Policy), for any support principal or for named
// ones, with scopes (read-only by default; ScopeWrite for changes; elevated
// host-defined scopes such as "messages:read" only when granted explicitly).
// Several grants may be active per tenant; access holds while any covers the
// request. The customer can Revoke at any time (RevokeTenant, RevokeTicket
// for bulk); Extend moves the end. Every change is recorded as an Event in
// the same transaction as the change, and per-tenant events are hash-chained
// (Event.ChainHash) so tampering is evident.
//
// Manager.Check answers "may this support principal act on this tenant with
// this scope now?" and fails closed: any error is a denial. The HTTP
// middleware (Manager.Middleware) calls it on every request of an
// impersonated session and audits what support does.
//
// # Integration
//
// Create the Manager once over a Store (memstore for tests and single
// process apps, sqlstore for PostgreSQL, MySQL/MariaDB and SQLite), wrap the
// handlers that impersonated sessions reach, and call Grant/Revoke from the
// admin UI:
//
//	db, err := sql.Open("pgx", dsn)
//	if err != nil {
//		log.Fatal(err)
//	}
//	store, err := sqlstore.New(db, sqlstore.Postgres)
//	if err != nil {
//		log.Fatal(err)
//	}
//	if err := store.Migrate(ctx); err != nil { // also refuses a schema a newer release migrated
//		log.Fatal(err)
//	}
//	m, err := supportaccess.NewManager(store, supportaccess.WithPolicy(policy))
//	if err != nil { // a bad option: never run without the Manager you configured
//		log.Fatal(err)
//	}
//	defer m.Close()
//
//	// Which requests are support impersonating a tenant? The host knows.
//	resolve := func(r *http.Request) (supportaccess.Session, bool) {
//		s := sessions.Get(r)
//		if s == nil || s.ImpersonatedBy == "" {
//			return supportaccess.Session{}, false
//		}
//		return supportaccess.Session{TenantID: s.TenantID, Principal: s.ImpersonatedBy,
//			SubjectUserID: s.UserID, SessionID: s.ID}, true
//	}
//	http.ListenAndServe(addr, m.Middleware(resolve)(mux))
//
//	// In the customer's admin UI — behind the middleware too, with the
//	// request's context, so that a call made while support impersonates the
//	// admin is refused (see WithAuthorizer):
//	g, err := m.Grant(r.Context(), supportaccess.GrantInput{
//		TenantID: tenant, By: supportaccess.Actor{Kind: supportaccess.ActorCustomer, ID: adminID},
//		Duration: 24 * time.Hour, Reason: "invoice export fails", TicketRef: "SUP-1042",
//	})
//
// # Rules that hold everywhere
//
// Times are UTC and truncated to microseconds by the Manager. A store or
// audit error during a check denies access; a change whose audit event
// cannot be written does not happen. A store's error means the change was
// not made, with one exception no library can rule out: a database that
// committed while the connection failed before its reply. The change and
// its events are then stored although the call returned the error, and
// its notification and in-flight cancellations did not happen (the
// middleware still sees the change at its next poll); Get, or List for a
// grant whose ID the call did not return, tells which. Bad input returns
// an error wrapping ErrInvalidInput that names the field and changes
// nothing, and is not audited; so is a duration or end the policy does not
// allow (over the maximum, not a preset, a missing reason or ticket). An
// unlimited grant the policy does not allow is refused with ErrForbidden
// and audited as action.refused, as every authorisation refusal is.
// Compare errors with errors.Is
// against the sentinels (ErrNoActiveGrant, ErrNotFound, ErrForbidden,
// ErrInvalidInput, ErrScopeNotGranted, ErrConflict, ErrClosed from
// RunExpiry after Close, ErrSessionEnded for a request whose support
// access ended, ErrTampered for a broken audit chain).
//
// # Shutdown
//
// A Manager runs goroutines only while they have work. To stop cleanly,
// shut the HTTP server down (http.Server.Shutdown waits for the requests
// in flight, but not for hijacked connections such as websockets: close
// those yourself, see RegisterOnShutdown; the middleware's watcher
// goroutine ends with the last request it watches), call Manager.Close
// (it stops every RunExpiry loop, cancelling the Sweep in progress, waits
// until their work has ended, and takes the active-grants gauge's
// callback off the meter provider), then close
// the store (sqlstore's Close releases its prepared statements) and the
// *sql.DB. Cancelling the context given to RunExpiry stops that loop too.
//
// # What the host decides
//
// DefaultAuthorizer knows actor kinds, not which tenant an administrator
// belongs to: it lets any customer actor act on any tenant. Plug the
// host's role model in with WithAuthorizer, and check that a grant or
// request ID taken from a URL belongs to the administrator's tenant
// before calling Revoke, Extend, Approve or Deny with it. RequireScope
// must sit inside Manager.Middleware: outside it no request looks
// impersonated, and it lets every request through. The ResponseWriter an
// impersonated request's handler gets audits the response and stops it
// when access ends; its Unwrap method returns the server's writer (so that
// http.ResponseController can set deadlines), and what a handler writes
// to that unwrapped writer goes past the audit: handlers write to the
// writer they are given.
package supportaccess
