// Command fdatasync measures the disk's floor for a durable answer: a 4 KiB
// write at a fixed offset of a preallocated file followed by fdatasync, n times
// back to back, in a directory on the disk under test. It prints the result as
// a Go benchmark line (p50-ms, p90-ms, p99-ms), so that scripts/bench/all.sh
// reads it with the other benchmarks.
//
//	go run ./scripts/bench/fdatasync -dir /var/lib/sipsilo -n 500
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to measure")
	n := flag.Int("n", 500, "writes, each followed by fdatasync")
	flag.Parse()
	f, err := os.CreateTemp(*dir, "fdatasync-*")
	if err != nil {
		fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	if _, err := f.WriteAt(page, 0); err != nil {
		fatal(err)
	}
	if err := f.Sync(); err != nil { // size and blocks settled: what follows syncs data only
		fatal(err)
	}
	lat := make([]time.Duration, 0, *n)
	for i := range *n {
		page[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(page, 0); err != nil {
			fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	fmt.Printf("BenchmarkFdatasync4KiB \t%d\t%.3f p50-ms\t%.3f p90-ms\t%.3f p99-ms\n", *n, q(0.5), q(0.9), q(0.99))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fdatasync:", err)
	os.Exit(1)
}
