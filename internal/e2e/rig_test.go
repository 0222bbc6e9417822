package e2e

// The end-to-end rig: the sipsilo binary in a child process, wired to the
// FreeSWITCH emulator (ESL server, registrar, chat routing through the shipped
// xml_curl binding) and real SIP user agents, all on 127.0.0.1.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"

	"github.com/sipsilo/sipsilo/internal/testport"
)

type rig struct {
	t    testing.TB
	sw   *fsemu.Switch
	db   string
	http string // sipsilo's fixed listen address, kept across restarts
	args []string
	proc *child
}

// newRig starts the emulated FreeSWITCH and sipsilo. The binding is the shipped
// one (freeswitch-conf), pointed at sipsilo's port.
func newRig(t testing.TB, opts fsemu.SwitchOptions, args ...string) *rig {
	t.Helper()
	r := &rig{t: t, db: filepath.Join(t.TempDir(), "sipsilo.db"), http: freePort(t)}
	if opts.ESL.HeartbeatInterval == 0 {
		// As FreeSWITCH does by default. Without it a rig whose deliveries all
		// go direct sends nothing on the event socket for a minute, and sipsilo
		// rightly takes the silent connection for a dead one.
		opts.ESL.HeartbeatInterval = 20 * time.Second
	}
	opts.XMLCurl = &fsemu.XMLCurl{
		URL:     strings.Replace(conf.ChatplanURL, "127.0.0.1:8484", r.http, 1),
		Timeout: conf.ChatplanTimeoutSeconds * time.Second,
	}
	sw, err := fsemu.NewSwitch(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Close() })
	r.sw = sw
	r.args = append([]string{"--http", r.http, "--db", r.db, "--esl", sw.ESL().Addr(),
		"--log-level", "debug"}, args...)
	r.start()
	return r
}

// start runs sipsilo and waits until it is ready (store writable, ESL up).
func (r *rig) start() {
	r.t.Helper()
	r.proc = startChild(r.t, nil, r.args...)
	proc := r.proc
	r.t.Cleanup(func() {
		if r.t.Failed() {
			r.t.Logf("sipsilo log:\n%s", proc.log())
		}
	})
	r.waitReady(10 * time.Second)
}

func (r *rig) waitReady(within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get("http://" + r.http + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("sipsilo not ready after %v (last: %v)\n%s", within, err, r.proc.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends sipsilo gracefully, so its file can be read.
func (r *rig) stop() {
	r.t.Helper()
	_ = r.proc.cmd.Process.Signal(syscall.SIGTERM)
	if code := r.proc.wait(r.t, 20*time.Second); code != 0 {
		r.t.Fatalf("sipsilo exited %d\n%s", code, r.proc.log())
	}
}

// messages opens the stopped sipsilo's file and returns every message by body.
func (r *rig) messages() map[string]*kv.Message {
	r.t.Helper()
	s, err := kv.Open(r.db, kv.Options{ReadOnly: true})
	if err != nil {
		r.t.Fatal(err)
	}
	defer s.Close(context.Background())
	all, err := s.All()
	if err != nil {
		r.t.Fatal(err)
	}
	out := make(map[string]*kv.Message, len(all))
	for _, m := range all {
		out[string(m.Body)] = m
	}
	return out
}

func (r *rig) ua(user string) *fsemu.UA {
	r.t.Helper()
	return newUA(r.t, r.sw.SIPAddr(), user)
}

// newUA makes a phone of user (password 1234) on the switch at sipAddr,
// closed when the test ends.
func newUA(t testing.TB, sipAddr, user string) *fsemu.UA {
	t.Helper()
	ua, err := fsemu.NewUA(fsemu.UAOptions{User: user, Password: "1234", Switch: sipAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close() })
	return ua
}

func register(t testing.TB, ua *fsemu.UA) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ua.Register(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func send(t testing.TB, from *fsemu.UA, to, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, err := from.SendMessage(ctx, to, "text/plain", []byte(body))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("MESSAGE to %s: %d %v", to, code, err)
	}
}

// inbox collects what a UA receives, from the moment it is made.
type inbox struct {
	mu   sync.Mutex
	got  []fsemu.Received
	stop chan struct{}
	done chan struct{}
}

func collect(t testing.TB, ua interface{ Received() <-chan fsemu.Received }) *inbox {
	in := &inbox{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		for {
			select {
			case m := <-ua.Received():
				in.mu.Lock()
				in.got = append(in.got, m)
				in.mu.Unlock()
			case <-in.stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(in.stop); <-in.done })
	return in
}

// all returns what arrived, in the order it reached the UA's socket.
func (in *inbox) all() []fsemu.Received {
	in.mu.Lock()
	got := slices.Clone(in.got)
	in.mu.Unlock()
	slices.SortStableFunc(got, func(a, b fsemu.Received) int { return cmp.Compare(a.Arrival, b.Arrival) })
	return got
}

func (in *inbox) waitCount(t testing.TB, n int, within time.Duration) []fsemu.Received {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := in.all()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d messages after %v, want %d", len(got), within, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counts maps each received body to how often it came.
func counts(got []fsemu.Received) map[string]int {
	c := make(map[string]int, len(got))
	for _, m := range got {
		c[string(m.Body)]++
	}
	return c
}

// freePort is a port for a server told it before it binds (internal/testport).
func freePort(t testing.TB) string {
	t.Helper()
	addr, err := testport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func bodyN(i int) string { return fmt.Sprintf("msg %04d", i) }
