package fsemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	freeswitchconf "github.com/sipsilo/sipsilo/freeswitch-conf"
)

// TestRescanAndReloadXML: what FreeSWITCH 1.10.12 answered and did in
// TestRealFSCheckFS (root package): rescan reloads the XML itself and applies a
// present context param; a removed one is not reset; reloadxml alone leaves the
// running profile as it was but changes what lookups fall back to.
func TestRescanAndReloadXML(t *testing.T) {
	dir := installed(t, freeswitchconf.Options{}, Install{})
	sw := switchFromConf(t, dir)
	addr, pw := sw.ESL().Addr(), "ClueCon"
	internal := filepath.Join(dir, "sip_profiles", "internal.xml")
	edit := func(old, repl string) {
		t.Helper()
		b, err := os.ReadFile(internal)
		if err != nil || !strings.Contains(string(b), old) {
			t.Fatalf("%s: %v, or no %q", internal, err, old)
		}
		if err := os.WriteFile(internal, []byte(strings.Replace(string(b), old, repl, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	context := func() string {
		t.Helper()
		for _, l := range strings.Split(api(t, addr, pw, "sofia status profile internal"), "\n") {
			if strings.HasPrefix(l, "Context ") {
				return strings.TrimSpace(strings.TrimPrefix(l, "Context"))
			}
		}
		t.Fatal("no Context line")
		return ""
	}
	public, dflt := `<param name="context" value="public"/>`, `<param name="context" value="default"/>`

	edit(public, dflt)
	if got, want := api(t, addr, pw, "reloadxml"), "+OK [Success]\n"; got != want {
		t.Fatalf("reloadxml: %q, want %q", got, want)
	}
	if got := context(); got != "public" {
		t.Fatalf("context %q after reloadxml alone, want public (the profile keeps it until a rescan)", got)
	}
	if got, want := api(t, addr, pw, "sofia profile internal rescan"), "Reload XML [Success]\n+OK scan complete\n"; got != want {
		t.Fatalf("rescan: %q, want %q", got, want)
	}
	if got := context(); got != "default" {
		t.Fatalf("context %q after rescan, want default", got)
	}
	edit(dflt, "")
	api(t, addr, pw, "sofia profile internal rescan")
	if got := context(); got != "default" {
		t.Fatalf("context %q after a rescan without the param, want default kept", got)
	}
	if got, want := api(t, addr, pw, "sofia profile nosuch rescan"), "Invalid Profile [nosuch]"; got != want {
		t.Fatalf("rescan of an unknown profile: %q, want %q", got, want)
	}
}

// TestModuleCommands: load, unload and reload with FreeSWITCH 1.10.12's
// answers (measured), and mod_xml_curl reading its binding again on reload.
func TestModuleCommands(t *testing.T) {
	dir := installed(t, freeswitchconf.Options{HTTPAddr: "127.0.0.1:8485"}, Install{})
	sw := switchFromConf(t, dir)
	addr, pw := sw.ESL().Addr(), "ClueCon"
	for _, c := range []struct{ cmd, want string }{
		{"unload mod_sms", "+OK\n"},
		{"module_exists mod_sms", "false"},
		{"unload mod_sms", "-ERR [No such module!]\n"},
		{"load mod_sms", "+OK Reloading XML\n+OK\n"},
		{"load mod_sms", "+OK Reloading XML\n-ERR [Module already loaded]\n"},
		{"module_exists mod_sms", "true"},
		{"load mod_nosuch", "+OK Reloading XML\n-ERR [module load file routine returned an error]\n"},
		{"reload mod_nosuch", "+OK Reloading XML\n-ERR unloading module [No such module!]\n-ERR loading module [module load file routine returned an error]\n"},
		{"unload mod_xml_curl", "+OK\n"},
		{"reload mod_xml_curl", "+OK Reloading XML\n-ERR unloading module [No such module!]\n+OK module loaded\n"},
	} {
		if got := api(t, addr, pw, c.cmd); got != c.want {
			t.Errorf("%s: %q, want %q", c.cmd, got, c.want)
		}
	}
	p := filepath.Join(dir, "autoload_configs", "xml_curl.conf.xml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "127.0.0.1:8485", "127.0.0.1:9999", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := sw.liveXML().xmlCurl.URL; !strings.Contains(got, "127.0.0.1:8485") {
		t.Fatalf("binding %q changed before the reload", got)
	}
	if got, want := api(t, addr, pw, "reload mod_xml_curl"), "+OK Reloading XML\n+OK module unloaded\n+OK module loaded\n"; got != want {
		t.Fatalf("reload mod_xml_curl: %q, want %q", got, want)
	}
	if got := sw.liveXML().xmlCurl.URL; !strings.Contains(got, "127.0.0.1:9999") {
		t.Fatalf("binding %q after the reload, want the new URL", got)
	}
}
