package kv

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func payloads(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "record %d %s", from+i, bytes.Repeat([]byte{'x'}, (from+i)%97))
	}
	return out
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// checkPrefix fails unless recs are records 1..len(recs) as payloads made them.
func checkPrefix(t *testing.T, recs []journalRecord) {
	t.Helper()
	want := payloads(1, len(recs))
	for i, r := range recs {
		if r.seq != uint64(i+1) || !bytes.Equal(r.payload, want[i]) {
			t.Fatalf("record %d: seq %d payload %q, want seq %d %q", i, r.seq, r.payload, i+1, want[i])
		}
	}
}

func TestJournalReadsBackWhatItAppended(t *testing.T) {
	dir := t.TempDir()
	j, recs, err := openJournal(dir, 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Fatalf("new journal has %d records", len(recs))
	}
	for i := 1; i <= 200; i += 10 {
		last, err := j.append(payloads(i, 10))
		if err != nil {
			t.Fatal(err)
		}
		if last != uint64(i+9) {
			t.Fatalf("last seq %d, want %d", last, i+9)
		}
	}
	if j.syncs < 20 {
		t.Fatalf("%d fdatasyncs for 20 appends", j.syncs)
	}
	j.close()
	if n := len(segFiles(t, dir)); n < 2 {
		t.Fatalf("%d segments of 4 KiB for 200 records", n)
	}
	j, recs, err = openJournal(dir, 4096, 150)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if len(recs) != 50 || recs[0].seq != 151 {
		t.Fatalf("after 150: %d records from %d, want 50 from 151", len(recs), recs[0].seq)
	}
	if _, err := j.append(payloads(201, 1)); err != nil {
		t.Fatal(err)
	}
}

// A cut anywhere in the newest segment, or zeros over its tail, leaves exactly
// the whole records before it; appending then continues the sequence.
func TestJournalTornOrZeroedTailEndsAtTheLastWholeRecord(t *testing.T) {
	for round := range 40 {
		dir := t.TempDir()
		j, _, err := openJournal(dir, 1<<16, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.append(payloads(1, 300)); err != nil {
			t.Fatal(err)
		}
		end := j.off
		path := j.segs[len(j.segs)-1].path
		j.close()
		cut := rand.Int64N(end + 1)
		if round%2 == 0 {
			if err := os.Truncate(path, cut); err != nil {
				t.Fatal(err)
			}
		} else {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(make([]byte, end-cut), cut)
			f.Close()
		}
		j, recs, err := openJournal(dir, 1<<16, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkPrefix(t, recs)
		whole := 0
		for off := int64(0); whole < 300; whole++ {
			off += int64(frameHeader + len(payloads(whole+1, 1)[0]))
			if off > cut {
				break
			}
		}
		if len(recs) != whole {
			t.Fatalf("cut at %d of %d: %d records back, want %d", cut, end, len(recs), whole)
		}
		if _, err := j.append(payloads(len(recs)+1, 5)); err != nil {
			t.Fatal(err)
		}
		j.close()
		j, recs, err = openJournal(dir, 1<<16, 0)
		if err != nil {
			t.Fatal(err)
		}
		j.close()
		checkPrefix(t, recs)
		if len(recs) != whole+5 {
			t.Fatalf("after appending 5 to %d: %d records", whole, len(recs))
		}
	}
}

// Released segments are recycled: the files stay few, and the stale records in
// a recycled one never come back.
func TestJournalRecyclesAppliedSegments(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir, 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	seq := 1
	for range 100 {
		last, err := j.append(payloads(seq, 7))
		if err != nil {
			t.Fatal(err)
		}
		seq += 7
		if err := j.release(last-3, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segFiles(t, dir)); n > 3 {
		t.Fatalf("%d segment files with everything but 3 records applied", n)
	}
	j.close()
	j, recs, err := openJournal(dir, 4096, uint64(seq-4))
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if len(recs) != 3 || recs[0].seq != uint64(seq-3) {
		t.Fatalf("got %d records, want the 3 from %d", len(recs), seq-3)
	}
}

func openJournaled(t *testing.T, path string, delay time.Duration) *Store {
	t.Helper()
	s, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, Journal: true, JournalSegmentSize: 1 << 16, ApplyDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// snapshot copies the database and its journal as a kill -9 would leave them:
// what the process wrote is in the page cache, which the copy reads.
func snapshot(t *testing.T, path string, withDB, withJournal bool) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.db")
	if withDB {
		copyFile(t, path, dst)
	}
	if withJournal {
		if err := os.MkdirAll(dst+".journal", 0o700); err != nil {
			t.Fatal(err)
		}
		for _, p := range segFiles(t, path+".journal") {
			copyFile(t, p, filepath.Join(dst+".journal", filepath.Base(p)))
		}
	}
	return dst
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// queuedOnce fails unless the store holds each of ids exactly once, queued, and
// nothing else queued.
func queuedOnce(t *testing.T, s *Store, ids map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQueue).ForEach(func(k, _ []byte) error {
			seen[string(queueKeyID(k))]++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range ids {
		if seen[id] != 1 {
			t.Errorf("acknowledged %s queued %d times", id, seen[id])
		}
		m, err := s.Get(id)
		if err != nil || m.State != StateQueued {
			t.Errorf("acknowledged %s: %v %v", id, m, err)
		}
	}
	for id, n := range seen {
		if !ids[id] {
			t.Errorf("%s queued %d times, never acknowledged", id, n)
		}
	}
}

func enqueueConcurrently(t *testing.T, s *Store, clients, each int) map[string]bool {
	t.Helper()
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				id, err := s.Enqueue(context.Background(), msg(fmt.Sprintf("u%d@example.com", c%7), "core", uint64(c*1000+i), "hello"))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ids
}

// Every acknowledged message is in the journal before bbolt has it: a crash
// before the apply loses none, and the restart needs no step.
func TestJournaledEnqueueSurvivesACrashBeforeApply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Hour)
	ids := enqueueConcurrently(t, s, 16, 20)
	crashed := snapshot(t, path, true, true)
	if q, err := s.QueuedAORs(); err != nil || len(q) != 0 {
		t.Fatalf("bbolt has queues %v before the apply delay (%v)", q, err)
	}
	r := openJournaled(t, crashed, time.Hour)
	if r.Replayed() != len(ids) {
		t.Fatalf("replayed %d records, want %d", r.Replayed(), len(ids))
	}
	queuedOnce(t, r, ids)
	if got := r.Depth("u0@example.com"); got == 0 {
		t.Fatal("depth not counted after replay")
	}
}

// A bbolt file restored from an older copy beside the newer journal gets what it
// lacks, each message once; replaying records bbolt already holds (its applied
// position lost) adds nothing.
func TestJournalReplaysOntoAnOlderBboltExactlyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Millisecond)
	first := enqueueConcurrently(t, s, 4, 10)
	if err := s.Ping(context.Background()); err != nil { // applies all before it
		t.Fatal(err)
	}
	older := snapshot(t, path, true, false)
	second := enqueueConcurrently(t, s, 4, 10)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	journal := snapshot(t, path, false, true)
	copyFile(t, older, journal)
	for id := range second {
		first[id] = true
	}
	r := openJournaled(t, journal, time.Hour)
	queuedOnce(t, r, first)
	r.Close(context.Background())

	// The applied position forgotten: every record is replayed again.
	db, err := bolt.Open(journal, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyApplied) })
	db.Close()
	r = openJournaled(t, journal, time.Hour)
	if r.Replayed() == 0 {
		t.Fatal("nothing replayed with the applied position gone")
	}
	queuedOnce(t, r, first)
}

// A message whose caller was refused is never in the journal, and a release
// goes through it like an intake.
func TestJournalKeepsReleasesAndQuota(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s, err := Open(path, Options{Journal: true, JournalSegmentSize: 1 << 16, ApplyDelay: time.Hour, Quota: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ids := map[string]bool{}
	var refused int
	for i := range 5 {
		id, err := s.Enqueue(context.Background(), msg("a@example.com", "", uint64(i), "x"))
		if err != nil {
			refused++
			continue
		}
		ids[id] = true
	}
	// Decided against what is journaled, though bbolt has nothing yet.
	if refused != 2 || len(ids) != 3 {
		t.Fatalf("quota 3: %d stored, %d refused", len(ids), refused)
	}
	var gone string
	for id := range ids {
		gone = id
		break
	}
	if err := s.Release(context.Background(), gone, "test"); err != nil {
		t.Fatal(err)
	}
	delete(ids, gone)
	r := openJournaled(t, snapshot(t, path, true, true), time.Hour)
	queuedOnce(t, r, ids)
	if m, err := r.Get(gone); err != nil || m.State != StateReleased {
		t.Fatalf("released message after replay: %v %v", m, err)
	}
}

// Readers see a journaled message once it is applied, and OnApply names its
// recipient then.
func TestJournalAppliesAndWakesReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	woken := make(chan []string, 16)
	s, err := Open(path, Options{Journal: true, ApplyDelay: time.Millisecond,
		OnApply: func(aors []string) { woken <- aors }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	id, err := s.Enqueue(context.Background(), msg("b@example.com", "", 1, "x"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case aors := <-woken:
		if len(aors) != 1 || aors[0] != "b@example.com" {
			t.Fatalf("woken for %v", aors)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("never applied")
	}
	if m, err := s.Get(id); err != nil || m.State != StateQueued {
		t.Fatalf("after apply: %v %v", m, err)
	}
	if s.JournalSyncs() == 0 {
		t.Fatal("no journal fdatasync")
	}
}

// A full disk while appending: the writes that fail are in neither the journal
// nor bbolt, every acknowledged one survives a crash then, and the store takes
// writes again once space is back.
func TestJournalDiskFullFailsWritesAndLosesNothingAcknowledged(t *testing.T) {
	dir := smallTmpfs(t, "1m")
	path := filepath.Join(dir, "sipsilo.db")
	s, err := Open(path, Options{Journal: true, JournalSegmentSize: 64 << 10, ApplyDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC
		}
	}
	f.Close()

	ctx := context.Background()
	acked := map[string]bool{}
	var failed []string // bodies whose callers saw an error
	for i := range 10000 {
		body := fmt.Sprintf("message %d %s", i, bytes.Repeat([]byte{'y'}, 900))
		id, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", uint64(i), body))
		if err != nil {
			failed = append(failed, body)
			if len(failed) == 20 {
				break
			}
			continue
		}
		acked[id] = true
	}
	if len(failed) == 0 {
		t.Fatal("10000 writes succeeded on a full filesystem")
	}
	t.Logf("%d acknowledged, %d failed", len(acked), len(failed))
	// A crash now: every acknowledged message is recovered, no failed one.
	// (bbolt cannot commit on the full disk, so the copy is not taken mid-commit.)
	crashed := snapshot(t, path, true, true)
	r := openJournaled(t, crashed, time.Hour)
	queuedOnce(t, r, acked)
	r.Close(ctx)

	// Space is back: the same open store writes again and applies it all.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	late, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 99999, "after"))
	if err != nil {
		t.Fatalf("store did not recover after space was freed: %v", err)
	}
	acked[late] = true
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, path) // bbolt alone: the close applied everything
	queuedOnce(t, s2, acked)
	q, err := s2.Queue("1001@127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range q {
		for _, b := range failed {
			if string(m.Body) == b {
				t.Fatalf("a write whose caller saw an error is stored: %.20q", b)
			}
		}
	}
}

// Several segments released at once leave a spare under an old name and a gap
// of numbers; a spare rolled into keeps its stale records. Neither may hide or
// replace the records bbolt lacks.
func TestJournalKeepsUnappliedRecordsBesideStaleSegments(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir, 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	seq := 1
	for range 40 { // several segments, none released
		if _, err := j.append(payloads(seq, 5)); err != nil {
			t.Fatal(err)
		}
		seq += 5
	}
	applied := uint64(seq - 12)
	if err := j.release(applied, nil); err != nil { // many at once: a spare, the rest removed
		t.Fatal(err)
	}
	if j.spare == "" {
		t.Fatal("no spare kept")
	}
	j.close()
	j, recs, err := openJournal(dir, 4096, applied)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 11 || recs[0].seq != applied+1 {
		t.Fatalf("beside a stale spare: %d records from %d, want 11 from %d", len(recs), recs[0].seq, applied+1)
	}
	// Roll into the spare (its stale records now under a new number), crash
	// before anything is written there.
	if err := j.roll(0); err != nil {
		t.Fatal(err)
	}
	j.close()
	j, recs, err = openJournal(dir, 4096, applied)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if len(recs) != 11 || recs[0].seq != applied+1 || recs[10].seq != uint64(seq-1) {
		t.Fatalf("after rolling into the spare: %d records, want the 11 from %d", len(recs), applied+1)
	}
	if _, err := j.append(payloads(seq, 1)); err != nil {
		t.Fatal(err)
	}
}

// A caller that gives up while its record is being made durable is answered
// with an error; the message is then released through the journal, so that no
// restart delivers it.
func TestJournalReleasesAWriteWhoseCallerGaveUpDuringTheAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Hour)
	entered, release := blockWriter(t, s)
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	m := msg("1001@127.0.0.1", "c", 1, "gave up")
	errc := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(ctx, m)
		errc <- err
	}()
	waitFor(t, "the enqueue to be queued", func() bool { return len(s.ops) == 1 })
	// A journaled op behind it, in the same batch, holds the writer after the
	// enqueue ran in the transaction and before its record is synced.
	gate, inside := make(chan struct{}), make(chan struct{})
	hold := newOp(func(*bolt.Tx) error { return nil }, nil)
	hold.decide = func(*view) error { close(inside); <-gate; return nil }
	go s.submit(context.Background(), hold)
	waitFor(t, "the holder to be queued", func() bool { return len(s.ops) == 2 })
	release()
	<-inside
	cancel()
	err := <-errc
	close(gate)
	if err == nil || !strings.Contains(err.Error(), "undone") {
		t.Fatalf("enqueue whose caller gave up during its append: %v, want it undone", err)
	}
	kept, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "c", 2, "kept"))
	if err != nil {
		t.Fatal(err)
	}
	r := openJournaled(t, snapshot(t, path, true, true), time.Hour)
	got, err := r.Get(m.ID)
	if err != nil || got.State != StateReleased {
		t.Fatalf("message whose caller gave up: %+v %v, want released", got, err)
	}
	queuedOnce(t, r, map[string]bool{kept: true})
}

// A restart without the journal after a crash with it still applies what only
// the journal holds.
func TestJournalLeftBehindIsAppliedByAStoreWithoutOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Hour)
	ids := enqueueConcurrently(t, s, 4, 10)
	r := openTest(t, snapshot(t, path, true, true))
	queuedOnce(t, r, ids)
	if r.j != nil {
		t.Fatal("a store opened without a journal runs with one")
	}
	late, err := r.Enqueue(context.Background(), msg("u1@example.com", "core", 99999, "late"))
	if err != nil {
		t.Fatal(err)
	}
	ids[late] = true
	queuedOnce(t, r, ids)
}

// A read-only open (inspect) changes nothing of a journal and counts what the
// file lacks.
func TestJournalReadOnlyOpenCountsUnappliedRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Hour)
	ids := enqueueConcurrently(t, s, 2, 5)
	crashed := snapshot(t, path, true, true)
	before := segFiles(t, crashed+".journal")
	ro, err := Open(crashed, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := ro.Unapplied()
	all, err := ro.All()
	if err != nil || len(all) != len(ids) {
		t.Fatalf("read-only All: %d messages (%v), want the %d only the journal holds", len(all), err, len(ids))
	}
	for _, m := range all {
		if got, err := ro.Get(m.ID); !ids[m.ID] || err != nil || got.State != StateQueued {
			t.Fatalf("read-only Get %s: %+v %v", m.ID, got, err)
		}
	}
	ro.Close(context.Background())
	if n != len(ids) {
		t.Fatalf("read-only open counts %d unapplied, want %d", n, len(ids))
	}
	if after := segFiles(t, crashed+".journal"); len(after) != len(before) {
		t.Fatalf("read-only open changed the journal: %v → %v", before, after)
	}
	r := openJournaled(t, crashed, time.Hour)
	queuedOnce(t, r, ids)
}

// Delivery steps go through the journal like intake: answered once durable
// there, read back at once by their caller (Get consults what is not applied
// yet), and replayed after a crash, so that a delivered message stays delivered
// and a later one is recovered.
func TestJournalReplayAfterDeliveryKeepsEachStateOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Hour)
	ctx := context.Background()
	a, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 1, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginAttempt(ctx, a, "att-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, a, "att-1", "200 OK"); err != nil {
		t.Fatal(err)
	}
	b, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 2, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.Get(a); err != nil || m.State != StateDelivered {
		t.Fatalf("a read back before the apply: %+v %v", m, err)
	}
	if q, err := s.Queue("1001@127.0.0.1", 0); err != nil || len(q) != 1 || q[0].ID != b {
		t.Fatalf("queue read back before the apply: %d messages (%v), want b alone: a delivered, b not applied", len(q), err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMessages).Get([]byte(b)) != nil {
			return fmt.Errorf("bbolt has b before the apply delay")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := openJournaled(t, snapshot(t, path, true, true), time.Hour)
	if r.Replayed() != 4 {
		t.Fatalf("replayed %d records, want 4: two enqueues, the attempt, the delivery", r.Replayed())
	}
	if m, err := r.Get(a); err != nil || m.State != StateDelivered || m.Attempts != 1 {
		t.Fatalf("a after replay: %+v %v, want delivered after one attempt", m, err)
	}
	queuedOnce(t, r, map[string]bool{b: true})
}

// A replay at open adds to the depths the file holds: a recipient with
// messages applied before the crash and more only in the journal has them all
// counted, now and at every later open (the depths bucket is written by the
// replay).
func TestJournalReplayAddsToTheStoredDepths(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Hour)
	const aor = "u0@example.com"
	for i := range 3 {
		if _, err := s.Enqueue(context.Background(), msg(aor, "core", uint64(i+1), "applied")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := s.Enqueue(context.Background(), msg(aor, "core", uint64(i+10), "journal only")); err != nil {
			t.Fatal(err)
		}
	}
	crashed := snapshot(t, path, true, true)
	for round := range 2 {
		r := openJournaled(t, crashed, time.Hour)
		if d := r.Depth(aor); d != 5 {
			t.Fatalf("open %d after the crash: depth %d, want 5", round+1, d)
		}
		if err := r.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// The next segment is preallocated off the appender's path, at the start and
// once half of the current one is used: an append that starts a segment only
// renames it.
func TestJournalPreparesTheNextSegmentAhead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openJournaled(t, path, time.Hour) // 64 KiB segments
	spare := filepath.Join(path+".journal", spareName)
	waitSpare := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if fi, err := os.Stat(spare); err == nil && fi.Size() == 1<<16 && len(s.j.spares) == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no segment prepared %s", what)
			}
		}
	}
	waitSpare("at the start")
	ctx := context.Background()
	if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 1, "first")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spare); !os.IsNotExist(err) {
		t.Fatalf("the first segment was not made from the prepared file: %v", err)
	}
	if n := len(segFiles(t, path+".journal")); n != 1 {
		t.Fatalf("%d segments", n)
	}
	// Past half of the segment: the next one is prepared.
	body := strings.Repeat("x", 1000)
	for i := 2; s.appendedSeq.Load() < 40; i++ {
		if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", uint64(i), body)); err != nil {
			t.Fatal(err)
		}
	}
	waitSpare("past half of the first segment")
	for i := 100; s.appendedSeq.Load() < 80; i++ {
		if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", uint64(i), body)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segFiles(t, path+".journal")); n < 2 {
		t.Fatalf("%d segments after %d KiB of records", n, 80)
	}
	ids := map[string]bool{}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	q, err := s.Queue("1001@127.0.0.1", 0)
	if err != nil || len(q) != 80 {
		t.Fatalf("%d queued: %v", len(q), err)
	}
	for _, m := range q {
		ids[m.ID] = true
	}
	crashed := snapshot(t, path, true, true)
	r := openJournaled(t, crashed, time.Hour)
	queuedOnce(t, r, ids)
}

// With no prepared segment at hand, an append starts a short one
// (inlineSegment) rather than preallocating a whole segment while its callers
// wait; the records read back across them, and a short segment is not kept
// as the spare once freed.
func TestJournalStartsAShortSegmentWhenNoneIsPrepared(t *testing.T) {
	dir := t.TempDir()
	const segSize = 4 * inlineSegment
	j, _, err := openJournal(dir, segSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	// ≈ 2.5 short segments of records, in groups of 50.
	for seq := 1; seq <= 30000; seq += 50 {
		if _, err := j.append(payloads(seq, 50)); err != nil {
			t.Fatal(err)
		}
	}
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	for _, p := range segs {
		if fi, err := os.Stat(p); err != nil || fi.Size() != inlineSegment {
			t.Fatalf("%s: %v, %d bytes, want %d", p, err, fi.Size(), inlineSegment)
		}
	}
	if err := j.release(j.next-1-50, nil); err != nil { // all but the last group applied
		t.Fatal(err)
	}
	if j.spare != "" || len(segFiles(t, dir)) != 1 {
		t.Fatalf("spare %q, %d segments left", j.spare, len(segFiles(t, dir)))
	}
	j.close()
	j, recs, err := openJournal(dir, segSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if len(recs) == 0 || recs[len(recs)-1].seq != 30000 {
		t.Fatalf("read back %d records", len(recs))
	}
	// A whole-size segment offered by the sparer is taken as it is.
	spare, err := prepareSpare(dir, segSize)
	if err != nil {
		t.Fatal(err)
	}
	j.spares = make(chan string, 1)
	j.spares <- spare
	if err := j.roll(0); err != nil {
		t.Fatal(err)
	}
	if j.room() != segSize {
		t.Fatalf("room %d after the prepared segment, want %d", j.room(), segSize)
	}
}
