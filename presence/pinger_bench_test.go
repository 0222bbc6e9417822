package presence

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPingerThroughput measures sustained OPTIONS per second against one local
// responder, 256 probes in flight and no rate limit. Pinger and responder share
// this process, so the figure is what one core pair does for both sides.
func BenchmarkPingerThroughput(b *testing.B) {
	const perOp = 10000
	r := newPingResponder(b, 200)
	p, err := NewPinger(PingerConfig{Concurrency: 256, Rate: math.Inf(1), Timeout: 2 * time.Second}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	targets := make([]Target, 1000)
	for i := range targets {
		targets[i] = r.Target(strconv.Itoa(i))
	}
	total := b.N * perOp
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int, 256)
	for range 256 {
		wg.Go(func() {
			for i := range next {
				p.Probe(context.Background(), targets[i%len(targets)])
			}
		})
	}
	for i := range total {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	st := p.Stats()
	if st.Answered < int64(total)*99/100 {
		b.Fatalf("%d of %d answered", st.Answered, total)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "pings/s")
}

// BenchmarkPingerCPU measures the pinger's CPU cost at the default interval: 1,000
// targets at 5 s for 10 s, against a responder in a child process so that
// getrusage counts the pinger alone.
func BenchmarkPingerCPU(b *testing.B) {
	const (
		n   = 1000
		dur = 10 * time.Second
	)
	addr, stop := startResponderProcess(b)
	defer stop()
	targets := make([]Target, n)
	for i := range targets {
		s := strconv.Itoa(i)
		targets[i] = Target{AOR: "u" + s + "@127.0.0.1", CallID: "call-" + s, URI: "sip:u" + s + "@" + addr, Dest: addr}
	}
	var cpu time.Duration
	var answered int64
	for b.Loop() {
		p, err := NewPinger(PingerConfig{Interval: 5 * time.Second}, newTargetList(targets...).Get, nil)
		if err != nil {
			b.Fatal(err)
		}
		before := cpuTime(b)
		if err := runPingerFor(p, dur, nil); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime(b) - before
		answered += p.Stats().Answered
		p.Close()
	}
	runs := float64(b.N)
	if answered < int64(runs*n) {
		b.Fatalf("%d answers in %v for %d targets", answered, dur, n)
	}
	perMin := cpu.Seconds() * 1000 / runs / (float64(n) / 1000) / dur.Minutes()
	b.ReportMetric(perMin, "cpu-ms/1k-contacts/min")
	b.ReportMetric(float64(answered)/runs/dur.Seconds(), "pings/s")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startResponderProcess runs TestPingerResponderProcess in a child copy of this
// test binary and returns the address it answers on.
func startResponderProcess(b *testing.B) (string, func()) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPingerResponderProcess$")
	cmd.Env = append(os.Environ(), "SIPSILO_PING_RESPONDER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() {
		stdin.Close()
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var addr string
	if _, serr := fmt.Sscanf(line, "addr %s", &addr); err != nil || serr != nil {
		stop()
		b.Fatalf("responder process said %q: %v", line, err)
	}
	return addr, stop
}

// TestPingerResponderProcess is the child of startResponderProcess: it answers
// OPTIONS until its stdin closes. It does nothing in a normal test run.
func TestPingerResponderProcess(t *testing.T) {
	if os.Getenv("SIPSILO_PING_RESPONDER") != "1" {
		return // not a skip: a CI that fails on skips must not trip over a helper
	}
	r := newPingResponder(t, 200)
	fmt.Printf("addr %s\n", r.Addr())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until EOF
}
