package presence

import (
	"context"
	"testing"
	"time"
)

// A REGISTER restarts the miss count: a miss of a ping sent before it is ignored,
// and misses after it count from zero, so one miss makes the fresh registration
// suspect, not unreachable.
func TestPingMissesRestartAfterRegister(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@127.0.0.1:5062>", "Desk/1.0")
	tgt := h.m.TargetsFor(aorAlice, PingAll)[0]
	miss := func(misses int, started time.Time) {
		t.Helper()
		if err := h.m.PingObserved(ctx, PingResult{Target: tgt, Misses: misses, At: h.clk.Now(), Started: started}); err != nil {
			t.Fatal(err)
		}
	}
	// Two misses: unreachable (the pinger's own count says 2, 3).
	miss(2, h.clk.Now())
	miss(3, h.clk.Now())
	if h.m.Deliverable(aorAlice) {
		t.Fatal("two misses did not make it unreachable")
	}
	sent := h.clk.Now()
	h.clk.Add(500 * time.Millisecond)
	d.register("a1", "<sip:alice@127.0.0.1:5062>", "Desk/1.0")
	// The ping sent before the REGISTER times out after it, with the streak's count.
	h.clk.Add(500 * time.Millisecond)
	miss(4, sent)
	if st := h.m.Get(aorAlice); st.Registrations[0].Reach != Reachable || !h.m.Deliverable(aorAlice) {
		t.Fatalf("a miss of a ping older than the REGISTER judged it: %+v", st.Registrations[0])
	}
	// A miss after the REGISTER is its first.
	miss(5, h.clk.Now())
	if st := h.m.Get(aorAlice); st.Registrations[0].Reach != Suspect || st.Registrations[0].PingMisses != 1 {
		t.Fatalf("first miss after the REGISTER: %+v", st.Registrations[0])
	}
	miss(6, h.clk.Now())
	if h.m.Deliverable(aorAlice) {
		t.Fatal("second miss after the REGISTER did not make it unreachable")
	}
}

// CheckDevice probes only its own device: a silent device of the same user is
// not pinged while a live one is checked, and is judged dead on its own.
func TestCheckDeviceProbesOnlyItsDevice(t *testing.T) {
	live, silent := newPingResponder(t, 200), newPingResponder(t, 200)
	silent.SetSilent(true)
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@"+live.Addr()+">", "Desk/1.0")
	d.register("b1", "<sip:alice@"+silent.Addr()+">", "App/2.0")
	liveKey, silentKey := "contact:sip:alice@"+live.Addr(), "contact:sip:alice@"+silent.Addr()
	cfg := fastPingConfig()
	p, err := NewPinger(cfg, nil, func(res PingResult) { _ = h.m.PingObserved(context.Background(), res) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r := NewReachability(h.m, ReachabilityConfig{Mode: PingAll, Direct: true, FreshFor: time.Hour, Now: h.clk.Now})
	r.SetPinger(p)
	ctx := context.Background()
	if !r.CheckDevice(ctx, aorAlice, liveKey) {
		t.Fatal("live device judged dead")
	}
	if n := len(silent.conn.arrivals()); n != 0 {
		t.Fatalf("checking the live device pinged the silent one %d times", n)
	}
	if uri, _, ok := r.DirectTargetDevice(aorAlice, liveKey); !ok || uri != "sip:alice@"+live.Addr() {
		t.Fatalf("direct target of the live device: %q %v", uri, ok)
	}
	if _, _, ok := r.DirectTargetDevice(aorAlice, silentKey); ok {
		t.Fatal("direct target for a device that never answered")
	}
	if r.CheckDevice(ctx, aorAlice, silentKey) {
		t.Fatal("silent device judged alive")
	}
	if n := len(silent.conn.arrivals()); n == 0 {
		t.Fatal("the silent device was not probed")
	}
	if !h.m.DeviceDeliverable(aorAlice, liveKey) {
		t.Fatal("the silent device's miss judged the live one")
	}
}

// OutOfReach names a recipient with a registered device sipsilo's own socket
// cannot reach (behind NAT with --ping direct): beside Asterisk its messages
// are left to the switch (docs/decisions.md §33).
func TestOutOfReachNamesADeviceBehindNAT(t *testing.T) {
	phone := newPingResponder(t, 200)
	h := newHarness(t)
	d := &devEvents{h: h}
	p, err := NewPinger(fastPingConfig(), nil, func(res PingResult) { _ = h.m.PingObserved(context.Background(), res) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r := NewReachability(h.m, ReachabilityConfig{Mode: PingDirect, Direct: true, FreshFor: time.Hour, Now: h.clk.Now})
	r.SetPinger(p)
	if r.OutOfReach(aorAlice) {
		t.Fatal("a recipient with no registration is out of reach")
	}
	d.register("a1", "<sip:alice@"+phone.Addr()+">", "Desk/1.0")
	if r.OutOfReach(aorAlice) {
		t.Fatal("a phone sipsilo pings directly is out of reach")
	}
	// A second phone whose contact names a private address FreeSWITCH saw
	// from elsewhere: NAT.
	d.apply(Event{Kind: Registered, CallID: "b1", Contact: "<sip:alice@10.9.8.7:5060>", UserAgent: "App/2.0",
		Profile: "internal", ExpiresIn: time.Hour, NetworkIP: "127.0.0.9", NetworkPort: 40000})
	if !r.OutOfReach(aorAlice) {
		t.Fatal("a phone behind NAT is not out of reach with --ping direct")
	}
	d.remove("b1")
	if r.OutOfReach(aorAlice) {
		t.Fatal("a phone behind NAT still counts after it unregistered")
	}
}
