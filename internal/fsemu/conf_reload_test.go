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
