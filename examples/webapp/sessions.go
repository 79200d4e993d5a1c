package main

import (
	"crypto/rand"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Cookie names. Both cookies hold only a random identifier; everything else
// stays on the server.
const (
	loginCookie         = "demo_session"
	impersonationCookie = "demo_support_session"
)

// Session lifetimes. A support session cannot outlive the engineer's login,
// and the access middleware ends it as soon as no grant covers it.
const (
	loginTTL         = 14 * 24 * time.Hour
	impersonationTTL = 7 * 24 * time.Hour
)

// loginSession is a signed-in user (customer admin or support engineer).
type loginSession struct {
	ID        string
	UserID    string
	CreatedAt time.Time
	Flash     string // one-shot message shown on the next page
}

// impersonation is a support engineer acting as a tenant's administrator.
// It belongs to the engineer's login session and is only valid together
// with it.
type impersonation struct {
	ID string
	// AuditID names the session in the audit trail; unlike ID (the cookie
	// value) it is no secret.
	AuditID        string
	LoginSessionID string
	Principal      string // the support user's ID
	TenantID       string
	SubjectUserID  string // the impersonated customer admin
	CreatedAt      time.Time
	// Admitted is set once a request of this session passed the access
	// check: a later denial then means access ended rather than never
	// existed.
	Admitted bool
	// LastAdmitted is when a request of the session last passed the
	// access check (the Manager's clock). The session goes on only while
	// grants covered it without a gap since then (see coveredSince): a
	// grant given after its access ended starts new sessions, whether or
	// not a Sweep has told the Notifier of the end yet.
	LastAdmitted time.Time
	// LastGrantID is the grant that admitted that request.
	LastGrantID uuid.UUID
}

// sessionStore keeps sessions in memory, keyed by random IDs. Expired
// sessions are dropped on lookup, and all of them at most once a minute
// when a session is created (sweepLocked): those whose cookie never comes
// back too. No goroutine is needed.
type sessionStore struct {
	now func() time.Time

	mu        sync.Mutex
	logins    map[string]*loginSession
	imps      map[string]*impersonation
	nextSweep time.Time
}

// sweepInterval is how often at most sweepLocked walks every session.
const sweepInterval = time.Minute

// sweepLocked drops every expired login (with its impersonations) and
// every expired impersonation, unless it did so less than sweepInterval
// ago. s.mu must be held.
func (s *sessionStore) sweepLocked(now time.Time) {
	if now.Before(s.nextSweep) {
		return
	}
	s.nextSweep = now.Add(sweepInterval)
	for id, ls := range s.logins {
		if now.Sub(ls.CreatedAt) >= loginTTL {
			delete(s.logins, id)
		}
	}
	for id, imp := range s.imps {
		if _, ok := s.logins[imp.LoginSessionID]; !ok || now.Sub(imp.CreatedAt) >= impersonationTTL {
			delete(s.imps, id)
		}
	}
}

func newSessionStore(now func() time.Time) *sessionStore {
	return &sessionStore{
		now:    now,
		logins: make(map[string]*loginSession),
		imps:   make(map[string]*impersonation),
	}
}

// newSessionID returns 256 random bits as text (two crypto/rand.Text values).
func newSessionID() string { return rand.Text() + rand.Text() }

// login creates a login session for userID.
func (s *sessionStore) login(userID string) loginSession {
	ls := &loginSession{ID: newSessionID(), UserID: userID, CreatedAt: s.now()}
	s.mu.Lock()
	s.sweepLocked(ls.CreatedAt)
	s.logins[ls.ID] = ls
	s.mu.Unlock()
	return *ls
}

// loginByID returns the live login session with the given ID.
func (s *sessionStore) loginByID(id string) (loginSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls, ok := s.logins[id]
	if !ok {
		return loginSession{}, false
	}
	if s.now().Sub(ls.CreatedAt) >= loginTTL {
		s.dropLoginLocked(id)
		return loginSession{}, false
	}
	return *ls, true
}

// logout ends a login session and every impersonation started from it.
func (s *sessionStore) logout(id string) {
	s.mu.Lock()
	s.dropLoginLocked(id)
	s.mu.Unlock()
}

func (s *sessionStore) dropLoginLocked(id string) {
	delete(s.logins, id)
	for k, imp := range s.imps {
		if imp.LoginSessionID == id {
			delete(s.imps, k)
		}
	}
}

// setFlash stores a message for the next page of the login session.
func (s *sessionStore) setFlash(id, msg string) {
	s.mu.Lock()
	if ls, ok := s.logins[id]; ok {
		ls.Flash = msg
	}
	s.mu.Unlock()
}

// takeFlash returns and clears the pending message.
func (s *sessionStore) takeFlash(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls, ok := s.logins[id]
	if !ok {
		return ""
	}
	msg := ls.Flash
	ls.Flash = ""
	return msg
}

// impersonate starts an impersonation for the support user of login
// session ls. An earlier impersonation of the same login session ends.
func (s *sessionStore) impersonate(ls loginSession, tenantID, subjectUserID string) impersonation {
	imp := &impersonation{
		ID: newSessionID(), AuditID: "sup-" + rand.Text()[:10], LoginSessionID: ls.ID, Principal: ls.UserID,
		TenantID: tenantID, SubjectUserID: subjectUserID, CreatedAt: s.now(),
	}
	s.mu.Lock()
	s.sweepLocked(imp.CreatedAt)
	for k, old := range s.imps {
		if old.LoginSessionID == ls.ID {
			delete(s.imps, k)
		}
	}
	s.imps[imp.ID] = imp
	s.mu.Unlock()
	return *imp
}

// impersonationByID returns the live impersonation with the given ID if it
// belongs to login session loginID.
func (s *sessionStore) impersonationByID(id, loginID string) (impersonation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	imp, ok := s.imps[id]
	if !ok || imp.LoginSessionID != loginID {
		return impersonation{}, false
	}
	if s.now().Sub(imp.CreatedAt) >= impersonationTTL {
		delete(s.imps, id)
		return impersonation{}, false
	}
	return *imp, true
}

// admitted records that a request of impersonation id passed the access
// check at the time at, on grant grantID.
func (s *sessionStore) admitted(id string, at time.Time, grantID uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if imp, ok := s.imps[id]; ok {
		imp.Admitted, imp.LastAdmitted, imp.LastGrantID = true, at, grantID
	}
}

// impersonationsOf returns the live impersonations of tenant tenantID.
func (s *sessionStore) impersonationsOf(tenantID string) []impersonation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []impersonation
	for _, imp := range s.imps {
		if imp.TenantID == tenantID {
			out = append(out, *imp)
		}
	}
	return out
}

// endImpersonationByAuditID removes the impersonation with the given audit ID.
func (s *sessionStore) endImpersonationByAuditID(auditID string) {
	s.mu.Lock()
	for k, imp := range s.imps {
		if imp.AuditID == auditID {
			delete(s.imps, k)
		}
	}
	s.mu.Unlock()
}

// endImpersonation removes an impersonation (access ended or support left).
func (s *sessionStore) endImpersonation(id string) {
	s.mu.Lock()
	delete(s.imps, id)
	s.mu.Unlock()
}

// setCookie sets a session cookie: HttpOnly, Secure when the request came
// over TLS, valid for the whole site; SameSite=Lax, except the support
// session's, which is Strict: a link or redirect from another site (a
// ticket, a mail, an attacker's page) must not open a tenant's pages as
// the engineer's support session, writing requests the engineer never
// chose into the customer's audit trail.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/",
		MaxAge: int(ttl / time.Second), HttpOnly: true, SameSite: sameSite(name),
		Secure: r.TLS != nil,
	})
}

// sameSite is the SameSite mode of the cookie named name (see setCookie).
func sameSite(name string) http.SameSite {
	if name == impersonationCookie {
		return http.SameSiteStrictMode
	}
	return http.SameSiteLaxMode
}

// clearCookie deletes a cookie set by setCookie.
func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: sameSite(name), Secure: r.TLS != nil,
	})
}
