package freeswitch

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/presence"
)

// recorder stands in for presence, the body tracker and relay, and records in
// one list, in order, what the Router asked of them.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) ApplyEvent(_ context.Context, ev presence.Event) error {
	r.add("apply " + ev.Source + " " + ev.AOR)
	return nil
}

func (r *recorder) Resync(_ context.Context, profile, xmlstatus, core string) error {
	ok := strings.Contains(xmlstatus, "<registrations>") || strings.Contains(xmlstatus, "<profile")
	r.add("resync " + profile + " " + core + " xml=" + map[bool]string{true: "yes", false: "no"}[ok])
	return nil
}

func (r *recorder) SetSoleProfiles(map[string]bool) {}

func (r *recorder) Confirm(_ context.Context, id, core string, seq uint64, body []byte) {
	r.add("body " + id + " " + string(body))
}

func (r *recorder) FreeSWITCHRestarted() { r.add("restarted") }
func (r *recorder) WakeAll()             { r.add("wake all") }

func waitCalls(t *testing.T, rec *recorder, what string, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := rec.list()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: calls so far %q", what, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func count(calls []string, s string) int {
	n := 0
	for _, c := range calls {
		if c == s {
			n++
		}
	}
	return n
}

// The Router resyncs every profile before the first event of each connection,
// wakes delivery after it, tells delivery when FreeSWITCH restarted (a new
// Core-UUID), sends our post-chatplan MESSAGE bodies to the body tracker and
// every other event to presence.
func TestRouterResyncsOnConnectAndHandlesRestart(t *testing.T) {
	sw, err := fsemu.NewSwitch(fsemu.SwitchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Close() })
	client := esl.New(esl.Config{Addr: sw.ESL().Addr(), Password: "ClueCon",
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	rec := &recorder{}
	r := NewRouter(RouterConfig{Client: client, Presence: rec, Bodies: rec, Delivery: rec,
		Profiles: []string{"internal"}, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = client.Run(ctx) })
	wg.Go(func() { _ = r.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	firstCore := ""
	got := waitCalls(t, rec, "first resync", func(c []string) bool { return count(c, "wake all") == 1 })
	if len(got) != 2 || !strings.HasPrefix(got[0], "resync internal ") || !strings.HasSuffix(got[0], " xml=yes") {
		t.Fatalf("first connection: %q, want a resync of internal with FreeSWITCH's answer, then wake all", got)
	}
	firstCore = strings.Fields(got[0])[2]

	ours := &fsemu.Event{Headers: []fsemu.Header{{Name: "Event-Name", Value: "MESSAGE"},
		{Name: "sipsilo_id", Value: "01ABC"}, {Name: "final_delivery", Value: "true"}}, Body: "exact body"}
	notOurs := &fsemu.Event{Headers: []fsemu.Header{{Name: "Event-Name", Value: "MESSAGE"}}, Body: "someone else's"}
	reg := &fsemu.Event{Headers: []fsemu.Header{{Name: "Event-Name", Value: "CUSTOM"},
		{Name: "Event-Subclass", Value: "sofia::register"}, {Name: "from-user", Value: "1001"},
		{Name: "from-host", Value: "127.0.0.1"}, {Name: "call-id", Value: "c1"}, {Name: "expires", Value: "60"},
		{Name: "contact", Value: "<sip:1001@127.0.0.1:5062>"}}}
	// Not about reachability: dropped by the translation, never shown to presence.
	other := &fsemu.Event{Headers: []fsemu.Header{{Name: "Event-Name", Value: "CUSTOM"},
		{Name: "Event-Subclass", Value: "sofia::pre_register"}}}
	sw.ESL().Fire(ours)
	sw.ESL().Fire(notOurs)
	sw.ESL().Fire(other)
	sw.ESL().Fire(reg)
	const applied = "apply sofia::register 1001@127.0.0.1"
	got = waitCalls(t, rec, "events routed", func(c []string) bool { return count(c, applied) == 1 })
	if got[2] != "body 01ABC exact body" || got[3] != applied || len(got) != 4 {
		t.Fatalf("routing: %q, want our body to the tracker, the other MESSAGE dropped, the register to presence", got[2:])
	}

	sw.Restart()
	got = waitCalls(t, rec, "resync after restart", func(c []string) bool { return count(c, "wake all") == 2 })
	after := got[4:]
	if len(after) != 3 || after[0] != "restarted" || !strings.HasPrefix(after[1], "resync internal ") ||
		strings.Fields(after[1])[2] == firstCore || after[2] != "wake all" {
		t.Fatalf("after a restart: %q, want restarted, a resync under the new Core-UUID (old %s), wake all", after, firstCore)
	}
}

// The registrations are resynced while connected, not only at connect:
// FreeSWITCH's registration reads can fail for a moment, and presence may then
// drop a registration that no event brings back before the phone's next
// REGISTER.
func TestRouterResyncsPeriodically(t *testing.T) {
	sw, err := fsemu.NewSwitch(fsemu.SwitchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Close() })
	client := esl.New(esl.Config{Addr: sw.ESL().Addr(), Password: "ClueCon",
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	rec := &recorder{}
	r := NewRouter(RouterConfig{Client: client, Presence: rec, Bodies: rec, Delivery: rec,
		Profiles: []string{"internal"}, ResyncEvery: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = client.Run(ctx) })
	wg.Go(func() { _ = r.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	got := waitCalls(t, rec, "resyncs after the first", func(c []string) bool {
		n := 0
		for _, s := range c {
			if strings.HasPrefix(s, "resync internal ") && strings.HasSuffix(s, " xml=yes") {
				n++
			}
		}
		return n >= 3
	})
	if n := count(got, "wake all"); n != 1 {
		t.Fatalf("%d wake-alls: only a (re)connection wakes every queue, a periodic resync wakes what it covers (%q)", n, got)
	}
}
