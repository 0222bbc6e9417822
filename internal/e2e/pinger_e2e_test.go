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

// phoneAs registers a sipp phone as user on the switch at sipAddr (the
// emulator or FreeSWITCH): a UA of user's registers the phone's contact (a
// third-party registration), and the switch, like sofia, then sends to that
// contact.
func phoneAs(t testing.TB, sipAddr, user string, opts sipptest.Options) (*sipptest.Phone, *fsemu.UA) {
	t.Helper()
	ph := sipptest.Start(t, opts)
	ua, err := fsemu.NewUA(fsemu.UAOptions{User: user, Password: "1234", Switch: sipAddr, Contact: ph.Contact(user)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close() })
	registerOn(t, ua)
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

// silenceAtRandom silences each phone (SIGSTOP) at a random point of the next
// span and returns when each went silent.
func silenceAtRandom(phones []*sipptest.Phone, span time.Duration) []time.Time {
	silenced := make([]time.Time, len(phones))
	var wg sync.WaitGroup
	for i, ph := range phones {
		wg.Go(func() {
			time.Sleep(time.Duration(rand.Int64N(int64(span))))
			ph.Silence()
			silenced[i] = time.Now()
		})
	}
	wg.Wait()
	return silenced
}

// flushLatencies waits until the switch was asked to flush each registration
// (by call-id) and returns, in phone order, the time from each phone's silence
// to its flush; a phone not flushed within the bound fails t.
func flushLatencies(t testing.TB, flushes *flushTimes, callIDs []string, silenced []time.Time, within time.Duration) []time.Duration {
	t.Helper()
	lat := make([]time.Duration, 0, len(callIDs))
	deadline := time.Now().Add(within)
	for i, id := range callIDs {
		for {
			if at, ok := flushes.at(id); ok {
				lat = append(lat, at.Sub(silenced[i]))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("phone %d (call-id %s) not flushed %v after the silences began", i, id, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return lat
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
// re-probe, ≤ 7 s at the defaults for the 95th percentile. (A message sent to
// a silent phone, kept and delivered once it is back, is the table's
// silent_phone in realfs_delivery_test.go, on both switches.)
func TestSilentPhoneDetectedAndFlushed(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{Users: users()}, "--log-level", "info")
	flushes := watchFlushes(t, r.sw)
	const n = 20
	phones := make([]*sipptest.Phone, n)
	for i := range n {
		phones[i], _ = phoneAs(t, r.sw.SIPAddr(), fmt.Sprint(2000+i), sipptest.Options{})
	}
	for _, ph := range phones {
		waitPinged(t, ph, 10*time.Second)
	}
	callIDs := make([]string, n)
	for i := range n {
		callIDs[i] = callIDOf(t, r.sw, fmt.Sprint(2000+i))
	}

	silenced := silenceAtRandom(phones, 5*time.Second)
	lat := flushLatencies(t, flushes, callIDs, silenced, 15*time.Second)
	slices.Sort(lat)
	p95 := lat[len(lat)*95/100-1]
	t.Logf("silent → flushed: min %v, median %v, p95 %v, max %v", lat[0], lat[n/2], p95, lat[n-1])
	if p95 > 7*time.Second {
		t.Errorf("p95 detection %v, goal ≤ 7 s (interval 5 s + deadline 1 s + re-probe 1 s)", p95)
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
		phones[i], _ = phoneAs(t, r.sw.SIPAddr(), fmt.Sprint(2000+i), sipptest.Options{OptionsAnswer: code})
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
	ph, ua := phoneAs(t, r.sw.SIPAddr(), "2000", sipptest.Options{})
	waitPinged(t, ph, 10*time.Second)
	ph.Silence()
	time.Sleep(time.Second)
	send(t, alice, "2000", "are you there?")
	time.Sleep(6 * time.Second) // past the probe, the direct path's wait and detection
	if c := r.sw.Chats(); c != 0 {
		t.Fatalf("%d chats sent through FreeSWITCH to a phone that stopped answering", c)
	}
	deliveredWhenBack(t, r, ph, ua, "are you there?")
}

// deliveredWhenBack resumes a silenced phone and registers it again: body,
// kept meanwhile, must arrive. Then sipsilo is stopped and the message must be
// stored delivered, any duplicate counted: SIGSTOP keeps datagrams queued in
// the kernel, so the resumed phone may answer a send made while it was stopped.
func deliveredWhenBack(t testing.TB, r *rig, ph *sipptest.Phone, ua *fsemu.UA, body string) {
	t.Helper()
	ph.Resume()
	registerOn(t, ua)
	got := ph.WaitMessages(1, 15*time.Second)
	if len(got) == 0 || string(got[0].Body) != body {
		t.Fatalf("after the phone came back: %+v", got)
	}
	time.Sleep(500 * time.Millisecond)
	r.stop()
	m := r.messages()[body]
	if m == nil || m.State != kv.StateDelivered {
		t.Fatalf("stored %+v", m)
	}
	if extra := len(ph.Messages()) - 1; extra > m.UncertainResends {
		t.Fatalf("%d duplicates, %d counted", extra, m.UncertainResends)
	}
}
