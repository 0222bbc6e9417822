package relay

import (
	"sync"
	"time"
)

// holds are the waits that outlive a worker (a worker retires while its recipient
// is unreachable, and the next one must still respect them).
type holds struct {
	mu sync.Mutex
	// msg delays single messages whose last send timed out or was lost until
	// Timer F has passed, because FreeSWITCH may still deliver that send.
	msg map[string]time.Time
	// aor delays a whole queue: the backoff after a refusal.
	aor map[string]time.Time
}

func newHolds() *holds {
	return &holds{msg: make(map[string]time.Time), aor: make(map[string]time.Time)}
}

// until returns the hold on key in m, dropping it once it has passed.
func (h *holds) until(m map[string]time.Time, key string, now time.Time) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := m[key]
	if ok && !now.Before(t) {
		delete(m, key)
		return time.Time{}, false
	}
	return t, ok
}

func (h *holds) set(m map[string]time.Time, key string, t time.Time) {
	h.mu.Lock()
	m[key] = t
	h.mu.Unlock()
}

func (h *holds) messageHold(id string, now time.Time) (time.Time, bool) {
	return h.until(h.msg, id, now)
}
func (h *holds) queueHold(aor string, now time.Time) (time.Time, bool) {
	return h.until(h.aor, aor, now)
}
func (h *holds) holdMessage(id string, t time.Time) { h.set(h.msg, id, t) }
func (h *holds) holdQueue(aor string, t time.Time)  { h.set(h.aor, aor, t) }

// dropMessageHolds forgets every Timer F hold: after a FreeSWITCH restart no
// earlier send is pending any more.
func (h *holds) dropMessageHolds() {
	h.mu.Lock()
	h.msg = make(map[string]time.Time)
	h.mu.Unlock()
}
