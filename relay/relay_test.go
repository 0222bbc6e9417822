package relay

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeFS stands in for FreeSWITCH's chat API: chat decides each job's result.
type fakeFS struct {
	mu         sync.Mutex
	chat       func(n int, to, body string) (string, error) // n: 0-based call number
	calls      int
	bodies     []string // bodies of the chats, in call order
	registered bool
	block      chan context.Context // if set, every chat blocks until its ctx ends
}

// StartJob records the chat in send order; its Wait runs the scripted result,
// as FreeSWITCH's job thread waits for the device.
func (f *fakeFS) StartJob(ctx context.Context, cmd, args, job string) (Job, error) {
	if cmd != "chat" {
		return nil, fmt.Errorf("unexpected bgapi %s", cmd)
	}
	parts := splitChatArgs(args, 5)
	if len(parts) != 5 || parts[0] != "sip" {
		return nil, fmt.Errorf("bad chat args %q", args)
	}
	f.mu.Lock()
	n := f.calls
	f.calls++
	f.bodies = append(f.bodies, parts[3])
	f.mu.Unlock()
	return fakeJob{f: f, n: n, to: parts[2], body: parts[3]}, nil
}

type fakeJob struct {
	f        *fakeFS
	n        int
	to, body string
}

func (j fakeJob) Wait(ctx context.Context) (string, error) {
	if j.f.block != nil {
		j.f.block <- ctx
		<-ctx.Done() // a real client returns when its ctx ends, outcome unknown
		return "", fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
	return j.f.chat(j.n, j.to, j.body)
}

func (f *fakeFS) API(ctx context.Context, cmd string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.registered {
		return "sofia/internal/sip:1001@127.0.0.1:25071", nil
	}
	return "error/user_not_registered", nil
}

func (f *fakeFS) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

// fakePresence is a reachability map that only records what relay reports.
type fakePresence struct {
	mu       sync.Mutex
	ok       bool
	outcomes []presence.Outcome
}

func (p *fakePresence) Deliverable(string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok
}

func (p *fakePresence) ObserveSent(_ context.Context, _ string, o presence.Outcome, _ time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outcomes = append(p.outcomes, o)
	if o == presence.NotRegistered || o == presence.NoAnswer {
		p.ok = false
	}
	return nil
}

func (p *fakePresence) seen(o presence.Outcome) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range p.outcomes {
		if x == o {
			return true
		}
	}
	return false
}

func openStore(t *testing.T) *kv.Store {
	t.Helper()
	s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// enqueue stores n ready messages to 1001 with bodies "m0".."m{n-1}" in FreeSWITCH
// sequence order.
func enqueue(t *testing.T, s *kv.Store, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		m := &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1", ContentType: "text/plain",
			Body: []byte(fmt.Sprintf("m%d", i)), BodySource: kv.BodyQuery, CoreUUID: "core-a",
			EventSeq: uint64(100 + i), Received: time.Now().Add(-time.Second)}
		id, err := s.Enqueue(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.FinalizeBody(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// startRelayWith runs a Relay until the test ends, with any Sender and Presence.
func startRelayWith(t *testing.T, cfg Config, s Store, fs Sender, p Presence) *Relay {
	t.Helper()
	r := New(cfg, s, fs, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("relay did not stop")
		}
	})
	return r
}

func startRelay(t *testing.T, cfg Config, s *kv.Store, fs *fakeFS, p *fakePresence) *Relay {
	t.Helper()
	return startRelayWith(t, cfg, s, fs, p)
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func queued(t *testing.T, s *kv.Store) int {
	q, err := s.Queue("1001@127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(q)
}

func TestWindowOneDeliversEachOnceInOrder(t *testing.T) {
	s := openStore(t)
	enqueue(t, s, 50)
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) { return "Sent", nil }}
	r := startRelay(t, Config{Window: 1}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	got := fs.sent()
	if len(got) != 50 {
		t.Fatalf("sent %d chats, want 50", len(got))
	}
	for i, b := range got {
		if b != fmt.Sprintf("m%d", i) {
			t.Fatalf("chat %d carried %q, want m%d", i, b, i)
		}
	}
	if st := r.Stats(); st.Delivered != 50 || st.UncertainResends != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNothingSentWhileNotDeliverable(t *testing.T) {
	s := openStore(t)
	enqueue(t, s, 3)
	fs := &fakeFS{chat: func(int, string, string) (string, error) { return "Sent", nil }}
	p := &fakePresence{}
	r := startRelay(t, Config{}, s, fs, p)
	time.Sleep(100 * time.Millisecond)
	if n := len(fs.sent()); n != 0 {
		t.Fatalf("%d chats sent to an unreachable recipient", n)
	}
	p.mu.Lock()
	p.ok = true
	p.mu.Unlock()
	r.Wake("1001@127.0.0.1")
	waitUntil(t, "queue drained", 5*time.Second, func() bool { return queued(t, s) == 0 })
}

func TestRefusedMessageIsRetriedFirstThenDeadLettered(t *testing.T) {
	s := openStore(t)
	ids := enqueue(t, s, 3)
	// m0 is always refused (486 from a live phone); the rest are accepted.
	fs := &fakeFS{registered: true, chat: func(_ int, _, body string) (string, error) {
		if body == "m0" {
			return "-ERR Error! Message Not Sent\n", nil
		}
		return "Sent", nil
	}}
	p := &fakePresence{ok: true}
	r := startRelay(t, Config{Window: 1, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, DeadAfter: 3}, s, fs, p)
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	want := []string{"m0", "m0", "m0", "m1", "m2"}
	if got := fs.sent(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("chats %v, want %v (a failed message goes before anything newer)", got, want)
	}
	m, err := s.Get(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if m.State != kv.StateDead || m.Refusals != 3 || m.Attempts != 3 {
		t.Fatalf("m0: state %s refusals %d attempts %d", m.State, m.Refusals, m.Attempts)
	}
	if st := r.Stats(); st.DeadLettered != 1 || st.Refused != 3 || st.Delivered != 2 {
		t.Fatalf("stats %+v", st)
	}
	if !p.seen(presence.Refused) {
		t.Fatal("presence was not told about the refusals")
	}
}

func TestNotRegisteredKeepsMessageQueued(t *testing.T) {
	s := openStore(t)
	ids := enqueue(t, s, 2)
	fs := &fakeFS{chat: func(int, string, string) (string, error) { return "-ERR Error! Message Not Sent\n", nil }}
	p := &fakePresence{ok: true} // stale: FreeSWITCH has no registration
	r := startRelay(t, Config{DeadAfter: 1}, s, fs, p)
	waitUntil(t, "not registered", 5*time.Second, func() bool { return p.seen(presence.NotRegistered) })
	time.Sleep(50 * time.Millisecond)
	if n := queued(t, s); n != 2 {
		t.Fatalf("%d queued, want 2: a missing registration is no refusal", n)
	}
	m, _ := s.Get(ids[0])
	if m.State != kv.StateQueued || m.Refusals != 0 || m.InFlight != "" {
		t.Fatalf("m0 %+v", m)
	}
	if st := r.Stats(); st.DeadLettered != 0 || st.NotRegistered == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLostResultHoldsMessageForTimerFThenCountsTheResend(t *testing.T) {
	s := openStore(t)
	ids := enqueue(t, s, 1)
	var mu sync.Mutex
	var times []time.Time
	fs := &fakeFS{registered: true, chat: func(n int, _, _ string) (string, error) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if n == 0 {
			return "", fmt.Errorf("%w: connection dropped", ErrOutcomeUnknown)
		}
		return "Sent", nil
	}}
	const timerF = 300 * time.Millisecond
	r := startRelay(t, Config{TimerF: timerF}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "delivered", 5*time.Second, func() bool { return queued(t, s) == 0 })
	mu.Lock()
	gap := times[1].Sub(times[0])
	mu.Unlock()
	if gap < timerF-20*time.Millisecond { // the hold is computed from the send's start
		t.Fatalf("resent %v after a lost result, want >= Timer F %v", gap, timerF)
	}
	m, _ := s.Get(ids[0])
	if m.UncertainResends != 1 || m.State != kv.StateDelivered {
		t.Fatalf("message %+v", m)
	}
	if st := r.Stats(); st.UncertainResends != 1 || st.Unknown != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInFlightAtCrashIsResentAndCounted(t *testing.T) {
	s := openStore(t)
	ids := enqueue(t, s, 2)
	// A previous run began an attempt on ids[0] and died before its result.
	if _, err := s.BeginAttempt(context.Background(), ids[0], ids[0]+"-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) { return "Sent", nil }}
	r := startRelay(t, Config{}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "delivered", 5*time.Second, func() bool { return queued(t, s) == 0 })
	m, _ := s.Get(ids[0])
	if m.UncertainResends != 1 || m.Attempts != 2 {
		t.Fatalf("message %+v", m)
	}
	if st := r.Stats(); st.UncertainResends != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGlobalCapAndWindowBoundSendsInFlight(t *testing.T) {
	s := openStore(t)
	enqueue(t, s, 40)
	var mu sync.Mutex
	cur, peak := 0, 0
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		cur--
		mu.Unlock()
		return "Sent", nil
	}}
	startRelay(t, Config{Window: 8, MaxInFlight: 3}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "delivered", 10*time.Second, func() bool { return queued(t, s) == 0 })
	if peak > 3 {
		t.Fatalf("%d sends in flight, cap 3", peak)
	}
	if peak < 2 {
		t.Fatalf("peak %d: the window never overlapped sends", peak)
	}
	for i, b := range fs.sent() {
		if b != fmt.Sprintf("m%d", i) {
			t.Fatalf("chat %d started with %q: overlapping sends must still leave in queue order", i, b)
		}
	}
}

func TestShutdownWaitsForResultsThenLeavesTheRestInFlight(t *testing.T) {
	s := openStore(t)
	ids := enqueue(t, s, 1)
	started := make(chan context.Context, 1)
	fs := &fakeFS{registered: true, block: started}
	r := New(Config{DrainTimeout: 100 * time.Millisecond}, s, fs, &fakePresence{ok: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	ctxSeen := <-started
	cancel()
	start := time.Now()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("Run returned after %v, before the drain timeout, with a send in flight", took)
	}
	if ctxSeen.Err() == nil {
		t.Fatal("the send's context was not cancelled after the drain timeout")
	}
	m, _ := s.Get(ids[0])
	if m.State != kv.StateQueued || m.InFlight == "" {
		t.Fatalf("state %s in flight %q, want queued and still marked in flight", m.State, m.InFlight)
	}
}

func TestNoAnswerWaitsForLifeAndTimerFAndCountsTheResend(t *testing.T) {
	s := openStore(t)
	ids := enqueue(t, s, 2)
	var mu sync.Mutex
	var times []time.Time
	fs := &fakeFS{registered: true, chat: func(n int, _, _ string) (string, error) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if n == 0 {
			time.Sleep(60 * time.Millisecond) // FreeSWITCH's ≈20 s give-up, shortened
			return "-ERR Error! Message Not Sent\n", nil
		}
		return "Sent", nil
	}}
	p := &fakePresence{ok: true}
	const timerF = 400 * time.Millisecond
	r := startRelay(t, Config{Window: 1, NoAnswerAfter: 50 * time.Millisecond, TimerF: timerF}, s, fs, p)
	waitUntil(t, "no answer", 5*time.Second, func() bool { return p.seen(presence.NoAnswer) })
	time.Sleep(100 * time.Millisecond)
	if n := len(fs.sent()); n != 1 {
		t.Fatalf("%d chats to a recipient that did not answer, want 1", n)
	}
	// A sign of life (REGISTER) before Timer F: still no resend until Timer F.
	p.mu.Lock()
	p.ok = true
	p.mu.Unlock()
	r.Wake("1001@127.0.0.1")
	waitUntil(t, "delivered", 5*time.Second, func() bool { return queued(t, s) == 0 })
	mu.Lock()
	gap := times[1].Sub(times[0])
	mu.Unlock()
	if gap < timerF-20*time.Millisecond {
		t.Fatalf("resent %v after the first send, before Timer F %v", gap, timerF)
	}
	if got := fs.sent(); strings.Join(got, ",") != "m0,m0,m1" {
		t.Fatalf("chats %v", got)
	}
	m, _ := s.Get(ids[0])
	if m.UncertainResends != 1 || m.Refusals != 0 {
		t.Fatalf("message %+v", m)
	}
}

func TestYoungMessageWaitsForTheSettleTime(t *testing.T) {
	s := openStore(t)
	m := &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1", Body: []byte("fresh"),
		BodySource: kv.BodyQuery, CoreUUID: "core-a", EventSeq: 1}
	if _, err := s.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinalizeBody(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	var sentAt time.Time
	var mu sync.Mutex
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) {
		mu.Lock()
		sentAt = time.Now()
		mu.Unlock()
		return "Sent", nil
	}}
	const settle = 200 * time.Millisecond
	r := startRelay(t, Config{Settle: settle}, s, fs, &fakePresence{ok: true})
	r.Wake(m.To)
	waitUntil(t, "delivered", 5*time.Second, func() bool { return queued(t, s) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if d := sentAt.Sub(m.Received); d < settle {
		t.Fatalf("sent %v after intake, before the settle time %v", d, settle)
	}
}
