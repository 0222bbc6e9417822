package presence

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// pingResponder is a device on its own UDP socket on 127.0.0.1 that answers
// OPTIONS with a settable status, or drops everything while silent (its port stays
// open, as with a phone that lost its network). It records when each datagram
// arrived and where from.
type pingResponder struct {
	conn   *recordingConn
	ua     *sipgo.UserAgent
	status atomic.Int32
	wg     sync.WaitGroup
	once   sync.Once
}

func newPingResponder(t testing.TB, status int) *pingResponder {
	t.Helper()
	r, err := startPingResponder(status)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func startPingResponder(status int) (*pingResponder, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("responder"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		pc.Close()
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		ua.Close()
		pc.Close()
		return nil, err
	}
	r := &pingResponder{conn: &recordingConn{PacketConn: pc}, ua: ua}
	r.status.Store(int32(status))
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		code := int(r.status.Load())
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, "Status", nil))
	})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		_ = srv.ServeUDP(r.conn)
	}()
	if err := waitUDPServed(ua, pc.LocalAddr().String()); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *pingResponder) Addr() string { return r.conn.LocalAddr().String() }

// Target names this responder; n makes the URI and Call-ID distinct.
func (r *pingResponder) Target(n string) Target {
	return Target{AOR: "u" + n + "@127.0.0.1", CallID: "call-" + n, Profile: "internal",
		URI: "sip:u" + n + "@" + r.Addr(), Dest: r.Addr()}
}

// Client sends from the responder's socket, as a device would.
func (r *pingResponder) Client(t testing.TB) *sipgo.Client {
	t.Helper()
	cl, err := sipgo.NewClient(r.ua, sipgo.WithClientConnectionAddr(r.Addr()), sipgo.WithClientHostname("127.0.0.1"),
		sipgo.WithClientLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (r *pingResponder) SetSilent(on bool) { r.conn.silent.Store(on) }

// Close closes the port: later pings get no answer (and, on an unconnected UDP
// socket, no error either).
func (r *pingResponder) Close() {
	r.once.Do(func() {
		r.ua.Close()
		r.conn.Close()
		r.wg.Wait()
	})
}

// recordingConn records every datagram's arrival and drops them while silent.
type recordingConn struct {
	net.PacketConn
	silent atomic.Bool
	mu     sync.Mutex
	at     []time.Time
	from   map[string]int
}

func (c *recordingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, addr, err
		}
		c.mu.Lock()
		c.at = append(c.at, time.Now())
		if c.from == nil {
			c.from = map[string]int{}
		}
		c.from[addr.String()]++
		c.mu.Unlock()
		if !c.silent.Load() {
			return n, addr, err
		}
	}
}

// arrivals returns the arrival times so far.
func (c *recordingConn) arrivals() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at...)
}

func (c *recordingConn) sources() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.from {
		out[k] = v
	}
	return out
}

// targetList is a targets() function whose list a test can change.
type targetList struct{ v atomic.Pointer[[]Target] }

func newTargetList(ts ...Target) *targetList {
	l := &targetList{}
	l.Set(ts...)
	return l
}

func (l *targetList) Set(ts ...Target) { l.v.Store(&ts) }
func (l *targetList) Get() []Target    { return *l.v.Load() }

// pingLog collects reported results.
type pingLog struct {
	mu  sync.Mutex
	res []PingResult
}

func (l *pingLog) add(r PingResult) {
	l.mu.Lock()
	l.res = append(l.res, r)
	l.mu.Unlock()
}

func (l *pingLog) all() []PingResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]PingResult(nil), l.res...)
}

// waitFor returns the first result from index `from` on that matches, failing the
// test after timeout.
func (l *pingLog) waitFor(t testing.TB, timeout time.Duration, what string, match func(PingResult) bool) PingResult {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range l.all() {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result %s within %v; got %d results", what, timeout, len(l.all()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fastPingConfig is the timing the tests use: Interval 1 s, Timeout 300 ms.
func fastPingConfig() PingerConfig {
	return PingerConfig{Interval: time.Second, Timeout: 300 * time.Millisecond, Misses: 2}
}

// startPinger creates a pinger, runs its schedule, and stops and closes it when
// the test ends.
func startPinger(t testing.TB, cfg PingerConfig, targets func() []Target, report func(PingResult)) *Pinger {
	t.Helper()
	p, err := NewPinger(cfg, targets, report)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count fds: %v", err)
	}
	return len(es)
}

// settleGoroutines waits until at most limit goroutines run and returns the count.
func settleGoroutines(limit int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isBadTarget(err error) bool { return errors.Is(err, ErrBadTarget) }

// runPingerFor runs p's schedule for d, calling mid halfway, and returns Run's error.
func runPingerFor(p *Pinger, d time.Duration, mid func()) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	time.Sleep(d / 2)
	if mid != nil {
		mid()
	}
	time.Sleep(d - d/2)
	cancel()
	return <-done
}
