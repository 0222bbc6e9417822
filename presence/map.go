package presence

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
)

// Reach is how sure sipsilo is that an AOR's device answers.
type Reach string

const (
	Unknown     Reach = "unknown"     // no evidence yet
	Reachable   Reach = "reachable"   // recent proof of life: REGISTER, REACHABLE, a 2xx
	Suspect     Reach = "suspect"     // FreeSWITCH said unreachable but could not say why (resync)
	Unreachable Reach = "unreachable" // strong evidence of death: no answer to pings or a delivery
)

// rank orders Reach values from best to worst for summarising several registrations.
func (r Reach) rank() int {
	switch r {
	case Reachable:
		return 0
	case Suspect:
		return 1
	case Unreachable:
		return 3
	default:
		return 2
	}
}

// Registration is one registration (one Call-ID) of an AOR, as FreeSWITCH has it.
type Registration struct {
	CallID      string    `json:"call_id"`
	Contact     string    `json:"contact,omitempty"`
	NetworkIP   string    `json:"network_ip,omitempty"`
	NetworkPort int       `json:"network_port,omitempty"`
	Expires     time.Time `json:"expires"`
	Profile     string    `json:"profile,omitempty"`
	UserAgent   string    `json:"user_agent,omitempty"`
	Reach       Reach     `json:"reach"`
	PingStatus  string    `json:"ping_status,omitempty"` // FreeSWITCH's last word: REACHABLE, UNREACHABLE, Reachable…
	Updated     time.Time `json:"updated"`
	// RegisteredAt is when sipsilo (by its own clock) saw this Call-ID's latest
	// REGISTER, or first saw it in a resync. ObserveSent compares it with the start
	// of a failed send: a registration newer than the send is not judged by it.
	RegisteredAt time.Time `json:"registered_at"`
	// What sipsilo's own pinger saw: the last answer or miss, its RTT and
	// the misses in a row. LastAlive is the last proof of life by sipsilo's clock (an
	// answered OPTIONS, a 2xx to a delivery). These change with every ping and are
	// persisted only along with a change that matters (see sameDurable).
	LastPing   time.Time     `json:"last_ping,omitzero"`
	PingRTT    time.Duration `json:"ping_rtt,omitempty"`
	PingMisses int           `json:"ping_misses,omitempty"`
	LastAlive  time.Time     `json:"last_alive,omitzero"`
	// Device is the stable key of the device this registration is
	// (docs/decisions.md §28): "instance:<+sip.instance>" or "contact:<reduced URI>",
	// inherited across re-registrations and restarts of the phone. Records written
	// before it existed get it computed on load.
	Device   string `json:"device,omitempty"`
	Instance string `json:"instance,omitempty"` // +sip.instance, when the PBX shows it
	// Revived is when a REGISTER brought back a Call-ID presence had seen end or die;
	// the PBX's verdicts of death shortly after it are stale (docs/decisions.md §28).
	Revived time.Time `json:"revived,omitzero"`
	// EndedAt is when the registration ended (State.Ended only).
	EndedAt time.Time `json:"ended_at,omitzero"`
}

// State is what presence knows about one AOR.
type State struct {
	AOR        string `json:"aor"`
	Registered bool   `json:"registered"` // some registration has not expired (computed on read)
	// Reach summarises the registrations: the best of theirs. With no registration
	// left it keeps its last value.
	Reach         Reach          `json:"reach"`
	Evidence      string         `json:"evidence,omitempty"` // what set the state last, e.g. "sofia::register", "delivery 2xx", "resync"
	EvidenceAt    time.Time      `json:"evidence_at"`
	Registrations []Registration `json:"registrations,omitempty"`
	// Ended remembers the devices whose registration ended (unregister, expiry,
	// flush, replaced, gone in a resync), one entry per device key, for
	// Config.DeviceMemory: a message received meanwhile still targets them.
	Ended    []Registration `json:"ended,omitempty"`
	LastCore string         `json:"last_core,omitempty"` // Core-UUID and Event-Sequence of the last applied event
	LastSeq  uint64         `json:"last_seq,omitempty"`
	// forgetBefore is the device memory's cutoff when the map handed the state out
	// (Lookup, Page), so its view leaves out what Targets leaves out.
	forgetBefore time.Time
}

// Store persists the map; *kv.Store satisfies it.
type Store interface {
	PutReach(ctx context.Context, aor string, rec []byte) error
	DeleteReach(ctx context.Context, aor string) error
	LoadReach() (map[string][]byte, error)
}

// Config configures New.
type Config struct {
	Store  Store
	Logger *slog.Logger
	Now    func() time.Time
	// OnReachable is called on every transition of one of an AOR's devices to
	// deliverable (registered and not unreachable), and after a Resync for each deliverable AOR it covered.
	// It is called after the change was persisted (or failed to be), outside presence's
	// locks, in the goroutine that made the change: it must not block for long.
	OnReachable func(aor string)
	// Profiles lists the sofia profiles to resync; default ["internal"].
	Profiles []string
	// PingMisses is how many of sipsilo's OPTIONS in a row a registration may miss
	// before it is unreachable; default 2 (docs/decisions.md §8).
	PingMisses int
	// OnUnreachable is called when sipsilo's pinger made a registration
	// unreachable (to ask FreeSWITCH to drop it), outside presence's locks.
	OnUnreachable func(aor string, r Registration)
	// OnDetected, if set, is told of each registration found unreachable: by
	// what (DetectPinger, DetectDelivery, DetectFreeSWITCH) and how long after its
	// last proof of life, for the detection latency metric. It is called outside
	// presence's locks and must not block.
	OnDetected func(source string, sinceAlive time.Duration)
	// DeviceMemory is how long a device whose registration ended stays a target of
	// new messages (docs/decisions.md §28); default DefaultDeviceMemory.
	DeviceMemory time.Duration
}

// DefaultDeviceMemory is Config.DeviceMemory's default: a week, so that an app that
// was off over a weekend still gets what arrived meanwhile.
const DefaultDeviceMemory = 7 * 24 * time.Hour

// Map is the reachability map. It is safe for concurrent use and runs no goroutines.
type Map struct {
	store       Store
	log         *slog.Logger
	now         func() time.Time
	onReachable func(aor string)
	onUnreach   func(aor string, r Registration)
	onDetected  func(source string, sinceAlive time.Duration)
	pingMisses  int
	profiles    []string
	memory      time.Duration

	// wmu serialises changes (read, compute, install, persist), so the store sees
	// them in the order they were made. Readers never wait for it, nor for an fsync.
	wmu     sync.Mutex
	stored  map[string]bool // AORs with a record in the store; guarded by wmu
	sole    map[string]bool // profiles with one registration per user; guarded by wmu
	unsaved map[string]bool // AORs whose last write failed; guarded by wmu

	mu   sync.RWMutex
	aors map[string]*State // installed states are never modified, only replaced
}

// New builds the map from the store's records. A record that cannot be decoded is
// logged and skipped (the next change of that AOR overwrites it): presence is a cache
// that a resync refills, and a bad record must not stop sipsilo from starting.
func New(cfg Config) (*Map, error) {
	if cfg.Store == nil {
		return nil, errors.New("presence: no store")
	}
	m := &Map{
		store:       cfg.Store,
		log:         cfg.Logger,
		now:         cfg.Now,
		onReachable: cfg.OnReachable,
		onUnreach:   cfg.OnUnreachable,
		onDetected:  cfg.OnDetected,
		pingMisses:  cfg.PingMisses,
		profiles:    slices.Clone(cfg.Profiles),
		memory:      cfg.DeviceMemory,
		stored:      make(map[string]bool),
		unsaved:     make(map[string]bool),
		aors:        make(map[string]*State),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if len(m.profiles) == 0 {
		m.profiles = []string{"internal"}
	}
	if m.memory <= 0 {
		m.memory = DefaultDeviceMemory
	}
	if m.pingMisses <= 0 {
		m.pingMisses = 2
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// Profiles returns the sofia profiles to resync.
func (m *Map) Profiles() []string { return slices.Clone(m.profiles) }

// Get returns a copy of aor's state; an AOR presence knows nothing about is
// unregistered and Unknown.
func (m *Map) Get(aor string) State {
	m.mu.RLock()
	st, ok := m.aors[aor]
	var out State
	if ok {
		out = st.clone()
	}
	m.mu.RUnlock()
	if !ok {
		return State{AOR: aor, Reach: Unknown}
	}
	out.Registered = out.registered(m.now())
	return out
}

// Deliverable reports whether aor has a registration that has not expired and is not
// known to be unreachable.
func (m *Map) Deliverable(aor string) bool {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.aors[aor]
	return ok && st.deliverable(now)
}

// All returns a copy of every AOR's state, sorted by AOR. It includes AORs whose
// registrations are gone but whose ordering mark is still kept (Registered false).
func (m *Map) All() []State {
	now := m.now()
	m.mu.RLock()
	out := make([]State, 0, len(m.aors))
	for _, st := range m.aors {
		c := st.clone()
		c.Registered = c.registered(now)
		out = append(out, c)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].AOR < out[j].AOR })
	return out
}

func (st *State) clone() State {
	c := *st
	c.Registrations = slices.Clone(st.Registrations)
	c.Ended = slices.Clone(st.Ended)
	return c
}

func (st *State) registered(now time.Time) bool {
	for i := range st.Registrations {
		if st.Registrations[i].Expires.After(now) {
			return true
		}
	}
	return false
}

// deliverable: some live registration is not unreachable. With one registration this
// is "registered and Reach != Unreachable"; with several, an expired one cannot make
// the AOR look deliverable.
func (st *State) deliverable(now time.Time) bool {
	for i := range st.Registrations {
		r := &st.Registrations[i]
		if r.Expires.After(now) && r.Reach != Unreachable {
			return true
		}
	}
	return false
}

// summarise sets the AOR's Reach to the best of its registrations'.
func (st *State) summarise() {
	if len(st.Registrations) == 0 {
		return
	}
	best := st.Registrations[0].Reach
	for _, r := range st.Registrations[1:] {
		if r.Reach.rank() < best.rank() {
			best = r.Reach
		}
	}
	st.Reach = best
}

// accept applies the ordering rule (package doc) and, for a newer event, records it
// as the last one applied.
func (st *State) accept(core string, seq uint64) bool {
	if core == st.LastCore && seq <= st.LastSeq {
		return false
	}
	st.LastCore, st.LastSeq = core, seq
	return true
}

func (st *State) find(callID string) int {
	for i := range st.Registrations {
		if st.Registrations[i].CallID == callID {
			return i
		}
	}
	return -1
}

// change computes an AOR's new state from a copy of its current one (known is false
// for an AOR the map does not hold). It returns false when nothing changed.
type change func(st *State, known bool, now time.Time) bool

// update runs fn for aor, installs and persists the result, and reports whether one
// of aor's devices became deliverable. The in-memory state is installed even when persisting fails:
// delivery decisions must follow the evidence, and the store only serves restarts.
func (m *Map) update(ctx context.Context, aor string, fn change) (bool, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	now := m.now()
	m.mu.RLock()
	cur, known := m.aors[aor]
	m.mu.RUnlock()
	st := State{AOR: aor, Reach: Unknown}
	if known {
		st = cur.clone()
	}
	if !fn(&st, known, now) {
		return false, nil
	}
	st.forget(now.Add(-m.memory))
	st.summarise()
	st.Registered = st.registered(now)
	m.mu.Lock()
	m.aors[aor] = &st
	m.mu.Unlock()
	// Waking follows devices, not the AOR: a device that registers again while
	// another of the AOR's stays deliverable has copies waiting for it
	// (docs/decisions.md §28). With one device the two are the same.
	var before *State
	if known {
		before = cur
	}
	became := st.newlyDeliverable(before, now)
	if known && sameDurable(cur, &st) && !m.unsaved[aor] {
		// Only evidence and ping metrics moved: an fsync per ping or per delivery
		// would buy a restart nothing it cannot learn again in seconds.
		return became, nil
	}
	err := m.persist(ctx, &st)
	if err != nil {
		m.unsaved[aor] = true // the next change writes it, whatever it is
	} else {
		delete(m.unsaved, aor)
	}
	return became, err
}

// sameDurable reports whether a and b differ only in what is not worth a write:
// the evidence text and time, and the per-ping fields of the registrations.
func sameDurable(a, b *State) bool {
	if a.AOR != b.AOR || a.Reach != b.Reach || a.LastCore != b.LastCore || a.LastSeq != b.LastSeq ||
		len(a.Registrations) != len(b.Registrations) || !slices.Equal(a.Ended, b.Ended) {
		return false
	}
	for i := range a.Registrations {
		x, y := a.Registrations[i], b.Registrations[i]
		x.Updated, x.LastPing, x.PingRTT, x.PingMisses, x.LastAlive = time.Time{}, time.Time{}, 0, 0, time.Time{}
		y.Updated, y.LastPing, y.PingRTT, y.PingMisses, y.LastAlive = time.Time{}, time.Time{}, 0, 0, time.Time{}
		if x != y {
			return false
		}
	}
	return true
}

func (m *Map) notify(aor string) {
	if m.onReachable != nil {
		m.onReachable(aor)
	}
}

// StillUnreachable reports whether aor still holds registration r as it was
// when judged unreachable: same Call-ID, no REGISTER since, still unreachable.
// The flusher asks it just before dropping r in the PBX, so a phone that
// registered again meanwhile is not dropped with the dead registration it
// replaced (the same Call-ID).
func (m *Map) StillUnreachable(aor string, r Registration) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.aors[aor]
	if !ok {
		return false
	}
	i := st.find(r.CallID)
	if i < 0 {
		return false
	}
	cur := &st.Registrations[i]
	return cur.Reach == Unreachable && !cur.RegisteredAt.After(r.RegisteredAt)
}
