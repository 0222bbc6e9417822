package kv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// inspectFixture fills a store (outbox on, fixed clock) with: three messages queued
// for 1001 (received 10, 20, 30 minutes ago), one for 1002 (5 minutes ago), one
// delivered, one dead, one released, two presence records. It returns the closed
// file's path and the ids by name.
func inspectFixture(t *testing.T) (string, time.Time, map[string]string) {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s, err := Open(path, Options{Outbox: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	add := func(name, to string, ago time.Duration, seq uint64) {
		m := msg(to, "core-a", seq, "body of "+name)
		m.Received = now.Add(-ago)
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
	}
	// Event-Sequence, not arrival, orders a queue: q30 (oldest) is sent last.
	add("q10", "1001@x", 10*time.Minute, 1)
	add("q20", "1001@x", 20*time.Minute, 2)
	add("q30", "1001@x", 30*time.Minute, 3)
	add("q5", "1002@x", 5*time.Minute, 4)
	add("delivered", "1002@x", 40*time.Minute, 5)
	add("dead", "1003@x", 50*time.Minute, 6)
	add("released", "1003@x", 60*time.Minute, 7)
	if err := s.Delivered(ctx, ids["delivered"], "a-1", "Sent"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, ids["dead"], "refused 5 times"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, ids["released"], "answer lost"); err != nil {
		t.Fatal(err)
	}
	for _, aor := range []string{"1001@x", "1000@x"} {
		if err := s.PutReach(ctx, aor, []byte(`{"v":1,"aor":"`+aor+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return path, now, ids
}

func openReadOnly(t *testing.T, path string, now time.Time) *Store {
	t.Helper()
	s, err := Open(path, Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestSummaryCountsStatesQueuesAndAges(t *testing.T) {
	path, now, _ := inspectFixture(t)
	before := fileSum(t, path)
	s := openReadOnly(t, path, now)
	sum, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	wantStates := map[State]int{StateQueued: 4, StateDelivered: 1, StateDead: 1, StateReleased: 1, StateNoBody: 0, StateExpired: 0, StatePurged: 0}
	if !reflect.DeepEqual(sum.ByState, wantStates) || sum.Messages != 7 || sum.QueueEntries != 4 {
		t.Fatalf("counts: %d messages, %d queued, by state %v", sum.Messages, sum.QueueEntries, sum.ByState)
	}
	want := []RecipientQueue{
		{AOR: "1001@x", Queued: 3, Oldest: now.Add(-30 * time.Minute), OldestAge: 1800},
		{AOR: "1002@x", Queued: 1, Oldest: now.Add(-5 * time.Minute), OldestAge: 300},
	}
	if !reflect.DeepEqual(sum.Recipients, want) {
		t.Fatalf("recipients:\n got %+v\nwant %+v", sum.Recipients, want)
	}
	if !sum.OldestQueued.Equal(now.Add(-30*time.Minute)) || sum.OldestQueuedAge != 1800 {
		t.Fatalf("oldest %v age %v", sum.OldestQueued, sum.OldestQueuedAge)
	}
	// Seven received records, and one per state change of three of them.
	if sum.OutboxRecords != 10 || sum.PresenceRecords != 2 {
		t.Fatalf("outbox %d presence %d", sum.OutboxRecords, sum.PresenceRecords)
	}
	if fi, _ := os.Stat(path); sum.FileBytes != fi.Size() {
		t.Fatalf("file bytes %d, stat %d", sum.FileBytes, fi.Size())
	}
	if fileSum(t, path) != before {
		t.Fatal("a read-only Summary changed the file")
	}
}

func TestSummaryOfAnEmptyStore(t *testing.T) {
	s := openTest(t, "")
	sum, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sum)
	if sum.Messages != 0 || len(sum.Recipients) != 0 || !bytes.Contains(b, []byte(`"recipients":[]`)) ||
		bytes.Contains(b, []byte("oldest_queued\"")) {
		t.Fatalf("empty summary %s", b)
	}
}

func TestPeekStateAgreesWithTheRecord(t *testing.T) {
	for _, st := range append(knownStates, "expired", "purged") {
		m := &Message{ID: "01JFQ8Z5T6W3M9K0B2C4D6E8F0", State: st, To: "a@b", Body: []byte(`"state":"x"`)}
		v, err := encodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := peekState(v); err != nil || got != st {
			t.Fatalf("peekState(%s) = %q, %v", v, got, err)
		}
	}
	// Another field order (a hand-made or future record) is decoded in full.
	if got, err := peekState([]byte(`{"to":"a@b","state":"dead","id":"x"}`)); err != nil || got != StateDead {
		t.Fatalf("reordered record: %q %v", got, err)
	}
	if _, err := peekState([]byte(`{"id":"x","state":"unterminated`)); err == nil {
		t.Fatal("a broken record was read")
	}
}

func TestQueuePagePagesInDeliveryOrder(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	var want []string
	for i := range 7 {
		id, err := s.Enqueue(ctx, msg("1001@x", "core", uint64(i+1), strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		if _, err := s.Enqueue(ctx, msg("1002@x", "core", uint64(100+i), "other")); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after, pages := "", 0
	for {
		p, err := s.QueuePage("1001@x", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range p.Items {
			got = append(got, m.ID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
		if pages == 1 {
			// The page's last message leaves the queue: its id still continues.
			if err := s.Delivered(ctx, after, "a", "Sent"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if pages != 3 || !reflect.DeepEqual(got, want) {
		t.Fatalf("%d pages: %v, want %v", pages, got, want)
	}
	p, err := s.QueuePage("1001@x", "", 0)
	if err != nil || len(p.Items) != 6 || p.Next != "" {
		t.Fatalf("unlimited: %d items next %q err %v", len(p.Items), p.Next, err)
	}
	p, err = s.QueuePage("1001@x", "", 6)
	if err != nil || len(p.Items) != 6 || p.Next != "" {
		t.Fatalf("exact limit: %d items next %q err %v", len(p.Items), p.Next, err)
	}
	for _, bad := range []string{"01JNOSUCHMESSAGE0000000000", "../x"} {
		if _, err := s.QueuePage("1001@x", bad, 3); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor %q: %v", bad, err)
		}
	}
	other, _ := s.QueuePage("1002@x", "", 1)
	if _, err := s.QueuePage("1001@x", other.Items[0].ID, 3); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("another recipient's message as cursor: %v", err)
	}
	if p, err := s.QueuePage("nobody@x", "", 3); err != nil || len(p.Items) != 0 || p.Items == nil {
		t.Fatalf("unknown recipient: %+v %v", p, err)
	}
}

func TestMessagePageFiltersByState(t *testing.T) {
	path, now, ids := inspectFixture(t)
	s := openReadOnly(t, path, now)
	p, err := s.MessagePage(StateDead, "", 10)
	if err != nil || len(p.Items) != 1 || p.Items[0].ID != ids["dead"] || p.Next != "" {
		t.Fatalf("dead: %+v %v", p, err)
	}
	if p.Items[0].Reason != "refused 5 times" || len(p.Items[0].History) != 2 {
		t.Fatalf("dead letter record %+v", p.Items[0])
	}
	var all []string
	after := ""
	for {
		p, err := s.MessagePage("", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Items {
			all = append(all, m.ID)
		}
		if after = p.Next; after == "" {
			break
		}
	}
	if len(all) != 7 {
		t.Fatalf("all states: %v", all)
	}
	queued, _ := s.MessagePage(StateQueued, "", 0)
	if len(queued.Items) != 4 {
		t.Fatalf("queued: %d", len(queued.Items))
	}
	if p, err := s.MessagePage("expired", "", 10); err != nil || len(p.Items) != 0 {
		t.Fatalf("a state nobody is in: %+v %v", p, err)
	}
}

// A filtered page reads a bounded number of records of other states; its Next
// continues the scan, and following Next finds every match once.
func TestFilteredPageReadsABoundedRun(t *testing.T) {
	path, now, ids := inspectFixture(t)
	s := openReadOnly(t, path, now)
	s.filterScan = 2 // 7 records, 1 dead: pages cut by the scan, not by the limit
	var dead []string
	pages, after := 0, ""
	for {
		p, err := s.MessagePage(StateDead, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range p.Items {
			dead = append(dead, m.ID)
		}
		if after = p.Next; after == "" {
			break
		}
		if pages > 7 {
			t.Fatal("the cursor does not advance")
		}
	}
	if len(dead) != 1 || dead[0] != ids["dead"] || pages < 3 {
		t.Fatalf("found %v in %d pages; want the one dead letter, over ≥ 3 pages", dead, pages)
	}
	// Unlimited (inspect's "all") is not cut.
	if queued, err := s.MessagePage(StateQueued, "", 0); err != nil || len(queued.Items) != 4 || queued.Next != "" {
		t.Fatalf("queued, no limit: %d items, next %q, %v", len(queued.Items), queued.Next, err)
	}
}

func TestOutboxPageOldestFirst(t *testing.T) {
	path, now, ids := inspectFixture(t)
	s := openReadOnly(t, path, now)
	p1, err := s.OutboxPage("", 4)
	if err != nil || len(p1.Items) != 4 || p1.Next != "4" {
		t.Fatalf("page 1: %d items next %q err %v", len(p1.Items), p1.Next, err)
	}
	if p1.Items[0].Seq != 1 || p1.Items[0].Kind != EventReceived || p1.Items[0].Message.Body == nil {
		t.Fatalf("first record %+v", p1.Items[0])
	}
	rest, err := s.OutboxPage(p1.Next, 0)
	if err != nil || len(rest.Items) != 6 || rest.Items[0].Seq != 5 || rest.Next != "" {
		t.Fatalf("rest: %+v %v", rest, err)
	}
	last := rest.Items[len(rest.Items)-1]
	if last.MsgID != ids["released"] || last.Kind != EventReleased {
		t.Fatalf("last record %+v", last)
	}
	if _, err := s.OutboxPage("x", 4); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestReachPageAndGetReach(t *testing.T) {
	path, now, _ := inspectFixture(t)
	s := openReadOnly(t, path, now)
	p, err := s.ReachPage("", 1)
	if err != nil || len(p.Items) != 1 || p.Items[0].AOR != "1000@x" || p.Next != "1000@x" {
		t.Fatalf("page 1 %+v %v", p, err)
	}
	p, err = s.ReachPage(p.Next, 1)
	if err != nil || len(p.Items) != 1 || p.Items[0].AOR != "1001@x" || p.Next != "" {
		t.Fatalf("page 2 %+v %v", p, err)
	}
	rec, err := s.GetReach("1001@x")
	if err != nil || !bytes.Contains(rec, []byte(`"aor":"1001@x"`)) {
		t.Fatalf("GetReach %q %v", rec, err)
	}
	if _, err := s.GetReach("1009@x"); !errors.Is(err, ErrNoReach) {
		t.Fatalf("missing record: %v", err)
	}
}

// Every read gives the same answer on the daemon's read-write store and on the
// file opened read-only afterwards, and the read-only reads leave it as it was.
func TestInspectReadsAgreeReadWriteAndReadOnly(t *testing.T) {
	path, now, _ := inspectFixture(t)
	read := func(s *Store) []any {
		sum, err1 := s.Summary()
		q, err2 := s.QueuePage("1001@x", "", 2)
		d, err3 := s.MessagePage(StateDead, "", 0)
		o, err4 := s.OutboxPage("", 0)
		r, err5 := s.ReachPage("", 0)
		g, err6 := s.GetReach("1000@x")
		if err := errors.Join(err1, err2, err3, err4, err5, err6, s.Verify()); err != nil {
			t.Fatal(err)
		}
		return []any{sum, q, d, o, r, g}
	}
	rw, err := Open(path, Options{Outbox: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	fromRW := read(rw)
	if err := rw.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, path)
	fromRO := read(openReadOnly(t, path, now))
	if !reflect.DeepEqual(fromRW, fromRO) {
		t.Fatalf("read-write and read-only reads differ:\n%+v\n%+v", fromRW, fromRO)
	}
	if fileSum(t, path) != before {
		t.Fatal("read-only reads changed the file")
	}
}

func TestVerifyRefusesAnotherProgramsBBoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := openReadOnly(t, path, time.Now())
	if err := s.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify on a foreign file: %v", err)
	}
	if _, err := s.Summary(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Summary on a foreign file: %v", err)
	}
}

// BenchmarkSummary is the cost of GET /api/v1/stats on a store of 20,000 messages
// (half of them delivered), 100 recipients.
func BenchmarkSummary(b *testing.B) {
	ctx := context.Background()
	s, err := Open(filepath.Join(b.TempDir(), "sipsilo.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	body := bytes.Repeat([]byte("x"), 200)
	for i := range 20000 {
		m := &Message{From: "1000@x", To: "u" + strconv.Itoa(i%100) + "@x", Body: body, BodySource: BodyQuery}
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.Delivered(ctx, id, "a", "Sent"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		sum, err := s.Summary()
		if err != nil || sum.Messages != 20000 || sum.QueueEntries != 10000 {
			b.Fatalf("%+v %v", sum, err)
		}
	}
}
