package kv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// storedDepths reads the depths bucket of the store's file as written.
func storedDepths(t *testing.T, s *Store) map[string]int {
	t.Helper()
	got := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDepths).ForEach(func(k, v []byte) error {
			n, w := binary.Uvarint(v)
			if w <= 0 {
				return fmt.Errorf("depth of %q: %x", k, v)
			}
			got[string(k)] = int(n)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// countedDepths counts the queue bucket itself.
func countedDepths(t *testing.T, s *Store) map[string]int {
	t.Helper()
	var d *depths
	err := s.db.View(func(tx *bolt.Tx) (err error) { d, err = countDepths(tx); return err })
	if err != nil {
		t.Fatal(err)
	}
	return d.n
}

// TestDepthsBucketFollowsTheQueue: the depths written in the writer's
// transactions equal a count of the queue after intake, delivery, a state
// change back into the queue, a purge and a reopen, which reads them instead of
// counting (docs/decisions.md §35).
func TestDepthsBucketFollowsTheQueue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	var ids []string
	for i := range 30 {
		m := msg(fmt.Sprintf("10%02d@127.0.0.1", i%4), "core-a", uint64(i+1), "x")
		if i%5 == 0 {
			m.BodySource = BodyAwaiting
		}
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids[:6] {
		if err := s.Delivered(ctx, id, "a1", "200 OK"); err != nil {
			t.Fatal(err)
		}
	}
	// ids[10] awaits its body: given up as no_body, then queued again when the
	// body comes after all.
	if m, err := s.FinalizeBody(ctx, ids[10]); err != nil || m.State != StateNoBody {
		t.Fatalf("finalize: %v %v", m, err)
	}
	if _, _, err := s.ConfirmBody(ctx, ids[10], "core-a", 11, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeQueue(ctx, "1003@127.0.0.1", "test", 0); err != nil {
		t.Fatal(err)
	}
	want := countedDepths(t, s)
	if got := storedDepths(t, s); !maps.Equal(got, want) {
		t.Fatalf("depths bucket %v, queue holds %v", got, want)
	}
	if len(want) != 3 || want["1000@127.0.0.1"] != 6 {
		t.Fatalf("queue %v: the test did not move what it meant to", want)
	}
	total := 0
	for aor, n := range want {
		if s.Depth(aor) != n {
			t.Errorf("Depth(%s) = %d, want %d", aor, s.Depth(aor), n)
		}
		total += n
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Reopened: the figures come from the bucket. A wrong bucket would show.
	s2 := openTest(t, path)
	for aor, n := range want {
		if s2.Depth(aor) != n {
			t.Errorf("after reopen Depth(%s) = %d, want %d", aor, s2.Depth(aor), n)
		}
	}
	if s2.depth.total() != total {
		t.Errorf("after reopen total %d, want %d", s2.depth.total(), total)
	}
}

// TestSchema2FileIsMigrated: a file written by schema 2 (no depths bucket, the
// message id as each queue entry's value) is read as it is read-only, and its
// first read-write open counts its queue into the depths bucket; its entries
// and those written since are read alike.
func TestSchema2FileIsMigrated(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	s := openTest(t, path)
	var old []string
	for i := range 12 {
		id, err := s.Enqueue(ctx, msg(fmt.Sprintf("20%02d@127.0.0.1", i%3), "core-a", uint64(i+1), "old"))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, id)
	}
	// Make it what schema 2 wrote.
	err := s.submit(ctx, newOp(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		c := q.Cursor()
		var keys [][]byte
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := q.Put(k, append([]byte(nil), queueKeyID(k)...)); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketDepths); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("2"))
	}, nil))
	if err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of schema 2: %v", err)
	}
	if ro.Depth("2000@127.0.0.1") != 4 || ro.depth.total() != 12 {
		t.Errorf("read-only schema 2: depth %d, total %d, want 4 and 12", ro.Depth("2000@127.0.0.1"), ro.depth.total())
	}
	q, err := ro.Queue("2001@127.0.0.1", 0)
	if err != nil || len(q) != 4 || q[0].ID != old[1] {
		t.Fatalf("read-only schema 2 queue: %v %v", q, err)
	}
	if err := ro.Verify(); err != nil {
		t.Fatalf("read-only schema 2 verify: %v", err)
	}
	sum, err := ro.Summary()
	if err != nil || sum.QueueEntries != 12 || len(sum.Recipients) != 3 {
		t.Fatalf("read-only schema 2 summary: %+v %v", sum, err)
	}
	ro.Close(ctx)

	rw := openTest(t, path)
	if got := storedDepths(t, rw); !maps.Equal(got, map[string]int{"2000@127.0.0.1": 4, "2001@127.0.0.1": 4, "2002@127.0.0.1": 4}) {
		t.Fatalf("migrated depths %v", got)
	}
	id, err := rw.Enqueue(ctx, msg("2001@127.0.0.1", "core-a", 99, "new"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Delivered(ctx, old[1], "a", "200 OK"); err != nil {
		t.Fatal(err)
	}
	q, err = rw.Queue("2001@127.0.0.1", 0)
	if err != nil || len(q) != 4 || q[0].ID != old[4] || q[3].ID != id {
		t.Fatalf("queue after the migration: %v %v", q, err)
	}
	if got, want := storedDepths(t, rw), countedDepths(t, rw); !maps.Equal(got, want) {
		t.Fatalf("depths bucket %v, queue holds %v", got, want)
	}
}

// TestClosingTheBodyWaitDoesNotGrowTheRecord: a message queued awaiting its
// exact body is written with room, and closing the wait (the query copy stands)
// rewrites it at the same length, so its page does not split; the record reads
// back as written, and a record of an earlier version (no room) still decodes.
func TestClosingTheBodyWaitDoesNotGrowTheRecord(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	clock := now
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	raw := func(id string) []byte {
		var v []byte
		s.db.View(func(tx *bolt.Tx) error {
			v = append([]byte(nil), tx.Bucket(bucketMessages).Get([]byte(id))...)
			return nil
		})
		return v
	}
	for i, src := range []BodySource{BodyQueryExact, BodyQuery} {
		clock = now.Add(time.Duration(i) * time.Hour)
		m := msg("3000@127.0.0.1", "core-b", 1, "hello, this is a typical short message ü")
		m.BodySource = src
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		before := raw(id)
		clock = clock.Add(90 * time.Second) // a long grace: a larger time offset
		got, err := s.FinalizeBody(ctx, id)
		if err != nil || !got.BodyFinal || len(got.History) != 2 {
			t.Fatalf("finalize %s: %+v %v", src, got, err)
		}
		after := raw(id)
		if len(after) != len(before) {
			t.Errorf("%s: record %d bytes at intake, %d after the body wait closed", src, len(before), len(after))
		}
		back, err := s.Get(id)
		if err != nil || back.Reason != got.Reason || !back.Updated.Equal(clock) {
			t.Fatalf("%s: read back %+v %v", src, back, err)
		}
		// The same message as recordV1 wrote it decodes to the same.
		v1 := encodeRecord(back, 0, 0)
		v1 = append([]byte{recordV1}, v1[1:len(v1)-1]...) // version byte, no room
		old, err := decodeMessage(v1)
		if err != nil || old.Reason != back.Reason || len(old.History) != 2 {
			t.Fatalf("%s: recordV1: %+v %v", src, old, err)
		}
	}
}

// TestSummaryInChunksMatchesOneRead: Summary read a few keys per read
// transaction, so that every chunk boundary falls inside a recipient's range and
// between messages, gives what it gives in one chunk.
func TestSummaryInChunksMatchesOneRead(t *testing.T) {
	path, now, _ := inspectFixture(t)
	s := openReadOnly(t, path, now)
	whole, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	defer func(n int) { summaryChunk = n }(summaryChunk)
	for _, n := range []int{1, 2, 3} {
		summaryChunk = n
		got, err := s.Summary()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, whole) {
			t.Fatalf("chunks of %d:\n got %+v\nwant %+v", n, got, whole)
		}
	}
	if whole.Messages != 7 || whole.QueueEntries != 4 || len(whole.Recipients) != 2 {
		t.Fatalf("fixture summary %+v", whole)
	}
}

// metaOf reads the meta page bbolt uses (the valid one of the higher txid).
func metaOf(t *testing.T, path string) meta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m0, ok0 := readMeta(f, 0)
	if !ok0 {
		t.Fatal("meta page 0 unreadable")
	}
	m1, ok1 := readMeta(f, int64(m0.pageSize))
	if ok1 && m1.txid > m0.txid {
		return m1
	}
	return m0
}

// TestCleanCloseLeavesTheFreeListWritten: a store closed cleanly leaves its
// free list on a page the meta names, so the next open reads it instead of
// walking every page of the file; a commit marks it stale again (a crash then
// rebuilds it), and the file stays one the check and bbolt accept.
func TestCleanCloseLeavesTheFreeListWritten(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	for i := range 50 {
		id, err := s.Enqueue(ctx, msg("4000@127.0.0.1", "core-c", uint64(i+1), "x"))
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.Delivered(ctx, id, "a", "200 OK"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if m := metaOf(t, path); m.freelist != noFreelist {
		t.Fatalf("while running, the meta names free list page %d; want none (NoFreelistSync)", m.freelist)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if m := metaOf(t, path); m.freelist == noFreelist {
		t.Fatal("after a clean close the meta names no free list: the next open walks the file")
	}
	if err := Check(path); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, path)
	if s2.Depth("4000@127.0.0.1") != 25 {
		t.Fatalf("depth %d after reopen, want 25", s2.Depth("4000@127.0.0.1"))
	}
	if _, err := s2.Enqueue(ctx, msg("4000@127.0.0.1", "core-c", 99, "y")); err != nil {
		t.Fatal(err)
	}
	if m := metaOf(t, path); m.freelist != noFreelist {
		t.Fatalf("after a commit the meta still names free list page %d", m.freelist)
	}
}

// TestParallelCheckFindsADamagedPageAnywhere: on a file whose trees have
// several levels, so that the check hands subtrees to other goroutines, a page
// in use anywhere with a wrong header or a key out of its place is found, and an
// undamaged file passes, every time.
func TestParallelCheckFindsADamagedPageAnywhere(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	for i := range 3000 {
		if _, err := s.Enqueue(ctx, msg(fmt.Sprintf("5%03d@127.0.0.1", i%300), "core-d", uint64(i+1), "a short message")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := checkBytes(data); err != nil {
			t.Fatalf("undamaged file: %v", err)
		}
	}
	m := metaOf(t, path)
	ps := uint64(m.pageSize)
	c := &checker{r: nil, data: data, size: int64(len(data)), ps: ps, hwm: m.pgid,
		seen: make([]atomic.Uint64, (m.pgid+63)/64), par: newParallel(0)}
	if err := c.tree(m.root, nil, nil, 0, 0); err != nil {
		t.Fatal(err)
	}
	var used []uint64
	for id := uint64(2); id < m.pgid; id++ {
		if c.marked(id) && ne.Uint16(data[id*ps+8:]) != 0 {
			used = append(used, id)
		}
	}
	if len(used) < 50 {
		t.Fatalf("only %d pages in use: the trees are too small to be walked in parallel", len(used))
	}
	branches := 0
	for _, id := range used {
		if ne.Uint16(data[id*ps+8:]) == flagBranch {
			branches++
		}
		// A wrong page id in the header.
		bad := append([]byte(nil), data...)
		ne.PutUint64(bad[id*ps:], id+1)
		if err := checkBytes(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("page %d with a wrong id: %v", id, err)
		}
		// The first key's first byte raised: out of order or out of range (a
		// page of one key may stay in order; it is not asked to fail).
		if n := ne.Uint16(data[id*ps+10:]); n > 1 {
			bad = append(bad[:0], data...)
			off := id*ps + pageHeaderSize
			pos := uint64(ne.Uint32(bad[off:]))
			if ne.Uint16(data[id*ps+8:]) == flagLeaf {
				pos = uint64(ne.Uint32(bad[off+4:]))
			}
			bad[off+pos] = 0xff
			if err := checkBytes(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("page %d with its first key raised: %v", id, err)
			}
		}
	}
	if branches == 0 {
		t.Fatal("no branch page: nothing was walked in parallel")
	}
}

// TestQueuedAORsAndQueueStatsAcrossReadTransactions: with a few recipients per
// read transaction, the recipients listed and counted are those of one read.
func TestQueuedAORsAndQueueStatsAcrossReadTransactions(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	for i := range 40 {
		if _, err := s.Enqueue(ctx, msg(fmt.Sprintf("%d@x", i%7), "core", uint64(i), "b")); err != nil {
			t.Fatal(err)
		}
	}
	whole, err := s.QueuedAORs()
	if err != nil || len(whole) != 7 {
		t.Fatalf("one read: %v %v", whole, err)
	}
	defer func(n int) { recipientsPerView = n }(recipientsPerView)
	for _, n := range []int{1, 2, 3, 7} {
		recipientsPerView = n
		got, err := s.QueuedAORs()
		if err != nil || !slices.Equal(got, whole) {
			t.Fatalf("%d per read: %v %v, want %v", n, got, err, whole)
		}
		st, err := s.QueueStats()
		if err != nil || st.Recipients != 7 || st.Depth != 40 {
			t.Fatalf("%d per read: stats %+v %v", n, st, err)
		}
	}
}
