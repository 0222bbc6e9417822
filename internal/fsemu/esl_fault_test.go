package fsemu

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestESLDropConnections(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	c := login(t, s, "event plain ALL")
	s.DropConnections()
	c.expectEOF()                      // no disconnect notice
	c = login(t, s, "event plain ALL") // still accepting
	s.Fire(&Event{Headers: []Header{{"Event-Name", "TRAP"}}})
	if ev := mustEvent(t, c); ev.Get("Event-Name") != "TRAP" {
		t.Fatal(ev.Headers)
	}
}

func TestESLRestart(t *testing.T) {
	s := newTestServer(t, ESLOptions{CoreUUID: "old-core"})
	c := login(t, s, "event json ALL")
	s.Fire(&Event{Headers: []Header{{"Event-Name", "TRAP"}}})
	s.Fire(&Event{Headers: []Header{{"Event-Name", "TRAP"}}})
	if ev := mustEvent(t, c); ev.Get("Core-UUID") != "old-core" || ev.Get("Event-Sequence") != "1" {
		t.Fatal(ev.Headers)
	}
	s.Restart("new-core")
	c = login(t, s, "event json ALL")
	s.Fire(&Event{Headers: []Header{{"Event-Name", "TRAP"}}})
	if ev := mustEvent(t, c); ev.Get("Core-UUID") != "new-core" || ev.Get("Event-Sequence") != "1" {
		t.Fatal(ev.Headers)
	}
	if s.CoreUUID() != "new-core" {
		t.Fatal(s.CoreUUID())
	}
}

func TestESLAcceptSilent(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	s.SetAcceptSilent(true)
	c := dialESL(t, s.Addr())
	c.nc.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	buf := make([]byte, 1)
	n, err := c.nc.Read(buf)
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent accept sent %q, %v", buf[:n], err)
	}
	s.SetAcceptSilent(false)
	login(t, s, "")
	s.DropConnections() // also ends the silent one
	c.expectEOF()
}

func TestESLAPIDelay(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	s.HandleAPI("echo", func(a string) string { return a })
	c := login(t, s, "event plain TRAP")
	s.SetAPIDelay(200 * time.Millisecond)
	start := time.Now()
	c.send("api echo late\n\n")
	time.Sleep(50 * time.Millisecond) // the api is running now
	s.Fire(&Event{Headers: []Header{{"Event-Name", "TRAP"}}})
	c.expect("Content-Type: api/response\nContent-Length: 4\n\nlate")
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("reply after %v", d)
	}
	if ev := mustEvent(t, c); ev.Get("Event-Name") != "TRAP" {
		t.Fatal(ev.Headers)
	}
	// Close must not wait for a delayed reply.
	c.send("api echo never\n\n")
	time.Sleep(20 * time.Millisecond)
	s.SetAPIDelay(time.Hour)
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close hung on a delayed api")
	}
}

func TestESLHeartbeat(t *testing.T) {
	start := time.Date(2026, 11, 26, 4, 39, 45, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	s := newTestServer(t, ESLOptions{Clock: clock, CoreUUID: "c"})
	c := login(t, s, "event json HEARTBEAT")
	now = start.Add(3723*time.Second + 4060*time.Microsecond) // read only by FireHeartbeat below
	s.FireHeartbeat()
	ev := mustEvent(t, c)
	if got := ev.Get("Up-Time"); got != "0 years, 0 days, 1 hour, 2 minutes, 3 seconds, 4 milliseconds, 60 microseconds" {
		t.Errorf("Up-Time %q", got)
	}
	if ev.Get("Uptime-msec") != "3723004" || ev.Get("Event-Date-Local") != "2026-11-26 05:41:48" || ev.Get("Event-Calling-Function") != "send_heartbeat" {
		t.Errorf("%v", ev.Headers)
	}

	ticking := newTestServer(t, ESLOptions{HeartbeatInterval: 20 * time.Millisecond})
	c = login(t, ticking, "event plain HEARTBEAT")
	if ev := mustEvent(t, c); ev.Get("Event-Info") != "System Ready" || !strings.HasPrefix(ev.Get("Up-Time"), "0 years") {
		t.Fatal(ev.Headers)
	}
}

func TestESLCloseNotice(t *testing.T) {
	s, err := NewESLServer(ESLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := login(t, s, "event plain ALL")
	silent := dialESL(t, s.Addr()) // not greeted yet or greeted: either way closed
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.expect("Content-Type: text/disconnect-notice\nContent-Length: 31\n\nThe system is being shut down.\n")
	c.expectEOF()
	silent.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(silent.nc); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}
