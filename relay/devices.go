package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// Devices is presence's view of a recipient's devices, for the copies of a
// message received for several of them (docs/decisions.md §29). *presence.Map
// implements it.
type Devices interface {
	// Targets returns the keys of aor's devices a message received now must
	// reach: registered, or ended within the device memory.
	Targets(aor string) []string
	// DeviceDeliverable reports whether device key of aor is registered and not
	// known unreachable.
	DeviceDeliverable(aor, key string) bool
	// ObserveDeviceSent feeds the outcome of a send to one device back as
	// evidence about that device alone.
	ObserveDeviceSent(ctx context.Context, aor, key string, o presence.Outcome, sentAt time.Time) error
	// ChatTo returns the FreeSWITCH chat destination that reaches only device
	// key ("<profile>/<contact URI>"); ok is false when it is not registered.
	ChatTo(aor, key string) (to string, ok bool)
}

// DeviceProber probes one device before its lane sends (Prober, per device),
// so that a silent device's probe never delays another device's copies.
type DeviceProber interface {
	CheckDevice(ctx context.Context, aor, key string) bool
}

// DeviceDirect is the direct path to one device (Direct, per device).
type DeviceDirect interface {
	SendDevice(ctx context.Context, m *kv.Message, key string) (wait func(context.Context) (int, error), ok bool, err error)
	ReadyDevice(aor, key string) bool
}

// errNoRoute: a device lane found no way to its device (it ended meanwhile).
var errNoRoute = errors.New("relay: the device is not registered")

// laneKey names a lane in Relay.workers and in holds: the recipient for its own
// lane (as before copies existed), recipient and device for a device's.
func laneKey(aor, device string) string {
	if device == "" {
		return aor
	}
	return aor + "\x00" + device
}

// msgKey names a message's Timer F hold: the message, or its copy on the lane.
func (w *worker) msgKey(id string) string {
	if w.device == "" {
		return id
	}
	return id + "\x00" + w.device
}

// deliverable asks presence whether the lane's recipient or device can be sent to.
func (w *worker) deliverable() bool {
	if w.device == "" {
		return w.r.pres.Deliverable(w.aor)
	}
	return w.r.cfg.Devices.DeviceDeliverable(w.aor, w.device)
}

// check probes the lane's recipient or device (Config.Prober).
func (w *worker) check(ctx context.Context) bool {
	p := w.r.cfg.Prober
	if p == nil {
		return true
	}
	if w.device == "" {
		return p.Check(ctx, w.aor)
	}
	if dp, ok := p.(DeviceProber); ok {
		return dp.CheckDevice(ctx, w.aor, w.device)
	}
	return true
}

// directReady reports whether the lane's next send would take the direct path.
func (w *worker) directReady() bool {
	d := w.r.cfg.Direct
	if d == nil {
		return false
	}
	if w.device == "" {
		return d.Ready(w.aor)
	}
	dd, ok := d.(DeviceDirect)
	return ok && dd.ReadyDevice(w.aor, w.device)
}

// sendDirect is Direct.Send for the lane.
func (w *worker) sendDirect(ctx context.Context, m *kv.Message) (func(context.Context) (int, error), bool, error) {
	d := w.r.cfg.Direct
	if w.device == "" {
		return d.Send(ctx, m)
	}
	if dd, ok := d.(DeviceDirect); ok {
		return dd.SendDevice(ctx, m, w.device)
	}
	return nil, false, nil
}

// chatTo is the chat destination of the lane's sends.
func (w *worker) chatTo(m *kv.Message) (string, error) {
	if w.device == "" {
		return m.To, nil
	}
	to, ok := w.r.cfg.Devices.ChatTo(w.aor, w.device)
	if !ok {
		return "", errNoRoute
	}
	return to, nil
}

// pick says which queued messages are the lane's, for readAhead. The
// recipient's lane takes the messages without copies (all of them without
// Config.Devices, exactly as before copies existed) and notes the devices of the
// copies it passes, so that their lanes run. A device's lane takes its queued
// copies, up to and including the first message without copies, which is sent
// on the recipient's lane before any later copy (docs/decisions.md §29).
func (w *worker) pick(seen map[string]bool) func(m *kv.Message) (bool, bool) {
	if w.device == "" {
		return func(m *kv.Message) (bool, bool) {
			if len(m.Devices) > 0 && w.r.cfg.Devices != nil {
				for _, c := range m.Devices {
					if c.State == kv.StateQueued && len(seen) < maxCopies {
						seen[c.Key] = true
					}
				}
				if len(w.withCopies) < maxWithCopies {
					w.withCopies[m.ID] = true
				}
				return false, false
			}
			return !w.inflight[m.ID], false
		}
	}
	return func(m *kv.Message) (bool, bool) {
		if len(m.Devices) == 0 {
			return true, true
		}
		c := m.Copy(w.device)
		return c != nil && c.State == kv.StateQueued && !w.inflight[m.ID], false
	}
}

// maxWithCopies bounds worker.withCopies; past it the recipient's lane decodes
// the rest again on each read, which costs time, not correctness.
const maxWithCopies = 100_000

// maxCopies bounds worker.devKeys: kv stores at most 32 copies a message.
const maxCopies = 64

// skip passes over, without decoding, the lane's messages in flight (pick
// would refuse them) and the messages with copies the recipient's lane has
// already seen: a message never loses its copies, so they are never its.
// Without it, every read of a queue holding many copies would decode all of
// them to find the few messages without, and every read of a draining queue
// the window's messages again.
func (w *worker) skip() func(id []byte) bool {
	copies := w.device == "" && len(w.withCopies) > 0
	if !copies && len(w.inflight) == 0 {
		return nil
	}
	return func(id []byte) bool {
		return w.inflight[string(id)] || copies && w.withCopies[string(id)]
	}
}

// attemptID names an attempt; it is also the bgapi Job-UUID, so a copy's names
// the device by its index among the copies, not by its key.
func (w *worker) attemptID(m *kv.Message) (attempt string, uncertain bool) {
	if w.device == "" {
		return fmt.Sprintf("%s-%d", m.ID, m.Attempts+1), m.InFlight != ""
	}
	for i, c := range m.Devices {
		if c.Key == w.device {
			return fmt.Sprintf("%s-d%d-%d", m.ID, i, c.Attempts+1), c.InFlight != "" || c.Attempts == 0 && m.InFlight != ""
		}
	}
	return fmt.Sprintf("%s-%d", m.ID, m.Attempts+1), false
}

func (w *worker) beginAttempt(ctx context.Context, m *kv.Message, attempt string, at time.Time) error {
	var err error
	if w.device == "" {
		_, err = w.r.store.BeginAttempt(ctx, m.ID, attempt, at)
	} else {
		_, err = w.r.store.BeginCopyAttempt(ctx, m.ID, w.device, attempt, at)
	}
	return err
}

func (w *worker) storeDelivered(ctx context.Context, id, attempt, text string) error {
	if w.device == "" {
		return w.r.store.Delivered(ctx, id, attempt, text)
	}
	return w.r.store.CopyDelivered(ctx, id, w.device, attempt, text)
}

func (w *worker) deadLetter(ctx context.Context, id, reason string) error {
	if w.device == "" {
		return w.r.store.DeadLetter(ctx, id, reason)
	}
	return w.r.store.DeadLetterCopy(ctx, id, w.device, reason)
}

// refusals returns the refusals recorded for the lane's message or copy.
func (w *worker) refusals(m *kv.Message) int {
	if w.device == "" {
		return m.Refusals
	}
	if c := m.Copy(w.device); c != nil {
		return c.Refusals
	}
	return 0
}

// observe feeds a send's outcome to presence: about the recipient, or about
// the lane's device alone.
func (w *worker) observe(ctx context.Context, o presence.Outcome, sentAt time.Time) {
	if w.device == "" {
		w.r.observe(ctx, w.aor, o, sentAt)
		return
	}
	if err := w.r.cfg.Devices.ObserveDeviceSent(ctx, w.aor, w.device, o, sentAt); err != nil {
		w.r.log.Error("delivery outcome not recorded in presence", "outcome", o.String(), "err", err)
	}
}

// registered: for the recipient's lane, whether FreeSWITCH has a contact; for a
// device's, whether presence has its registration.
func (w *worker) registered(ctx context.Context) bool {
	if w.device != "" {
		_, ok := w.r.cfg.Devices.ChatTo(w.aor, w.device)
		return ok
	}
	return w.registeredAOR(ctx)
}

// setHolding records whether the device lane has copies waiting, for
// Stats.DevicesHolding.
func (w *worker) setHolding(holding bool) {
	if w.device == "" {
		return
	}
	r := w.r
	r.mu.Lock()
	if holding {
		r.holding[w.key] = true
	} else {
		delete(r.holding, w.key)
	}
	r.mu.Unlock()
}

// noteHolding records, for a device lane whose device cannot be sent to,
// whether copies wait for it: one short read, up to its first copy.
func (w *worker) noteHolding() {
	if w.device == "" {
		return
	}
	msgs, err := w.r.store.QueueScan(w.aor, 1, nil, w.pick(nil))
	if err == nil {
		w.setHolding(len(msgs) > 0)
	}
}

// wakeLaneLocked wakes (starting it if needed) the lane of device on aor.
// r.mu is held.
func (r *Relay) wakeLaneLocked(aor, device string) {
	key := laneKey(aor, device)
	w := r.workers[key]
	if w == nil {
		w = newWorker(r, aor, device)
		r.workers[key] = w
		if device != "" {
			if r.devs[aor] == nil {
				r.devs[aor] = make(map[string]bool)
			}
			r.devs[aor][device] = true
		}
		ctx := r.ctx
		r.wg.Go(func() { w.run(ctx) })
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// wakeDevices wakes the device lanes of aor given and those running: after a
// message without copies left aor's queue, or copies were seen for them.
func (r *Relay) wakeDevices(aor string, keys map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil {
		return
	}
	for k := range keys {
		r.wakeLaneLocked(aor, k)
	}
	for k := range r.devs[aor] {
		if !keys[k] {
			r.wakeLaneLocked(aor, k)
		}
	}
}

var _ Devices = (*presence.Map)(nil)
