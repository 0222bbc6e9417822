package kv

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DeviceCopy is one target device's copy of a message (docs/decisions.md §29):
// a message received for a recipient with two or more devices is delivered to
// each of them, and each copy has its own state and attempts. A message with
// fewer targets has no copies and is delivered as one, to the recipient.
type DeviceCopy struct {
	// Key names the device as presence does (an instance id or a reduced contact).
	Key   string `json:"key"`
	State State  `json:"state"` // queued, delivered, expired, dead or purged
	// Attempts, InFlight, Refusals and the rest mean for the copy what the
	// Message fields of the same names mean for a message without copies.
	Attempts         int       `json:"attempts,omitempty"`
	Refusals         int       `json:"refusals,omitempty"`
	InFlight         string    `json:"in_flight,omitempty"`
	LastAttempt      time.Time `json:"last_attempt,omitzero"`
	LastResult       string    `json:"last_result,omitempty"`
	UncertainResends int       `json:"uncertain_resends,omitempty"`
	Delivered        time.Time `json:"delivered,omitzero"`
}

// Bounds on the copies a message may carry: a key as presence makes it, and a
// number of devices no user has (a hostile flood of registrations must not make
// every message of the user grow without end).
const (
	maxDeviceKeyLen = 256
	maxCopies       = 32
)

// ErrNoCopy is returned by a copy's step when the message has no copy for the
// device.
var ErrNoCopy = errors.New("message has no copy for the device")

var errBadCopies = fmt.Errorf("%w: device copies", ErrUnstorable)

// normalizeCopies makes m.Devices what Enqueue stores: nil for fewer than two
// targets (such a message is delivered as one, exactly as before copies
// existed), else one fresh queued copy per distinct key.
func normalizeCopies(m *Message) error {
	if len(m.Devices) < 2 {
		m.Devices = nil
		return nil
	}
	if len(m.Devices) > maxCopies {
		return errBadCopies
	}
	seen := make(map[string]bool, len(m.Devices))
	out := make([]DeviceCopy, 0, len(m.Devices))
	for _, c := range m.Devices {
		if c.Key == "" || len(c.Key) > maxDeviceKeyLen {
			return errBadCopies
		}
		if seen[c.Key] {
			continue
		}
		seen[c.Key] = true
		out = append(out, DeviceCopy{Key: c.Key, State: StateQueued})
	}
	if len(out) < 2 {
		out = nil
	}
	m.Devices = out
	return nil
}

// Copies returns copies for the given target keys, for Message.Devices: nil for
// fewer than two.
func Copies(keys []string) []DeviceCopy {
	if len(keys) < 2 {
		return nil
	}
	out := make([]DeviceCopy, len(keys))
	for i, k := range keys {
		out[i] = DeviceCopy{Key: k, State: StateQueued}
	}
	return out
}

// Copy returns the message's copy for device key, or nil.
func (m *Message) Copy(key string) *DeviceCopy {
	for i := range m.Devices {
		if m.Devices[i].Key == key {
			return &m.Devices[i]
		}
	}
	return nil
}

// endCopies ends every copy still queued in state st: the message itself
// expired or was purged, so no copy of it goes out any more.
func (m *Message) endCopies(st State) {
	for i := range m.Devices {
		if m.Devices[i].State == StateQueued {
			m.Devices[i].State = st
		}
	}
}

// settle ends a queued message whose every copy is final: delivered when any
// copy was, else dead when any was refused to death, else expired.
func (m *Message) settle() {
	if m.State != StateQueued || len(m.Devices) == 0 {
		return
	}
	var delivered, dead int
	var last time.Time
	for _, c := range m.Devices {
		switch c.State {
		case StateQueued:
			return
		case StateDelivered:
			delivered++
			if c.Delivered.After(last) {
				last = c.Delivered
			}
		case StateDead:
			dead++
		}
	}
	switch {
	case delivered > 0:
		m.State, m.Delivered = StateDelivered, last
		m.Reason = fmt.Sprintf("every device's copy is final: %d of %d delivered", delivered, len(m.Devices))
	case dead > 0:
		m.State, m.Reason = StateDead, fmt.Sprintf("every device's copy is final: none delivered, %d refused", dead)
	default:
		m.State, m.Reason = StateExpired, "every device's copy is final: none delivered"
	}
}

// copyEvent names a record for a copy's change; the record carries the device.
func copyEvent(kind, key string, detail func(m *Message) string) func(m *Message) *event {
	return func(m *Message) *event {
		if kind == "" { // only a change to expired is worth a record
			if m.State != StateExpired {
				return nil
			}
			return &event{kind: EventExpired, detail: m.Reason}
		}
		d := ""
		if detail != nil {
			d = detail(m)
		}
		return &event{kind: kind, detail: d, device: key}
	}
}

// changeCopy runs fn on message id's copy for key, under changeTx.
func (s *Store) changeCopy(ctx context.Context, what, id, key string, ev func(m *Message) *event, fn func(m *Message, c *DeviceCopy) (bool, error)) (*Message, error) {
	return s.change(ctx, what, id, ev, func(m *Message) (bool, error) {
		c := m.Copy(key)
		if c == nil {
			return false, ErrNoCopy
		}
		return fn(m, c)
	})
}

// BeginCopyAttempt is BeginAttempt for one device's copy: recorded durably
// before anything is sent; a copy still in flight from before a restart, or the
// first send of each copy of a message marked uncertain at intake, counts an
// uncertain resend. A message past its expiry is expired instead, with every
// copy still queued, and ErrExpired is returned.
func (s *Store) BeginCopyAttempt(ctx context.Context, id, key, attempt string, at time.Time) (*Message, error) {
	m, err := s.changeCopy(ctx, "begin copy attempt", id, key, copyEvent("", key, nil), func(m *Message, c *DeviceCopy) (bool, error) {
		if m.State != StateQueued || c.State != StateQueued {
			return false, ErrNotQueued
		}
		if m.due(at) {
			m.State, m.Reason = StateExpired, expiredReason(m)
			m.endCopies(StateExpired)
			return true, nil
		}
		if c.InFlight != "" || c.Attempts == 0 && m.InFlight == intakeInFlight {
			// In flight before a restart, or the message may have been delivered
			// by FreeSWITCH itself to every device (MarkIntakeUncertain).
			c.UncertainResends++
			m.UncertainResends++
		}
		c.Attempts++
		m.Attempts++
		c.InFlight, c.LastAttempt, m.LastAttempt = attempt, at, at
		return true, nil
	})
	if err == nil && m.State == StateExpired {
		return m, fmt.Errorf("begin copy attempt %s: %w", id, ErrExpired)
	}
	return m, err
}

// EndCopyAttempt records a failed attempt of one device's copy.
func (s *Store) EndCopyAttempt(ctx context.Context, id, key, attempt string, r AttemptResult) (*Message, error) {
	return s.changeCopy(ctx, "end copy attempt", id, key, copyEvent(EventAttempt, key, func(m *Message) string {
		return m.Copy(key).LastResult
	}), func(m *Message, c *DeviceCopy) (bool, error) {
		if m.State != StateQueued || c.State != StateQueued {
			return false, nil
		}
		if c.InFlight == attempt && !r.MayArrive {
			c.InFlight = ""
		}
		c.LastResult, m.LastResult = r.Text, r.Text
		if r.Refused {
			c.Refusals++
		}
		return true, nil
	})
}

// CopyDelivered records that device key answered 2xx to attempt. The message
// leaves its queue in the same commit when this was its last copy still queued
// (docs/decisions.md §29); the duplicate window is the one of Delivered, per copy.
func (s *Store) CopyDelivered(ctx context.Context, id, key, attempt, result string) error {
	_, err := s.changeCopy(ctx, "copy delivered", id, key, copyEvent(EventDelivered, key, func(m *Message) string {
		return m.Copy(key).LastResult
	}), func(m *Message, c *DeviceCopy) (bool, error) {
		late := c.InFlight == attempt && (c.State == StateExpired || c.State == StatePurged)
		if c.State != StateQueued && !late {
			return false, nil
		}
		now := s.now()
		c.State, c.InFlight, c.LastResult, c.Delivered = StateDelivered, "", result, now
		m.LastResult = result
		if m.State != StateQueued {
			// Expired or purged while this send was in flight: the device has it,
			// and the record says so rather than claim it was never delivered.
			m.State, m.Delivered = StateDelivered, now
			m.Reason = "device " + key + " answered 2xx to attempt " + attempt + " after the message ended"
			return true, nil
		}
		m.settle()
		return true, nil
	})
	return err
}

// DeadLetterCopy gives up one device's copy that device keeps refusing; the
// message leaves its queue when this was its last copy still queued.
func (s *Store) DeadLetterCopy(ctx context.Context, id, key, reason string) error {
	_, err := s.changeCopy(ctx, "dead letter copy", id, key, copyEvent(EventDead, key, func(*Message) string { return reason }), func(m *Message, c *DeviceCopy) (bool, error) {
		if m.State != StateQueued || c.State != StateQueued {
			return false, nil
		}
		c.State, c.InFlight, c.LastResult = StateDead, "", reason
		m.settle()
		return true, nil
	})
	return err
}

// copyPending reports whether a copy of m has a send begun within the last
// pending whose result may still come.
func copyPending(m *Message, now time.Time, pending time.Duration) bool {
	for _, c := range m.Devices {
		if c.State == StateQueued && c.InFlight != "" && now.Sub(c.LastAttempt) < pending {
			return true
		}
	}
	return false
}
