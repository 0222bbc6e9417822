package handlers

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFdatasync is the disk's part of the intake latency target: a 4 KiB
// write and fdatasync of a preallocated file in the same temporary directory
// as BenchmarkIntake's bbolt file, one at a time. Run it in the same
// `go test -bench` as BenchmarkHTTPFloor and BenchmarkIntake (BENCHMARKS.md).
func BenchmarkFdatasync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "sync"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const block, blocks = 4096, 1024
	buf := make([]byte, block)
	// Preallocated and synced once, so each fdatasync below carries data only,
	// no size change.
	if _, err := f.WriteAt(make([]byte, block*blocks), 0); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		buf[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i%blocks)*block); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}
