package cli

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

func TestVersionPrintsBuildInfo(t *testing.T) {
	var out bytes.Buffer
	if err := Main(context.Background(), []string{"version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.HasPrefix(s, "sipsilo "+Version+"\n") || !strings.Contains(s, runtime.Version()) {
		t.Fatalf("version output:\n%s", s)
	}
	// A test binary of a library package carries no module list; the binary's
	// own is checked in internal/e2e (TestVersionOfTheBuiltBinary).
}

func TestVersionFromLinkerFlag(t *testing.T) {
	old := Version
	Version = "v9.9.9"
	defer func() { Version = old }()
	if got := versionString(); !strings.HasPrefix(got, "v9.9.9") {
		t.Fatalf("versionString() = %q", got)
	}
}
