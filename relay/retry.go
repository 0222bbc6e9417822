package relay

import (
	"errors"
	"fmt"
)

// ErrTimerF is returned by Retry for messages held for Timer F: their last send
// timed out or its result was lost, and FreeSWITCH may still be retransmitting
// it, so a new send now can reach the device twice (docs/decisions.md
// §19). Retry with force accepts that risk; the resend is then counted as
// uncertain, like one after a crash.
var ErrTimerF = errors.New("held for Timer F: an earlier send may still reach the device")

// RetryResult says what a retry released.
type RetryResult struct {
	Backoff bool     // the queue's backoff (after refusals or a failed probe) was dropped
	TimerF  []string // messages held for Timer F: dropped only with force
	// Deliverable: presence says the recipient can be reached. When it cannot,
	// nothing is sent until it shows life, retry or not.
	Deliverable bool
}

// Retry is an operator's "retry now" for aor's queue, or for message id in it
// when id is set: it drops the queue's backoff and wakes the queue, so the head
// is sent at once if the recipient is deliverable. Queue order still holds: a
// message is sent after the ones before it. With a Timer F hold on any of the
// messages concerned and without force, nothing is changed and the error wraps
// ErrTimerF.
func (r *Relay) Retry(aor, id string, force bool) (RetryResult, error) {
	backoff, timerF := r.holds.release(aor, id, force, r.cfg.Now())
	res := RetryResult{Backoff: backoff, TimerF: timerF, Deliverable: r.pres.Deliverable(aor)}
	if len(timerF) > 0 && !force {
		return res, fmt.Errorf("%d message(s) %w", len(timerF), ErrTimerF)
	}
	r.Wake(aor)
	return res, nil
}
