package daemon

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/presence"
)

// reachability joins presence's map and sipsilo's own pinger for relay: the
// probe before a delivery (relay.Prober) and the contacts for the direct path
// (relay.Contacts).
type reachability struct {
	m    *presence.Map
	p    *presence.Pinger
	mode presence.PingMode
	// probeAfter: a recipient whose last proof of life is older is probed first.
	probeAfter time.Duration
	// direct: the direct path is on; a contact that answered sipsilo's OPTIONS
	// within freshFor may be sent to directly.
	direct   bool
	freshFor time.Duration
	now      func() time.Time
	// loopbackOnly: the pinger's socket is bound to a loopback address, from
	// which no phone elsewhere can be reached; judging such phones by pings that
	// cannot arrive would flush every registration from FreeSWITCH.
	loopbackOnly bool
}

// all is every target the pinger should ping.
func (r *reachability) all() []presence.Target { return r.pingable(r.m.Targets(r.mode)) }

// pingable keeps the targets the pinger's socket can reach.
func (r *reachability) pingable(ts []presence.Target) []presence.Target {
	if !r.loopbackOnly {
		return ts
	}
	out := ts[:0:0]
	for _, t := range ts {
		host, _, err := net.SplitHostPort(t.Dest)
		if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
			out = append(out, t)
		}
	}
	return out
}

// Check implements relay.Prober: true unless every contact sipsilo can ping was
// probed and none answered. It probes when the recipient's last proof of life is
// older than probeAfter, and, with the direct path on, when no contact has a fresh
// answer yet (a phone that just registered: one round trip opens the direct path
// for the whole batch). Contacts sipsilo cannot ping (NAT in direct mode, TCP,
// TLS) are left to FreeSWITCH's view (DESIGN.md, Decisions 8).
func (r *reachability) Check(ctx context.Context, aor string) bool {
	if r.p == nil {
		return true
	}
	targets := r.pingable(r.m.TargetsFor(aor, r.mode))
	if len(targets) == 0 {
		return true
	}
	stale := r.now().Sub(r.m.LastAlive(aor)) >= r.probeAfter
	if !stale && !(r.direct && !r.fresh(aor)) {
		return true
	}
	alive := make(chan bool, len(targets))
	for _, t := range targets {
		go func() { alive <- r.p.Probe(ctx, t).Alive }() // each bounded by the probe timeout
	}
	ok := false
	for range targets {
		ok = <-alive || ok
	}
	return ok
}

// DirectTarget implements relay.Contacts: a UDP contact reached without NAT that
// answered sipsilo's last OPTIONS recently.
func (r *reachability) DirectTarget(aor string) (uri, dest string, ok bool) {
	if r.p == nil || !r.direct {
		return "", "", false
	}
	t, ok := r.freshTarget(aor)
	return t.URI, t.Dest, ok
}

func (r *reachability) fresh(aor string) bool {
	_, ok := r.freshTarget(aor)
	return ok
}

func (r *reachability) freshTarget(aor string) (presence.Target, bool) {
	st := r.m.Get(aor)
	now := r.now()
	for _, t := range r.pingable(r.m.TargetsFor(aor, presence.PingDirect)) {
		for _, reg := range st.Registrations {
			if reg.CallID == t.CallID && reg.Reach == presence.Reachable && reg.PingMisses == 0 &&
				!reg.LastPing.IsZero() && now.Sub(reg.LastAlive) <= r.freshFor {
				return t, true
			}
		}
	}
	return presence.Target{}, false
}

// flusher asks FreeSWITCH to drop registrations sipsilo's pinger found dead
// (`sofia profile <p> flush_inbound_reg <call-id>`), as the seed paper's
// presence server removed users that stopped answering. It runs the commands
// one at a time off the pinger's goroutines.
type flusher struct {
	client  *esl.Client
	profile string // when the registration does not name one
	reqs    chan presence.Registration
	log     *slog.Logger
}

func newFlusher(c *esl.Client, profile string, log *slog.Logger) *flusher {
	return &flusher{client: c, profile: profile, reqs: make(chan presence.Registration, 256), log: log}
}

// request queues a flush; when the queue is full the registration is left to
// FreeSWITCH's own expiry and the miss is logged.
func (f *flusher) request(aor string, r presence.Registration) {
	select {
	case f.reqs <- r:
	default:
		f.log.Warn("flush queue full; leaving the registration to FreeSWITCH's expiry", "call_id", r.CallID)
	}
}

func (f *flusher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-f.reqs:
			p := r.Profile
			if p == "" {
				p = f.profile
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			out, err := f.client.API(actx, "sofia profile "+p+" flush_inbound_reg "+r.CallID)
			cancel()
			if err != nil {
				f.log.Warn("flush_inbound_reg failed", "call_id", r.CallID, "err", err, "reply", out)
				continue
			}
			f.log.Info("asked FreeSWITCH to drop an unreachable registration", "call_id", r.CallID)
		}
	}
}
