package presence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// maxAORLen matches the store's limit on keys; a longer AOR is hostile input.
const maxAORLen = 1024

// maxExpires bounds a REGISTER's expires delta (FreeSWITCH caps far lower); it keeps
// the arithmetic away from overflow on garbage.
const maxExpires = 10 * 365 * 24 * time.Hour

// staleVerdictWindow: a PBX verdict of death (unreachable) about a
// registration REGISTERed this recently is older than the REGISTER. FreeSWITCH
// keeps retransmitting the OPTIONS of a flushed registration for Timer F (32 s)
// and, when the phone registers again with the same Call-ID, lays their timeouts on
// the fresh row (docs/decisions.md §28).
const staleVerdictWindow = 32 * time.Second

// ApplyEvent applies one PBX event (the FreeSWITCH adapter builds them from sofia's
// events, docs/architecture.md, "Reachability"). It returns an error for an event
// it cannot use, and when persisting the change failed (the change is applied in
// memory all the same).
func (m *Map) ApplyEvent(ctx context.Context, ev Event) error {
	if err := ev.check(); err != nil {
		return fmt.Errorf("presence: %s event: %w", ev.Source, err) // no AOR: errors are logged above debug
	}
	var found []detection
	became, err := m.update(ctx, ev.AOR, func(st *State, known bool, now time.Time) bool {
		if ev.KnownOnly && !known {
			return false
		}
		if (ev.Stream != "" || ev.Seq != 0) && !st.accept(ev.Stream, ev.Seq) {
			m.log.Debug("presence: stale event ignored", "aor", ev.AOR, "evidence", ev.Source,
				"core", ev.Stream, "seq", ev.Seq, "last_core", st.LastCore, "last_seq", st.LastSeq)
			return false
		}
		if i := st.find(ev.CallID); ev.Kind == ReachChanged && ev.Reach == Unreachable && i >= 0 &&
			!staleVerdict(&st.Registrations[i], now) {
			if d, ok := detect(&st.Registrations[i], cmp.Or(ev.Detector, DetectFreeSWITCH), now); ok {
				found = append(found, d)
			}
		}
		m.applyEvent(&ev, st, now)
		return true
	})
	if became {
		m.notify(ev.AOR)
	}
	m.reportDetections(found)
	return err
}

// check refuses what cannot be applied safely.
func (ev *Event) check() error {
	if _, err := checkAOR(ev.AOR); err != nil {
		return err
	}
	switch ev.Kind {
	case Registered:
		if ev.CallID == "" {
			return errors.New("no call-id")
		}
		if ev.ExpiresIn < 0 || ev.ExpiresIn > maxExpires {
			return fmt.Errorf("expires %v", ev.ExpiresIn)
		}
	case ReachChanged:
		if ev.CallID == "" {
			return errors.New("no call-id")
		}
	case Removed, Gone, Unregistered:
	default:
		return fmt.Errorf("unknown kind %d", int(ev.Kind))
	}
	return nil
}

// staleVerdict: a verdict of death about r, reached within staleVerdictWindow of a
// REGISTER that revived its Call-ID (after a flush, expiry or death), may be about the
// registration that REGISTER replaced.
func staleVerdict(r *Registration, now time.Time) bool {
	return !r.Revived.IsZero() && now.Sub(r.Revived) < staleVerdictWindow
}

func (m *Map) applyEvent(ev *Event, st *State, now time.Time) {
	at := ev.At
	if at.IsZero() {
		at = now
	}
	evidence := ev.Source
	if ev.Kind == ReachChanged && ev.Status != "" {
		evidence += " " + ev.Status
	}
	switch ev.Kind {
	case Registered:
		// The registration is replaced whole: a REGISTER restarts the PBX's and
		// sipsilo's ping counts, so the earlier ping status no longer holds. It is
		// Reachable (proof of life), and update's summary makes the AOR Reachable.
		r := Registration{
			CallID: ev.CallID, Contact: ev.Contact, Instance: ev.Instance, NetworkIP: ev.NetworkIP,
			NetworkPort: ev.NetworkPort, Profile: ev.Profile, UserAgent: ev.UserAgent,
			Expires: at.Add(ev.ExpiresIn), Updated: at, Reach: Reachable,
			RegisteredAt: now, LastAlive: now,
		}
		if ev.Sole {
			st.soleOf(&r)
		}
		st.register(r, now)
	case Removed:
		// An expiry is honoured even right after a REGISTER: the PBX dropped the
		// row, so it would not reach the device by its AOR either.
		if i := st.find(ev.CallID); i >= 0 {
			st.end(i, now)
		}
	case ReachChanged:
		// A verdict on a Call-ID presence does not hold changes nothing but the mark:
		// without its expiry the registration cannot be added (resync will).
		i := st.find(ev.CallID)
		if i < 0 {
			break
		}
		r := &st.Registrations[i]
		if ev.Reach == Unreachable && staleVerdict(r, now) {
			m.log.Debug("presence: unreachable right after a REGISTER ignored", "aor", ev.AOR, "evidence", evidence)
			return
		}
		r.Reach, r.PingStatus, r.Updated = ev.Reach, firstWord(ev.Status), at
	case Gone:
		st.endAll(now)
	case Unregistered:
		// The PBX says the user is unregistered without naming the registration. It
		// fires for each ended registration even while others remain, and names
		// each in its own event: it ends the AOR's only device, never several.
		// FreeSWITCH fires it right after the sofia::expire or unregister that names
		// the row (sofia_reg_del_callback), so one that follows a named end is that
		// end's echo, not news about the device left (TestRealFSDevices
		// sent_after_a_sibling_was_flushed: it ended the live phone of two).
		if len(st.liveDevices(now)) > 1 || st.endedSince(now.Add(-unregisteredEcho)) {
			return
		}
		st.endAll(now)
	}
	st.Evidence, st.EvidenceAt = evidence, at
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func checkAOR(aor string) (string, error) {
	if aor == "" {
		return "", errors.New("no AOR")
	}
	if len(aor) > maxAORLen {
		return "", fmt.Errorf("AOR of %d bytes", len(aor))
	}
	return aor, nil
}
