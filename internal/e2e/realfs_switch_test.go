package e2e

// The delivery scenarios run against two FreeSWITCHes through one interface:
// the emulator (internal/fsemu, for faults the real server cannot make) and
// FreeSWITCH 1.10.12 itself (internal/fsreal).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/fsreal"
)

// testSwitch is a FreeSWITCH with sipsilo's binding pointed at httpAddr.
type testSwitch interface {
	sipAddr() string
	eslAddr() string
	eslPassword() string
	// httpAddr is where the chatplan binding sends its lookups: sipsilo must
	// listen there.
	httpAddr() string
	// restart restarts FreeSWITCH mid-run: a new Core-UUID, event socket
	// connections dropped, jobs in flight forgotten.
	restart(t *testing.T)
	// registered says whether user has a registration.
	registered(t *testing.T, user string) bool
	// registrations counts user's registrations (several with
	// multiple-registrations).
	registrations(t testing.TB, user string) int
}

// emuSwitch is the emulator.
type emuSwitch struct {
	sw   *fsemu.Switch
	http string
}

var _ testSwitch = (*emuSwitch)(nil)

// newEmuSwitch starts an emulator whose binding is the shipped one, pointed at
// a free port for sipsilo.
func newEmuSwitch(t *testing.T, opts fsemu.SwitchOptions) *emuSwitch {
	t.Helper()
	e := &emuSwitch{http: freePort(t)}
	opts.XMLCurl = &fsemu.XMLCurl{URL: conf.ChatplanURLFor(e.http), Timeout: conf.ChatplanTimeoutSeconds * time.Second}
	if opts.Users == nil {
		opts.Users = users()
	}
	sw, err := fsemu.NewSwitch(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Close() })
	e.sw = sw
	return e
}

func (e *emuSwitch) sipAddr() string      { return e.sw.SIPAddr() }
func (e *emuSwitch) eslAddr() string      { return e.sw.ESL().Addr() }
func (e *emuSwitch) eslPassword() string  { return "ClueCon" }
func (e *emuSwitch) httpAddr() string     { return e.http }
func (e *emuSwitch) restart(t *testing.T) { e.sw.Restart() }
func (e *emuSwitch) registered(t *testing.T, user string) bool {
	for _, r := range e.sw.Registrations() {
		if r.User == user {
			return true
		}
	}
	return false
}

func (e *emuSwitch) registrations(t testing.TB, user string) int {
	n := 0
	for _, r := range e.sw.Registrations() {
		if r.User == user {
			n++
		}
	}
	return n
}

// realSwitch is FreeSWITCH 1.10.12 with sipsilo's files installed.
type realSwitch struct {
	fs   *fsreal.FS
	http string
}

var _ testSwitch = (*realSwitch)(nil)

// realUsers are users() for the real FreeSWITCH's directory.
func realUsers() map[string]string { return users() }

// startRealSwitch starts a FreeSWITCH of t's own with sipsilo's files for a
// sipsilo at a free port.
func startRealSwitch(t testing.TB) *realSwitch {
	t.Helper()
	r := &realSwitch{http: freePort(t)}
	r.fs = fsreal.Start(t, fsreal.Options{Sipsilo: &conf.Options{HTTPAddr: r.http}, Users: realUsers()})
	return r
}

func (r *realSwitch) sipAddr() string     { return r.fs.SIPAddr() }
func (r *realSwitch) eslAddr() string     { return r.fs.ESLAddr() }
func (r *realSwitch) eslPassword() string { return r.fs.ESLPassword() }
func (r *realSwitch) httpAddr() string    { return r.http }
func (r *realSwitch) restart(t *testing.T) {
	t.Helper()
	r.fs.Restart(t)
}
func (r *realSwitch) registered(t *testing.T, user string) bool {
	t.Helper()
	return r.fs.Contact(t, user) != ""
}
func (r *realSwitch) registrations(t testing.TB, user string) int {
	t.Helper()
	return len(r.fs.Registrations(t, user))
}

// srig is the end-to-end rig on either switch: rig's helpers (start, stop,
// waitReady, messages, proc) with the UAs pointed at sw.
type srig struct {
	*rig
	sw testSwitch
}

// newSwitchRig starts sipsilo at sw's binding address, logged in to sw's
// event socket.
func newSwitchRig(t testing.TB, sw testSwitch, args ...string) *srig {
	t.Helper()
	r := &rig{t: t, db: filepath.Join(t.TempDir(), "sipsilo.db"), http: sw.httpAddr()}
	if e, ok := sw.(*emuSwitch); ok {
		r.sw = e.sw
	}
	r.args = append([]string{"--http", r.http, "--db", r.db, "--esl", sw.eslAddr(),
		"--esl-password", sw.eslPassword(), "--log-level", "debug"}, args...)
	r.start()
	return &srig{rig: r, sw: sw}
}

func (r *srig) ua(user string) *fsemu.UA {
	r.t.Helper()
	return newUA(r.t, r.sw.sipAddr(), user)
}

// sent is what a test sent and what the switch said to each: accepted (202)
// or answered 500. FreeSWITCH's SIP stack (sofia-sip, not mod_sofia: the
// response has no User-Agent) sometimes answers an authenticated MESSAGE 500
// under a burst, and routes it anyway about half the time (measured: each
// duplicate after resending a 500'd MESSAGE was one of them). So a 500'd
// message may arrive once or never; resending it would make a duplicate that
// is the phone's, not sipsilo's.
type sent struct {
	accepted  []string
	uncertain map[string]bool
}

// send sends a MESSAGE and records the switch's answer; anything but 202 or
// 500 fails the test.
func (s *sent) send(t testing.TB, from *fsemu.UA, to, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, err := from.SendMessage(ctx, to, "text/plain", []byte(body))
	// The real FreeSWITCH sometimes refuses a burst's freshly authenticated
	// MESSAGE with a second 401/407 (probably: its nonce is stored through its SQL queue
	// and the answer can overtake it — not verified). It routed nothing then, so, like a phone,
	// send again (a bounded number of times).
	for try := 0; try < 3 && err == nil && (code == http.StatusUnauthorized || code == http.StatusProxyAuthRequired); try++ {
		challenged.Add(1)
		code, err = from.SendMessage(ctx, to, "text/plain", []byte(body))
	}
	switch {
	case err == nil && code == http.StatusAccepted:
		s.accepted = append(s.accepted, body)
	case err == nil && code == http.StatusInternalServerError:
		if s.uncertain == nil {
			s.uncertain = map[string]bool{}
		}
		s.uncertain[body] = true
		answered500.Add(1)
	default:
		t.Fatalf("MESSAGE to %s: %d %v", to, code, err)
	}
}

// answered500 counts the 500s over the whole run, for the log; challenged the
// MESSAGEs refused again after their digest answer and sent once more.
var answered500, challenged atomic.Int64

// waitAll waits until every accepted message has arrived at in.
func (s *sent) waitAll(t testing.TB, in *inbox, within time.Duration) []fsemu.Received {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := in.all()
		c := counts(got)
		missing := 0
		for _, b := range s.accepted {
			if c[b] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted messages not received after %v", missing, len(s.accepted), within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// duplicates checks got: every accepted message at least once, a 500'd one
// at most once, nothing else; it returns how many arrived more than once.
func (s *sent) duplicates(t testing.TB, got []fsemu.Received) int {
	t.Helper()
	c := counts(got)
	want := map[string]bool{}
	for _, b := range s.accepted {
		want[b] = true
		if c[b] == 0 {
			t.Errorf("accepted %.30q never received", b)
		}
	}
	dups := 0
	for b, k := range c {
		switch {
		case !want[b] && !s.uncertain[b]:
			t.Errorf("received %.30q, which was never sent", b)
		case s.uncertain[b] && k > 1:
			t.Errorf("%.30q (answered 500) received %d times", b, k)
		}
		dups += k - 1
	}
	return dups
}

// once checks that every accepted message arrived exactly once.
func (s *sent) once(t testing.TB, got []fsemu.Received) {
	t.Helper()
	if d := s.duplicates(t, got); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

// sendOne sends a single MESSAGE, not part of a burst, which the switch must
// accept (the 500s come under bursts only).
func sendOne(t testing.TB, from *fsemu.UA, to, body string) {
	t.Helper()
	var s sent
	s.send(t, from, to, body)
	if len(s.accepted) != 1 {
		t.Fatalf("MESSAGE to %s answered 500", to)
	}
}

// registerOn registers ua; a REGISTER answered 500 or lost is sent again
// (a REGISTER is idempotent).
func registerOn(t testing.TB, ua interface {
	Register(context.Context, time.Duration) error
}) {
	t.Helper()
	var err error
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = ua.Register(ctx, time.Hour)
		cancel()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "answered 500") && !errors.Is(err, context.DeadlineExceeded) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(fmt.Errorf("register %v", err))
}
