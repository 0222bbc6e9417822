package presence

import (
	"context"
	"testing"
	"time"
)

const (
	aor1000 = "1000@127.0.0.1"
	aor1001 = "1001@127.0.0.1"
	aor1002 = "1002@127.0.0.1"
	aor1003 = "1003@127.0.0.1"
)

// Scenario 01: two REGISTERs, each after a pre_register.
func TestScenario01RegisterMakesBothReachable(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_01_register_json.txt")
	h.replay(evs...)
	for _, aor := range []string{aor1000, aor1001} {
		st := h.want(aor, true, Reachable, true)
		if st.Evidence != "sofia::register" || len(st.Registrations) != 1 {
			t.Fatalf("%s: %+v", aor, st)
		}
		if got := h.woken.count(aor); got != 1 {
			t.Fatalf("OnReachable(%s) called %d times, want 1", aor, got)
		}
	}
	reg := find(t, evs, "sofia::register", 399)
	st := h.m.Get(aor1001)
	r := st.Registrations[0]
	// expires 300 is a delta from the event's own time (Event-Date-Timestamp).
	if want := eventAt(reg).Add(300 * time.Second); !r.Expires.Equal(want) {
		t.Fatalf("Expires = %v, want %v", r.Expires, want)
	}
	if r.CallID != "1mulyov9xzrq06j7@pyua" || r.Contact != `"" <sip:1001@127.0.0.1:25071>` ||
		r.NetworkIP != "127.0.0.1" || r.NetworkPort != 25071 || r.Profile != "internal" ||
		r.UserAgent != "pyua-fixture/1.0" || r.Reach != Reachable {
		t.Fatalf("registration = %+v", r)
	}
	if st.LastCore != "0e2f3ccc-1fbd-4726-9b43-d899a68a0b89" || st.LastSeq != 399 || !st.EvidenceAt.Equal(eventAt(reg)) {
		t.Fatalf("mark = %s/%d at %v", st.LastCore, st.LastSeq, st.EvidenceAt)
	}
	if recs := h.stored(); len(recs) != 2 {
		t.Fatalf("store holds %d records, want 2", len(recs))
	}
	// Past the expiry without a new REGISTER the AOR is no longer registered.
	h.clk.Set(r.Expires.Add(time.Second))
	h.want(aor1001, false, Reachable, false)
}

// pre_register also fires for an authenticated MESSAGE, with the recipient in
// from-user (scenario 03: 1000 writes to the offline 1002): it must change nothing.
func TestPreRegisterIsIgnored(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_03_message_offline_json.txt")
	pre := find(t, evs, "sofia::pre_register", 403)
	if pre.Get("from-user") != "1002" {
		t.Fatalf("fixture changed: %v", pre.Headers)
	}
	h.replay(pre)
	if all := h.m.All(); len(all) != 0 {
		t.Fatalf("pre_register created %+v", all)
	}
	// The same for a real REGISTER's pre_register: only sofia::register counts.
	h.replay(find(t, events(t, "esl_01_register_json.txt"), "sofia::pre_register", 392))
	h.want(aor1000, false, Unknown, false)
}

// Scenario 03's sofia::error "no recipient" for an AOR presence never saw leaves no
// trace; for one presence thinks registered, it clears the registrations.
func TestNoRecipientClearsOnlyKnownAORs(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_03_message_offline_json.txt")
	noRcpt := find(t, evs, "sofia::error", 406)
	h.replay(noRcpt)
	if all := h.m.All(); len(all) != 0 {
		t.Fatalf("sofia::error for an unknown AOR created %+v", all)
	}
	// 1002 registered earlier (scenario 08's REGISTER, renumbered below 406) and
	// presence missed its removal: FreeSWITCH's "no recipient" corrects it.
	reg := rewrite(find(t, events(t, "esl_08_flush_inbound_reg_json.txt"), "sofia::register", 461),
		"Event-Sequence", "400", "Core-UUID", noRcpt.CoreUUID)
	h.replay(reg)
	h.want(aor1002, true, Reachable, true)
	h.replay(noRcpt)
	st := h.want(aor1002, false, Reachable, false)
	if st.Evidence != "sofia::error no recipient" {
		t.Fatalf("evidence %q", st.Evidence)
	}
	h.wantRemembered(aor1002)
}

// Scenario 07: un-REGISTER (PRESENCE_IN Unregistered, then sofia::unregister).
func TestScenario07UnregisterRemoves(t *testing.T) {
	h := newHarness(t)
	h.replay(events(t, "esl_01_register_json.txt")...)
	evs := events(t, "esl_07_unregister_json.txt")
	rest := h.replayUntil(evs, 446) // PRESENCE_IN Unregistered
	st := h.want(aor1001, false, Reachable, false)
	if st.Evidence != "PRESENCE_IN Unregistered" || len(st.Registrations) != 0 {
		t.Fatalf("after PRESENCE_IN: %+v", st)
	}
	h.replay(rest...)
	st = h.want(aor1001, false, Reachable, false)
	if st.LastSeq != 456 || st.Evidence != "sofia::error no recipient" {
		t.Fatalf("after the scenario: evidence %q seq %d", st.Evidence, st.LastSeq)
	}
	h.want(aor1000, true, Reachable, true)
	if recs := h.stored(); len(recs) != 2 {
		t.Fatalf("store holds %d records, want 1000's and 1001's remembered device", len(recs))
	}
	h.wantRemembered(aor1001)
}

// Scenario 08: flush_inbound_reg gives sofia::expire (absolute expires) + PRESENCE_IN.
func TestScenario08FlushExpires(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_08_flush_inbound_reg_json.txt")
	evs = h.replayUntil(evs, 461)
	h.want(aor1002, true, Reachable, true)
	evs = h.replayUntil(evs, 464) // sofia::expire
	if st := h.want(aor1002, false, Reachable, false); st.Evidence != "sofia::expire" {
		t.Fatalf("evidence %q", st.Evidence)
	}
	evs = h.replayUntil(evs, 470) // registers again, same Call-ID
	h.want(aor1002, true, Reachable, true)
	h.replay(evs...) // flush by Call-ID with reboot
	h.want(aor1002, false, Reachable, false)
	if got := h.woken.count(aor1002); got != 2 {
		t.Fatalf("OnReachable called %d times, want 2 (one per REGISTER)", got)
	}
	if recs := h.stored(); len(recs) != 1 {
		t.Fatalf("store holds %d records, want 1002's remembered device", len(recs))
	}
	h.wantRemembered(aor1002)
}

// Scenario 09: a silent phone; UNREACHABLE with 408 (Timer F), then expiry.
func TestScenario09SilentIsUnreachable(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_09_unreachable_silent_json.txt")
	evs = h.replayUntil(evs, 487) // REGISTER, then the MESSAGE auth's pre_register for 1003
	if st := h.want(aor1003, true, Reachable, true); st.LastSeq != 480 {
		t.Fatalf("pre_register was applied: seq %d", st.LastSeq)
	}
	evs = h.replayUntil(evs, 495)
	st := h.want(aor1003, true, Unreachable, false)
	if st.Evidence != "sofia::sip_user_state UNREACHABLE 408" || st.Registrations[0].PingStatus != "UNREACHABLE" {
		t.Fatalf("%+v", st)
	}
	h.replay(evs...)
	h.want(aor1003, false, Unreachable, false)
	if got := h.woken.count(aor1003); got != 1 {
		t.Fatalf("OnReachable called %d times, want 1", got)
	}
}

// Scenario 10: the phone's port closed; UNREACHABLE with 503 (ICMP).
func TestScenario10PortClosedIsUnreachable(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_10_unreachable_port_closed_json.txt")
	evs = h.replayUntil(evs, 515)
	if st := h.want(aor1002, true, Unreachable, false); st.Evidence != "sofia::sip_user_state UNREACHABLE 503" {
		t.Fatalf("evidence %q", st.Evidence)
	}
	h.replay(evs...)
	h.want(aor1002, false, Unreachable, false)
}

// Scenario 11: UNREACHABLE, then REACHABLE twice (FreeSWITCH repeats it), then the
// expiry that recovery does not cancel.
func TestScenario11UnreachableThenBack(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_11_unreachable_then_back_json.txt")
	evs = h.replayUntil(evs, 534)
	h.want(aor1001, true, Unreachable, false)
	before := h.woken.count(aor1001)
	evs = h.replayUntil(evs, 535)
	h.want(aor1001, true, Reachable, true)
	evs = h.replayUntil(evs, 536) // the repeated REACHABLE: no new transition
	h.want(aor1001, true, Reachable, true)
	if got := h.woken.count(aor1001) - before; got != 1 {
		t.Fatalf("OnReachable called %d times for the two REACHABLEs, want 1", got)
	}
	// The same frame delivered twice (eslgo goroutines) is stale the second time.
	h.replay(find(t, events(t, "esl_11_unreachable_then_back_json.txt"), "sofia::sip_user_state", 535))
	if st := h.m.Get(aor1001); st.LastSeq != 536 {
		t.Fatalf("duplicate applied: seq %d", st.LastSeq)
	}
	h.replay(evs...)
	h.want(aor1001, false, Reachable, false)
}

// docs/decisions.md §6: UNREACHABLE with a final answer other than 408/503 means the phone
// answered (FreeSWITCH only counts 200 and 486): alive.
func TestUnreachableWithFinalAnswerIsAlive(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   Reach
	}{{"405", Reachable}, {"404", Reachable}, {"501", Reachable}, {"408", Unreachable}, {"503", Unreachable}, {"0", Unreachable}, {"", Unreachable}} {
		h := newHarness(t)
		evs := events(t, "esl_11_unreachable_then_back_json.txt")
		h.replayUntil(evs, 523)
		un := rewrite(find(t, evs, "sofia::sip_user_state", 534), "Status", tc.status)
		h.replay(un)
		h.want(aor1001, true, tc.want, tc.want != Unreachable)
	}
}

// A restart builds the map from the bbolt file.
func TestRestartRestoresState(t *testing.T) {
	h := newHarness(t)
	h.replay(events(t, "esl_01_register_json.txt")...)
	evs := events(t, "esl_11_unreachable_then_back_json.txt")
	h.replayUntil(evs, 534) // 1001 re-registers, then is unreachable
	before := h.m.All()
	h.restart()
	after := h.m.All()
	if len(after) != len(before) {
		t.Fatalf("restored %d AORs, want %d", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.AOR != b.AOR || a.Reach != b.Reach || a.Registered != b.Registered || a.Evidence != b.Evidence ||
			!a.EvidenceAt.Equal(b.EvidenceAt) || a.LastCore != b.LastCore || a.LastSeq != b.LastSeq ||
			len(a.Registrations) != len(b.Registrations) {
			t.Fatalf("restored %+v\nwant %+v", a, b)
		}
		for j := range b.Registrations {
			rb, ra := b.Registrations[j], a.Registrations[j]
			if ra.CallID != rb.CallID || ra.Reach != rb.Reach || !ra.Expires.Equal(rb.Expires) || ra.Contact != rb.Contact {
				t.Fatalf("restored registration %+v\nwant %+v", ra, rb)
			}
		}
	}
	h.want(aor1001, true, Unreachable, false)
	// The restored mark still rejects what was already applied, and the story goes on.
	h.replay(find(t, evs, "sofia::sip_user_state", 534))
	h.replayUntil(evs, 535)
	h.want(aor1001, true, Reachable, true)
}

// A record the map cannot read does not stop New; the next change replaces it.
func TestUnreadableRecordIsSkipped(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.store.PutReach(ctx, aor1000, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := h.store.PutReach(ctx, aor1002, []byte(`{"v":99,"aor":"1002@127.0.0.1"}`)); err != nil {
		t.Fatal(err)
	}
	h.restart()
	if all := h.m.All(); len(all) != 0 {
		t.Fatalf("unreadable records loaded: %+v", all)
	}
	h.replay(events(t, "esl_01_register_json.txt")...)
	if _, err := decodeState(aor1000, h.stored()[aor1000]); err != nil {
		t.Fatalf("record not replaced: %v", err)
	}
}

// A failed write keeps the change in memory, reports the error and still wakes relay.
func TestPersistFailureKeepsMemoryState(t *testing.T) {
	h := newHarness(t)
	fs := &failingStore{Store: h.store}
	m, err := New(Config{Store: fs, Now: h.clk.Now, OnReachable: h.woken.record})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	fs.set(true)
	reg := find(t, events(t, "esl_01_register_json.txt"), "sofia::register", 395)
	h.clk.Set(eventAt(reg))
	if err := applyESL(m, context.Background(), reg); err == nil {
		t.Fatal("Apply succeeded with a failing store")
	}
	h.want(aor1000, true, Reachable, true)
	if h.woken.count(aor1000) != 1 {
		t.Fatal("OnReachable not called")
	}
	if len(h.stored()) != 0 {
		t.Fatal("record written by a failing store")
	}
	fs.set(false)
	if err := m.Observe(context.Background(), aor1000, Delivered2xx); err != nil {
		t.Fatal(err)
	}
	if len(h.stored()) != 1 {
		t.Fatal("next change did not write the record")
	}
}

// Events that cannot be ordered or placed are reported, not applied.
func TestUnreadableEventsAreErrors(t *testing.T) {
	h := newHarness(t)
	reg := find(t, events(t, "esl_01_register_json.txt"), "sofia::register", 395)
	for name, e := range map[string]*eslEvent{
		"no core":      rewrite(reg, "Core-UUID", ""),
		"no sequence":  rewrite(reg, "Event-Sequence", "0"),
		"no call-id":   rewrite(reg, "call-id", ""),
		"bad expires":  rewrite(reg, "expires", "soon"),
		"negative exp": rewrite(reg, "expires", "-5"),
		"no from-user": rewrite(reg, "from-user", ""),
		"huge AOR":     rewrite(reg, "from-user", string(make([]byte, 2000))),
	} {
		if err := applyESL(h.m, context.Background(), e); err == nil {
			t.Errorf("%s: Apply succeeded", name)
		}
	}
	if all := h.m.All(); len(all) != 0 {
		t.Fatalf("bad events applied: %+v", all)
	}
	if err := applyESL(h.m, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}
