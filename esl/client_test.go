package esl

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// startClient runs a Client against addr until the test ends; the returned stop
// cancels it and fails the test if Run does not return within 2 s.
func startClient(t *testing.T, cfg Config) (*Client, func()) {
	t.Helper()
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	}
	c := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return within 2 s of cancel")
		}
	}
	t.Cleanup(stop)
	return c, stop
}

func nextConnected(t *testing.T, c *Client) Connected {
	t.Helper()
	select {
	case v := <-c.Connected():
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no Connected")
	}
	return Connected{}
}

func nextEvent(t *testing.T, c *Client) *Event {
	t.Helper()
	select {
	case e := <-c.Events():
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return nil
}

func TestSubscribesExactly(t *testing.T) {
	s := newFakeServer(t)
	c, _ := startClient(t, Config{Addr: s.addr(), Password: "ClueCon"})
	if got, want := nextConnected(t, c), (Connected{CoreUUID: "core-1", Count: 1}); got != want {
		t.Errorf("Connected=%+v, want %+v", got, want)
	}
	subs := s.subscribers()
	if len(subs) != 1 {
		t.Fatalf("%d subscribed connections, want 1", len(subs))
	}
	want := []string{
		"auth ClueCon",
		"api global_getvar core_uuid",
		"filter Event-Name CUSTOM",
		"filter Event-Name BACKGROUND_JOB",
		"filter Event-Name HEARTBEAT",
		"filter status Unregistered",
		"filter final_delivery true",
		"event json MESSAGE PRESENCE_IN BACKGROUND_JOB HEARTBEAT CUSTOM sofia::register sofia::unregister " +
			"sofia::expire sofia::sip_user_state sofia::error",
	}
	if got := subs[0].commands(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("event connection sent %q, want %q", got, want)
	}
	// The command connection authenticates and does nothing else.
	waitFor(t, "command connection", func() bool { return len(s.connections()) == 2 })
	for _, fc := range s.connections() {
		if fc != subs[0] {
			waitFor(t, "auth", func() bool { return len(fc.commands()) == 1 })
			if got := fc.commands(); got[0] != "auth ClueCon" {
				t.Errorf("command connection sent %q", got)
			}
		}
	}
}

// Events leave in the order their frames arrived, not in Event-Sequence order:
// the sequence numbers here are a random permutation, as the order on the wire
// is all the consumer may rely on. Captured events lead, then 2,500 generated.
func TestEventsInArrivalOrder(t *testing.T) {
	const n = 2500
	s := newFakeServer(t)
	captured := captureFrames(t, "esl_02_message_online_json.raw")
	var frames [][]byte
	var wantSeq []string
	for _, f := range captured {
		if strings.Contains(string(f), "text/event-json") {
			frames = append(frames, f)
			e, err := ParseJSON(f[strings.Index(string(f), "\n\n")+2:])
			if err != nil {
				t.Fatal(err)
			}
			wantSeq = append(wantSeq, e.Get("Event-Sequence"))
		}
	}
	heartbeat := findFrame(t, "esl_14_json_heartbeat_bgapi.raw", `"Event-Name":"HEARTBEAT"`)
	old := fmt.Sprintf(`"Event-Sequence":"%s"`, captureSeq(t, heartbeat))
	for _, seq := range rand.Perm(n) {
		frames = append(frames, reframe(t, heartbeat, old, fmt.Sprintf(`"Event-Sequence":"%d"`, seq+1)))
		wantSeq = append(wantSeq, fmt.Sprint(seq+1))
	}
	s.set(func(s *fakeServer) {
		s.onEvent = func(fc *fakeConn) {
			for _, f := range frames {
				if fc.send(f) != nil {
					return
				}
			}
		}
	})
	c, _ := startClient(t, Config{Addr: s.addr()})
	for i, want := range wantSeq {
		e := nextEvent(t, c)
		if got := e.Get("Event-Sequence"); got != want {
			t.Fatalf("event %d has Event-Sequence %s, want %s", i, got, want)
		}
	}
}

// captureSeq is a captured event frame's Event-Sequence.
func captureSeq(t *testing.T, f []byte) string {
	t.Helper()
	e, err := ParseJSON(f[strings.Index(string(f), "\n\n")+2:])
	if err != nil {
		t.Fatal(err)
	}
	return e.Get("Event-Sequence")
}
