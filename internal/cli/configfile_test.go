package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sipsilo.toml")
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFilePrecedence(t *testing.T) {
	p := writeConfig(t, `
http = "127.0.0.1:9100"
db = "/from/file.db"
window = 8
domains = ["a.example", "b.example"]
direct = false
ping-rate = 12.5
retry-max = "10m"
esl-password = "from-file"
`, 0o600)
	e := env(map[string]string{"SIPSILO_DB": "/from/env.db", "SIPSILO_WINDOW": "6", "SIPSILO_CONFIG": p})
	cfg, err := parseServe([]string{"--window", "2"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// flag > env > file > default
	if cfg.Relay.Window != 2 || cfg.DBPath != "/from/env.db" || cfg.HTTPAddr != "127.0.0.1:9100" ||
		cfg.ESLPassword != "from-file" || cfg.Ping.Direct || cfg.Ping.Rate != 12.5 ||
		cfg.Relay.RetryMax != 10*time.Minute || cfg.ESLAddr != "127.0.0.1:8021" {
		t.Fatalf("cfg: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.Chatplan.Domains, []string{"a.example", "b.example"}) {
		t.Fatalf("domains %q", cfg.Chatplan.Domains)
	}
}

func TestConfigFlagForms(t *testing.T) {
	p := writeConfig(t, "window = 9\n", 0o600)
	for _, args := range [][]string{{"--config", p}, {"-config=" + p}, {"--window=3", "--config=" + p}} {
		cfg, err := parseServe(args, env(map[string]string{"SIPSILO_CONFIG": "/nonexistent"}), io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		want := 9
		if strings.HasPrefix(args[0], "--window") {
			want = 3
		}
		if cfg.Relay.Window != want {
			t.Fatalf("%q: window %d, want %d", args, cfg.Relay.Window, want)
		}
	}
}

func TestConfigFileRejectsMistakes(t *testing.T) {
	for name, text := range map[string]string{
		"unknown key":  "windw = 4\n",
		"bad value":    "window = \"many\"\n",
		"table":        "[serve]\nwindow = 4\n",
		"not toml":     "window = = 4\n",
		"config in it": "config = \"/etc/other.toml\"\n",
		"list commas":  "domains = [\"a,b\"]\n",
	} {
		p := writeConfig(t, text, 0o600)
		if _, err := parseServe([]string{"--config", p}, env(nil), io.Discard); err == nil {
			t.Errorf("%s: accepted %q", name, text)
		}
	}
	if _, err := parseServe([]string{"--config", "/nonexistent/sipsilo.toml"}, env(nil), io.Discard); err == nil {
		t.Error("a missing config file was accepted")
	}
}

func TestConfigFileWarnsAboutReadableSecrets(t *testing.T) {
	var out bytes.Buffer
	p := writeConfig(t, "admin-token = \"s3cret\"\n", 0o644)
	if _, err := parseServe([]string{"--config", p}, env(nil), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "admin-token") || strings.Contains(out.String(), "s3cret") {
		t.Fatalf("warning %q", out.String())
	}
	out.Reset()
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseServe([]string{"--config", p}, env(nil), &out); err != nil || out.Len() != 0 {
		t.Fatalf("private file: err %v, output %q", err, out.String())
	}
}

func TestServeRefusesExposedHTTPWithoutAdminToken(t *testing.T) {
	for _, addr := range []string{":8484", "0.0.0.0:8484", "192.0.2.1:8484", "[::]:8484"} {
		if _, err := parseServe([]string{"--http", addr}, env(nil), io.Discard); err == nil ||
			!strings.Contains(err.Error(), "admin-token") {
			t.Errorf("--http %s without a token: %v", addr, err)
		}
		if _, err := parseServe([]string{"--http", addr, "--admin-token", "t", "--chatplan-password", "p"}, env(nil), io.Discard); err != nil {
			t.Errorf("--http %s with a token: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8484", "[::1]:8484", "localhost:8484", "127.0.0.2:0"} {
		if _, err := parseServe([]string{"--http", addr}, env(nil), io.Discard); err != nil {
			t.Errorf("--http %s: %v", addr, err)
		}
	}
}
