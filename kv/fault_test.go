package kv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// requireIntegration skips a test whose environment is missing, unless CI demands it
// (docs/decisions.md §11).
func requireIntegration(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("SIPSILO_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration test cannot run: %s", why)
	}
	t.Skip(why)
}

// smallTmpfs mounts a size-limited tmpfs: a real filesystem that runs out of space.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		requireIntegration(t, fmt.Sprintf("cannot mount a tmpfs (needs root): %v %s", err, out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func TestDiskFullFailsWritesAndLosesNothingAcknowledged(t *testing.T) {
	dir := smallTmpfs(t, "512k")
	path := filepath.Join(dir, "sipsilo.db")
	s, err := Open(path, Options{})
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
	var acked []string
	var failure error
	body := string(make([]byte, 1000))
	for i := range 10000 {
		id, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", uint64(i), body))
		if err != nil {
			failure = err
			break
		}
		acked = append(acked, id)
	}
	if failure == nil {
		t.Fatal("10000 writes succeeded on a full filesystem")
	}
	t.Logf("%d writes acknowledged before: %v", len(acked), failure)

	// Space comes back: the same open store writes again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	late, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", 99999, "after"))
	if err != nil {
		t.Fatalf("store did not recover after space was freed: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	for _, id := range append(acked, late) {
		if _, err := s2.Get(id); err != nil {
			t.Fatalf("acknowledged message lost: %v", err)
		}
	}
	q, err := s2.Queue("1001@127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != len(acked)+1 {
		t.Fatalf("queue holds %d, want %d (a failed write was half-stored?)", len(q), len(acked)+1)
	}
}

// readOnlyFile opens the database file read-only whatever bbolt asks for, which fails
// every write with EBADF even for root, who ignores permission bits.
func readOnlyFile(name string, _ int, _ os.FileMode) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY, 0)
}

func TestUnwritableFileFailsWritesClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	id, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "c", 1, "before"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())

	ro, err := Open(path, Options{OpenFile: readOnlyFile})
	if err != nil {
		t.Fatalf("opening an initialised file must not need a write: %v", err)
	}
	defer ro.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ro.Enqueue(ctx, msg("1001@127.0.0.1", "c", 2, "after")); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write to a read-only file: err = %v, want an I/O error", err)
	}
	if got, err := ro.Get(id); err != nil || string(got.Body) != "before" {
		t.Fatalf("earlier message unreadable: %v", err)
	}
}

// TestPingFailsOnAFullDisk: /readyz's store check committed an empty transaction,
// which rewrites only a meta page and succeeded while intake failed for lack of
// space. Ping now allocates as intake does.
func TestPingFailsOnAFullDisk(t *testing.T) {
	dir := smallTmpfs(t, "512k")
	s, err := Open(filepath.Join(dir, "sipsilo.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping with space: %v", err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break // ENOSPC
		}
	}
	f.Close()
	body := string(make([]byte, 1000))
	for i := 0; ; i++ {
		if _, err := s.Enqueue(ctx, msg("1001@127.0.0.1", "c", uint64(i), body)); err != nil {
			break
		}
		if i == 10000 {
			t.Fatal("10000 writes succeeded on a full filesystem")
		}
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("ping succeeded while intake fails for lack of space")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after space came back: %v", err)
	}
}
