package presence

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Ensure any final response proves life (docs/decisions.md §6), on the schedule and on
// Probe, and that every ping leaves from the pinger's one socket.
func TestPingerAnyFinalResponseIsAlive(t *testing.T) {
	t.Parallel()
	for _, code := range []int{200, 404, 405, 486, 501} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			r := newPingResponder(t, code)
			var log pingLog
			p := startPinger(t, fastPingConfig(), newTargetList(r.Target("1")).Get, log.add)
			got := log.waitFor(t, 3*time.Second, "from the schedule", func(PingResult) bool { return true })
			if !got.Alive || got.Status != code || got.Misses != 0 || got.Err != nil || got.RTT <= 0 || got.Probe {
				t.Fatalf("scheduled result = %+v, want alive with status %d", got, code)
			}
			res := p.Probe(context.Background(), r.Target("1"))
			if !res.Alive || res.Status != code || !res.Probe {
				t.Fatalf("Probe = %+v, want alive with status %d", res, code)
			}
			for src := range r.conn.sources() {
				if src != p.Addr() {
					t.Fatalf("ping came from %s, want the pinger's socket %s", src, p.Addr())
				}
			}
		})
	}
}

// Ensure a silent device is missed, re-probed at once (not an Interval later),
// reaches Misses=2 in time, and is then pinged at the Interval again.
func TestPingerSilentReprobesAtOnce(t *testing.T) {
	t.Parallel()
	r := newPingResponder(t, 200)
	r.SetSilent(true)
	cfg := fastPingConfig()
	var log pingLog
	start := time.Now()
	startPinger(t, cfg, newTargetList(r.Target("1")).Get, log.add)

	// The first ping is due within the first Interval.
	limit := cfg.Interval + 2*cfg.Timeout + time.Second
	second := log.waitFor(t, limit, "with Misses=2", func(r PingResult) bool { return r.Misses >= 2 })
	if took := second.At.Sub(start); took > limit {
		t.Fatalf("Misses=2 after %v, want within %v", took, limit)
	}
	first := log.all()[0]
	if first.Alive || first.Misses != 1 || first.Err == nil || first.Status != 0 {
		t.Fatalf("first result = %+v, want a miss with an error", first)
	}
	// The re-probe left after the first miss and before any scheduled ping could be due.
	earliestScheduled := first.At.Add(time.Duration(float64(cfg.Interval) * (1 - DefaultPingJitter)))
	var reprobe time.Time
	for _, at := range r.conn.arrivals() {
		if at.After(first.At) {
			reprobe = at
			break
		}
	}
	if reprobe.IsZero() || !reprobe.Before(earliestScheduled) || !reprobe.Before(second.At) {
		t.Fatalf("re-probe at %v, first miss at %v: want it before %v and before the second miss", reprobe, first.At, earliestScheduled)
	}
	// Past Misses, the device is pinged at the Interval, not hammered.
	third := log.waitFor(t, 2*cfg.Interval+time.Second, "with Misses=3", func(r PingResult) bool { return r.Misses >= 3 })
	if gap := third.At.Sub(second.At); gap < earliestScheduled.Sub(first.At) {
		t.Fatalf("third ping %v after the second miss, want about an Interval", gap)
	}
}

// Ensure a device that goes silent is reported with Misses>=2 within
// Interval + 2·Timeout + 1 s, and a device that answers again resets the count.
func TestPingerDetectsSilenceAndRecovery(t *testing.T) {
	t.Parallel()
	r := newPingResponder(t, 200)
	cfg := fastPingConfig()
	var log pingLog
	startPinger(t, cfg, newTargetList(r.Target("1")).Get, log.add)
	log.waitFor(t, 3*time.Second, "alive", func(r PingResult) bool { return r.Alive })

	r.SetSilent(true)
	silent := time.Now()
	limit := cfg.Interval + 2*cfg.Timeout + time.Second
	dead := log.waitFor(t, limit+time.Second, "with Misses>=2", func(r PingResult) bool {
		return r.Misses >= 2 && r.At.After(silent)
	})
	if took := dead.At.Sub(silent); took > limit {
		t.Fatalf("silence detected after %v, want within %v", took, limit)
	}

	r.SetSilent(false)
	back := time.Now()
	log.waitFor(t, cfg.Interval*2, "alive again", func(r PingResult) bool {
		return r.Alive && r.Misses == 0 && r.At.After(back)
	})
}

// Ensure a closed port (a killed UA) is missed too.
func TestPingerClosedPortMisses(t *testing.T) {
	t.Parallel()
	r := newPingResponder(t, 200)
	target := r.Target("1")
	r.Close()
	cfg := fastPingConfig()
	var log pingLog
	start := time.Now()
	startPinger(t, cfg, newTargetList(target).Get, log.add)
	limit := cfg.Interval + 2*cfg.Timeout + time.Second
	got := log.waitFor(t, limit, "with Misses=2", func(r PingResult) bool { return r.Misses >= 2 })
	if got.Alive || got.Err == nil || got.At.Sub(start) > limit {
		t.Fatalf("result = %+v after %v", got, got.At.Sub(start))
	}
}

// Ensure Probe answers within Timeout for a live device, misses a silent one,
// counts misses for a target that is not on the schedule, and does not count a
// probe its caller abandoned.
func TestPingerProbe(t *testing.T) {
	t.Parallel()
	live := newPingResponder(t, 200)
	silent := newPingResponder(t, 200)
	silent.SetSilent(true)
	cfg := fastPingConfig()
	var log pingLog
	p := startPinger(t, cfg, newTargetList().Get, log.add) // nothing scheduled

	ctx := context.Background()
	start := time.Now()
	res := p.Probe(ctx, live.Target("1"))
	if !res.Alive || res.Status != 200 || !res.Probe || time.Since(start) > cfg.Timeout {
		t.Fatalf("live Probe = %+v after %v", res, time.Since(start))
	}
	for i := 1; i <= 2; i++ {
		start = time.Now()
		res = p.Probe(ctx, silent.Target("1"))
		took := time.Since(start)
		if res.Alive || res.Err == nil || res.Misses != i || took < cfg.Timeout || took > cfg.Timeout+500*time.Millisecond {
			t.Fatalf("silent Probe %d = %+v after %v", i, res, took)
		}
	}
	if got, want := len(log.all()), 3; got != want {
		t.Fatalf("reported %d results, want %d", got, want)
	}

	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	res = p.Probe(cctx, silent.Target("1"))
	if res.Alive || res.Err == nil || res.Misses != 2 {
		t.Fatalf("abandoned Probe = %+v, want an error and the count unchanged", res)
	}
	if got, want := len(log.all()), 3; got != want {
		t.Fatalf("an abandoned probe was reported: %d results, want %d", got, want)
	}
	if res := p.Probe(ctx, live.Target("1")); res.Misses != 0 || !res.Alive {
		t.Fatalf("second live Probe = %+v", res)
	}
}

// Ensure a Probe that misses a scheduled target makes the schedule confirm at once.
func TestPingerProbeMissMovesSchedule(t *testing.T) {
	t.Parallel()
	r := newPingResponder(t, 200)
	cfg := fastPingConfig()
	cfg.Interval = 10 * time.Second // no scheduled ping would come in this test's time
	cfg.Jitter = -1
	r.SetSilent(true)
	// A new target's first scheduled ping lands at a random point of its first
	// interval; if it came before the Probe, the Probe is the second miss and
	// there is nothing left to re-probe. Start again then (rare: the Probe takes
	// 300 ms of a 10 s interval).
	var log *pingLog
	var res PingResult
	for try := 0; ; try++ {
		log = new(pingLog)
		p := startPinger(t, cfg, newTargetList(r.Target("1")).Get, log.add)
		res = p.Probe(context.Background(), r.Target("1"))
		if res.Alive {
			t.Fatalf("Probe = %+v", res)
		}
		if res.Misses == 1 {
			break
		}
		if try == 3 {
			t.Fatalf("the schedule pinged first %d times in a row: %+v", try+1, res)
		}
	}
	got := log.waitFor(t, 2*cfg.Timeout+time.Second, "the schedule's re-probe", func(r PingResult) bool {
		return !r.Probe && r.Misses == 2
	})
	if got.At.Sub(res.At) > cfg.Timeout+500*time.Millisecond {
		t.Fatalf("re-probe result %v after the Probe's miss", got.At.Sub(res.At))
	}
}

// Ensure untrusted contact strings never crash the pinger: each bad target is
// reported as a miss with ErrBadTarget, and nothing is sent for it.
func TestPingerBadTargets(t *testing.T) {
	t.Parallel()
	r := newPingResponder(t, 200)
	good := r.Target("ok")
	bad := []Target{
		{URI: "garbage", Dest: r.Addr()},
		{URI: "", Dest: r.Addr()},
		{URI: "sip:", Dest: r.Addr()},
		{URI: "sip:1001@127.0.0.1\r\nX-Evil: 1", Dest: r.Addr()},
		{URI: "sip:1001@127.0.0.1\nVia: SIP/2.0/UDP 6.6.6.6", Dest: r.Addr()},
		{URI: "sip:1001 @127.0.0.1", Dest: r.Addr()},
		{URI: "sip:<1001>@127.0.0.1", Dest: r.Addr()},
		{URI: "sip:1001@127.0.0.1?Subject=x", Dest: r.Addr()},
		{URI: "sips:1001@127.0.0.1", Dest: r.Addr()},
		{URI: "sip:1001@127.0.0.1;transport=tcp", Dest: r.Addr()},
		{URI: "tel:+4912345", Dest: r.Addr()},
		{URI: "*", Dest: r.Addr()},
		{URI: "sip:" + strings.Repeat("a", 2000) + "@127.0.0.1", Dest: r.Addr()},
		{URI: good.URI, Dest: "127.0.0.1"},
		{URI: good.URI, Dest: ""},
		{URI: good.URI, Dest: "localhost:5060"},
		{URI: good.URI, Dest: "[::1]:5060"},
		{URI: good.URI, Dest: "0.0.0.0:5060"},
		{URI: good.URI, Dest: "127.0.0.1:0"},
		{URI: good.URI, Dest: "127.0.0.1:99999"},
		{URI: good.URI, Dest: "127.0.0.1:x"},
		{URI: good.URI, Dest: r.Addr() + "\r\nX: y"},
	}
	for i := range bad {
		bad[i].AOR, bad[i].CallID = "bad"+strconv.Itoa(i)+"@127.0.0.1", "bad-"+strconv.Itoa(i)
		if err := bad[i].Validate(); !isBadTarget(err) {
			t.Errorf("Validate(%q, %q) = %v, want ErrBadTarget", bad[i].URI, bad[i].Dest, err)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}

	var log pingLog
	p := startPinger(t, fastPingConfig(), newTargetList(append([]Target{good}, bad...)...).Get, log.add)
	for _, b := range bad {
		got := log.waitFor(t, 3*time.Second, "for "+b.CallID, func(r PingResult) bool {
			return r.Target.CallID == b.CallID && r.Misses >= 2
		})
		if got.Alive || !isBadTarget(got.Err) {
			t.Errorf("%q %q: %+v, want a miss with ErrBadTarget", b.URI, b.Dest, got)
		}
		if res := p.Probe(context.Background(), b); res.Alive || !isBadTarget(res.Err) {
			t.Errorf("Probe(%q %q) = %+v", b.URI, b.Dest, res)
		}
	}
	log.waitFor(t, 3*time.Second, "for the good target", func(r PingResult) bool { return r.Alive })
	if got := len(r.conn.arrivals()); int64(got) != p.Stats().Sent {
		t.Fatalf("responder saw %d datagrams, pinger sent %d: bad targets must send nothing", got, p.Stats().Sent)
	}
}

// Ensure requests and garbage sent to the pinger's socket are answered or
// dropped without breaking the pinging.
func TestPingerStrayRequests(t *testing.T) {
	t.Parallel()
	r := newPingResponder(t, 200)
	var log pingLog
	p := startPinger(t, fastPingConfig(), newTargetList(r.Target("1")).Get, log.add)

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Garbage first: sipgo must drop it.
	for _, b := range []string{"\x00\x01garbage", "INVITE\r\n\r\n", "SIP/2.0 200 OK\r\n\r\n", strings.Repeat("A", 1400)} {
		if _, err := pc.WriteTo([]byte(b), mustUDPAddr(t, p.Addr())); err != nil {
			t.Fatal(err)
		}
	}
	pc.Close()

	cl := newPingResponder(t, 200).Client(t)
	host, port, _ := sip.ParseAddr(p.Addr())
	for _, tc := range []struct {
		method sip.RequestMethod
		want   int
	}{{sip.MESSAGE, 405}, {sip.OPTIONS, 200}, {sip.BYE, 481}, {sip.INVITE, 405}, {sip.NOTIFY, 405}} {
		req := sip.NewRequest(tc.method, sip.Uri{Scheme: "sip", User: "x", Host: host, Port: port})
		req.SetTransport("UDP")
		req.SetDestination(p.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := cl.Do(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if res.StatusCode != tc.want {
			t.Errorf("%s answered %d, want %d", tc.method, res.StatusCode, tc.want)
		}
	}
	log.waitFor(t, 3*time.Second, "alive", func(r PingResult) bool { return r.Alive })
	if res := p.Probe(context.Background(), r.Target("1")); !res.Alive {
		t.Fatalf("Probe after stray requests = %+v", res)
	}
}

// Ensure Client sends from the pinger's socket, so its responses arrive there.
func TestPingerClientSharesSocket(t *testing.T) {
	t.Parallel()
	r := newPingResponder(t, 200)
	p, err := NewPinger(PingerConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	host, port, _ := sip.ParseAddr(r.Addr())
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "1001", Host: host, Port: port})
	req.SetTransport("UDP")
	req.SetDestination(r.Addr())
	req.SetBody([]byte("hi"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := p.Client().Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 405 { // the responder answers only OPTIONS
		t.Fatalf("status %d", res.StatusCode)
	}
	if src := r.conn.sources(); src[p.Addr()] != 1 || len(src) != 1 {
		t.Fatalf("sources %v, want only %s", src, p.Addr())
	}
}

// Ensure targets join, leave, and keep their schedule across refreshes.
func TestPingerTargetsRefresh(t *testing.T) {
	t.Parallel()
	r := newPingResponder(t, 200)
	list := newTargetList(r.Target("1"))
	var log pingLog
	p := startPinger(t, fastPingConfig(), list.Get, log.add)
	log.waitFor(t, 3*time.Second, "for 1", func(x PingResult) bool { return x.Target.CallID == "call-1" })
	if got := p.Stats().Targets; got != 1 {
		t.Fatalf("Targets = %d, want 1", got)
	}
	// A duplicate and a new target; the first keeps its key.
	list.Set(r.Target("1"), r.Target("1"), r.Target("2"))
	log.waitFor(t, 3*time.Second, "for 2", func(x PingResult) bool { return x.Target.CallID == "call-2" })
	if got := p.Stats().Targets; got != 2 {
		t.Fatalf("Targets = %d, want 2", got)
	}
	list.Set(r.Target("2"))
	time.Sleep(1500 * time.Millisecond) // a refresh drops 1
	n := len(log.all())
	time.Sleep(1500 * time.Millisecond)
	for _, x := range log.all()[n:] {
		if x.Target.CallID == "call-1" {
			t.Fatalf("removed target still pinged: %+v", x)
		}
	}
	if got := p.Stats().Targets; got != 1 {
		t.Fatalf("Targets = %d, want 1", got)
	}
}

// Ensure bad configuration is refused with a clear error, and defaults apply.
func TestPingerConfig(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "localhost:0", "[::1]:0", "127.0.0.1", "1.2.3"} {
		if _, err := NewPinger(PingerConfig{Addr: addr}, nil, nil); err == nil || !strings.Contains(err.Error(), "pinger address") {
			t.Errorf("Addr %q: err = %v, want a clear address error", addr, err)
		}
	}
	for _, cfg := range []PingerConfig{{Jitter: 1}, {Timeout: 40 * time.Second}} {
		if _, err := NewPinger(cfg, nil, nil); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	p, err := NewPinger(PingerConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %s", p.Addr())
	}
	c := p.cfg
	if c.Interval != 5*time.Second || c.Jitter != 0.1 || c.Timeout != time.Second || c.Misses != 2 ||
		c.Rate != 500 || c.Concurrency != 256 || c.UserAgent != "sipsilo" {
		t.Fatalf("defaults = %+v", c)
	}
	if got, want := p.lim.Burst(), 10; got != want {
		t.Fatalf("burst = %d, want %d", got, want)
	}
	for in, want := range map[string]PingMode{"": PingAll, "all": PingAll, "direct": PingDirect, "off": PingOff} {
		if got, err := ParsePingMode(in); err != nil || got != want {
			t.Errorf("ParsePingMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePingMode("some"); err == nil {
		t.Error("ParsePingMode accepted a bad mode")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if res := p.Probe(context.Background(), Target{URI: "sip:a@127.0.0.1", Dest: "127.0.0.1:5060"}); res.Err != ErrPingerClosed {
		t.Fatalf("Probe after Close = %+v", res)
	}
}

func mustUDPAddr(t testing.TB, s string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp4", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
