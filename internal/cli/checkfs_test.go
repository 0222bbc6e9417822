package cli

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
)

func checkFSRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := runCheckFS(ctx, args, noEnv, &out, &errOut)
	return out.String() + errOut.String(), err
}

// fsConfDir runs fs-config with args and installs its output into a FreeSWITCH
// conf directory the way freeswitch-conf/README.md says.
func fsConfDir(t *testing.T, args []string, in fsemu.Install) string {
	t.Helper()
	out := t.TempDir()
	if msg, err := fsConfig(t, noEnv, append([]string{"--out", out}, args...)...); err != nil {
		t.Fatalf("fs-config: %v\n%s", err, msg)
	}
	dir := t.TempDir()
	if err := fsemu.InstallConf(dir, out, in); err != nil {
		t.Fatal(err)
	}
	return dir
}

// switchFromConf starts the emulated FreeSWITCH configured from dir.
func switchFromConf(t *testing.T, dir string) *fsemu.Switch {
	t.Helper()
	c, err := fsemu.LoadConf(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.Options(fsemu.SwitchOptions{}, "internal")
	if err != nil {
		t.Fatal(err)
	}
	sw, err := fsemu.NewSwitch(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	return sw
}

func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestCheckFSOnEmulatorConfiguredByFSConfig(t *testing.T) {
	httpAddr, eslAddr := freePort(t), freePort(t)
	const eslPass, user, pass = `es&l<pw`, "fs", `ch"at$${x}`
	args := []string{"--http", httpAddr, "--esl", eslAddr, "--esl-password", eslPass, "--user", user, "--password", pass}
	sw := switchFromConf(t, fsConfDir(t, args, fsemu.Install{}))
	// sipsilo with the settings fs-config printed; ready means it logged in to
	// the emulator with the password the emulator read from the XML.
	serveInProcess(t, noEnv, "--http", httpAddr, "--db", filepath.Join(t.TempDir(), "s.db"), "--esl", eslAddr,
		"--esl-password", eslPass, "--chatplan-user", user, "--chatplan-password", pass).waitReady(t, httpAddr, 10*time.Second)

	check := []string{"--esl", eslAddr, "--esl-password", eslPass, "--http", httpAddr}
	out, err := checkFSRun(t, check...)
	if err != nil {
		t.Fatalf("check-fs failed on a correct setup: %v\n%s", err, out)
	}
	mustContain(t, out, "ok    esl: logged in", "ok    module mod_xml_curl loaded", "ok    module mod_sms loaded",
		"ok    module mod_commands loaded", "ok    module mod_dptools loaded",
		"ok    chatplan binding: FreeSWITCH's xml_curl binding reached sipsilo",
		"ok    profile internal: context public", "ok    ping params: profile internal pings registered phones",
		"ok    ping params: unregister-on-options-fail is off", "all checks passed")
	if strings.Contains(out, "FAIL") {
		t.Errorf("FAIL in a passing run:\n%s", out)
	}
	sw.Close()

	// Each variant replaces the switch on the same ESL address; sipsilo stays.
	variant := func(t *testing.T, in fsemu.Install, args []string) string {
		t.Helper()
		sw := switchFromConf(t, fsConfDir(t, args, in))
		defer sw.Close()
		out, err := checkFSRun(t, check...)
		if err == nil {
			t.Fatalf("check-fs passed:\n%s", out)
		}
		return out
	}
	t.Run("mod_sms missing", func(t *testing.T) {
		out := variant(t, fsemu.Install{Drop: []string{"mod_sms"}}, args)
		mustContain(t, out, "FAIL  module mod_sms not loaded", `<load module="mod_sms"/>`, "autoload_configs/modules.conf.xml",
			"ok    module mod_xml_curl loaded")
	})
	t.Run("context default", func(t *testing.T) {
		out := variant(t, fsemu.Install{Context: "default"}, args)
		mustContain(t, out, "FAIL  profile internal: context default", `sip_profiles/internal.xml: <param name="context" value="public"/>`,
			"sofia profile internal rescan", "ok    chatplan binding")
	})
	t.Run("wrong chatplan password", func(t *testing.T) {
		wrong := append(append([]string{}, args[:len(args)-1]...), "nope")
		out := variant(t, fsemu.Install{}, wrong)
		mustContain(t, out, "FAIL  chatplan binding: FreeSWITCH did not get sipsilo's answer", "can't find anything",
			"requires basic auth", `binding "chatplan": gateway-url http://`+httpAddr+`/fs/chatplan (bindings="chatplan")`)
	})
	t.Run("binding points elsewhere", func(t *testing.T) {
		other := append([]string{}, args...)
		other[1] = freePort(t)
		out := variant(t, fsemu.Install{}, other)
		mustContain(t, out, "FAIL  chatplan binding", "the chatplan gateway-url points to http://"+other[1]+"/fs/chatplan, not to sipsilo at "+httpAddr)
	})
	t.Run("no ping params", func(t *testing.T) {
		out := variant(t, fsemu.Install{NoPingSnippet: true}, args)
		mustContain(t, out, "FAIL  ping params: profile internal pings no registered phone", "internal-ping-params.xml.snippet")
	})
}

func TestCheckFSConnectionFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		addr := freePort(t)
		out, err := checkFSRun(t, "--esl", addr, "--timeout", "1s")
		if err == nil {
			t.Fatal("passed")
		}
		mustContain(t, out, "FAIL  esl: connection refused at "+addr, "listen-port", "event_socket.conf.xml")
	})
	t.Run("wrong password", func(t *testing.T) {
		sw, err := fsemu.NewSwitch(fsemu.SwitchOptions{ESL: fsemu.ESLOptions{Password: "right"}})
		if err != nil {
			t.Fatal(err)
		}
		defer sw.Close()
		out, err := checkFSRun(t, "--esl", sw.ESL().Addr(), "--esl-password", "wrong", "--timeout", "2s")
		if err == nil {
			t.Fatal("passed")
		}
		mustContain(t, out, "FAIL  esl: password refused", `<param name="password">`)
	})
	t.Run("silent peer", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var held []net.Conn
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held = append(held, c)
			}
		}()
		out, err := checkFSRun(t, "--esl", ln.Addr().String(), "--timeout", "1s")
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
		if err == nil {
			t.Fatal("passed")
		}
		mustContain(t, out, "FAIL  esl:", ln.Addr().String())
	})
}

func TestCheckFSSipsiloStopped(t *testing.T) {
	httpAddr, eslAddr := freePort(t), freePort(t)
	switchFromConf(t, fsConfDir(t, []string{"--http", httpAddr, "--esl", eslAddr}, fsemu.Install{}))
	out, err := checkFSRun(t, "--esl", eslAddr, "--http", httpAddr)
	if err == nil {
		t.Fatalf("passed without sipsilo:\n%s", out)
	}
	mustContain(t, out, "FAIL  chatplan binding", "sipsilo does not answer at "+httpAddr, "ok    module mod_sms loaded")
	// Without --http, check-fs says how to narrow it down.
	out, _ = checkFSRun(t, "--esl", eslAddr)
	mustContain(t, out, "pass sipsilo's --http to check-fs")
	t.Logf("sample output:\n%s", out)
}
