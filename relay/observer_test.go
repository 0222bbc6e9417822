package relay

import (
	"sync"
	"testing"
	"time"
)

// recordingObserver keeps every observed delivery.
type recordingObserver struct {
	mu    sync.Mutex
	paths []string
	lat   []time.Duration
}

func (o *recordingObserver) Delivered(path string, since time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.paths, o.lat = append(o.paths, path), append(o.lat, since)
}

func (o *recordingObserver) got() ([]string, []time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.paths...), append([]time.Duration(nil), o.lat...)
}

// Each confirmed delivery is observed once, with its path and the time since
// intake (enqueue backdates intake by a second); refusals are not.
func TestObserverSeesEachConfirmedDeliveryWithPath(t *testing.T) {
	for _, tc := range []struct {
		name   string
		direct bool
		path   string
	}{
		{"esl", false, PathESL},
		{"direct", true, PathDirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			enqueue(t, s, 5)
			obs := &recordingObserver{}
			fs := &fakeFS{registered: true, chat: func(n int, _, _ string) (string, error) {
				if n == 0 {
					return "Error! Message Not Sent", nil // a live phone refuses once
				}
				return "Sent", nil
			}}
			cfg := Config{Window: 1, RetryMin: time.Millisecond, Observer: obs}
			if tc.direct {
				cfg.Direct = &fakeDirect{ok: true, status: func(n int) (int, error) {
					if n == 0 {
						return 486, nil
					}
					return 200, nil
				}}
			}
			startRelay(t, cfg, s, fs, &fakePresence{ok: true})
			// The observer is called right after the commit that empties the queue,
			// so wait for both.
			waitUntil(t, "queue drained and observed", 10*time.Second, func() bool {
				p, _ := obs.got()
				return queued(t, s) == 0 && len(p) >= 5
			})
			paths, lat := obs.got()
			if len(paths) != 5 {
				t.Fatalf("observed %d deliveries, want 5 (the refusal is not one)", len(paths))
			}
			for i, p := range paths {
				if p != tc.path {
					t.Errorf("delivery %d observed on path %q, want %q", i, p, tc.path)
				}
				if lat[i] < time.Second {
					t.Errorf("delivery %d: %v since intake, want at least the second enqueue backdated", i, lat[i])
				}
			}
		})
	}
}
