package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Phone numbers as user parts, no other output could contain by chance (the same
// as internal/cli's inspect tests).
const (
	phoneFrom    = "4915112340001"
	phoneOnline  = "4915112340002"
	phoneOffline = "4915112340003"
)

func sumFile(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// mustContain fails t for each of wants that out lacks (as internal/cli's
// check-fs tests do; the real-FreeSWITCH check-fs scenarios use it here).
func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// smallDisk mounts a tmpfs of size (e.g. "1m") on a fresh directory, unmounted
// when the test ends; without root the test skips (fails under
// SIPSILO_REQUIRE_INTEGRATION=1).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		requireIntegration(t, fmt.Sprintf("cannot mount a tmpfs (needs root): %v %s", err, out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fillDisk writes a file in dir until its filesystem is full and returns its
// path (removing it gives the space back).
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			return filler // ENOSPC
		}
	}
}
