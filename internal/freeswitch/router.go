// Package freeswitch is sipsilo's FreeSWITCH adapter: what is specific to
// FreeSWITCH's event socket, kept out of relay and presence so that another PBX
// can feed them through the same interfaces. The Router reads FreeSWITCH's event
// stream (bodies to the body tracker, the rest to presence), resyncs
// registrations after every (re)connection and tells delivery when FreeSWITCH
// restarted; the Flusher asks FreeSWITCH to drop registrations sipsilo's pinger
// found dead; Sender gives relay the bgapi command connection.
package freeswitch

import (
	"context"
	"log/slog"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/presence"
)

// Presence is what the Router feeds: FreeSWITCH's registration events translated
// by PresenceEvent, and a snapshot of a profile's registrations after each
// (re)connection (presence.Map).
type Presence interface {
	ApplyEvent(ctx context.Context, ev presence.Event) error
	Resync(ctx context.Context, profile, xmlstatus, coreUUID string) error
	SetSoleProfiles(sole map[string]bool)
}

// Bodies takes the exact body of a message sipsilo took over (relay.Bodies).
type Bodies interface {
	Confirm(ctx context.Context, id, coreUUID string, seq uint64, body []byte)
}

// Delivery is told when FreeSWITCH restarted and when registrations were
// resynced (relay.Relay).
type Delivery interface {
	FreeSWITCHRestarted()
	WakeAll()
}

// RouterConfig connects a Router.
type RouterConfig struct {
	Client   *esl.Client
	Presence Presence
	Bodies   Bodies
	Delivery Delivery
	Profiles []string // sofia profiles resynced on every (re)connection
	// ResyncEvery is how often the registrations are resynced while connected
	// (default 5 min; negative: only at (re)connection). FreeSWITCH's own
	// registration reads can fail ("SQLite is BUSY": chat says nobody to send
	// to, sofia_contact not registered), after which presence drops a
	// registration that still exists and no event brings it back before the
	// phone's next REGISTER (docs/decisions.md §22).
	ResyncEvery time.Duration
	Logger      *slog.Logger
}

// DefaultResyncEvery is RouterConfig.ResyncEvery's default.
const DefaultResyncEvery = 5 * time.Minute

// Router is the one consumer of the ESL event stream: it keeps FreeSWITCH's
// order, hands the post-chatplan MESSAGE bodies to the body tracker and the rest
// to presence, and resyncs after every (re)connection, whose gap lost events.
type Router struct {
	client   *esl.Client
	pres     Presence
	bodies   Bodies
	relay    Delivery
	profiles []string
	log      *slog.Logger
	// sole: the profiles that keep one registration per user, read at every
	// (re)connection; used only on Run's goroutine.
	sole map[string]bool
	// every is the periodic resync's period; core the Core-UUID of the current
	// connection ("" before the first), used only on Run's goroutine.
	every time.Duration
	core  string
}

// NewRouter returns a Router; nothing happens until Run.
func NewRouter(cfg RouterConfig) *Router {
	every := cfg.ResyncEvery
	if every == 0 {
		every = DefaultResyncEvery
	}
	return &Router{client: cfg.Client, pres: cfg.Presence, bodies: cfg.Bodies, relay: cfg.Delivery,
		profiles: cfg.Profiles, every: every, log: cfg.Logger.With("component", "esl-events")}
}

// Run routes events until ctx ends, then returns nil.
func (r *Router) Run(ctx context.Context) error {
	var tick <-chan time.Time
	if r.every > 0 {
		t := time.NewTicker(r.every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-r.client.Connected():
			r.connected(ctx, c)
		case e := <-r.client.Events():
			r.route(ctx, e)
		case <-tick:
			// On this goroutine, between events, like the resync at connect:
			// events queued behind the snapshot are applied after it.
			if r.core != "" && r.client.Up() {
				r.resync(ctx, r.core)
			}
		}
	}
}

// connected resyncs registrations before reading the new connection's events.
// Events already queued behind the snapshot are older or newer than it; presence
// applies each by (Core-UUID, Event-Sequence), and the register/unregister pairs it
// may replay end in the state FreeSWITCH is in.
func (r *Router) connected(ctx context.Context, c esl.Connected) {
	r.log.Info("ESL connected", "core_uuid", c.CoreUUID, "restarted", c.Restarted, "count", c.Count)
	if c.Restarted {
		r.relay.FreeSWITCHRestarted()
	}
	r.core = c.CoreUUID
	r.readProfiles(ctx)
	r.resync(ctx, c.CoreUUID)
	r.relay.WakeAll()
}

// resync replaces presence's view of each profile's registrations with
// FreeSWITCH's list; presence wakes relay for every deliverable AOR it covered.
func (r *Router) resync(ctx context.Context, core string) {
	for _, p := range r.profiles {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := r.client.API(actx, "sofia xmlstatus profile "+p+" reg")
		cancel()
		if err == nil {
			err = r.pres.Resync(ctx, p, out, core)
		}
		if err != nil {
			r.log.Error("registration resync failed; relying on events", "profile", p, "err", err)
		}
	}
}

// readProfiles learns which profiles keep one registration per user
// (docs/decisions.md §28) and tells presence. When FreeSWITCH's XML does not show
// them, registrations are taken as devices of their own.
func (r *Router) readProfiles(ctx context.Context) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	out, err := r.client.API(actx, "xml_locate configuration configuration name sofia.conf")
	cancel()
	r.sole = nil
	if err == nil {
		r.sole = soleProfiles(out, r.profiles)
	}
	r.pres.SetSoleProfiles(r.sole)
	for _, p := range r.profiles {
		sole, known := r.sole[p]
		switch {
		case !known:
			r.log.Info("profile's multiple-registrations not readable (xml_locate); each registration is a device", "profile", p)
		case sole:
			r.log.Info("profile keeps one registration per user: a user's registrations are one device", "profile", p)
		default:
			r.log.Info("profile keeps several registrations per user: each is a device", "profile", p)
		}
	}
}

func (r *Router) route(ctx context.Context, e *esl.Event) {
	if e.Name == "MESSAGE" {
		// The MESSAGE event after our chatplan carries sipsilo_id and the exact
		// body; other MESSAGE events (chat results, messages not ours) are not
		// presence evidence.
		if id := e.Get("sipsilo_id"); id != "" && e.Get("final_delivery") == "true" {
			r.bodies.Confirm(ctx, id, e.CoreUUID, e.Sequence, []byte(e.Body))
		}
		return
	}
	ev, ok, err := PresenceEvent(e)
	if err == nil && ok {
		ev.Sole = ev.Kind == presence.Registered && r.sole[ev.Profile]
		err = r.pres.ApplyEvent(ctx, ev)
	}
	if err != nil {
		r.log.Error("presence event not recorded", "event", e.Name, "subclass", e.Subclass, "err", err)
	}
}
