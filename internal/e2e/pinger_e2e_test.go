package e2e

// sipsilo's own pinger, probe before delivery and the
// direct path, against the binary, the FreeSWITCH emulator, sipp phones from
// Debian's sip-tester and sipgo user agents, all on 127.0.0.1.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/sipptest"
	"github.com/sipsilo/sipsilo/kv"
)

// users are the directory: 1000–1003 as in the recorded FreeSWITCH runs plus 2000–2019 for phones.
func users() map[string]string {
	u := map[string]string{}
	for i := 1000; i <= 1003; i++ {
		u[fmt.Sprint(i)] = "1234"
	}
	for i := 2000; i < 2020; i++ {
		u[fmt.Sprint(i)] = "1234"
	}
	return u
}

// phoneAs registers a sipp phone as user through the emulator: a UA of user's
// registers the phone's contact (a third-party registration), and the switch,
// like sofia, then sends to that contact.
func phoneAs(t testing.TB, r *rig, user string, opts sipptest.Options) (*sipptest.Phone, *fsemu.UA) {
	t.Helper()
	ph := sipptest.Start(t, opts)
	ua, err := fsemu.NewUA(fsemu.UAOptions{User: user, Password: "1234", Switch: r.sw.SIPAddr(), Contact: ph.Contact(user)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close() })
	register(t, ua)
	return ph, ua
}

// flushTimes watches the switch for flush_inbound_reg requests and records when
// each argument was first seen.
type flushTimes struct {
	mu   sync.Mutex
	seen map[string]time.Time
	stop chan struct{}
	done chan struct{}
}

func watchFlushes(t testing.TB, sw *fsemu.Switch) *flushTimes {
	f := &flushTimes{seen: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
				now := time.Now()
				f.mu.Lock()
				for _, arg := range sw.Flushes() {
					if _, ok := f.seen[arg]; !ok {
						f.seen[arg] = now
					}
				}
				f.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(f.stop); <-f.done })
	return f
}

func (f *flushTimes) at(arg string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.seen[arg]
	return at, ok
}

func callIDOf(t testing.TB, sw *fsemu.Switch, user string) string {
	t.Helper()
	for _, reg := range sw.Registrations() {
		if reg.User == user {
			return reg.CallID
		}
	}
	t.Fatalf("%s not registered", user)
	return ""
}

// waitPinged waits until sipsilo's pinger has reached ph at least once.
func waitPinged(t testing.TB, ph *sipptest.Phone, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(ph.Requests("OPTIONS")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the pinger did not reach %s within %v", ph.Addr(), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSilentPhoneDetectedAndFlushed: 20 sipp phones go silent (SIGSTOP: the port
// stays open, nothing answers) at random points of the 5 s ping cycle; each must
// be found unreachable and flushed from FreeSWITCH within interval + deadline +
// re-probe, ≤ 7 s at the defaults for the 95th percentile. A message sent to one
// of them while silent is kept and delivered once it is back.
func TestSilentPhoneDetectedAndFlushed(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{Users: users()}, "--log-level", "info")
	flushes := watchFlushes(t, r.sw)
	alice := r.ua("1000")
	register(t, alice)
	const n = 20
	phones := make([]*sipptest.Phone, n)
	uas := make([]*fsemu.UA, n)
	for i := range n {
		phones[i], uas[i] = phoneAs(t, r, fmt.Sprint(2000+i), sipptest.Options{})
	}
	for _, ph := range phones {
		waitPinged(t, ph, 10*time.Second)
	}
	callIDs := make([]string, n)
	for i := range n {
		callIDs[i] = callIDOf(t, r.sw, fmt.Sprint(2000+i))
	}

	// Silence each at a random point of the next 5 s.
	silenced := make([]time.Time, n)
	var wg sync.WaitGroup
	for i, ph := range phones {
		wg.Go(func() {
			time.Sleep(time.Duration(rand.Int64N(int64(5 * time.Second))))
			ph.Silence()
			silenced[i] = time.Now()
		})
	}
	wg.Wait()
	// A message to 2000, sent while it is silent and perhaps not yet detected.
	send(t, alice, "2000", "sent into the silence")

	var lat []time.Duration
	deadline := time.Now().Add(15 * time.Second)
	for i := range n {
		for {
			if at, ok := flushes.at(callIDs[i]); ok {
				lat = append(lat, at.Sub(silenced[i]))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("phone %d (call-id %s) not flushed 15 s after going silent", i, callIDs[i])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	p95 := lat[len(lat)*95/100-1]
	t.Logf("silent → flushed: min %v, median %v, p95 %v, max %v", lat[0], lat[n/2], p95, lat[n-1])
	if p95 > 7*time.Second {
		t.Errorf("p95 detection %v, goal ≤ 7 s (interval 5 s + deadline 1 s + re-probe 1 s)", p95)
	}

	// The message waits; when the phone is back and registers, it arrives once.
	if got := phones[0].Messages(); len(got) != 0 {
		t.Fatalf("a silent phone answered %d messages", len(got))
	}
	phones[0].Resume()
	register(t, uas[0])
	got := phones[0].WaitMessages(1, 10*time.Second)
	if len(got) == 0 || string(got[0].Body) != "sent into the silence" {
		t.Fatalf("after the phone came back: %+v", got)
	}
	time.Sleep(500 * time.Millisecond)
	r.stop()
	m := r.messages()["sent into the silence"]
	if m == nil || m.State != kv.StateDelivered {
		t.Fatalf("stored %+v", m)
	}
	// SIGSTOP keeps datagrams queued in the kernel, so the resumed phone may also
	// answer a send made while it was stopped: that is the one duplicate allowed,
	// and it must have been counted.
	if extra := len(phones[0].Messages()) - 1; extra > m.UncertainResends {
		t.Fatalf("%d duplicates, %d counted", extra, m.UncertainResends)
	}
}

// TestPhonesAnsweringOptionsWithErrorsStayReachable: 404, 405 and 501 to OPTIONS
// still prove a device is there (docs/decisions.md §6).
func TestPhonesAnsweringOptionsWithErrorsStayReachable(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{Users: users()}, "--ping-interval", "300ms", "--log-level", "info")
	alice := r.ua("1000")
	register(t, alice)
	codes := []int{404, 405, 501}
	phones := make([]*sipptest.Phone, len(codes))
	for i, code := range codes {
		phones[i], _ = phoneAs(t, r, fmt.Sprint(2000+i), sipptest.Options{OptionsAnswer: code})
	}
	time.Sleep(2 * time.Second) // several ping cycles
	for i, ph := range phones {
		if n := len(ph.Requests("OPTIONS")); n < 3 {
			t.Fatalf("phone answering %d got %d OPTIONS", codes[i], n)
		}
		send(t, alice, fmt.Sprint(2000+i), fmt.Sprintf("to a phone answering %d", codes[i]))
	}
	for i, ph := range phones {
		got := ph.WaitMessages(1, 5*time.Second)
		if len(got) != 1 {
			t.Fatalf("phone answering OPTIONS with %d received %d messages", codes[i], len(got))
		}
	}
	if f := r.sw.Flushes(); len(f) != 0 {
		t.Fatalf("live phones flushed: %v", f)
	}
	if strings.Contains(r.proc.log(), "unreachable") {
		t.Fatalf("a phone answering OPTIONS was called unreachable:\n%s", r.proc.log())
	}
}

// TestVanishedPhoneIsProbedNotRetriedBlindly: a phone gone silent a second ago is
// not handed to FreeSWITCH's chat (which would retransmit at it for 20 s and
// hold a thread); the message is kept and delivered when the phone is back.
func TestVanishedPhoneIsProbedNotRetriedBlindly(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{Users: users()}, "--log-level", "info")
	alice := r.ua("1000")
	register(t, alice)
	ph, ua := phoneAs(t, r, "2000", sipptest.Options{})
	waitPinged(t, ph, 10*time.Second)
	ph.Silence()
	time.Sleep(time.Second)
	send(t, alice, "2000", "are you there?")
	time.Sleep(6 * time.Second) // past the probe, the direct path's wait and detection
	if c := r.sw.Chats(); c != 0 {
		t.Fatalf("%d chats sent through FreeSWITCH to a phone that stopped answering", c)
	}
	ph.Resume()
	register(t, ua)
	got := ph.WaitMessages(1, 10*time.Second)
	if len(got) == 0 || string(got[0].Body) != "are you there?" {
		t.Fatalf("after the phone came back: %+v", got)
	}
	time.Sleep(500 * time.Millisecond)
	r.stop()
	m := r.messages()["are you there?"]
	if m == nil || m.State != kv.StateDelivered {
		t.Fatalf("stored %+v", m)
	}
	if extra := len(ph.Messages()) - 1; extra > m.UncertainResends {
		t.Fatalf("%d duplicates, %d counted", extra, m.UncertainResends)
	}
}

// TestDirectPathDrainsInOrder: 1,000 queued for an offline user, who registers a
// phone that answers sipsilo's OPTIONS: all go the direct path, in order, each
// confirmed by the phone's own 200, none through FreeSWITCH's chat.
func TestDirectPathDrainsInOrder(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, "--log-level", "info")
	const n = 1000
	bob, in := queueOffline(t, r, n)
	register(t, bob)
	got := in.waitCount(t, n, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	got = in.all()
	if len(got) != n || len(counts(got)) != n {
		t.Fatalf("received %d, %d distinct, want %d once each", len(got), len(counts(got)), n)
	}
	if inv := inversions(got); inv != 0 {
		t.Fatalf("%d inversions", inv)
	}
	for _, m := range got[:3] {
		if m.Header("Date") == "" || !strings.Contains(m.From, "sip:1000@127.0.0.1") {
			t.Fatalf("direct MESSAGE without the sender or its time: From %q Date %q", m.From, m.Header("Date"))
		}
	}
	if c := r.sw.Chats(); c != 0 {
		t.Fatalf("%d of %d went through FreeSWITCH", c, n)
	}
	r.stop()
	for _, m := range r.messages() {
		if m.State != kv.StateDelivered || !strings.HasPrefix(m.LastResult, "SIP 2") {
			t.Fatalf("message %q: %s, last result %q", m.Body, m.State, m.LastResult)
		}
	}
}
