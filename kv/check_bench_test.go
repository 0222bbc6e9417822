package kv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkCheckFile measures the check every Open makes before bbolt reads the
// file, against bbolt's own open (which rebuilds its free list by walking every
// tree) on the same file. Results: BENCHMARKS.md ("Open: the file check").
func BenchmarkCheckFile(b *testing.B) {
	for _, n := range checkBenchSizes {
		path := filepath.Join(b.TempDir(), "db")
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		fillQueue(b, s, n, 1_000, time.Now().Add(-time.Hour))
		s.Close(context.Background())
		fi, _ := os.Stat(path)
		b.Run(fmt.Sprintf("queued=%d/check", n), func(b *testing.B) {
			for b.Loop() {
				if err := Check(path); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
		})
		b.Run(fmt.Sprintf("queued=%d/bbolt-open", n), func(b *testing.B) {
			for b.Loop() {
				db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
				if err != nil {
					b.Fatal(err)
				}
				db.Close()
			}
		})
	}
}

// checkBenchSizes are the queue lengths BenchmarkCheckFile builds.
var checkBenchSizes = []int{100_000, 1_000_000}
