package fsemu

import (
	"testing"
	"time"
)

// TestSwitchRegisterGolden is scenario 01: pre_register then register,
// with the captured header names, order and fixed values.
func TestSwitchRegisterGolden(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	c := login(t, s.ESL(), eslSub)
	u := newUA(t, s, "1000")
	register(t, u)
	want := capturedKeys(t, "esl_01_register_json.txt")[:2]
	for i, w := range want {
		got := mustEvent(t, c)
		if eventKey(got) != eventKey(w) {
			t.Fatalf("event %d: %s, captured %s", i, eventKey(got), eventKey(w))
		}
		sameShape(t, eventKey(w), got, w, "Event-Name", "Event-Calling-File", "Event-Calling-Function",
			"Event-Calling-Line-Number", "profile-name", "from-user", "from-host", "rpid", "status", "expires",
			"to-user", "to-host", "network-ip", "username", "realm", "presence-hosts", "user_context")
	}
	regs := s.Registrations()
	if len(regs) != 1 || regs[0].User != "1000" || regs[0].Contact != `"" <sip:1000@`+u.Addr()+`>` {
		t.Fatalf("registrations: %+v", regs)
	}
	if left := time.Until(regs[0].Expires); left < 359*time.Second || left > 360*time.Second {
		t.Fatalf("stored expiry %v from now, want 300 s + 60 s late margin", left)
	}
}
