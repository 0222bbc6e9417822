package backoff

import (
	"testing"
	"time"
)

func TestDelayDoublesWithinJitterAndIsCapped(t *testing.T) {
	lo, hi := 100*time.Millisecond, 10*time.Second
	for n, want := range []time.Duration{lo, 2 * lo, 4 * lo, 8 * lo} {
		for range 200 {
			if d := Delay(lo, hi, n); d < want/2 || d > want {
				t.Fatalf("Delay(n=%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
	// Large n never overflows into a short or negative wait.
	for _, n := range []int{7, 8, 30, 62, 63, 1000} {
		if d := Delay(lo, hi, n); d < hi/2 || d > hi {
			t.Fatalf("Delay(n=%d) = %v, want in [%v, %v]", n, d, hi/2, hi)
		}
	}
	if d := Delay(0, 0, 3); d != 0 {
		t.Fatalf("Delay(0, 0) = %v", d)
	}
	// The waits differ: that is the point of the jitter.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[Delay(lo, hi, 3)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct waits in 50", len(seen))
	}
}
