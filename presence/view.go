package presence

import (
	"sort"
	"time"
)

// DecodeRecord reads one record of the store's reach bucket, as presence wrote it
// for aor, for offline inspection. Registered is computed at now.
func DecodeRecord(aor string, b []byte, now time.Time) (State, error) {
	st, err := decodeState(aor, b)
	if err != nil {
		return State{}, err
	}
	st.Registered = st.registered(now)
	return st, nil
}

// View is an AOR's state as `sipsilo inspect` and the admin API show it. State's
// own JSON is the persisted record (its durations in nanoseconds); this one is for
// people and scripts, with ages taken at At.
type View struct {
	AOR           string             `json:"aor"`
	Registered    bool               `json:"registered"`
	Deliverable   bool               `json:"deliverable"`
	Reach         Reach              `json:"reach"`
	Evidence      string             `json:"evidence,omitempty"`
	EvidenceAt    time.Time          `json:"evidence_at,omitzero"`
	EvidenceAge   float64            `json:"evidence_age_s,omitempty"`
	LastAlive     time.Time          `json:"last_alive,omitzero"`
	Registrations []RegistrationView `json:"registrations"`
	// Devices are the AOR's devices (docs/decisions.md §28): registered, and
	// remembered after their registration ended.
	Devices []DeviceView `json:"devices"`
	At      time.Time    `json:"at"`
}

// DeviceView is one device in a View.
type DeviceView struct {
	Key          string    `json:"key"`
	Contact      string    `json:"contact,omitempty"`
	Profile      string    `json:"profile,omitempty"`
	UserAgent    string    `json:"user_agent,omitempty"`
	Registered   bool      `json:"registered"`
	Deliverable  bool      `json:"deliverable"`
	Reach        Reach     `json:"reach"`
	RegisteredAt time.Time `json:"registered_at,omitzero"`
	LastAlive    time.Time `json:"last_alive,omitzero"`
	EndedAt      time.Time `json:"ended_at,omitzero"`
	EndedAgo     float64   `json:"ended_ago_s,omitempty"`
}

// RegistrationView is one registration in a View, with what sipsilo's pinger saw.
type RegistrationView struct {
	CallID      string    `json:"call_id"`
	Contact     string    `json:"contact,omitempty"`
	NetworkIP   string    `json:"network_ip,omitempty"`
	NetworkPort int       `json:"network_port,omitempty"`
	Profile     string    `json:"profile,omitempty"`
	UserAgent   string    `json:"user_agent,omitempty"`
	Reach       Reach     `json:"reach"`
	PingStatus  string    `json:"ping_status,omitempty"`
	Expires     time.Time `json:"expires"`
	ExpiresIn   float64   `json:"expires_in_s"` // negative once expired
	Registered  time.Time `json:"registered_at,omitzero"`
	Updated     time.Time `json:"updated,omitzero"`
	LastPing    time.Time `json:"last_ping,omitzero"`
	PingRTTms   float64   `json:"ping_rtt_ms,omitempty"`
	PingMisses  int       `json:"ping_misses"`
	LastAlive   time.Time `json:"last_alive,omitzero"`
}

// ViewOf makes st's view at now.
func ViewOf(st State, now time.Time) View {
	v := View{AOR: st.AOR, Registered: st.registered(now), Deliverable: st.deliverable(now), Reach: st.Reach,
		Evidence: st.Evidence, EvidenceAt: st.EvidenceAt, At: now.UTC(),
		Registrations: make([]RegistrationView, 0, len(st.Registrations)), Devices: []DeviceView{}}
	// The devices st holds, less those past the map's device memory when the map
	// handed st out (Lookup, Page).
	for _, d := range st.devices(now, st.forgetBefore) {
		dv := DeviceView{Key: d.Key, Contact: d.Contact, Profile: d.Profile, UserAgent: d.UserAgent,
			Registered: d.Registered, Deliverable: d.Deliverable, Reach: d.Reach, RegisteredAt: d.RegisteredAt,
			LastAlive: d.LastAlive, EndedAt: d.EndedAt}
		if !d.EndedAt.IsZero() {
			dv.EndedAgo = seconds(now.Sub(d.EndedAt))
		}
		v.Devices = append(v.Devices, dv)
	}
	if !st.EvidenceAt.IsZero() {
		v.EvidenceAge = seconds(now.Sub(st.EvidenceAt))
	}
	for _, r := range st.Registrations {
		v.Registrations = append(v.Registrations, RegistrationView{
			CallID: r.CallID, Contact: r.Contact, NetworkIP: r.NetworkIP, NetworkPort: r.NetworkPort,
			Profile: r.Profile, UserAgent: r.UserAgent, Reach: r.Reach, PingStatus: r.PingStatus,
			Expires: r.Expires, ExpiresIn: seconds(r.Expires.Sub(now)), Registered: r.RegisteredAt,
			Updated: r.Updated, LastPing: r.LastPing, PingRTTms: float64(r.PingRTT.Microseconds()) / 1000,
			PingMisses: r.PingMisses, LastAlive: r.LastAlive,
		})
		if r.Expires.After(now) && r.LastAlive.After(v.LastAlive) {
			v.LastAlive = r.LastAlive
		}
	}
	return v
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// Page returns the states of up to limit AORs after the AOR after, in AOR order,
// and the AOR to continue after ("" on the last page). It copies only the page,
// not the whole map.
func (m *Map) Page(after string, limit int) ([]State, string) {
	now := m.now()
	m.mu.RLock()
	keys := make([]string, 0, len(m.aors))
	for aor := range m.aors {
		if aor > after {
			keys = append(keys, aor)
		}
	}
	sort.Strings(keys)
	next := ""
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
		next = keys[limit-1]
	}
	out := make([]State, 0, len(keys))
	for _, aor := range keys {
		c := m.aors[aor].clone()
		c.Registered = c.registered(now)
		c.forgetBefore = now.Add(-m.memory)
		c.forget(c.forgetBefore)
		out = append(out, c)
	}
	m.mu.RUnlock()
	return out, next
}

// Now is the map's clock, so that views of its states are taken on the same one.
func (m *Map) Now() time.Time { return m.now() }

// Lookup returns a copy of aor's state and whether presence holds one at all
// (Get answers Unknown for both "never seen" and "seen, nothing known").
func (m *Map) Lookup(aor string) (State, bool) {
	m.mu.RLock()
	st, ok := m.aors[aor]
	var out State
	if ok {
		out = st.clone()
	}
	m.mu.RUnlock()
	if ok {
		now := m.now()
		out.Registered = out.registered(now)
		out.forgetBefore = now.Add(-m.memory)
		out.forget(out.forgetBefore)
	}
	return out, ok
}
