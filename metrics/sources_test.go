package metrics

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/mirror"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// fakes are sources a test can move.
type fakes struct {
	mu       sync.Mutex
	relay    relay.Stats
	bodies   relay.BodyStats
	pinger   presence.PingerStats
	esl      esl.Stats
	mirror   mirror.Stats
	queue    kv.QueueStats
	queueErr error
	outbox   kv.OutboxStats
	finished map[kv.State]uint64
	commits  uint64
	refused  float64
}

func (f *fakes) QueueStats() (kv.QueueStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queue, f.queueErr
}

func (f *fakes) OutboxStats() (kv.OutboxStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.outbox, nil
}

func (f *fakes) Finished() map[kv.State]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[kv.State]uint64{}
	for k, v := range f.finished {
		out[k] = v
	}
	return out
}

func (f *fakes) Commits() uint64 { f.mu.Lock(); defer f.mu.Unlock(); return f.commits }

func (f *fakes) move(fn func(f *fakes)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

var now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func (f *fakes) sources() Sources {
	lock := func() func() { f.mu.Lock(); return f.mu.Unlock }
	return Sources{
		Relay:  func() relay.Stats { defer lock()(); return f.relay },
		Bodies: func() relay.BodyStats { defer lock()(); return f.bodies },
		Pinger: func() presence.PingerStats { defer lock()(); return f.pinger },
		ESL:    func() esl.Stats { defer lock()(); return f.esl },
		Mirror: func() (mirror.Stats, bool) { defer lock()(); return f.mirror, f.mirror.Batches > 0 },
		Store:  f,
		Extra: []Func{
			{Name: "sipsilo_quota_refusals_total", Help: "Messages refused for a recipient over quota.", Kind: Counter,
				Value: func() float64 { defer lock()(); return f.refused }},
			{Name: "sipsilo_test_level", Help: "A gauge.", Kind: Gauge, Value: func() float64 { return 7 }},
		},
		Now: func() time.Time { return now },
	}
}

// The scrape shows what the sources hold at that moment, counters that already
// exist elsewhere included, and follows them as they move.
func TestScrapeReadsSourcesEachTime(t *testing.T) {
	f := &fakes{}
	_, reg := newMetrics(t, f.sources())
	names := []string{"sipsilo_delivery_results_total", "sipsilo_delivery_sends_total", "sipsilo_delivery_uncertain_resends_total",
		"sipsilo_message_bodies_total", "sipsilo_esl_reconnects_total", "sipsilo_queue_messages", "sipsilo_queue_recipients",
		"sipsilo_queue_oldest_age_seconds", "sipsilo_mirror_backlog_records", "sipsilo_mirror_backlog_oldest_age_seconds",
		"sipsilo_mirror_up", "sipsilo_messages_finished_total", "sipsilo_pinger_misses_total",
		"sipsilo_quota_refusals_total", "sipsilo_test_level", "sipsilo_store_commits_total"}
	compare := func(want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
			t.Fatal(err)
		}
	}
	compare(expected(map[string]string{}))

	f.move(func(f *fakes) {
		f.relay = relay.Stats{Sent: 10, Direct: 4, Delivered: 8, Refused: 1, NoAnswer: 1, UncertainResends: 2}
		f.bodies = relay.BodyStats{Exact: 5, Query: 2, Missing: 1, Checked: 9, Unconfirmed: 3}
		f.esl = esl.Stats{EventConnects: 3, CommandConnects: 1, Up: true}
		f.queue = kv.QueueStats{Depth: 12, Recipients: 3, Oldest: now.Add(-90 * time.Second)}
		f.outbox = kv.OutboxStats{Records: 40, Oldest: now.Add(-2 * time.Second)}
		f.mirror = mirror.Stats{Batches: 1}
		f.finished = map[kv.State]uint64{kv.StateDelivered: 8, kv.StateExpired: 1, "archived": 1}
		f.pinger = presence.PingerStats{Missed: 4}
		f.commits, f.refused = 30, 2
	})
	compare(expected(map[string]string{
		`sipsilo_delivery_results_total{result="delivered"}`: "8", `sipsilo_delivery_results_total{result="refused"}`: "1",
		`sipsilo_delivery_results_total{result="no_answer"}`: "1",
		`sipsilo_delivery_sends_total{path="esl"}`:           "6", `sipsilo_delivery_sends_total{path="direct"}`: "4",
		`sipsilo_delivery_uncertain_resends_total`:     "2",
		`sipsilo_message_bodies_total{source="exact"}`: "5", `sipsilo_message_bodies_total{source="query"}`: "2",
		`sipsilo_message_bodies_total{source="missing"}`: "1", `sipsilo_message_bodies_total{source="checked"}`: "9",
		`sipsilo_message_bodies_total{source="unconfirmed"}`: "3",
		`sipsilo_esl_reconnects_total{conn="events"}`:        "2",
		`sipsilo_queue_messages`:                             "12", `sipsilo_queue_recipients`: "3", `sipsilo_queue_oldest_age_seconds`: "90",
		`sipsilo_mirror_backlog_records`: "40", `sipsilo_mirror_backlog_oldest_age_seconds`: "2",
		`sipsilo_mirror_up`: "1",
		`sipsilo_messages_finished_total{state="delivered"}`: "8", `sipsilo_messages_finished_total{state="expired"}`: "1",
		`sipsilo_messages_finished_total{state="archived"}`: "1",
		`sipsilo_pinger_misses_total`:                       "4", `sipsilo_quota_refusals_total`: "2", `sipsilo_store_commits_total`: "30",
	}))
}

// expected renders the exposition of TestScrapeReadsSourcesEachTime's series,
// every value 0 but those given (a state in set appears only when given).
func expected(set map[string]string) string {
	v := func(series string) string {
		if x, ok := set[series]; ok {
			return x
		}
		return "0"
	}
	set["sipsilo_test_level"] = "7"
	var b strings.Builder
	family := func(name, typ, help string, series ...string) {
		b.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
		for _, s := range series {
			b.WriteString(s + " " + v(s) + "\n")
		}
	}
	h := helps()
	family("sipsilo_delivery_results_total", "counter", h["sipsilo_delivery_results_total"],
		`sipsilo_delivery_results_total{result="delivered"}`, `sipsilo_delivery_results_total{result="no_answer"}`,
		`sipsilo_delivery_results_total{result="not_registered"}`, `sipsilo_delivery_results_total{result="refused"}`,
		`sipsilo_delivery_results_total{result="unknown"}`)
	family("sipsilo_delivery_sends_total", "counter", h["sipsilo_delivery_sends_total"],
		`sipsilo_delivery_sends_total{path="direct"}`, `sipsilo_delivery_sends_total{path="esl"}`)
	family("sipsilo_delivery_uncertain_resends_total", "counter", h["sipsilo_delivery_uncertain_resends_total"],
		"sipsilo_delivery_uncertain_resends_total")
	family("sipsilo_message_bodies_total", "counter", h["sipsilo_message_bodies_total"],
		`sipsilo_message_bodies_total{source="checked"}`, `sipsilo_message_bodies_total{source="differed"}`,
		`sipsilo_message_bodies_total{source="exact"}`, `sipsilo_message_bodies_total{source="missing"}`,
		`sipsilo_message_bodies_total{source="query"}`, `sipsilo_message_bodies_total{source="unconfirmed"}`)
	family("sipsilo_esl_reconnects_total", "counter", h["sipsilo_esl_reconnects_total"],
		`sipsilo_esl_reconnects_total{conn="commands"}`, `sipsilo_esl_reconnects_total{conn="events"}`)
	for _, g := range []string{"sipsilo_queue_messages", "sipsilo_queue_recipients", "sipsilo_queue_oldest_age_seconds",
		"sipsilo_mirror_backlog_records", "sipsilo_mirror_backlog_oldest_age_seconds", "sipsilo_mirror_up", "sipsilo_test_level"} {
		family(g, "gauge", h[g], g)
	}
	// A state sipsilo does not name yet ("archived") appears once taken.
	var states []string
	if _, ok := set[`sipsilo_messages_finished_total{state="archived"}`]; ok {
		states = append(states, `sipsilo_messages_finished_total{state="archived"}`)
	}
	for _, st := range []string{"dead", "delivered", "expired", "no_body", "purged", "released"} {
		states = append(states, `sipsilo_messages_finished_total{state="`+st+`"}`)
	}
	family("sipsilo_messages_finished_total", "counter", h["sipsilo_messages_finished_total"], states...)
	for _, c := range []string{"sipsilo_pinger_misses_total", "sipsilo_quota_refusals_total", "sipsilo_store_commits_total"} {
		family(c, "counter", h[c], c)
	}
	return b.String()
}

// helps reads each series' help text from a registry, so that the expected
// exposition need not repeat it.
func helps() map[string]string {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, (&fakes{}).sources()); err != nil {
		panic(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	out := map[string]string{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetHelp()
	}
	return out
}

// Every series follows Prometheus's naming and help conventions.
func TestSeriesPassPromlint(t *testing.T) {
	_, reg := newMetrics(t, (&fakes{}).sources())
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "sipsilo_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// Without a pinger or a mirror their series are left out rather than shown as
// zeros that would look like a healthy pinger or an idle mirror.
func TestAbsentSourcesLeaveTheirSeriesOut(t *testing.T) {
	src := (&fakes{}).sources()
	src.Pinger, src.Mirror = nil, nil
	_, reg := newMetrics(t, src)
	for _, name := range []string{"sipsilo_pinger_misses_total", "sipsilo_pinger_pings_total", "sipsilo_mirror_up", "sipsilo_mirror_lag_seconds"} {
		if n := seriesCount(t, reg, name); n != 0 {
			t.Errorf("%s: %d series without its source", name, n)
		}
	}
	if n := seriesCount(t, reg, "sipsilo_queue_messages"); n != 1 {
		t.Errorf("sipsilo_queue_messages: %d series", n)
	}
}

// A store that cannot be read costs its own series only: the handler still
// answers 200 with the rest, and says what failed in the log.
func TestHandlerServesTheRestWhenTheStoreFails(t *testing.T) {
	f := &fakes{queueErr: errors.New("database file is corrupt")}
	_, reg := newMetrics(t, f.sources())
	logs := &strings.Builder{}
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	srv := httptest.NewServer(Handler(reg, log))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mfs["sipsilo_queue_messages"]; ok {
		t.Error("queue depth served although the store failed")
	}
	for _, name := range []string{"sipsilo_mirror_backlog_records", "sipsilo_delivery_results_total", "sipsilo_intake_seconds", "process_resident_memory_bytes"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "database file is corrupt") {
		t.Errorf("store error not logged: %s", logs.String())
	}
}

type writerFunc func(p []byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

var _ io.Writer = writerFunc(nil)
