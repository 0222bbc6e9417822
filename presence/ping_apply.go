package presence

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// PingObserved records one result of sipsilo's own pinger. Any final answer makes
// the registration reachable (docs/decisions.md §6); a first miss makes it
// suspect, and PingMisses misses in a row unreachable; reaching that count calls
// OnUnreachable.
// Results for a registration presence no longer holds are ignored. A REGISTER
// restarts the count (docs/decisions.md §28): misses are counted since the
// registration's latest REGISTER, and a miss of a ping sent before it is ignored
// (the phone that just registered is not the one that missed it).
func (m *Map) PingObserved(ctx context.Context, res PingResult) error {
	t := res.Target
	var gone *Registration
	var found []detection
	became, err := m.update(ctx, t.AOR, func(st *State, known bool, now time.Time) bool {
		i := st.find(t.CallID)
		if !known || i < 0 {
			return false
		}
		r := &st.Registrations[i]
		misses := res.Misses
		if !res.Alive {
			if !res.Started.IsZero() && res.Started.Before(r.RegisteredAt) {
				return false
			}
			misses = min(misses, r.PingMisses+1)
		}
		r.LastPing, r.PingMisses = res.At, misses
		switch {
		case res.Alive:
			r.PingRTT, r.LastAlive = res.RTT, res.At
			if r.Reach != Reachable {
				r.Reach, r.Updated = Reachable, now
				st.Evidence, st.EvidenceAt = "options "+strconv.Itoa(res.Status), res.At
			}
		case misses >= m.pingMisses:
			if r.Reach != Unreachable {
				if d, ok := detect(r, DetectPinger, res.At); ok {
					found = append(found, d)
				}
				r.Reach, r.Updated = Unreachable, now
				st.Evidence, st.EvidenceAt = fmt.Sprintf("options unanswered %d times", misses), res.At
			}
			// Flush once per run of misses, when the count reaches the limit, even
			// if a failed delivery already made the registration unreachable.
			if misses == m.pingMisses {
				c := *r
				gone = &c
			}
		default:
			if r.Reach == Reachable || r.Reach == Unknown {
				r.Reach, r.Updated = Suspect, now
				st.Evidence, st.EvidenceAt = "options unanswered", res.At
			}
		}
		return true
	})
	if became {
		m.notify(t.AOR)
	}
	m.reportDetections(found)
	if gone != nil && m.onUnreach != nil {
		m.onUnreach(t.AOR, *gone)
	}
	return err
}

// LastAlive is the newest proof of life of aor's registrations that have not
// expired, by sipsilo's clock: a REGISTER, an answered OPTIONS, a 2xx to a delivery.
// Zero when there is none.
func (m *Map) LastAlive(aor string) time.Time {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.aors[aor]
	if !ok {
		return time.Time{}
	}
	var last time.Time
	for _, r := range st.Registrations {
		if r.Expires.After(now) && r.LastAlive.After(last) {
			last = r.LastAlive
		}
	}
	return last
}

// PingTargets lists what sipsilo's pinger should ping in mode (all AORs). See
// TargetsFor.
func (m *Map) PingTargets(mode PingMode) []Target {
	if mode == PingOff {
		return nil
	}
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Target
	for _, st := range m.aors {
		out = appendTargets(out, st, mode, now)
	}
	return out
}

// TargetsFor lists aor's pingable registrations in mode.
func (m *Map) TargetsFor(aor string, mode PingMode) []Target {
	if mode == PingOff {
		return nil
	}
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.aors[aor]
	if !ok {
		return nil
	}
	return appendTargets(nil, st, mode, now)
}

// appendTargets adds st's live registrations that sipsilo can ping: UDP contacts
// only (a TCP, TLS or WebSocket contact is a flow only FreeSWITCH holds). A contact
// whose IP differs from the address FreeSWITCH saw the REGISTER come from is behind
// NAT: mode "all" pings the address FreeSWITCH saw (the pinhole may still drop it:
// docs/decisions.md §8, §20), mode "direct" leaves it out. Only the IP is compared, as sofia's
// NAT detection does: a phone may send from another port than the one it listens
// on, and its contact is then the place to reach it.
func appendTargets(out []Target, st *State, mode PingMode, now time.Time) []Target {
	for _, r := range st.Registrations {
		if !r.Expires.After(now) {
			continue
		}
		uri, hostport, ok := contactURI(r.Contact)
		if !ok {
			continue
		}
		dest := hostport
		if host, _, _ := net.SplitHostPort(hostport); r.NetworkIP != "" && r.NetworkPort > 0 && r.NetworkIP != host {
			if mode == PingDirect {
				continue
			}
			dest = net.JoinHostPort(r.NetworkIP, strconv.Itoa(r.NetworkPort))
		}
		out = append(out, Target{AOR: st.AOR, CallID: r.CallID, Profile: r.Profile, Device: keyOf(&r), URI: uri, Dest: dest})
	}
	return out
}

// contactURI takes the SIP URI out of a Contact header value (`"name"
// <sip:u@h:p;ob>;expires=…` or a bare `sip:u@h:p`) and returns it with its host:port
// (port 5060 when none). It refuses what sipsilo cannot ping over its UDP socket:
// sips, a transport other than UDP, hosts that are not IP literals (no DNS lookups
// for a contact a phone chose).
func contactURI(contact string) (uri, hostport string, ok bool) {
	c := strings.TrimSpace(contact)
	if i := strings.IndexByte(c, '<'); i >= 0 {
		j := strings.IndexByte(c[i:], '>')
		if j < 0 {
			return "", "", false
		}
		c = c[i+1 : i+j]
	} else if i := strings.IndexByte(c, ';'); i >= 0 {
		c = c[:i]
	}
	if strings.ContainsAny(c, " \t\r\n") || !strings.HasPrefix(strings.ToLower(c), "sip:") {
		return "", "", false
	}
	rest := c[len("sip:"):]
	params := ""
	if i := strings.IndexByte(rest, ';'); i >= 0 {
		rest, params = rest[:i], rest[i:]
	}
	for _, p := range strings.Split(strings.ToLower(params), ";") {
		if v, found := strings.CutPrefix(p, "transport="); found && v != "udp" {
			return "", "", false
		}
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	host, port := rest, "5060"
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
	}
	if net.ParseIP(host) == nil {
		return "", "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", "", false
	}
	return c, net.JoinHostPort(host, port), true
}
