package presence

import "time"

// EventKind is what a PBX event says about one AOR's registrations.
type EventKind int

const (
	// Registered adds or refreshes one registration (a REGISTER, or a contact
	// the PBX just created). It is a sign of life: the device is deliverable at once.
	Registered EventKind = iota + 1
	// Removed ends one registration (unregister, expiry, flush, contact removed).
	Removed
	// ReachChanged is the PBX's own verdict on one registration (FreeSWITCH's
	// sip_user_state, Asterisk's ContactStatus Reachable/Unreachable).
	ReachChanged
	// Gone ends every registration of the AOR (the PBX knows none is left).
	Gone
	// Unregistered says the AOR became unregistered without naming a registration
	// (FreeSWITCH's PRESENCE_IN "Unregistered", fired for each ended row even while
	// others remain). It ends the AOR's only device; with several live devices it
	// changes nothing: the PBX names each ended one in its own event.
	Unregistered
)

// Event is one PBX event about one AOR, in a form that names no PBX: the
// FreeSWITCH adapter builds it from sofia's events, the Asterisk adapter from
// AMI's. Presence applies events per AOR in (Stream, Seq) order.
type Event struct {
	Kind EventKind
	AOR  string // user@host
	// Registration identity and details (Registered; CallID and Contact on the others
	// where the PBX names them).
	CallID      string
	Contact     string // the contact URI as the PBX would address it
	Instance    string // +sip.instance when the PBX shows it, else ""
	Profile     string // FreeSWITCH profile or Asterisk endpoint
	UserAgent   string
	NetworkIP   string
	NetworkPort int
	ExpiresIn   time.Duration // Registered: how long the registration lasts from At
	// Sole (Registered): the profile keeps one registration per user (FreeSWITCH
	// without multiple-registrations), so this REGISTER replaced the AOR's other
	// registrations of the profile without an event of their own, and they were the
	// same device: it takes over their key (docs/decisions.md §28).
	Sole bool
	// ReachChanged: the verdict and the PBX's own word for it (its first word is
	// kept as the registration's ping status).
	Reach  Reach
	Status string
	// Ordering and provenance.
	Source    string    // e.g. "sofia::register", "ami ContactStatus"
	Detector  string    // the PBX a ReachChanged verdict counts for: DetectFreeSWITCH ("" too) or DetectAsterisk
	Stream    string    // FreeSWITCH Core-UUID, Asterisk AMI session; a new one restarts Seq
	Seq       uint64    // Event-Sequence; 0 when the PBX gives none
	At        time.Time // the PBX's timestamp of the event
	KnownOnly bool      // applies only to an AOR the map already holds
}
