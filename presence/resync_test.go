package presence

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

const core0e2f = "0e2f3ccc-1fbd-4726-9b43-d899a68a0b89"

func xmlstatus(t *testing.T) string {
	t.Helper()
	return apiAnswer(t, "esl_06_api_registered_api.txt", "api sofia xmlstatus profile internal reg")
}

// The captured answer at 03:47:24.092 lists 1000 and 1001, each with expsecs(331).
func TestResyncFromCapturedXMLStatus(t *testing.T) {
	h := newHarness(t)
	now := time.Date(2026, 11, 26, 3, 47, 24, 92_000_000, time.UTC)
	h.clk.Set(now)
	if err := h.m.Resync(context.Background(), "internal", xmlstatus(t), core0e2f); err != nil {
		t.Fatal(err)
	}
	for _, aor := range []string{aor1000, aor1001} {
		st := h.want(aor, true, Reachable, true)
		if st.Evidence != "resync" || st.LastCore != core0e2f || st.LastSeq != 0 || len(st.Registrations) != 1 {
			t.Fatalf("%s: %+v", aor, st)
		}
		if h.woken.count(aor) != 1 {
			t.Fatalf("OnReachable(%s) called %d times, want 1", aor, h.woken.count(aor))
		}
	}
	r := h.m.Get(aor1001).Registrations[0]
	want := Registration{
		CallID: "1mulyov9xzrq06j7@pyua", Contact: `"" <sip:1001@127.0.0.1:25071>`, NetworkIP: "127.0.0.1",
		NetworkPort: 25071, Expires: now.Add(331 * time.Second), Profile: "internal",
		UserAgent: "pyua-fixture/1.0", Reach: Reachable, PingStatus: "Reachable", Updated: now, RegisteredAt: now,
		Device: "contact:sip:1001@127.0.0.1:25071",
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("registration\n%+v\nwant\n%+v", r, want)
	}
	if len(h.stored()) != 2 {
		t.Fatal("resync not persisted")
	}
	// Events of the same core continue from there.
	h.replay(find(t, events(t, "esl_07_unregister_json.txt"), "sofia::unregister", 447))
	h.want(aor1001, false, Reachable, false)
}

// Registrations of the profile that FreeSWITCH no longer lists are dropped (missed
// events while disconnected); listed ones keep what presence knew better.
func TestResyncDropsUnlistedAndKeepsOwnVerdict(t *testing.T) {
	h := newHarness(t)
	h.replay(events(t, "esl_01_register_json.txt")...)
	evs := events(t, "esl_09_unreachable_silent_json.txt")
	h.replayUntil(evs, 480) // 1003 registered
	// 1000 answers OPTIONS with 405: FreeSWITCH calls it Unreachable, presence alive.
	un := rewrite(find(t, evs, "sofia::sip_user_state", 495), "from-user", "1000", "sip_user", aor1000,
		"call-id", "uw8avlzlmyyqqjfq@pyua", "Status", "405", "Event-Sequence", "496")
	h.replay(un)
	h.want(aor1000, true, Reachable, true)
	doc := strings.Replace(xmlstatus(t), "<ping-status>Reachable</ping-status>", "<ping-status>Unreachable</ping-status>", 1)

	h.clk.Set(time.Date(2026, 11, 26, 3, 48, 0, 0, time.UTC))
	woken := h.woken.count(aor1000)
	if err := h.m.Resync(context.Background(), "internal", doc, core0e2f); err != nil {
		t.Fatal(err)
	}
	h.want(aor1003, false, Reachable, false)
	h.wantRemembered(aor1003)
	st := h.want(aor1000, true, Reachable, true)
	if st.Registrations[0].PingStatus != "Unreachable" || st.LastSeq != 496 {
		t.Fatalf("%+v", st)
	}
	if h.woken.count(aor1000) != woken+1 {
		t.Fatal("OnReachable not called for a deliverable AOR after resync")
	}
}

// A registration presence did not know, listed as Unreachable, is Suspect: FreeSWITCH
// cannot tell a dead phone from one answering 405, so delivery is still tried.
func TestResyncUnknownUnreachableIsSuspect(t *testing.T) {
	h := newHarness(t)
	h.clk.Set(time.Date(2026, 11, 26, 3, 47, 24, 0, time.UTC))
	doc := strings.ReplaceAll(xmlstatus(t), "<ping-status>Reachable</ping-status>", "<ping-status>Unreachable</ping-status>")
	if err := h.m.Resync(context.Background(), "internal", doc, ""); err != nil {
		t.Fatal(err)
	}
	h.want(aor1001, true, Suspect, true)
}

// A row past its expiry (EXPSECS(-17) in scenario 09) is listed but not registered.
func TestResyncExpiredRowIsNotRegistered(t *testing.T) {
	h := newHarness(t)
	doc := strings.Replace(xmlstatus(t), "expsecs(331)", "expsecs(-17)", 1)
	if err := h.m.Resync(context.Background(), "internal", doc, ""); err != nil {
		t.Fatal(err)
	}
	h.want(aor1000, false, Reachable, false)
	h.want(aor1001, true, Reachable, true)
}

// Only registrations of the profile being resynced are touched.
func TestResyncLeavesOtherProfiles(t *testing.T) {
	h := newHarness(t)
	reg := rewrite(find(t, events(t, "esl_09_unreachable_silent_json.txt"), "sofia::register", 480), "profile-name", "external")
	h.replay(reg)
	if err := h.m.Resync(context.Background(), "internal", xmlstatus(t), ""); err != nil {
		t.Fatal(err)
	}
	h.want(aor1003, true, Reachable, true)
	if err := h.m.Resync(context.Background(), "external", "<profile><registrations></registrations></profile>", ""); err != nil {
		t.Fatal(err)
	}
	h.want(aor1003, false, Reachable, false)
	h.want(aor1001, true, Reachable, true)
}

// Garbled or hostile answers are errors and change nothing.
func TestResyncRejectsBadDocuments(t *testing.T) {
	good := "<profile><registrations>" +
		"<registration><call-id>c1</call-id><user>1000@127.0.0.1</user><status>Registered(UDP) expsecs(30)</status></registration>" +
		"</registrations></profile>"
	bad := map[string]string{
		"invalid profile":    "Invalid Profile!\n",
		"empty":              "",
		"truncated":          xmlstatus(t)[:700],
		"other root":         "<profiles><registrations/></profiles>",
		"no registrations":   "<profile></profile>",
		"trailing element":   good + "<profile><registrations/></profile>",
		"trailing text":      good + "garbage",
		"no expiry":          strings.Replace(good, "expsecs(30)", "", 1),
		"huge expiry":        strings.Replace(good, "expsecs(30)", "expsecs(99999999999999999999)", 1),
		"no call-id":         strings.Replace(good, "c1", "", 1),
		"user without host":  strings.Replace(good, "1000@127.0.0.1", "1000", 1),
		"bad port":           strings.Replace(good, "</status>", "</status><network-port>x</network-port>", 1),
		"unknown charset":    `<?xml version="1.0" encoding="EBCDIC"?>` + good,
		"undefined entity":   `<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>` + strings.Replace(good, "c1", "&b;", 1),
		"unclosed":           strings.TrimSuffix(good, "</profile>"),
		"mismatched":         strings.Replace(good, "</user>", "</usr>", 1),
		"deeply nested junk": "<profile><registrations>" + strings.Repeat("<a>", 20000) + strings.Repeat("</a>", 20000) + "</registrations></profile>",
	}
	h := newHarness(t)
	h.replay(events(t, "esl_01_register_json.txt")...)
	before := h.m.All()
	for name, doc := range bad {
		if err := h.m.Resync(context.Background(), "internal", doc, "new-core"); err == nil {
			t.Errorf("%s: Resync succeeded", name)
		}
	}
	if after := h.m.All(); !reflect.DeepEqual(after, before) {
		t.Fatalf("map changed:\n%+v\nwant\n%+v", after, before)
	}
	if err := h.m.Resync(context.Background(), "", good, ""); err == nil {
		t.Error("Resync without a profile succeeded")
	}
	if err := h.m.Resync(context.Background(), "internal", good, ""); err != nil {
		t.Fatalf("the good document: %v", err)
	}
}

// FreeSWITCH declares ISO-8859-1 but writes the bytes it holds: UTF-8 is kept as it
// is (so AORs match the events'), anything else is read as Latin-1.
func TestResyncCharset(t *testing.T) {
	h := newHarness(t)
	doc := func(agent string) string {
		return `<?xml version="1.0" encoding="ISO-8859-1"?>` + "\n<profile><registrations>" +
			"<registration><call-id>c1</call-id><user>m\xc3\xbcller@127.0.0.1</user><agent>" + agent + "</agent>" +
			"<status>Registered(UDP) expsecs(30)</status></registration></registrations></profile>"
	}
	if err := h.m.Resync(context.Background(), "internal", doc("Ph\xc3\xb6ne"), ""); err != nil {
		t.Fatal(err)
	}
	if st := h.m.Get("müller@127.0.0.1"); st.Registrations[0].UserAgent != "Phöne" {
		t.Fatalf("UTF-8: %+v", st)
	}
	if err := h.m.Resync(context.Background(), "internal", doc("Ph\xf6ne"), ""); err != nil {
		t.Fatal(err)
	}
	// Not UTF-8 as a whole: every byte is Latin-1, the user's too.
	if st := h.m.Get("mÃ¼ller@127.0.0.1"); len(st.Registrations) != 1 || st.Registrations[0].UserAgent != "Phöne" {
		t.Fatalf("Latin-1: %+v", h.m.All())
	}
}
