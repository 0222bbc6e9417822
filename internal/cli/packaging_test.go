package cli

import (
	"bufio"
	"io"
	"os"
	"strings"
	"testing"
)

// unitDirectives reads a systemd unit into directive → values (a directive may repeat).
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a directive: %q", path, line)
		}
		out[k] = append(out[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSystemdUnit keeps the shipped unit hardened and its command line in step with
// serve's flags and the example config.
func TestSystemdUnit(t *testing.T) {
	u := unitDirectives(t, "../../packaging/sipsilo.service")
	for k, want := range map[string]string{
		"DynamicUser":     "yes",
		"StateDirectory":  "sipsilo",
		"ProtectSystem":   "strict",
		"NoNewPrivileges": "yes",
		"PrivateTmp":      "yes",
		"Type":            "exec",
	} {
		if got := u[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	exec := u["ExecStart"]
	if len(exec) != 1 {
		t.Fatalf("ExecStart %q", exec)
	}
	args := strings.Fields(exec[0])
	if args[0] != "/usr/local/bin/sipsilo" || args[1] != "serve" {
		t.Fatalf("ExecStart %q", exec[0])
	}
	// The database must be inside the state directory: ProtectSystem=strict makes
	// everything else read-only.
	var db string
	for _, e := range u["Environment"] {
		if v, ok := strings.CutPrefix(e, "SIPSILO_DB="); ok {
			db = v
		}
	}
	if !strings.HasPrefix(db, "%S/sipsilo/") {
		t.Fatalf("SIPSILO_DB=%q is not in the state directory", db)
	}
	// The command line parses with the shipped config (its path swapped for the
	// repository copy).
	for i, a := range args {
		if a == "/etc/sipsilo/sipsilo.toml" {
			args[i] = "../../packaging/sipsilo.toml"
		}
	}
	cfg, err := parseServe(args[2:], env(map[string]string{"SIPSILO_DB": "/var/lib/sipsilo/sipsilo.db"}), io.Discard)
	if err != nil {
		t.Fatalf("ExecStart with the example config: %v", err)
	}
	if cfg.DBPath != "/var/lib/sipsilo/sipsilo.db" || cfg.LogFormat != "json" {
		t.Fatalf("cfg %+v", cfg)
	}
}
