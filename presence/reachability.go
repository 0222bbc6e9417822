package presence

import (
	"context"
	"time"

	"github.com/sipsilo/sipsilo/internal/netaddr"
)

// Reachability joins the map and sipsilo's own pinger into what delivery asks
// before it sends: whether to probe a recipient first (relay.Prober) and which
// contact may be sent to directly (relay.Contacts). The rules are here, next to
// the map they read; the daemon only connects them.
type Reachability struct {
	m   *Map
	p   *Pinger
	cfg ReachabilityConfig
	// loopbackOnly: the pinger's socket is bound to a loopback address, from
	// which no phone elsewhere can be reached; judging such phones by pings that
	// cannot arrive would flush every registration from FreeSWITCH.
	loopbackOnly bool
}

// ReachabilityConfig sets when to probe and which contact is fresh.
type ReachabilityConfig struct {
	Mode PingMode // which contacts the pinger pings
	// ProbeAfter: a recipient whose last proof of life is older is probed first.
	ProbeAfter time.Duration
	// Direct: the direct path is on; a contact that answered sipsilo's OPTIONS
	// within FreshFor may be sent to directly.
	Direct   bool
	FreshFor time.Duration
	Now      func() time.Time // default time.Now
}

// NewReachability returns the rules over m; SetPinger gives them the pinger,
// which itself needs Targets, before either runs.
func NewReachability(m *Map, cfg ReachabilityConfig) *Reachability {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reachability{m: m, cfg: cfg}
}

// SetPinger connects the pinger that probes. Call it once, before the pinger
// or relay run.
func (r *Reachability) SetPinger(p *Pinger) {
	r.p = p
	r.loopbackOnly = netaddr.IsLoopback(p.Addr())
}

// LoopbackOnly reports whether the pinger can reach only phones on this host.
func (r *Reachability) LoopbackOnly() bool { return r.loopbackOnly }

// Targets is every target the pinger should ping.
func (r *Reachability) Targets() []Target { return r.pingable(r.m.PingTargets(r.cfg.Mode)) }

// pingable keeps the targets the pinger's socket can reach.
func (r *Reachability) pingable(ts []Target) []Target {
	if !r.loopbackOnly {
		return ts
	}
	out := ts[:0:0]
	for _, t := range ts {
		if netaddr.IsLoopback(t.Dest) {
			out = append(out, t)
		}
	}
	return out
}

// Check implements relay.Prober: true unless every contact sipsilo can ping was
// probed and none answered. It probes when the recipient's last proof of life is
// older than ProbeAfter, and, with the direct path on, when no contact has a fresh
// answer yet (a phone that just registered: one round trip opens the direct path
// for the whole batch). Contacts sipsilo cannot ping (NAT in direct mode, TCP,
// TLS) are left to FreeSWITCH's view (docs/decisions.md §8).
func (r *Reachability) Check(ctx context.Context, aor string) bool {
	if r.p == nil {
		return true
	}
	return r.check(ctx, r.pingable(r.m.TargetsFor(aor, r.cfg.Mode)), r.m.LastAlive(aor),
		func() bool { return r.fresh(aor, "") })
}

// CheckDevice is Check for one device of aor (relay's per-device lanes): it probes
// only that device's contacts and judges by its own last proof of life, so a silent
// device's probe never holds up another's delivery.
func (r *Reachability) CheckDevice(ctx context.Context, aor, key string) bool {
	if r.p == nil {
		return true
	}
	var targets []Target
	for _, t := range r.pingable(r.m.TargetsFor(aor, r.cfg.Mode)) {
		if t.Device == key {
			targets = append(targets, t)
		}
	}
	return r.check(ctx, targets, r.m.deviceLastAlive(aor, key), func() bool { return r.fresh(aor, key) })
}

func (r *Reachability) check(ctx context.Context, targets []Target, lastAlive time.Time, fresh func() bool) bool {
	if len(targets) == 0 {
		return true
	}
	stale := r.cfg.Now().Sub(lastAlive) >= r.cfg.ProbeAfter
	if !stale && !(r.cfg.Direct && !fresh()) {
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

// OutOfReach reports whether aor has a registered device that sipsilo's own
// socket cannot reach: behind NAT with --ping direct, over TCP or TLS, or off
// this host while the pinger is bound to loopback. Beside a switch that cannot
// confirm a delivery (Asterisk, docs/decisions.md §33) such a device would get
// nothing from sipsilo, so the intake leaves its messages to the switch.
func (r *Reachability) OutOfReach(aor string) bool {
	if r.p == nil || !r.cfg.Direct {
		return false
	}
	reached := make(map[string]bool)
	for _, t := range r.pingable(r.m.TargetsFor(aor, r.cfg.Mode)) {
		reached[t.Device] = true
	}
	for _, d := range r.m.Devices(aor) {
		if d.Registered && !reached[d.Key] {
			return true
		}
	}
	return false
}

// DirectTarget implements relay.Contacts: a UDP contact reached without NAT that
// answered sipsilo's last OPTIONS recently.
func (r *Reachability) DirectTarget(aor string) (uri, dest string, ok bool) {
	return r.DirectTargetDevice(aor, "")
}

// DirectTargetDevice is DirectTarget for one device of aor: that device's
// contact, when it qualifies. key "" means any device of aor.
func (r *Reachability) DirectTargetDevice(aor, key string) (uri, dest string, ok bool) {
	if r.p == nil || !r.cfg.Direct {
		return "", "", false
	}
	t, ok := r.freshTarget(aor, key)
	return t.URI, t.Dest, ok
}

func (r *Reachability) fresh(aor, key string) bool {
	_, ok := r.freshTarget(aor, key)
	return ok
}

// freshTarget finds a contact of aor (of its device key, unless key is "") that
// answered sipsilo's last OPTIONS within FreshFor.
func (r *Reachability) freshTarget(aor, key string) (Target, bool) {
	st := r.m.Get(aor)
	now := r.cfg.Now()
	for _, t := range r.pingable(r.m.TargetsFor(aor, PingDirect)) {
		if key != "" && t.Device != key {
			continue
		}
		for _, reg := range st.Registrations {
			if reg.CallID == t.CallID && reg.Reach == Reachable && reg.PingMisses == 0 &&
				!reg.LastPing.IsZero() && now.Sub(reg.LastAlive) <= r.cfg.FreshFor {
				return t, true
			}
		}
	}
	return Target{}, false
}
