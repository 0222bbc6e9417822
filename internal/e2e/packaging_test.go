package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSystemdUnitVerifies runs systemd's own checker on the unit, with ExecStart
// pointed at a built sipsilo.
func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		requireIntegration(t, "systemd-analyze not installed")
	}
	raw, err := os.ReadFile("../../packaging/sipsilo.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "sipsilo.service")
	text := strings.ReplaceAll(string(raw), "/usr/local/bin/sipsilo", binary)
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sa, "verify", unit).CombinedOutput()
	// verify also reports on units the system lacks (freeswitch.service in After=
	// is fine to be absent); anything about sipsilo.service itself is a defect.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "sipsilo.service") {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
	if err != nil && !strings.Contains(string(out), "sipsilo.service") {
		t.Logf("systemd-analyze exited %v (nothing about sipsilo.service):\n%s", err, out)
	}
}
