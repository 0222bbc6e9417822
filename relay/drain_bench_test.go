package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// oneContact is a Contacts with one fixed, always ready target.
type oneContact struct{ uri, dest string }

func (c oneContact) DirectTarget(string) (string, string, bool) { return c.uri, c.dest, true }

// directClient is a sipgo client sending from its own served UDP socket, as
// serve's pinger socket does.
func directClient(tb testing.TB) *sipgo.Client {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("drain-bench"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.ServeUDP(pc); close(done) }()
	cl, err := sipgo.NewClient(ua, sipgo.WithClientConnectionAddr(pc.LocalAddr().String()),
		sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientLogger(quiet))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cl.Close()
		ua.Close()
		pc.Close()
		<-done
	})
	return cl
}

// BenchmarkDirectDrain: 1,000 messages queued for one recipient drain over the
// direct path to a sipgo phone on 127.0.0.1, each confirmed by the phone's 200
// and recorded (Delivered durable), the clock running from the relay's wake-up
// to the last record. Without and with the journal (docs/decisions.md §34), at
// direct windows 4 (the default), 16 and 64. The phone must see them in order.
func BenchmarkDirectDrain(b *testing.B) {
	for _, journal := range []bool{false, true} {
		for _, window := range []int{4, 16, 64} {
			b.Run(fmt.Sprintf("journal=%v/window=%d", journal, window), func(b *testing.B) {
				for range b.N {
					benchDirectDrain(b, journal, window, 1000)
				}
			})
		}
	}
}

func benchDirectDrain(b *testing.B, journal bool, window, n int) {
	b.StopTimer()
	ctx := context.Background()
	s, err := kv.Open(filepath.Join(b.TempDir(), "sipsilo.db"), kv.Options{Journal: journal})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	const aor = "1001@127.0.0.1"
	queueForDrain(b, s, aor, n)
	phone, err := fsemu.NewUA(fsemu.UAOptions{User: "1001", Switch: "127.0.0.1:9"})
	if err != nil {
		b.Fatal(err)
	}
	defer phone.Close()
	d := &SIPDirect{Client: directClient(b), Contacts: oneContact{uri: "sip:1001@" + phone.Addr(), dest: phone.Addr()}}
	r := New(Config{Window: 16, DirectWindow: window, Direct: d}, s, &fakeFS{registered: true}, &fakePresence{ok: true})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	drops0, cpu0 := udpRcvbufErrors(), cpuTime()
	b.StartTimer()
	start := time.Now()
	go func() { _ = r.Run(rctx); close(done) }()
	defer func() {
		cancel()
		<-done
	}()
	var got []fsemu.Received
	deadline := time.After(2 * time.Minute)
	for len(got) < n {
		select {
		case m := <-phone.Received():
			got = append(got, m)
		case <-deadline:
			b.Fatalf("%d of %d delivered", len(got), n)
		}
	}
	for {
		q, err := s.Queue(aor, 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(q) == 0 {
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	took := time.Since(start)
	b.StopTimer()
	drops, cpu := udpRcvbufErrors()-drops0, cpuTime()-cpu0
	slices.SortFunc(got, func(x, y fsemu.Received) int { return int(x.Arrival) - int(y.Arrival) })
	inv, dup := 0, 0
	seen := map[string]bool{}
	for i, m := range got {
		if seen[string(m.Body)] {
			dup++
		}
		seen[string(m.Body)] = true
		if i > 0 && string(m.Body) < string(got[i-1].Body) {
			inv++
		}
	}
	b.ReportMetric(took.Seconds()*1000, "ms/drain")
	b.ReportMetric(float64(inv), "inversions")
	b.ReportMetric(float64(dup), "duplicates")
	// Datagrams the kernel dropped for a full socket buffer during the drain,
	// on any socket of this network namespace (other processes' too): a
	// dropped MESSAGE arrives again only by retransmission, after T1, behind
	// the ones sent after it.
	b.ReportMetric(float64(drops), "udp-drops")
	// The CPU the whole process (relay, store, both SIP ends) used in the
	// drain: near 2 × ms/drain on two cores, the drain is bound by CPU.
	b.ReportMetric(cpu.Seconds()*1000, "cpu-ms")
	b.ReportMetric(float64(s.JournalSyncs()), "journal-syncs")
	b.ReportMetric(float64(s.Commits()), "bbolt-commits")
}

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped for a full
// receive buffer (Linux, /proc/net/snmp); 0 where it cannot.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
		return 0
	}
	return 0
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// queueForDrain queues n messages for aor, bodies "m00000", "m00001", … in
// order, each final and received a second ago, and returns their ids.
func queueForDrain(tb testing.TB, s *kv.Store, aor string, n int) []string {
	tb.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		m := &kv.Message{From: "1000@127.0.0.1", To: aor, ContentType: "text/plain",
			Body: fmt.Appendf(nil, "m%05d", i), BodySource: kv.BodyQuery, CoreUUID: "core-a",
			EventSeq: uint64(100 + i), Received: time.Now().Add(-time.Second)}
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			tb.Fatal(err)
		}
		ids[i] = id
		if _, err := s.FinalizeBody(ctx, id); err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}
