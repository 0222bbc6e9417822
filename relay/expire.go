package relay

import (
	"context"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// sweep expires the queued messages of recipients who never come back: once at
// start, then every Config.SweepEvery, until ctx ends. Messages of recipients
// that are delivered to are also checked before each send (kv.BeginAttempt),
// so the sweep only decides how soon an expiry is recorded, never whether an
// expired message is sent.
func (r *Relay) sweep(ctx context.Context) {
	t := time.NewTicker(r.cfg.SweepEvery)
	defer t.Stop()
	for {
		r.expireDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expireDue runs one sweep. A message with a send begun within SendTimeout +
// TimerF is spared: its result may still come, and recording it as expired
// first would be a lie if the device then answers 2xx (kv.Delivered still
// records such a late 2xx as delivered).
func (r *Relay) expireDue(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, r.cfg.SweepEvery)
	defer cancel()
	_, err := r.store.ExpireDue(sctx, r.cfg.Now(), r.cfg.SendTimeout+r.cfg.TimerF, r.expired)
	if err != nil && ctx.Err() == nil {
		r.c.storeErrors.Add(1)
		r.log.Error("expiry sweep failed", "err", err)
	}
}

// expired counts and reports a message that expired undelivered.
func (r *Relay) expired(m *kv.Message) {
	r.c.expired.Add(1)
	r.log.Info("message expired undelivered", "id", m.ID, "received", m.Received, "attempts", m.Attempts)
	r.log.Debug("expired message", "id", m.ID, "from", m.From, "to", m.To)
	r.notify(m, kv.NoticeExpired)
	if len(m.Devices) == 0 {
		r.wakeDevices(m.To, nil) // device lanes may wait at it
	}
}
