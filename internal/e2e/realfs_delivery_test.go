package e2e

// One table of delivery scenarios, each run against the emulator and against
// FreeSWITCH 1.10.12 itself: `go test -run RealFS` runs them all.

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/fsreal"
	"github.com/sipsilo/sipsilo/internal/sipptest"
	"github.com/sipsilo/sipsilo/kv"
)

// deliveryScenario is one case of the table.
type deliveryScenario struct {
	name string
	// emu configures the emulator; the real FreeSWITCH has its own timings.
	emu fsemu.SwitchOptions
	// own: the scenario restarts FreeSWITCH, so it gets one of its own
	// instead of the one the table shares.
	own bool
	run func(t *testing.T, sw testSwitch)
}

func deliveryScenarios() []deliveryScenario {
	return []deliveryScenario{
		{name: "offline_then_register", run: scenarioOfflineThenRegister},
		{name: "online_burst_in_order", run: scenarioOnlineBurst},
		{name: "refusing_phone", run: scenarioRefusingPhone},
		{name: "silent_phone", run: scenarioSilentPhone},
		{name: "drain_through_freeswitch", run: scenarioDrainThroughFreeSWITCH},
		{name: "drain_direct", run: scenarioDrainDirect},
		{name: "kill9_mid_drain", run: scenarioKill9MidDrain},
		{name: "sipsilo_down_stock_delivery", run: scenarioSipsiloDown},
		{name: "freeswitch_restart_mid_drain", own: true, run: scenarioFreeSWITCHRestart},
		{name: "mysql_mirror", run: scenarioMySQLMirror},
	}
}

func TestRealFSDelivery(t *testing.T) {
	// One real FreeSWITCH for the table (a start and a stop cost seconds);
	// each case begins with nobody registered and a fresh sipsilo.
	var shared *realSwitch
	if fsreal.Available() == nil {
		shared = startRealSwitch(t)
	}
	for _, sc := range deliveryScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Run("emulator", func(t *testing.T) {
				sc.run(t, newEmuSwitch(t, sc.emu))
			})
			t.Run("real", func(t *testing.T) {
				if err := fsreal.Available(); err != nil {
					requireIntegration(t, err.Error())
				}
				sw := shared
				if sc.own {
					sw = startRealSwitch(t)
				} else {
					shared.fs.FlushRegistrations(t)
				}
				sc.run(t, sw)
			})
		})
	}
	if n := answered500.Load(); n > 0 {
		t.Logf("%d MESSAGEs answered 500 by the switch (not resent)", n)
	}
	if n := challenged.Load(); n > 0 {
		t.Logf("%d MESSAGEs challenged again after their digest answer (sent again)", n)
	}
}

// scenarioOfflineThenRegister: hostile bodies for an offline user arrive once
// each, byte for byte and in order, when the user registers.
func scenarioOfflineThenRegister(t *testing.T, sw testSwitch) {
	r := newSwitchRig(t, sw, fsPath...)
	alice, bob := r.ua("1000"), r.ua("1001")
	registerOn(t, alice)
	in := collect(t, bob)
	var s sent
	for _, b := range hostileBodies {
		s.send(t, alice, "1001", b)
	}
	time.Sleep(500 * time.Millisecond) // past the body grace: still nothing to deliver to
	if got := in.all(); len(got) != 0 {
		t.Fatalf("%d messages delivered to an unregistered user", len(got))
	}
	registerOn(t, bob)
	s.waitAll(t, in, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would come now
	got := in.all()
	s.once(t, got)
	got = slices.DeleteFunc(got, func(m fsemu.Received) bool { return s.uncertain[string(m.Body)] })
	for i, m := range got {
		if string(m.Body) != s.accepted[i] {
			t.Errorf("message %d: body %q, want %q", i, m.Body, s.accepted[i])
		}
		if !strings.Contains(m.From, "sip:1000@127.0.0.1") {
			t.Errorf("message %d: From %q, want the sender 1000", i, m.From)
		}
		if m.ContentType != "text/plain" {
			t.Errorf("message %d: Content-Type %q", i, m.ContentType)
		}
	}
	r.stop()
	msgs := r.messages()
	for _, b := range s.accepted {
		m := msgs[b]
		if m == nil {
			t.Fatalf("no stored message with body %q", b)
		}
		if m.State != kv.StateDelivered || m.BodySource != kv.BodyESL || m.Attempts != 1 {
			t.Errorf("%.20q: state %s body source %q attempts %d", b, m.State, m.BodySource, m.Attempts)
		}
	}
}

// scenarioOnlineBurst: a burst to a registered user through FreeSWITCH, sent
// back to back, arrives once each and in order (window 1: strict FIFO).
func scenarioOnlineBurst(t *testing.T, sw testSwitch) {
	r := newSwitchRig(t, sw, append(fsPath, "--window", "1", "--log-level", "info")...)
	alice, bob := r.ua("1000"), r.ua("1001")
	registerOn(t, alice)
	registerOn(t, bob)
	in := collect(t, bob)
	const n = 50
	var s sent
	for i := range n {
		s.send(t, alice, "1001", bodyN(i))
	}
	s.waitAll(t, in, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := in.all()
	s.once(t, got)
	if inv := inversions(got); inv != 0 {
		t.Fatalf("%d inversions in a burst of %d", inv, n)
	}
}

// scenarioRefusingPhone: a phone answering 486 keeps the message queued; once
// it answers 200, the message arrives once.
func scenarioRefusingPhone(t *testing.T, sw testSwitch) {
	r := newSwitchRig(t, sw, append(fsPath, "--retry-min", "300ms")...)
	alice, bob := r.ua("1000"), r.ua("1001")
	registerOn(t, alice)
	registerOn(t, bob)
	bob.SetAnswer(486)
	in := collect(t, bob)
	sendOne(t, alice, "1001", "are you busy?")
	r.proc.waitLine(t, "INFO", "recipient refused", 10*time.Second)
	bob.SetAnswer(200)
	got := in.waitCount(t, 1, 10*time.Second)
	if string(got[0].Body) != "are you busy?" {
		t.Fatalf("body %q", got[0].Body)
	}
	time.Sleep(300 * time.Millisecond)
	r.stop()
	m := r.messages()["are you busy?"]
	if m == nil || m.State != kv.StateDelivered || m.Refusals < 1 {
		t.Fatalf("stored %+v", m)
	}
	if n := len(in.all()); n != 1 {
		t.Fatalf("received %d times", n)
	}
}

// scenarioSilentPhone: a sipp phone stops answering (SIGSTOP); sipsilo's
// pinger finds it and has FreeSWITCH flush its registration; a message sent
// meanwhile is kept and delivered once the phone is back.
func scenarioSilentPhone(t *testing.T, sw testSwitch) {
	r := newSwitchRig(t, sw, "--log-level", "info")
	alice := r.ua("1000")
	registerOn(t, alice)
	ph, ua := phoneAs(t, sw.sipAddr(), "2000", sipptest.Options{})
	waitPinged(t, ph, 10*time.Second)
	if !sw.registered(t, "2000") {
		t.Fatal("2000 not registered")
	}
	ph.Silence()
	silenced := time.Now()
	sendOne(t, alice, "2000", "sent into the silence")
	for sw.registered(t, "2000") {
		if time.Since(silenced) > 20*time.Second {
			t.Fatal("the silent phone's registration was not flushed within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("silent → flushed from the switch in %v", time.Since(silenced).Round(10*time.Millisecond))
	if got := ph.Messages(); len(got) != 0 {
		t.Fatalf("a silent phone answered %d messages", len(got))
	}
	deliveredWhenBack(t, r.rig, ph, ua, "sent into the silence")
}

// queueOfflineOn sends n numbered messages from 1000 to the unregistered 1001
// and waits until sipsilo has queued each accepted one: the switch answers 202
// before its chat thread has run the chatplan, and a drain should start from a
// full queue.
func queueOfflineOn(t *testing.T, r *srig, n int) (*fsemu.UA, *inbox, *sent) {
	t.Helper()
	alice, bob := r.ua("1000"), r.ua("1001")
	registerOn(t, alice)
	in := collect(t, bob)
	s := &sent{}
	for i := range n {
		s.send(t, alice, "1001", bodyN(i))
	}
	// At least: a MESSAGE answered 500 may have been routed and queued too.
	waitScrape(t, r.rig, "every accepted message queued", time.Minute, func(sc scraped) bool {
		return sc.value("sipsilo_queue_messages") >= float64(len(s.accepted))
	})
	return bob, in, s
}

// scenarioDrainThroughFreeSWITCH: a queue for an offline user drains through
// FreeSWITCH's chat (no pinger, no direct path) at the default window, once
// each.
func scenarioDrainThroughFreeSWITCH(t *testing.T, sw testSwitch) {
	r := newSwitchRig(t, sw, append(fsPath, "--log-level", "info")...)
	n := sized(1000, 200)
	bob, in, s := queueOfflineOn(t, r, n)
	start := time.Now()
	registerOn(t, bob)
	s.waitAll(t, in, 3*time.Minute)
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	got := in.all()
	s.once(t, got)
	t.Logf("%d drained through the switch in %v, %d inversions (not asserted: BENCHMARKS.md)", n, took.Round(time.Millisecond), inversions(got))
}

// scenarioDrainDirect: the same queue drains on sipsilo's direct path (the
// phone answers its OPTIONS), in order, each confirmed by the phone's 200 and
// carrying the sender and its time, none through FreeSWITCH's chat.
func scenarioDrainDirect(t *testing.T, sw testSwitch) {
	r := newSwitchRig(t, sw, "--log-level", "info")
	const n = 1000
	bob, in, s := queueOfflineOn(t, r, n)
	start := time.Now()
	registerOn(t, bob)
	s.waitAll(t, in, 2*time.Minute)
	t.Logf("%d drained directly in %v", n, time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	got := in.all()
	s.once(t, got)
	if inv := inversions(got); inv != 0 {
		t.Fatalf("%d inversions", inv)
	}
	for _, m := range got[:3] {
		if m.Header("Date") == "" || !strings.Contains(m.From, "sip:1000@127.0.0.1") {
			t.Fatalf("direct MESSAGE without the sender or its time: From %q Date %q", m.From, m.Header("Date"))
		}
	}
	if e, ok := sw.(*emuSwitch); ok { // the emulator counts its chats
		if c := e.sw.Chats(); c != 0 {
			t.Fatalf("%d of %d went through FreeSWITCH", c, n)
		}
	}
	r.stop()
	for _, m := range r.messages() {
		if m.State != kv.StateDelivered || !strings.HasPrefix(m.LastResult, "SIP 2") {
			t.Fatalf("message %q: %s, last result %q (not the direct path)", m.Body, m.State, m.LastResult)
		}
	}
}

// scenarioKill9MidDrain: sipsilo killed with sends in flight through
// FreeSWITCH loses nothing; duplicates stay within what was in flight, and each
// is counted.
func scenarioKill9MidDrain(t *testing.T, sw testSwitch) {
	r := newSwitchRig(t, sw, append(fsPath, "--window", "16", "--log-level", "info")...)
	n := sized(1000, 300)
	bob, in, s := queueOfflineOn(t, r, n)
	bob.SetAnswerDelay(20 * time.Millisecond) // sends stay in flight however fast the drain
	registerOn(t, bob)
	in.waitCount(t, n/10, time.Minute)
	_ = r.proc.cmd.Process.Signal(syscall.SIGKILL)
	r.proc.wait(t, 5*time.Second)
	// What the killed run left uncertain: the messages that may have arrived.
	inFlight, wasInFlight := 0, map[string]bool{}
	for _, m := range r.messages() {
		// In flight: sent and unconfirmed, or stored and its final answer perhaps
		// never read by FreeSWITCH (which then delivered it itself).
		if m.State == kv.StateQueued && (m.InFlight != "" || !m.BodyFinal) {
			inFlight++
			wasInFlight[m.ID] = true
		}
	}
	if inFlight == 0 {
		t.Fatal("no send was in flight at the kill; the test proves nothing")
	}
	r.start()
	s.waitAll(t, in, 3*time.Minute)
	time.Sleep(500 * time.Millisecond)
	r.stop()
	got := in.all()
	dups, uncertain := s.duplicates(t, got), 0
	stored := r.messages()
	for _, m := range stored {
		if m.State != kv.StateDelivered {
			t.Fatalf("message %q left %s", m.Body, m.State)
		}
		uncertain += m.UncertainResends
	}
	t.Logf("in flight at the kill %d, duplicates %d, counted uncertain resends %d", inFlight, dups, uncertain)
	if dups > inFlight {
		c := counts(got)
		for _, m := range got {
			if sm := stored[string(m.Body)]; c[string(m.Body)] > 1 && sm != nil {
				t.Logf("duplicate %q arrival %d at %s call-id %s: id %s attempts %d uncertain %d in flight at kill %v",
					m.Body, m.Arrival, m.At.Format("15:04:05.000"), m.CallID, sm.ID, sm.Attempts, sm.UncertainResends, wasInFlight[sm.ID])
			}
		}
		t.Fatalf("%d duplicates, more than the %d sends in flight at the kill", dups, inFlight)
	}
	if uncertain != inFlight {
		t.Fatalf("%d uncertain resends counted, want %d", uncertain, inFlight)
	}
}

// scenarioSipsiloDown: with sipsilo stopped, the binding fails fast and
// FreeSWITCH delivers as stock through the fallback chatplan, once each.
func scenarioSipsiloDown(t *testing.T, sw testSwitch) {
	r := newSwitchRig(t, sw, fsPath...)
	r.stop()
	alice, bob := r.ua("1000"), r.ua("1001")
	registerOn(t, alice)
	registerOn(t, bob)
	in := collect(t, bob)
	var s sent
	for _, b := range hostileBodies {
		s.send(t, alice, "1001", b)
	}
	s.waitAll(t, in, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	// Stock order is not kept (two chat threads): compare as sets.
	s.once(t, in.all())
}

// scenarioFreeSWITCHRestart: FreeSWITCH restarts mid-drain; sipsilo notices,
// logs in again and finishes the queue.
func scenarioFreeSWITCHRestart(t *testing.T, sw testSwitch) {
	// Window 4: every send in flight when FreeSWITCH forgets its jobs may come twice.
	r := newSwitchRig(t, sw, append(fsPath, "--log-level", "info", "--timer-f", "2s", "--window", "4")...)
	n := sized(200, 100)
	bob, in, s := queueOfflineOn(t, r, n)
	registerOn(t, bob)
	in.waitCount(t, n/4, time.Minute)
	sw.restart(t)
	if !sw.registered(t, "1001") {
		// A real phone registers again when its registration is gone; this
		// one is told to.
		t.Log("the restart dropped 1001's registration; registering again")
		registerOn(t, bob)
	}
	s.waitAll(t, in, 2*time.Minute)
	time.Sleep(500 * time.Millisecond)
	dups := s.duplicates(t, in.all())
	t.Logf("%d duplicates after a restart (window 4)", dups)
	if dups > 4 {
		t.Fatalf("%d duplicates, more than a window in flight", dups)
	}
	r.waitReady(30 * time.Second)
	if !strings.Contains(r.proc.log(), "restarted=true") {
		t.Fatal("the FreeSWITCH restart was not noticed")
	}
}
