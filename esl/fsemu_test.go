package esl

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
)

// TestAgainstEmulator runs the client against internal/fsemu's ESL server, which
// speaks FreeSWITCH 1.10.12's framing as captured: subscription, an ordered burst
// of events, api, bgapi with our Job-UUID, and a FreeSWITCH restart.
func TestAgainstEmulator(t *testing.T) {
	srv, err := fsemu.NewESLServer(fsemu.ESLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.HandleAPI("echo", func(args string) string { return args })
	srv.HandleAPI("chat", func(args string) string { return "Sent" })

	c := New(Config{Addr: srv.Addr(), Password: "ClueCon", BackoffMin: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	defer func() { cancel(); <-runErr }()

	first := nextConnected(t, c)
	if first.CoreUUID != srv.CoreUUID() {
		t.Fatalf("core %q, want %q", first.CoreUUID, srv.CoreUUID())
	}
	const n = 500
	for i := range n {
		ev := fsemu.NewMessageEvent(fsemu.MessageParams{CoreUUID: srv.CoreUUID(), Sequence: uint64(1000 - i), Body: "m"})
		ev.Headers = append(ev.Headers, fsemu.Header{Name: "sipsilo_id", Value: string(rune('A' + i%26))},
			fsemu.Header{Name: "final_delivery", Value: "true"}) // as after sipsilo's chatplan
		srv.Fire(ev)
	}
	for i := range n {
		ev := nextNamed(t, c, "MESSAGE")
		if ev.Sequence != uint64(1000-i) || ev.Body != "m" || ev.CoreUUID != srv.CoreUUID() {
			t.Fatalf("event %d: seq %d body %q", i, ev.Sequence, ev.Body)
		}
	}
	if got, err := c.API(ctx, "echo hello world"); err != nil || got != "hello world" {
		t.Fatalf("api: %q %v", got, err)
	}
	if got, err := c.BgAPI(ctx, "chat", "sip|1000@127.0.0.1|1001@127.0.0.1|hi|text/plain", "job-fsemu-1"); err != nil || got != "Sent" {
		t.Fatalf("bgapi: %q %v", got, err)
	}

	srv.Restart("5f0d8e4e-0000-4000-8000-000000000001")
	again := nextConnected(t, c)
	if !again.Restarted || again.CoreUUID != "5f0d8e4e-0000-4000-8000-000000000001" {
		t.Fatalf("after restart: %+v", again)
	}
}

func nextNamed(t *testing.T, c *Client, name string) *Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if ev.Name == name {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event", name)
		}
	}
}

// TestDefaultFiltersAgainstEmulator: the default filters let through every
// event sipsilo reads and none of the others it is subscribed to, as
// FreeSWITCH's event_handler applies them (internal/fsemu models it).
func TestDefaultFiltersAgainstEmulator(t *testing.T) {
	srv, err := fsemu.NewESLServer(fsemu.ESLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := New(Config{Addr: srv.Addr(), Password: "ClueCon", BackoffMin: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	defer func() { cancel(); <-runErr }()
	nextConnected(t, c)

	ev := func(kv ...string) *fsemu.Event {
		e := &fsemu.Event{}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Set(kv[i], kv[i+1])
		}
		return e
	}
	message := func(kv ...string) *fsemu.Event {
		e := fsemu.NewMessageEvent(fsemu.MessageParams{CoreUUID: srv.CoreUUID(), Body: "b"})
		for i := 0; i+1 < len(kv); i += 2 {
			e.Set(kv[i], kv[i+1])
		}
		return e
	}
	cases := []struct {
		name string
		ev   *fsemu.Event
		pass bool
	}{
		{"sofia::register", ev("Event-Name", "CUSTOM", "Event-Subclass", "sofia::register", "status", "Registered"), true},
		{"sofia::expire", ev("Event-Name", "CUSTOM", "Event-Subclass", "sofia::expire"), true},
		{"PRESENCE_IN Unregistered", ev("Event-Name", "PRESENCE_IN", "proto", "sip", "status", "Unregistered"), true},
		{"PRESENCE_IN Registered", ev("Event-Name", "PRESENCE_IN", "proto", "sip", "status", "Registered"), false},
		{"PRESENCE_IN of a call", ev("Event-Name", "PRESENCE_IN", "proto", "sip", "status", "Active (1 waiting)"), false},
		{"MESSAGE after final", message("sipsilo_id", "id1", "final_delivery", "true"), true},
		{"MESSAGE left to FreeSWITCH", message(), false},
		{"MESSAGE chat result", message("Delivery-Failure", "false", "Nonblocking-Delivery", "true"), false},
	}
	var want []string
	for i, tc := range cases {
		tc.ev.Set("sipsilo_test", tc.name)
		tc.ev.Set("Event-Sequence", strconv.Itoa(100+i))
		srv.Fire(tc.ev)
		if tc.pass {
			want = append(want, tc.name)
		}
	}
	srv.FireHeartbeat() // passes too, and ends the sequence
	var got []string
	for {
		e := nextEvent(t, c)
		if e.Name == "HEARTBEAT" {
			break
		}
		got = append(got, e.Get("sipsilo_test"))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events through the filters: %q, want %q", got, want)
	}
}
