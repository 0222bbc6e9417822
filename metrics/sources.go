package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/internal/asterisk"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/mirror"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// Sources are what the scrape reads: counters other parts of sipsilo already
// keep, and the store. A nil field leaves its series out (no pinger with
// --ping off, no mirror without --mysql-dsn).
type Sources struct {
	Relay  func() relay.Stats
	Bodies func() relay.BodyStats
	Pinger func() presence.PingerStats
	ESL    func() esl.Stats
	AMI    func() asterisk.Stats
	Store  Store
	// Mirror returns the MySQL writer's counters; ok is false while it is not
	// connected.
	Mirror func() (st mirror.Stats, ok bool)
	// Extra are further series read at scrape time, e.g. a policy's counters.
	Extra []Func
	// Now is the clock for ages (default time.Now).
	Now func() time.Time
}

// Store is what the scrape reads of kv.Store; every method is cheap (see
// kv/metrics.go and BENCHMARKS.md).
type Store interface {
	QueueStats() (kv.QueueStats, error)
	OutboxStats() (kv.OutboxStats, error)
	Finished() map[kv.State]uint64
	Commits() uint64
}

var _ Store = (*kv.Store)(nil)

// Kind is a Func's type.
type Kind int

// The kinds of a Func.
const (
	Counter Kind = iota
	Gauge
)

// Func is one unlabelled series read at scrape time. Adding one is a line in the
// daemon's Sources.Extra:
//
//	{Name: "sipsilo_quota_refusals_total", Help: "…", Kind: metrics.Counter, Value: func() float64 { … }}
type Func struct {
	Name, Help string
	Kind       Kind
	Value      func() float64
}

// finishedStates are the states a message leaves its queue for, shown from the
// first scrape on; others (a state added later) appear when first taken.
var finishedStates = []kv.State{kv.StateDelivered, kv.StateDead, kv.StateReleased, kv.StateNoBody, kv.StateExpired, kv.StatePurged}

func (s Sources) collectors() []prometheus.Collector {
	if s.Now == nil {
		s.Now = time.Now
	}
	var cs []prometheus.Collector
	add := func(c ...prometheus.Collector) { cs = append(cs, c...) }
	if s.Relay != nil {
		add(relayCollectors(s.Relay)...)
	}
	if s.Bodies != nil {
		add(bodiesCollectors(s.Bodies)...)
	}
	if s.Pinger != nil {
		add(pingerCollectors(s.Pinger)...)
	}
	if s.ESL != nil {
		add(eslCollectors(s.ESL)...)
	}
	if s.AMI != nil {
		add(amiCollectors(s.AMI)...)
	}
	if s.Store != nil {
		add(newStoreCollector(s.Store, s.Now))
		add(counterFunc("sipsilo_store_commits_total", "Write transactions of the store (each one fsync).",
			func() float64 { return float64(s.Store.Commits()) }))
		add(newVec("sipsilo_messages_finished_total", "Messages that left their queue since start, by the state they took.",
			prometheus.CounterValue, "state", stateNames(finishedStates), func() map[string]float64 {
				out := make(map[string]float64)
				for st, n := range s.Store.Finished() {
					out[string(st)] = float64(n)
				}
				return out
			}))
	}
	if s.Mirror != nil {
		add(mirrorCollectors(s.Mirror)...)
	}
	for _, f := range s.Extra {
		if f.Kind == Gauge {
			add(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: f.Name, Help: f.Help}, f.Value))
		} else {
			add(counterFunc(f.Name, f.Help, f.Value))
		}
	}
	return cs
}

func counterFunc(name, help string, fn func() float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn)
}

func gaugeFunc(name, help string, fn func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
}

func stateNames(sts []kv.State) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = string(st)
	}
	return out
}

func relayCollectors(stats func() relay.Stats) []prometheus.Collector {
	return []prometheus.Collector{
		newVec("sipsilo_delivery_sends_total", "Messages handed to a device, by path (esl: bgapi chat jobs FreeSWITCH accepted; direct: MESSAGEs sipsilo sent itself).",
			prometheus.CounterValue, "path", deliveryPaths, func() map[string]float64 {
				st := stats()
				return map[string]float64{relay.PathESL: float64(st.Sent - st.Direct), relay.PathDirect: float64(st.Direct)}
			}),
		newVec("sipsilo_delivery_results_total", "Delivery attempts by result: delivered (device 2xx), refused (a live device said no), no_answer, not_registered, unknown (result lost: held for Timer F).",
			prometheus.CounterValue, "result", []string{"delivered", "refused", "no_answer", "not_registered", "unknown"}, func() map[string]float64 {
				st := stats()
				return map[string]float64{"delivered": float64(st.Delivered), "refused": float64(st.Refused),
					"no_answer": float64(st.NoAnswer), "not_registered": float64(st.NotRegistered), "unknown": float64(st.Unknown)}
			}),
		counterFunc("sipsilo_delivery_dead_letters_total", "Messages dead-lettered after repeated refusals by a live device.",
			func() float64 { return float64(stats().DeadLettered) }),
		counterFunc("sipsilo_delivery_uncertain_resends_total", "Sends of a message whose previous send may have reached the device (crash, lost result): the only duplicates sipsilo can cause (docs/decisions.md §1).",
			func() float64 { return float64(stats().UncertainResends) }),
		counterFunc("sipsilo_delivery_probe_failures_total", "Batches held because the probe before delivery went unanswered.",
			func() float64 { return float64(stats().ProbeFailed) }),
		counterFunc("sipsilo_delivery_store_errors_total", "Store errors while delivering (the message stays queued).",
			func() float64 { return float64(stats().StoreErrors) }),
		counterFunc("sipsilo_device_deliveries_total", "Per-device copies confirmed by their own device's 2xx (docs/decisions.md §29); also counted as delivered.",
			func() float64 { return float64(stats().DeviceDeliveries) }),
		gaugeFunc("sipsilo_devices_holding", "Devices with copies of messages waiting for them, as their delivery lanes last saw.",
			func() float64 { return float64(stats().DevicesHolding) }),
	}
}

func bodiesCollectors(stats func() relay.BodyStats) []prometheus.Collector {
	return []prometheus.Collector{
		newVec("sipsilo_message_bodies_total", "How message bodies became final: exact (the ESL MESSAGE event), query (the lossy query copy after the grace period), missing (neither: recorded as no_body); and for bodies exact at intake (their MD5 matched), what the ESL copy said: checked (the same), differed (another body, which replaced it), unconfirmed (none came).",
			prometheus.CounterValue, "source", []string{"exact", "query", "missing", "checked", "differed", "unconfirmed"}, func() map[string]float64 {
				st := stats()
				return map[string]float64{"exact": float64(st.Exact), "query": float64(st.Query), "missing": float64(st.Missing),
					"checked": float64(st.Checked), "differed": float64(st.Differed), "unconfirmed": float64(st.Unconfirmed)}
			}),
		counterFunc("sipsilo_message_bodies_unmatched_total", "ESL bodies for messages this store does not hold or that do not match them.",
			func() float64 { return float64(stats().Unknown) }),
	}
}

func pingerCollectors(stats func() presence.PingerStats) []prometheus.Collector {
	return []prometheus.Collector{
		counterFunc("sipsilo_pinger_pings_total", "OPTIONS pings sent (retransmissions not counted).",
			func() float64 { return float64(stats().Sent) }),
		counterFunc("sipsilo_pinger_answers_total", "Pings that got a final response (any status proves a device).",
			func() float64 { return float64(stats().Answered) }),
		counterFunc("sipsilo_pinger_misses_total", "Pings without a final response in time.",
			func() float64 { return float64(stats().Missed) }),
		gaugeFunc("sipsilo_pinger_targets", "Contacts on the pinger's schedule.",
			func() float64 { return float64(stats().Targets) }),
		gaugeFunc("sipsilo_pinger_in_flight", "Pings awaiting an answer now.",
			func() float64 { return float64(stats().InFlight) }),
	}
}

func eslCollectors(stats func() esl.Stats) []prometheus.Collector {
	conns := []string{"events", "commands"}
	return []prometheus.Collector{
		newVec("sipsilo_esl_reconnects_total", "Event-socket connections established after the first, by connection.",
			prometheus.CounterValue, "conn", conns, func() map[string]float64 {
				st := stats()
				return map[string]float64{"events": float64(max(st.EventConnects-1, 0)), "commands": float64(max(st.CommandConnects-1, 0))}
			}),
		newVec("sipsilo_esl_dial_failures_total", "Event-socket connection attempts that failed, by connection.",
			prometheus.CounterValue, "conn", conns, func() map[string]float64 {
				st := stats()
				return map[string]float64{"events": float64(st.EventDialFailures), "commands": float64(st.CommandDialFailures)}
			}),
		gaugeFunc("sipsilo_esl_up", "1 when both event-socket connections are up.", func() float64 {
			if stats().Up {
				return 1
			}
			return 0
		}),
	}
}

func amiCollectors(stats func() asterisk.Stats) []prometheus.Collector {
	return []prometheus.Collector{
		counterFunc("sipsilo_ami_reconnects_total", "AMI logins after the first (Asterisk restarted, or the connection dropped).",
			func() float64 { return float64(max(stats().Logins, 1) - 1) }),
		counterFunc("sipsilo_ami_dial_failures_total", "AMI connection attempts that ended before a login succeeded.",
			func() float64 { return float64(stats().Failures) }),
		gaugeFunc("sipsilo_ami_up", "1 while sipsilo is logged in to Asterisk's AMI.", func() float64 {
			if stats().Up {
				return 1
			}
			return 0
		}),
	}
}

func mirrorCollectors(stats func() (mirror.Stats, bool)) []prometheus.Collector {
	return []prometheus.Collector{
		gaugeFunc("sipsilo_mirror_up", "1 while the MySQL mirror is connected and its last attempt succeeded.", func() float64 {
			if st, ok := stats(); ok && st.LastError == "" {
				return 1
			}
			return 0
		}),
		gaugeFunc("sipsilo_mirror_lag_seconds", "Age of the oldest record of the last batch the mirror committed, when it committed.",
			func() float64 { st, _ := stats(); return st.Lag.Seconds() }),
		counterFunc("sipsilo_mirror_records_total", "Outbox records the mirror committed to MySQL.",
			func() float64 { st, _ := stats(); return float64(st.Records) }),
		counterFunc("sipsilo_mirror_errors_total", "Failed mirror attempts (read, write or delete); each is retried.",
			func() float64 { st, _ := stats(); return float64(st.Errors) }),
	}
}
