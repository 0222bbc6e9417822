package presence

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Target is one registered contact to ping.
type Target struct {
	AOR, CallID, Profile string
	// Device is the key of the device the registration is (docs/decisions.md §28).
	Device string
	// URI is the Request-URI, the registered contact's URI, e.g.
	// "sip:1001@127.0.0.1:25071".
	URI string
	// Dest is the IPv4 ip:port to send to: the contact's host:port, or the address
	// FreeSWITCH saw the REGISTER come from when the contact is behind NAT.
	Dest string
}

// Key is the identity of a target on the schedule: a target whose Key stays the
// same across refreshes keeps its schedule and miss count.
func (t Target) Key() string { return t.AOR + "\x00" + t.CallID + "\x00" + t.Dest }

// ErrBadTarget marks a target whose URI or Dest cannot be pinged. Contact strings
// come from the network, so such a target is reported as a miss, like a silent one.
var ErrBadTarget = errors.New("presence: bad ping target")

// maxTargetLen bounds the contact strings: a request must fit in one datagram.
const maxTargetLen = 1024

// Validate says whether t can be pinged over UDP; the error wraps ErrBadTarget.
func (t Target) Validate() error {
	_, _, err := t.parse()
	return err
}

// parse checks the untrusted contact strings and returns the Request-URI and the
// destination. Characters that could end a SIP line or header (CR, LF, space,
// quotes, angle brackets) are refused before parsing, so nothing from a contact
// can inject a header. Dest must be an IP address: a name would cost a DNS lookup
// on every ping.
func (t Target) parse() (sip.Uri, string, error) {
	var uri sip.Uri
	if len(t.URI) > maxTargetLen || !uriSafe(t.URI) {
		return uri, "", fmt.Errorf("%w: URI %.80q has forbidden characters or is too long", ErrBadTarget, t.URI)
	}
	if err := sip.ParseUri(t.URI, &uri); err != nil {
		return uri, "", fmt.Errorf("%w: URI %.80q: %v", ErrBadTarget, t.URI, err)
	}
	switch {
	case uri.Scheme != "sip":
		return uri, "", fmt.Errorf("%w: URI %.80q: only sip: URIs can be pinged over UDP", ErrBadTarget, t.URI)
	case uri.Wildcard || uri.Host == "":
		return uri, "", fmt.Errorf("%w: URI %.80q has no host", ErrBadTarget, t.URI)
	case uri.Headers.Length() > 0:
		return uri, "", fmt.Errorf("%w: URI %.80q carries headers", ErrBadTarget, t.URI)
	}
	for _, kv := range uri.UriParams {
		if strings.EqualFold(kv.K, "transport") && !strings.EqualFold(kv.V, "udp") {
			return uri, "", fmt.Errorf("%w: URI %.80q is not a UDP contact", ErrBadTarget, t.URI)
		}
	}
	dest, err := checkDest(t.Dest)
	if err != nil {
		return uri, "", err
	}
	return uri, dest, nil
}

func checkDest(d string) (string, error) {
	if len(d) > 64 || !uriSafe(d) {
		return "", fmt.Errorf("%w: dest %.80q has forbidden characters or is too long", ErrBadTarget, d)
	}
	host, port, err := net.SplitHostPort(d)
	if err != nil {
		return "", fmt.Errorf("%w: dest %q: want ip:port", ErrBadTarget, d)
	}
	ip := net.ParseIP(host).To4()
	if ip == nil || ip.IsUnspecified() {
		return "", fmt.Errorf("%w: dest %q: want an IPv4 address (the pinger's socket is IPv4)", ErrBadTarget, d)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%w: dest %q: bad port", ErrBadTarget, d)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(n)), nil
}

// uriSafe accepts printable ASCII without the characters that delimit a URI
// inside a SIP header.
func uriSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' {
			return false
		}
	}
	return true
}

// PingResult is the outcome of one ping.
type PingResult struct {
	Target Target
	// Alive is true for any final response (200, 404, 405, 486, 501 …): a device
	// answered (docs/decisions.md §6).
	Alive  bool
	Status int           // the final status, 0 when none
	RTT    time.Duration // when Alive
	Err    error         // timeout, transport error or ErrBadTarget when not Alive
	// Misses counts consecutive misses including this one (0 when Alive).
	Misses int
	At     time.Time // when the result was known
	// Started is when the OPTIONS left; zero when none was sent. A miss of a ping
	// that started before the registration's REGISTER does not judge it.
	Started time.Time
	Probe   bool // the result of a Probe call, not of the schedule
}

// Probe pings t now, outside the schedule (probe-before-deliver); t need not be one
// of the targets. It takes a Concurrency slot and a rate token, waiting for either
// no longer than ctx, and waits at most Timeout for the answer. The result updates
// t's miss count (and its schedule, when t is scheduled) and is reported. When ctx
// ends first, the result carries ctx's error and is neither counted nor reported:
// the caller gave up, the device did not fail.
func (p *Pinger) Probe(ctx context.Context, t Target) PingResult {
	gaveUp := func(err error) PingResult {
		return PingResult{Target: t, Err: err, At: time.Now(), Probe: true, Misses: p.sched.missesOf(t.Key())}
	}
	if p.closed.Load() {
		return gaveUp(ErrPingerClosed)
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return gaveUp(ctx.Err())
	}
	defer func() { <-p.sem }()
	if r := p.lim.Reserve(); r.Delay() > 0 {
		tm := time.NewTimer(r.Delay())
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			r.Cancel()
			return gaveUp(ctx.Err())
		}
	}
	st := p.sched.probeState(t)
	res, cancelled := p.ping(ctx, t)
	res.Probe = true
	if cancelled {
		res.Misses = p.sched.missesOf(t.Key())
		return res
	}
	p.finish(st, &res, true)
	return res
}

// ping sends one OPTIONS and waits for the final response. cancelled is true when
// ctx ended before the answer or the probe's own Timeout.
func (p *Pinger) ping(ctx context.Context, t Target) (res PingResult, cancelled bool) {
	res = PingResult{Target: t, At: time.Now()}
	uri, dest, err := t.parse()
	if err != nil {
		res.Err = err
		p.missed.Add(1)
		return res, false
	}
	req := sip.NewRequest(sip.OPTIONS, uri)
	req.SetTransport("UDP")
	req.SetDestination(dest)
	req.AppendHeader(sip.NewHeader("User-Agent", p.cfg.UserAgent))
	pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	p.sent.Add(1)
	p.inFlight.Add(1)
	start := time.Now()
	res.Started = start
	resp, err := p.cl.Do(pctx, req)
	p.inFlight.Add(-1)
	res.At = time.Now()
	switch {
	case err == nil:
		res.Alive, res.Status, res.RTT = true, resp.StatusCode, res.At.Sub(start)
		p.answered.Add(1)
		return res, false
	case ctx.Err() != nil:
		res.Err = ctx.Err()
		return res, true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no final response within %v: %w", p.cfg.Timeout, err)
	}
	res.Err = fmt.Errorf("presence: OPTIONS to %s: %w", dest, err)
	p.missed.Add(1)
	return res, false
}

// finish counts res into st, schedules st's next ping, logs, and reports res. It
// runs on the probing goroutine; report is called without any lock held.
func (p *Pinger) finish(st *targetState, res *PingResult, probe bool) {
	before := p.sched.record(st, res, probe, p.nextDue)
	switch {
	case res.Alive && before >= p.cfg.Misses:
		p.log.Info("contact answering again", "call_id", res.Target.CallID,
			"dest", res.Target.Dest, "status", res.Status, "after_misses", before)
	case !res.Alive && res.Misses == p.cfg.Misses:
		p.log.Info("contact not answering", "call_id", res.Target.CallID,
			"dest", res.Target.Dest, "misses", res.Misses, "err", res.Err)
	case !res.Alive:
		p.log.Debug("ping missed", "aor", res.Target.AOR, "call_id", res.Target.CallID,
			"dest", res.Target.Dest, "misses", res.Misses, "err", res.Err)
	}
	p.report(*res)
}

// nextDue is when a target is pinged next after a result: at once while a miss
// streak is still below Misses (docs/decisions.md §8: confirm a miss quickly), otherwise
// one jittered Interval later. A target past Misses is not hammered: it goes back
// to the Interval, and the first answer ends the streak.
func (p *Pinger) nextDue(res *PingResult) time.Time {
	if !res.Alive && res.Misses < p.cfg.Misses {
		return res.At
	}
	return res.At.Add(p.jittered())
}
