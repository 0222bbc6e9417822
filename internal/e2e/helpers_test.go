package e2e

import (
	"crypto/sha256"
	"os"
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
