package supportaccess

// ActorKind says on whose side an actor stands.
type ActorKind string

// Actor kinds.
const (
	// ActorCustomer is a person of the customer's organisation (owner, admin,
	// authorised contact). By default only customers may grant access.
	ActorCustomer ActorKind = "customer"
	// ActorSupport is a support principal of the vendor.
	ActorSupport ActorKind = "support"
	// ActorSystem is the library or the host acting on its own (expiry
	// worker, automated clean-up).
	ActorSystem ActorKind = "system"
)

// Valid reports whether k is one of the three actor kinds.
func (k ActorKind) Valid() bool {
	return k == ActorCustomer || k == ActorSupport || k == ActorSystem
}

// Actor identifies who performs an action. ID is the host's stable
// identifier (for support principals usually the e-mail address such as
// support+acme@vendor.example); Name is a display name for audit views.
type Actor struct {
	Kind ActorKind `json:"kind"`
	ID   string    `json:"id"`
	Name string    `json:"name,omitempty"`
}

// SystemActor is the actor the library uses for its own actions (expiry).
var SystemActor = Actor{Kind: ActorSystem, ID: "supportaccess"}

// IsZero reports whether a is the zero Actor.
func (a Actor) IsZero() bool { return a == Actor{} }
