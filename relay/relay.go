// Package relay delivers queued messages: per recipient, in queue order, through
// FreeSWITCH's `bgapi chat`, whose BACKGROUND_JOB result is "Sent" only after the
// recipient's device answered 2xx. A message leaves its queue only then.
package relay

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Stats counts delivery outcomes since start.
type Stats struct {
	Sent             int64 // bgapi chat jobs started
	Delivered        int64 // confirmed by the device's 2xx
	Refused          int64
	NoAnswer         int64
	NotRegistered    int64
	Unknown          int64 // result lost (ESL dropped, timeout): held for Timer F
	DeadLettered     int64
	UncertainResends int64 // sends of a message whose previous send may have arrived
	StoreErrors      int64
	Direct           int64 // sends sipsilo made itself (the direct path)
	ProbeFailed      int64 // batches held because a probe before delivery went unanswered
	Expired          int64 // messages that expired undelivered (relay/expire.go)
	Notices          int64 // notices to senders delivered (relay/notices.go)
	// DeviceDeliveries counts copies confirmed by their own device
	// (docs/decisions.md §29); they are also counted in Delivered.
	DeviceDeliveries int64
	// DevicesHolding is the number of devices whose lane last saw copies
	// waiting for them.
	DevicesHolding int64
	NoticesFailed  int64 // notices FreeSWITCH could not deliver
	NoticesDropped int64 // notices dropped because too many were waiting
}

type counters struct {
	sent, delivered, refused, noAnswer, notRegistered, unknown, dead, uncertain, storeErrors atomic.Int64
	direct, probeFailed                                                                      atomic.Int64
	expired, notices, noticesFailed, noticesDropped                                          atomic.Int64
	deviceDeliveries                                                                         atomic.Int64
}

// Relay runs one worker per recipient with something to deliver. Use New, then Run.
type Relay struct {
	cfg   Config
	store Store
	send  Sender
	pres  Presence
	log   *slog.Logger
	sem   chan struct{} // global cap on sends in flight
	c     counters
	holds *holds
	// notices waiting to be sent (relay/notices.go)
	notices chan notice

	mu  sync.Mutex
	ctx context.Context // Run's; nil before Run and after it returns
	// workers are the lanes running, by laneKey: a recipient's own and one per
	// device with copies to send (docs/decisions.md §29); devs names the
	// device lanes of each recipient, and holding those that saw copies waiting.
	workers map[string]*worker
	devs    map[string]map[string]bool
	holding map[string]bool
	wg      sync.WaitGroup
}

// New returns a Relay; nothing is sent before Run.
func New(cfg Config, store Store, send Sender, pres Presence) *Relay {
	cfg.setDefaults()
	return &Relay{
		cfg:     cfg,
		store:   store,
		send:    send,
		pres:    pres,
		log:     cfg.Logger.With("component", "relay"),
		sem:     make(chan struct{}, cfg.MaxInFlight),
		holds:   newHolds(),
		notices: make(chan notice, noticeQueue),
		workers: make(map[string]*worker),
		devs:    make(map[string]map[string]bool),
		holding: make(map[string]bool),
	}
}

// Run delivers until ctx ends, then waits (at most Config.DrainTimeout) for the
// results of sends in flight so that their messages are recorded, and returns
// once every worker has ended.
func (r *Relay) Run(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	r.wg.Go(func() { r.sweep(ctx) })
	r.wg.Go(func() { r.sendNotices(ctx) })
	r.WakeAll()
	<-ctx.Done()
	r.mu.Lock()
	r.ctx = nil // no new workers
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// Wake tells relay that aor may have something to deliver now: a new message, its
// body confirmed, or a sign of life from the recipient or one of its devices.
// Cheap and non-blocking. It wakes the recipient's lane and its device lanes:
// those running and, for a recipient with several devices, one per device
// presence knows, so that a device that registers again gets its copies at once.
func (r *Relay) Wake(aor string) {
	var targets []string
	if r.cfg.Devices != nil {
		targets = r.cfg.Devices.Targets(aor)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil {
		return // before Run (which scans the store) or after it
	}
	r.wakeLaneLocked(aor, "")
	if len(targets) >= 2 {
		for _, k := range targets {
			r.wakeLaneLocked(aor, k)
		}
	}
	for k := range r.devs[aor] {
		r.wakeLaneLocked(aor, k)
	}
}

// WakeAll wakes every recipient with queued messages: at start, and after ESL
// reconnected and presence resynced.
func (r *Relay) WakeAll() {
	aors, err := r.store.QueuedAORs()
	if err != nil {
		r.log.Error("cannot list queued recipients", "err", err)
		return
	}
	for _, aor := range aors {
		r.Wake(aor)
	}
}

// FreeSWITCHRestarted drops the Timer F holds: a restarted FreeSWITCH has no
// pending send that could still reach a device.
func (r *Relay) FreeSWITCHRestarted() {
	r.holds.dropMessageHolds()
	r.WakeAll()
}

// retire removes an idle worker unless a wake came in meanwhile.
func (r *Relay) retire(w *worker) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(w.wake) > 0 && r.ctx != nil {
		return false
	}
	delete(r.workers, w.key)
	if w.device != "" {
		delete(r.devs[w.aor], w.device)
		if len(r.devs[w.aor]) == 0 {
			delete(r.devs, w.aor)
		}
	}
	return true
}

// Stats returns the counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Sent:             r.c.sent.Load(),
		Delivered:        r.c.delivered.Load(),
		Refused:          r.c.refused.Load(),
		NoAnswer:         r.c.noAnswer.Load(),
		NotRegistered:    r.c.notRegistered.Load(),
		Unknown:          r.c.unknown.Load(),
		DeadLettered:     r.c.dead.Load(),
		UncertainResends: r.c.uncertain.Load(),
		StoreErrors:      r.c.storeErrors.Load(),
		Direct:           r.c.direct.Load(),
		ProbeFailed:      r.c.probeFailed.Load(),
		Expired:          r.c.expired.Load(),
		Notices:          r.c.notices.Load(),
		NoticesFailed:    r.c.noticesFailed.Load(),
		NoticesDropped:   r.c.noticesDropped.Load(),
		DeviceDeliveries: r.c.deviceDeliveries.Load(),
		DevicesHolding:   int64(r.devicesHolding()),
	}
}

func (r *Relay) devicesHolding() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.holding)
}
