package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// fakeDirect answers every direct send with status (or err) and records bodies.
type fakeDirect struct {
	mu     sync.Mutex
	ok     bool
	status func(n int) (int, error)
	bodies []string
	check  func(m *kv.Message) // if set, runs as each message leaves
}

func (d *fakeDirect) Send(_ context.Context, m *kv.Message) (func(context.Context) (int, error), bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ok {
		return nil, false, nil
	}
	if d.check != nil {
		d.check(m)
	}
	n := len(d.bodies)
	d.bodies = append(d.bodies, string(m.Body))
	return func(context.Context) (int, error) { return d.status(n) }, true, nil
}

func (d *fakeDirect) Ready(string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ok
}

func (d *fakeDirect) sent() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.bodies...)
}

type fakeProber struct {
	mu     sync.Mutex
	alive  bool
	checks int
}

func (p *fakeProber) Check(context.Context, string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks++
	return p.alive
}

func TestDirectPathDeliversInOrderWithoutFreeSWITCH(t *testing.T) {
	s := openStore(t)
	enqueue(t, s, 30)
	d := &fakeDirect{ok: true, status: func(int) (int, error) { return 200, nil }}
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) { return "Sent", nil }}
	r := startRelay(t, Config{Window: 4, Direct: d}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "delivered", 5*time.Second, func() bool { return queued(t, s) == 0 })
	if n := len(fs.sent()); n != 0 {
		t.Fatalf("%d chats through FreeSWITCH with the direct path open", n)
	}
	for i, b := range d.sent() {
		if b != fmt.Sprintf("m%d", i) {
			t.Fatalf("direct send %d carried %q", i, b)
		}
	}
	if st := r.Stats(); st.Direct != 30 || st.Delivered != 30 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDirectPathRefusalAndSilence(t *testing.T) {
	s := openStore(t)
	ids := enqueue(t, s, 2)
	// m0: refused twice (486) then dead-lettered; m1: no answer once, then 200.
	d := &fakeDirect{ok: true}
	d.status = func(n int) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		body := d.bodies[n]
		switch {
		case body == "m0":
			return 486, nil
		case body == "m1" && countOf(d.bodies[:n+1], "m1") == 1:
			return 0, errors.New("no answer")
		}
		return 200, nil
	}
	p := &fakePresence{ok: true}
	r := startRelay(t, Config{Window: 1, Direct: d, DeadAfter: 2, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}, s, &fakeFS{registered: true}, p)
	waitUntil(t, "m0 dead-lettered", 5*time.Second, func() bool { m, _ := s.Get(ids[0]); return m.State == kv.StateDead })
	// The no-answer made the recipient unreachable; a sign of life brings it back.
	waitUntil(t, "no answer seen", 5*time.Second, func() bool { return p.seen(presence.NoAnswer) })
	p.mu.Lock()
	p.ok = true
	p.mu.Unlock()
	r.Wake("1001@127.0.0.1")
	waitUntil(t, "m1 delivered", 5*time.Second, func() bool { m, _ := s.Get(ids[1]); return m.State == kv.StateDelivered })
	m1, _ := s.Get(ids[1])
	if m1.UncertainResends != 1 || m1.Refusals != 0 {
		t.Fatalf("m1 %+v", m1)
	}
	m0, _ := s.Get(ids[0])
	if m0.Refusals != 2 || m0.LastResult != "SIP 486" {
		t.Fatalf("m0 %+v", m0)
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func TestProbeFailureKeepsTheQueue(t *testing.T) {
	s := openStore(t)
	enqueue(t, s, 2)
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) { return "Sent", nil }}
	pr := &fakeProber{}
	r := startRelay(t, Config{Prober: pr, RetryMin: 50 * time.Millisecond}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "probed twice", 5*time.Second, func() bool { pr.mu.Lock(); defer pr.mu.Unlock(); return pr.checks >= 2 })
	if n := len(fs.sent()); n != 0 {
		t.Fatalf("%d chats to a recipient whose probe went unanswered", n)
	}
	pr.mu.Lock()
	pr.alive = true
	pr.mu.Unlock()
	waitUntil(t, "delivered", 5*time.Second, func() bool { return queued(t, s) == 0 })
	if st := r.Stats(); st.ProbeFailed < 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestWindowFollowsThePath: while the direct path reaches the device, at most
// DirectWindow sends are in flight; through FreeSWITCH, up to Window.
func TestWindowFollowsThePath(t *testing.T) {
	for _, c := range []struct {
		name   string
		direct bool
		want   int
	}{{"direct", true, 2}, {"freeswitch", false, 6}} {
		t.Run(c.name, func(t *testing.T) {
			s := openStore(t)
			enqueue(t, s, 24)
			var mu sync.Mutex
			cur, peak := 0, 0
			slow := func() { // long enough for a whole window to start meanwhile
				mu.Lock()
				cur++
				peak = max(peak, cur)
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
				mu.Lock()
				cur--
				mu.Unlock()
			}
			d := &fakeDirect{ok: c.direct, status: func(int) (int, error) { slow(); return 200, nil }}
			fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) { slow(); return "Sent", nil }}
			startRelay(t, Config{Window: 6, DirectWindow: 2, Direct: d}, s, fs, &fakePresence{ok: true})
			waitUntil(t, "delivered", 10*time.Second, func() bool { return queued(t, s) == 0 })
			if peak != c.want {
				t.Fatalf("peak %d sends in flight, want %d", peak, c.want)
			}
		})
	}
}

// Beside a switch that cannot confirm a delivery (DirectOnly), a deliverable
// recipient whose device does not answer sipsilo directly yet keeps its
// messages without an attempt being recorded, and gets them once it does.
func TestDirectOnlyWaitsForTheDirectPathWithoutAttempts(t *testing.T) {
	s := openStore(t)
	enqueue(t, s, 3)
	d := &fakeDirect{status: func(int) (int, error) { return 200, nil }}
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) {
		return "", errors.New("no switch path")
	}}
	r := startRelay(t, Config{Window: 4, RetryMin: 20 * time.Millisecond, Direct: d, DirectOnly: true}, s, fs, &fakePresence{ok: true})
	// Several RetryMin periods pass with the recipient deliverable.
	time.Sleep(200 * time.Millisecond)
	msgs, err := s.Queue("1001@127.0.0.1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d queued, want 3", len(msgs))
	}
	for _, m := range msgs {
		if m.Attempts != 0 {
			t.Fatalf("message %s has %d attempts with no path to send it", m.ID, m.Attempts)
		}
	}
	if n := len(fs.sent()); n != 0 {
		t.Fatalf("%d sends through the switch", n)
	}
	d.mu.Lock()
	d.ok = true
	d.mu.Unlock()
	waitUntil(t, "delivered once the direct path is ready", 5*time.Second, func() bool { return queued(t, s) == 0 })
	if got := d.sent(); len(got) != 3 || got[0] != "m0" || got[2] != "m2" {
		t.Fatalf("direct sends %q", got)
	}
	if st := r.Stats(); st.Delivered != 3 {
		t.Fatalf("stats %+v", st)
	}
}
