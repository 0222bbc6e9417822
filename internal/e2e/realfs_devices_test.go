package e2e

// Several devices per user: a second table of delivery scenarios, each run
// against the emulator and against FreeSWITCH 1.10.12 with
// multiple-registrations=contact, where every phone of a user keeps its own
// registration. Every device must get every message received while it was a
// target, once and in order, whatever the other devices do
// (`go test -run RealFSDevices`).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/fsreal"
	"github.com/sipsilo/sipsilo/kv"
)

// devicesScenario is one case of the table.
type devicesScenario struct {
	name string
	emu  fsemu.SwitchOptions
	run  func(t *testing.T, sw testSwitch)
}

func devicesScenarios() []devicesScenario {
	return []devicesScenario{
		{name: "two_online", run: scenarioTwoOnline},
		{name: "two_online_through_freeswitch", run: scenarioTwoOnlineThroughFreeSWITCH},
		{name: "one_refusing_through_freeswitch", run: scenarioOneRefusingThroughFreeSWITCH},
		{name: "three_one_silent", run: scenarioThreeOneSilent},
		{name: "sent_after_a_sibling_was_flushed", run: scenarioSentAfterSiblingFlushed},
		{name: "off_at_receipt", run: scenarioOffAtReceipt},
		{name: "expired_at_receipt", run: scenarioExpiredAtReceipt},
		{name: "back_on_a_new_port", run: scenarioBackOnANewPort},
		{name: "forgotten_after_device_memory", run: scenarioForgottenDevice},
		{name: "first_seen_after_receipt", run: scenarioFirstSeenAfterReceipt},
		{name: "kill9_mid_drain", run: scenarioKill9TwoDevices},
		{name: "tcp_and_udp_devices", run: scenarioTCPAndUDPDevices},
		{name: "single_device", run: scenarioSingleDevice},
	}
}

func TestRealFSDevices(t *testing.T) {
	// One real FreeSWITCH for the table; each case begins with nobody
	// registered and a fresh sipsilo.
	var shared *realSwitch
	if fsreal.Available() == nil {
		shared = startRealSwitchWith(t, fsreal.Options{MultipleRegistrations: "contact"})
	}
	for _, sc := range devicesScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Run("emulator", func(t *testing.T) {
				opts := sc.emu
				opts.MultipleRegistrations = "contact" // as the real one's profile
				sc.run(t, newEmuSwitch(t, opts))
			})
			t.Run("real", func(t *testing.T) {
				if err := fsreal.Available(); err != nil {
					requireIntegration(t, err.Error())
				}
				shared.fs.FlushRegistrations(t)
				sc.run(t, shared)
			})
		})
	}
}

// startRealSwitchWith is startRealSwitch with o's profile settings (o's
// Sipsilo and Users are set here).
func startRealSwitchWith(t testing.TB, o fsreal.Options) *realSwitch {
	t.Helper()
	r := &realSwitch{http: freePort(t)}
	o.Sipsilo, o.Users = &conf.Options{HTTPAddr: r.http}, realUsers()
	r.fs = fsreal.Start(t, o)
	return r
}

// phone is what the device tests need of a phone: fsemu's UA (UDP) or a
// tcpPhone.
type phone interface {
	Register(ctx context.Context, expires time.Duration) error
	Unregister(ctx context.Context) error
	Addr() string // its contact's host:port
	Received() <-chan fsemu.Received
}

// device is one phone of a user with several: its own socket, Call-ID and
// contact, and what it received.
type device struct {
	name string
	ph   phone
	ua   *fsemu.UA // ph when it is fsemu's UA (SetSilent, SetAnswer), else nil
	in   *inbox
}

// newDevice makes a device of ph.
func newDevice(t testing.TB, name string, ph phone) *device {
	d := &device{name: name, ph: ph, in: collect(t, ph)}
	d.ua, _ = ph.(*fsemu.UA)
	return d
}

// devices makes n phones of user on r's switch, not yet registered.
func (r *srig) devices(user string, n int) []*device {
	r.t.Helper()
	out := make([]*device, n)
	for i := range out {
		out[i] = newDevice(r.t, fmt.Sprintf("%s/%c", user, 'A'+i), r.ua(user))
	}
	return out
}

// newDevicesRig starts sipsilo on sw with the admin API on (the tests read
// presence's view through it).
func newDevicesRig(t testing.TB, sw testSwitch, args ...string) *srig {
	t.Helper()
	r := newSwitchRig(t, sw, append([]string{"--admin-token", adminToken}, args...)...)
	// Runs before the rig's own cleanup: sipsilo is still up, unless stopped.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		req, err := http.NewRequest("GET", "http://"+r.http+"/api/v1/presence/"+url.PathEscape(aorOf("1001")), nil)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return // stopped
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		t.Logf("sipsilo's presence view of 1001 at the end: %d %s", res.StatusCode, b)
	})
	return r
}

// aorOf is user's address of record as sipsilo names it.
func aorOf(user string) string { return user + "@127.0.0.1" }

// registerAll registers each device and waits until sipsilo knows them all as
// registered: a message's targets are the devices sipsilo knows when it
// arrives, so a test sends only once they are known.
func registerAll(t testing.TB, r *srig, user string, devs ...*device) {
	t.Helper()
	for _, d := range devs {
		registerOn(t, d.ph)
	}
	waitKnown(t, r, user, func(live []string) bool {
		for _, d := range devs {
			if !slices.ContainsFunc(live, func(c string) bool { return strings.Contains(c, d.ph.Addr()) }) {
				return false
			}
		}
		return true
	})
}

// unregisterAll unregisters each device and waits until sipsilo no longer
// counts them as registered.
func unregisterAll(t testing.TB, r *srig, user string, devs ...*device) {
	t.Helper()
	for _, d := range devs {
		if err := d.ph.Unregister(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	waitKnown(t, r, user, func(live []string) bool {
		for _, d := range devs {
			if slices.ContainsFunc(live, func(c string) bool { return strings.Contains(c, d.ph.Addr()) }) {
				return false
			}
		}
		return true
	})
}

// presenceView is the part of GET /api/v1/presence/{aor} the tests read.
type presenceView struct {
	Registrations []struct {
		Contact   string  `json:"contact"`
		ExpiresIn float64 `json:"expires_in_s"`
	} `json:"registrations"`
	Devices []deviceView `json:"devices"`
}

// deviceView is one device in a presenceView.
type deviceView struct {
	Key         string `json:"key"`
	Registered  bool   `json:"registered"`
	Deliverable bool   `json:"deliverable"`
}

// waitRegistrations waits until the switch lists n registrations of user
// (sipsilo's pinger had the others flushed).
func waitRegistrations(t testing.TB, sw testSwitch, user string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for sw.registrations(t, user) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d registrations on the switch after 30 s, want %d", user, sw.registrations(t, user), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitUndeliverable waits until sipsilo no longer counts d as deliverable
// (its pinger found it silent, or its registration ended).
func waitUndeliverable(t testing.TB, r *srig, user string, d *device) {
	t.Helper()
	key := deviceKeyOf(d)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v presenceView
		if r.api("GET", "/presence/"+url.PathEscape(aorOf(user)), nil, &v) == 200 &&
			!slices.ContainsFunc(v.Devices, func(dv deviceView) bool { return dv.Key == key && dv.Deliverable }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (%s) still deliverable after 30 s: %+v", d.name, key, v.Devices)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// copyKeys returns the device keys of m's copies, sorted.
func copyKeys(m *kv.Message) []string {
	var keys []string
	for _, c := range m.Devices {
		keys = append(keys, c.Key)
	}
	slices.Sort(keys)
	return keys
}

// checkCopies stops sipsilo and checks that each message of s is delivered
// with copies for exactly the keys of devs (none for fewer than two), each
// copy delivered.
func checkCopies(t testing.TB, r *srig, s *sent, devs ...*device) {
	t.Helper()
	var want []string
	if len(devs) >= 2 {
		for _, d := range devs {
			want = append(want, deviceKeyOf(d))
		}
		slices.Sort(want)
	}
	msgs := r.messages()
	for _, b := range s.accepted {
		m := msgs[b]
		if m == nil {
			t.Fatalf("no stored message %q", b)
		}
		if got := copyKeys(m); m.State != kv.StateDelivered || !slices.Equal(got, want) {
			t.Errorf("message %q: %s with copies %q, want delivered with copies %q", b, m.State, got, want)
		}
		for _, c := range m.Devices {
			if c.State != kv.StateDelivered {
				t.Errorf("message %q: copy %s %s", b, c.Key, c.State)
			}
		}
	}
}

// waitKnown polls sipsilo's view of user until ok accepts the contacts of its
// live registrations.
func waitKnown(t testing.TB, r *srig, user string, ok func(live []string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v presenceView
		var live []string
		if r.api("GET", "/presence/"+url.PathEscape(aorOf(user)), nil, &v) == 200 {
			for _, reg := range v.Registrations {
				if reg.ExpiresIn > 0 {
					live = append(live, reg.Contact)
				}
			}
		}
		if ok(live) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sipsilo's view of %s after 10 s: live registrations %q", user, live)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendBurst sends n numbered messages from 1000 to user, starting at from.
func sendBurst(t testing.TB, alice *fsemu.UA, user string, s *sent, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		s.send(t, alice, user, bodyN(i))
	}
}

// allOnceInOrder waits until d has every message of s and checks that each
// arrived once and in order.
func (d *device) allOnceInOrder(t testing.TB, s *sent, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c := counts(d.in.all())
		missing := 0
		for _, b := range s.accepted {
			if c[b] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d accepted messages not received after %v (received %q)",
				d.name, missing, len(s.accepted), within, bodies(d.in.all()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.onceInOrder(t, s)
}

// onceInOrder checks what d received: each of s once, in order.
func (d *device) onceInOrder(t testing.TB, s *sent) {
	t.Helper()
	got := d.in.all()
	if dups := s.duplicates(t, got); dups != 0 {
		t.Errorf("%s: %d duplicates", d.name, dups)
	}
	if inv := inversions(got); inv != 0 {
		t.Errorf("%s: %d inversions: %q", d.name, inv, bodies(got))
	}
}

func bodies(got []fsemu.Received) []string {
	out := make([]string, len(got))
	for i, m := range got {
		out[i] = string(m.Body)
	}
	return out
}

// scenarioTwoOnline: two phones of one user online, sipsilo at its defaults
// (the pinger and the direct path on): each gets each of 20 messages once, in
// order. Before per-device delivery, the second phone got none.
func scenarioTwoOnline(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, "--log-level", "info")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	registerAll(t, r, "1001", devs...)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 20)
	for _, d := range devs {
		d.allOnceInOrder(t, &s, 30*time.Second)
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would come now
	for _, d := range devs {
		d.onceInOrder(t, &s)
	}
	r.stop()
	checkCopies(t, r, &s, devs...)
	checkCopiesShown(t, r, r.messages()[s.accepted[0]].ID, devs...)
}

// copiesView is the part of a message's view (admin API, inspect --json)
// that names its copies.
type copiesView struct {
	State   kv.State `json:"state"`
	Devices []struct {
		Key   string   `json:"key"`
		State kv.State `json:"state"`
	} `json:"devices"`
}

// checkCopiesShown checks that the stopped sipsilo's `inspect message` and,
// after a restart, GET /api/v1/messages/{id} show message id delivered with a
// delivered copy for each of devs.
func checkCopiesShown(t *testing.T, r *srig, id string, devs ...*device) {
	t.Helper()
	check := func(from string, v copiesView) {
		t.Helper()
		got := map[string]kv.State{}
		for _, c := range v.Devices {
			got[c.Key] = c.State
		}
		if v.State != kv.StateDelivered || len(got) != len(devs) {
			t.Errorf("%s: message %s %s with copies %v", from, id, v.State, got)
		}
		for _, d := range devs {
			if got[deviceKeyOf(d)] != kv.StateDelivered {
				t.Errorf("%s: copy for %s: %q", from, deviceKeyOf(d), got[deviceKeyOf(d)])
			}
		}
	}
	var inspected copiesView
	inspectJSON(t, r.rig, &inspected, "message", id)
	check("inspect message", inspected)
	r.start()
	var api copiesView
	if code := r.api("GET", "/messages/"+id, nil, &api); code != http.StatusOK {
		t.Fatalf("GET /api/v1/messages/%s: %d", id, code)
	}
	check("GET /api/v1/messages", api)
	r.stop()
}

// scenarioTwoOnlineThroughFreeSWITCH: the same through FreeSWITCH's chat (no
// pinger, no direct path): each copy addressed to its own device, each
// confirmed by that device's own answer.
func scenarioTwoOnlineThroughFreeSWITCH(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, append(fsPath, "--log-level", "info")...)
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	registerAll(t, r, "1001", devs...)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 20)
	for _, d := range devs {
		d.allOnceInOrder(t, &s, 30*time.Second)
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would come now
	for _, d := range devs {
		d.onceInOrder(t, &s)
	}
}

// scenarioOneRefusingThroughFreeSWITCH: one phone of two refuses (486)
// through FreeSWITCH's chat: the other gets everything at once and once only
// (FreeSWITCH's own fan-out reports the first answer, so a refusal there would
// fail the message for both and send it to the live one again), and the
// refusing one gets everything, once and in order, when it accepts again.
func scenarioOneRefusingThroughFreeSWITCH(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, append(fsPath, "--log-level", "info", "--retry-min", "300ms", "--dead-after", "1000")...)
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	registerAll(t, r, "1001", devs...)
	ok, refusing := devs[0], devs[1]
	refusing.ua.SetAnswer(486)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 5)
	ok.allOnceInOrder(t, &s, 30*time.Second)
	// It goes on refusing a while (its copies were sent, or are held back by
	// refusals), then accepts again.
	time.Sleep(time.Second)
	refusing.ua.SetAnswer(200)
	refusing.allOnceInOrder(t, &s, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	for _, d := range devs {
		d.onceInOrder(t, &s)
	}
}

// scenarioThreeOneSilent: three phones, one of them silent (it answers
// nothing, not even OPTIONS): the two live ones get everything while it is
// silent, and it gets everything, once and in order, after it comes back and
// registers again.
func scenarioThreeOneSilent(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, "--log-level", "info", "--ping-interval", "1s")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 3)
	registerAll(t, r, "1001", devs...)
	live, silent := devs[:2], devs[2]
	silent.ua.SetSilent(true)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 10)
	for _, d := range live {
		d.allOnceInOrder(t, &s, 30*time.Second)
	}
	// Silent long enough for sipsilo to judge it and have the switch drop its
	// registration: its copies wait. (Coming back while that flush is still on
	// its way is another case: the flush then drops the fresh registration.)
	waitUndeliverable(t, r, "1001", silent)
	waitRegistrations(t, sw, "1001", 2)
	if got := silent.in.all(); len(got) != 0 {
		t.Fatalf("a silent phone received %d messages", len(got))
	}
	silent.ua.SetSilent(false)
	registerOn(t, silent.ua)
	silent.allOnceInOrder(t, &s, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	for _, d := range devs {
		d.onceInOrder(t, &s)
	}
	r.stop()
	checkCopies(t, r, &s, devs...)
}

// scenarioSentAfterSiblingFlushed: one phone of two goes silent and sipsilo's
// pinger has the switch drop its registration; a message sent then reaches
// the live phone at once, and the silent one when it is back and registers
// again.
func scenarioSentAfterSiblingFlushed(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, "--ping-interval", "1s")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	registerAll(t, r, "1001", devs...)
	live, silent := devs[0], devs[1]
	silent.ua.SetSilent(true)
	waitUndeliverable(t, r, "1001", silent)
	waitRegistrations(t, sw, "1001", 1)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 3)
	live.allOnceInOrder(t, &s, 30*time.Second)
	silent.ua.SetSilent(false)
	registerOn(t, silent.ua)
	silent.allOnceInOrder(t, &s, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	for _, d := range devs {
		d.onceInOrder(t, &s)
	}
	r.stop()
	checkCopies(t, r, &s, devs...)
}

// scenarioOffAtReceipt: a phone that was registered before and is off when
// messages arrive (unregistered) gets them when it registers again; the phone
// that stayed online gets them at once.
func scenarioOffAtReceipt(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, "--log-level", "info")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	registerAll(t, r, "1001", devs...)
	on, off := devs[0], devs[1]
	unregisterAll(t, r, "1001", off)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 5)
	on.allOnceInOrder(t, &s, 30*time.Second)
	if got := off.in.all(); len(got) != 0 {
		t.Fatalf("an unregistered phone received %d messages", len(got))
	}
	registerAll(t, r, "1001", off)
	off.allOnceInOrder(t, &s, 30*time.Second)
	r.stop()
	checkCopies(t, r, &s, devs...)
}

// scenarioExpiredAtReceipt: a phone whose registration expired (it stopped
// refreshing it, as an app the OS put to sleep does) is off when messages
// arrive; it gets them when it registers again.
func scenarioExpiredAtReceipt(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, "--log-level", "info")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	on, sleepy := devs[0], devs[1]
	registerAll(t, r, "1001", on)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	err := sleepy.ph.Register(ctx, 2*time.Second)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	waitKnown(t, r, "1001", func(live []string) bool { return len(live) == 2 })
	// Its registration's expiry is a time to outlast; sipsilo counts it ended
	// from then, whether or not the switch has removed the row yet.
	waitKnown(t, r, "1001", func(live []string) bool { return len(live) == 1 })
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 5)
	on.allOnceInOrder(t, &s, 30*time.Second)
	registerAll(t, r, "1001", sleepy)
	sleepy.allOnceInOrder(t, &s, 30*time.Second)
	r.stop()
	checkCopies(t, r, &s, devs...)
}

// scenarioBackOnANewPort: a phone that was off at receipt comes back as a new
// process on a new port (an app restarted): a new contact, the same
// User-Agent. It is the same device, so it gets what arrived meanwhile.
func scenarioBackOnANewPort(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, "--log-level", "info")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	registerAll(t, r, "1001", devs...)
	on, off := devs[0], devs[1]
	unregisterAll(t, r, "1001", off)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 5)
	on.allOnceInOrder(t, &s, 30*time.Second)
	back := r.devices("1001", 1)[0]
	back.name = "1001/B restarted"
	registerAll(t, r, "1001", back)
	back.allOnceInOrder(t, &s, 30*time.Second)
	if got := off.in.all(); len(got) != 0 {
		t.Fatalf("the old process received %d messages", len(got))
	}
}

// scenarioForgottenDevice: a phone unseen for longer than --device-memory is
// no target: a message received then does not wait for it, and it does not
// get it when it comes back (the next message, received while it is
// registered, shows it is served again).
func scenarioForgottenDevice(t *testing.T, sw testSwitch) {
	const memory = 500 * time.Millisecond
	r := newDevicesRig(t, sw, "--log-level", "info", "--device-memory", memory.String())
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	registerAll(t, r, "1001", devs...)
	on, gone := devs[0], devs[1]
	unregisterAll(t, r, "1001", gone)
	time.Sleep(2 * memory) // the device memory is a duration to outlast
	var before sent
	sendBurst(t, alice, "1001", &before, 0, 3)
	on.allOnceInOrder(t, &before, 30*time.Second)
	registerAll(t, r, "1001", gone)
	var after sent
	sendBurst(t, alice, "1001", &after, 3, 1)
	// Order per device holds, so had the earlier ones been kept for it, they
	// would arrive first.
	got := gone.in.waitCount(t, 1, 30*time.Second)
	if len(got) != 1 || string(got[0].Body) != bodyN(3) {
		t.Fatalf("the forgotten phone received %q, want only %q", bodies(got), bodyN(3))
	}
	all := before
	all.accepted = append(slices.Clone(before.accepted), after.accepted...)
	on.allOnceInOrder(t, &all, 30*time.Second)
	r.stop()
	checkCopies(t, r, &before, on) // one target: no copies
	checkCopies(t, r, &after, devs...)
}

// scenarioFirstSeenAfterReceipt: a phone seen for the first time after a
// message arrived is no target of it (the history is MySQL's to serve), but
// of the next one.
func scenarioFirstSeenAfterReceipt(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, "--log-level", "info")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 3)
	old, late := devs[:2], devs[2]
	registerAll(t, r, "1001", old...)
	var before sent
	sendBurst(t, alice, "1001", &before, 0, 3)
	for _, d := range old {
		d.allOnceInOrder(t, &before, 30*time.Second)
	}
	registerAll(t, r, "1001", late)
	var after sent
	sendBurst(t, alice, "1001", &after, 3, 1)
	got := late.in.waitCount(t, 1, 30*time.Second)
	if len(got) != 1 || string(got[0].Body) != bodyN(3) {
		t.Fatalf("the new phone received %q, want only %q", bodies(got), bodyN(3))
	}
	all := before
	all.accepted = append(slices.Clone(before.accepted), after.accepted...)
	for _, d := range old {
		d.allOnceInOrder(t, &all, 30*time.Second)
	}
	r.stop()
	checkCopies(t, r, &before, old...)
	checkCopies(t, r, &after, devs...)
}

// scenarioKill9TwoDevices: sipsilo killed mid-drain to two phones through
// FreeSWITCH loses nothing; each phone's duplicates stay within what was in
// flight to it at the kill, and each is counted on that phone's copy.
func scenarioKill9TwoDevices(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, append(fsPath, "--window", "16", "--log-level", "info")...)
	n := sized(400, 150)
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 2)
	// Known, then off: both are targets of what arrives now.
	registerAll(t, r, "1001", devs...)
	unregisterAll(t, r, "1001", devs...)
	s := &sent{}
	sendBurst(t, alice, "1001", s, 0, n)
	waitScrape(t, r.rig, "every accepted message queued", time.Minute, func(sc scraped) bool {
		return sc.value("sipsilo_queue_messages") >= float64(len(s.accepted))
	})
	for _, d := range devs {
		d.ua.SetAnswerDelay(20 * time.Millisecond) // copies stay in flight however fast the drain
		registerOn(t, d.ph)
	}
	for _, d := range devs {
		d.in.waitCount(t, n/10, time.Minute)
	}
	_ = r.proc.cmd.Process.Signal(syscall.SIGKILL)
	r.proc.wait(t, 5*time.Second)
	// What the killed run left uncertain, per device key.
	inFlight := map[string]int{}
	for _, m := range r.messages() {
		for _, c := range m.Devices {
			if c.State == kv.StateQueued && (c.InFlight != "" || !m.BodyFinal) {
				inFlight[c.Key]++
			}
		}
	}
	if len(inFlight) == 0 {
		t.Fatal("no copy was in flight at the kill; the test proves nothing")
	}
	r.start()
	for _, d := range devs {
		s.waitAll(t, d.in, 3*time.Minute)
	}
	time.Sleep(500 * time.Millisecond)
	r.stop()
	uncertain := map[string]int{}
	for _, m := range r.messages() {
		if m.State != kv.StateDelivered || len(m.Devices) != 2 {
			t.Fatalf("message %q left %s with %d copies", m.Body, m.State, len(m.Devices))
		}
		for _, c := range m.Devices {
			if c.State != kv.StateDelivered {
				t.Fatalf("message %q: copy %s left %s", m.Body, c.Key, c.State)
			}
			uncertain[c.Key] += c.UncertainResends
		}
	}
	for _, d := range devs {
		key := deviceKeyOf(d)
		dups := s.duplicates(t, d.in.all())
		t.Logf("%s (%s): in flight at the kill %d, duplicates %d, counted uncertain resends %d",
			d.name, key, inFlight[key], dups, uncertain[key])
		if dups > inFlight[key] {
			t.Errorf("%s: %d duplicates, more than the %d copies in flight to it at the kill", d.name, dups, inFlight[key])
		}
		if uncertain[key] != inFlight[key] {
			t.Errorf("%s: %d uncertain resends counted, want %d", d.name, uncertain[key], inFlight[key])
		}
	}
}

// deviceKeyOf is the key sipsilo gives d: its contact reduced to scheme, user,
// host and port (an fsemu UA sends no +sip.instance).
func deviceKeyOf(d *device) string {
	return "contact:sip:1001@" + d.ph.Addr()
}

// scenarioTCPAndUDPDevices: one phone over UDP, one over TCP, sipsilo at its
// defaults: sipsilo can neither ping nor reach the TCP phone itself, so its
// copies go through FreeSWITCH, addressed to the registration FreeSWITCH keeps
// with the phone's connection (fs_path); each phone gets each message once, in
// order.
func scenarioTCPAndUDPDevices(t *testing.T, sw testSwitch) {
	if _, ok := sw.(*emuSwitch); ok {
		t.Skip("the emulator's registrar speaks UDP only")
	}
	r := newDevicesRig(t, sw, "--log-level", "info")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := []*device{r.devices("1001", 1)[0], newDevice(t, "1001/TCP", newTCPPhone(t, sw.sipAddr(), "1001"))}
	registerAll(t, r, "1001", devs...)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 10)
	for _, d := range devs {
		d.allOnceInOrder(t, &s, 30*time.Second)
	}
	time.Sleep(300 * time.Millisecond)
	for _, d := range devs {
		d.onceInOrder(t, &s)
	}
}

// scenarioSingleDevice: on a profile with multiple registrations, a user with
// one phone is served as before: each message once, in order, stored without
// per-device copies.
func scenarioSingleDevice(t *testing.T, sw testSwitch) {
	r := newDevicesRig(t, sw, "--log-level", "info")
	alice := r.ua("1000")
	registerOn(t, alice)
	devs := r.devices("1001", 1)
	registerAll(t, r, "1001", devs...)
	var s sent
	sendBurst(t, alice, "1001", &s, 0, 10)
	devs[0].allOnceInOrder(t, &s, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	r.stop()
	for _, m := range r.messages() {
		if m.State != kv.StateDelivered || m.Devices != nil {
			t.Fatalf("message %q: %s with copies %+v", m.Body, m.State, m.Devices)
		}
	}
}
