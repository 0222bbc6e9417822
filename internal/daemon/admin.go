package daemon

import (
	"errors"
	"fmt"

	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/relay"
)

// adminActions gives the admin API's actions the store and relay
// (handlers.AdminActions).
type adminActions struct {
	*kv.Store // get, enqueue, purge, requeue, quota
	relay     *relay.Relay
}

func (a adminActions) Retry(aor, id string, force bool) (handlers.RetryOutcome, error) {
	res, err := a.relay.Retry(aor, id, force)
	out := handlers.RetryOutcome{Backoff: res.Backoff, TimerF: res.TimerF, Deliverable: res.Deliverable}
	if errors.Is(err, relay.ErrTimerF) {
		err = fmt.Errorf("%w: %w", handlers.ErrTimerF, err)
	}
	return out, err
}

// Queued wakes the recipient of an injected message; its body is final, so no
// body tracking, and the sender may get a "stored" notice.
func (a adminActions) Queued(m *kv.Message) {
	a.relay.Wake(m.To)
	a.relay.Stored(m)
}

var _ handlers.AdminActions = adminActions{}
