package presence

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// detections records OnDetected calls.
type detections struct {
	mu  sync.Mutex
	got []detection
}

func (d *detections) record(source string, since time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, detection{source, since})
}

func (d *detections) all() []detection {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]detection(nil), d.got...)
}

// The pinger's verdict is reported once per transition to unreachable, with the
// time since the last answered ping; a delivery nobody answered is reported the
// same way, from the last proof of life before it.
func TestDetectionReportedOnceWithTimeSinceLastProofOfLife(t *testing.T) {
	h := registered(t)
	rec := &detections{}
	h.m.onDetected = rec.record
	tg := h.m.TargetsFor(aor1001, PingAll)[0]
	ctx := context.Background()
	alive := h.clk.Now().Add(time.Second)
	if err := h.m.PingObserved(ctx, PingResult{Target: tg, Alive: true, Status: 200, At: alive}); err != nil {
		t.Fatal(err)
	}
	for _, miss := range []PingResult{
		{Target: tg, Err: errors.New("timeout"), Misses: 1, At: alive.Add(5 * time.Second)},         // suspect only
		{Target: tg, Err: errors.New("timeout"), Misses: 2, At: alive.Add(6500 * time.Millisecond)}, // unreachable
		{Target: tg, Err: errors.New("timeout"), Misses: 3, At: alive.Add(12 * time.Second)},        // already unreachable
	} {
		if err := h.m.PingObserved(ctx, miss); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := rec.all(), []detection{{DetectPinger, 6500 * time.Millisecond}}; !slices.Equal(got, want) {
		t.Fatalf("detections %+v, want %+v", got, want)
	}

	// Back, then a send nobody answered 25 s after that proof of life (by
	// presence's clock, as relay's outcomes are).
	back := alive.Add(20 * time.Second)
	if err := h.m.PingObserved(ctx, PingResult{Target: tg, Alive: true, Status: 200, At: back}); err != nil {
		t.Fatal(err)
	}
	h.clk.Set(back.Add(25 * time.Second))
	for range 2 { // the second finds it unreachable already
		if err := h.m.Observe(ctx, aor1001, NoAnswer); err != nil {
			t.Fatal(err)
		}
	}
	want := []detection{{DetectPinger, 6500 * time.Millisecond}, {DetectDelivery, 25 * time.Second}}
	if got := rec.all(); !slices.Equal(got, want) {
		t.Fatalf("detections %+v, want %+v", got, want)
	}
}

// FreeSWITCH's own UNREACHABLE (scenario 09: a silent phone, Timer F) is
// reported with the time since the REGISTER, its only proof of life.
func TestDetectionByFreeSWITCHPinging(t *testing.T) {
	h := newHarness(t)
	rec := &detections{}
	h.m.onDetected = rec.record
	evs := events(t, "esl_09_unreachable_silent_json.txt")
	evs = h.replayUntil(evs, 487)
	registeredAt := h.m.LastAlive(aor1003)
	if registeredAt.IsZero() {
		t.Fatal("no proof of life after the REGISTER")
	}
	h.replayUntil(evs, 495)
	h.want(aor1003, true, Unreachable, false)
	got := rec.all()
	if len(got) != 1 || got[0].source != DetectFreeSWITCH {
		t.Fatalf("detections %+v, want one by freeswitch", got)
	}
	if want := h.clk.Now().Sub(registeredAt); got[0].since <= 0 || got[0].since > want {
		t.Fatalf("detected %v after the REGISTER, want within (0, %v]", got[0].since, want)
	}
}

// A PBX verdict counts for the PBX the event names: Asterisk's qualify is
// reported as "asterisk", an event that names none as "freeswitch".
func TestDetectionNamesThePBX(t *testing.T) {
	for _, tc := range []struct{ detector, want string }{{DetectAsterisk, DetectAsterisk}, {"", DetectFreeSWITCH}} {
		h := newHarness(t)
		rec := &detections{}
		h.m.onDetected = rec.record
		d := &devEvents{h: h}
		d.register("c1", "sip:alice@192.0.2.1:5060", "phone/1")
		h.clk.Set(h.clk.Now().Add(8 * time.Second))
		d.apply(Event{Kind: ReachChanged, CallID: "c1", Reach: Unreachable, Status: "Unreachable", Detector: tc.detector})
		got := rec.all()
		if len(got) != 1 || got[0].source != tc.want {
			t.Fatalf("detector %q: detections %+v, want one by %s", tc.detector, got, tc.want)
		}
	}
}
