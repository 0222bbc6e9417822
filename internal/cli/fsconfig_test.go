package cli

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func fsConfig(t *testing.T, env func(string) (string, bool), args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runFSConfig(args, env, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestFSConfigDefaultsMatchShippedFiles(t *testing.T) {
	dir := t.TempDir()
	if out, err := fsConfig(t, noEnv, "--out", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var shipped []string
	err := filepath.WalkDir("../../freeswitch-conf", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("../../freeswitch-conf", p)
		if strings.HasSuffix(p, ".xml") || strings.HasSuffix(p, ".snippet") {
			shipped = append(shipped, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(shipped) != 5 {
		t.Fatalf("found %d shipped files: %v", len(shipped), shipped)
	}
	for _, rel := range shipped {
		want, _ := os.ReadFile(filepath.Join("../../freeswitch-conf", rel))
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("%s not written: %v", rel, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from freeswitch-conf/%s", rel, rel)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "INSTALL.txt")); err != nil {
		t.Errorf("no INSTALL.txt: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, "autoload_configs/event_socket.conf.xml"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("event_socket.conf.xml mode = %v (%v), want 0600: it holds the ESL password", st.Mode(), err)
	}
}

func TestFSConfigRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "chatplan", "default.xml")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := fsConfig(t, noEnv, "--out", dir, "--http", "127.0.0.1:9000")
	if err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), target) {
		t.Fatalf("err = %v, want a refusal naming %s and --force\n%s", err, target, out)
	}
	if got, _ := os.ReadFile(target); string(got) != "mine" {
		t.Errorf("existing file changed to %q", got)
	}
	// Nothing else was written either.
	if _, err := os.Stat(filepath.Join(dir, "autoload_configs")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused run wrote other files: %v", err)
	}
	if out, err := fsConfig(t, noEnv, "--out", dir, "--force"); err != nil {
		t.Fatalf("--force: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(target); string(got) == "mine" {
		t.Errorf("--force did not overwrite")
	}
}

func TestFSConfigTakesSecretsFromEnvAndNeverPrintsThem(t *testing.T) {
	dir := t.TempDir()
	const pass, eslPass = `chat<&"pw$${x}`, `esl'pw&`
	out, err := fsConfig(t, envOf(map[string]string{
		"SIPSILO_CHATPLAN_PASSWORD": pass,
		"SIPSILO_ESL_PASSWORD":      eslPass,
		"SIPSILO_HTTP":              "127.0.0.1:9999", // the flag wins over env
	}), "--out", dir, "--user", "sipsilo", "--http", "127.0.0.1:7777", "--esl", "127.0.0.1:8022")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, secret := range []string{pass, eslPass} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows a password:\n%s", out)
		}
	}
	for _, want := range []string{"--chatplan-user 'sipsilo'", "SIPSILO_CHATPLAN_PASSWORD=", "SIPSILO_ESL_PASSWORD=",
		"--http 127.0.0.1:7777", "--esl 127.0.0.1:8022"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	params := func(rel string) map[string]string {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Params []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"settings>param"`
			Deep []struct {
				Params []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:"value,attr"`
				} `xml:"binding>param"`
			} `xml:"bindings"`
		}
		if err := xml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		m := map[string]string{}
		for _, p := range doc.Params {
			m[p.Name] = p.Value
		}
		for _, d := range doc.Deep {
			for _, p := range d.Params {
				m[p.Name] = p.Value
			}
		}
		return m
	}
	curl := params("autoload_configs/xml_curl.conf.xml")
	if got, want := curl["gateway-credentials"], "sipsilo:"+pass; got != want {
		t.Errorf("gateway-credentials = %q, want %q", got, want)
	}
	if got := curl["gateway-url"]; !strings.HasPrefix(got, "http://127.0.0.1:7777/fs/chatplan?") {
		t.Errorf("gateway-url = %q", got)
	}
	es := params("autoload_configs/event_socket.conf.xml")
	if es["password"] != eslPass || es["listen-port"] != "8022" {
		t.Errorf("event socket params = %v", es)
	}
}

func TestFSConfigRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{}, // no --out
		{"--out", "x", "--password", "a\x01b", "--user", "u"}, // control character
		{"--out", "x", "--user", "u"},                         // no password
		{"--out", "x", "extra"},
	} {
		dir := t.TempDir()
		for i, a := range args {
			if a == "x" {
				args[i] = dir
			}
		}
		if out, err := fsConfig(t, noEnv, args...); err == nil {
			t.Errorf("fs-config %q succeeded:\n%s", args, out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("fs-config %q wrote files after refusing", args)
		}
	}
}

func TestFSConfigDefaultsLoadInEmulator(t *testing.T) {
	c, err := fsemu.LoadConf(fsConfDir(t, nil, fsemu.Install{}))
	if err != nil {
		t.Fatal(err)
	}
	if c.XMLCurlError != "" || len(c.Bindings) != 1 {
		t.Fatalf("bindings %+v, error %q", c.Bindings, c.XMLCurlError)
	}
	b := c.Bindings[0]
	if b.URL != conf.ChatplanURL || !b.Covers("chatplan") || b.Covers("directory") || !b.DynamicURL ||
		b.Timeout != conf.ChatplanTimeoutSeconds*time.Second || b.Credentials != "" {
		t.Errorf("binding = %+v", b)
	}
	if c.ESL.Addr() != conf.ESLAddress || c.ESL.Password != conf.ESLPassword {
		t.Errorf("event socket = %+v", c.ESL)
	}
	opts, err := c.Options(fsemu.SwitchOptions{}, "internal")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Context != conf.FallbackContext || opts.XMLCurl == nil || opts.XMLCurl.URL != conf.ChatplanURL {
		t.Errorf("switch options: context %q, xml_curl %+v", opts.Context, opts.XMLCurl)
	}
	for _, m := range []string{"mod_xml_curl", "mod_sms", "mod_event_socket", "mod_commands", "mod_dptools"} {
		if !slices.Contains(opts.Modules, m) {
			t.Errorf("%s not loaded: %v", m, opts.Modules)
		}
	}
}

func TestFSConfigWarnsAboutTheLoopbackACL(t *testing.T) {
	out, err := fsConfig(t, noEnv, "--out", t.TempDir(), "--esl", "192.0.2.10:8021")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "loopback.auto") {
		t.Errorf("no ACL note for a non-loopback event socket:\n%s", out)
	}
	out, _ = fsConfig(t, noEnv, "--out", t.TempDir())
	if strings.Contains(out, "loopback.auto") {
		t.Errorf("ACL note for the loopback default:\n%s", out)
	}
}
