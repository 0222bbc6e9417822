package kv

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// idSource hands out ULIDs: time-ordered, so ids sort by intake, and with 80 random bits
// per millisecond (monotonic within one), so they stay unique across restarts.
type idSource struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

func newIDSource() *idSource {
	return &idSource{entropy: ulid.Monotonic(rand.Reader, 0)}
}

func (s *idSource) next(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := ulid.New(ulid.Timestamp(now), s.entropy)
	if err != nil {
		// Only when the monotonic counter overflows within one millisecond (2^80
		// ids): start a fresh random sequence rather than fail the intake.
		s.entropy = ulid.Monotonic(rand.Reader, 0)
		id = ulid.MustNew(ulid.Timestamp(now), s.entropy)
	}
	return id.String()
}
