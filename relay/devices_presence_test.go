package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/presence"
)

// Ensure device lanes work on the real presence map: targets at receipt,
// chat to each device's own contact, and a device that registers again after
// the message arrived gets its copy once relay is woken.
func TestDeviceLanesOnThePresenceMap(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	pres, err := presence.New(presence.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	register := func(port, callID string, seq uint64) presence.Event {
		return presence.Event{Kind: presence.Registered, AOR: "1001@127.0.0.1", CallID: callID,
			Contact: "<sip:1001@127.0.0.1:" + port + ";transport=udp>", ExpiresIn: time.Hour,
			NetworkIP: "127.0.0.1", Profile: "internal", Source: "sofia::register", Stream: "core-1", Seq: seq}
	}
	for i, ev := range []presence.Event{register("5062", "cid-desk", 1), register("5064", "cid-mobile", 2)} {
		if err := pres.ApplyEvent(ctx, ev); err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
	}
	keys := pres.Targets("1001@127.0.0.1")
	if len(keys) != 2 {
		t.Fatalf("targets %v, want the two devices", keys)
	}
	enqueueCopies(t, s, 3, keys...)
	// The mobile goes away before relay runs; its copies wait for it.
	unreg := register("5064", "cid-mobile", 3)
	unreg.Kind = presence.Removed // the unregister names its registration
	if err := pres.ApplyEvent(ctx, unreg); err != nil {
		t.Fatal(err)
	}
	fs := newRouteFS(func(string, string) string { return "Sent" })
	r := startRelayWith(t, Config{Window: 2, Devices: pres}, s, fs, pres)
	desk := "internal/sip:1001@127.0.0.1:5062;transport=udp"
	mobile := "internal/sip:1001@127.0.0.1:5064;transport=udp"
	waitUntil(t, "the desk phone served", 10*time.Second, func() bool { return len(fs.to(desk)) == 3 })
	if n := queued(t, s); n != 3 || len(fs.to(mobile)) != 0 {
		t.Fatalf("%d queued, %d sent to the unregistered mobile", n, len(fs.to(mobile)))
	}
	if err := pres.ApplyEvent(ctx, register("5064", "cid-mobile", 4)); err != nil {
		t.Fatal(err)
	}
	r.Wake("1001@127.0.0.1") // presence's OnReachable, which this map was not given
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	for _, dev := range []string{desk, mobile} {
		if got := strings.Join(fs.to(dev), ","); got != bodies("c", 0, 3) {
			t.Errorf("%s got %s", dev, got)
		}
	}
}
