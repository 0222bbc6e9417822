package main

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
	if !strings.HasPrefix(s, "sipsilo "+version+"\n") || !strings.Contains(s, runtime.Version()) {
		t.Fatalf("version output:\n%s", s)
	}
	// The test binary is linked with the same modules as sipsilo.
	if !strings.Contains(s, "go.etcd.io/bbolt@v1.") || !strings.Contains(s, "github.com/emiago/sipgo@v1.") {
		t.Fatalf("version output lacks the key modules:\n%s", s)
	}
}

func TestVersionFromLinkerFlag(t *testing.T) {
	old := version
	version = "v9.9.9"
	defer func() { version = old }()
	if got := versionString(); !strings.HasPrefix(got, "v9.9.9") {
		t.Fatalf("versionString() = %q", got)
	}
}
