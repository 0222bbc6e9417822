// Package metrics is sipsilo's Prometheus instrumentation. Everything registers
// on the registry the daemon passes in; nothing is global.
//
// Two kinds of series: histograms observed as things happen (through the hooks
// handlers, relay and presence call), and figures read when Prometheus scrapes
// (counters other packages already keep as atomics, and the store's queue and
// outbox), so that no hot path pays twice for a count.
//
// Labels hold only fixed words from this package's tables: never an address, a
// body or a Call-ID. An unexpected value is recorded as "other", so a new reason
// somewhere else cannot grow the number of series without end.
package metrics

import (
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// other is the label value of anything outside a label's table.
const other = "other"

// Metrics holds the observed series. Its methods are the hooks; they are safe
// for concurrent use, cheap (a map lookup and an atomic add), and do nothing on
// a nil *Metrics.
type Metrics struct {
	intake   map[intakeKey]prometheus.Observer
	delivery map[string]prometheus.Observer
	detect   map[string]prometheus.Observer
	pingRTT  prometheus.Observer
}

type intakeKey struct{ answer, why string }

// New registers every sipsilo series on reg, with the Go runtime's and the
// process's (memory, file descriptors), and returns the hooks.
func New(reg prometheus.Registerer, src Sources) (*Metrics, error) {
	m := &Metrics{}
	intake := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sipsilo_intake_seconds",
		Help: "Time from a chatplan request reaching the handler to its answer written, by answer (final: sipsilo owns the message; not_found: FreeSWITCH delivers it; lost: stored but the answer did not reach FreeSWITCH) and why.",
		// The goal is well under a millisecond (docs/architecture.md, "Performance targets");
		// the answer deadline is 500 ms by default.
		Buckets: []float64{.0001, .00025, .0005, .00075, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"answer", "why"})
	delivery := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sipsilo_delivery_seconds",
		Help: "Time from intake to the recipient device's confirmed 2xx, by path (esl: bgapi chat through FreeSWITCH; direct: sipsilo's own MESSAGE). Includes the time the recipient was offline.",
		// From an online phone (milliseconds) to one that comes back after days.
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600},
	}, []string{"path"})
	detect := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sipsilo_detection_seconds",
		Help: "Time from a registration's last proof of life to sipsilo finding it unreachable, by what found it (pinger: sipsilo's OPTIONS; delivery: a send nobody answered; freeswitch: FreeSWITCH's own pinging).",
		// The goal is 7 s at the default 5 s interval; FreeSWITCH needs about 47 s.
		Buckets: []float64{1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 30, 45, 60, 120, 300},
	}, []string{"source"})
	rtt := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sipsilo_pinger_rtt_seconds",
		Help:    "Round-trip time of sipsilo's answered OPTIONS pings.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
	})
	cs := []prometheus.Collector{
		intake, delivery, detect, rtt,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	cs = append(cs, src.collectors()...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}

	// Every label value is made now: its series exist from the first scrape (a
	// rate over a series that appears later misses its first increase), and a
	// hook finds its Observer without hashing labels.
	m.intake = make(map[intakeKey]prometheus.Observer)
	for _, k := range intakeAnswers {
		m.intake[k] = intake.WithLabelValues(k.answer, k.why)
	}
	m.delivery = observers(delivery, deliveryPaths)
	m.detect = observers(detect, detectSources)
	m.pingRTT = rtt
	return m, nil
}

func observers(v *prometheus.HistogramVec, values []string) map[string]prometheus.Observer {
	out := make(map[string]prometheus.Observer, len(values)+1)
	for _, s := range append(slices.Clone(values), other) {
		out[s] = v.WithLabelValues(s)
	}
	return out
}

func observe(obs map[string]prometheus.Observer, label string, d time.Duration) {
	o, ok := obs[label]
	if !ok {
		o = obs[other]
	}
	o.Observe(d.Seconds())
}

// Intake observes one chatplan answer (handlers.ChatplanConfig.Observe).
func (m *Metrics) Intake(answer, why string, took time.Duration) {
	if m == nil {
		return
	}
	o, ok := m.intake[intakeKey{answer, why}]
	if !ok {
		o = m.intake[intakeKey{answerOf(answer), other}]
	}
	o.Observe(took.Seconds())
}

// Delivered observes one confirmed delivery (relay.Observer).
func (m *Metrics) Delivered(path string, sinceReceived time.Duration) {
	if m != nil {
		observe(m.delivery, path, sinceReceived)
	}
}

// Detected observes a registration found unreachable (presence.Config.OnDetected).
func (m *Metrics) Detected(source string, sinceAlive time.Duration) {
	if m != nil {
		observe(m.detect, source, sinceAlive)
	}
}

// PingAnswered observes the round-trip time of an answered ping.
func (m *Metrics) PingAnswered(rtt time.Duration) {
	if m != nil {
		m.pingRTT.Observe(rtt.Seconds())
	}
}

// Handler serves g's series in the Prometheus exposition format. A series that
// fails to collect (a store read error) is logged and left out; the others are
// still served.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes read the store; a pile of concurrent scrapers gets 503s instead.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}
