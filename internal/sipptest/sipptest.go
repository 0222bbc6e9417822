// Package sipptest runs a real SIP phone for tests: sipp (Debian package
// sip-tester) as a UAS on a UDP port of 127.0.0.1 that answers MESSAGE and
// OPTIONS with chosen status codes, can be silenced (SIGSTOP: the port stays
// open and nothing is answered) or killed (the port closes: ICMP
// unreachable), and reports the MESSAGEs it answered from its own message
// trace (-trace_msg), bodies byte for byte.
//
// sipptest does not import fsemu, so fsemu's own tests can use it.
package sipptest

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipsilo/sipsilo/internal/testport"
)

//go:embed phone.xml
var phoneXML string

var phoneTemplate = template.Must(template.New("phone.xml").Parse(phoneXML))

// Options configure a Phone.
type Options struct {
	Answer        int          // status for every incoming MESSAGE; default 200
	OptionsAnswer int          // status for every incoming OPTIONS; default 200
	Logger        *slog.Logger // optional: sipp's command line, exit and stderr
}

// Phone is a running sipp UAS, a child process of the test.
type Phone struct {
	opts   Options
	log    *slog.Logger
	port   int
	dir    string
	msgLog string // sipp's -message_file
	errLog string // sipp's stderr

	cmd     *exec.Cmd
	done    chan struct{} // closed once sipp has exited and been waited for
	waitErr error         // set before done is closed

	mu      sync.Mutex // Silence, Resume and Kill one at a time
	stopped bool
}

// startTimeout bounds how long Start waits for sipp to answer OPTIONS.
const startTimeout = 10 * time.Second

// Start runs sipp as a UAS phone on a free UDP port of 127.0.0.1 and waits
// until it answers an OPTIONS. The phone is killed (and waited for) when
// the test ends. Without sipp the test is skipped, or fails when
// SIPSILO_REQUIRE_INTEGRATION=1.
func Start(t testing.TB, opts Options) *Phone {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		requireIntegration(t, "sipp not installed (Debian package sip-tester)")
	}
	if opts.Answer == 0 {
		opts.Answer = 200
	}
	if opts.OptionsAnswer == 0 {
		opts.OptionsAnswer = 200
	}
	for _, c := range []int{opts.Answer, opts.OptionsAnswer} {
		if c < 200 || c > 699 {
			t.Fatalf("sipptest: %d is not a final status", c)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := t.TempDir()
	scenario := filepath.Join(dir, "phone.xml")
	if err := writeScenario(scenario, opts); err != nil {
		t.Fatal(err)
	}
	// The ports are picked by binding and releasing them; another process
	// may take one in between, and sipp then exits with -2 (254): retry.
	for attempt := 1; ; attempt++ {
		p := &Phone{opts: opts, log: log, dir: dir,
			msgLog: filepath.Join(dir, fmt.Sprintf("messages-%d.log", attempt)),
			errLog: filepath.Join(dir, fmt.Sprintf("sipp-%d.stderr", attempt)),
			done:   make(chan struct{})}
		err := p.start(bin, scenario)
		if err == nil {
			t.Cleanup(p.Kill)
			err = p.waitReady()
			if err == nil {
				return p
			}
			p.Kill()
		}
		if p.cmd != nil && p.cmd.ProcessState != nil && p.cmd.ProcessState.ExitCode() == 254 && attempt < 5 {
			log.Debug("sipptest: sipp could not bind, retrying", "port", p.port)
			continue
		}
		t.Fatalf("sipptest: %v", err)
	}
}

// writeScenario fills in the scenario template.
func writeScenario(path string, opts Options) error {
	allow := "MESSAGE, OPTIONS"
	if opts.OptionsAnswer == 405 {
		allow = "MESSAGE"
	}
	var b bytes.Buffer
	err := phoneTemplate.Execute(&b, map[string]any{
		"Answer": opts.Answer, "AnswerReason": reason(opts.Answer),
		"OptionsAnswer": opts.OptionsAnswer, "OptionsReason": reason(opts.OptionsAnswer),
		"Allow": allow,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// start picks the ports and starts sipp.
func (p *Phone) start(bin, scenario string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	ctl, err := freePort()
	if err != nil {
		return err
	}
	p.port = port
	stderr, err := os.Create(p.errLog)
	if err != nil {
		return err
	}
	defer stderr.Close() // the child has its own copy
	args := []string{
		"-sf", scenario,
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-bind_local", "-t", "u1",
		"-mi", "127.0.0.1", // RTP echo sockets (unused) on loopback too
		"-ci", "127.0.0.1", "-cp", strconv.Itoa(ctl), // control socket, else 0.0.0.0:8888
		"-nostdin",
		"-aa", // 200 OK to out-of-call INFO, NOTIFY, UPDATE
		"-trace_msg", "-message_file", p.msgLog,
		// A SIGSTOP longer than 3 s counts as a major watchdog trip; by
		// default the tenth ends sipp.
		"-watchdog_major_maxtriggers", "1000000000",
		"-watchdog_minor_maxtriggers", "1000000000",
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = p.dir // sipp writes <scenario>_<pid>_*.log files here
	cmd.Stdin = nil
	cmd.Stdout = nil // the statistics screen, every second: discarded
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()
	p.log.Debug("sipptest: starting sipp", "args", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		p.log.Debug("sipptest: sipp exited", "port", port, "err", p.waitErr)
		close(p.done)
	}()
	return nil
}

// waitReady sends OPTIONS until sipp answers one.
func (p *Phone) waitReady() error {
	c, err := newClient(p.log)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		res, err := c.Request(ctx, sip.OPTIONS, p.Addr(), "probe", nil, nil)
		cancel()
		if err == nil && res.StatusCode == p.opts.OptionsAnswer {
			return nil
		}
		if err == nil {
			return fmt.Errorf("sipp answered OPTIONS with %d, want %d", res.StatusCode, p.opts.OptionsAnswer)
		}
		select {
		case <-p.done:
			return fmt.Errorf("sipp exited: %v: %s", p.waitErr, p.stderr())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sipp on %s did not answer OPTIONS within %v: %s", p.Addr(), startTimeout, p.stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stderr is what sipp wrote to stderr (its last 2 KiB).
func (p *Phone) stderr() string {
	b, _ := os.ReadFile(p.errLog)
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return strings.TrimSpace(string(b))
}

// Addr is the phone's SIP address, 127.0.0.1:port (UDP).
func (p *Phone) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Port is the phone's UDP port.
func (p *Phone) Port() int { return p.port }

// Contact is a Contact header value for user at this phone:
// <sip:user@127.0.0.1:port>.
func (p *Phone) Contact(user string) string {
	return "<sip:" + user + "@" + p.Addr() + ">"
}

// Dir is the phone's directory: scenario, sipp's message trace and stderr.
func (p *Phone) Dir() string { return p.dir }

// Silence stops sipp (SIGSTOP) and waits until it is stopped: its port stays
// open and nothing is answered, like a phone whose network vanished.
// Requests that arrive meanwhile wait in the socket buffer: Resume answers
// them.
func (p *Phone) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited() || p.stopped {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		p.log.Debug("sipptest: SIGSTOP", "err", err)
		return
	}
	p.stopped = true
	waitState(p.cmd.Process.Pid, true)
}

// Resume continues a silenced sipp (SIGCONT).
func (p *Phone) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited() || !p.stopped {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		p.log.Debug("sipptest: SIGCONT", "err", err)
		return
	}
	p.stopped = false
	waitState(p.cmd.Process.Pid, false)
}

// Kill ends sipp with SIGKILL and waits for it: its port is closed, so
// requests to it get ICMP port unreachable. Messages still works.
func (p *Phone) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL) // also ends a stopped process
	<-p.done
	p.stopped = false
}

// Exited reports whether sipp has ended (killed, or on its own).
func (p *Phone) Exited() bool { return p.exited() }

func (p *Phone) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Messages returns the MESSAGEs the phone answered with a 2xx, in the order
// sipp read them, each once (retransmissions are left out).
func (p *Phone) Messages() []Received {
	var out []Received
	for _, r := range p.Requests(sip.MESSAGE.String()) {
		if r.Status >= 200 && r.Status <= 299 {
			out = append(out, r)
		}
	}
	return out
}

// WaitMessages waits until Messages has at least n entries and returns
// them, or returns what there is after timeout.
func (p *Phone) WaitMessages(n int, timeout time.Duration) []Received {
	deadline := time.Now().Add(timeout)
	for {
		ms := p.Messages()
		if len(ms) >= n || time.Now().After(deadline) {
			return ms
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Requests returns the requests of method (all methods when "") that sipp
// read, in order, each once: a retransmission (same Call-ID, CSeq and Via
// branch) is left out. Status is the final status sipp logged sending for
// it; sipp logs a response just after sending it, so when that line is not
// written yet, a MESSAGE or OPTIONS has the status the scenario answers it
// with (it answers at once), and other methods 0.
func (p *Phone) Requests(method string) []Received {
	b, err := os.ReadFile(p.msgLog)
	if err != nil {
		return nil
	}
	rs := requestsFrom(parseTrace(b), method)
	for i := range rs {
		if rs[i].Status != 0 {
			continue
		}
		switch rs[i].Method {
		case sip.MESSAGE.String():
			rs[i].Status = p.opts.Answer
		case sip.OPTIONS.String():
			rs[i].Status = p.opts.OptionsAnswer
		}
	}
	return rs
}

// requireIntegration skips the test, or fails it when integration tests
// must run (SIPSILO_REQUIRE_INTEGRATION=1), as in the main package.
func requireIntegration(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("SIPSILO_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration test cannot run: %s", why)
	}
	t.Skip(why)
}

// freePort returns a UDP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) { return testport.Free() }

// reason is the reason phrase for a status code.
func reason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return "Status " + strconv.Itoa(code)
}

var reasons = map[int]string{
	200: "OK", 202: "Accepted",
	400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	408: "Request Timeout", 410: "Gone", 415: "Unsupported Media Type",
	480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
	486: "Busy Here", 488: "Not Acceptable Here",
	500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
	600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
}

func itoa(n int) string { return strconv.Itoa(n) }
