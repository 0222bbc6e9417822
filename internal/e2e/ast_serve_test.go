package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// astBodies are hostile bodies Asterisk passes exactly (under 1 KiB, no NUL,
// no trailing CR/LF): each must come back byte for byte.
var astBodies = []string{
	" lead %41 | pipe 'sq' \"dq\" back\\slash\nnewline\ttab ${x} ümlaut 日本 trail ",
	"100% %2a %zz \\n literal, <xml>&amp;]]> $(rm -rf /); DROP TABLE x; --",
	"commas a,b,,c, ${MESSAGE(body)} $[1+1] ${CURL(http://x)}",
	"\r\nCRLF inside\r\nand after", "  two blanks  ", "utf8 𝄞 🎉 日本語", "owned", "",
	string(bytes.Repeat([]byte("0123456789"), 100)),
}

// TestAstOfflineRecipientHostileBodies: messages to a recipient that is not
// registered are owned by sipsilo (Asterisk does not deliver them), and
// delivered once each, byte for byte and in order, when it registers.
func TestAstOfflineRecipientHostileBodies(t *testing.T) {
	r := newAstRig(t)
	alice, bob := r.ua("1000"), r.ua("1001")
	in := collect(t, bob)
	for _, b := range astBodies {
		send(t, alice, "1001", b)
	}
	r.waitStored(len(astBodies), 10*time.Second)
	register(t, bob)
	got := in.waitCount(t, len(astBodies), 30*time.Second)
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive meanwhile
	got = in.all()
	if len(got) != len(astBodies) {
		t.Fatalf("received %d, want %d: %v", len(got), len(astBodies), counts(got))
	}
	for i, m := range got {
		if !bytes.Equal(m.Body, []byte(astBodies[i])) {
			t.Errorf("message %d: got %q, want %q", i, m.Body, astBodies[i])
		}
	}
	r.stop()
	for b, m := range r.messages() {
		if m.State != kv.StateDelivered {
			t.Errorf("%.20q: %s", b, m.State)
		}
	}
}

// TestAstOnlineBurstInOrder: 20 messages to a registered phone arrive once
// each, in the order sent.
func TestAstOnlineBurstInOrder(t *testing.T) {
	r := newAstRig(t)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, bob)
	in := collect(t, bob)
	const n = 20
	for i := range n {
		send(t, alice, "1001", bodyN(i))
	}
	got := in.waitCount(t, n, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	got = in.all()
	if len(got) != n {
		t.Fatalf("received %d, want %d: %v", len(got), n, counts(got))
	}
	for i, m := range got {
		if string(m.Body) != bodyN(i) {
			t.Fatalf("position %d: %q", i, m.Body)
		}
	}
}

// TestAstSilentPhoneKept: a registered phone that stops answering is found
// unreachable (Asterisk's qualify and sipsilo's pinger); a message sent
// meanwhile is kept and delivered once when the phone answers again.
func TestAstSilentPhoneKept(t *testing.T) {
	r := newAstRig(t)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, bob)
	in := collect(t, bob)
	send(t, alice, "1001", "before")
	in.waitCount(t, 1, 20*time.Second)
	bob.SetSilent(true)
	silent := time.Now()
	r.waitDetected(30 * time.Second)
	t.Logf("silent phone found unreachable after %v", time.Since(silent).Round(time.Millisecond))
	send(t, alice, "1001", "while silent")
	r.waitStored(2, 10*time.Second)
	time.Sleep(2 * time.Second) // sipsilo must not drop it meanwhile
	bob.SetSilent(false)
	in.waitCount(t, 2, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	if c := counts(in.all()); c["while silent"] != 1 || c["before"] != 1 || len(in.all()) != 2 {
		t.Fatalf("received %v", c)
	}
}

// TestAstSipsiloDownStockDelivery: with sipsilo stopped, Asterisk delivers
// each message itself, once.
func TestAstSipsiloDownStockDelivery(t *testing.T) {
	r := newAstRig(t)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, bob)
	in := collect(t, bob)
	r.stop()
	for i := range 5 {
		send(t, alice, "1001", fmt.Sprintf("stock %d", i))
	}
	in.waitCount(t, 5, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if c := counts(in.all()); len(c) != 5 || len(in.all()) != 5 {
		t.Fatalf("received %v", c)
	}
}

// TestAstKill9MidDrain: sipsilo killed with direct sends in flight loses
// nothing; duplicates stay within what was in flight at the kill, and each
// such resend is counted.
func TestAstKill9MidDrain(t *testing.T) {
	r := newAstRig(t, "--log-level", "info")
	alice, bob := r.ua("1000"), r.ua("1001")
	// A phone that takes 50 ms to answer keeps sends in flight through the
	// whole drain, so the kill below always finds some, however fast the
	// machine drains.
	bob.SetAnswerDelay(50 * time.Millisecond)
	in := collect(t, bob)
	n := sized(400, 200)
	for i := range n {
		send(t, alice, "1001", bodyN(i))
	}
	r.waitStored(n, time.Minute)
	register(t, bob)
	in.waitCount(t, n/10, time.Minute)
	// Killed while the phone holds a MESSAGE it has not answered: a send
	// sipsilo has in flight.
	deadline := time.Now().Add(time.Minute)
	for bob.Holding() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the phone held no MESSAGE for a minute after %d arrived", len(in.all()))
		}
		time.Sleep(time.Millisecond)
	}
	_ = r.proc.cmd.Process.Signal(syscall.SIGKILL)
	r.proc.wait(t, 5*time.Second)
	inFlight := 0
	for _, m := range r.messages() {
		if m.State == kv.StateQueued && m.InFlight != "" {
			inFlight++
		}
	}
	if inFlight == 0 {
		t.Fatal("no send was in flight at the kill; the test proves nothing")
	}
	r.start()
	deadline = time.Now().Add(2 * time.Minute)
	for len(counts(in.all())) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered after the restart", len(counts(in.all())), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	r.stop()
	got := in.all()
	dups, uncertain := len(got)-n, 0
	for _, m := range r.messages() {
		if m.State != kv.StateDelivered {
			t.Fatalf("message %q left %s", m.Body, m.State)
		}
		uncertain += m.UncertainResends
	}
	t.Logf("in flight at the kill %d, duplicates %d, counted uncertain resends %d", inFlight, dups, uncertain)
	if dups > inFlight || uncertain != inFlight {
		t.Fatalf("%d duplicates and %d counted uncertain resends, with %d sends in flight at the kill", dups, uncertain, inFlight)
	}
}

// TestAstAsteriskRestart: Asterisk restarts under a running sipsilo; sipsilo
// logs in to AMI again, reads the contact list, and messages keep arriving
// once each through the restarted Asterisk.
func TestAstAsteriskRestart(t *testing.T) {
	r := newAstRig(t)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, bob)
	in := collect(t, bob)
	send(t, alice, "1001", "before the restart")
	in.waitCount(t, 1, 20*time.Second)
	r.ast.Restart(t)
	r.waitReady(30 * time.Second) // /readyz: AMI connected again
	register(t, bob)
	send(t, alice, "1001", "after the restart")
	in.waitCount(t, 2, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	if c := counts(in.all()); len(in.all()) != 2 || c["after the restart"] != 1 {
		t.Fatalf("received %v", c)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(r.proc.log(), `msg="AMI logged in"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("sipsilo did not log in to the restarted Asterisk:\n%s", r.proc.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The operator sees it too.
	sc := scrape(t, r.rig)
	if sc.value("sipsilo_ami_up") != 1 || sc.value("sipsilo_ami_reconnects_total") < 1 {
		t.Fatalf("after the restart: sipsilo_ami_up %v, sipsilo_ami_reconnects_total %v",
			sc.value("sipsilo_ami_up"), sc.value("sipsilo_ami_reconnects_total"))
	}
}
