package daemon

import (
	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/internal/asterisk"
	"github.com/sipsilo/sipsilo/metrics"
	"github.com/sipsilo/sipsilo/mirror"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// metricSources gives /metrics the daemon's counters. The functions run at
// scrape time, after assemble has set every part they read.
func (d *parts) metricSources(pinger, withMirror, ami bool) metrics.Sources {
	src := metrics.Sources{
		Relay:  func() relay.Stats { return d.relay.Stats() },
		Bodies: func() relay.BodyStats { return d.bodies.Stats() },
		Store:  d.store,
		// The delivery policy's counters (docs/decisions.md §21); the messages that expired are also in
		// sipsilo_messages_finished_total{state="expired"}.
		Extra: []metrics.Func{
			{Name: "sipsilo_quota_refusals_total", Kind: metrics.Counter,
				Help:  "Messages refused because their recipient's queue was full (--quota): chatplan ones went to FreeSWITCH as stock, injected ones got 429.",
				Value: func() float64 { return float64(d.store.QuotaRefusals()) }},
			{Name: "sipsilo_notices_sent_total", Kind: metrics.Counter,
				Help:  "Notices to senders (stored, expired) that FreeSWITCH delivered.",
				Value: func() float64 { return float64(d.relay.Stats().Notices) }},
			{Name: "sipsilo_notices_failed_total", Kind: metrics.Counter,
				Help:  "Notices to senders that FreeSWITCH could not deliver (never retried).",
				Value: func() float64 { return float64(d.relay.Stats().NoticesFailed) }},
			{Name: "sipsilo_notices_dropped_total", Kind: metrics.Counter,
				Help:  "Notices to senders dropped because too many were waiting.",
				Value: func() float64 { return float64(d.relay.Stats().NoticesDropped) }},
		},
	}
	if d.client != nil { // nil beside Asterisk
		src.ESL = func() esl.Stats { return d.client.Stats() }
	}
	if ami { // the AMI client is assembled after this
		src.AMI = func() asterisk.Stats {
			if d.ami == nil {
				return asterisk.Stats{}
			}
			return d.ami.client.Stats()
		}
	}
	if pinger {
		src.Pinger = func() presence.PingerStats { return d.pinger.Stats() }
	}
	if withMirror {
		src.Mirror = func() (mirror.Stats, bool) {
			m := d.mirror.open.Load()
			if m == nil {
				return mirror.Stats{}, false
			}
			return m.Stats(), true
		}
	}
	return src
}
