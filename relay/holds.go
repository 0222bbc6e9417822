package relay

import (
	"strings"
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
	// msgAOR is the recipient of each message in msg, so that an operator's
	// retry of a queue finds its messages' holds (relay/retry.go).
	msgAOR map[string]string
	// aor delays a whole queue: the backoff after a refusal.
	aor map[string]time.Time
}

func newHolds() *holds {
	return &holds{msg: make(map[string]time.Time), msgAOR: make(map[string]string), aor: make(map[string]time.Time)}
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
	t, ok := h.until(h.msg, id, now)
	if !ok {
		h.mu.Lock()
		if _, still := h.msg[id]; !still {
			delete(h.msgAOR, id)
		}
		h.mu.Unlock()
	}
	return t, ok
}
func (h *holds) queueHold(aor string, now time.Time) (time.Time, bool) {
	return h.until(h.aor, aor, now)
}
func (h *holds) holdMessage(id, aor string, t time.Time) {
	h.mu.Lock()
	h.msg[id], h.msgAOR[id] = t, aor
	h.mu.Unlock()
}
func (h *holds) holdQueue(aor string, t time.Time) { h.set(h.aor, aor, t) }

// dropMessageHolds forgets every Timer F hold: after a FreeSWITCH restart no
// earlier send is pending any more.
func (h *holds) dropMessageHolds() {
	h.mu.Lock()
	h.msg, h.msgAOR = make(map[string]time.Time), make(map[string]string)
	h.mu.Unlock()
}

// release drops aor's backoff and the Timer F holds of its messages (only id's,
// when id is set). Without force nothing is dropped while a Timer F hold is still
// running: those are returned instead.
func (h *holds) release(aor, id string, force bool, now time.Time) (backoff bool, timerF []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for mid, a := range h.msgAOR {
		if a == aor && (id == "" || mid == id || strings.HasPrefix(mid, id+"\x00")) && now.Before(h.msg[mid]) {
			timerF = append(timerF, mid)
		}
	}
	if len(timerF) > 0 && !force {
		return false, timerF
	}
	for _, mid := range timerF {
		delete(h.msg, mid)
		delete(h.msgAOR, mid)
	}
	_, backoff = h.aor[aor]
	delete(h.aor, aor)
	for lane := range h.aor { // the backoffs of aor's device lanes (relay/devices.go)
		if strings.HasPrefix(lane, aor+"\x00") {
			backoff = true
			delete(h.aor, lane)
		}
	}
	return backoff, timerF
}
