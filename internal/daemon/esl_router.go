package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// eslRouter is the one consumer of the ESL event stream: it keeps FreeSWITCH's
// order, hands the post-chatplan MESSAGE bodies to the body tracker and the rest
// to presence, and resyncs after every (re)connection, whose gap lost events.
type eslRouter struct {
	client   *esl.Client
	pres     *presence.Map
	bodies   *relay.Bodies
	relay    *relay.Relay
	profiles []string
	log      *slog.Logger
}

func (r *eslRouter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-r.client.Connected():
			r.connected(ctx, c)
		case e := <-r.client.Events():
			r.route(ctx, e)
		}
	}
}

// connected resyncs registrations before reading the new connection's events.
// Events already queued behind the snapshot are older or newer than it; presence
// applies each by (Core-UUID, Event-Sequence), and the register/unregister pairs it
// may replay end in the state FreeSWITCH is in.
func (r *eslRouter) connected(ctx context.Context, c esl.Connected) {
	r.log.Info("ESL connected", "core_uuid", c.CoreUUID, "restarted", c.Restarted, "count", c.Count)
	if c.Restarted {
		r.relay.FreeSWITCHRestarted()
	}
	for _, p := range r.profiles {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := r.client.API(actx, "sofia xmlstatus profile "+p+" reg")
		cancel()
		if err == nil {
			err = r.pres.Resync(ctx, p, out, c.CoreUUID)
		}
		if err != nil {
			r.log.Error("registration resync failed; relying on events", "profile", p, "err", err)
		}
	}
	r.relay.WakeAll()
}

func (r *eslRouter) route(ctx context.Context, e *esl.Event) {
	if e.Name == "MESSAGE" {
		// The MESSAGE event after our chatplan carries sipsilo_id and the exact
		// body; other MESSAGE events (chat results, messages not ours) are not
		// presence evidence.
		if id := e.Get("sipsilo_id"); id != "" && e.Get("final_delivery") == "true" {
			r.bodies.Confirm(ctx, id, e.CoreUUID, e.Sequence, []byte(e.Body))
		}
		return
	}
	if err := r.pres.Apply(ctx, e); err != nil {
		r.log.Error("presence event not recorded", "event", e.Name, "subclass", e.Subclass, "err", err)
	}
}

// presenceFeed adapts presence.Map to what relay needs.
type presenceFeed struct {
	m   *presence.Map
	log *slog.Logger
}

func (p presenceFeed) Deliverable(aor string) bool { return p.m.Deliverable(aor) }

func (p presenceFeed) Observe(ctx context.Context, aor string, o relay.Outcome, sentAt time.Time) {
	var po presence.Outcome
	switch o {
	case relay.Delivered2xx:
		po = presence.Delivered2xx
	case relay.Refused:
		po = presence.Refused
	case relay.NoAnswer:
		po = presence.NoAnswer
	case relay.NotRegistered:
		po = presence.NotRegistered
	default:
		return
	}
	if err := p.m.ObserveSent(ctx, aor, po, sentAt); err != nil {
		p.log.Error("delivery outcome not recorded in presence", "outcome", o.String(), "err", err)
	}
}
