package main

import (
	"net/http"
)

// requestRow is one access request as the pages show it.
type requestRow struct{}

// pendingRequests returns the tenant's pending access requests. The second
// result is false when the library offers no access requests.
func (a *app) pendingRequests(r *http.Request, tenantID string) ([]requestRow, bool, error) {
	return nil, false, nil
}

// supportRequests returns the access requests of support user u.
func (a *app) supportRequests(r *http.Request, u user) ([]requestRow, bool, error) {
	return nil, false, nil
}
