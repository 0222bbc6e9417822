package kv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "sipsilo.db")
	}
	s, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func msg(to string, core string, seq uint64, body string) *Message {
	return &Message{From: "1000@127.0.0.1", To: to, CoreUUID: core, EventSeq: seq,
		ContentType: "text/plain", Body: []byte(body), BodySource: BodyQuery}
}

func TestEnqueueRoundTripKeepsBodyBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	body := "hé \xff\xfe invalid utf-8\r\n<x>]]>${system(rm -rf /)}\x00end"
	id, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "core-a", 7, body))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, path)
	got, err := s2.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Body, []byte(body)) {
		t.Fatalf("body = %q, want %q", got.Body, body)
	}
	if got.State != StateQueued || got.EventSeq != 7 || got.To != "1001@127.0.0.1" {
		t.Fatalf("record = %+v", got)
	}
}

func TestQueueOrderFollowsCoreFirstSeenThenSequence(t *testing.T) {
	now := time.Unix(1795665297, 0)
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	to := "1001@127.0.0.1"
	// FreeSWITCH's chat threads hand over seq 12 before 11; a restarted FreeSWITCH
	// (new Core-UUID, lower sequence numbers) comes after both.
	add := func(core string, seq uint64, at time.Time) string {
		m := msg(to, core, seq, "x")
		m.Received = at
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	id12 := add("core-a", 12, now)
	id11 := add("core-a", 11, now.Add(time.Millisecond))
	idNew := add("core-b", 3, now.Add(time.Second))
	id13 := add("core-a", 13, now.Add(2*time.Second))
	add("core-a", 1, now) // another recipient's queue must not mix in
	if _, err := s.Enqueue(ctx, msg("1002@127.0.0.1", "core-a", 5, "y")); err != nil {
		t.Fatal(err)
	}
	q, err := s.Queue(to, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, m := range q {
		got = append(got, m.EventSeq)
	}
	want := []uint64{1, 11, 12, 13, 3}
	if len(got) != len(want) {
		t.Fatalf("queue seqs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("queue seqs = %v, want %v", got, want)
		}
	}
	if q[1].ID != id11 || q[2].ID != id12 || q[3].ID != id13 || q[4].ID != idNew {
		t.Fatalf("queue ids out of order")
	}
}

func TestConcurrentEnqueueSharesCommits(t *testing.T) {
	s := openTest(t, "")
	const writers, each = 64, 20
	var wg sync.WaitGroup
	ids := make(chan string, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "core", uint64(w*each+i), "hi"))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if _, err := s.Get(id); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != writers*each {
		t.Fatalf("stored %d, want %d", len(seen), writers*each)
	}
	if c := s.Commits(); c >= writers*each {
		t.Fatalf("%d commits for %d writes: no group commit", c, writers*each)
	}
	if !s.Durable() {
		t.Fatal("store runs without fsync")
	}
}

func TestReleaseTakesMessageOutOfQueue(t *testing.T) {
	s := openTest(t, "")
	ctx := context.Background()
	id, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 1, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, id, "answer write failed"); err != nil {
		t.Fatal(err)
	}
	m, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateReleased || m.Reason != "answer write failed" {
		t.Fatalf("state %s reason %q", m.State, m.Reason)
	}
	if q, _ := s.Queue("1001@127.0.0.1", 0); len(q) != 0 {
		t.Fatalf("released message still queued: %d", len(q))
	}
	if err := s.Release(ctx, "01NOSUCHID", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("release unknown: %v", err)
	}
}

func TestSecondOpenFailsFastWhenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	openTest(t, path)
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("locked open took %s", time.Since(start))
	}
	_, err = Open(path, Options{LockTimeout: 100 * time.Millisecond, ReadOnly: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open: err = %v, want ErrLocked", err)
	}
}

func TestCorruptFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not bbolt "), 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage: err = %v, want ErrCorrupt", err)
	}
	// A valid bbolt file of another schema version.
	other := filepath.Join(dir, "other.db")
	s := openTest(t, other)
	if err := s.submit(context.Background(), newOp(func(tx *bboltTx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("99"))
	}, nil)); err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	if _, err := Open(other, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("schema 99: err = %v, want ErrCorrupt", err)
	}
}

func TestEnqueueAfterCloseFails(t *testing.T) {
	s := openTest(t, "")
	s.Close(context.Background())
	if _, err := s.Enqueue(context.Background(), msg("a@b", "c", 1, "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

// The first-seen time of a Core-UUID outlives a restart: a message FreeSWITCH sent
// earlier (lower Event-Sequence) but that reaches sipsilo after the restart still
// goes first.
func TestQueueOrderSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	t0 := time.Unix(1795665297, 0)
	enqueue := func(now time.Time, seq uint64) {
		s, err := Open(path, Options{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		if _, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "core-a", seq, "x")); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(t0, 5)
	enqueue(t0.Add(time.Hour), 3)
	s := openTest(t, path)
	q, err := s.Queue("1001@127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 2 || q[0].EventSeq != 3 || q[1].EventSeq != 5 {
		t.Fatalf("order after restart: %d messages, first seq %d", len(q), q[0].EventSeq)
	}
}

func TestHistoryKeepsFirstAndLatest(t *testing.T) {
	m := &Message{State: StateQueued}
	m.addHistory(time.Unix(0, 0), EventReceived, "")
	for i := range 100 {
		m.addHistory(time.Unix(int64(i+1), 0), EventAttempt, strconv.Itoa(i))
	}
	if len(m.History) != maxHistory {
		t.Fatalf("history has %d entries, want %d", len(m.History), maxHistory)
	}
	if m.History[0].Kind != EventReceived || m.History[len(m.History)-1].Detail != "99" || m.History[1].Detail != strconv.Itoa(100-maxHistory+1) {
		t.Fatalf("history = first %+v, second %+v, last %+v", m.History[0], m.History[1], m.History[len(m.History)-1])
	}
}

// TestOversizedKeysAreRefusedBeforeTheWriter: a key bbolt cannot take failed the
// whole group commit it landed in (then retried op by op); it is now refused in
// the caller, and the writer never sees it.
func TestOversizedKeysAreRefusedBeforeTheWriter(t *testing.T) {
	s := openTest(t, "")
	before := s.Commits()
	huge := string(bytes.Repeat([]byte("c"), 40<<10))
	for _, m := range []*Message{msg("1001@127.0.0.1", huge, 1, "x"), msg(huge+"@127.0.0.1", "c", 1, "x")} {
		if _, err := s.Enqueue(context.Background(), m); !errors.Is(err, ErrUnstorable) {
			t.Fatalf("err = %v, want ErrUnstorable", err)
		}
	}
	if n := s.Commits() - before; n != 0 {
		t.Fatalf("%d commits for writes refused up front", n)
	}
}

// TestAwaitingBodyPageVisitsEachOnce: paging through the queue returns every
// message awaiting its body exactly once, skips final ones, and goes on when
// the key it stopped at was removed in between.
func TestAwaitingBodyPageVisitsEachOnce(t *testing.T) {
	s := openTest(t, "")
	ctx := context.Background()
	awaiting := map[string]bool{}
	var ids []string
	for i := range 10 {
		m := &Message{From: "a@h", To: "r" + strconv.Itoa(i%3) + "@h", Body: []byte("x"), BodySource: BodyQuery}
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if i%3 == 1 {
			if _, err := s.FinalizeBody(ctx, id); err != nil {
				t.Fatal(err)
			}
		} else {
			awaiting[id] = true
		}
	}
	seen := map[string]int{}
	var from []byte
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("paging does not end")
		}
		page, next, err := s.AwaitingBodyPage(from, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, limit 2", len(page))
		}
		for _, a := range page {
			seen[a.ID]++
			if pages == 1 && len(seen) <= 4 {
				// Take the message out of its queue between pages: the next page
				// starts after it all the same.
				if _, err := s.Purge(ctx, a.ID, "test"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if next == nil {
			break
		}
		from = next
	}
	for id := range awaiting {
		if seen[id] != 1 {
			t.Errorf("%s seen %d times, want 1", id, seen[id])
		}
	}
	if len(seen) != len(awaiting) {
		t.Errorf("%d seen, %d awaiting", len(seen), len(awaiting))
	}
}

// TestDepthsCountedAtOpen: the per-recipient counts made at open, one range of
// keys per recipient, match what was queued, recipients of the same length and
// a recipient whose name is a prefix of another's included.
func TestDepthsCountedAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a@h": 3, "b@h": 1, "a@hh": 2, "ab@h": 4}
	for aor, n := range want {
		for range n {
			if _, err := s.Enqueue(context.Background(), msg(aor, "", 0, "x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Close(context.Background())
	s = openTest(t, path)
	for aor, n := range want {
		if got := s.Depth(aor); got != n {
			t.Errorf("%s: depth %d, want %d", aor, got, n)
		}
	}
	if got := s.depth.sum; got != 10 {
		t.Errorf("total %d, want 10", got)
	}
}

// A file of the JSON-record schema opens; a read-write open marks it with the
// current version (its new records are binary), a read-only one leaves it.
func TestSchemaOfJSONRecordsIsReadAndMarkedOnWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	s := openTest(t, path)
	if err := s.submit(context.Background(), newOp(func(tx *bboltTx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
	}, nil)); err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	schema := func() string {
		t.Helper()
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var v string
		_ = db.View(func(tx *bolt.Tx) error { v = string(tx.Bucket(bucketMeta).Get(keySchema)); return nil })
		return v
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of schema 1: %v", err)
	}
	ro.Close(context.Background())
	if v := schema(); v != "1" {
		t.Fatalf("a read-only open changed the schema to %q", v)
	}
	rw, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open of schema 1: %v", err)
	}
	rw.Close(context.Background())
	if v := schema(); v != strconv.Itoa(SchemaVersion) {
		t.Fatalf("schema after a read-write open: %q, want %d", v, SchemaVersion)
	}
}
