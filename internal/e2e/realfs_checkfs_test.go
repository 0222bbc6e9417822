package e2e

// fs-config's output installed into a real FreeSWITCH 1.10.12 the way the
// README tells an operator to, then check-fs against it: what the emulator
// assumed about xml_locate through mod_xml_curl, module_exists, `&#36;` in
// param values, `sofia profile rescan` and a profile without a context,
// checked on the real server.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsreal"
)

// replaceInFile replaces old by repl in path, once, failing if old is absent.
func replaceInFile(t testing.TB, path, old, repl string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s lacks %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, repl, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRealFSCheckFS(t *testing.T) {
	if err := fsreal.Available(); err != nil {
		requireIntegration(t, err.Error())
	}
	httpAddr := freePort(t)
	// '$' in both passwords: fs-config writes it as &#36; so that the
	// preprocessor leaves it alone, and FreeSWITCH must decode it.
	const eslPass, user, pass = `es&l<pw$x`, "fs", `ch"at$${x}`
	out := t.TempDir()
	if code, msg := runBinary(t, "fs-config", "--out", out, "--http", httpAddr, "--esl", "127.0.0.1:8021",
		"--esl-password", eslPass, "--user", user, "--password", pass); code != 0 {
		t.Fatalf("fs-config: exit %d\n%s", code, msg)
	}
	files, err := fsreal.ReadFiles(out)
	if err != nil {
		t.Fatal(err)
	}
	fs := fsreal.Start(t, fsreal.Options{Files: files, ESLPassword: eslPass})
	proc := startChild(t, nil, "--http", httpAddr, "--db", filepath.Join(t.TempDir(), "s.db"), "--esl", fs.ESLAddr(),
		"--esl-password", eslPass, "--chatplan-user", user, "--chatplan-password", pass)
	(&rig{t: t, http: httpAddr, proc: proc}).waitReady(10 * time.Second)

	check := func(t *testing.T, wantPass bool) string {
		t.Helper()
		code, out := runBinary(t, "check-fs", "--esl", fs.ESLAddr(), "--esl-password", eslPass, "--http", httpAddr)
		if (code == 0) != wantPass {
			t.Fatalf("check-fs: exit %d, want pass %v\n%s", code, wantPass, out)
		}
		return out
	}
	// xml_locate through mod_xml_curl reaches sipsilo with the decoded
	// credentials; module_exists knows the modules by these names; the ESL
	// password with '$' logged in.
	t.Run("all pass", func(t *testing.T) {
		out := check(t, true)
		mustContain(t, out, "ok    esl: logged in", "ok    module mod_xml_curl loaded", "ok    module mod_sms loaded",
			"ok    module mod_commands loaded", "ok    module mod_dptools loaded", "ok    module mod_sofia loaded",
			"ok    chatplan binding: FreeSWITCH's xml_curl binding reached sipsilo",
			"ok    profile internal: context public", "ok    ping params: profile internal pings registered phones",
			"ok    ping params: unregister-on-options-fail is off", "all checks passed")
	})
	t.Run("mod_sms unloaded", func(t *testing.T) {
		fs.MustAPI(t, "unload mod_sms")
		defer fs.MustAPI(t, "load mod_sms")
		out := check(t, false)
		mustContain(t, out, "FAIL  module mod_sms not loaded", `<load module="mod_sms"/>`, "ok    module mod_xml_curl loaded")
	})
	// mod_xml_curl reads its bindings when it loads: a changed gateway-url
	// takes effect on `reload mod_xml_curl`, as the README says.
	t.Run("binding re-pointed by reload mod_xml_curl", func(t *testing.T) {
		xmlCurl := filepath.Join(fs.ConfDir(), "autoload_configs", "xml_curl.conf.xml")
		other := freePort(t)
		replaceInFile(t, xmlCurl, "http://"+httpAddr+"/", "http://"+other+"/")
		fs.MustAPI(t, "reload mod_xml_curl")
		mustContain(t, check(t, false), "FAIL  chatplan binding", "points to http://"+other+"/fs/chatplan, not to sipsilo at "+httpAddr)
		replaceInFile(t, xmlCurl, "http://"+other+"/", "http://"+httpAddr+"/")
		fs.MustAPI(t, "reload mod_xml_curl")
		check(t, true)
	})
	// `sofia profile internal rescan` re-reads the XML itself ("Reload XML
	// [Success]") and the profile's context with it: check-fs's fix works as
	// written, without a separate reloadxml. The emulator does the same
	// (internal/fsemu TestRescanAndReloadXML).
	internalXML := filepath.Join(fs.ConfDir(), "sip_profiles", "internal.xml")
	public, dflt := `<param name="context" value="public"/>`, `<param name="context" value="default"/>`
	t.Run("context default after rescan", func(t *testing.T) {
		replaceInFile(t, internalXML, public, dflt)
		if out := fs.MustAPI(t, "reloadxml"); out != "+OK [Success]\n" {
			t.Fatalf("reloadxml: %q", out)
		}
		// reloadxml alone leaves the running profile as it was.
		mustContain(t, check(t, true), "ok    profile internal: context public")
		out := fs.MustAPI(t, "sofia profile internal rescan")
		mustContain(t, out, "Reload XML [Success]", "+OK scan complete")
		out = check(t, false)
		mustContain(t, out, "FAIL  profile internal: context default", "sofia profile internal rescan", "ok    chatplan binding")
		replaceInFile(t, internalXML, dflt, public)
		fs.MustAPI(t, "sofia profile internal rescan")
		check(t, true)
	})
	// A profile without a context param starts with context "default"
	// (sofia's own default); a rescan only applies the params that are there,
	// so removing the line keeps the running profile's context until a
	// restart.
	t.Run("no context param", func(t *testing.T) {
		replaceInFile(t, internalXML, public, "")
		fs.MustAPI(t, "sofia profile internal rescan")
		mustContain(t, check(t, true), "ok    profile internal: context public")
		fs.Restart(t)
		mustContain(t, check(t, false), "FAIL  profile internal: context default")
	})
}
