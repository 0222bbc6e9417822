package presence

import (
	"context"
	"testing"
	"time"
)

// The views of the live map and of the persisted record agree on what is
// persisted, and the live one adds what the pinger saw.
func TestViewsOfLiveAndPersistedState(t *testing.T) {
	h := registered(t)
	tg := h.m.TargetsFor(aor1001, PingAll)[0]
	now := h.clk.Now().Add(time.Second)
	h.clk.Set(now)
	if err := h.m.PingObserved(context.Background(), PingResult{Target: tg, Alive: true, Status: 200, RTT: 2500 * time.Microsecond, At: now}); err != nil {
		t.Fatal(err)
	}
	live, ok := h.m.Lookup(aor1001)
	if !ok {
		t.Fatal("Lookup: not found")
	}
	v := ViewOf(live, now)
	if !v.Registered || !v.Deliverable || v.Reach != Reachable || len(v.Registrations) != 1 || v.Evidence == "" {
		t.Fatalf("live view %+v", v)
	}
	r := v.Registrations[0]
	if r.PingRTTms != 2.5 || !r.LastPing.Equal(now) || !v.LastAlive.Equal(now) || r.ExpiresIn <= 0 || r.CallID != tg.CallID {
		t.Fatalf("registration view %+v", r)
	}

	stored, err := DecodeRecord(aor1001, h.stored()[aor1001], now)
	if err != nil {
		t.Fatal(err)
	}
	sv := ViewOf(stored, now)
	if sv.AOR != v.AOR || sv.Reach != v.Reach || !sv.Registered || sv.Registrations[0].CallID != r.CallID {
		t.Fatalf("persisted view %+v", sv)
	}
	// Past every expiry, neither is registered any more.
	later := r.Expires.Add(time.Second)
	if st, _ := DecodeRecord(aor1001, h.stored()[aor1001], later); st.Registered || ViewOf(st, later).Deliverable {
		t.Fatalf("expired record still registered: %+v", st)
	}
	if _, err := DecodeRecord("someone@else", h.stored()[aor1001], now); err == nil {
		t.Fatal("a record decoded under another AOR")
	}
	if _, ok := h.m.Lookup("nobody@127.0.0.1"); ok {
		t.Fatal("Lookup found an AOR presence never saw")
	}
}

func TestMapPage(t *testing.T) {
	h := registered(t)
	all := h.m.All()
	if len(all) < 2 {
		t.Fatalf("fixture has %d AORs", len(all))
	}
	var got []string
	after := ""
	for {
		page, next := h.m.Page(after, 1)
		for _, st := range page {
			got = append(got, st.AOR)
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(got) != len(all) {
		t.Fatalf("paged %v, all %d", got, len(all))
	}
	for i := range all {
		if got[i] != all[i].AOR {
			t.Fatalf("paged %v, want the order of All", got)
		}
	}
	if page, next := h.m.Page("", 0); len(page) != len(all) || next != "" {
		t.Fatalf("unlimited page: %d next %q", len(page), next)
	}
}

// The view lists each device, registered and remembered; the live map's view
// leaves out devices past the device memory.
func TestViewShowsDevices(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	d.remove("b1")
	h.clk.Add(time.Hour - time.Second)
	st, _ := h.m.Lookup(aorAlice)
	v := ViewOf(st, h.clk.Now())
	if len(v.Devices) != 2 || !v.Devices[0].Deliverable || v.Devices[0].UserAgent != "Desk/1.0" ||
		v.Devices[1].Registered || v.Devices[1].EndedAgo != 3599 || v.Devices[1].Key != "contact:sip:alice@10.0.0.2:5060" {
		t.Fatalf("devices %+v", v.Devices)
	}
	h.clk.Add(DefaultDeviceMemory + 2*time.Second)
	st, _ = h.m.Lookup(aorAlice)
	// a1 expired an hour after it registered, b1 ended then too: both forgotten.
	if v := ViewOf(st, h.clk.Now()); len(v.Devices) != 0 {
		t.Fatalf("forgotten devices shown: %+v", v.Devices)
	}
}
