// Package astreal runs a real Asterisk 22 for tests: a short fresh working
// directory (the control socket's path must stay under 108 bytes), the
// loopback conf of the runtime's fixture (endpoints 1000-1003, password 1234,
// realm asterisk, qualify_frequency 5) on free ports of 127.0.0.1 (SIP over
// UDP, AMI, HTTP), optionally sipsilo's rendered files installed as an
// operator would, the process stopped by its PID when the test ends and its
// log attached to a failing test.
//
// Asterisk comes from SIPSILO_AST_HOME (an unpacked runtime: sbin/asterisk,
// lib/asterisk/modules) or from the prebuilt runtime tarball
// (SIPSILO_AST_TARBALL, or shared/asterisk/runtime/asterisk-*.tar.xz in a
// directory above the test), unpacked once into the user's cache directory.
// Without either the test is skipped, or fails when
// SIPSILO_REQUIRE_INTEGRATION=1.
package astreal

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	asteriskconf "github.com/sipsilo/sipsilo/asterisk-conf"
)

const (
	startTimeout = 60 * time.Second // AMI up, fully booted, ports ours
	stopTimeout  = 20 * time.Second // after SIGTERM, then SIGKILL
	cliTimeout   = 30 * time.Second
	portGrace    = 3 * time.Second // after booting, for its listeners

	// Password is every endpoint's password; Realm the digest realm.
	Password = "1234"
	Realm    = "asterisk"
	// AMIUser is the manager user with read and write all.
	AMIUser = "sipsilo"
	// FixtureContext is the fixture's message_context: MessageSend to the
	// recipient endpoint, stock Asterisk.
	FixtureContext = "messages"
)

// Options configure Start. The zero value gives the fixture conf.
type Options struct {
	// MessageContext is every endpoint's message_context; default
	// FixtureContext.
	MessageContext string
	// Extensions is appended to extensions.conf (sipsilo's rendered context).
	Extensions string
	// Files are written into the conf directory, replacing a file of the same
	// name: an operator's files as `sipsilo ast-config` wrote them (ReadFiles).
	// extensions_sipsilo.conf and manager_sipsilo.conf among them are included
	// as the INSTALL.txt says (set AMISecret to the file's secret), and the
	// endpoints use sipsilo's context unless MessageContext says otherwise.
	Files map[string][]byte
	// NoLoad are modules left unloaded (e.g. "func_curl.so").
	NoLoad []string
	// Sipsilo, when set, installs sipsilo's files rendered for these settings
	// (asterisk-conf.Render) as its README tells an operator: the message
	// context and the AMI user included, every endpoint's message_context
	// pointing at the context (unless MessageContext says otherwise). Its
	// AMISecret is this instance's and need not be set.
	Sipsilo *asteriskconf.Options
	// AMISecret is the manager user's secret; default Password.
	AMISecret string
}

func (o Options) amiSecret() string {
	if o.AMISecret == "" {
		return Password
	}
	return o.AMISecret
}

// Ast is a running (or stopped) Asterisk, a child process of the test.
type Ast struct {
	t    testing.TB
	home Home
	opts Options
	dir  string
	p    ports

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start writes a fresh conf with free ports, starts Asterisk and waits until
// it is fully booted, AMI accepts the login and its ports are its own. It is
// stopped when the test ends; if the test failed, the tail of its log is
// logged first.
func Start(t testing.TB, o Options) *Ast {
	t.Helper()
	h, err := findHome()
	if err != nil {
		requireIntegration(t, err.Error())
	}
	// Short and not t.TempDir: the control socket's path is limited, and a
	// failing test's directory is kept, with its log.
	dir, err := os.MkdirTemp("/tmp", "ast-")
	if err != nil {
		t.Fatal(err)
	}
	a := &Ast{t: t, home: h, opts: o, dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Asterisk log (%s), last lines:\n%s", a.LogPath(), a.LogTail(60))
		}
		a.Kill()
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	for attempt := 1; ; attempt++ {
		if a.p, err = freePorts(); err != nil {
			t.Fatal(err)
		}
		if err = a.writeConf(); err != nil {
			t.Fatal(err)
		}
		if err = a.start(); err == nil {
			return a
		}
		if tail := a.LogTail(20); strings.Contains(tail, "error while loading shared libraries") {
			requireIntegration(t, "Asterisk lacks shared libraries (install the Debian packages scripts/test installs):\n"+tail)
		}
		if attempt == 3 {
			t.Fatalf("astreal: %v\n%s", err, a.LogTail(40))
		}
		t.Logf("astreal: %v; trying other ports", err)
	}
}

// SIPAddr is the UDP transport's address; SIPHost its host part, the domain
// of every endpoint's AOR.
func (a *Ast) SIPAddr() string { return "127.0.0.1:" + strconv.Itoa(a.p.sip) }
func (a *Ast) SIPHost() string { return "127.0.0.1" }

// AMIAddr is the manager's address; AMISecret the secret of AMIUser.
func (a *Ast) AMIAddr() string   { return "127.0.0.1:" + strconv.Itoa(a.p.ami) }
func (a *Ast) AMISecret() string { return a.opts.amiSecret() }

// HTTPAddr is the HTTP server's address (ARI).
func (a *Ast) HTTPAddr() string { return "127.0.0.1:" + strconv.Itoa(a.p.http) }

// Dir is the working directory; ConfDir the conf directory in it.
func (a *Ast) Dir() string     { return a.dir }
func (a *Ast) ConfDir() string { return filepath.Join(a.dir, "etc") }

// LogPath is Asterisk's full log (verbose and debug).
func (a *Ast) LogPath() string { return filepath.Join(a.dir, "var", "log", "full") }

// PID is the running process's id, 0 when stopped.
func (a *Ast) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// CLI runs one CLI command through the control socket (asterisk -rx) and
// returns its output.
func (a *Ast) CLI(command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	return a.cli(ctx, command)
}

func (a *Ast) cli(ctx context.Context, command string) (string, error) {
	cmd := exec.CommandContext(ctx, a.home.Binary, "-C", a.confFile(), "-rx", command)
	cmd.Env = a.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("astreal: asterisk -rx %q: %v: %s", command, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// MustCLI is CLI that fails t on an error.
func (a *Ast) MustCLI(t testing.TB, command string) string {
	t.Helper()
	out, err := a.CLI(command)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Restart stops Asterisk and starts it again with the same conf and ports.
func (a *Ast) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	if err := a.start(); err != nil {
		t.Fatalf("astreal: restart: %v\n%s", err, a.LogTail(40))
	}
}

// Stop ends Asterisk with SIGTERM, or SIGKILL after a bound.
func (a *Ast) Stop() { a.signal(syscall.SIGTERM, stopTimeout) }

// Kill ends Asterisk with SIGKILL.
func (a *Ast) Kill() { a.signal(syscall.SIGKILL, stopTimeout) }

func (a *Ast) signal(sig syscall.Signal, within time.Duration) {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(within):
		a.t.Logf("astreal: Asterisk (pid %d) still running %v after %v; killing it", cmd.Process.Pid, within, sig)
		_ = cmd.Process.Kill()
		<-done
	}
}

func (a *Ast) confFile() string { return filepath.Join(a.ConfDir(), "asterisk.conf") }

func (a *Ast) env() []string {
	return append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(a.home.Dir, "lib")+prefixed(os.Getenv("LD_LIBRARY_PATH")))
}

func (a *Ast) start() error {
	for _, d := range []string{"var/lib", "var/spool", "var/log", "var/run"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return err
		}
	}
	_ = os.Remove(filepath.Join(a.dir, "var", "run", "asterisk.pid"))
	console, err := os.OpenFile(filepath.Join(a.dir, "var", "log", "console.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer console.Close()
	// -f: no fork, so the child is Asterisk itself; -n: no colours.
	cmd := exec.Command(a.home.Binary, "-f", "-n", "-C", a.confFile())
	cmd.Dir = a.dir
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Env = a.env()
	// Asterisk dies with the test binary even if no cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	if err := a.waitReady(cmd.Process.Pid, done); err != nil {
		a.Kill()
		return err
	}
	return nil
}

// waitReady waits until Asterisk is fully booted (it ignores SIGTERM before),
// AMI accepts the login, and the SIP, AMI and HTTP ports are bound by this
// process, not by another test's Asterisk that took a port in between.
func (a *Ast) waitReady(pid int, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	stage := "fully booted"
	var booted time.Time
	for {
		select {
		case <-exited:
			return fmt.Errorf("Asterisk exited during startup (waiting for %s)", stage)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := a.cli(ctx, "core waitfullybooted")
		cancel()
		if err == nil {
			if booted.IsZero() {
				booted = time.Now()
			}
			stage = "ports " + a.SIPAddr() + "/udp, " + a.AMIAddr() + ", " + a.HTTPAddr()
			missing := a.p.notOwnedBy(pid)
			if missing == "" {
				stage = "AMI login on " + a.AMIAddr()
				if err := amiLogin(a.AMIAddr(), AMIUser, a.opts.amiSecret()); err == nil {
					return nil
				}
			} else if time.Since(booted) > portGrace {
				// Booted, and a port still not bound by it: taken by another.
				return fmt.Errorf("port %s is not Asterisk's (taken?)", missing)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", startTimeout, stage)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// LogTail returns the last n lines of the full log, or of the console output
// when there is no log yet.
func (a *Ast) LogTail(n int) string {
	b, err := os.ReadFile(a.LogPath())
	if err != nil || len(b) == 0 {
		b, _ = os.ReadFile(filepath.Join(a.dir, "var", "log", "console.out"))
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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

// PointIntake renders sipsilo's message context for a sipsilo at httpAddr and
// applies it with `dialplan reload`: one Asterisk can serve several sipsilos
// in turn.
func (a *Ast) PointIntake(t testing.TB, httpAddr string) {
	t.Helper()
	files, err := asteriskconf.Render(asteriskconf.Options{HTTPAddr: httpAddr})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Path == "extensions_sipsilo.conf" {
			if err := writeFile(filepath.Join(a.ConfDir(), f.Path), f.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out := a.MustCLI(t, "dialplan reload"); !strings.Contains(out, "Dialplan reloaded") {
		t.Fatalf("astreal: dialplan reload: %q", out)
	}
}

// ReadFiles reads the *.conf files of a directory `sipsilo ast-config --out`
// wrote, for Options.Files.
func ReadFiles(dir string) (map[string][]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, n := range names {
		if files[filepath.Base(n)], err = os.ReadFile(n); err != nil {
			return nil, err
		}
	}
	return files, nil
}
