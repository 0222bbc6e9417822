package presence

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Scenario 07's un-REGISTER (seq 447) handed over before scenario 01's REGISTER (seq
// 399): the late REGISTER is older and must not revive 1001, even though presence held
// nothing for 1001 when the unregister came.
func TestUnregisterThenOlderRegisterStaysUnregistered(t *testing.T) {
	h := newHarness(t)
	unreg := find(t, events(t, "esl_07_unregister_json.txt"), "sofia::unregister", 447)
	reg := find(t, events(t, "esl_01_register_json.txt"), "sofia::register", 399)
	h.replay(unreg, reg)
	st := h.want(aor1001, false, Unknown, false)
	if st.LastSeq != 447 || h.woken.count(aor1001) != 0 {
		t.Fatalf("mark %d, woken %d", st.LastSeq, h.woken.count(aor1001))
	}
}

// The other way round: a REGISTER newer than an un-REGISTER that comes late wins.
func TestRegisterThenOlderUnregisterStaysRegistered(t *testing.T) {
	h := newHarness(t)
	unreg := find(t, events(t, "esl_07_unregister_json.txt"), "sofia::unregister", 447)
	presence := find(t, events(t, "esl_07_unregister_json.txt"), "PRESENCE_IN", 446)
	reg := find(t, events(t, "esl_11_unreachable_then_back_json.txt"), "sofia::register", 523)
	h.replay(reg, unreg, presence)
	if st := h.want(aor1001, true, Reachable, true); st.LastSeq != 523 {
		t.Fatalf("mark %d", st.LastSeq)
	}
}

// A new Core-UUID means FreeSWITCH restarted and numbers from scratch: its events are
// applied although their sequence numbers are lower, and they set the mark.
func TestNewCoreUUIDIsAccepted(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_11_unreachable_then_back_json.txt")
	h.replayUntil(evs, 534) // registered, unreachable, mark (core A, 534)
	const coreB = "11111111-2222-3333-4444-555555555555"
	reg := rewrite(find(t, evs, "sofia::register", 523), "Core-UUID", coreB, "Event-Sequence", "12",
		"call-id", "after-restart@pyua", "contact", `"" <sip:1001@127.0.0.1:25073>`)
	h.replay(reg)
	st := h.want(aor1001, true, Reachable, true)
	if st.LastCore != coreB || st.LastSeq != 12 {
		t.Fatalf("mark %s/%d", st.LastCore, st.LastSeq)
	}
	// Older numbers of the new core are now stale.
	h.replay(rewrite(find(t, evs, "sofia::expire", 540), "Core-UUID", coreB, "Event-Sequence", "11",
		"call-id", "after-restart@pyua"))
	h.want(aor1001, true, Reachable, true)
	h.replay(rewrite(find(t, evs, "sofia::expire", 540), "Core-UUID", coreB, "Event-Sequence", "13",
		"call-id", "after-restart@pyua"))
	if st := h.m.Get(aor1001); len(st.Registrations) != 1 || st.Registrations[0].CallID != "1mulyov9xzrq06j7@pyua" {
		t.Fatalf("expire removed the wrong registration: %+v", st.Registrations)
	}
}

// Property: whatever order a run of REGISTERs and un-REGISTERs of one AOR arrives in,
// and with repeats, the state is the one the highest Event-Sequence says.
func TestAnyArrivalOrderEndsInHighestSequence(t *testing.T) {
	h := newHarness(t)
	reg := find(t, events(t, "esl_01_register_json.txt"), "sofia::register", 399)
	unreg := find(t, events(t, "esl_07_unregister_json.txt"), "sofia::unregister", 447)
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 60 {
		user := fmt.Sprintf("p%d", iter)
		aor := user + "@127.0.0.1"
		n := 1 + rng.IntN(8)
		var seq []*eslEvent
		registeredLast := false
		for i := range n {
			base, isReg := unreg, rng.IntN(2) == 0
			if isReg {
				base = reg
			}
			seq = append(seq, rewrite(base, "from-user", user, "Event-Sequence", strconv.Itoa(1000+i)))
			registeredLast = isReg
		}
		arrival := append([]*eslEvent(nil), seq...)
		for range rng.IntN(3) { // eslgo may hand some over twice
			arrival = append(arrival, seq[rng.IntN(n)])
		}
		rng.Shuffle(len(arrival), func(i, j int) { arrival[i], arrival[j] = arrival[j], arrival[i] })
		h.clk.Set(eventAt(reg))
		for _, e := range arrival {
			if err := applyESL(h.m, context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
		st := h.m.Get(aor)
		if st.Registered != registeredLast || st.LastSeq != uint64(1000+n-1) {
			t.Fatalf("iteration %d: %d events, last is register=%v; got registered=%v mark %d",
				iter, n, registeredLast, st.Registered, st.LastSeq)
		}
		// A device once registered is remembered after it ended (docs/decisions.md §28);
		// one whose REGISTERs all arrived stale was never seen.
		ds := h.m.Devices(aor)
		_, stored := h.stored()[aor]
		if len(ds) > 1 || stored != (len(ds) == 1) || registeredLast && (len(ds) == 0 || !ds[0].Registered) ||
			!registeredLast && len(ds) == 1 && ds[0].Registered {
			t.Fatalf("iteration %d: stored=%v, devices %+v, registered=%v", iter, stored, ds, registeredLast)
		}
	}
}

// Apply from one goroutine, Observe and reads from many: run under -race.
func TestConcurrentUse(t *testing.T) {
	h := newHarness(t)
	evs := events(t, "esl_11_unreachable_then_back_json.txt")
	h.clk.Set(eventAt(evs[0]))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = h.m.Observe(context.Background(), aor1001, Outcome(i%4))
				h.m.Get(aor1001)
				h.m.Deliverable(aor1001)
				h.m.All()
			}
		}()
	}
	for range 3 {
		for _, e := range evs {
			if err := applyESL(h.m, context.Background(), e); err != nil {
				t.Error(err)
			}
		}
		h.clk.Add(time.Second)
	}
	close(stop)
	wg.Wait()
}
