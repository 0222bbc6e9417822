package presence

import (
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Ensure thousands of targets are paced by the rate limit (no window above the
// configured rate), each is pinged within its first Interval, and the pinger's
// goroutines and fds do not grow with the number of targets.
//
// Not parallel: it measures the process's goroutines and fds, and its load would
// disturb the timing tests (parallel tests start after it ends).
func TestPingerLoadNoBurst(t *testing.T) {
	n := 10000
	if raceEnabled {
		n = 1000
	}
	const (
		rateLimit = 2500.0
		window    = 100 * time.Millisecond
		runFor    = 6500 * time.Millisecond
	)
	cfg := PingerConfig{Interval: 5 * time.Second, Timeout: time.Second, Rate: rateLimit, Concurrency: 64}
	r := newPingResponder(t, 200)
	targets := make([]Target, n)
	for i := range targets {
		targets[i] = r.Target(strconv.Itoa(i))
	}
	list := newTargetList(targets...)

	var mu sync.Mutex
	alive := map[string]bool{}
	missed := 0
	report := func(res PingResult) {
		mu.Lock()
		defer mu.Unlock()
		if res.Alive {
			alive[res.Target.CallID] = true
		} else {
			missed++
		}
	}

	goBefore, fdBefore := runtime.NumGoroutine(), openFDs(t)
	p, err := NewPinger(cfg, list.Get, report)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = runPingerFor(p, runFor, func() {
		// Mid-run: in flight is bounded by Concurrency, never by the targets.
		if g := runtime.NumGoroutine(); g > goBefore+3*cfg.Concurrency+100 {
			t.Errorf("%d goroutines during the run (%d before) for %d targets", g, goBefore, n)
		}
		if fd := openFDs(t); fd > fdBefore+3 {
			t.Errorf("%d fds during the run (%d before)", fd, fdBefore)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// Count OPTIONS per window at the responder.
	counts := map[int]int{}
	for _, at := range r.conn.arrivals() {
		counts[int(at.Sub(start)/window)]++
	}
	limit := int(rateLimit*window.Seconds()*1.5) + p.lim.Burst()
	peak := 0
	for _, c := range counts {
		peak = max(peak, c)
	}
	t.Logf("%d targets: %d OPTIONS in %v, peak %d per %v (limit %d), %d missed", n, len(r.conn.arrivals()), runFor, peak, window, limit, missed)
	if peak > limit {
		t.Errorf("peak %d OPTIONS per %v, above the rate's %d", peak, window, limit)
	}
	mu.Lock()
	if got := len(alive); got < n*99/100 {
		t.Errorf("%d of %d targets answered within %v", got, n, runFor)
	}
	mu.Unlock()

	if g := settleGoroutines(goBefore+5, 5*time.Second); g > goBefore+5 {
		t.Errorf("%d goroutines after Close, %d before", g, goBefore)
	}
	if fd := openFDs(t); fd > fdBefore+1 {
		t.Errorf("%d fds after Close, %d before", fd, fdBefore)
	}
}
