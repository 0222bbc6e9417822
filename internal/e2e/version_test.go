package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestVersionOfTheBuiltBinary checks what `sipsilo version` prints from a binary
// built the way README's Install says: the version from -ldflags "-X
// main.version=…" and the library versions a bug report is about.
func TestVersionOfTheBuiltBinary(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("sipsilo version: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.HasPrefix(s, "sipsilo "+builtVersion+"\n") {
		t.Fatalf("version output does not start with the linker-stamped %q:\n%s", builtVersion, s)
	}
	if !strings.Contains(s, "go.etcd.io/bbolt@v1.") || !strings.Contains(s, "github.com/emiago/sipgo@v1.") {
		t.Fatalf("version output lacks the key modules:\n%s", s)
	}
}
