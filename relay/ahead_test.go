package relay

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// holdStore is a kv.Store whose Delivered can be held or failed by the test.
type holdStore struct {
	*kv.Store
	delivered func(id string) error // runs before the real write; an error is returned instead
}

func (s *holdStore) Delivered(ctx context.Context, id, attempt, result string) error {
	if err := s.delivered(id); err != nil {
		return err
	}
	return s.Store.Delivered(ctx, id, attempt, result)
}

func openStoreJournal(t *testing.T, journal bool) *kv.Store {
	t.Helper()
	s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{Journal: journal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func startRelayStore(t *testing.T, cfg Config, st Store, p *fakePresence) *Relay {
	t.Helper()
	return startRelayWith(t, cfg, st, &fakeFS{registered: true}, p)
}

// checkedDirect is a fakeDirect that checks, as each MESSAGE leaves, that its
// attempt is already recorded in the store (docs/decisions.md §1: the begun
// record is what counts a possible duplicate after a crash).
func checkedDirect(t *testing.T, s *kv.Store, status func(n int, body string) (int, error)) *fakeDirect {
	d := &fakeDirect{ok: true}
	d.status = func(n int) (int, error) {
		d.mu.Lock()
		body := d.bodies[n]
		d.mu.Unlock()
		return status(n, body)
	}
	d.check = func(m *kv.Message) {
		got, err := s.Get(m.ID)
		if err != nil || got.InFlight == "" || got.Attempts == 0 {
			t.Errorf("%s left with no attempt recorded: %+v, %v", m.Body, got, err)
		}
	}
	return d
}

// A direct send that fails halts the window: the messages whose attempt was
// begun ahead of it are not sent, their attempts end as not sent (no uncertain
// resend later), and the failed message goes out again before any of them.
func TestDirectSendsBegunAheadStopAtAFailure(t *testing.T) {
	for _, journal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journal=%v", journal), func(t *testing.T) {
			s := openStoreJournal(t, journal)
			ids := enqueue(t, s, 12)
			if err := s.Sync(context.Background()); err != nil { // relay's start-up scan reads bbolt
				t.Fatal(err)
			}
			first := true
			d := checkedDirect(t, s, func(n int, body string) (int, error) {
				if body == "m0" && first {
					first = false
					return 486, nil
				}
				return 200, nil
			})
			r := startRelayStore(t, Config{Window: 4, DirectWindow: 1, Direct: d, DeadAfter: 3,
				RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}, s, &fakePresence{ok: true})
			waitUntil(t, "delivered", 10*time.Second, func() bool { return queued(t, s) == 0 })
			want := []string{"m0", "m0"}
			for i := 1; i < 12; i++ {
				want = append(want, fmt.Sprintf("m%d", i))
			}
			if got := d.sent(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("the phone got %q, want %q", got, want)
			}
			for i, id := range ids {
				m, err := s.Get(id)
				if err != nil {
					t.Fatal(err)
				}
				if m.State != kv.StateDelivered || m.UncertainResends != 0 || m.InFlight != "" {
					t.Fatalf("m%d: %+v", i, m)
				}
			}
			if st := r.Stats(); st.UncertainResends != 0 || st.Refused != 1 || st.Delivered != 12 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// The window's place is given back at the device's 2xx, not once its Delivered
// record is durable: the next MESSAGE leaves while that record is still being
// written. A record that fails leaves the message queued, and it is sent again.
func TestDirectWindowFreedAtTheAnswerNotAtTheRecord(t *testing.T) {
	for _, journal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journal=%v", journal), func(t *testing.T) {
			s := openStoreJournal(t, journal)
			ids := enqueue(t, s, 6)
			if err := s.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			sent := map[string]int{}
			m1Sent := make(chan struct{})
			d := checkedDirect(t, s, func(n int, body string) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				sent[body]++
				if body == "m1" && sent[body] == 1 {
					close(m1Sent)
				}
				return 200, nil
			})
			failed := false
			hs := &holdStore{Store: s, delivered: func(id string) error {
				if id != ids[0] {
					return nil
				}
				mu.Lock()
				again := failed
				failed = true
				mu.Unlock()
				if again {
					return nil
				}
				select {
				case <-m1Sent:
				case <-time.After(5 * time.Second):
					t.Error("m1 was not sent while m0's record was being written")
				}
				return errors.New("disk says no")
			}}
			r := startRelayStore(t, Config{Window: 4, DirectWindow: 1, Direct: d,
				RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}, hs, &fakePresence{ok: true})
			waitUntil(t, "delivered", 10*time.Second, func() bool { return queued(t, s) == 0 })
			mu.Lock()
			defer mu.Unlock()
			if sent["m0"] != 2 {
				t.Fatalf("m0 sent %d times, want 2 (its first record failed)", sent["m0"])
			}
			for i := 1; i < 6; i++ {
				if n := sent[fmt.Sprintf("m%d", i)]; n != 1 {
					t.Fatalf("m%d sent %d times", i, n)
				}
			}
			if st := r.Stats(); st.StoreErrors == 0 {
				t.Fatalf("stats %+v: the failed record is not counted", st)
			}
		})
	}
}

// A shutdown lets the sends on the wire finish and record their result, but
// sends none of the attempts begun ahead: they end as not sent, so that the
// next run sends them without counting them as uncertain.
func TestShutdownSendsNothingBegunAhead(t *testing.T) {
	s := openStoreJournal(t, true)
	ids := enqueue(t, s, 8)
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	release, first := make(chan struct{}), make(chan struct{})
	d := checkedDirect(t, s, func(n int, body string) (int, error) {
		if n == 0 {
			close(first)
			<-release
		}
		return 200, nil
	})
	r := New(Config{Window: 4, DirectWindow: 1, Direct: d}, s, &fakeFS{registered: true}, &fakePresence{ok: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing sent")
	}
	// Wait until the attempts ahead are begun, then stop while m0 awaits its answer.
	waitUntil(t, "attempts begun ahead", 10*time.Second, func() bool {
		m, err := s.Get(ids[4])
		return err == nil && m.InFlight != ""
	})
	cancel()
	// The stop reaches the worker (its drain halts the wire) while m0 is out; a
	// worker slower than this fails the test, it cannot pass it wrongly.
	time.Sleep(200 * time.Millisecond)
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not stop")
	}
	if got := d.sent(); len(got) != 1 || got[0] != "m0" {
		t.Fatalf("sent %q during the shutdown, want only m0", got)
	}
	for i, id := range ids {
		m, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i == 0 && m.State != kv.StateDelivered:
			t.Fatalf("m0 %+v: its answer came during the shutdown", m)
		case i > 0 && (m.State != kv.StateQueued || m.InFlight != ""):
			t.Fatalf("m%d %+v: begun ahead, not sent, must be queued and not in flight", i, m)
		}
	}
}

// refusingDeviceDirect reaches device "a:1" directly; its answer to each copy
// comes from status.
type refusingDeviceDirect struct {
	deviceDirect
	status func(body string, n int) int // n: how often this body was sent
}

func (d *refusingDeviceDirect) SendDevice(_ context.Context, m *kv.Message, key string) (func(context.Context) (int, error), bool, error) {
	if key != "a:1" {
		return nil, false, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bodies = append(d.bodies, string(m.Body))
	code := d.status(string(m.Body), countOf(d.bodies, string(m.Body)))
	return func(context.Context) (int, error) { return code, nil }, true, nil
}

// A device lane on the direct path begins its copies ahead too, once its
// device confirmed one, and halts them the same way: after a refusal the
// device gets the refused copy again before any later one.
func TestDeviceLaneHaltsCopiesBegunAhead(t *testing.T) {
	s := openStore(t)
	enqueueCopies(t, s, 10, "a:1", "b:2")
	fs := newRouteFS(func(string, string) string { return "Sent" })
	direct := &refusingDeviceDirect{status: func(body string, n int) int {
		if body == "c3" && n == 1 {
			return 486
		}
		return 200
	}}
	cfg := Config{Window: 4, DirectWindow: 2, Devices: newFakeDevices("a:1", "b:2"), Direct: direct,
		RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}
	startRelayWith(t, cfg, s, fs, &fakePresence{ok: true})
	waitUntil(t, "every copy delivered", 10*time.Second, func() bool { return queued(t, s) == 0 })
	got := direct.sent()
	// c3 was refused; with two on the wire c4 may have left beside it, but
	// nothing begun ahead behind them goes before c3 is sent again.
	first := slices.Index(got, "c3")
	again := first + 1 + slices.Index(got[first+1:], "c3")
	if first < 0 || again <= first {
		t.Fatalf("device a got %q: c3 not sent twice", got)
	}
	for _, b := range got[first+1 : again] {
		if b != "c4" {
			t.Fatalf("device a got %q: %s left between the refused c3 and its resend", got, b)
		}
	}
	if n := len(got); n != 11 {
		t.Fatalf("device a got %q: want each copy once and c3 twice", got)
	}
	if b := fs.to("internal/sip:1001@b:2"); strings.Join(b, ",") != bodies("c", 0, 10) {
		t.Fatalf("device b got %q", b)
	}
}
