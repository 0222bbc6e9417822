package e2e

// /metrics end to end: the sipsilo binary with the FreeSWITCH
// emulator and real SIP user agents; every named series is scraped, parsed with
// the Prometheus text parser, and seen to move as messages are sent, stored and
// delivered.

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/mariadbtest"
)

// scraped is one parsed /metrics answer.
type scraped map[string]*dto.MetricFamily

func scrape(t testing.TB, r *rig) scraped {
	t.Helper()
	res, err := http.Get("http://" + r.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// find returns the series of name whose labels include the given name=value
// pairs, or nil.
func (s scraped) find(name string, labels ...string) *dto.Metric {
	mf := s[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value, or a histogram's sample count; -1 when
// the series is missing.
func (s scraped) value(name string, labels ...string) float64 {
	m := s.find(name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// count is a counter's value, 0 while the series is missing (a labelled
// counter appears at its first increment).
func (s scraped) count(name string, labels ...string) float64 {
	return max(s.value(name, labels...), 0)
}

// bodies sums sipsilo_message_bodies_total over the given sources.
func (s scraped) bodies(sources ...string) float64 {
	n := 0.0
	for _, src := range sources {
		n += s.count("sipsilo_message_bodies_total", "source", src)
	}
	return n
}

// sum is a histogram's sum of observations.
func (s scraped) sum(name string, labels ...string) float64 {
	if m := s.find(name, labels...); m != nil && m.Histogram != nil {
		return m.GetHistogram().GetSampleSum()
	}
	return -1
}

// waitScrape scrapes until ok holds, at most within.
func waitScrape(t testing.TB, r *rig, what string, within time.Duration, ok func(s scraped) bool) scraped {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := scrape(t, r)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s not reached; scraped:\n%s", within, what, s.summary())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// summary lists sipsilo's series and values, for failure messages.
func (s scraped) summary() string {
	var lines []string
	for name, mf := range s {
		if !strings.HasPrefix(name, "sipsilo_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			lines = append(lines, fmt.Sprintf("%s{%s} %g", name, strings.Join(ls, ","), v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// namedSeries are the series the operator tools were specified with, and the others added with them;
// each must be in every scrape of a daemon with its pinger on.
var namedSeries = []string{
	"sipsilo_intake_seconds", "sipsilo_delivery_seconds", "sipsilo_delivery_results_total",
	"sipsilo_delivery_sends_total", "sipsilo_delivery_dead_letters_total", "sipsilo_delivery_uncertain_resends_total",
	"sipsilo_delivery_probe_failures_total", "sipsilo_delivery_store_errors_total",
	"sipsilo_queue_messages", "sipsilo_queue_recipients", "sipsilo_queue_oldest_age_seconds",
	"sipsilo_detection_seconds", "sipsilo_pinger_rtt_seconds", "sipsilo_pinger_pings_total",
	"sipsilo_pinger_answers_total", "sipsilo_pinger_misses_total", "sipsilo_pinger_targets", "sipsilo_pinger_in_flight",
	"sipsilo_esl_reconnects_total", "sipsilo_esl_dial_failures_total", "sipsilo_esl_up",
	"sipsilo_mirror_backlog_records", "sipsilo_mirror_backlog_oldest_age_seconds",
	"sipsilo_message_bodies_total", "sipsilo_message_bodies_unmatched_total",
	"sipsilo_store_commits_total", "sipsilo_messages_finished_total",
	"process_resident_memory_bytes", "go_goroutines",
}

// TestMetricsMoveWithTraffic: messages to an offline recipient raise the queue
// and the intake histogram; its registration drains the queue through
// FreeSWITCH (delivery histogram and results move, the queue is back to 0); the
// pinger's answers and a phone gone silent move the RTT, misses and detection
// series; an ESL drop counts a reconnect.
func TestMetricsMoveWithTraffic(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, "--direct=false", "--ping-interval", "400ms",
		"--ping-timeout", "200ms", "--probe-after", "10s", "--log-level", "info")
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)

	s := scrape(t, r)
	for _, name := range namedSeries {
		if s[name] == nil {
			t.Errorf("series %s missing from the first scrape", name)
		}
	}
	for _, absent := range []string{"sipsilo_mirror_up", "sipsilo_mirror_lag_seconds"} {
		if s[absent] != nil {
			t.Errorf("%s shown without a mirror", absent)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if v := s.value("sipsilo_intake_seconds", "answer", "final", "why", "stored"); v != 0 {
		t.Fatalf("intake count %v before any message", v)
	}
	if v := s.value("sipsilo_esl_up"); v != 1 {
		t.Fatalf("sipsilo_esl_up %v on a ready daemon", v)
	}
	commits0 := s.value("sipsilo_store_commits_total")

	// Offline recipient: stored and queued; a typing notification is left to
	// FreeSWITCH.
	const n = 3
	for i := range n {
		send(t, alice, "1001", bodyN(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code, err := alice.SendMessage(ctx, "1001", "application/im-iscomposing+xml", []byte("<isComposing/>")); err != nil || code != http.StatusAccepted {
		t.Fatalf("typing notification: %d %v", code, err)
	}
	queued := waitScrape(t, r, "3 queued with exact bodies checked against ESL", 5*time.Second, func(s scraped) bool {
		return s.value("sipsilo_queue_messages") == n && s.value("sipsilo_message_bodies_total", "source", "checked") == n &&
			s.value("sipsilo_intake_seconds", "answer", "not_found", "why", "skipped_type") == 1
	})
	if v := queued.value("sipsilo_intake_seconds", "answer", "final", "why", "stored"); v != n {
		t.Errorf("intake final/stored count %v, want %d", v, n)
	}
	if sum := queued.sum("sipsilo_intake_seconds", "answer", "final", "why", "stored"); sum <= 0 {
		t.Errorf("intake final/stored sum %v", sum)
	}
	if v := queued.value("sipsilo_queue_recipients"); v != 1 {
		t.Errorf("queue recipients %v, want 1", v)
	}
	if v := queued.value("sipsilo_queue_oldest_age_seconds"); v <= 0 {
		t.Errorf("oldest queued age %v, want > 0", v)
	}
	if v := queued.value("sipsilo_delivery_seconds", "path", "esl"); v != 0 {
		t.Errorf("deliveries observed %v before the recipient registered", v)
	}
	if v := queued.value("sipsilo_store_commits_total"); v <= commits0 {
		t.Errorf("store commits %v, were %v before %d messages", v, commits0, n)
	}
	stored := time.Now() // after every intake
	time.Sleep(500 * time.Millisecond)

	// The recipient registers: everything is delivered through FreeSWITCH.
	in := collect(t, bob)
	registered := time.Now() // before every delivery
	register(t, bob)
	in.waitCount(t, n, 10*time.Second)
	done := waitScrape(t, r, "queue drained and deliveries observed", 5*time.Second, func(s scraped) bool {
		return s.value("sipsilo_queue_messages") == 0 && s.value("sipsilo_delivery_seconds", "path", "esl") == n
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sipsilo_delivery_results_total", []string{"result", "delivered"}, n},
		{"sipsilo_delivery_sends_total", []string{"path", "esl"}, n},
		{"sipsilo_delivery_sends_total", []string{"path", "direct"}, 0},
		{"sipsilo_messages_finished_total", []string{"state", "delivered"}, n},
		{"sipsilo_queue_recipients", nil, 0},
		{"sipsilo_queue_oldest_age_seconds", nil, 0},
		{"sipsilo_delivery_uncertain_resends_total", nil, 0},
		{"sipsilo_mirror_backlog_records", nil, 0},
	} {
		if got := done.value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Each waited at least from the last intake until the recipient registered.
	if sum, least := done.sum("sipsilo_delivery_seconds", "path", "esl"), n*registered.Sub(stored).Seconds(); sum < least {
		t.Errorf("delivery latency sum %v s, want at least %v s: each waited for the recipient", sum, least)
	}

	// The pinger reaches both phones; bob then goes silent and is detected.
	waitScrape(t, r, "answered pings", 5*time.Second, func(s scraped) bool {
		return s.value("sipsilo_pinger_rtt_seconds") > 0 && s.value("sipsilo_pinger_answers_total") > 0 &&
			s.value("sipsilo_pinger_targets") == 2
	})
	bob.SetSilent(true)
	gone := waitScrape(t, r, "bob detected unreachable by the pinger", 10*time.Second, func(s scraped) bool {
		return s.value("sipsilo_detection_seconds", "source", "pinger") >= 1
	})
	if v := gone.value("sipsilo_pinger_misses_total"); v < 2 {
		t.Errorf("pinger misses %v, want at least the 2 that made bob unreachable", v)
	}
	if sum := gone.sum("sipsilo_detection_seconds", "source", "pinger"); sum <= 0 {
		t.Errorf("detection latency sum %v", sum)
	}

	// FreeSWITCH drops the event socket: one reconnect each.
	r.sw.ESL().DropConnections()
	waitScrape(t, r, "ESL reconnected", 10*time.Second, func(s scraped) bool {
		return s.value("sipsilo_esl_reconnects_total", "conn", "events") >= 1 &&
			s.value("sipsilo_esl_reconnects_total", "conn", "commands") >= 1 && s.value("sipsilo_esl_up") == 1
	})
}

// TestMetricsMirrorBacklog: with MySQL the mirror's series appear; while
// MariaDB is down the backlog and its age grow, and they fall back to 0 once it
// is back.
func TestMetricsMirrorBacklog(t *testing.T) {
	db := mariadbtest.Start(t)
	r, in := mirrorRig(t, db)
	postMessages(t, r, 0, 20)
	in.waitCount(t, 20, 30*time.Second)
	s := waitScrape(t, r, "mirror caught up", 30*time.Second, func(s scraped) bool {
		// received, body (query copy after the grace), delivered: 3 records each.
		return s.value("sipsilo_mirror_records_total") == 60 && s.value("sipsilo_mirror_backlog_records") == 0
	})
	if v := s.value("sipsilo_mirror_up"); v != 1 {
		t.Errorf("mirror up %v", v)
	}
	if v := s.value("sipsilo_mirror_lag_seconds"); v <= 0 {
		t.Errorf("mirror lag %v, want the last batch's (> 0)", v)
	}

	db.Stop()
	postMessages(t, r, 20, 10)
	in.waitCount(t, 30, 30*time.Second)
	down := waitScrape(t, r, "backlog while MariaDB is down", 30*time.Second, func(s scraped) bool {
		return s.value("sipsilo_mirror_backlog_records") >= 30 && s.value("sipsilo_mirror_errors_total") > 0 &&
			s.value("sipsilo_mirror_up") == 0
	})
	if v := down.value("sipsilo_mirror_backlog_oldest_age_seconds"); v <= 0 {
		t.Errorf("backlog age %v while MariaDB is down", v)
	}
	db.Restart()
	waitScrape(t, r, "backlog drained after MariaDB came back", time.Minute, func(s scraped) bool {
		return s.value("sipsilo_mirror_backlog_records") == 0 && s.value("sipsilo_mirror_records_total") >= 90 &&
			s.value("sipsilo_mirror_backlog_oldest_age_seconds") == 0 && s.value("sipsilo_mirror_up") == 1
	})
}
