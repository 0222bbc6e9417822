package main

import (
	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/metrics"
	"github.com/sipsilo/sipsilo/mirror"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// metricSources gives /metrics the daemon's counters. The functions run at
// scrape time, after newDaemon has set every part they read.
func (d *daemon) metricSources(pinger bool) metrics.Sources {
	src := metrics.Sources{
		Relay:  func() relay.Stats { return d.relay.Stats() },
		Bodies: func() relay.BodyStats { return d.bodies.Stats() },
		ESL:    func() esl.Stats { return d.client.Stats() },
		Store:  d.store,
	}
	if pinger {
		src.Pinger = func() presence.PingerStats { return d.pinger.Stats() }
	}
	if d.cfg.MySQLDSN != "" {
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
