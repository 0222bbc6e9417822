package e2e

// Benchmarks beside a real Asterisk 22 (internal/astreal). Run with
//
//	go test -run '^$' -bench Ast -benchtime 1x -count 3 -timeout 30m ./internal/e2e/

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"
)

// curlSpans reads Asterisk's full log and returns, per message, how long the
// context's CURL() step took: from executing priority 2 (the Set whose value
// is the CURL call) to executing priority 3 (after CURL returned). Asterisk
// runs one message at a time, so the lines pair in order.
func curlSpans(b *testing.B, path string) []time.Duration {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	line := regexp.MustCompile(`^\[(\S+ \S+)\] .*Executing \[[^@]+@sipsilo-messages:([23])\]`)
	var spans []time.Duration
	var start time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse("2006-01-02 15:04:05.000", m[1])
		if err != nil {
			b.Fatal(err)
		}
		if m[2] == "2" {
			start = at
		} else if !start.IsZero() {
			spans = append(spans, at.Sub(start))
			start = time.Time{}
		}
	}
	return spans
}

// BenchmarkAstIntake: n MESSAGEs to an offline recipient through Asterisk,
// each owned by sipsilo; reported: the CURL() step as Asterisk's log times it
// (median, p95, max; the log has millisecond resolution) and messages owned
// per second from the first send to the last one stored.
func BenchmarkAstIntake(b *testing.B) {
	const n = 500
	for range b.N {
		r := newAstRig(b, "--log-level", "info", "--quota", "0")
		alice := r.ua("1000")
		start := time.Now()
		for i := range n {
			send(b, alice, "1001", bodyN(i))
		}
		r.waitStored(n, time.Minute)
		took := time.Since(start)
		spans := curlSpans(b, r.ast.LogPath())
		if len(spans) < n {
			b.Fatalf("%d CURL steps in Asterisk's log, want %d", len(spans), n)
		}
		slices.Sort(spans)
		b.ReportMetric(float64(spans[len(spans)/2].Microseconds())/1000, "curl-median-ms")
		b.ReportMetric(float64(spans[len(spans)*95/100].Microseconds())/1000, "curl-p95-ms")
		b.ReportMetric(float64(spans[len(spans)-1].Microseconds())/1000, "curl-max-ms")
		b.ReportMetric(float64(n)/took.Seconds(), "owned/s")
		r.stop()
	}
}

// BenchmarkAstDrain1000: 1,000 messages queued for an offline phone, which
// then registers; reported: messages per second from its REGISTER to the
// last one received (direct path, the only one beside Asterisk).
func BenchmarkAstDrain1000(b *testing.B) {
	const n = 1000
	for range b.N {
		r := newAstRig(b, "--log-level", "info", "--quota", "0")
		alice, bob := r.ua("1000"), r.ua("1001")
		in := collect(b, bob)
		for i := range n {
			send(b, alice, "1001", bodyN(i))
		}
		r.waitStored(n, 2*time.Minute)
		start := time.Now()
		register(b, bob)
		in.waitCount(b, n, 5*time.Minute)
		took := time.Since(start)
		b.ReportMetric(float64(n)/took.Seconds(), "msgs/s")
		b.ReportMetric(took.Seconds(), "drain-s")
		if c := counts(in.all()); len(c) != n {
			b.Fatalf("%d distinct of %d", len(c), n)
		}
		r.stop()
	}
}

// detections is how many registrations sipsilo has found unreachable.
func (r *astRig) detections() uint64 {
	var n uint64
	if mf := scrape(r.t, r.rig)["sipsilo_detection_seconds"]; mf != nil {
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

// BenchmarkAstSilentDetection: a registered phone that answers goes silent,
// k times; reported: the time until sipsilo counts it unreachable (its own
// pinger or Asterisk's qualify through AMI, whichever is first), median and
// the slowest of k.
func BenchmarkAstSilentDetection(b *testing.B) {
	const k = 10
	for range b.N {
		r := newAstRig(b, "--log-level", "info")
		alice, bob := r.ua("1000"), r.ua("1001")
		register(b, bob)
		in := collect(b, bob)
		var took []time.Duration
		for i := range k {
			send(b, alice, "1001", bodyN(i)) // delivered: sipsilo has it reachable
			in.waitCount(b, i+1, time.Minute)
			before := r.detections()
			bob.SetSilent(true)
			start := time.Now()
			for r.detections() == before {
				if time.Since(start) > time.Minute {
					b.Fatal("silent phone not found unreachable within a minute")
				}
				time.Sleep(20 * time.Millisecond)
			}
			took = append(took, time.Since(start))
			bob.SetSilent(false)
			register(b, bob)
		}
		slices.Sort(took)
		b.ReportMetric(took[k/2].Seconds(), "median-s")
		b.ReportMetric(took[k-1].Seconds(), "max-s")
		r.stop()
	}
}
