package fsemu

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// capturedAPI returns the body of the api/response that answered cmd.
func capturedAPI(t *testing.T, file, cmd string) string {
	t.Helper()
	frames := loadTranscript(t, file)
	for i, f := range frames {
		if f.dir == "SEND" && strings.HasPrefix(string(f.data), "api "+cmd+"\n") {
			for _, g := range frames[i+1:] {
				if g.dir == "RECV" && strings.HasPrefix(string(g.data), "Content-Type: api/response") {
					_, body, _ := strings.Cut(string(g.data), "\n\n")
					return body
				}
			}
		}
	}
	t.Fatalf("%s: no answer to %q", file, cmd)
	return ""
}

// esl06Regs are the two registrations behind esl_06's API answers, seen 29 s
// after the REGISTERs (EXPSECS(331)).
func esl06Regs() ([]Registration, time.Time) {
	exp := time.Date(2026, 11, 26, 3, 52, 55, 0, time.UTC)
	mk := func(user, callID string, port int) Registration {
		return Registration{User: user, Host: "127.0.0.1", CallID: callID,
			Contact: `"" <sip:` + user + `@127.0.0.1:` + itoa(port) + `>`, NetworkIP: "127.0.0.1", NetworkPort: port,
			Expires: exp, UserAgent: "pyua-fixture/1.0", PingStatus: "Reachable"}
	}
	return []Registration{mk("1000", "uw8avlzlmyyqqjfq@pyua", 25070), mk("1001", "1mulyov9xzrq06j7@pyua", 25071)},
		exp.Add(-331 * time.Second)
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSofiaStatusRenderCapture: the xmlstatus and status renderings are
// byte-identical to esl_06 but for Ping-Time (not emulated: 0.00).
func TestSofiaStatusRenderCapture(t *testing.T) {
	regs, now := esl06Regs()
	fix := strings.NewReplacer("0.81", "0.00", "0.76", "0.00")
	for _, tc := range []struct{ cmd, got string }{
		{"sofia xmlstatus profile internal reg", renderXMLStatus(regs, "vm", now, time.UTC)},
		{"sofia status profile internal reg", renderStatus(regs, "vm", now, time.UTC)},
	} {
		want := fix.Replace(capturedAPI(t, "esl_06_api_registered_api.txt", tc.cmd))
		if tc.got != want {
			t.Errorf("%s:\n got %q\nwant %q", tc.cmd, tc.got, want)
		}
	}
}

// TestSwitchFlushAndExpire is scenario 08 (flush_inbound_reg: sofia::expire
// with the stored expiry, PRESENCE_IN from the del callback, no
// unregister) and the registration thread removing an expired row.
func TestSwitchFlushAndExpire(t *testing.T) {
	s := newSwitch(t, SwitchOptions{RegCheckInterval: 50 * time.Millisecond})
	u := newUA(t, s, "1002")
	register(t, u)
	c := login(t, s.ESL(), eslSub)
	api := login(t, s.ESL(), "")
	if got := apiCall(t, api, "sofia_contact 1002@127.0.0.1"); got != "sofia/internal/sip:1002@"+u.Addr() {
		t.Fatalf("sofia_contact = %q", got)
	}
	exp := s.Registrations()[0].Expires.Unix()
	want := capturedKeys(t, "esl_08_flush_inbound_reg_json.txt")[2:4]
	if got := apiCall(t, api, "sofia profile internal flush_inbound_reg 1002@127.0.0.1"); got != "+OK flushing all registrations matching specified call_id\n" {
		t.Fatalf("flush = %q", got)
	}
	for _, w := range want {
		got := mustEvent(t, c)
		sameShape(t, eventKey(w), got, w, "Event-Calling-Function", "Event-Calling-Line-Number", "rpid", "status")
		if eventKey(w) == "PRESENCE_IN" && got.Get("user-agent") != "Registered(UDP)" {
			t.Errorf("PRESENCE_IN user-agent %q, captured quirk Registered(UDP)", got.Get("user-agent"))
		}
		if eventKey(w) == "sofia::expire" && got.Get("expires") != itoa(int(exp)) {
			t.Errorf("expires %s, want the stored %d", got.Get("expires"), exp)
		}
	}
	// Expires 1 s: stored expiry = +61 s; too long to wait, so age the row.
	register(t, u)
	mustEvent(t, c)
	mustEvent(t, c)
	s.mu.Lock()
	s.regs[0].Expires = time.Now().Add(-time.Second)
	s.mu.Unlock()
	if got := mustEvent(t, c); eventKey(got) != "sofia::expire" {
		t.Fatalf("got %s, want sofia::expire", eventKey(got))
	}
	if got := mustEvent(t, c); got.Get("status") != "Unregistered" {
		t.Fatalf("PRESENCE_IN %v", got)
	}
	if n := len(s.Registrations()); n != 0 {
		t.Fatalf("%d registrations left", n)
	}
}

// TestSwitchRestart: new Core-UUID, registrations kept.
func TestSwitchRestart(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	u := newUA(t, s, "1001")
	register(t, u)
	old := s.ESL().CoreUUID()
	s.Restart()
	if s.ESL().CoreUUID() == old || len(s.Registrations()) != 1 {
		t.Fatalf("after restart: %s, %d registrations", s.ESL().CoreUUID(), len(s.Registrations()))
	}
}
