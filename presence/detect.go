package presence

import "time"

// What found a registration unreachable (Config.OnDetected).
const (
	// DetectPinger: sipsilo's own OPTIONS went unanswered PingMisses times in a row.
	DetectPinger = "pinger"
	// DetectDelivery: a send to it got no answer (FreeSWITCH gave up after ≈20 s,
	// or the device did not answer sipsilo's direct MESSAGE).
	DetectDelivery = "delivery"
	// DetectFreeSWITCH: FreeSWITCH's own pinging (sofia::sip_user_state) said so.
	DetectFreeSWITCH = "freeswitch"
	// DetectAsterisk: Asterisk's qualify (AMI ContactStatus Unreachable) said so.
	DetectAsterisk = "asterisk"
)

// detection is one registration found unreachable: what found it, and how long
// after its last proof of life.
type detection struct {
	source string
	since  time.Duration
}

// detect returns the detection of r becoming unreachable at at; ok is false when
// r already was unreachable, or sipsilo never saw it alive (its last proof of life
// is unknown, so the delay is too). Call it before changing r.
func detect(r *Registration, source string, at time.Time) (d detection, ok bool) {
	if r.Reach == Unreachable || r.LastAlive.IsZero() || at.Before(r.LastAlive) {
		return d, false
	}
	return detection{source: source, since: at.Sub(r.LastAlive)}, true
}

// reportDetections tells Config.OnDetected, outside presence's locks.
func (m *Map) reportDetections(ds []detection) {
	if m.onDetected == nil {
		return
	}
	for _, d := range ds {
		m.onDetected(d.source, d.since)
	}
}
