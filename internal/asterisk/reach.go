package asterisk

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipsilo/sipsilo/presence"
)

// Presence is what Reach feeds (presence.Map).
type Presence interface {
	ApplyEvent(ctx context.Context, ev presence.Event) error
}

// Actions runs AMI actions (Client).
type Actions interface {
	Action(ctx context.Context, action string, fields ...Field) (*Result, error)
}

// ReachConfig connects a Reach.
type ReachConfig struct {
	AMI      Actions
	Presence Presence
	// Domain is the host of every AOR: Asterisk names AORs without one
	// (handlers.AsteriskConfig.Domain is the same).
	Domain string
	// ResyncEvery reads the contact list again although no event asked for
	// it: Asterisk reports neither a refreshing REGISTER nor a contact replaced
	// by another (remove_existing), so expiry times only come from the list.
	ResyncEvery time.Duration // default 30 s
	// Queue bounds the events waiting to be applied; when it is full the
	// events are dropped and a resync is due instead.
	Queue  int // default 4096
	Logger *slog.Logger
}

// Reach turns AMI's contact events into presence events (docs/decisions.md
// §32): the contact list (PJSIPShowContacts) after every login and every
// ResyncEvery, ContactStatus in between. Give OnEvent and OnConnect to the
// Client's Config; Run applies them in order on one goroutine.
type Reach struct {
	cfg    ReachConfig
	log    *slog.Logger
	in     chan item
	lost   atomic.Bool // events were dropped: resync
	seq    uint64
	stream string
	// known are the contacts presence holds, by AOR and contact URI, with
	// their Call-IDs (ContactStatus names a contact by URI only) and the
	// expiry last listed.
	known map[string]map[string]listed

	Resyncs, Applied, Dropped atomic.Int64
}

// listed is what the contact list said of one contact.
type listed struct {
	callID string
	exp    string
}

type item struct {
	resync  bool
	session string
	ev      Message
}

// NewReach returns a Reach; nothing is applied until Run.
func NewReach(cfg ReachConfig) *Reach {
	if cfg.ResyncEvery <= 0 {
		cfg.ResyncEvery = 30 * time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reach{cfg: cfg, log: log.With("component", "ami-reach"), in: make(chan item, cfg.Queue),
		known: map[string]map[string]listed{}}
}

// OnEvent is the Client's Config.OnEvent: it queues contact events and never
// blocks.
func (r *Reach) OnEvent(session string, ev Message) {
	if ev.Get("Event") != "ContactStatus" {
		return
	}
	r.put(item{session: session, ev: ev})
}

// OnConnect is the Client's Config.OnConnect: events may have been missed
// while disconnected, so the list is read again.
func (r *Reach) OnConnect(_ context.Context, session string) {
	r.put(item{resync: true, session: session})
}

func (r *Reach) put(it item) {
	select {
	case r.in <- it:
	default:
		r.Dropped.Add(1)
		r.lost.Store(true)
	}
}

// Run applies queued events and resyncs until ctx ends.
func (r *Reach) Run(ctx context.Context) error {
	tick := time.NewTicker(r.cfg.ResyncEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.resync(ctx, r.stream)
		case it := <-r.in:
			if it.resync || r.lost.Swap(false) {
				r.resync(ctx, it.session)
			}
			if !it.resync {
				r.apply(ctx, it.session, it.ev)
			}
		}
	}
}

func (r *Reach) next(session string) (string, uint64) {
	if session != "" && session != r.stream {
		r.stream, r.seq = session, 0
	}
	r.seq++
	return "ami:" + r.stream, r.seq
}

// apply translates one ContactStatus.
func (r *Reach) apply(ctx context.Context, session string, ev Message) {
	aor, uri := ev.Get("AOR"), ev.Get("URI")
	if aor == "" || uri == "" {
		return
	}
	prev, ok := r.known[aor][uri]
	callID := prev.callID
	status := ev.Get("ContactStatus")
	switch status {
	case "Removed":
		if !ok {
			return
		}
		delete(r.known[aor], uri)
		r.send(ctx, session, presence.Event{Kind: presence.Removed, AOR: r.aor(aor), CallID: callID, Contact: uri})
	case "Reachable", "Unreachable":
		if !ok {
			r.resync(ctx, session) // a contact not seen yet: its details are in the list
			return
		}
		reach := presence.Reachable
		if status == "Unreachable" {
			reach = presence.Unreachable
		}
		r.send(ctx, session, presence.Event{Kind: presence.ReachChanged, AOR: r.aor(aor), CallID: callID,
			Contact: uri, Reach: reach, Status: status})
	default: // Created, NonQualified, Updated, Unknown: a (new) registration
		r.resync(ctx, session)
	}
}

// resync reads the contact list: each listed contact is (re)registered, each
// one presence holds that is no longer listed is removed.
func (r *Reach) resync(ctx context.Context, session string) {
	res, err := r.cfg.AMI.Action(ctx, "PJSIPShowContacts")
	if err != nil && !(res != nil && strings.Contains(res.Response.Get("Message"), "No Contacts")) {
		if ctx.Err() == nil {
			r.log.Warn("contact list not read", "err", err)
			r.lost.Store(true) // try again with the next event or tick
		}
		return
	}
	r.Resyncs.Add(1)
	now := time.Now()
	seen := map[string]map[string]listed{}
	var events []presence.Event
	if res != nil {
		for _, c := range res.Events {
			if c.Get("Event") != "ContactList" {
				continue
			}
			ev, ok := contactEvent(c, now, r.cfg.ResyncEvery)
			if !ok {
				continue
			}
			aor := c.Get("Endpoint")
			if i := strings.IndexByte(c.Get("ObjectName"), ';'); i > 0 {
				aor = c.Get("ObjectName")[:i] // the AOR's name; the endpoint's is the same in the usual setup
			}
			if seen[aor] == nil {
				seen[aor] = map[string]listed{}
			}
			now := listed{callID: ev.CallID, exp: c.Get("ExpirationTime")}
			seen[aor][ev.Contact] = now
			if r.known[aor][ev.Contact] == now {
				continue // unchanged since the last list: no news, and no proof of life
			}
			// New or refreshed: a REGISTER, which is proof of life.
			ev.AOR = r.aor(aor)
			events = append(events, ev)
			if st := c.Get("Status"); st == "Unreachable" {
				events = append(events, presence.Event{Kind: presence.ReachChanged, AOR: ev.AOR, CallID: ev.CallID,
					Contact: ev.Contact, Reach: presence.Unreachable, Status: st})
			}
		}
	}
	for aor, contacts := range r.known {
		for uri, l := range contacts {
			if _, ok := seen[aor][uri]; !ok {
				events = append(events, presence.Event{Kind: presence.Removed, AOR: r.aor(aor), CallID: l.callID, Contact: uri})
			}
		}
	}
	r.known = seen
	for _, ev := range events {
		r.send(ctx, session, ev)
	}
}

// contactEvent is a Registered event for one ContactList entry. Its expiry
// gets one resync period more: a refresh shows only in the next list.
func contactEvent(c Message, now time.Time, grace time.Duration) (presence.Event, bool) {
	uri, callID := c.Get("Uri"), c.Get("CallId")
	exp, err := strconv.ParseInt(c.Get("ExpirationTime"), 10, 64)
	if uri == "" || callID == "" || err != nil || exp <= 0 {
		return presence.Event{}, false
	}
	in := time.Unix(exp, 0).Sub(now)
	if in < 0 {
		in = 0
	}
	port, _ := strconv.Atoi(c.Get("ViaPort"))
	return presence.Event{Kind: presence.Registered, CallID: callID, Contact: uri, Profile: c.Get("Endpoint"),
		UserAgent: c.Get("UserAgent"), NetworkIP: c.Get("ViaAddr"), NetworkPort: port, ExpiresIn: in + grace,
		Source: "ami PJSIPShowContacts"}, true
}

func (r *Reach) send(ctx context.Context, session string, ev presence.Event) {
	if ev.Source == "" {
		ev.Source = "ami ContactStatus"
	}
	ev.Detector = presence.DetectAsterisk
	ev.Stream, ev.Seq = r.next(session)
	ev.At = time.Now()
	if err := r.cfg.Presence.ApplyEvent(ctx, ev); err != nil {
		r.log.Warn("presence refused an AMI event", "kind", int(ev.Kind), "err", err)
		return
	}
	r.Applied.Add(1)
}

func (r *Reach) aor(name string) string { return name + "@" + r.cfg.Domain }
