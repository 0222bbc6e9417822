//go:build linux

package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketTrimTest = []byte("trim-test")

// bigStore opens a store at path holding ≈ 32 MiB of values in a bucket of its own.
func bigStore(t *testing.T, path string, o Options) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if err := s.submit(context.Background(), newOp(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketTrimTest)
		if err != nil {
			return err
		}
		for i := range 16384 {
			v := make([]byte, 2000) // bbolt keeps v until the commit
			binary.BigEndian.PutUint32(v, uint32(i))
			if err := b.Put(binary.BigEndian.AppendUint32(nil, uint32(i)), v); err != nil {
				return err
			}
		}
		return nil
	}, nil)); err != nil {
		t.Fatal(err)
	}
	return s
}

// touchAll reads every page of the test bucket through bbolt's map and checks
// each value is the one written.
func touchAll(t *testing.T, s *Store) {
	t.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error {
		i := uint32(0)
		return tx.Bucket(bucketTrimTest).ForEach(func(k, v []byte) error {
			if len(v) != 2000 || binary.BigEndian.Uint32(v) != i || bytes.Count(v[4:], []byte{0}) != 1996 {
				t.Fatalf("value %d: read back wrong", i)
			}
			i++
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}

// storeMapRSS is how much of s's bbolt map is resident in this process
// (/proc/self/smaps): the process-wide figure also moves with the test
// binary's own pages and other tests' stores.
func storeMapRSS(t *testing.T, s *Store) int64 {
	t.Helper()
	var start string
	if err := s.db.View(func(*bolt.Tx) error {
		start = strconv.FormatUint(uint64(s.db.Info().Data), 16) + "-"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = strings.HasPrefix(line, start)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); in && ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("the store's map (at %s) is not in /proc/self/smaps", start)
	return 0
}

func TestTrimmingDropsTheMappedFileAndKeepsItReadable(t *testing.T) {
	s := bigStore(t, filepath.Join(t.TempDir(), "sipsilo.db"), Options{MapBudget: -1})
	touchAll(t, s)
	if before := storeMapRSS(t, s); before < 16<<20 {
		t.Fatalf("only %d MiB of the store mapped after reading ≈ 32 MiB", before>>20)
	}
	if err := s.trimMapping(); err != nil {
		t.Fatal(err)
	}
	if after := storeMapRSS(t, s); after > 1<<20 {
		t.Fatalf("%d KiB of the store still mapped after the trim", after>>10)
	}
	touchAll(t, s) // the pages map again from the page cache, unchanged
	if again := storeMapRSS(t, s); again < 16<<20 {
		t.Fatalf("reading after the trim mapped only %d MiB: did the reads see the file?", again>>20)
	}
}

func TestTheTrimmerKeepsTheMapWithinItsBudget(t *testing.T) {
	s := bigStore(t, filepath.Join(t.TempDir(), "sipsilo.db"), Options{MapBudget: 1})
	touchAll(t, s)
	// The trimmer runs every 250 ms; the deadline only bounds a broken one.
	deadline := time.Now().Add(30 * time.Second)
	for storeMapRSS(t, s) > 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("still %d MiB of the store mapped 30 s after the reads", storeMapRSS(t, s)>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close with the trimmer running: %v", err)
	}
}
