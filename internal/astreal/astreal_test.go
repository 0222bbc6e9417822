package astreal

import (
	"strings"
	"testing"
)

// TestRealAsteriskHarness: two Asterisks side by side on their own ports, each
// with its own message_context and endpoints; a restart keeps the ports.
func TestRealAsteriskHarness(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{MessageContext: "other", Extensions: "[other]\nexten => _X.,1,Hangup()\n"})
	if a.SIPAddr() == b.SIPAddr() || a.AMIAddr() == b.AMIAddr() || a.HTTPAddr() == b.HTTPAddr() {
		t.Fatalf("shared ports: %s %s %s / %s %s %s", a.SIPAddr(), a.AMIAddr(), a.HTTPAddr(), b.SIPAddr(), b.AMIAddr(), b.HTTPAddr())
	}
	if out := a.MustCLI(t, "pjsip show endpoint 1001"); !strings.Contains(out, "message_context") ||
		!strings.Contains(out, ": "+FixtureContext) {
		t.Fatalf("endpoint 1001 on a:\n%s", out)
	}
	if out := b.MustCLI(t, "dialplan show other"); !strings.Contains(out, "Hangup()") {
		t.Fatalf("context other on b:\n%s", out)
	}
	if out := b.MustCLI(t, "pjsip show transports"); !strings.Contains(out, b.SIPAddr()) {
		t.Fatalf("transports on b:\n%s", out)
	}
	sip, pid := a.SIPAddr(), a.PID()
	a.Restart(t)
	if a.SIPAddr() != sip || a.PID() == pid || a.PID() == 0 {
		t.Fatalf("after restart: %s pid %d (was %s pid %d)", a.SIPAddr(), a.PID(), sip, pid)
	}
	if err := amiLogin(a.AMIAddr(), AMIUser, "wrong"); err == nil {
		t.Fatal("AMI accepted a wrong secret")
	}
}
