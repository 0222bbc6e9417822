package e2e

// Delivery through FreeSWITCH (docs/architecture.md, "Delivery"), each against the sipsilo binary, the FreeSWITCH
// emulator and real SIP user agents on 127.0.0.1. These are about the path through
// FreeSWITCH (bgapi chat), so sipsilo's own pinger and direct path are off
// (fsPath); pinger_e2e_test.go covers those. The scenarios both switches can
// play (offline then register, a refusing phone, drains, kill -9, sipsilo down,
// a FreeSWITCH restart) are the table in realfs_delivery_test.go; these are the
// ones only the emulator can set up (a shortened give-up, an ESL drop) or that
// assert a figure of its own.

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// fsPath sends every message through FreeSWITCH: no pinger, no direct path.
var fsPath = []string{"--ping", "off"}

// hostileBodies are bodies the query copy cannot carry exactly (literal %XX,
// outer spaces) plus everything chat's argument splitting must survive.
var hostileBodies = []string{
	" lead %41 | pipe 'sq' \"dq\" back\\slash\nnewline\ttab ${x} ümlaut 日本 trail ",
	"100% %2a %zz \\n literal, <xml>&amp;]]> $(rm -rf /); DROP TABLE x; --",
	"  \r\n  ",
}

func TestOnlineRecipientLatency(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, fsPath...)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)
	register(t, bob)
	in := collect(t, bob)
	const n = 21
	for i := range n {
		send(t, alice, "1001", bodyN(i))
		in.waitCount(t, i+1, 5*time.Second)
	}
	time.Sleep(300 * time.Millisecond)
	got := in.all()
	if c := counts(got); len(c) != n || len(got) != n {
		t.Fatalf("deliveries %v, want each of %d once", c, n)
	}
	r.stop()
	// From sipsilo's intake of the chatplan request (its stored receive time) to the
	// phone's receipt, both on this machine's clock.
	stored := r.messages()
	var lat []time.Duration
	for _, m := range got {
		lat = append(lat, m.At.Sub(stored[string(m.Body)].Received))
	}
	slices.Sort(lat)
	median := lat[n/2]
	t.Logf("chatplan request → device received: median %v, min %v, max %v", median, lat[0], lat[n-1])
	// The goal is the production binary's; a -race child is several times
	// slower by design, so there the figure is only logged.
	if median > 50*time.Millisecond && !raceEnabled {
		t.Errorf("median %v, goal ≤ 50 ms", median)
	}
}

func TestSilentRecipientIsHeldThenDeliveredWhenBack(t *testing.T) {
	// FreeSWITCH's 20 s give-up and Timer F shortened; sipsilo's thresholds with them.
	r := newRig(t, fsemu.SwitchOptions{ChatGiveUp: 600 * time.Millisecond, TimerF: 1500 * time.Millisecond},
		append(fsPath, "--no-answer-after", "500ms", "--timer-f", "1500ms")...)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)
	register(t, bob)
	in := collect(t, bob)
	bob.SetSilent(true)
	send(t, alice, "1001", "wake up")
	r.proc.waitLine(t, "INFO", "recipient did not answer", 5*time.Second)
	if strings.Count(r.proc.log(), "msg=\"recipient did not answer") != 1 {
		t.Fatal("sent again to a recipient that did not answer")
	}
	time.Sleep(2 * time.Second) // past Timer F: FreeSWITCH stopped retransmitting
	if n := len(in.all()); n != 0 {
		t.Fatalf("a silent UA received %d messages", n)
	}
	bob.SetSilent(false)
	register(t, bob) // the phone is back
	got := in.waitCount(t, 1, 10*time.Second)
	if string(got[0].Body) != "wake up" {
		t.Fatalf("body %q", got[0].Body)
	}
	time.Sleep(300 * time.Millisecond)
	r.stop()
	m := r.messages()["wake up"]
	if m == nil || m.State != kv.StateDelivered || m.Refusals != 0 || m.UncertainResends != 1 {
		t.Fatalf("stored %+v", m)
	}
	if n := len(in.all()); n != 1 {
		t.Fatalf("received %d times", n)
	}
}

// queueOffline sends n numbered messages from 1000 to the unregistered 1001.
func queueOffline(t testing.TB, r *rig, n int) (bob *fsemu.UA, in *inbox) {
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)
	in = collect(t, bob)
	for i := range n {
		send(t, alice, "1001", bodyN(i))
	}
	return bob, in
}

// inversions counts adjacent pairs that reached the UA out of send order (got
// is in arrival order).
func inversions(got []fsemu.Received) int {
	n := 0
	for i := 1; i < len(got); i++ {
		if string(got[i].Body) < string(got[i-1].Body) {
			n++
		}
	}
	return n
}

// TestThousandQueuedDrainOnceInOrder: at window 1 a queue drains through
// FreeSWITCH strictly in order, each message once. The default window's drain
// is the table's drain_through_freeswitch (realfs_delivery_test.go), on both
// switches.
func TestThousandQueuedDrainOnceInOrder(t *testing.T) {
	// Not a timing test: the 100 ms result floor is shortened.
	r := newRig(t, fsemu.SwitchOptions{ChatResultFloor: time.Millisecond},
		append(fsPath, "--window", "1", "--log-level", "info")...)
	n := sized(1000, 300)
	bob, in := queueOffline(t, r, n)
	// Queued means stored: the emulator answers 202 before its chat
	// threads have run the chatplan.
	waitScrape(t, r, "every message queued", 60*time.Second, func(s scraped) bool {
		return s.value("sipsilo_queue_messages") == float64(n)
	})
	register(t, bob)
	got := in.waitCount(t, n, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	got = in.all()
	c := counts(got)
	if len(got) != n || len(c) != n {
		t.Fatalf("received %d messages, %d distinct, want %d each once", len(got), len(c), n)
	}
	if inv := inversions(got); inv != 0 {
		t.Fatalf("window 1: %d inversions in %d messages", inv, n)
	}
}

func TestESLDropAndFreeSWITCHRestartMidDrain(t *testing.T) {
	// Window 4: every send in flight when the results are lost may come twice.
	r := newRig(t, fsemu.SwitchOptions{}, append(fsPath, "--log-level", "info", "--timer-f", "2s", "--window", "4")...)
	const n = 200
	bob, in := queueOffline(t, r, n)
	register(t, bob)
	in.waitCount(t, 30, 30*time.Second)
	r.sw.ESL().DropConnections() // the result of every send in flight is lost
	in.waitCount(t, 80, 30*time.Second)
	r.sw.Restart() // new Core-UUID: pending sends are gone
	got := in.waitCount(t, n, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	got = in.all()
	if c := counts(got); len(c) != n {
		t.Fatalf("%d distinct delivered, want %d", len(c), n)
	}
	t.Logf("%d duplicates after an ESL drop and a restart (window 4)", len(got)-n)
	if len(got)-n > 8 {
		t.Fatalf("%d duplicates, more than two windows in flight", len(got)-n)
	}
	res, err := http.Get("http://" + r.http + "/readyz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("not ready after the restart: %v %v", res, err)
	}
	res.Body.Close()
	if !strings.Contains(r.proc.log(), "restarted=true") {
		t.Fatal("the FreeSWITCH restart was not noticed")
	}
}
