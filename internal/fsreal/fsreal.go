// Package fsreal runs a real FreeSWITCH for tests: fresh directories in a
// temporary directory, a small conf (users 1000-1003 with password 1234 in
// domain 127.0.0.1, SIP profile internal and the event socket on free ports of
// 127.0.0.1), optionally sipsilo's files installed as an operator would, the
// process stopped by its PID when the test ends and its log attached to a
// failing test.
//
// FreeSWITCH comes from SIPSILO_FS_HOME (an installed FreeSWITCH 1.10, e.g.
// /usr/local/freeswitch, with mod_sofia, mod_event_socket, mod_commands,
// mod_dptools, mod_dialplan_xml, mod_sms, mod_xml_curl, mod_console and
// mod_logfile) or from the prebuilt runtime tarball (SIPSILO_FS_TARBALL, or
// shared/freeswitch/runtime/freeswitch-*.tar.xz in a directory above the
// test), unpacked once into the user's cache directory. Without either the
// test is skipped, or fails when SIPSILO_REQUIRE_INTEGRATION=1.
package fsreal

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"

	"github.com/sipsilo/sipsilo/internal/testport"
)

const (
	startTimeout = 60 * time.Second // ESL up and profile internal RUNNING
	stopTimeout  = 20 * time.Second // after SIGTERM, then SIGKILL
	apiTimeout   = 30 * time.Second

	// Domain is the users' domain; every user's password is Password.
	Domain   = "127.0.0.1"
	Password = "1234"
	// NoContext as Options.Context leaves the context param out of profile
	// internal (FreeSWITCH then uses its own default).
	NoContext = "-"
)

// Options configure Start. Zero values give the bare conf: no sipsilo files.
type Options struct {
	// Sipsilo, when set, installs sipsilo's FreeSWITCH files rendered for
	// these settings (freeswitch-conf.Render): the chatplan binding to
	// HTTPAddr, the fallback chatplan, the ping params and the modules. Its
	// ESLAddr and ESLPassword are this instance's and need not be set.
	Sipsilo *conf.Options
	// Files are installed after Sipsilo's, as `sipsilo fs-config` wrote them
	// (ReadFiles). An event_socket.conf.xml among them keeps its password
	// (set ESLPassword to it) but listens on this instance's port.
	Files []conf.File
	// ESLPassword is the event socket password; default "ClueCon".
	ESLPassword string
	// Context is profile internal's context param; default "public";
	// NoContext leaves it out.
	Context string
	// Users maps user to password; default 1000-1003 with Password.
	Users map[string]string
	// MultipleRegistrations is profile internal's multiple-registrations
	// param ("contact": one registration per contact, so a user's several
	// devices stay registered side by side); "" leaves it out, and FreeSWITCH
	// keeps one registration per user, each REGISTER replacing the last.
	MultipleRegistrations string
}

func (o Options) eslPassword() string {
	if o.ESLPassword == "" {
		return "ClueCon"
	}
	return o.ESLPassword
}

func (o Options) context() string {
	if o.Context == "" {
		return "public"
	}
	return o.Context
}

func (o Options) users() map[string]string {
	if o.Users != nil {
		return o.Users
	}
	u := map[string]string{}
	for i := 1000; i <= 1003; i++ {
		u[strconv.Itoa(i)] = Password
	}
	return u
}

// FS is a running (or stopped) FreeSWITCH, a child process of the test. Its
// methods are meant for the test goroutine.
type FS struct {
	t    testing.TB
	home Home
	opts Options
	dir  string // the base directory: conf, log, db, run, ...
	p    ports

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil while stopped
	done chan struct{} // closed once cmd has exited and been waited for
}

// Start writes a fresh conf with free ports, starts FreeSWITCH and waits
// until its event socket answers and profile internal is RUNNING. It is
// stopped when the test ends; if the test failed, the tail of its log is
// logged first.
func Start(t testing.TB, o Options) *FS {
	t.Helper()
	h, err := findHome()
	if err != nil {
		requireIntegration(t, err.Error())
	}
	// Not t.TempDir: a failing test's directory is kept, with its log.
	dir, err := os.MkdirTemp("", "fsreal-")
	if err != nil {
		t.Fatal(err)
	}
	f := &FS{t: t, home: h, opts: o, dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FreeSWITCH log (%s), last lines:\n%s", f.LogPath(), f.LogTail(60))
		}
		f.Kill() // nothing to keep: a graceful stop only costs seconds
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	// A port picked by binding and releasing it may be taken in between
	// (another FreeSWITCH of another package): then try other ports.
	for attempt := 1; ; attempt++ {
		if f.p, err = freePorts(); err != nil {
			t.Fatal(err)
		}
		if err = writeConf(f.ConfDir(), o, f.p); err != nil {
			t.Fatal(err)
		}
		if err = f.start(); err == nil {
			return f
		}
		if tail := f.LogTail(20); strings.Contains(tail, "error while loading shared libraries") {
			requireIntegration(t, "FreeSWITCH lacks shared libraries (install the Debian packages scripts/test installs):\n"+tail)
		}
		if attempt == 3 {
			t.Fatalf("fsreal: %v\n%s", err, f.LogTail(40))
		}
		t.Logf("fsreal: %v; trying other ports", err)
	}
}

// SIPAddr is profile internal's address, 127.0.0.1:port (UDP and TCP).
func (f *FS) SIPAddr() string { return "127.0.0.1:" + strconv.Itoa(f.p.sip) }

// ESLAddr is the event socket's address.
func (f *FS) ESLAddr() string { return "127.0.0.1:" + strconv.Itoa(f.p.esl) }

// ESLPassword is the event socket's password.
func (f *FS) ESLPassword() string { return f.opts.eslPassword() }

// Dir is the base directory; ConfDir the conf directory in it.
func (f *FS) Dir() string     { return f.dir }
func (f *FS) ConfDir() string { return filepath.Join(f.dir, "conf") }

// LogPath is FreeSWITCH's own log file.
func (f *FS) LogPath() string { return filepath.Join(f.dir, "log", "freeswitch.log") }

// PID is the running process's id, 0 when stopped.
func (f *FS) PID() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cmd == nil {
		return 0
	}
	return f.cmd.Process.Pid
}

// API runs an api command over the event socket and returns its output.
func (f *FS) API(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	return api(ctx, f.ESLAddr(), f.ESLPassword(), cmd)
}

// MustAPI is API that fails t on an error.
func (f *FS) MustAPI(t testing.TB, cmd string) string {
	t.Helper()
	out, err := f.API(cmd)
	if err != nil {
		t.Fatalf("fsreal: api %s: %v", cmd, err)
	}
	return out
}

// Restart stops FreeSWITCH (SIGTERM) and starts it again with the same conf,
// ports and database.
func (f *FS) Restart(t testing.TB) {
	t.Helper()
	f.Stop()
	if err := f.start(); err != nil {
		t.Fatalf("fsreal: restart: %v\n%s", err, f.LogTail(40))
	}
}

// Stop ends FreeSWITCH with SIGTERM, or SIGKILL if it is still running after
// a bound. Stopping a stopped FreeSWITCH does nothing.
func (f *FS) Stop() { f.signal(syscall.SIGTERM, stopTimeout) }

// Kill ends FreeSWITCH with SIGKILL.
func (f *FS) Kill() { f.signal(syscall.SIGKILL, stopTimeout) }

func (f *FS) signal(sig syscall.Signal, within time.Duration) {
	f.mu.Lock()
	cmd, done := f.cmd, f.done
	f.cmd = nil
	f.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(within):
		f.t.Logf("fsreal: FreeSWITCH (pid %d) still running %v after %v; killing it", cmd.Process.Pid, within, sig)
		_ = cmd.Process.Kill()
		<-done
	}
}

// start runs FreeSWITCH on the written conf and waits until it is ready.
func (f *FS) start() error {
	for _, d := range []string{"log", "db", "run", "temp", "cache", "storage", "recordings", "scripts",
		"htdocs", "sounds", "grammar", "certs"} {
		if err := os.MkdirAll(filepath.Join(f.dir, d), 0o755); err != nil {
			return err
		}
	}
	_ = os.Remove(filepath.Join(f.dir, "run", "freeswitch.pid"))
	console, err := os.OpenFile(filepath.Join(f.dir, "log", "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer console.Close()
	d := func(name string) string { return filepath.Join(f.dir, name) }
	// -nf: no fork, so the child is FreeSWITCH itself; -nc: no console;
	// -nonat: no UPnP/NAT-PMP probing (loopback only).
	cmd := exec.Command(f.home.Binary, "-nf", "-nc", "-nonat", "-nonatmap",
		"-base", f.dir, "-conf", f.ConfDir(), "-mod", f.home.Mods,
		"-log", d("log"), "-db", d("db"), "-run", d("run"), "-temp", d("temp"), "-cache", d("cache"),
		"-storage", d("storage"), "-recordings", d("recordings"), "-scripts", d("scripts"),
		"-htdocs", d("htdocs"), "-sounds", d("sounds"), "-grammar", d("grammar"), "-certs", d("certs"))
	cmd.Dir = f.dir
	cmd.Stdout, cmd.Stderr = console, console
	// FreeSWITCH dies with the test binary even if no cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if lib := filepath.Join(f.home.Dir, "lib"); dirExists(lib) {
		cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+lib+prefixed(os.Getenv("LD_LIBRARY_PATH")))
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	f.mu.Lock()
	f.cmd, f.done = cmd, done
	f.mu.Unlock()
	if err := f.waitReady(done); err != nil {
		f.Kill()
		return err
	}
	return nil
}

var runningInternal = regexp.MustCompile(`(?m)^\s*internal\s+profile\s+\S+\s+RUNNING`)

// waitReady waits until this instance's event socket answers (its base_dir is
// ours, not another FreeSWITCH's that took the port) and profile internal is
// RUNNING.
func (f *FS) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	stage := "event socket on " + f.ESLAddr()
	for {
		select {
		case <-exited:
			return fmt.Errorf("FreeSWITCH exited during startup (waiting for %s)", stage)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		base, err := api(ctx, f.ESLAddr(), f.ESLPassword(), "global_getvar base_dir")
		cancel()
		if err == errPassword {
			return fmt.Errorf("%s refused the password", stage)
		}
		if err == nil {
			if strings.TrimSpace(base) != f.dir {
				return fmt.Errorf("%s is another FreeSWITCH's (base_dir %q)", stage, base)
			}
			stage = "profile internal RUNNING on " + f.SIPAddr()
			if st, err := f.API("sofia status"); err == nil && runningInternal.MatchString(st) {
				return nil
			}
			if strings.Contains(f.LogTail(200), "Failed to create sip profile") ||
				strings.Contains(f.LogTail(200), "Error Creating SIP UA for profile: internal") {
				return fmt.Errorf("profile internal did not start (port %d taken?)", f.p.sip)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", startTimeout, stage)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// LogTail returns the last n lines of freeswitch.log (or of the console output
// when there is no log yet).
func (f *FS) LogTail(n int) string {
	b, err := os.ReadFile(f.LogPath())
	if err != nil || len(b) == 0 {
		b, _ = os.ReadFile(filepath.Join(f.dir, "log", "console.log"))
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts picks a port free for both UDP and TCP (SIP), one for the event
// socket and a small RTP range (no test makes calls; the range only keeps
// FreeSWITCH off the default one).
func freePorts() (ports, error) {
	var p ports
	var err error
	if p.sip, err = testport.Free(); err != nil {
		return p, err
	}
	if p.esl, err = testport.Free(); err != nil {
		return p, err
	}
	p.rtpStart = 40000 + (p.sip%1000)*20
	return p, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func prefixed(s string) string {
	if s == "" {
		return ""
	}
	return ":" + s
}

func requireIntegration(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("SIPSILO_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration test cannot run: %s", why)
	}
	t.Skip(why)
}
