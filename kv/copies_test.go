package kv

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openCopies(t *testing.T, o Options) *Store {
	t.Helper()
	o.LockTimeout = 100 * time.Millisecond
	s, err := Open(filepath.Join(t.TempDir(), "sipsilo.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func withCopies(m *Message, keys ...string) *Message {
	m.Devices = Copies(keys)
	for i := range m.Devices { // Enqueue resets whatever the caller put in a copy
		m.Devices[i].Attempts, m.Devices[i].State = 9, StateDelivered
	}
	return m
}

func TestOneTargetStoresNoCopies(t *testing.T) {
	ctx := context.Background()
	s := openCopies(t, Options{})
	m := msg("1001@127.0.0.1", "core-a", 1, "one")
	m.Devices = []DeviceCopy{{Key: "contact:sip:1001@127.0.0.1:5062"}}
	id, err := s.Enqueue(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Devices != nil {
		t.Fatalf("one target stored copies %+v", got.Devices)
	}
	b, _ := encodeMessage(got)
	if strings.Contains(string(b), "devices") {
		t.Fatalf("a message without copies carries the field: %s", b)
	}
}

func TestEnqueueRefusesBadCopies(t *testing.T) {
	ctx := context.Background()
	s := openCopies(t, Options{})
	long := strings.Repeat("k", maxDeviceKeyLen+1)
	for name, keys := range map[string][]string{
		"empty key": {"a", ""},
		"long key":  {"a", long},
		"too many":  strings.Split(strings.Repeat("k,", maxCopies)+"last", ","),
	} {
		m := msg("1001@127.0.0.1", "core-a", 1, "x")
		m.Devices = Copies(keys)
		if _, err := s.Enqueue(ctx, m); !errors.Is(err, ErrUnstorable) {
			t.Errorf("%s: %v, want ErrUnstorable", name, err)
		}
	}
	// Duplicate keys collapse; two that collapse into one leave no copies.
	m := msg("1001@127.0.0.1", "core-a", 2, "x")
	m.Devices = Copies([]string{"a", "a"})
	id, err := s.Enqueue(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(id); got.Devices != nil {
		t.Fatalf("duplicate keys kept copies %+v", got.Devices)
	}
}

func TestMessageCompleteWhenEveryCopyIsFinal(t *testing.T) {
	ctx := context.Background()
	s := openCopies(t, Options{Outbox: true})
	id, err := s.Enqueue(ctx, withCopies(msg("1001@127.0.0.1", "core-a", 1, "one"), "desk", "mobile", "soft"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := s.Get(id)
	for _, c := range m.Devices {
		if c.State != StateQueued || c.Attempts != 0 {
			t.Fatalf("enqueued copy %+v, want fresh and queued", c)
		}
	}
	if _, err := s.BeginCopyAttempt(ctx, id, "desk", id+"-d0-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.CopyDelivered(ctx, id, "desk", id+"-d0-1", "Sent"); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.Queue("1001@127.0.0.1", 0); len(q) != 1 {
		t.Fatalf("message left its queue with copies still queued: %d queued", len(q))
	}
	if _, err := s.BeginCopyAttempt(ctx, id, "desk", id+"-d0-2", time.Now()); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("second attempt on a delivered copy: %v", err)
	}
	if _, err := s.BeginCopyAttempt(ctx, id, "gone", id+"-x", time.Now()); !errors.Is(err, ErrNoCopy) {
		t.Fatalf("attempt on a device without a copy: %v", err)
	}
	if _, err := s.BeginCopyAttempt(ctx, id, "mobile", id+"-d1-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	m, err = s.EndCopyAttempt(ctx, id, "mobile", id+"-d1-1", AttemptResult{Text: "SIP 486", Refused: true})
	if err != nil || m.Copy("mobile").Refusals != 1 || m.Copy("mobile").InFlight != "" {
		t.Fatalf("end copy attempt: %+v %v", m, err)
	}
	if err := s.DeadLetterCopy(ctx, id, "mobile", "refused"); err != nil {
		t.Fatal(err)
	}
	if m, _ = s.Get(id); m.State != StateQueued {
		t.Fatalf("state %s with a copy still queued", m.State)
	}
	if _, err := s.BeginCopyAttempt(ctx, id, "soft", id+"-d2-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.CopyDelivered(ctx, id, "soft", id+"-d2-1", "SIP 200"); err != nil {
		t.Fatal(err)
	}
	m, _ = s.Get(id)
	if m.State != StateDelivered || m.Delivered.IsZero() {
		t.Fatalf("complete message: %s %v", m.State, m.Delivered)
	}
	if q, _ := s.Queue("1001@127.0.0.1", 0); len(q) != 0 {
		t.Fatalf("complete message still queued")
	}
	want := map[string]State{"desk": StateDelivered, "mobile": StateDead, "soft": StateDelivered}
	for _, c := range m.Devices {
		if c.State != want[c.Key] {
			t.Errorf("copy %s is %s, want %s", c.Key, c.State, want[c.Key])
		}
	}
	recs, err := s.OutboxBatch(100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var devices []string
	for _, r := range recs {
		if r.Device != "" {
			devices = append(devices, r.Kind+":"+r.Device)
		}
	}
	if got, want := strings.Join(devices, " "), "delivered:desk attempt:mobile dead:mobile delivered:soft"; got != want {
		t.Fatalf("outbox records per device %q, want %q", got, want)
	}
	if last := recs[len(recs)-1]; last.Message.State != StateDelivered {
		t.Fatalf("last record's snapshot state %s", last.Message.State)
	}
}

func TestEveryCopyRefusedIsDead(t *testing.T) {
	ctx := context.Background()
	s := openCopies(t, Options{})
	id, _ := s.Enqueue(ctx, withCopies(msg("1001@127.0.0.1", "core-a", 1, "one"), "a", "b"))
	for _, k := range []string{"a", "b"} {
		if err := s.DeadLetterCopy(ctx, id, k, "refused"); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := s.Get(id)
	if m.State != StateDead {
		t.Fatalf("state %s, want dead", m.State)
	}
	m, err := s.Requeue(ctx, id, "operator")
	if err != nil || m.State != StateQueued || m.Copy("a").State != StateQueued || m.Copy("b").State != StateQueued {
		t.Fatalf("requeue: %+v %v", m, err)
	}
}

func TestExpiryEndsEveryQueuedCopy(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	s := openCopies(t, Options{TTL: time.Hour, Now: clock})
	m := withCopies(msg("1001@127.0.0.1", "core-a", 1, "one"), "a", "b")
	m.Received = now.Add(-2 * time.Hour)
	id, err := s.Enqueue(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	// A copy whose send may still land is spared by the sweep.
	if _, err := s.changeCopy(ctx, "test", id, "a", nil, func(m *Message, c *DeviceCopy) (bool, error) {
		c.InFlight, c.LastAttempt = id+"-d0-1", now
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ExpireDue(ctx, now, time.Minute, nil); err != nil || n != 0 {
		t.Fatalf("sweep expired %d (%v) with a copy's send pending", n, err)
	}
	if _, err := s.BeginCopyAttempt(ctx, id, "b", id+"-d1-1", now); !errors.Is(err, ErrExpired) {
		t.Fatalf("attempt past expiry: %v", err)
	}
	m, _ = s.Get(id)
	if m.State != StateExpired || m.Copy("a").State != StateExpired || m.Copy("b").State != StateExpired {
		t.Fatalf("expired message %s, copies %+v", m.State, m.Devices)
	}
	// The pending send's 2xx still lands, and the record says so.
	if err := s.CopyDelivered(ctx, id, "a", id+"-d0-1", "Sent"); err != nil {
		t.Fatal(err)
	}
	m, _ = s.Get(id)
	if m.State != StateDelivered || m.Copy("a").State != StateDelivered || m.Copy("b").State != StateExpired {
		t.Fatalf("late 2xx: %s, copies %+v", m.State, m.Devices)
	}
}

func TestCopyInFlightAtRestartCountsUncertainResend(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	id, _ := s.Enqueue(ctx, withCopies(msg("1001@127.0.0.1", "core-a", 1, "one"), "a", "b"))
	if _, err := s.BeginCopyAttempt(ctx, id, "a", id+"-d0-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	s = openTest(t, path)
	m, err := s.BeginCopyAttempt(ctx, id, "a", id+"-d0-2", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Copy("a"); c.UncertainResends != 1 || c.Attempts != 2 || m.Copy("b").UncertainResends != 0 {
		t.Fatalf("copies after restart %+v", m.Devices)
	}
}

func TestQueueScanPicksAndStops(t *testing.T) {
	ctx := context.Background()
	s := openCopies(t, Options{})
	var ids []string
	for i, keys := range [][]string{{"a", "b"}, nil, {"a", "b"}} {
		id, err := s.Enqueue(ctx, withCopies(msg("1001@127.0.0.1", "core-a", uint64(i+1), "m"), keys...))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// A device lane: its copies up to and including the first message without.
	got, err := s.QueueScan("1001@127.0.0.1", 0, nil, func(m *Message) (bool, bool) {
		if len(m.Devices) == 0 {
			return true, true
		}
		return m.Copy("a") != nil, false
	})
	if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] {
		t.Fatalf("device scan %v %v", got, err)
	}
	got, err = s.QueueScan("1001@127.0.0.1", 1, func(id []byte) bool { return string(id) == ids[0] }, func(m *Message) (bool, bool) { return true, false })
	if err != nil || len(got) != 1 || got[0].ID != ids[1] {
		t.Fatalf("limited scan past a skipped id: %v %v", got, err)
	}
}

func TestIntakeUncertainCountsOnTheFirstSendOfEachCopy(t *testing.T) {
	ctx := context.Background()
	s := openCopies(t, Options{})
	m := withCopies(msg("1001@127.0.0.1", "core-a", 1, "one"), "a", "b")
	id, _ := s.Enqueue(ctx, m)
	if _, err := s.MarkIntakeUncertain(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinalizeBody(ctx, id); err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"a", "b", "a"} {
		attempt := id + "-" + k + string(rune('1'+i))
		if _, err := s.BeginCopyAttempt(ctx, id, k, attempt, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EndCopyAttempt(ctx, id, k, attempt, AttemptResult{Text: "SIP 486", Refused: true}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Get(id)
	if got.Copy("a").UncertainResends != 1 || got.Copy("b").UncertainResends != 1 || got.UncertainResends != 2 {
		t.Fatalf("uncertain resends: message %d, copies %+v", got.UncertainResends, got.Devices)
	}
}
