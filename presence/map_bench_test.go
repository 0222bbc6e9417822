package presence

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// BenchmarkPingObserved is the map's cost per answered ping of a registered
// single-device user (the pinger's steady state: no change worth a write).
func BenchmarkPingObserved(b *testing.B) {
	s, err := kv.Open(filepath.Join(b.TempDir(), "sipsilo.db"), kv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	m, err := New(Config{Store: s})
	if err != nil {
		b.Fatal(err)
	}
	const users = 1000
	doc := `<?xml version="1.0" encoding="ISO-8859-1"?>` + "\n<profile><registrations>\n"
	for i := range users {
		u := strconv.Itoa(2000 + i)
		doc += "<registration><call-id>c" + u + "</call-id><user>" + u + "@127.0.0.1</user>" +
			"<contact>&quot;&quot; &lt;sip:" + u + "@127.0.0.1:" + strconv.Itoa(20000+i) + "&gt;</contact>" +
			"<agent>ua</agent><status>Registered(UDP)(unknown) exp(2030-01-01 00:00:00) expsecs(3600)</status>" +
			"<ping-status>Reachable</ping-status><network-ip>127.0.0.1</network-ip><network-port>" +
			strconv.Itoa(20000+i) + "</network-port></registration>\n"
	}
	doc += "</registrations></profile>\n"
	if err := m.Resync(context.Background(), "internal", doc, "core"); err != nil {
		b.Fatal(err)
	}
	targets := m.PingTargets(PingAll)
	if len(targets) != users {
		b.Fatalf("%d targets", len(targets))
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		res := PingResult{Target: targets[i%users], Alive: true, Status: 200, RTT: time.Millisecond, At: time.Now()}
		if err := m.PingObserved(ctx, res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTargets is the map's cost per message at intake: the recipient's
// devices (one registered device, one remembered).
func BenchmarkTargets(b *testing.B) {
	s, err := kv.Open(filepath.Join(b.TempDir(), "sipsilo.db"), kv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	m, err := New(Config{Store: s})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i, c := range []string{"<sip:alice@10.0.0.1:5060>", "<sip:alice@10.0.0.2:5060>"} {
		ev := Event{Kind: Registered, AOR: "alice@example.com", CallID: "c" + strconv.Itoa(i), Contact: c,
			Profile: "internal", ExpiresIn: time.Hour, Source: "bench", Stream: "s", Seq: uint64(i + 1)}
		if err := m.ApplyEvent(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	if err := m.ApplyEvent(ctx, Event{Kind: Removed, AOR: "alice@example.com", CallID: "c1", Stream: "s", Seq: 3}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(m.Targets("alice@example.com")) != 2 {
			b.Fatal("targets")
		}
	}
}
