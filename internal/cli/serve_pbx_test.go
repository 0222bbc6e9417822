package cli

import (
	"bytes"
	"testing"

	"github.com/sipsilo/sipsilo/internal/daemon"
)

// TestServePBXFlags: --pbx picks the switch (FreeSWITCH by default), the AMI
// settings come from flags and SIPSILO_* like every other, and an unknown
// switch is refused.
func TestServePBXFlags(t *testing.T) {
	var stderr bytes.Buffer
	cfg, err := parseServe(nil, noEnv, &stderr)
	if err != nil || cfg.PBX != daemon.PBXFreeSWITCH {
		t.Fatalf("default: %q %v", cfg.PBX, err)
	}
	cfg, err = parseServe([]string{"--pbx", "asterisk", "--ami", "127.0.0.1:6038", "--ast-domain", "pbx.example"},
		envOf(map[string]string{"SIPSILO_AMI_SECRET": "from env"}), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := daemon.AsteriskConfig{AMIAddr: "127.0.0.1:6038", AMIUser: "sipsilo", AMISecret: "from env", Domain: "pbx.example"}
	if cfg.PBX != daemon.PBXAsterisk || cfg.Asterisk != want {
		t.Fatalf("got %q %+v", cfg.PBX, cfg.Asterisk)
	}
	if _, err := parseServe([]string{"--pbx", "yate"}, noEnv, &stderr); err == nil {
		t.Fatal("--pbx yate accepted")
	}
}
