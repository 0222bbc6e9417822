package presence

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

const aorAlice = "alice@example.com"

// devEvents builds events for one AOR with increasing sequence numbers, as a PBX
// would send them.
type devEvents struct {
	h   *harness
	seq uint64
}

func (d *devEvents) apply(ev Event) {
	d.h.t.Helper()
	d.seq++
	ev.AOR, ev.Stream, ev.Seq = aorAlice, "core-1", d.seq
	if ev.Source == "" {
		ev.Source = "test"
	}
	if err := d.h.m.ApplyEvent(context.Background(), ev); err != nil {
		d.h.t.Fatal(err)
	}
	// Targets is Devices' rule, computed without building them.
	if got, want := d.h.m.Targets(aorAlice), keys(d.h.m.Devices(aorAlice)); !slices.Equal(got, want) {
		d.h.t.Fatalf("Targets %q, Devices' keys %q", got, want)
	}
}

func (d *devEvents) register(callID, contact, ua string) {
	d.h.t.Helper()
	d.apply(Event{Kind: Registered, CallID: callID, Contact: contact, UserAgent: ua, Profile: "internal",
		ExpiresIn: time.Hour})
}

func (d *devEvents) remove(callID string) {
	d.h.t.Helper()
	d.apply(Event{Kind: Removed, CallID: callID})
}

func keys(ds []Device) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Key)
	}
	return out
}

// The device key: the instance when there is one, else the contact reduced to
// scheme, user, host, port and transport.
func TestDeviceKeyReducesContact(t *testing.T) {
	for _, tc := range []struct{ instance, contact, want string }{
		{"", `"Bob" <sip:1001@10.0.0.5:5062;ob>;expires=300`, "contact:sip:1001@10.0.0.5:5062"},
		{"", `<SIP:1001@Host.Example:5062;Transport=TCP;fs_nat=yes;fs_path=%3Csip%3A1001%40x%3E>`,
			"contact:sip:1001@host.example:5062;transport=tcp"},
		{"", `sip:1001;line=x@10.0.0.5;rinstance=abc`, "contact:sip:1001@10.0.0.5"},
		{"", `sip:10.0.0.5:5060`, "contact:sip:10.0.0.5:5060"},
		{`"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"`, `<sip:1001@10.0.0.5:5062;ob>`,
			`instance:"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"`},
		{"", ``, "call-id:cid"},
		{"", `<sip:broken`, "call-id:cid"},
	} {
		if got := DeviceKey(tc.instance, tc.contact, "cid"); got != tc.want {
			t.Errorf("DeviceKey(%q, %q) = %q, want %q", tc.instance, tc.contact, got, tc.want)
		}
	}
	long := DeviceKey("", "sip:"+strings.Repeat("u", 400)+"@h", "cid")
	if len(long) > maxDeviceKey || long == DeviceKey("", "sip:"+strings.Repeat("u", 401)+"@h", "cid") {
		t.Fatalf("long key %d bytes, or two long contacts share a key", len(long))
	}
}

// A device keeps its key across re-registrations: a refresh, a new Call-ID from the
// same contact (the PBX replaced the row), a new port after a restart (succession by
// User-Agent); two live phones with the same User-Agent never merge.
func TestDeviceIdentityAndSuccession(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:5060;ob>", "Desk/1.0")
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	if got := h.m.Targets(aorAlice); !slices.Equal(got, []string{"contact:sip:alice@10.0.0.1:5060", "contact:sip:alice@10.0.0.2:5060"}) {
		t.Fatalf("targets %q", got)
	}
	// New Call-ID, same contact: the same device, one registration.
	d.register("a2", "<sip:alice@10.0.0.1:5060;ob>", "Desk/1.0")
	if st := h.m.Get(aorAlice); len(st.Registrations) != 2 || len(h.m.Devices(aorAlice)) != 2 {
		t.Fatalf("replaced registration kept: %+v", st.Registrations)
	}
	// The app restarts on a new port: its old registration ends, the new one
	// inherits the key (same User-Agent, ended device).
	d.remove("b1")
	d.register("b2", "<sip:alice@10.0.0.2:40000>", "App/2.0")
	ds := h.m.Devices(aorAlice)
	if len(ds) != 2 || ds[1].Key != "contact:sip:alice@10.0.0.2:5060" || !ds[1].Registered ||
		ds[1].Contact != "<sip:alice@10.0.0.2:40000>" {
		t.Fatalf("after restart: %+v", ds)
	}
	// A second live app with the same User-Agent is a device of its own.
	d.register("c1", "<sip:alice@10.0.0.3:5060>", "App/2.0")
	if got := keys(h.m.Devices(aorAlice)); len(got) != 3 {
		t.Fatalf("live devices merged: %q", got)
	}
	// Keys survive a restart of sipsilo.
	before := keys(h.m.Devices(aorAlice))
	h.restart()
	if got := keys(h.m.Devices(aorAlice)); !slices.Equal(got, before) {
		t.Fatalf("after restart %q, want %q", got, before)
	}
}

// An ended device stays a target for DeviceMemory, then is forgotten; a device
// first seen later is not a target of what came before (the caller asked earlier).
func TestDeviceMemory(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	d.remove("b1")
	ds := h.m.Devices(aorAlice)
	if len(ds) != 2 || ds[1].Registered || ds[1].Deliverable || !ds[1].EndedAt.Equal(h.clk.Now()) {
		t.Fatalf("ended device: %+v", ds)
	}
	if !h.m.DeviceDeliverable(aorAlice, ds[0].Key) || h.m.DeviceDeliverable(aorAlice, ds[1].Key) {
		t.Fatal("deliverability per device")
	}
	h.clk.Add(DefaultDeviceMemory - time.Minute)
	if got := h.m.Targets(aorAlice); len(got) != 2 {
		t.Fatalf("within memory: %q", got)
	}
	// Remembered across a restart of sipsilo.
	h.restart()
	if got := h.m.Targets(aorAlice); len(got) != 2 {
		t.Fatalf("after restart: %q", got)
	}
	h.clk.Add(2 * time.Minute)
	// b1 is forgotten; a1's registration expired an hour after it began, and its
	// memory counts from that expiry.
	if got := h.m.Targets(aorAlice); !slices.Equal(got, []string{"contact:sip:alice@10.0.0.1:5060"}) {
		t.Fatalf("past b1's memory: %q", got)
	}
	h.clk.Add(time.Hour)
	if got := h.m.Targets(aorAlice); len(got) != 0 {
		t.Fatalf("past memory: %q", got)
	}
	d.register("c1", "<sip:alice@10.0.0.9:5060>", "Other/1")
	st := h.m.Get(aorAlice)
	if len(st.Ended) != 0 {
		t.Fatalf("forgotten devices still stored: %+v", st.Ended)
	}
	if got := h.m.Targets(aorAlice); !slices.Equal(got, []string{"contact:sip:alice@10.0.0.9:5060"}) {
		t.Fatalf("targets %q", got)
	}
}

// A device that registers again gets its entry back, EndedAt cleared.
func TestDeviceComesBack(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "")
	d.remove("b1")
	h.clk.Add(24 * time.Hour)
	d.register("b2", "<sip:alice@10.0.0.2:5060>", "")
	ds := h.m.Devices(aorAlice)
	if len(ds) != 1 || !ds[0].Registered || !ds[0].EndedAt.IsZero() || len(h.m.Get(aorAlice).Ended) != 0 {
		t.Fatalf("%+v", ds)
	}
}

// PRESENCE_IN Unregistered (Unregistered) names no registration: with several
// devices it drops none, nor right after another device's end (its echo); with
// one it ends it.
func TestUnregisteredKeepsOtherDevices(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	d.apply(Event{Kind: Unregistered})
	d.remove("b1")
	// FreeSWITCH's echo of b1's end (sofia_reg_del_callback fires the expiry,
	// then PRESENCE_IN): not news about a1.
	d.apply(Event{Kind: Unregistered})
	ds := h.m.Devices(aorAlice)
	if len(ds) != 2 || !ds[0].Deliverable || ds[1].Registered {
		t.Fatalf("%+v", ds)
	}
	h.clk.Add(unregisteredEcho)
	d.apply(Event{Kind: Unregistered})
	if h.m.Deliverable(aorAlice) || len(h.m.Targets(aorAlice)) != 2 {
		t.Fatalf("last device not ended: %+v", h.m.Devices(aorAlice))
	}
}

// The stale-UNREACHABLE bug: after a registration died (or was flushed) and the
// phone REGISTERs again with the same Call-ID, an UNREACHABLE within the window is
// about the old row and ignored; later ones count, as do those about a plain
// registration.
func TestStaleUnreachableAfterRegisterIgnored(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	unreach := Event{Kind: ReachChanged, CallID: "a1", Reach: Unreachable, Status: "UNREACHABLE 408"}
	d.apply(unreach) // a plain registration: believed
	if h.m.Deliverable(aorAlice) {
		t.Fatal("UNREACHABLE about a plain registration ignored")
	}
	h.clk.Add(time.Minute)
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0") // revived: deliverable at once
	if !h.m.Deliverable(aorAlice) {
		t.Fatal("REGISTER did not make the device deliverable")
	}
	h.clk.Add(20 * time.Second)
	d.apply(unreach)
	if !h.m.Deliverable(aorAlice) {
		t.Fatal("stale UNREACHABLE after the REGISTER believed")
	}
	// A refresh inside the window does not extend it.
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	h.clk.Add(15 * time.Second)
	d.apply(unreach)
	if h.m.Deliverable(aorAlice) {
		t.Fatal("UNREACHABLE past the window ignored")
	}
	// The same after a flush (the row ended, the same Call-ID comes back).
	d.remove("a1")
	h.clk.Add(time.Second)
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	d.apply(unreach)
	if !h.m.Deliverable(aorAlice) {
		t.Fatal("stale UNREACHABLE after flush and REGISTER believed")
	}
}

// A REGISTER is a sign of life at once and wakes relay.
func TestRegisterWakesAtOnce(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	if err := h.m.ObserveDeviceSent(context.Background(), aorAlice, "contact:sip:alice@10.0.0.1:5060", NoAnswer, time.Time{}); err != nil {
		t.Fatal(err)
	}
	woken := h.woken.count(aorAlice)
	h.clk.Add(time.Second)
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	ds := h.m.Devices(aorAlice)
	if !ds[0].Deliverable || !ds[0].LastAlive.Equal(h.clk.Now()) || h.woken.count(aorAlice) != woken+1 {
		t.Fatalf("%+v woken %d", ds, h.woken.count(aorAlice)-woken)
	}
}

// ObserveDeviceSent judges only the device it names.
func TestObserveDeviceSentJudgesOneDevice(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	desk, app := "contact:sip:alice@10.0.0.1:5060", "contact:sip:alice@10.0.0.2:5060"
	if err := h.m.ObserveDeviceSent(ctx, aorAlice, app, NoAnswer, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if !h.m.DeviceDeliverable(aorAlice, desk) || h.m.DeviceDeliverable(aorAlice, app) || !h.m.Deliverable(aorAlice) {
		t.Fatal("NoAnswer of the app judged the desk phone")
	}
	h.clk.Add(time.Second)
	if err := h.m.ObserveDeviceSent(ctx, aorAlice, desk, Delivered2xx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if h.m.DeviceDeliverable(aorAlice, app) {
		t.Fatal("the desk phone's 2xx revived the app")
	}
	// A send that started before the app's REGISTER does not judge it.
	sentAt := h.clk.Now()
	h.clk.Add(time.Second)
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	if err := h.m.ObserveDeviceSent(ctx, aorAlice, app, NotRegistered, sentAt); err != nil {
		t.Fatal(err)
	}
	if !h.m.DeviceDeliverable(aorAlice, app) {
		t.Fatal("an older send judged a newer registration")
	}
	if err := h.m.ObserveDeviceSent(ctx, aorAlice, app, NotRegistered, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if h.m.DeviceDeliverable(aorAlice, app) || !slices.Contains(h.m.Targets(aorAlice), app) {
		t.Fatal("NotRegistered: want the app ended and remembered")
	}
	if err := h.m.ObserveDeviceSent(ctx, aorAlice, app, Outcome(9), time.Time{}); err == nil {
		t.Fatal("unknown outcome accepted")
	}
}

// ChatTo addresses one registration: profile, then the bare contact URI with
// FreeSWITCH's parameters; nothing for an ended device or a contact that could
// break the chat command.
func TestChatTo(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", `"" <sip:alice@10.0.0.1:5060;transport=tcp;fs_nat=yes;fs_path=%3Csip%3Aalice%4010.0.0.1%3A5060%3E>`, "Desk/1.0")
	d.register("b1", "<sip:alice@10.0.0.2:5060|x>", "App/2.0")
	to, ok := h.m.ChatTo(aorAlice, "contact:sip:alice@10.0.0.1:5060;transport=tcp")
	if want := "internal/sip:alice@10.0.0.1:5060;transport=tcp;fs_nat=yes;fs_path=%3Csip%3Aalice%4010.0.0.1%3A5060%3E"; !ok || to != want {
		t.Fatalf("ChatTo = %q %v, want %q", to, ok, want)
	}
	if to, ok := h.m.ChatTo(aorAlice, "contact:sip:alice@10.0.0.2:5060"); ok {
		t.Fatalf("contact with '|' gave %q", to)
	}
	d.register("c1", `<sip:alice@10.0.0.3:5060;x='y>`, "")
	d.register("e1", `<sip:alice@10.0.0.4:5060;x=\y>`, "")
	for _, k := range []string{"contact:sip:alice@10.0.0.3:5060", "contact:sip:alice@10.0.0.4:5060"} {
		if to, ok := h.m.ChatTo(aorAlice, k); ok {
			t.Fatalf("contact with a quote or backslash gave %q", to)
		}
	}
	d.remove("a1")
	if _, ok := h.m.ChatTo(aorAlice, "contact:sip:alice@10.0.0.1:5060;transport=tcp"); ok {
		t.Fatal("ChatTo to an ended device")
	}
	if _, ok := h.m.ChatTo("nobody@x", "contact:sip:x@y"); ok {
		t.Fatal("ChatTo to an unknown AOR")
	}
}

// A record written before device keys loads, and gets its keys.
func TestOldRecordGetsDeviceKeys(t *testing.T) {
	h := newHarness(t)
	old := `{"v":1,"aor":"alice@example.com","reach":"reachable","registrations":[{"call_id":"a1",` +
		`"contact":"<sip:alice@10.0.0.1:5060;ob>","expires":"2030-01-01T00:00:00Z","profile":"internal","reach":"reachable",` +
		`"updated":"2026-11-26T03:46:50Z","registered_at":"2026-11-26T03:46:50Z"}]}`
	if !json.Valid([]byte(old)) {
		t.Fatal("bad fixture")
	}
	if err := h.store.PutReach(context.Background(), aorAlice, []byte(old)); err != nil {
		t.Fatal(err)
	}
	h.restart()
	if got := h.m.Targets(aorAlice); !slices.Equal(got, []string{"contact:sip:alice@10.0.0.1:5060"}) {
		t.Fatalf("targets %q", got)
	}
	if to, ok := h.m.ChatTo(aorAlice, "contact:sip:alice@10.0.0.1:5060"); !ok || to != "internal/sip:alice@10.0.0.1:5060;ob" {
		t.Fatalf("ChatTo %q %v", to, ok)
	}
}

// A phone that registers with a new contact each time cannot grow its record
// without bound.
func TestEndedDevicesBounded(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	for i := range 3 * maxEnded {
		cid := "c" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()
		d.register(cid, "<sip:alice@10.0.0.1:"+time.Duration(1000+i).String()+">", "")
		d.remove(cid)
		h.clk.Add(time.Second)
	}
	if n := len(h.m.Get(aorAlice).Ended); n != maxEnded {
		t.Fatalf("%d ended devices kept, want %d", n, maxEnded)
	}
}

// A device that registers again wakes relay even while another device of the same
// user stayed deliverable all along: its copies are waiting.
func TestDeviceBackWakesWhileAnotherStayedLive(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:5060>", "Desk/1.0")
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	d.remove("b1")
	woken := h.woken.count(aorAlice)
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	if got := h.woken.count(aorAlice) - woken; got != 1 {
		t.Fatalf("OnReachable called %d times, want 1", got)
	}
	// A refresh of a deliverable device wakes nobody.
	d.register("b1", "<sip:alice@10.0.0.2:5060>", "App/2.0")
	if got := h.woken.count(aorAlice) - woken; got != 1 {
		t.Fatalf("refresh: OnReachable called %d times in all, want 1", got)
	}
}

// Succession needs the same contact host: the same app on another host is another
// device and never takes over an ended device's key, and so never its messages.
// Live devices never merge, even on one host (two softphones of a test rig).
func TestSuccessionNeedsTheSameHost(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("p1", "<sip:alice@10.0.0.2:40000>", "App/2.0")
	d.register("p2", "<sip:alice@10.0.0.2:40002>", "App/2.0")
	if ds := h.m.Devices(aorAlice); len(ds) != 2 {
		t.Fatalf("two live softphones on one host merged: %+v", ds)
	}
	d.remove("p2")
	// The tablet (same app, another host) was registered and is off now.
	d.register("t1", "<sip:alice@10.0.0.7:40000>", "App/2.0")
	d.remove("t1")
	// A new phone with the same app: not the tablet's successor.
	d.register("n1", "<sip:alice@10.0.0.9:40000>", "App/2.0")
	if h.m.DeviceDeliverable(aorAlice, "contact:sip:alice@10.0.0.7:40000") || len(h.m.Targets(aorAlice)) != 4 {
		t.Fatalf("a phone on another host took over the tablet's key: %+v", h.m.Devices(aorAlice))
	}
	// p2's app restarts on a new port of its host: p2's successor.
	d.register("p3", "<sip:alice@10.0.0.2:40004>", "App/2.0")
	if !h.m.DeviceDeliverable(aorAlice, "contact:sip:alice@10.0.0.2:40002") || len(h.m.Targets(aorAlice)) != 4 {
		t.Fatalf("restart on the same host is not a successor: %+v", h.m.Devices(aorAlice))
	}
}

// In a profile that keeps one registration per user (Event.Sole, SetSoleProfiles)
// a phone that comes back under a new contact and Call-ID is the same device: the
// PBX replaced its row without an event, so the user stays one target.
func TestSoleProfileIsOneDevice(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	soleRegister := func(callID, contact string) {
		t.Helper()
		d.apply(Event{Kind: Registered, CallID: callID, Contact: contact, UserAgent: "Soft/1", Profile: "internal",
			ExpiresIn: time.Hour, Sole: true})
	}
	first := "contact:sip:alice@10.0.0.1:40000"
	soleRegister("a1", "<sip:alice@10.0.0.1:40000>")
	soleRegister("a2", "<sip:alice@10.0.0.5:41000>")
	ds := h.m.Devices(aorAlice)
	if len(ds) != 1 || ds[0].Key != first || ds[0].Contact != "<sip:alice@10.0.0.5:41000>" || !ds[0].Deliverable {
		t.Fatalf("after a new contact: %+v", ds)
	}
	if to, ok := h.m.ChatTo(aorAlice, first); !ok || to != "internal/sip:alice@10.0.0.5:41000" {
		t.Fatalf("ChatTo %q %v", to, ok)
	}
	d.remove("a2")
	soleRegister("a3", "<sip:alice@10.0.0.6:42000>")
	if got := h.m.Targets(aorAlice); !slices.Equal(got, []string{first}) || !h.m.DeviceDeliverable(aorAlice, first) {
		t.Fatalf("back after ending: %q %+v", got, h.m.Devices(aorAlice))
	}
	// Without Sole (multiple registrations) the same REGISTERs are two devices.
	h2 := newHarness(t)
	d2 := &devEvents{h: h2}
	d2.register("a1", "<sip:alice@10.0.0.1:40000>", "Soft/1")
	d2.register("a2", "<sip:alice@10.0.0.5:41000>", "Soft/1")
	if got := h2.m.Targets(aorAlice); len(got) != 2 {
		t.Fatalf("multiple registrations: %q", got)
	}
}

// A resync of a sole profile that finds the phone under a new contact keeps the
// device's key; without registrations it leaves one remembered device.
func TestSoleResyncCollapses(t *testing.T) {
	h := newHarness(t)
	h.m.SetSoleProfiles(map[string]bool{"internal": true})
	d := &devEvents{h: h}
	d.register("a1", "<sip:alice@10.0.0.1:40000>", "Soft/1")
	h.clk.Add(time.Second)
	doc := `<profile><registrations><registration><call-id>a2</call-id><user>alice@example.com</user>` +
		`<contact>&lt;sip:alice@10.0.0.5:41000&gt;</contact><agent>Soft/1</agent>` +
		`<status>Registered(UDP)(unknown) exp(2030-01-01 00:00:00) expsecs(3600)</status><ping-status>Reachable</ping-status>` +
		`<network-ip>10.0.0.5</network-ip><network-port>41000</network-port></registration></registrations></profile>`
	if err := h.m.Resync(context.Background(), "internal", doc, "core-1"); err != nil {
		t.Fatal(err)
	}
	first := "contact:sip:alice@10.0.0.1:40000"
	ds := h.m.Devices(aorAlice)
	if len(ds) != 1 || ds[0].Key != first || !ds[0].Registered || ds[0].Contact != "<sip:alice@10.0.0.5:41000>" {
		t.Fatalf("after the resync: %+v", ds)
	}
	if err := h.m.Resync(context.Background(), "internal", "<profile><registrations></registrations></profile>", "core-1"); err != nil {
		t.Fatal(err)
	}
	if ds := h.m.Devices(aorAlice); len(ds) != 1 || ds[0].Key != first || ds[0].Registered {
		t.Fatalf("after the phone went: %+v", ds)
	}
}

// StillUnreachable is true for a registration as the pinger judged it, and
// false once a REGISTER with the same Call-ID came after the verdict.
func TestStillUnreachableUntilTheNextRegister(t *testing.T) {
	h := newHarness(t)
	d := &devEvents{h: h}
	d.register("c1", "<sip:alice@127.0.0.1:5090>", "Desk/1.0")
	h.clk.Add(time.Second)
	d.apply(Event{Kind: ReachChanged, CallID: "c1", Reach: Unreachable, Status: "UNREACHABLE"})
	st := h.m.Get(aorAlice)
	if len(st.Registrations) != 1 || st.Registrations[0].Reach != Unreachable {
		t.Fatalf("not judged unreachable: %+v", st.Registrations)
	}
	judged := st.Registrations[0]
	if !h.m.StillUnreachable(aorAlice, judged) {
		t.Fatal("the judged registration is not still unreachable")
	}
	h.clk.Add(time.Second)
	d.register("c1", "<sip:alice@127.0.0.1:5090>", "Desk/1.0")
	if h.m.StillUnreachable(aorAlice, judged) {
		t.Fatal("a registration that registered again would be flushed")
	}
	if h.m.StillUnreachable("nobody@127.0.0.1", judged) {
		t.Fatal("an unknown AOR is still unreachable")
	}
}
