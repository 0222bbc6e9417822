package e2e

// The per-device drain against FreeSWITCH 1.10.12 with
// multiple-registrations=contact (BENCHMARKS.md). Run with
//
//	go test -run '^$' -bench RealFSDeviceDrain -benchtime 1x -count 3 -timeout 60m ./internal/e2e/

import (
	"fmt"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsreal"
)

// BenchmarkRealFSDeviceDrain: n (1,000; SIPSILO_BENCH_N) messages queued for
// 1001 while its phones are off — known to sipsilo, then unregistered, so each
// message targets each of them — drained when they register again. devices=1
// is the single-device path on the same profile (no copies), devices=2 a copy
// per phone; through FreeSWITCH (--ping off: bgapi chat to each phone's
// contact) and direct (the defaults: sipsilo's own MESSAGE to each phone). The
// clock runs from the first REGISTER to the last message at the last phone.
func BenchmarkRealFSDeviceDrain(b *testing.B) {
	sw := startRealSwitchWith(b, fsreal.Options{MultipleRegistrations: "contact"})
	n := benchDrainN()
	for _, path := range []struct {
		name string
		args []string
	}{{"freeswitch", fsPath}, {"direct", nil}} {
		for _, devices := range []int{1, 2} {
			b.Run(fmt.Sprintf("path=%s/devices=%d", path.name, devices), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					took, inv, dup := realFSDeviceDrain(b, sw, devices, n, path.args...)
					b.ReportMetric(took.Seconds(), "s/drain")
					b.ReportMetric(float64(n*devices)/took.Seconds(), "copies/s")
					b.ReportMetric(float64(inv), "inversions")
					b.ReportMetric(float64(dup), "duplicates")
				}
			})
		}
	}
}

// realFSDeviceDrain is one op of BenchmarkRealFSDeviceDrain: the drain's time,
// and the inversions and duplicates summed over the phones.
func realFSDeviceDrain(b *testing.B, sw *realSwitch, devices, n int, args ...string) (took time.Duration, inv, dup int) {
	b.Helper()
	r := benchSipsilo(b, sw, append([]string{"--admin-token", adminToken}, args...)...)
	alice := benchUA(b, sw, "1000")
	register(b, alice)
	devs := make([]*device, devices)
	for i := range devs {
		ua := benchUA(b, sw, "1001")
		devs[i] = newDevice(b, fmt.Sprintf("1001/%c", 'A'+i), ua)
	}
	registerAll(b, r, "1001", devs...)
	unregisterAll(b, r, "1001", devs...)
	for i := range n {
		sendRetry(b, alice, "1001", bodyN(i))
	}
	stored := waitStored(b, r, n)
	b.StartTimer()
	start := time.Now()
	for _, d := range devs {
		register(b, d.ua)
	}
	for _, d := range devs {
		d.in.waitCount(b, stored, 10*time.Minute)
	}
	took = time.Since(start)
	b.StopTimer()
	time.Sleep(500 * time.Millisecond) // a late duplicate has time to arrive
	for _, d := range devs {
		all := d.in.all()
		inv += firstInversions(b, all)
		dup += len(all) - stored
	}
	unregister(b, alice)
	for _, d := range devs {
		unregister(b, d.ua)
	}
	sw.fs.WaitRegistered(b, "1001", false, 10*time.Second)
	stopSipsilo(b, r)
	return took, inv, dup
}

// BenchmarkRealFSDeviceBack: two phones of 1001 at sipsilo's defaults; B goes
// silent and sipsilo's pinger has FreeSWITCH flush it. Then a message: live is
// the time from sending it to A's socket (a silent sibling must not delay it),
// back the time from B's fresh REGISTER to the same message at B's socket (a
// REGISTER is a sign of life: no wait for the next ping).
func BenchmarkRealFSDeviceBack(b *testing.B) {
	sw := startRealSwitchWith(b, fsreal.Options{MultipleRegistrations: "contact"})
	for range b.N {
		b.StopTimer()
		r := benchSipsilo(b, sw, "--admin-token", adminToken)
		alice := benchUA(b, sw, "1000")
		register(b, alice)
		devs := make([]*device, 2)
		for i := range devs {
			ua := benchUA(b, sw, "1001")
			devs[i] = newDevice(b, fmt.Sprintf("1001/%c", 'A'+i), ua)
		}
		registerAll(b, r, "1001", devs...)
		a, away := devs[0], devs[1]
		away.ua.SetSilent(true)
		deadline := time.Now().Add(time.Minute)
		for len(sw.fs.Registrations(b, "1001")) != 1 {
			if time.Now().After(deadline) {
				b.Fatal("the silent phone was not flushed within a minute")
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.StartTimer()
		start := time.Now()
		sendRetry(b, alice, "1001", "while B is away")
		a.in.waitCount(b, 1, time.Minute)
		live := time.Since(start)
		away.ua.SetSilent(false)
		start = time.Now()
		register(b, away.ua)
		away.in.waitCount(b, 1, time.Minute)
		back := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(live.Milliseconds()), "live-ms")
		b.ReportMetric(float64(back.Milliseconds()), "back-ms")
		unregister(b, alice, a.ua, away.ua)
		sw.fs.WaitRegistered(b, "1001", false, 10*time.Second)
		stopSipsilo(b, r)
	}
}
