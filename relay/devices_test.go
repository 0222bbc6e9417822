package relay

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// fakeDevices is presence's per-device view: each device of 1001 is reached by
// chat to "internal/sip:1001@<key>" (its own contact, as ChatTo gives).
type fakeDevices struct {
	mu       sync.Mutex
	targets  []string
	down     map[string]bool // devices not deliverable
	outcomes map[string][]presence.Outcome
}

func newFakeDevices(keys ...string) *fakeDevices {
	return &fakeDevices{targets: keys, down: map[string]bool{}, outcomes: map[string][]presence.Outcome{}}
}

func (d *fakeDevices) Targets(string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.targets...)
}

func (d *fakeDevices) DeviceDeliverable(_, key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.down[key]
}

func (d *fakeDevices) ObserveDeviceSent(_ context.Context, _, key string, o presence.Outcome, _ time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.outcomes[key] = append(d.outcomes[key], o)
	return nil
}

func (d *fakeDevices) ChatTo(aor, key string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down[key] {
		return "", false
	}
	user, _, _ := strings.Cut(aor, "@")
	return "internal/sip:" + user + "@" + key, true
}

func (d *fakeDevices) setDown(key string, down bool) {
	d.mu.Lock()
	d.down[key] = down
	d.mu.Unlock()
}

// routeFS is FreeSWITCH's chat as a device lane uses it: it records every chat
// by destination, and answer decides each result.
type routeFS struct {
	mu     sync.Mutex
	byTo   map[string][]string
	order  []string // "to body", in send order
	answer func(to, body string) string
}

func newRouteFS(answer func(to, body string) string) *routeFS {
	return &routeFS{byTo: map[string][]string{}, answer: answer}
}

func (f *routeFS) StartJob(_ context.Context, cmd, args, _ string) (Job, error) {
	parts := splitChatArgs(args, 5)
	if cmd != "chat" || len(parts) != 5 {
		return nil, fmt.Errorf("bad bgapi %s %q", cmd, args)
	}
	f.mu.Lock()
	f.byTo[parts[2]] = append(f.byTo[parts[2]], parts[3])
	f.order = append(f.order, parts[2]+" "+parts[3])
	f.mu.Unlock()
	return routeJob{f.answer(parts[2], parts[3])}, nil
}

func (f *routeFS) API(context.Context, string) (string, error) {
	return "sofia/internal/sip:1001@127.0.0.1:25071", nil
}

func (f *routeFS) to(dest string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.byTo[dest]...)
}

func (f *routeFS) sends() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...)
}

type routeJob struct{ reply string }

func (j routeJob) Wait(context.Context) (string, error) { return j.reply, nil }

// enqueueCopies stores n ready messages to 1001, "c0".."c{n-1}", each with a
// copy per key.
func enqueueCopies(t *testing.T, s *kv.Store, n int, keys ...string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		m := &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1", ContentType: "text/plain",
			Body: []byte(fmt.Sprintf("c%d", i)), BodySource: kv.BodyAPI, BodyFinal: true, CoreUUID: "core-a",
			EventSeq: uint64(500 + i), Received: time.Now().Add(-time.Second), Devices: kv.Copies(keys)}
		id, err := s.Enqueue(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

func bodies(prefix string, from, n int) string {
	var b []string
	for i := from; i < from+n; i++ {
		b = append(b, fmt.Sprintf("%s%d", prefix, i))
	}
	return strings.Join(b, ",")
}

func TestEveryDeviceGetsEveryCopyOnceInOrder(t *testing.T) {
	s := openStore(t)
	ids := enqueueCopies(t, s, 20, "desk:5061", "mobile:5062")
	fs := newRouteFS(func(string, string) string { return "Sent" })
	devs := newFakeDevices("desk:5061", "mobile:5062")
	r := startRelayWith(t, Config{Window: 4, Devices: devs}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	for _, dev := range []string{"internal/sip:1001@desk:5061", "internal/sip:1001@mobile:5062"} {
		if got := strings.Join(fs.to(dev), ","); got != bodies("c", 0, 20) {
			t.Errorf("%s got %s, want each of 20 once in order", dev, got)
		}
	}
	if n := len(fs.to("1001@127.0.0.1")); n != 0 {
		t.Errorf("%d chats to the recipient's address: a copy went out on another device's answer", n)
	}
	for _, id := range ids {
		m, _ := s.Get(id)
		if m.State != kv.StateDelivered || m.Copy("desk:5061").State != kv.StateDelivered || m.Copy("mobile:5062").State != kv.StateDelivered {
			t.Fatalf("%s: %s %+v", id, m.State, m.Devices)
		}
	}
	if st := r.Stats(); st.DeviceDeliveries != 40 || st.Delivered != 40 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSilentDeviceHoldsBackOnlyItself(t *testing.T) {
	s := openStore(t)
	enqueueCopies(t, s, 10, "a:1", "b:2", "c:3")
	fs := newRouteFS(func(string, string) string { return "Sent" })
	devs := newFakeDevices("a:1", "b:2", "c:3")
	devs.setDown("c:3", true)
	r := startRelayWith(t, Config{Window: 2, Devices: devs}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "live devices served", 10*time.Second, func() bool {
		return len(fs.to("internal/sip:1001@a:1")) == 10 && len(fs.to("internal/sip:1001@b:2")) == 10
	})
	if n := queued(t, s); n != 10 {
		t.Fatalf("%d queued, want all 10 kept for the silent device", n)
	}
	waitUntil(t, "holding gauge", 5*time.Second, func() bool { return r.Stats().DevicesHolding == 1 })
	if n := len(fs.to("internal/sip:1001@c:3")); n != 0 {
		t.Fatalf("%d chats to a device that is not deliverable", n)
	}
	devs.setDown("c:3", false)
	r.Wake("1001@127.0.0.1") // what presence does on its REGISTER
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	waitUntil(t, "holding gauge back to 0", 5*time.Second, func() bool { return r.Stats().DevicesHolding == 0 })
	for _, dev := range []string{"a:1", "b:2", "c:3"} {
		if got := strings.Join(fs.to("internal/sip:1001@"+dev), ","); got != bodies("c", 0, 10) {
			t.Errorf("%s got %s", dev, got)
		}
	}
}

func TestCopiesWaitForAnEarlierMessageWithoutCopies(t *testing.T) {
	s := openStore(t)
	enqueue(t, s, 1) // m0: received while the recipient had one device
	enqueueCopies(t, s, 3, "a:1", "b:2")
	fs := newRouteFS(func(string, string) string { return "Sent" })
	p := &fakePresence{}
	r := startRelayWith(t, Config{Window: 4, Devices: newFakeDevices("a:1", "b:2")}, s, fs, p)
	time.Sleep(100 * time.Millisecond)
	if got := fs.sends(); len(got) != 0 {
		t.Fatalf("copies sent before the earlier message: %v", got)
	}
	p.mu.Lock()
	p.ok = true
	p.mu.Unlock()
	r.Wake("1001@127.0.0.1")
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	got := fs.sends()
	if len(got) != 7 || got[0] != "1001@127.0.0.1 m0" {
		t.Fatalf("sends %v, want m0 to the recipient first, then 3 copies to each device", got)
	}
	for _, dev := range []string{"a:1", "b:2"} {
		if got := strings.Join(fs.to("internal/sip:1001@"+dev), ","); got != bodies("c", 0, 3) {
			t.Errorf("%s got %s", dev, got)
		}
	}
}

func TestRefusingDeviceDoesNotHoldTheOthers(t *testing.T) {
	s := openStore(t)
	ids := enqueueCopies(t, s, 5, "a:1", "b:2")
	fs := newRouteFS(func(to, _ string) string {
		if strings.HasSuffix(to, "b:2") {
			return "-ERR Error! Message Not Sent\n" // a live phone's 486
		}
		return "Sent"
	})
	devs := newFakeDevices("a:1", "b:2")
	r := startRelayWith(t, Config{Window: 1, DeadAfter: 2, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Devices: devs}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	if got := strings.Join(fs.to("internal/sip:1001@a:1"), ","); got != bodies("c", 0, 5) {
		t.Fatalf("the accepting device got %s", got)
	}
	for _, id := range ids {
		m, _ := s.Get(id)
		if m.State != kv.StateDelivered || m.Copy("b:2").State != kv.StateDead || m.Copy("b:2").Refusals != 2 {
			t.Fatalf("%s: %s %+v", id, m.State, m.Devices)
		}
	}
	devs.mu.Lock()
	refused := len(devs.outcomes["b:2"])
	devs.mu.Unlock()
	if refused != 10 {
		t.Fatalf("presence heard %d outcomes of the refusing device, want 10", refused)
	}
	if st := r.Stats(); st.DeadLettered != 5 || st.DeviceDeliveries != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// deviceDirect reaches device "a:1" directly, answering 200; any other device
// goes through FreeSWITCH.
type deviceDirect struct {
	fakeDirect
	keys []string
}

func (d *deviceDirect) SendDevice(_ context.Context, m *kv.Message, key string) (func(context.Context) (int, error), bool, error) {
	if key != "a:1" {
		return nil, false, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bodies = append(d.bodies, string(m.Body))
	d.keys = append(d.keys, key)
	return func(context.Context) (int, error) { return 200, nil }, true, nil
}

func (d *deviceDirect) ReadyDevice(_, key string) bool { return key == "a:1" }

// deviceProber: the probe of device "b:2" goes unanswered, every other passes.
type deviceProber struct {
	mu     sync.Mutex
	checks map[string]int
}

func (p *deviceProber) Check(context.Context, string) bool { return true }

func (p *deviceProber) CheckDevice(_ context.Context, _, key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks[key]++
	return key != "b:2"
}

func TestDeviceLanesTakeTheirOwnPathAndProbe(t *testing.T) {
	s := openStore(t)
	enqueueCopies(t, s, 6, "a:1", "b:2", "c:3")
	fs := newRouteFS(func(string, string) string { return "Sent" })
	direct := &deviceDirect{}
	probe := &deviceProber{checks: map[string]int{}}
	cfg := Config{Window: 2, Devices: newFakeDevices("a:1", "b:2", "c:3"), Direct: direct, Prober: probe,
		RetryMin: time.Hour} // b's failed probe holds it for the rest of the test
	r := startRelayWith(t, cfg, s, fs, &fakePresence{ok: true})
	waitUntil(t, "a and c served", 10*time.Second, func() bool {
		return len(direct.sent()) == 6 && len(fs.to("internal/sip:1001@c:3")) == 6
	})
	if got := strings.Join(direct.sent(), ","); got != bodies("c", 0, 6) {
		t.Fatalf("direct sends %s", got)
	}
	if n := len(fs.to("internal/sip:1001@a:1")) + len(fs.to("internal/sip:1001@b:2")); n != 0 {
		t.Fatalf("%d chats to the direct device or the one whose probe failed", n)
	}
	if q := queued(t, s); q != 6 {
		t.Fatalf("%d queued, want 6 kept for the device whose probe failed", q)
	}
	if st := r.Stats(); st.ProbeFailed == 0 || st.Direct != 6 {
		t.Fatalf("stats %+v", st)
	}
}

// A copy found in flight after a crash is sent again and counted as an
// uncertain resend of that copy alone: the duplicate window is per device.
func TestCopyInFlightAtStartIsAnUncertainResendOfThatCopy(t *testing.T) {
	s := openStore(t)
	ids := enqueueCopies(t, s, 2, "a:1", "b:2")
	if _, err := s.BeginCopyAttempt(context.Background(), ids[0], "a:1", ids[0]+"-d0-1", time.Now()); err != nil {
		t.Fatal(err) // the process died here, the chat possibly sent
	}
	fs := newRouteFS(func(string, string) string { return "Sent" })
	r := startRelayWith(t, Config{Window: 1, Devices: newFakeDevices("a:1", "b:2")}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	m, _ := s.Get(ids[0])
	if a, b := m.Copy("a:1"), m.Copy("b:2"); a.UncertainResends != 1 || a.Attempts != 2 || b.UncertainResends != 0 || b.Attempts != 1 {
		t.Fatalf("copies %+v", m.Devices)
	}
	if st := r.Stats(); st.UncertainResends != 1 || st.DeviceDeliveries != 4 {
		t.Fatalf("stats %+v", st)
	}
	for _, dev := range []string{"a:1", "b:2"} {
		if got := strings.Join(fs.to("internal/sip:1001@"+dev), ","); got != "c0,c1" {
			t.Errorf("%s got %s", dev, got)
		}
	}
}

// silentFS answers chats to "c:3" never: FreeSWITCH still retransmitting to a
// phone that went silent unnoticed.
type silentFS struct{ *routeFS }

func (f silentFS) StartJob(ctx context.Context, cmd, args, job string) (Job, error) {
	j, err := f.routeFS.StartJob(ctx, cmd, args, job)
	if err == nil && strings.Contains(args, "c:3") {
		return silentJob{}, nil
	}
	return j, err
}

type silentJob struct{}

func (silentJob) Wait(ctx context.Context) (string, error) {
	<-ctx.Done()
	return "", fmt.Errorf("%w: %w", esl.ErrOutcomeUnknown, ctx.Err())
}

// A device lane sends one copy at a time until its device confirmed one: a
// silent device has one chat outstanding, not a window of them.
func TestSilentDeviceHasOneChatOutstanding(t *testing.T) {
	s := openStore(t)
	enqueueCopies(t, s, 10, "a:1", "c:3")
	fs := silentFS{newRouteFS(func(string, string) string { return "Sent" })}
	startRelayWith(t, Config{Window: 8, DrainTimeout: 100 * time.Millisecond, Devices: newFakeDevices("a:1", "c:3")},
		s, fs, &fakePresence{ok: true})
	waitUntil(t, "the live device served", 10*time.Second, func() bool { return len(fs.to("internal/sip:1001@a:1")) == 10 })
	time.Sleep(100 * time.Millisecond)
	if got := fs.to("internal/sip:1001@c:3"); len(got) != 1 || got[0] != "c0" {
		t.Fatalf("chats outstanding to the silent device: %v, want c0 alone", got)
	}
}
