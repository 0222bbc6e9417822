package presence

import "testing"

func TestLoopbackPingerOnlyPingsThisHost(t *testing.T) {
	ts := []Target{{Dest: "127.0.0.1:5060"}, {Dest: "192.0.2.7:5060"}, {Dest: "127.0.0.2:5062"}}
	r := &Reachability{loopbackOnly: true}
	got := r.pingable(ts)
	if len(got) != 2 || got[0].Dest != "127.0.0.1:5060" || got[1].Dest != "127.0.0.2:5062" {
		t.Fatalf("loopback pinger targets %+v", got)
	}
	r.loopbackOnly = false
	if len(r.pingable(ts)) != 3 {
		t.Fatal("a routable pinger dropped targets")
	}
}
