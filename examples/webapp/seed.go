package main

import (
	"slices"

	sa "github.com/supportaccess/supportaccess"
)

// tenant is one customer organisation of the demo SaaS product.
type tenant struct {
	ID   string
	Name string
}

// user is a person who can sign in to the demo. Customer users belong to a
// tenant; support users belong to the vendor. A generic support user has a
// TenantID too: it is the per-tenant account support+<tenant>@vendor.example.
type user struct {
	ID       string // e-mail address, also the principal for support users
	Name     string
	Kind     sa.ActorKind
	TenantID string // customers: their tenant; generic support users: the tenant they serve
}

// actor returns the library actor for u.
func (u user) actor() sa.Actor { return sa.Actor{Kind: u.Kind, ID: u.ID, Name: u.Name} }

// IsSupport reports whether u works for the vendor.
func (u user) IsSupport() bool { return u.Kind == sa.ActorSupport }

// directory is the demo's fixed set of tenants and users.
type directory struct {
	tenants []tenant
	users   []user
}

// seedDirectory returns two tenants, an admin each, a generic support user
// per tenant and one named support engineer.
func seedDirectory() directory {
	return directory{
		tenants: []tenant{
			{ID: "acme", Name: "Acme Corporation"},
			{ID: "globex", Name: "Globex Inc."},
		},
		users: []user{
			{ID: "alice@acme.example", Name: "Alice Adams", Kind: sa.ActorCustomer, TenantID: "acme"},
			{ID: "gina@globex.example", Name: "Gina Gold", Kind: sa.ActorCustomer, TenantID: "globex"},
			{ID: "support+acme@vendor.example", Name: "Vendor support (Acme)", Kind: sa.ActorSupport, TenantID: "acme"},
			{ID: "support+globex@vendor.example", Name: "Vendor support (Globex)", Kind: sa.ActorSupport, TenantID: "globex"},
			{ID: "sam@vendor.example", Name: "Sam Stone", Kind: sa.ActorSupport},
		},
	}
}

// user returns the user with the given ID.
func (d directory) user(id string) (user, bool) {
	i := slices.IndexFunc(d.users, func(u user) bool { return u.ID == id })
	if i < 0 {
		return user{}, false
	}
	return d.users[i], true
}

// tenant returns the tenant with the given ID.
func (d directory) tenant(id string) (tenant, bool) {
	i := slices.IndexFunc(d.tenants, func(t tenant) bool { return t.ID == id })
	if i < 0 {
		return tenant{}, false
	}
	return d.tenants[i], true
}

// admin returns the administrator of tenantID (the user support impersonates).
func (d directory) admin(tenantID string) (user, bool) {
	i := slices.IndexFunc(d.users, func(u user) bool { return u.Kind == sa.ActorCustomer && u.TenantID == tenantID })
	if i < 0 {
		return user{}, false
	}
	return d.users[i], true
}

// namedSupport returns the support users not tied to one tenant (the
// engineers a customer may name in a grant).
func (d directory) namedSupport() []user {
	var out []user
	for _, u := range d.users {
		if u.IsSupport() && u.TenantID == "" {
			out = append(out, u)
		}
	}
	return out
}

// tenantsFor returns the tenants a support user may try to enter: its own
// tenant for a generic support user, every tenant for a named engineer.
func (d directory) tenantsFor(u user) []tenant {
	if u.TenantID == "" {
		return d.tenants
	}
	t, ok := d.tenant(u.TenantID)
	if !ok {
		return nil
	}
	return []tenant{t}
}
