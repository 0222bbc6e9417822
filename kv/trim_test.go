//go:build linux

package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
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

func TestTrimmingDropsTheMappedFileAndKeepsItReadable(t *testing.T) {
	s := bigStore(t, filepath.Join(t.TempDir(), "sipsilo.db"), Options{MapBudget: -1})
	touchAll(t, s)
	before := mappedBytes()
	if err := s.trimMapping(); err != nil {
		t.Fatal(err)
	}
	after := mappedBytes()
	if before-after < 16<<20 {
		t.Fatalf("mapped %d MiB before the trim, %d MiB after: want ≥ 16 MiB fewer", before>>20, after>>20)
	}
	touchAll(t, s) // the pages map again from the page cache, unchanged
	if again := mappedBytes(); again-after < 16<<20 {
		t.Fatalf("reading after the trim mapped only %d MiB: did the reads see the file?", (again-after)>>20)
	}
}

func TestTheTrimmerKeepsTheMapWithinItsBudget(t *testing.T) {
	s := bigStore(t, filepath.Join(t.TempDir(), "sipsilo.db"), Options{MapBudget: 1})
	touchAll(t, s)
	touched := mappedBytes()
	deadline := time.Now().Add(10 * time.Second)
	for mappedBytes() > touched-16<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("still %d MiB mapped 10 s after the reads (%d MiB then)", mappedBytes()>>20, touched>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close with the trimmer running: %v", err)
	}
}
