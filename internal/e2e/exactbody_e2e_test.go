package e2e

// The exact body from the chatplan request alone: the shipped binding's URL
// carries the body URL-encoded and as an MD5 (freeswitch-conf), so a message is
// exact and deliverable at intake, and the post-chatplan ESL MESSAGE event is
// only a cross-check.

import (
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// exactBodies are bodies the old body=${url_encode(${_body})} copy got wrong
// (literal %XX, outer blanks) besides the usual hostile ones.
var exactBodies = append([]string{
	"%41",
	"%20lead and trail%0A",
	"  two %25 spaces  ",
	"\r\nCRLF edges\r\n",
	"\tTab\vVT\v",
	"   ",
}, hostileBodies...)

// TestExactBodyWithoutESLEvent: every post-chatplan MESSAGE event is lost, yet
// each hostile body reaches the phone byte for byte, and is recorded as checked
// at intake with no ESL copy.
func TestExactBodyWithoutESLEvent(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, append(fsPath, "--body-grace", "200ms")...)
	r.sw.ESL().SetEventLoss(func(ev *fsemu.Event) bool {
		return ev.Get("Event-Name") == "MESSAGE" && ev.Get("sipsilo_id") != ""
	})
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)
	in := collect(t, bob)
	for _, b := range exactBodies {
		send(t, alice, "1001", b)
	}
	register(t, bob)
	in.waitCount(t, len(exactBodies), 10*time.Second)
	time.Sleep(500 * time.Millisecond) // past the grace; a duplicate would come now
	got := in.all()
	if len(got) != len(exactBodies) {
		t.Fatalf("received %d messages, want %d", len(got), len(exactBodies))
	}
	for i, m := range got {
		if string(m.Body) != exactBodies[i] {
			t.Errorf("message %d: body %q, want %q", i, m.Body, exactBodies[i])
		}
	}
	r.stop()
	msgs := r.messages()
	for _, b := range exactBodies {
		m := msgs[b]
		if m == nil {
			t.Fatalf("no stored message with body %q", b)
		}
		if m.State != kv.StateDelivered || m.BodySource != kv.BodyQueryExact || m.Attempts != 1 {
			t.Errorf("%q: state %s, body source %q, attempts %d", b, m.State, m.BodySource, m.Attempts)
		}
	}
}

// TestExactBodyCheckedByESLEvent: with the events flowing, the ESL copy of a
// body exact at intake agrees with it (counted as checked, never as differed).
func TestExactBodyCheckedByESLEvent(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, fsPath...)
	alice := r.ua("1000")
	register(t, alice)
	for _, b := range exactBodies {
		send(t, alice, "1001", b)
	}
	waitScrape(t, r, "every body checked against its ESL copy", 10*time.Second, func(sc scraped) bool {
		if d := sc.bodies("differed"); d != 0 {
			t.Fatalf("%v ESL bodies differed from the body checked at intake", d)
		}
		return int(sc.bodies("checked")) == len(exactBodies)
	})
	r.stop()
	msgs := r.messages()
	for _, b := range exactBodies {
		if m := msgs[b]; m == nil || m.BodySource != kv.BodyESL || !m.BodyFinal {
			t.Errorf("%q: stored %+v", b, m)
		}
	}
}
