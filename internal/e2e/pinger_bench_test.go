package e2e

// Detection latency of a silent phone, against the binary, the emulator and sipp
// phones. Run with
//
//	go test -run '^$' -bench Detection -benchtime 1x -count 3 -timeout 30m .

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/sipptest"
)

// BenchmarkDetection: 20 sipp phones go silent (SIGSTOP) at random points of one
// ping interval; latency from each silence to FreeSWITCH being asked to flush the
// registration. FreeSWITCH's own pinging needs 47 s at a 5 s interval (seen on FreeSWITCH 1.10.12, docs/decisions.md §8;
// scenario 09).
func BenchmarkDetection(b *testing.B) {
	for _, interval := range []time.Duration{5 * time.Second, 30 * time.Second} {
		b.Run("interval="+interval.String(), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				lat := detectionRun(b, interval, 20)
				slices.Sort(lat)
				s := func(d time.Duration) float64 { return d.Seconds() }
				b.ReportMetric(s(lat[len(lat)/2]), "p50-s")
				b.ReportMetric(s(lat[len(lat)*95/100-1]), "p95-s")
				b.ReportMetric(s(lat[len(lat)-1]), "max-s")
			}
		})
	}
}

func detectionRun(b *testing.B, interval time.Duration, n int) []time.Duration {
	r := newRig(b, fsemu.SwitchOptions{Users: users()}, "--ping-interval", interval.String(), "--log-level", "info")
	flushes := watchFlushes(b, r.sw)
	phones := make([]*sipptest.Phone, n)
	callIDs := make([]string, n)
	for i := range n {
		user := fmt.Sprint(2000 + i)
		phones[i], _ = phoneAs(b, r.sw.SIPAddr(), user, sipptest.Options{})
		callIDs[i] = callIDOf(b, r.sw, user)
	}
	for _, ph := range phones {
		waitPinged(b, ph, 2*interval)
	}
	silenced := silenceAtRandom(phones, interval)
	b.StartTimer()
	lat := flushLatencies(b, flushes, callIDs, silenced, 3*interval)
	b.StopTimer()
	r.stop()
	return lat
}
