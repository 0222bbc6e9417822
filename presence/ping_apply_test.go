package presence

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestContactURI(t *testing.T) {
	cases := []struct {
		contact, uri, hostport string
		ok                     bool
	}{
		{`"" <sip:1001@127.0.0.1:25071>`, "sip:1001@127.0.0.1:25071", "127.0.0.1:25071", true},
		{`<sip:1001@10.0.0.7:5062;ob>;expires=300`, "sip:1001@10.0.0.7:5062;ob", "10.0.0.7:5062", true},
		{`sip:1001@192.0.2.1`, "sip:1001@192.0.2.1", "192.0.2.1:5060", true},
		{`<sip:1001@192.0.2.1;transport=UDP>`, "sip:1001@192.0.2.1;transport=UDP", "192.0.2.1:5060", true},
		{`<sip:1001@192.0.2.1;transport=tcp>`, "", "", false},
		{`<sips:1001@192.0.2.1>`, "", "", false},
		{`<sip:1001@phone.example.org:5060>`, "", "", false}, // no DNS for a phone's choice
		{`<sip:1001@127.0.0.1:99999>`, "", "", false},
		{`<sip:1001@127.0.0.1:5060`, "", "", false},
		{"<sip:1001@127.0.0.1\r\nX: y>", "", "", false},
		{``, "", "", false},
	}
	for _, c := range cases {
		uri, hp, ok := contactURI(c.contact)
		if ok != c.ok || uri != c.uri || hp != c.hostport {
			t.Errorf("%q: %q %q %v, want %q %q %v", c.contact, uri, hp, ok, c.uri, c.hostport, c.ok)
		}
	}
}

// registered replays scenario 01 (1000 and 1001 registered from 127.0.0.1:2507x).
func registered(t *testing.T) *harness {
	h := newHarness(t)
	evs := events(t, "esl_01_register_json.txt")
	h.clk.Set(eventAt(evs[len(evs)-1]))
	h.replay(evs...)
	return h
}

func TestTargetsFollowModeAndNAT(t *testing.T) {
	h := registered(t)
	all := h.m.PingTargets(PingAll)
	if len(all) != 2 {
		t.Fatalf("targets %+v", all)
	}
	for _, tg := range all {
		if tg.Dest != "127.0.0.1:2507"+tg.AOR[3:4] || tg.URI == "" || tg.CallID == "" || tg.Profile != "internal" {
			t.Fatalf("target %+v", tg)
		}
	}
	if len(h.m.PingTargets(PingOff)) != 0 {
		t.Fatal("targets with the pinger off")
	}
	// 1001's REGISTER seen from another address: behind NAT.
	reg := rewrite(find(t, events(t, "esl_01_register_json.txt"), "sofia::register", 399),
		"network-ip", "203.0.113.9", "network-port", "40000", "Event-Sequence", "900")
	if err := applyESL(h.m, context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	nat := h.m.TargetsFor(aor1001, PingAll)
	if len(nat) != 1 || nat[0].Dest != "203.0.113.9:40000" {
		t.Fatalf("NATed target in mode all: %+v", nat)
	}
	if d := h.m.TargetsFor(aor1001, PingDirect); len(d) != 0 {
		t.Fatalf("NATed target in mode direct: %+v", d)
	}
	if d := h.m.TargetsFor(aor1000, PingDirect); len(d) != 1 {
		t.Fatalf("direct target missing: %+v", d)
	}
	// Sent from another port of the contact's own IP: no NAT, the contact is
	// where the phone listens.
	reg = rewrite(reg, "network-ip", "127.0.0.1", "network-port", "40000", "Event-Sequence", "901")
	if err := applyESL(h.m, context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	if d := h.m.TargetsFor(aor1001, PingDirect); len(d) != 1 || d[0].Dest != "127.0.0.1:25071" {
		t.Fatalf("same IP, other port: %+v", d)
	}
}

func TestPingResultsMoveReachability(t *testing.T) {
	h := registered(t)
	var flushed []Registration
	h.m.onUnreach = func(aor string, r Registration) { flushed = append(flushed, r) }
	tg := h.m.TargetsFor(aor1001, PingAll)[0]
	ctx := context.Background()
	before := len(h.stored())

	// An answer (405 still proves a device) keeps it reachable, records RTT and
	// proof of life, and writes nothing.
	now := h.clk.Now().Add(time.Second)
	h.clk.Set(now)
	rec := h.stored()[aor1001]
	if err := h.m.PingObserved(ctx, PingResult{Target: tg, Alive: true, Status: 405, RTT: 3 * time.Millisecond, At: now}); err != nil {
		t.Fatal(err)
	}
	st := h.want(aor1001, true, Reachable, true)
	if r := st.Registrations[0]; r.PingRTT != 3*time.Millisecond || !r.LastAlive.Equal(now) || r.PingMisses != 0 {
		t.Fatalf("registration %+v", r)
	}
	if !h.m.LastAlive(aor1001).Equal(now) {
		t.Fatalf("LastAlive %v", h.m.LastAlive(aor1001))
	}
	if string(h.stored()[aor1001]) != string(rec) || len(h.stored()) != before {
		t.Fatal("an answered ping rewrote the record")
	}

	// First miss: suspect, still deliverable. Second: unreachable, flushed.
	miss := PingResult{Target: tg, Err: errors.New("timeout"), Misses: 1, At: now.Add(time.Second)}
	if err := h.m.PingObserved(ctx, miss); err != nil {
		t.Fatal(err)
	}
	h.want(aor1001, true, Suspect, true)
	miss.Misses, miss.At = 2, miss.At.Add(time.Second)
	if err := h.m.PingObserved(ctx, miss); err != nil {
		t.Fatal(err)
	}
	h.want(aor1001, true, Unreachable, false)
	if len(flushed) != 1 || flushed[0].CallID != tg.CallID {
		t.Fatalf("OnUnreachable calls %+v", flushed)
	}
	miss.Misses = 3
	if err := h.m.PingObserved(ctx, miss); err != nil {
		t.Fatal(err)
	}
	if len(flushed) != 1 {
		t.Fatal("OnUnreachable called again in the same run of misses")
	}

	// The first answer after that brings it back and wakes relay.
	woken := h.woken.count(aor1001)
	if err := h.m.PingObserved(ctx, PingResult{Target: tg, Alive: true, Status: 200, At: miss.At.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	h.want(aor1001, true, Reachable, true)
	if h.woken.count(aor1001) != woken+1 {
		t.Fatal("relay not woken when the contact answered again")
	}

	// A failed delivery made it unreachable first: the pinger's verdict still
	// asks for the flush.
	if err := h.m.Observe(ctx, aor1001, NoAnswer); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{1, 2} {
		if err := h.m.PingObserved(ctx, PingResult{Target: tg, Misses: k, At: miss.At.Add(2 * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(flushed) != 2 {
		t.Fatalf("OnUnreachable after a delivery timeout: %d calls, want 2", len(flushed))
	}
	if err := h.m.PingObserved(ctx, PingResult{Target: tg, Alive: true, Status: 200, At: miss.At.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}

	// Results for a registration presence no longer holds change nothing.
	gone := tg
	gone.CallID = "not-registered"
	if err := h.m.PingObserved(ctx, PingResult{Target: gone, Misses: 9, At: now}); err != nil {
		t.Fatal(err)
	}
	h.want(aor1001, true, Reachable, true)
}
