package presence

import (
	"context"
	"fmt"
	"time"
)

// Outcome is what relay learned from one delivery attempt (docs/decisions.md §7).
type Outcome int

const (
	Delivered2xx  Outcome = iota // the device answered 2xx: alive
	Refused                      // a fast error while registered: alive but refused (busy, 4xx)
	NoAnswer                     // an error after ≈20 s: strong evidence of death
	NotRegistered                // FreeSWITCH had no registration for the AOR
)

func (o Outcome) String() string {
	switch o {
	case Delivered2xx:
		return "delivery 2xx"
	case Refused:
		return "delivery refused"
	case NoAnswer:
		return "delivery no answer"
	case NotRegistered:
		return "delivery not registered"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Observe records a delivery outcome for aor as if the send had started before every
// registration presence holds (see ObserveSent).
func (m *Map) Observe(ctx context.Context, aor string, o Outcome) error {
	return m.ObserveSent(ctx, aor, o, time.Time{})
}

// ObserveSent records a delivery outcome for aor:
//   - Delivered2xx: Reachable, whatever was known before.
//   - Refused: Reach unchanged; only the evidence is recorded. A fast error is not
//     proof of life on its own (a closed port fails fast too) and not proof of death.
//   - NoAnswer: Unreachable, until the next REGISTER, REACHABLE or 2xx.
//   - NotRegistered: the registrations are dropped.
//
// NoAnswer and NotRegistered only judge registrations that existed when the send
// started: a phone that re-registered during the ≈20 s a failing send takes must not be
// marked dead by it. sentAt is that start by sipsilo's clock; zero judges them all.
// An AOR presence does not hold is left alone.
func (m *Map) ObserveSent(ctx context.Context, aor string, o Outcome, sentAt time.Time) error {
	if o < Delivered2xx || o > NotRegistered {
		return fmt.Errorf("presence: unknown outcome %d", int(o))
	}
	judged := func(r *Registration) bool { return sentAt.IsZero() || !r.RegisteredAt.After(sentAt) }
	var found []detection
	became, err := m.update(ctx, aor, func(st *State, known bool, now time.Time) bool {
		if !known {
			return false
		}
		st.Evidence, st.EvidenceAt = o.String(), now
		switch o {
		case Delivered2xx:
			for i := range st.Registrations {
				r := &st.Registrations[i]
				r.Reach, r.Updated, r.LastAlive = Reachable, now, now
			}
			st.Reach = Reachable
		case NoAnswer:
			for i := range st.Registrations {
				if r := &st.Registrations[i]; judged(r) {
					if d, ok := detect(r, DetectDelivery, now); ok {
						found = append(found, d)
					}
					r.Reach, r.Updated = Unreachable, now
				}
			}
			if len(st.Registrations) == 0 {
				st.Reach = Unreachable
			}
		case NotRegistered:
			for i := len(st.Registrations) - 1; i >= 0; i-- {
				if judged(&st.Registrations[i]) {
					st.end(i, now)
				}
			}
		}
		return true
	})
	if became {
		m.notify(aor)
	}
	m.reportDetections(found)
	return err
}

// ObserveDeviceSent records the outcome of a send to one device of aor (the copy
// addressed to device key): the same rules as ObserveSent, applied to that device's
// registrations only. Another device's answer never judges this one, and this
// one's never judges another.
func (m *Map) ObserveDeviceSent(ctx context.Context, aor, key string, o Outcome, sentAt time.Time) error {
	if o < Delivered2xx || o > NotRegistered {
		return fmt.Errorf("presence: unknown outcome %d", int(o))
	}
	judged := func(r *Registration) bool {
		return keyOf(r) == key && (sentAt.IsZero() || !r.RegisteredAt.After(sentAt))
	}
	var found []detection
	became, err := m.update(ctx, aor, func(st *State, known bool, now time.Time) bool {
		if !known {
			return false
		}
		st.Evidence, st.EvidenceAt = o.String()+" ("+key+")", now
		for i := len(st.Registrations) - 1; i >= 0; i-- {
			r := &st.Registrations[i]
			switch {
			case o == Delivered2xx && keyOf(r) == key:
				r.Reach, r.Updated, r.LastAlive = Reachable, now, now
			case o == NoAnswer && judged(r):
				if d, ok := detect(r, DetectDelivery, now); ok {
					found = append(found, d)
				}
				r.Reach, r.Updated = Unreachable, now
			case o == NotRegistered && judged(r):
				st.end(i, now)
			}
		}
		return true
	})
	if became {
		m.notify(aor)
	}
	m.reportDetections(found)
	return err
}
