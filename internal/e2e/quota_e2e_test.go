package e2e

import (
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// TestQuotaAtTheDefaultRefusesTheThousandAndFirst: at the default --quota, one
// recipient's 1,001st queued message is not stored; the chatplan answer leaves it
// to FreeSWITCH (stock delivery, which for an offline phone is "Nobody to send
// to", exactly as without sipsilo) and the refusal is counted.
func TestQuotaAtTheDefaultRefusesTheThousandAndFirst(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, append(fsPath, "--log-level", "info")...)
	const n = 1000
	alice := r.ua("1000")
	register(t, alice)
	for i := range n {
		send(t, alice, "1001", bodyN(i))
	}
	// FreeSWITCH answers 202 before it routes, and routes on two threads: wait
	// for each chatplan answer, so that the 1,001st is the last to arrive.
	waitFor := func(what string, ok func(scraped) bool) scraped {
		deadline := time.Now().Add(60 * time.Second)
		for {
			m := scrape(t, r)
			if ok(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 60 s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("1,000 queued", func(m scraped) bool { return m.value("sipsilo_queue_messages") == n })
	send(t, alice, "1001", "one too many")
	// The store counts the refusal before the handler's answer is observed:
	// wait for both, then check neither went past one.
	m := waitFor("a quota refusal", func(m scraped) bool {
		return m.value("sipsilo_quota_refusals_total") >= 1 &&
			m.value("sipsilo_intake_seconds", "answer", "not_found", "why", "over_quota") >= 1
	})
	if got := m.value("sipsilo_quota_refusals_total"); got != 1 {
		t.Fatalf("quota refusals %v, want 1", got)
	}
	if got := m.value("sipsilo_intake_seconds", "answer", "not_found", "why", "over_quota"); got != 1 {
		t.Fatalf("over_quota intake answers %v, want 1", got)
	}
	if got := m.value("sipsilo_queue_messages"); got != n {
		t.Fatalf("queued %v, want %d", got, n)
	}
	r.stop()
	msgs := r.messages()
	if len(msgs) != n {
		t.Fatalf("stored %d messages, want %d", len(msgs), n)
	}
	if _, ok := msgs["one too many"]; ok {
		t.Fatal("the 1,001st message was stored")
	}
	for _, m := range msgs {
		if m.State != kv.StateQueued {
			t.Fatalf("%s: %s", m.ID, m.State)
		}
	}
}
