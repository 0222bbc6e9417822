package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newMetrics(t *testing.T, src Sources) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg, src)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// histogram returns the sample count and sum of the histogram name with labels
// (name=value pairs), failing when no such series exists.
func histogram(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
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
			return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0, 0
}

func seriesCount(t *testing.T, reg prometheus.Gatherer, name string) int {
	t.Helper()
	n, err := testutil.GatherAndCount(reg, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Each hook lands in its own series; a label outside the tables (user text, a
// reason added elsewhere) lands in "other", so the number of series never grows
// and nothing private reaches the exposition.
func TestHooksObserveWithBoundedLabels(t *testing.T) {
	m, reg := newMetrics(t, Sources{})
	before := map[string]int{}
	for _, name := range []string{"sipsilo_intake_seconds", "sipsilo_delivery_seconds", "sipsilo_detection_seconds"} {
		before[name] = seriesCount(t, reg, name)
		if before[name] == 0 {
			t.Fatalf("%s has no series before any observation", name)
		}
	}

	m.Intake(handlers.AnswerFinal, handlers.WhyStored, 300*time.Microsecond)
	m.Intake(handlers.AnswerFinal, handlers.WhyStored, 700*time.Microsecond)
	m.Intake(handlers.AnswerNotFound, handlers.WhySkippedType, 100*time.Microsecond)
	m.Intake(handlers.AnswerNotFound, "1001@example.org says hello", time.Millisecond)
	m.Intake("sip:1001@example.org", "Call-ID: abc@host", time.Millisecond)
	m.Delivered(relay.PathESL, 2*time.Second)
	m.Delivered(relay.PathDirect, 30*time.Millisecond)
	m.Delivered("sip:1002@example.org", time.Second)
	m.Detected(presence.DetectPinger, 6500*time.Millisecond)
	m.Detected("1003@example.org", time.Second)
	m.PingAnswered(3 * time.Millisecond)

	for _, c := range []struct {
		name   string
		labels []string
		count  uint64
		sum    float64
	}{
		{"sipsilo_intake_seconds", []string{"answer", "final", "why", "stored"}, 2, .001},
		{"sipsilo_intake_seconds", []string{"answer", "not_found", "why", "skipped_type"}, 1, .0001},
		{"sipsilo_intake_seconds", []string{"answer", "not_found", "why", "other"}, 1, .001},
		{"sipsilo_intake_seconds", []string{"answer", "other", "why", "other"}, 1, .001},
		{"sipsilo_intake_seconds", []string{"answer", "lost", "why", "released"}, 0, 0},
		{"sipsilo_delivery_seconds", []string{"path", "esl"}, 1, 2},
		{"sipsilo_delivery_seconds", []string{"path", "direct"}, 1, .03},
		{"sipsilo_delivery_seconds", []string{"path", "other"}, 1, 1},
		{"sipsilo_detection_seconds", []string{"source", "pinger"}, 1, 6.5},
		{"sipsilo_detection_seconds", []string{"source", "delivery"}, 0, 0},
		{"sipsilo_detection_seconds", []string{"source", "other"}, 1, 1},
		{"sipsilo_pinger_rtt_seconds", nil, 1, .003},
	} {
		count, sum := histogram(t, reg, c.name, c.labels...)
		if count != c.count || sum < c.sum-1e-9 || sum > c.sum+1e-9 {
			t.Errorf("%s%v: count %d sum %g, want %d and %g", c.name, c.labels, count, sum, c.count, c.sum)
		}
	}
	for name, n := range before {
		if got := seriesCount(t, reg, name); got != n {
			t.Errorf("%s: %d series after observing odd labels, want %d", name, got, n)
		}
	}
	allowed := map[string]bool{other: true}
	for _, k := range intakeAnswers {
		allowed[k.answer], allowed[k.why] = true, true
	}
	for _, v := range append(deliveryPaths, detectSources...) {
		allowed[v] = true
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sipsilo_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !allowed[lp.GetValue()] {
					t.Errorf("%s has label %s=%q, outside the tables", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

func TestNilMetricsHooksDoNothing(t *testing.T) {
	var m *Metrics
	m.Intake(handlers.AnswerFinal, handlers.WhyStored, time.Millisecond)
	m.Delivered(relay.PathESL, time.Second)
	m.Detected(presence.DetectPinger, time.Second)
	m.PingAnswered(time.Millisecond)
}

// A second New on the same registry is an error, not a panic: two daemons in one
// process must use two registries.
func TestNewTwiceOnOneRegistryFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, Sources{}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, Sources{}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("second New: %v, want a duplicate registration error", err)
	}
}
