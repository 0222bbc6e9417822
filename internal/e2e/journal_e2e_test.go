package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// TestJournalOnlineRecipientGetsEachMessage: with --journal, relay reads a new
// message only once bbolt has it, so it must be woken then
// (docs/decisions.md §34): every message to an online phone arrives, each once,
// without waiting for a retry.
func TestJournalOnlineRecipientGetsEachMessage(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, append(fsPath, "--journal")...)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)
	register(t, bob)
	in := collect(t, bob)
	const n = 21
	for i := range n {
		send(t, alice, "1001", bodyN(i))
		// Well below relay's retry backoff: a missed wake would show here.
		in.waitCount(t, i+1, 5*time.Second)
	}
	time.Sleep(300 * time.Millisecond)
	if got, c := in.all(), counts(in.all()); len(c) != n || len(got) != n {
		t.Fatalf("deliveries %v, want each of %d once", c, n)
	}
}

// TestJournalThousandQueuedDrainOnceInOrder: a backlog taken in through the
// journal drains once each, in order.
func TestJournalThousandQueuedDrainOnceInOrder(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{ChatResultFloor: time.Millisecond},
		append(fsPath, "--window", "1", "--log-level", "info", "--journal")...)
	n := sized(1000, 300)
	bob, in := queueOffline(t, r, n)
	waitScrape(t, r, "every message queued", 60*time.Second, func(s scraped) bool {
		return s.value("sipsilo_queue_messages") == float64(n)
	})
	register(t, bob)
	in.waitCount(t, n, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := in.all()
	if c := counts(got); len(got) != n || len(c) != n {
		t.Fatalf("received %d messages, %d distinct, want %d each once", len(got), len(c), n)
	}
	if inv := inversions(got); inv != 0 {
		t.Fatalf("window 1: %d inversions in %d messages", inv, n)
	}
}

// TestJournalInjectedMessageIsDeliveredOnceApplied: a message injected through
// the admin API has no later event that would wake relay (its body is final),
// so only the wake after the apply delivers it.
func TestJournalInjectedMessageIsDeliveredOnceApplied(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, append(fsPath, "--journal", "--admin-token", e2eToken)...)
	bob := r.ua("1001")
	register(t, bob)
	in := collect(t, bob)
	for i := range 5 {
		body := `{"from":"1000@127.0.0.1","to":"1001@127.0.0.1","content_type":"text/plain","body":"` + bodyN(i) + `"}`
		req, err := http.NewRequest(http.MethodPost, "http://"+r.http+"/api/v1/messages", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			t.Fatalf("inject %d: status %d", i, res.StatusCode)
		}
		in.waitCount(t, i+1, 5*time.Second)
	}
}

// TestKill9WithJournalMidDirectDrain: delivery steps go through the journal
// (docs/decisions.md §34), so a kill -9 in the middle of a direct drain keeps
// every message delivered before it delivered: after the restart the phone gets
// again only what was in flight at the kill (each counted as an uncertain
// resend), and every message ends delivered.
func TestKill9WithJournalMidDirectDrain(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, "--log-level", "info", "--direct-window", "16")
	n := sized(600, 200)
	bob, in := queueOffline(t, r, n)
	waitScrape(t, r, "every message queued", 60*time.Second, func(s scraped) bool {
		return s.value("sipsilo_queue_messages") == float64(n)
	})
	register(t, bob)
	in.waitCount(t, n/3, time.Minute)
	_ = r.proc.cmd.Process.Signal(syscall.SIGKILL)
	r.proc.wait(t, 5*time.Second)
	inFlight, delivered := 0, 0
	for _, m := range r.messages() { // read-only: with the journal's unapplied records
		switch {
		case m.State == kv.StateDelivered:
			delivered++
		case m.State == kv.StateQueued && m.InFlight != "":
			inFlight++
		}
	}
	if delivered == 0 {
		t.Fatal("nothing recorded delivered at the kill; the test proves nothing")
	}
	r.start()
	deadline := time.Now().Add(2 * time.Minute)
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
	t.Logf("delivered at the kill %d, in flight %d, duplicates %d, counted uncertain resends %d", delivered, inFlight, dups, uncertain)
	if dups > inFlight || uncertain != inFlight {
		t.Fatalf("%d duplicates and %d counted uncertain resends, with %d sends in flight at the kill", dups, uncertain, inFlight)
	}
}
