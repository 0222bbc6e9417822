package relay

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

const service = "sipsilo@127.0.0.1"

// chatLog records every chat's from, to and body, then lets fakeFS decide.
type chatLog struct {
	*fakeFS
	mu    sync.Mutex
	chats [][3]string
}

func (c *chatLog) StartJob(ctx context.Context, cmd, args, job string) (Job, error) {
	p := splitChatArgs(args, 5)
	if len(p) == 5 {
		c.mu.Lock()
		c.chats = append(c.chats, [3]string{p[1], p[2], p[3]})
		c.mu.Unlock()
	}
	return c.fakeFS.StartJob(ctx, cmd, args, job)
}

// to returns the chats sent to addr.
func (c *chatLog) to(addr string) [][3]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][3]string
	for _, x := range c.chats {
		if x[1] == addr {
			out = append(out, x)
		}
	}
	return out
}

func openTTL(t *testing.T, ttl time.Duration) *kv.Store {
	t.Helper()
	s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// put stores one ready message.
func put(t *testing.T, s *kv.Store, from, to, body string, received, expires time.Time) *kv.Message {
	t.Helper()
	m := &kv.Message{From: from, To: to, ContentType: "text/plain", Body: []byte(body),
		BodySource: kv.BodyAPI, BodyFinal: true, Received: received, Expires: expires}
	if _, err := s.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func state(t *testing.T, s *kv.Store, id string) kv.State {
	t.Helper()
	m, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return m.State
}

func TestExpiredMessageIsNeverSent(t *testing.T) {
	s := openTTL(t, time.Hour)
	now := time.Now()
	// Its own expiry passed a moment ago; at one second old the sweep does not
	// look at it, so this is the check before the send.
	m := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "too late", now.Add(-time.Second), now.Add(-time.Millisecond))
	next := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "in time", now.Add(-time.Second), time.Time{})
	fs := &chatLog{fakeFS: &fakeFS{registered: true, chat: func(int, string, string) (string, error) { return "Sent", nil }}}
	r := startRelayWith(t, Config{Notices: NoticeConfig{From: service, Expired: true}}, s, fs, &fakePresence{ok: true})
	waitUntil(t, "queue drained", 10*time.Second, func() bool { return queued(t, s) == 0 })
	if got := fs.to("1001@127.0.0.1"); len(got) != 1 || got[0][2] != "in time" {
		t.Fatalf("sent %q, want only the message in time", got)
	}
	if st := state(t, s, m.ID); st != kv.StateExpired {
		t.Fatalf("expired message is %s", st)
	}
	if st := state(t, s, next.ID); st != kv.StateDelivered {
		t.Fatalf("next message is %s", st)
	}
	waitUntil(t, "expired notice", 5*time.Second, func() bool { return len(fs.to("1000@127.0.0.1")) == 1 })
	n := fs.to("1000@127.0.0.1")[0]
	if n[0] != service || !strings.Contains(n[2], "1001@127.0.0.1") || !strings.Contains(n[2], "expired") ||
		strings.Contains(n[2], "too late") {
		t.Fatalf("notice %q", n)
	}
	if st := r.Stats(); st.Expired != 1 || st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSweepExpiresQueuesOfRecipientsWhoNeverComeBack(t *testing.T) {
	s := openTTL(t, time.Hour)
	old := time.Now().Add(-2 * time.Hour)
	var ids []string
	for _, from := range []string{"1000@127.0.0.1", service, "1002@127.0.0.1"} {
		ids = append(ids, put(t, s, from, "1001@127.0.0.1", "x", old, time.Time{}).ID)
	}
	toService := put(t, s, "1000@127.0.0.1", service, "x", old, time.Time{})
	fresh := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "fresh", time.Now(), time.Time{})
	fs := &chatLog{fakeFS: &fakeFS{chat: func(int, string, string) (string, error) { return "Sent", nil }}}
	r := startRelayWith(t, Config{Notices: NoticeConfig{From: service, Expired: true, Stored: true}},
		s, fs, &fakePresence{ok: false})
	waitUntil(t, "sweep at start", 5*time.Second, func() bool { return r.Stats().Expired == 4 })
	for _, id := range append(ids, toService.ID) {
		if st := state(t, s, id); st != kv.StateExpired {
			t.Fatalf("%s is %s", id, st)
		}
	}
	if st := state(t, s, fresh.ID); st != kv.StateQueued {
		t.Fatalf("fresh message is %s", st)
	}
	waitUntil(t, "notices", 5*time.Second, func() bool { return r.Stats().Notices == 2 })
	time.Sleep(100 * time.Millisecond) // a notice that should not go would go now
	// One notice each to 1000 and 1002; none to the service address, none about
	// the message to it, and nothing else sent at all.
	if len(fs.to("1000@127.0.0.1")) != 1 || len(fs.to("1002@127.0.0.1")) != 1 || len(fs.to(service)) != 0 {
		t.Fatalf("chats %q", fs.chats)
	}
	if len(fs.chats) != 2 {
		t.Fatalf("%d chats, want the 2 notices", len(fs.chats))
	}
	m, _ := s.Get(ids[0])
	if len(m.Notices) != 1 || m.Notices[0] != kv.NoticeExpired {
		t.Fatalf("notices recorded %v", m.Notices)
	}
}

func TestStoredNoticeOnceWhenRecipientIsAwayOrFirstAttemptFails(t *testing.T) {
	s := openTTL(t, time.Hour)
	fs := &chatLog{fakeFS: &fakeFS{chat: func(_ int, to, _ string) (string, error) {
		if to == "1000@127.0.0.1" {
			return "Sent", nil // the notice
		}
		return "-ERR Error! Message Not Sent", nil
	}}}
	p := &fakePresence{ok: false}
	r := startRelayWith(t, Config{Notices: NoticeConfig{From: service, Stored: true}, RetryMin: time.Hour}, s, fs, p)

	away := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "away", time.Now(), time.Time{})
	r.Stored(away)
	r.Stored(away) // told twice: still one notice
	fromService := put(t, s, service, "1001@127.0.0.1", "from the service", time.Now(), time.Time{})
	r.Stored(fromService)
	waitUntil(t, "stored notice", 5*time.Second, func() bool { return r.Stats().Notices == 1 })

	// The recipient seems reachable, but the first attempt fails: a notice for
	// the message whose sender had none yet, not a second one for "away".
	p.mu.Lock()
	p.ok = true
	p.mu.Unlock()
	first := put(t, s, "1002@127.0.0.1", "1003@127.0.0.1", "first attempt fails", time.Now(), time.Time{})
	r.Wake(first.To)
	waitUntil(t, "notice after a failed attempt", 10*time.Second, func() bool { return len(fs.to("1002@127.0.0.1")) == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(fs.to("1000@127.0.0.1")); n != 1 {
		t.Fatalf("%d stored notices to 1000, want 1", n)
	}
	if n := len(fs.to(service)); n != 0 {
		t.Fatalf("%d notices to the service address", n)
	}
	m, _ := s.Get(first.ID)
	if len(m.Notices) != 1 || m.Notices[0] != kv.NoticeStored || !strings.Contains(fs.to("1002@127.0.0.1")[0][2], "stored") {
		t.Fatalf("notices %v, chats %q", m.Notices, fs.to("1002@127.0.0.1"))
	}
}

func TestRetryDropsBackoffAndRefusesTimerFWithoutForce(t *testing.T) {
	s := openTTL(t, 0)
	var mu sync.Mutex
	result := "-ERR Error! Message Not Sent"
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return result, nil
	}}
	p := &fakePresence{ok: true}
	r := startRelay(t, Config{RetryMin: time.Hour, RetryMax: time.Hour}, s, fs, p)
	m := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "refused once", time.Now(), time.Time{})
	r.Wake(m.To)
	waitUntil(t, "refusal's backoff", 5*time.Second, func() bool {
		_, held := r.holds.queueHold(m.To, time.Now())
		return held
	})
	mu.Lock()
	result = "Sent"
	mu.Unlock()
	// An hour's backoff: only the operator's retry sends it now.
	res, err := r.Retry(m.To, "", false)
	if err != nil || !res.Backoff || !res.Deliverable {
		t.Fatalf("retry: %+v %v", res, err)
	}
	waitUntil(t, "delivery after retry", 5*time.Second, func() bool { return state(t, s, m.ID) == kv.StateDelivered })

	// A send whose result was lost is held for Timer F. (Not deliverable while
	// it is set up, so that the worker cannot send it before the hold.)
	p.mu.Lock()
	p.ok = false
	p.mu.Unlock()
	held := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "held", time.Now(), time.Time{})
	r.holds.holdMessage(held.ID, held.To, time.Now().Add(time.Hour))
	p.mu.Lock()
	p.ok = true
	p.mu.Unlock()
	r.Wake(held.To)
	res, err = r.Retry(held.To, held.ID, false)
	if !errors.Is(err, ErrTimerF) || len(res.TimerF) != 1 || res.TimerF[0] != held.ID {
		t.Fatalf("retry without force: %+v %v", res, err)
	}
	time.Sleep(100 * time.Millisecond)
	if st := state(t, s, held.ID); st != kv.StateQueued {
		t.Fatalf("held message is %s before the forced retry", st)
	}
	if _, err := r.Retry(held.To, held.ID, true); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "forced delivery", 5*time.Second, func() bool { return state(t, s, held.ID) == kv.StateDelivered })
}

func TestPurgedMessageIsNotSent(t *testing.T) {
	s := openTTL(t, 0)
	fs := &fakeFS{registered: true, chat: func(int, string, string) (string, error) { return "Sent", nil }}
	p := &fakePresence{ok: false}
	r := startRelay(t, Config{}, s, fs, p)
	a := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "purged", time.Now(), time.Time{})
	b := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "kept", time.Now(), time.Time{})
	if _, err := s.Purge(context.Background(), a.ID, "operator"); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ok = true
	p.mu.Unlock()
	r.Wake(a.To)
	waitUntil(t, "delivery", 5*time.Second, func() bool { return state(t, s, b.ID) == kv.StateDelivered })
	if got := fs.sent(); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("sent %q", got)
	}
}

// Beside a switch that cannot confirm a delivery (DirectOnly), notices go over
// the direct path, confirmed by the sender's device, never through the switch.
func TestNoticesGoDirectBesideASwitchThatCannotConfirm(t *testing.T) {
	s := openTTL(t, time.Hour)
	fs := &chatLog{fakeFS: &fakeFS{chat: func(int, string, string) (string, error) { return "Sent", nil }}}
	d := &fakeDirect{ok: true, status: func(int) (int, error) { return 200, nil }}
	r := startRelayWith(t, Config{Notices: NoticeConfig{From: service, Stored: true}, Direct: d, DirectOnly: true,
		RetryMin: time.Hour}, s, fs, &fakePresence{ok: false})
	away := put(t, s, "1000@127.0.0.1", "1001@127.0.0.1", "away", time.Now(), time.Time{})
	r.Stored(away)
	waitUntil(t, "stored notice", 5*time.Second, func() bool { return r.Stats().Notices == 1 })
	if got := d.sent(); len(got) != 1 || !strings.Contains(got[0], "stored") {
		t.Fatalf("direct sends %q, want the one stored notice", got)
	}
	if n := len(fs.to("1000@127.0.0.1")); n != 0 {
		t.Fatalf("%d notices through the switch", n)
	}
}
