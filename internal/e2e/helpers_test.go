package e2e

import (
	"crypto/sha256"
	"os"
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
