package presence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sipsilo/sipsilo/esl"
)

// maxAORLen matches the store's limit on keys; a longer AOR is hostile input.
const maxAORLen = 1024

// maxExpires bounds a REGISTER's expires delta (FreeSWITCH caps far lower); it keeps
// the arithmetic away from overflow on garbage.
const maxExpires = 10 * 365 * 24 * 3600

type eventKind int

const (
	evRegister  eventKind = iota // add or refresh one registration
	evRemove                     // one registration gone (unregister, expire)
	evUserState                  // FreeSWITCH's ping verdict on one registration
	evGone                       // every registration of the AOR gone
)

// event is what one relevant FreeSWITCH event says about one AOR.
type event struct {
	kind      eventKind
	aor       string
	callID    string
	core      string
	seq       uint64
	at        time.Time // FreeSWITCH's Event-Date-Timestamp
	evidence  string
	reg       Registration  // evRegister
	expiresIn time.Duration // evRegister: sofia::register's expires is a delta from the event
	reach     Reach         // evUserState
	ping      string        // evUserState: Ping-Status as sent
	knownOnly bool          // applies only to an AOR the map already holds
}

// Apply applies one FreeSWITCH event and ignores those that say nothing about
// reachability. It returns an error for a relevant event it cannot read, and when
// persisting the change failed (the change is applied in memory all the same).
func (m *Map) Apply(ctx context.Context, e *esl.Event) error {
	if e == nil {
		return nil
	}
	ev, err := m.parse(e)
	if err != nil || ev == nil {
		return err
	}
	var found []detection
	became, err := m.update(ctx, ev.aor, func(st *State, known bool, now time.Time) bool {
		if ev.knownOnly && !known {
			return false
		}
		if !st.accept(ev.core, ev.seq) {
			m.log.Debug("presence: stale event ignored", "aor", ev.aor, "evidence", ev.evidence,
				"core", ev.core, "seq", ev.seq, "last_core", st.LastCore, "last_seq", st.LastSeq)
			return false
		}
		if i := st.find(ev.callID); ev.kind == evUserState && ev.reach == Unreachable && i >= 0 {
			if d, ok := detect(&st.Registrations[i], DetectFreeSWITCH, now); ok {
				found = append(found, d)
			}
		}
		ev.apply(st, now)
		return true
	})
	if became {
		m.notify(ev.aor)
	}
	m.reportDetections(found)
	return err
}

func (ev *event) apply(st *State, now time.Time) {
	st.Evidence, st.EvidenceAt = ev.evidence, ev.at
	switch ev.kind {
	case evRegister:
		// The registration is replaced whole: a REGISTER restarts FreeSWITCH's ping
		// count, so its earlier PingStatus no longer holds. It is Reachable (proof of
		// life), and update's summary makes the AOR Reachable with it.
		r := ev.reg
		r.RegisteredAt, r.LastAlive = now, now
		if i := st.find(r.CallID); i >= 0 {
			st.Registrations[i] = r
		} else {
			st.Registrations = append(st.Registrations, r)
		}
	case evRemove:
		if i := st.find(ev.callID); i >= 0 {
			st.Registrations = append(st.Registrations[:i:i], st.Registrations[i+1:]...)
		}
	case evUserState:
		// A verdict on a Call-ID presence does not hold changes nothing but the mark:
		// without its expiry the registration cannot be added (resync will).
		if i := st.find(ev.callID); i >= 0 {
			r := &st.Registrations[i]
			r.Reach, r.PingStatus, r.Updated = ev.reach, ev.ping, ev.at
		}
	case evGone:
		st.Registrations = nil
	}
}

// parse reads e; it returns nil for an event that is not about reachability.
func (m *Map) parse(e *esl.Event) (*event, error) {
	var ev *event
	var err error
	switch {
	case e.Name == "CUSTOM" && e.Subclass == "sofia::register":
		ev, err = parseRegister(e)
	case e.Name == "CUSTOM" && e.Subclass == "sofia::unregister":
		ev, err = parseRemove(e, "from-user", "from-host")
	case e.Name == "CUSTOM" && e.Subclass == "sofia::expire":
		ev, err = parseRemove(e, "user", "host")
	case e.Name == "CUSTOM" && e.Subclass == "sofia::sip_user_state":
		ev, err = parseUserState(e)
	case e.Name == "CUSTOM" && e.Subclass == "sofia::error":
		ev, err = parseNoRecipient(e)
	case e.Name == "PRESENCE_IN":
		ev, err = parseUnregistered(e)
	default:
		// sofia::pre_register among them: it also fires for an authenticated MESSAGE,
		// with the recipient in from-user (docs/decisions.md §22).
		return nil, nil
	}
	if err != nil || ev == nil {
		if err != nil {
			err = fmt.Errorf("presence: %s %s seq %d: %w", e.Name, e.Subclass, e.Sequence, err)
		}
		return nil, err
	}
	if e.CoreUUID == "" || e.Sequence == 0 {
		// FreeSWITCH always sends both; an event that cannot be ordered cannot be
		// applied safely.
		return nil, fmt.Errorf("presence: %s %s for %q without Core-UUID or Event-Sequence", e.Name, e.Subclass, ev.aor)
	}
	ev.core, ev.seq = e.CoreUUID, e.Sequence
	ev.at = eventTime(e, m.now)
	if ev.kind == evRegister {
		ev.reg.Expires = ev.at.Add(ev.expiresIn)
		ev.reg.Updated = ev.at
	}
	return ev, nil
}

// eventTime is FreeSWITCH's Event-Date-Timestamp (microseconds since the epoch), or
// now when it is missing.
func eventTime(e *esl.Event, now func() time.Time) time.Time {
	us, err := strconv.ParseInt(e.Get("Event-Date-Timestamp"), 10, 64)
	if err != nil || us <= 0 {
		return now()
	}
	return time.UnixMicro(us)
}

func joinAOR(user, host string) (string, error) {
	if user == "" || host == "" {
		return "", fmt.Errorf("no AOR (user %q, host %q)", user, host)
	}
	return checkAOR(user + "@" + host)
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

// parseRegister reads sofia::register; its expires is a delta in seconds from the event
// (sofia::expire's is an absolute epoch).
func parseRegister(e *esl.Event) (*event, error) {
	aor, err := joinAOR(e.Get("from-user"), e.Get("from-host"))
	if err != nil {
		return nil, err
	}
	callID := e.Get("call-id")
	if callID == "" {
		return nil, errors.New("no call-id")
	}
	exp, err := strconv.ParseInt(e.Get("expires"), 10, 64)
	if err != nil || exp < 0 || exp > maxExpires {
		return nil, fmt.Errorf("expires %q", e.Get("expires"))
	}
	port, _ := strconv.Atoi(e.Get("network-port"))
	return &event{
		kind: evRegister, aor: aor, callID: callID, evidence: "sofia::register",
		expiresIn: time.Duration(exp) * time.Second,
		reg: Registration{
			CallID: callID, Contact: e.Get("contact"), NetworkIP: e.Get("network-ip"),
			NetworkPort: port, Profile: e.Get("profile-name"),
			UserAgent: e.Get("user-agent"), Reach: Reachable,
		},
	}, nil
}

// parseRemove reads sofia::unregister (from-user/from-host) and sofia::expire
// (user/host). The expire's expires (an absolute epoch: the forced or the original
// expiry) does not matter: the row is gone from FreeSWITCH either way.
func parseRemove(e *esl.Event, userHdr, hostHdr string) (*event, error) {
	aor, err := joinAOR(e.Get(userHdr), e.Get(hostHdr))
	if err != nil {
		return nil, err
	}
	ev := &event{kind: evRemove, aor: aor, callID: e.Get("call-id"), evidence: e.Subclass}
	if ev.callID == "" {
		// Cannot tell which registration went: treat them all as gone; a resync or
		// the next REGISTER restores the others.
		ev.kind = evGone
	}
	return ev, nil
}

// parseUserState reads FreeSWITCH's ping verdict. UNREACHABLE is death only when the
// OPTIONS got no final answer from the device: 408 (Timer F) or 503 (ICMP port
// unreachable, synthesised by sofia-sip). Any other final status (404, 405, 501 …)
// means the device answered, which FreeSWITCH counts as failure (it accepts only 200
// and 486) but sipsilo counts as life (docs/decisions.md §6).
func parseUserState(e *esl.Event) (*event, error) {
	aor, err := joinAOR(e.Get("from-user"), e.Get("from-host"))
	if err != nil {
		if aor, err = checkAOR(e.Get("sip_user")); err != nil {
			return nil, err
		}
	}
	ping := e.Get("Ping-Status")
	status := e.Get("Status")
	ev := &event{kind: evUserState, aor: aor, callID: e.Get("call-id"), ping: ping,
		evidence: strings.TrimSpace("sofia::sip_user_state " + ping + " " + status)}
	switch strings.ToUpper(ping) {
	case "REACHABLE":
		ev.reach = Reachable
	case "UNREACHABLE":
		code, _ := strconv.Atoi(status)
		if code < 200 || code == 408 || code == 503 {
			ev.reach = Unreachable
		} else {
			ev.reach = Reachable
		}
	default:
		return nil, nil
	}
	if ev.callID == "" {
		return nil, errors.New("no call-id")
	}
	return ev, nil
}

// parseUnregistered reads PRESENCE_IN with status Unregistered, which FreeSWITCH fires
// with each unregister and expire. It carries no Call-ID, so it clears the AOR.
func parseUnregistered(e *esl.Event) (*event, error) {
	if !strings.EqualFold(e.Get("status"), "Unregistered") {
		return nil, nil
	}
	if p := e.Get("proto"); p != "" && p != "sip" {
		return nil, nil
	}
	aor, err := checkAOR(e.Get("from"))
	if err != nil {
		return nil, err
	}
	return &event{kind: evGone, aor: aor, evidence: "PRESENCE_IN Unregistered"}, nil
}

// parseNoRecipient reads sofia::error "no recipient": FreeSWITCH found no registration
// for Chat-Send-To. It only clears an AOR the map holds: the AOR comes from whoever
// sent the message, and an unknown one has nothing to clear.
func parseNoRecipient(e *esl.Event) (*event, error) {
	if e.Get("Error-Reason") != "no recipient" {
		return nil, nil
	}
	aor, err := checkAOR(e.Get("Chat-Send-To"))
	if err != nil {
		return nil, err
	}
	return &event{kind: evGone, aor: aor, evidence: "sofia::error no recipient", knownOnly: true}, nil
}
