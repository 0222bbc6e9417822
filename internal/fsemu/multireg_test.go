package fsemu

import (
	"strings"
	"testing"
)

// With multiple-registrations=contact a user's phones keep a row each; a
// REGISTER refreshes the row of its own contact and moves it last; xmlstatus
// lists every row; chat to user@host sends to every row in row order and the
// first answer decides; chat to <profile>/<contact> reaches that phone only and
// reports its own answer.
func TestMultipleRegistrationsByContact(t *testing.T) {
	s := newSwitch(t, SwitchOptions{MultipleRegistrations: "contact", ChatResultFloor: -1})
	a, b := newUA(t, s, "1001"), newUA(t, s, "1001")
	register(t, a)
	register(t, b)
	register(t, a)
	regs := s.Registrations()
	if len(regs) != 2 || !strings.Contains(regs[0].Contact, b.Addr()) || !strings.Contains(regs[1].Contact, a.Addr()) {
		t.Fatalf("rows %+v, want b's then a's", regs)
	}
	if x := s.sofiaAPI("xmlstatus profile internal reg"); strings.Count(x, "<registration>") != 2 {
		t.Fatalf("xmlstatus lists %d rows:\n%s", strings.Count(x, "<registration>"), x)
	}
	chat := func(to, body string) string {
		return s.chatAPI("sip|1000@127.0.0.1|"+to+"|"+body+"|text/plain", func() {})
	}

	// Fan-out: b (first row) refuses, a accepts; FreeSWITCH reports b's answer.
	b.SetAnswer(486)
	if got := chat("1001@127.0.0.1", "fan"); got != chatFailed {
		t.Fatalf("fan-out with the first row refusing: %q", got)
	}
	if r := mustReceive(t, a); string(r.Body) != "fan" {
		t.Fatalf("a got %q", r.Body)
	}
	// b's 200 comes first and decides; a is sent to without waiting, and gets it.
	b.SetAnswer(200)
	if got := chat("1001@127.0.0.1", "fan2"); got != chatSent {
		t.Fatalf("fan-out with the first row accepting: %q", got)
	}
	for _, u := range []*UA{b, a} {
		if r := mustReceive(t, u); string(r.Body) != "fan2" {
			t.Fatalf("%s got %q", u.Addr(), r.Body)
		}
	}

	// Addressed to one contact (with FreeSWITCH's fs_nat as sofia_contact shows it).
	if got := chat("internal/sip:1001@"+b.Addr()+";fs_nat=yes", "to b"); got != chatSent {
		t.Fatalf("chat to b's contact: %q", got)
	}
	if r := mustReceive(t, b); string(r.Body) != "to b" {
		t.Fatalf("b got %q", r.Body)
	}
	if got := chat("internal/sip:1001@"+a.Addr(), "to a"); got != chatSent {
		t.Fatalf("chat to a's contact: %q", got)
	}
	if r := mustReceive(t, a); string(r.Body) != "to a" {
		t.Fatalf("a got %q first: the chat to b's contact reached a", r.Body)
	}
	a.SetAnswer(486)
	if got := chat("internal/sip:1001@"+a.Addr(), "refused"); got != chatFailed {
		t.Fatalf("chat to a refusing contact: %q", got)
	}
	if got := chat("external/sip:1001@"+a.Addr(), "nowhere"); got != chatFailed {
		t.Fatalf("chat through an unknown profile: %q", got)
	}

	// Un-REGISTER ends that phone's row only.
	if err := b.Unregister(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if regs := s.Registrations(); len(regs) != 1 || !strings.Contains(regs[0].Contact, a.Addr()) {
		t.Fatalf("after b's un-REGISTER: %+v", regs)
	}
}
