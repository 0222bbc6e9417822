package freeswitch

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/presence"
)

type apiFunc func(ctx context.Context, cmd string) (string, error)

func (f apiFunc) API(ctx context.Context, cmd string) (string, error) { return f(ctx, cmd) }

// The Flusher asks FreeSWITCH to drop each registration the pinger found dead,
// in the registration's own profile, or the default one when it names none.
func TestFlusherAsksFreeSWITCHToDropEachRegistration(t *testing.T) {
	cmds := make(chan string, 2)
	f := NewFlusher(apiFunc(func(_ context.Context, cmd string) (string, error) {
		cmds <- cmd
		return "+OK", nil
	}), "internal", slog.New(slog.DiscardHandler))
	f.Request("1001@example.com", presence.Registration{CallID: "c1"})
	f.Request("1002@example.com", presence.Registration{CallID: "c2", Profile: "external"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	for _, want := range []string{"sofia profile internal flush_inbound_reg c1", "sofia profile external flush_inbound_reg c2"} {
		select {
		case got := <-cmds:
			if got != want {
				t.Fatalf("sent %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %q sent", want)
		}
	}
}

// A registration that came back (a REGISTER with the same Call-ID) between
// the pinger's verdict and its flush is not dropped: Still is asked first.
func TestFlusherKeepsARegistrationThatCameBack(t *testing.T) {
	cmds := make(chan string, 2)
	f := NewFlusher(apiFunc(func(_ context.Context, cmd string) (string, error) {
		cmds <- cmd
		return "+OK", nil
	}), "internal", slog.New(slog.DiscardHandler))
	f.Still = func(aor string, r presence.Registration) bool { return r.CallID != "back" }
	f.Request("1001@example.com", presence.Registration{CallID: "back"})
	f.Request("1002@example.com", presence.Registration{CallID: "dead"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	select {
	case got := <-cmds:
		if got != "sofia profile internal flush_inbound_reg dead" {
			t.Fatalf("sent %q: the registration that came back was flushed", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the dead registration was not flushed")
	}
}

// A Call-ID FreeSWITCH would read as more than one registration is never sent:
// none at all, or "reboot", flushes every phone of the profile; a space or a
// quote splits or joins the arguments; user@domain of the flushed user's own
// domain deletes all that user's registrations. Only the last one is flushed.
func TestFlusherRefusesCallIDsFreeSWITCHWouldWiden(t *testing.T) {
	cmds := make(chan string, 8)
	f := NewFlusher(apiFunc(func(_ context.Context, cmd string) (string, error) {
		cmds <- cmd
		return "+OK", nil
	}), "internal", slog.New(slog.DiscardHandler))
	for _, id := range []string{"", "reboot", "REBOOT", "a b", "a\tb", `a"b`, "a'b", `a\b`, "1001@example.com",
		"@example.com", "x@", "1001@EXAMPLE.com", string(make([]byte, 300))} {
		f.Request("1001@example.com", presence.Registration{CallID: id})
	}
	f.Request("1001@example.com", presence.Registration{CallID: "c1", Profile: "in ternal"})
	f.Request("1001@example.com", presence.Registration{CallID: "3c2b7f@192.0.2.7"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	select {
	case got := <-cmds:
		if got != "sofia profile internal flush_inbound_reg 3c2b7f@192.0.2.7" {
			t.Fatalf("sent %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the one safe registration was not flushed")
	}
}
