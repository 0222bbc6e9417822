package kv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// blockApplier holds the applier inside a bbolt transaction (an operation
// without a journal record runs there) until release is called.
func blockApplier(t *testing.T, s *Store) (release func()) {
	t.Helper()
	gate, inside := make(chan struct{}), make(chan struct{})
	o := newOp(func(*bolt.Tx) error { close(inside); <-gate; return nil }, nil)
	done := make(chan error, 1)
	go func() { done <- s.submit(context.Background(), o) }()
	<-inside
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(gate)
			if err := <-done; err != nil {
				t.Errorf("the holding op: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// Answers do not wait for bbolt: with the applier held inside a transaction,
// intake and delivery steps are answered from the journal, read back through
// Get, and reach bbolt once the applier goes on.
func TestJournalAnswersWhileTheApplierIsHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Millisecond)
	release := blockApplier(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ids := map[string]bool{}
	for i := range 20 {
		id, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", uint64(i+1), "held"))
		if err != nil {
			t.Fatalf("enqueue %d with the applier held: %v", i, err)
		}
		ids[id] = true
	}
	var first string
	for id := range ids {
		first = id
		break
	}
	if _, err := s.BeginAttempt(ctx, first, "a1", time.Now()); err != nil {
		t.Fatalf("begin attempt with the applier held: %v", err)
	}
	if err := s.Delivered(ctx, first, "a1", "200 OK"); err != nil {
		t.Fatalf("delivered with the applier held: %v", err)
	}
	if m, err := s.Get(first); err != nil || m.State != StateDelivered {
		t.Fatalf("read back before the apply: %+v %v", m, err)
	}
	delete(ids, first)
	if n := s.Commits(); s.appliedSeq.Load() != 0 {
		t.Fatalf("bbolt applied records while the applier was held (%d commits)", n)
	}
	release()
	waitFor(t, "the records to be applied", func() bool { return s.appliedSeq.Load() == s.appendedSeq.Load() })
	queuedOnce(t, s, ids)
	if got := s.Depth("1001@127.0.0.1"); got != 19 {
		t.Fatalf("depth %d after the apply, want 19", got)
	}
}

// The quota is decided against bbolt plus what is not applied yet: with the
// applier held, concurrent intake takes exactly the free slots, and a delivery
// not yet applied frees one.
func TestJournalQuotaCountsTheUnappliedRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, Journal: true, JournalSegmentSize: 1 << 16,
		ApplyDelay: time.Millisecond, Quota: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	first, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 1, "applied"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first to be applied", func() bool { return s.Depth("1001@127.0.0.1") == 1 })
	release := blockApplier(t, s)
	var stored, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			_, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", uint64(100+i), "racing"))
			switch {
			case err == nil:
				stored.Add(1)
			case errors.Is(err, ErrQuota):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if stored.Load() != 4 || refused.Load() != 8 {
		t.Fatalf("stored %d, refused %d with 4 slots free; want 4 and 8", stored.Load(), refused.Load())
	}
	if _, err := s.BeginAttempt(ctx, first, "a1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, first, "a1", "200 OK"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 999, "freed")); err != nil {
		t.Fatalf("enqueue after a delivery not yet applied: %v", err)
	}
	if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 1000, "over")); !errors.Is(err, ErrQuota) {
		t.Fatalf("sixth queued: %v, want ErrQuota", err)
	}
	release()
	waitFor(t, "the records to be applied", func() bool { return s.appliedSeq.Load() == s.appendedSeq.Load() })
	if got := s.Depth("1001@127.0.0.1"); got != 5 {
		t.Fatalf("depth %d after the apply, want 5", got)
	}
}

// The records not yet applied are bounded: past the bound the appender waits
// for the applier, and a caller whose deadline passes meanwhile stores nothing.
func TestJournalBackPressureBoundsWhatIsNotApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Millisecond)
	s.aq.mu.Lock()
	s.aq.maxRecs = 10
	s.aq.mu.Unlock()
	release := blockApplier(t, s)
	ids := map[string]bool{}
	for i := range 10 {
		id, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "c", uint64(i+1), "within"))
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	m := msg("1001@127.0.0.1", "c", 11, "past the bound")
	_, err := s.Enqueue(ctx, m)
	cancel()
	if err == nil {
		t.Fatal("an eleventh record appended with ten not applied and a bound of ten")
	}
	release()
	id, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "c", 12, "after"))
	if err != nil {
		t.Fatalf("enqueue once the applier went on: %v", err)
	}
	ids[id] = true
	waitFor(t, "the records to be applied", func() bool { return s.appliedSeq.Load() == s.appendedSeq.Load() })
	queuedOnce(t, s, ids)
}

// A bbolt file restored from an older copy beside a journal whose segments
// were recycled since (a newer file held their records) is refused at Open:
// replaying what is left onto it would bring back a message delivered in the
// records that are gone. Moving the journal aside runs on the copy as it is.
func TestJournalOlderBboltBesideARecycledJournalIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sipsilo.db")
	s := openJournaled(t, path, time.Millisecond)
	ctx := context.Background()
	early, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 1, "delivered later"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil { // applied once everything before it is
		t.Fatal(err)
	}
	older := snapshot(t, path, true, false)
	if _, err := s.BeginAttempt(ctx, early, "a1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, early, "a1", "200 OK"); err != nil {
		t.Fatal(err)
	}
	// Enough records to fill several 64 KiB segments, applied and recycled.
	body := string(make([]byte, 2000))
	for i := range 200 {
		if _, err := s.Enqueue(ctx, msg("1002@127.0.0.1", "c", uint64(10+i), body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "segments to be recycled", func() bool {
		cp, err := readCheckpoint(path + ".journal")
		return err == nil && cp > 3
	})
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	copyFile(t, older, path)
	_, err = Open(path, Options{LockTimeout: 100 * time.Millisecond, Journal: true, JournalSegmentSize: 1 << 16})
	if !errors.Is(err, ErrJournalGap) {
		t.Fatalf("open of an older file beside a recycled journal: %v, want ErrJournalGap", err)
	}
	// Nor does a store without the journal apply what is left of it.
	if _, err := Open(path, Options{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrJournalGap) {
		t.Fatalf("open without the journal: %v, want ErrJournalGap", err)
	}
	if err := os.Rename(path+".journal", filepath.Join(dir, "journal.aside")); err != nil {
		t.Fatal(err)
	}
	r := openJournaled(t, path, time.Millisecond)
	if m, err := r.Get(early); err != nil || m.State != StateQueued {
		t.Fatalf("the copy as it was: %+v %v", m, err)
	}
}

// Sync hands bbolt every write answered before it, without waiting for the
// apply delay: readers of bbolt alone (QueuedAORs) then see them.
func TestJournalSyncAppliesWhatWasAnswered(t *testing.T) {
	s := openJournaled(t, filepath.Join(t.TempDir(), "sipsilo.db"), time.Hour)
	ctx := context.Background()
	if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 1, "x")); err != nil {
		t.Fatal(err)
	}
	if q, err := s.QueuedAORs(); err != nil || len(q) != 0 {
		t.Fatalf("queued recipients before the apply: %v %v", q, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	if q, err := s.QueuedAORs(); err != nil || len(q) != 1 {
		t.Fatalf("queued recipients after Sync: %v %v", q, err)
	}
}

// Opening reads the journal through a small buffer and keeps only the records
// bbolt lacks: reading each preallocated 32 MiB segment whole made start-up cost
// its size in memory (docs/decisions.md §35, "Memory").
func TestOpeningStreamsTheJournal(t *testing.T) {
	const segSize = 8 << 20
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s, err := Open(path, Options{Journal: true, JournalSegmentSize: segSize, MapBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "core-a", uint64(i+1), "hello")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(path+".journal", "*"+segmentSuffix))
	if len(segs) == 0 {
		t.Fatal("no journal segment left to read")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := Open(path, Options{Journal: true, JournalSegmentSize: segSize, MapBudget: -1})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	if got := after.TotalAlloc - before.TotalAlloc; got > uint64(len(segs))*segSize/2 {
		t.Fatalf("opening allocated %d MiB for %d segments of %d MiB", got>>20, len(segs), segSize>>20)
	}
	if q, err := r.Queue("1001@127.0.0.1", 100); err != nil || len(q) != 20 {
		t.Fatalf("reopened with %d queued (%v), want 20", len(q), err)
	}
}

func TestScanSegmentReturnsCopiesOfWhatBboltLacks(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir, 1<<16, 0)
	if err != nil {
		t.Fatal(err)
	}
	var payloads [][]byte
	for i := range 10 {
		payloads = append(payloads, fmt.Appendf(nil, "record %d", i))
	}
	if _, err := j.append(payloads); err != nil {
		t.Fatal(err)
	}
	seg := j.segs[0]
	j.close()
	sc, recs, err := scanSegment(seg.path, seg.n, 4)
	if err != nil {
		t.Fatal(err)
	}
	if sc.n != 10 || sc.first != 1 || sc.last != 10 || len(recs) != 6 || recs[0].seq != 5 {
		t.Fatalf("scan: %+v, %d records from seq %d; want 10 records 1..10, 6 returned from 5", sc, len(recs), recs[0].seq)
	}
	for _, r := range recs {
		if want := fmt.Sprintf("record %d", r.seq-1); string(r.payload) != want || cap(r.payload) != len(r.payload) {
			t.Fatalf("record %d: %q (cap %d), want %q in a slice of its own", r.seq, r.payload, cap(r.payload), want)
		}
	}
}
