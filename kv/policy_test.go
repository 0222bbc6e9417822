package kv

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openPolicy(t *testing.T, path string, o Options) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "sipsilo.db")
	}
	o.LockTimeout = 100 * time.Millisecond
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// enqueueMany stores n messages to to from 16 callers at once and returns how
// many were stored and how many refused for the quota.
func enqueueMany(t *testing.T, s *Store, to string, n int) (stored, refused int) {
	t.Helper()
	var ok, over atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				_, err := s.Enqueue(context.Background(), msg(to, "", 0, fmt.Sprint(i)))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrQuota):
					over.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), int(over.Load())
}

func TestQuotaAtDefaultRefusesTheThousandAndFirst(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openPolicy(t, path, Options{Quota: 1000})
	if stored, refused := enqueueMany(t, s, "1001@127.0.0.1", 1000); stored != 1000 || refused != 0 {
		t.Fatalf("first 1000: stored %d, refused %d", stored, refused)
	}
	_, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "", 0, "1001st"))
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("1001st: %v, want ErrQuota", err)
	}
	if got := s.QuotaRefusals(); got != 1 {
		t.Fatalf("refusals %d, want 1", got)
	}
	if _, err := s.Enqueue(ctx, msg("1002@127.0.0.1", "", 0, "other recipient")); err != nil {
		t.Fatalf("another recipient: %v", err)
	}
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1001 { // the refused one was never written
		t.Fatalf("%d messages stored, want 1001", len(all))
	}

	// A message leaving the queue frees its slot.
	q, _ := s.Queue("1001@127.0.0.1", 1)
	if _, err := s.BeginAttempt(ctx, q[0].ID, "a1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, q[0].ID, "a1", "Sent"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "", 0, "fits again")); err != nil {
		t.Fatalf("after a delivery: %v", err)
	}
	if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "", 0, "full again")); !errors.Is(err, ErrQuota) {
		t.Fatalf("full again: %v", err)
	}

	// The counts come back from the file after a restart.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = openPolicy(t, path, Options{Quota: 1000})
	if d := s.Depth("1001@127.0.0.1"); d != 1000 {
		t.Fatalf("depth after reopen %d, want 1000", d)
	}
	if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "", 0, "after restart")); !errors.Is(err, ErrQuota) {
		t.Fatalf("after restart: %v", err)
	}
}

func TestQuotaHoldsUnderConcurrentIntake(t *testing.T) {
	s := openPolicy(t, "", Options{Quota: 37})
	stored, refused := enqueueMany(t, s, "1001@127.0.0.1", 300)
	if stored != 37 || refused != 263 {
		t.Fatalf("stored %d, refused %d; want 37 and 263", stored, refused)
	}
	q, err := s.Queue("1001@127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 37 || s.Depth("1001@127.0.0.1") != 37 {
		t.Fatalf("queue %d, depth %d; want 37", len(q), s.Depth("1001@127.0.0.1"))
	}
	if s.QuotaRefusals() != 263 {
		t.Fatalf("refusals %d", s.QuotaRefusals())
	}
}

func TestQuotaZeroIsUnlimitedAndDepthFollowsQueue(t *testing.T) {
	ctx := context.Background()
	s := openPolicy(t, "", Options{})
	ids := make([]string, 5)
	for i := range ids {
		id, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "core", uint64(i), "x"))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	if err := s.Release(ctx, ids[0], "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, ids[1], "test"); err != nil {
		t.Fatal(err)
	}
	if d := s.Depth("1001@127.0.0.1"); d != 3 {
		t.Fatalf("depth %d, want 3", d)
	}
	if _, err := s.Requeue(ctx, ids[1], "operator retry"); err != nil {
		t.Fatal(err)
	}
	if d := s.Depth("1001@127.0.0.1"); d != 4 {
		t.Fatalf("depth after requeue %d, want 4", d)
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func TestExpireDueRecordsExpiredMessagesAndSparesPendingSends(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)
	clk := &clock{t: t0}
	s := openPolicy(t, "", Options{TTL: time.Hour, Outbox: true, Now: clk.Now})

	old := msg("1001@127.0.0.1", "", 0, "old")
	old.Received = t0.Add(-2 * time.Hour)
	oldID, _ := s.Enqueue(ctx, old)
	busy := msg("1001@127.0.0.1", "", 0, "busy")
	busy.Received = t0.Add(-2 * time.Hour)
	busyID, _ := s.Enqueue(ctx, busy)
	fresh := msg("1001@127.0.0.1", "", 0, "fresh")
	fresh.Received = t0.Add(-time.Minute)
	freshID, _ := s.Enqueue(ctx, fresh)
	asked := msg("1002@127.0.0.1", "", 0, "sender asked for a minute")
	asked.Received = t0
	asked.Expires = t0.Add(time.Minute)
	askedID, _ := s.Enqueue(ctx, asked)
	greedy := msg("1002@127.0.0.1", "", 0, "sender asked for a year")
	greedy.Received = t0
	greedy.Expires = t0.Add(365 * 24 * time.Hour)
	greedyID, _ := s.Enqueue(ctx, greedy)
	for id, want := range map[string]time.Time{askedID: t0.Add(time.Minute), greedyID: t0.Add(time.Hour),
		oldID: t0.Add(-time.Hour)} {
		m, _ := s.Get(id)
		if !m.Expires.Equal(want) {
			t.Errorf("%s expires %v, want %v", m.Body, m.Expires, want)
		}
	}

	// A send of "busy" began 10 s ago: its result may still come.
	if _, err := s.BeginAttempt(ctx, busyID, "b1", t0.Add(-2*time.Hour+time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.change(ctx, "test", busyID, nil, func(m *Message) (bool, error) {
		m.LastAttempt = t0.Add(-10 * time.Second)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := expireDue(s, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != oldID {
		t.Fatalf("expired %v, want only the old one", ids(got))
	}
	m, _ := s.Get(oldID)
	if m.State != StateExpired || m.History[len(m.History)-1].Kind != EventExpired {
		t.Fatalf("old: state %s, history %+v", m.State, m.History)
	}
	if q, _ := s.Queue("1001@127.0.0.1", 0); !slices.Equal(ids(q), []string{busyID, freshID}) {
		t.Fatalf("queue %v", ids(q))
	}
	recs, _ := s.OutboxBatch(100, 1<<20)
	if r := recs[len(recs)-1]; r.Kind != EventExpired || r.MsgID != oldID || r.Message.State != StateExpired {
		t.Fatalf("last outbox record %+v", r)
	}

	// A minute later the pending send's result can no longer come.
	if got, _ := expireDue(s, t0.Add(time.Minute), time.Minute); !slices.Equal(ids(got), []string{busyID}) {
		t.Fatalf("expired %v, want busy", ids(got))
	}
	// The sweep does not look at messages younger than the TTL; relay's check at
	// the next attempt expires the one whose sender asked for less.
	_, err = s.BeginAttempt(ctx, askedID, "a1", t0.Add(2*time.Minute))
	if !errors.Is(err, ErrExpired) || !errors.Is(err, ErrNotQueued) {
		t.Fatalf("begin attempt after expiry: %v", err)
	}
	if m, _ := s.Get(askedID); m.State != StateExpired || m.Attempts != 0 || m.InFlight != "" {
		t.Fatalf("asked: state %s attempts %d in flight %q", m.State, m.Attempts, m.InFlight)
	}
	if d := s.Depth("1002@127.0.0.1"); d != 1 {
		t.Fatalf("depth %d, want 1", d)
	}
}

func TestLateConfirmationOfAnExpiredOrPurgedSendIsRecorded(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now()
	s := openPolicy(t, "", Options{TTL: time.Hour})
	m := msg("1001@127.0.0.1", "", 0, "in flight")
	m.Received = t0.Add(-2 * time.Hour)
	id, _ := s.Enqueue(ctx, m)
	other, _ := s.Enqueue(ctx, msg("1001@127.0.0.1", "", 0, "purged in flight"))
	for _, x := range []string{id, other} {
		if _, err := s.BeginAttempt(ctx, x, x+"-1", t0.Add(-3*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := expireDue(s, t0, time.Minute); len(got) != 1 {
		t.Fatalf("expired %d", len(got))
	}
	if p, err := s.Purge(ctx, other, "operator"); err != nil || p.InFlight != other+"-1" {
		t.Fatalf("purge: %v, in flight %q", err, p.InFlight)
	}
	// A stale attempt id is not this send.
	if err := s.Delivered(ctx, id, "someone-else", "Sent"); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Get(id); m.State != StateExpired {
		t.Fatalf("stale attempt changed state to %s", m.State)
	}
	for _, x := range []string{id, other} {
		if err := s.Delivered(ctx, x, x+"-1", "Sent"); err != nil {
			t.Fatal(err)
		}
		if m, _ := s.Get(x); m.State != StateDelivered {
			t.Fatalf("%s: %s", m.Body, m.State)
		}
	}
}

func TestPurgeAndPurgeQueue(t *testing.T) {
	ctx := context.Background()
	s := openPolicy(t, "", Options{Outbox: true})
	var want []string
	for i := range purgeBatch + 10 { // more than one transaction's worth
		id, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "core", uint64(i), fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	keep, _ := s.Enqueue(ctx, msg("1002@127.0.0.1", "core", 9999, "other"))

	one, err := s.Purge(ctx, want[0], "operator purge")
	if err != nil || one.State != StatePurged || one.Reason != "operator purge" {
		t.Fatalf("purge one: %v %+v", err, one)
	}
	if _, err := s.Purge(ctx, want[0], "again"); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("purge again: %v", err)
	}
	if _, err := s.Purge(ctx, "01HZZZZZZZZZZZZZZZZZZZZZZZ", "unknown"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purge unknown: %v", err)
	}
	got, err := s.PurgeQueue(ctx, "1001@127.0.0.1", "operator purge", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), want[1:]) {
		t.Fatalf("purged %d, want %d in queue order", len(got), len(want)-1)
	}
	if q, _ := s.Queue("1001@127.0.0.1", 0); len(q) != 0 || s.Depth("1001@127.0.0.1") != 0 {
		t.Fatalf("queue %d, depth %d after purge", len(q), s.Depth("1001@127.0.0.1"))
	}
	if q, _ := s.Queue("1002@127.0.0.1", 0); len(q) != 1 || q[0].ID != keep {
		t.Fatal("another recipient's queue was touched")
	}
	m, _ := s.Get(want[5])
	if m.State != StatePurged || m.History[len(m.History)-1].Kind != EventPurged {
		t.Fatalf("state %s history %+v", m.State, m.History)
	}
	if _, err := s.BeginAttempt(ctx, want[5], "x", time.Now()); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("attempt on a purged message: %v", err)
	}
	n, _ := s.OutboxLen()
	if n != len(want)+1+len(want) { // received ×(n+1), purged ×n
		t.Fatalf("outbox %d records", n)
	}
}

func TestMarkNoticeOncePerKindAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openPolicy(t, path, Options{})
	id, _ := s.Enqueue(ctx, msg("1001@127.0.0.1", "", 0, "x"))
	for i, want := range []bool{true, false} {
		first, err := s.MarkNotice(ctx, id, NoticeStored)
		if err != nil || first != want {
			t.Fatalf("mark %d: %v %v", i, first, err)
		}
	}
	s.Close(ctx)
	s = openPolicy(t, path, Options{})
	if first, _ := s.MarkNotice(ctx, id, NoticeStored); first {
		t.Fatal("stored notice repeated after a restart")
	}
	if first, _ := s.MarkNotice(ctx, id, NoticeExpired); !first {
		t.Fatal("expired notice refused")
	}
}

// expireDue runs ExpireDue and returns what it expired.
func expireDue(s *Store, now time.Time, pending time.Duration) ([]*Message, error) {
	var got []*Message
	n, err := s.ExpireDue(context.Background(), now, pending, func(m *Message) { got = append(got, m) })
	if n != len(got) {
		return got, fmt.Errorf("ExpireDue said %d, reported %d", n, len(got))
	}
	return got, err
}

func ids(ms []*Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestExpireDueScansInChunks(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now()
	s := openPolicy(t, "", Options{TTL: time.Hour})
	s.scanChunk = 3 // set before any use: many read transactions for a few messages
	var want []string
	for i := range 10 {
		m := msg(fmt.Sprintf("10%02d@127.0.0.1", i%4), "", 0, fmt.Sprint(i))
		m.Received = t0.Add(-2 * time.Hour)
		if i%3 == 0 {
			m.Received = t0 // not due
		}
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 != 0 {
			want = append(want, id)
		}
	}
	got, err := expireDue(s, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	g := ids(got)
	slices.Sort(g)
	slices.Sort(want)
	if !slices.Equal(g, want) {
		t.Fatalf("expired %v, want %v", g, want)
	}
}
