package supportaccess_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// xHTTPMethodOverride is a host's method-override middleware that honours
// X-HTTP-Method (as ASP.NET-style and OData clients send it): a POST whose
// X-HTTP-Method names PUT, PATCH or DELETE is served as that method.
func xHTTPMethodOverride(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch m := r.Header.Get("X-HTTP-Method"); m {
			case http.MethodPut, http.MethodPatch, http.MethodDelete:
				r.Method = m
			}
		}
		next.ServeHTTP(w, r)
	})
}

// TestReview102MethodOverrideDecoyHidesServedMethod — AttrMethodOverride is
// documented as "the method a request's method-override header
// (X-HTTP-Method-Override, X-HTTP-Method or X-Method-Override) named ...:
// the method a framework that honours the header served". The middleware
// considers every value of all three headers when it raises the scope
// (overridesUnsafe), but records only the first non-empty one
// (auditOverride).
//
// Observed: a POST carrying a decoy X-HTTP-Method-Override: PATCH next to
// X-HTTP-Method: DELETE, served by a host that honours X-HTTP-Method,
// deletes the user, and the trail reads "POST /users/u-7, method_override
// PATCH": no attribute names the DELETE performed. Support chooses the
// headers, so it chooses what the trail says it did.
func TestReview102MethodOverrideDecoyHidesServedMethod(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	var served string
	h := e.wrap(xHTTPMethodOverride(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served = r.Method
		w.WriteHeader(http.StatusNoContent)
	})))
	rec := mwDo(h, mwReq(http.MethodPost, "/users/u-7", "generic",
		"X-HTTP-Method-Override", "PATCH", "X-HTTP-Method", "DELETE"))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, http.MethodDelete, served, "the host served a DELETE")

	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 1)
	require.Equal(t, http.MethodPost, evs[0].Attrs[sa.AttrMethod], "the method on the wire")
	require.Contains(t, evs[0].Attrs[sa.AttrMethodOverride], http.MethodDelete,
		"the host deleted /users/u-7 (X-HTTP-Method: DELETE) but the support.request event names only the decoy override: %v", evs[0].Attrs)
}

// TestReview102OverrideListsFirstValueOfEachHeader: the override methods
// listed are the first value of each header (what Header.Get, and so a
// framework honouring the header, reads), once each, in header order;
// later values of a header, which no such framework reads, cannot push a
// header's own value out of the list (review105: four decoy values did).
func TestReview102OverrideListsFirstValueOfEachHeader(t *testing.T) {
	e := newMWEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite}})
	h := e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	req := mwReq(http.MethodPost, "/users/u-7", "generic", "X-HTTP-Method-Override", "patch")
	for _, m := range []string{"GET", "HEAD", "OPTIONS", "TRACE", "PUT"} {
		req.Header.Add("X-HTTP-Method-Override", m)
	}
	req.Header.Set("X-HTTP-Method", "DELETE")
	req.Header.Add("X-HTTP-Method", "MERGE")
	req.Header.Set("X-Method-Override", " Patch ")
	require.Equal(t, http.StatusNoContent, mwDo(h, req).Code)
	req = mwReq(http.MethodPost, "/users/u-8", "generic", "X-HTTP-Method", "DELETE")
	require.Equal(t, http.StatusNoContent, mwDo(h, req).Code)
	req = mwReq(http.MethodPost, "/users/u-9", "generic")
	req.Header["X-Http-Method-Override"] = []string{"", "DELETE"} // Header.Get reads "": no override served
	require.Equal(t, http.StatusNoContent, mwDo(h, req).Code)
	evs := e.events(sa.EventSupportRequest)
	require.Len(t, evs, 3)
	got := map[string]string{}
	for _, ev := range evs {
		got[ev.Attrs[sa.AttrPath]] = ev.Attrs[sa.AttrMethodOverride]
		require.Equal(t, "write", ev.Attrs[sa.AttrScope], "every value counts for the scope")
	}
	require.Equal(t, "PATCH,DELETE", got["/users/u-7"])
	require.Equal(t, "DELETE", got["/users/u-8"])
	require.Equal(t, "", got["/users/u-9"])
}
