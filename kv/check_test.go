package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// seedStore writes a real store with n messages (enough for branch pages from about
// 40 on) and one presence record, closed.
func seedStore(t testing.TB, path string, n int) {
	s, err := Open(path, Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for i := range n {
		body := strings.Repeat(fmt.Sprintf("message %d ", i), 3)
		if _, err := s.Enqueue(context.Background(), msg(fmt.Sprintf("10%02d@example.com", i%7), "core-a", uint64(i+1), body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.submit(context.Background(), newOp(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReach).Put([]byte("1001@example.com"), []byte(`{"aor":"1001@example.com"}`))
	}, nil)); err != nil {
		t.Fatal(err)
	}
}

// rootPage is the root page id of a top-level bucket of the file at path.
func rootPage(t testing.TB, path string, bucket []byte) uint64 {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id uint64
	db.View(func(tx *bolt.Tx) error {
		id = uint64(tx.Bucket(bucket).RootPage())
		return nil
	})
	return id
}

const testPageSize = 4096

// damage is a way to break a real store file, as a truncation, a bit flip or a
// crafted page would.
type damage struct {
	name string
	fn   func(t testing.TB, path string, b []byte) []byte
}

func setPgid(b []byte, page uint64, off int, v uint64) {
	ne.PutUint64(b[page*testPageSize+uint64(off):], v)
}

// rewriteMetas changes both meta pages with fn and recomputes their checksums, as
// a crafted file would.
func rewriteMetas(b []byte, fn func(m []byte)) {
	for _, off := range []int{0, testPageSize} {
		m := b[off+metaOffset : off+metaOffset+metaSize]
		fn(m)
		h := fnv.New64a()
		h.Write(m[:metaSumLen])
		ne.PutUint64(m[56:], h.Sum64())
	}
}

var damages = []damage{
	{"truncated", func(_ testing.TB, _ string, b []byte) []byte { return b[:len(b)/2] }},
	{"truncated-to-a-page", func(_ testing.TB, _ string, b []byte) []byte { return b[:testPageSize] }},
	{"metas-zeroed", func(_ testing.TB, _ string, b []byte) []byte {
		clear(b[:2*testPageSize])
		return b
	}},
	{"branch-points-to-itself", func(t testing.TB, path string, b []byte) []byte {
		root := rootPage(t, path, bucketMessages)
		if ne.Uint16(b[root*testPageSize+8:]) != flagBranch {
			t.Fatalf("messages root page %d is not a branch page", root)
		}
		setPgid(b, root, pageHeaderSize+8, root) // first element's child
		return b
	}},
	{"page-referenced-twice", func(t testing.TB, path string, b []byte) []byte {
		root := rootPage(t, path, bucketMessages)
		first := ne.Uint64(b[root*testPageSize+pageHeaderSize+8:])
		setPgid(b, root, pageHeaderSize+elemSize+8, first) // second child = first child
		return b
	}},
	{"child-beyond-the-file", func(t testing.TB, path string, b []byte) []byte {
		root := rootPage(t, path, bucketMessages)
		setPgid(b, root, pageHeaderSize+8, 1<<40)
		return b
	}},
	{"leaf-element-outside-its-page", func(t testing.TB, path string, b []byte) []byte {
		root := rootPage(t, path, bucketMessages)
		leaf := ne.Uint64(b[root*testPageSize+pageHeaderSize+8:])
		ne.PutUint32(b[leaf*testPageSize+pageHeaderSize+4:], 1<<30) // pos of element 0
		return b
	}},
	{"tree-page-typed-free-list", func(t testing.TB, path string, b []byte) []byte {
		root := rootPage(t, path, bucketMessages)
		ne.PutUint16(b[root*testPageSize+8:], flagFreelist)
		return b
	}},
	{"page-count-beyond-the-file", func(_ testing.TB, _ string, b []byte) []byte {
		rewriteMetas(b, func(m []byte) { ne.PutUint64(m[40:], ne.Uint64(m[40:])+1000) })
		return b
	}},
	{"root-is-a-meta-page", func(_ testing.TB, _ string, b []byte) []byte {
		rewriteMetas(b, func(m []byte) { ne.PutUint64(m[16:], 1) })
		return b
	}},
}

// TestOpenRefusesDamagedFiles: each damage, which made bbolt panic in a goroutine
// nobody recovers (killing the process), fault, or recurse without end, is now
// refused with ErrCorrupt, read-write and read-only.
func TestOpenRefusesDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	seedStore(t, good, 200)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "damaged.db")
			if err := os.WriteFile(path, d.fn(t, good, append([]byte(nil), orig...)), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				s, err := Open(path, Options{ReadOnly: ro, LockTimeout: time.Second})
				if err == nil {
					s.Close(context.Background())
					t.Fatalf("read-only %v: damaged file opened", ro)
				}
				if !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("read-only %v: err = %v, want one line wrapping ErrCorrupt", ro, err)
				}
			}
		})
	}
	// The undamaged file still opens, so the check is not simply refusing.
	s, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
}

func TestEmptyFileIsRefusedUnlessANewStoreIsAsked(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(empty, Options{}); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "--new-store") {
		t.Fatalf("empty file: err = %v, want ErrEmpty naming --new-store", err)
	}
	if fi, _ := os.Stat(empty); fi.Size() != 0 {
		t.Fatalf("refused empty file was written to (%d bytes)", fi.Size())
	}
	if _, err := Open(empty, Options{ReadOnly: true, NewStore: true}); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty file read-only: err = %v, want ErrEmpty", err)
	}
	s, err := Open(empty, Options{NewStore: true})
	if err != nil {
		t.Fatalf("empty file with NewStore: %v", err)
	}
	s.Close(context.Background())
	// A path that does not exist is a new store without asking.
	s, err = Open(filepath.Join(dir, "fresh.db"), Options{})
	if err != nil {
		t.Fatalf("fresh path: %v", err)
	}
	s.Close(context.Background())
}

// TestSeedFiles keeps testdata's seed files honest: the store files open and read,
// the damaged ones are refused. SIPSILO_WRITE_SEEDS=1 writes them anew.
func TestSeedFiles(t *testing.T) {
	if os.Getenv("SIPSILO_WRITE_SEEDS") == "1" {
		writeSeeds(t)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.db"))
	if len(files) < 4 {
		t.Fatalf("only %d seed files in testdata", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The mapped and the read path agree.
		if e1, e2 := checkBytes(data), checkFile(bytes.NewReader(data), int64(len(data))); (e1 == nil) != (e2 == nil) {
			t.Errorf("%s: in memory %v, read %v", f, e1, e2)
		}
		err = openAndRead(t, data)
		if strings.HasPrefix(filepath.Base(f), "store-") {
			if err != nil {
				t.Errorf("%s: %v", f, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", f, err)
		}
	}
}

func writeSeeds(t *testing.T) {
	dir := t.TempDir()
	old, _ := filepath.Glob(filepath.Join("testdata", "*.db"))
	for _, f := range old {
		os.Remove(f)
	}
	for _, n := range []int{0, 3, 30} {
		raw := filepath.Join(dir, fmt.Sprintf("raw%d.db", n))
		seedStore(t, raw, n)
		path := filepath.Join(dir, fmt.Sprintf("s%d.db", n))
		compact(t, path, raw)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// bbolt grows files ahead of use; the pages in use are enough (and keep
		// the fuzz inputs small).
		m, _ := parseMeta(b[testPageSize:])
		if m0, _ := parseMeta(b); m0.txid > m.txid {
			m = m0
		}
		b = b[:m.pgid*testPageSize]
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", fmt.Sprintf("store-%d.db", n)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if n != 30 {
			continue
		}
		for _, d := range damages {
			out := d.fn(t, path, append([]byte(nil), b...))
			if err := os.WriteFile(filepath.Join("testdata", "damaged-"+d.name+".db"), out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// compact copies the store at src into a new file dst without free pages.
func compact(t *testing.T, dst, src string) {
	from, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	to, err := bolt.Open(dst, 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	if err := bolt.Compact(to, from, 0); err != nil {
		t.Fatal(err)
	}
}

// openAndRead opens data as a store file, read-write (which rebuilds bbolt's free
// list) and read-only, and reads every view inspect and the admin API show.
func openAndRead(t testing.TB, data []byte) error {
	path := filepath.Join(t.TempDir(), "f.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		s, err := Open(path, Options{ReadOnly: ro, LockTimeout: time.Second})
		if err != nil {
			return err
		}
		readAll(s)
		if err := s.Close(context.Background()); err != nil {
			return err
		}
	}
	return nil
}

func readAll(s *Store) {
	s.Verify()
	s.Summary()
	s.Stats()
	s.All()
	s.AwaitingBody()
	if aors, err := s.QueuedAORs(); err == nil {
		for _, a := range aors {
			s.QueuePage(a, "", 0)
		}
	}
	for _, st := range []State{StateQueued, StateDead, StateDelivered} {
		s.MessagePage(st, "", 0)
	}
	s.OutboxPage("", 0)
	s.ReachPage("", 0)
}

// FuzzOpenDatabaseFile: no file, however damaged, may panic, fault or hang Open or
// the reads after it. Seeds are real store files and damaged copies (testdata).
func FuzzOpenDatabaseFile(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.db"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			openAndRead(t, data)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("open and read of one file did not finish in 20 s")
		}
	})
}
