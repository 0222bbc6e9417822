package presence

import (
	"context"
	"testing"
	"time"
)

func TestObserveOutcomes(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.replay(events(t, "esl_01_register_json.txt")...)
	woken := h.woken.count(aor1001)

	// A fast refusal proves nothing either way: Reach stays, the evidence is noted.
	if err := h.m.Observe(ctx, aor1001, Refused); err != nil {
		t.Fatal(err)
	}
	if st := h.want(aor1001, true, Reachable, true); st.Evidence != "delivery refused" {
		t.Fatalf("evidence %q", st.Evidence)
	}
	// No answer after ≈20 s: dead until a REGISTER, a REACHABLE or a 2xx says otherwise.
	if err := h.m.Observe(ctx, aor1001, NoAnswer); err != nil {
		t.Fatal(err)
	}
	h.want(aor1001, true, Unreachable, false)
	if err := h.m.Observe(ctx, aor1001, Refused); err != nil {
		t.Fatal(err)
	}
	h.want(aor1001, true, Unreachable, false)
	// A 2xx (a late answer to a retransmission, say) brings it back and wakes relay.
	if err := h.m.Observe(ctx, aor1001, Delivered2xx); err != nil {
		t.Fatal(err)
	}
	if st := h.want(aor1001, true, Reachable, true); st.Evidence != "delivery 2xx" || !st.EvidenceAt.Equal(h.clk.Now()) {
		t.Fatalf("%+v", st)
	}
	if got := h.woken.count(aor1001) - woken; got != 1 {
		t.Fatalf("OnReachable called %d times, want 1", got)
	}
	// FreeSWITCH had no registration: presence drops its own.
	if err := h.m.Observe(ctx, aor1001, NotRegistered); err != nil {
		t.Fatal(err)
	}
	if st := h.want(aor1001, false, Reachable, false); len(st.Registrations) != 0 {
		t.Fatalf("%+v", st)
	}
	h.wantRemembered(aor1001)
	// A REGISTER after NoAnswer revives it.
	h.replay(find(t, events(t, "esl_01_register_json.txt"), "sofia::register", 395))
	if err := h.m.Observe(ctx, aor1000, NoAnswer); err != nil {
		t.Fatal(err)
	}
	h.want(aor1000, true, Unreachable, false)
	h.replay(find(t, events(t, "esl_11_unreachable_then_back_json.txt"), "sofia::register", 523))
	h.want(aor1001, true, Reachable, true)

	// Outcomes for an AOR presence does not hold change nothing.
	for o := Delivered2xx; o <= NotRegistered; o++ {
		if err := h.m.Observe(ctx, "nobody@127.0.0.1", o); err != nil {
			t.Fatal(err)
		}
	}
	if st := h.m.Get("nobody@127.0.0.1"); st.Reach != Unknown || st.Registered {
		t.Fatalf("%+v", st)
	}
	if err := h.m.Observe(ctx, aor1000, Outcome(42)); err == nil {
		t.Fatal("unknown outcome accepted")
	}
}

// A phone that re-registered while a send to it was failing is not judged by that send.
func TestObserveSentSparesNewerRegistrations(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.replay(find(t, events(t, "esl_01_register_json.txt"), "sofia::register", 399))
	sentAt := h.clk.Now()
	h.clk.Add(5 * time.Second)
	h.replay(rewrite(find(t, events(t, "esl_11_unreachable_then_back_json.txt"), "sofia::register", 523),
		"call-id", "second@pyua", "Event-Date-Timestamp", "",
		"contact", `"" <sip:1001@127.0.0.1:25072>`, "network-port", "25072"))
	h.clk.Add(15 * time.Second)
	if err := h.m.ObserveSent(ctx, aor1001, NoAnswer, sentAt); err != nil {
		t.Fatal(err)
	}
	st := h.want(aor1001, true, Reachable, true)
	if st.Registrations[0].Reach != Unreachable || st.Registrations[1].Reach != Reachable {
		t.Fatalf("%+v", st.Registrations)
	}
	if err := h.m.ObserveSent(ctx, aor1001, NotRegistered, sentAt); err != nil {
		t.Fatal(err)
	}
	st = h.want(aor1001, true, Reachable, true)
	if len(st.Registrations) != 1 || st.Registrations[0].CallID != "second@pyua" {
		t.Fatalf("%+v", st.Registrations)
	}
	// Judging everything (Observe) catches the newer one too.
	if err := h.m.Observe(ctx, aor1001, NoAnswer); err != nil {
		t.Fatal(err)
	}
	h.want(aor1001, true, Unreachable, false)
}
