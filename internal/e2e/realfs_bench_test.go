package e2e

// Benchmarks against a real FreeSWITCH 1.10.12 (the same scenarios as
// delivery_bench_test.go, which uses the emulator), so that BENCHMARKS.md can put
// the real server's figures next to the emulator's. Run with
//
//	go test -run '^$' -bench RealFS -benchtime 1x -count 3 -timeout 60m .
//
// FreeSWITCH is started by internal/fsreal (SIPSILO_FS_HOME, SIPSILO_FS_TARBALL
// or the runtime tarball beside the checkout); without one the benchmarks skip.
// One FreeSWITCH serves a whole benchmark function, on free ports, and is
// stopped by PID; each op starts its own sipsilo on a fresh database and its own
// phones, which unregister before the next op.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/relay"
)

// benchUA makes a phone of user on sw; it unregisters at the end of the op.
func benchUA(b *testing.B, sw testSwitch, user string) *fsemu.UA {
	b.Helper()
	ua := newUA(b, sw.sipAddr(), user)
	// An op that failed left it registered: take it off FreeSWITCH, or the next
	// op's messages would go to this closed socket too. (Runs before newUA's
	// Close.)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = ua.Unregister(ctx)
	})
	return ua
}

// benchSipsilo starts the sipsilo binary against sw at info level (debug
// logging would be measured too).
func benchSipsilo(b *testing.B, sw testSwitch, args ...string) *srig {
	b.Helper()
	return newSwitchRig(b, sw, append([]string{"--log-level", "info"}, args...)...)
}

// stopSipsilo ends sipsilo gracefully.
func stopSipsilo(b *testing.B, r *srig) {
	b.Helper()
	r.stop()
	if dir := os.Getenv("SIPSILO_BENCH_LOGS"); dir != "" { // for a closer look at one run
		name := fmt.Sprintf("%s-%d.log", strings.ReplaceAll(b.Name(), "/", "_"), time.Now().UnixNano())
		_ = os.WriteFile(filepath.Join(dir, name), []byte(r.proc.log()), 0o600)
	}
}

func unregister(b *testing.B, uas ...*fsemu.UA) {
	b.Helper()
	for _, ua := range uas {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := ua.Unregister(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		_ = ua.Close()
	}
}

// realFSDrain queues n messages for an offline 1001 through FreeSWITCH, then
// registers 1001 and returns the time from its REGISTER to the last message at
// its socket, the inversions in arrival order, the duplicates (messages
// received beyond those stored) and how many more than n were stored (a
// MESSAGE FreeSWITCH answered 500 yet routed, which sendRetry then sent again).
func realFSDrain(b *testing.B, sw *realSwitch, n int, args ...string) (took time.Duration, inv, dup, extra int) {
	b.Helper()
	proc := benchSipsilo(b, sw, args...)
	alice, bob := benchUA(b, sw, "1000"), benchUA(b, sw, "1001")
	register(b, alice)
	in := collect(b, bob)
	for i := range n {
		sendRetry(b, alice, "1001", bodyN(i))
	}
	stored := waitStored(b, proc, n)
	b.StartTimer()
	start := time.Now()
	register(b, bob)
	got := in.waitCount(b, stored, 10*time.Minute)
	took = time.Since(start)
	b.StopTimer()
	time.Sleep(500 * time.Millisecond) // a late duplicate has time to arrive
	all := in.all()
	unregister(b, alice, bob)
	sw.fs.WaitRegistered(b, "1001", false, 10*time.Second)
	stopSipsilo(b, proc)
	return took, firstInversions(b, got[:stored]), len(all) - stored, stored - n
}

// firstInversions counts the adjacent pairs out of send order among the first
// arrivals of each body (a body stored twice, see realFSDrain, comes twice) and
// logs where each happened.
func firstInversions(b *testing.B, got []fsemu.Received) int {
	seen := map[string]bool{}
	var firsts []fsemu.Received
	for _, m := range got {
		if !seen[string(m.Body)] {
			seen[string(m.Body)] = true
			firsts = append(firsts, m)
		}
	}
	n := 0
	for i := 1; i < len(firsts); i++ {
		if string(firsts[i].Body) < string(firsts[i-1].Body) {
			n++
			lo, hi := max(0, i-3), min(len(firsts), i+3)
			var around []string
			for _, m := range firsts[lo:hi] {
				around = append(around, fmt.Sprintf("%s@%s", m.Body, m.At.Format("15:04:05.000")))
			}
			b.Logf("inversion at arrival %d: %s", i, strings.Join(around, ", "))
		}
	}
	return n
}

// sendRetry sends a MESSAGE through FreeSWITCH and sends it again when the
// answer is 500: under bursts FreeSWITCH 1.10.12's SIP stack sometimes answers
// an authenticated MESSAGE 500 without routing it (no chatplan request, no log
// line), as a phone would then resend.
func sendRetry(b *testing.B, from *fsemu.UA, to, body string) {
	b.Helper()
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code, err := from.SendMessage(ctx, to, "text/plain", []byte(body))
		cancel()
		if err == nil && code == 202 {
			return
		}
		// 500: sofia-sip's burst answer (the message may or may not have been
		// routed); 401/407 after the digest answer: probably FreeSWITCH's nonce not yet
		// stored (nothing routed). See realfs_switch_test.go's sent.send.
		if err != nil || (code != 500 && code != 401 && code != 407) || try == 5 {
			b.Fatalf("MESSAGE to %s: %d %v", to, code, err)
		}
		if code == 500 {
			resent500.Add(1)
		} else {
			challenged.Add(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resent500 counts the MESSAGEs sendRetry sent again after a 500.
var resent500 atomic.Int64

// waitStored waits until sipsilo has stored at least n messages with a final
// body, and returns how many it stored once the count settled.
func waitStored(b *testing.B, r *srig, n int) int {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	last, since := -1, time.Now()
	for {
		got := storedBodies(b, r)
		if got != last {
			last, since = got, time.Now()
		}
		if got >= n && time.Since(since) > 500*time.Millisecond {
			return got
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages stored with their body within 2 min", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedBodies reads from sipsilo's /metrics how many messages are queued with
// a final body (the recipient is offline: every stored message is queued).
func storedBodies(b *testing.B, r *srig) int {
	sc := scrape(b, r.rig)
	// Bodies not final yet hold the drain back; wait for them too.
	final := sc.bodies("exact", "checked", "unconfirmed", "query")
	queued := sc.value("sipsilo_queue_messages")
	if final < queued {
		return -1
	}
	return int(queued)
}

// BenchmarkRealFSDrain: 1,000 queued messages drained to one phone through the
// real FreeSWITCH (sipsilo's pinger off, so every message goes by bgapi chat),
// at several windows; window=default passes no --window. The goal (docs/architecture.md,
// "Performance targets") is ≤ 15 s at the defaults, in order, no duplicates.
func BenchmarkRealFSDrain(b *testing.B) {
	sw := startRealSwitch(b)
	for _, w := range benchWindows() {
		b.Run("window="+w, func(b *testing.B) {
			args := append([]string(nil), fsPath...)
			if w != "default" {
				args = append(args, "--window", w)
			}
			args = append(args, strings.Fields(os.Getenv("SIPSILO_BENCH_ARGS"))...)
			n := benchDrainN()
			for range b.N {
				b.StopTimer()
				r0 := resent500.Load()
				took, inv, dup, extra := realFSDrain(b, sw, n, args...)
				b.ReportMetric(float64(resent500.Load()-r0), "resent-500")
				b.ReportMetric(float64(extra), "stored-twice")
				b.ReportMetric(took.Seconds(), "s/drain")
				b.ReportMetric(float64(n)/took.Seconds(), "msgs/s")
				b.ReportMetric(float64(inv), "inversions")
				b.ReportMetric(float64(dup), "duplicates")
			}
		})
	}
}

// benchWindows are the windows BenchmarkRealFSDrain tries: SIPSILO_BENCH_WINDOWS
// (comma-separated, "default" for sipsilo's own), or a spread around the default.
func benchWindows() []string {
	if v := os.Getenv("SIPSILO_BENCH_WINDOWS"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"4", "default", "16", "32", "64"}
}

// benchDrainN is how many messages a drain queues: SIPSILO_BENCH_N or 1,000.
func benchDrainN() int {
	if n, err := strconv.Atoi(os.Getenv("SIPSILO_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// BenchmarkRealFSDrainDirect: as BenchmarkRealFSDrain with sipsilo's defaults
// (pinger on, direct path): the phone answers sipsilo's OPTIONS, so sipsilo
// sends each MESSAGE itself.
func BenchmarkRealFSDrainDirect(b *testing.B) {
	sw := startRealSwitch(b)
	n := benchDrainN()
	for range b.N {
		b.StopTimer()
		took, inv, dup, _ := realFSDrain(b, sw, n)
		b.ReportMetric(took.Seconds(), "s/drain")
		b.ReportMetric(float64(n)/took.Seconds(), "msgs/s")
		b.ReportMetric(float64(inv), "inversions")
		b.ReportMetric(float64(dup), "duplicates")
	}
}

// BenchmarkRealFSOnline: one message at a time to a registered phone; latency
// from the sender's MESSAGE (407 round included) to the phone receiving it, by
// bgapi chat (path=freeswitch, pinger off) and by sipsilo's direct path
// (path=direct, the defaults).
func BenchmarkRealFSOnline(b *testing.B) {
	sw := startRealSwitch(b)
	for _, c := range []struct {
		path    string
		binding string // the chatplan URL: text (shipped) or body (older)
		args    []string
	}{{"freeswitch", "text", fsPath}, {"direct", "text", nil}, {"freeswitch", "body", fsPath}} {
		b.Run("path="+c.path+"/binding="+c.binding, func(b *testing.B) {
			setBinding(b, sw, c.binding)
			for range b.N {
				b.StopTimer()
				proc := benchSipsilo(b, sw, c.args...)
				alice, bob := benchUA(b, sw, "1000"), benchUA(b, sw, "1001")
				register(b, alice)
				register(b, bob)
				in := collect(b, bob)
				onlineLatencies(b, 200, in, 10*time.Second, func(body string) { sendRetry(b, alice, "1001", body) })
				unregister(b, alice, bob)
				sw.fs.WaitRegistered(b, "1001", false, 10*time.Second)
				stopSipsilo(b, proc)
			}
		})
	}
}

// setBinding points the chatplan binding at the shipped URL (text) or at the
// older body=${url_encode(${_body})} one (body), and reloads mod_xml_curl.
func setBinding(b *testing.B, sw *realSwitch, binding string) {
	b.Helper()
	path := filepath.Join(sw.fs.ConfDir(), "autoload_configs", "xml_curl.conf.xml")
	text := conf.ChatplanURLAttr(conf.ChatplanURLFor(sw.http))
	old := "http://" + sw.http + "/fs/chatplan?body=${url_encode(${_body})}"
	from, to := old, text
	if binding == "body" {
		from, to = text, old
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(string(data), to) {
		replaceInFile(b, path, from, to)
	}
	if out := sw.fs.MustAPI(b, "reload mod_xml_curl"); !strings.Contains(out, "+OK") {
		b.Fatalf("reload mod_xml_curl: %q", out)
	}
}

// BenchmarkRealFSDetection: the phones of users 1000-1003 register on the real
// FreeSWITCH and then go silent (their sockets stay open and drop everything)
// at random points of the ping interval; latency from each silence to
// FreeSWITCH no longer listing the registration, which sipsilo's pinger (at its
// defaults: 5 s interval, 1 s deadline, 2 misses) has it flush
// (flush_inbound_reg). FreeSWITCH's own pinging (at a 5 s ping interval) needed ≈ 47 s.
func BenchmarkRealFSDetection(b *testing.B) {
	sw := startRealSwitch(b)
	users := []string{"1000", "1001", "1002", "1003"}
	var all []time.Duration
	for range b.N {
		b.StopTimer()
		proc := benchSipsilo(b, sw)
		uas := make([]*fsemu.UA, len(users))
		for i, u := range users {
			uas[i] = benchUA(b, sw, u)
			register(b, uas[i])
		}
		time.Sleep(6 * time.Second) // every phone pinged once: sipsilo knows it answers
		silenced := make([]time.Time, len(users))
		order := rand.Perm(len(users))
		start := time.Now()
		for k, i := range order {
			// Spread the silences over one interval.
			time.Sleep(time.Until(start.Add(time.Duration(k) * 5 * time.Second / time.Duration(len(users)))))
			uas[i].SetSilent(true)
			silenced[i] = time.Now()
		}
		b.StartTimer()
		lat := make([]time.Duration, len(users))
		deadline := time.Now().Add(60 * time.Second)
		for left := len(users); left > 0; {
			for i, u := range users {
				if lat[i] != 0 || silenced[i].IsZero() {
					continue
				}
				if sw.fs.Contact(b, u) == "" {
					lat[i] = time.Since(silenced[i])
					left--
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("not every silent phone was flushed within 60 s: %v", lat)
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.StopTimer()
		all = append(all, lat...)
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2].Seconds(), "p50-s")
		b.ReportMetric(lat[len(lat)-1].Seconds(), "max-s")
		for _, ua := range uas {
			_ = ua.Close()
		}
		stopSipsilo(b, proc)
	}
	slices.Sort(all)
	b.Logf("all %d detections: p50 %.2f s, p95 %.2f s, max %.2f s", len(all),
		all[len(all)/2].Seconds(), all[(len(all)*95+99)/100-1].Seconds(), all[len(all)-1].Seconds())
}

// BenchmarkRealFSChatOrder: what order FreeSWITCH itself keeps among
// overlapping chats, without sipsilo: n bgapi chats to one registered phone over
// one event-socket connection, each written after the previous +OK (chained, as
// relay does) or all at once (pipelined). Reports the adjacent pairs that reached
// the phone out of order and the datagrams its socket dropped (a drop is resent
// by FreeSWITCH 500 ms later and arrives late: that is the phone's inversion, not
// FreeSWITCH's). SIPSILO_BENCH_N sets n (default 2,000).
func BenchmarkRealFSChatOrder(b *testing.B) {
	sw := startRealSwitch(b)
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("SIPSILO_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	for _, mode := range []string{"chained", "pipelined"} {
		b.Run("mode="+mode, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				inv, drops := chatOrderRun(b, sw, n, mode == "pipelined")
				b.ReportMetric(float64(inv), "inversions")
				b.ReportMetric(float64(drops), "phone-drops")
			}
		})
	}
}

func chatOrderRun(b *testing.B, sw *realSwitch, n int, pipelined bool) (inv, drops int) {
	b.Helper()
	ua := benchUA(b, sw, "1001")
	register(b, ua)
	in := collect(b, ua)
	c, err := net.DialTimeout("tcp", sw.eslAddr(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReader(c)
	reply := func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if line == "\n" {
				return // command replies have no body
			}
		}
	}
	reply() // auth/request
	fmt.Fprintf(c, "auth %s\n\n", sw.eslPassword())
	reply()
	cmd := func(i int) string {
		args := relay.ChatArgs("1000@127.0.0.1", "1001@127.0.0.1", []byte(bodyN(i)), "text/plain")
		return fmt.Sprintf("bgapi chat %s\nJob-UUID: order-%d\n\n", args, i)
	}
	b.StartTimer()
	if pipelined {
		var all strings.Builder
		for i := range n {
			all.WriteString(cmd(i))
		}
		_, _ = io.WriteString(c, all.String())
		for range n {
			reply()
		}
	} else {
		for i := range n {
			_, _ = io.WriteString(c, cmd(i))
			reply()
		}
	}
	got := in.waitCount(b, n, 2*time.Minute)
	b.StopTimer()
	drops = udpDrops(ua.Addr())
	for i := 1; i < len(got); i++ {
		if string(got[i].Body) < string(got[i-1].Body) {
			inv++
			b.Logf("%s reached the phone after %s", got[i].Body, got[i-1].Body)
		}
	}
	unregister(b, ua)
	sw.fs.WaitRegistered(b, "1001", false, 10*time.Second)
	return inv, drops
}

// udpDrops reads the kernel's drop count of the UDP socket bound to addr
// (/proc/net/udp, Linux); -1 when unknown.
func udpDrops(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 12 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", p)) {
			d, _ := strconv.Atoi(f[len(f)-1])
			return d
		}
	}
	return -1
}

// BenchmarkRealFSExactBodies: hostile bodies sent through the real FreeSWITCH
// with the shipped binding; reports how many sipsilo took exact from the URL
// (their MD5 matched, then checked against the ESL copy), how many differed from
// that copy (must be 0) and how many needed the ESL copy (MD5 not settled).
func BenchmarkRealFSExactBodies(b *testing.B) {
	sw := startRealSwitch(b)
	bodies := append([]string{
		"|", "~", "/", "%41", "%20lead", "  lead and trail  ", "\r\nCRLF\r\n", "\tTab\vVT\v",
		"${x} $${y} ${url_encode(z)}", `quotes 'sq' "dq" back\slash \n`, "a,b,,c,", "ümlaut 日本語 🎉",
		"ends with %4", "ends with %", strings.Repeat("40k %41 | ~/ 'q' \"d\" \\ ${x} ümlaut 日本\r\n", 40*1024/48),
	}, exactBodies...)
	var bin strings.Builder
	for r := rune(1); r < 0x800; r++ {
		bin.WriteRune(r)
	}
	bodies = append(bodies, bin.String())
	for range b.N {
		b.StopTimer()
		proc := benchSipsilo(b, sw, fsPath...)
		alice := benchUA(b, sw, "1000")
		for _, body := range bodies {
			sendRetry(b, alice, "1001", body)
		}
		sc := waitScrape(b, proc.rig, "every body final", 30*time.Second, func(sc scraped) bool {
			return int(sc.bodies("checked", "differed", "exact", "query")) >= len(bodies)
		})
		b.ReportMetric(float64(len(bodies)), "bodies")
		b.ReportMetric(sc.bodies("checked"), "exact-at-intake")
		b.ReportMetric(sc.bodies("differed"), "differed")
		b.ReportMetric(sc.bodies("exact"), "from-esl")
		_ = alice.Close()
		stopSipsilo(b, proc)
	}
}
