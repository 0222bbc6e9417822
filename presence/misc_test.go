package presence

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// Events that say nothing about reachability are ignored without error.
func TestIrrelevantEventsAreIgnored(t *testing.T) {
	h := newHarness(t)
	var irrelevant []*eslEvent
	irrelevant = append(irrelevant, events(t, "esl_02_message_online_json.txt")...) // MESSAGE, pre_register
	irrelevant = append(irrelevant, events(t, "esl_14_json_heartbeat_bgapi.txt")...)
	noRcpt := find(t, events(t, "esl_03_message_offline_json.txt"), "sofia::error", 406)
	presence := find(t, events(t, "esl_07_unregister_json.txt"), "PRESENCE_IN", 446)
	state := find(t, events(t, "esl_11_unreachable_then_back_json.txt"), "sofia::sip_user_state", 535)
	irrelevant = append(irrelevant,
		rewrite(noRcpt, "Error-Reason", "something else"),
		rewrite(presence, "status", "Available"),
		rewrite(presence, "proto", "verto"),
		rewrite(state, "Ping-Status", "INVALID"))
	h.replay(irrelevant...)
	if all := h.m.All(); len(all) != 0 {
		t.Fatalf("irrelevant events changed the map: %+v", all)
	}
}

// Less usual spellings of relevant events.
func TestEventVariants(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_11_unreachable_then_back_json.txt")
	h.replayUntil(evs, 523)
	// sip_user_state without from-user/from-host: sip_user names the AOR.
	h.replay(rewrite(find(t, evs, "sofia::sip_user_state", 534), "from-user", "", "from-host", ""))
	h.want(aor1001, true, Unreachable, false)
	// A verdict on a Call-ID presence does not hold only moves the mark.
	h.replay(rewrite(find(t, evs, "sofia::sip_user_state", 535), "call-id", "other@pyua"))
	if st := h.want(aor1001, true, Unreachable, false); st.LastSeq != 535 {
		t.Fatalf("mark %d", st.LastSeq)
	}
	// An expire without a Call-ID cannot say which registration went: all of them.
	h.replay(rewrite(find(t, evs, "sofia::expire", 540), "call-id", ""))
	h.want(aor1001, false, Unreachable, false)
	// An event without Event-Date-Timestamp is dated by the local clock.
	reg := rewrite(find(t, evs, "sofia::register", 523), "Event-Sequence", "600", "Event-Date-Timestamp", "")
	h.clk.Set(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	h.replay(reg)
	if st := h.want(aor1001, true, Reachable, true); !st.Registrations[0].Expires.Equal(h.clk.Now().Add(300 * time.Second)) {
		t.Fatalf("expires %v", st.Registrations[0].Expires)
	}
}

func TestNewDefaultsAndErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
	h := newHarness(t)
	if got := h.m.Profiles(); !reflect.DeepEqual(got, []string{"internal"}) {
		t.Fatalf("Profiles() = %q", got)
	}
	m, err := New(Config{Store: h.store, Profiles: []string{"internal", "external"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Profiles(); !reflect.DeepEqual(got, []string{"internal", "external"}) {
		t.Fatalf("Profiles() = %q", got)
	}
	if err := m.Observe(context.Background(), aor1000, Delivered2xx); err != nil { // no OnReachable set
		t.Fatal(err)
	}
}

func TestStatusExpiry(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 47, 24, 0, time.UTC)
	for status, want := range map[string]time.Time{
		"Registered(UDP)(unknown) exp(2026-11-26 03:52:55) expsecs(331)": now.Add(331 * time.Second),
		"Registered(UDP) EXP(2026-11-26 03:52:55) EXPSECS(-17)":          now.Add(-17 * time.Second),
		// The phone's rpid cannot push the expiry: the last one counts.
		"Registered(UDP)(expsecs(99999)) exp(2026-11-26 03:52:55) expsecs(5)": now.Add(5 * time.Second),
		"Registered(UDP)(unknown) exp(2026-11-26 03:52:55)":                   time.Date(2026, 11, 26, 3, 52, 55, 0, time.Local),
	} {
		got, err := statusExpiry(status, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v, %v; want %v", status, got, err, want)
		}
	}
	for _, status := range []string{"", "Registered(UDP)", "exp(2026-13-45 99:00:00)", "expsecs(1e9)"} {
		if _, err := statusExpiry(status, now); err == nil {
			t.Errorf("%q accepted", status)
		}
	}
}
