// Package backoff is sipsilo's one wait-before-retry rule, shared by everything
// that reconnects to something outside (FreeSWITCH's event socket, MySQL).
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay is the wait before retry n (0-based): lo·2ⁿ capped at hi, less up to
// half of it at random, so that many clients of a server that just came back do
// not all retry in step. It is never below half the capped value, nor above it.
func Delay(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n >= 0 && n < 62 && lo<<n < hi && lo<<n > 0 {
		d = lo << n
	}
	if d <= 0 {
		return 0
	}
	return d - rand.N(d/2+1)
}
