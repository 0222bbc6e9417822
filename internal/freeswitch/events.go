package freeswitch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/presence"
)

// maxExpiresSecs bounds a REGISTER's expires delta (FreeSWITCH caps far lower); it
// keeps the arithmetic away from overflow on garbage.
const maxExpiresSecs = 10 * 365 * 24 * 3600

// PresenceEvent translates one FreeSWITCH event into what it says about an AOR's
// registrations (docs/architecture.md, "Reachability"). ok is false for an event
// that says nothing about reachability; err is set for a relevant event that cannot
// be read.
//
// # Which header names the AOR
//
// The AOR is always sofia's own key for the registration, sip_user@sip_host of its
// sip_registrations table; each event spells it differently:
//
//   - sofia::register, sofia::unregister: from-user@from-host. Despite the name these
//     are the registered identity (sofia_reg.c fills from-user with the To user and
//     from-host with the registration domain, and to-user with the From user), so a
//     third-party REGISTER still lands on the right AOR. In the recorded scenarios (01,
//     07, 08, 10, 11; testdata/esl) both pairs are equal.
//   - sofia::expire: user@host (it has no from-user; sofia_reg_del_callback copies
//     sip_user and sip_host from the table row). Scenarios 08–11.
//   - sofia::sip_user_state: from-user@from-host, falling back to sip_user, which is the
//     same text (scenarios 09–11).
//   - PRESENCE_IN with status Unregistered: from (scenarios 07–11). It carries no
//     Call-ID and, with multiple-registrations on, fires for each ended row while
//     others remain, so it becomes presence.Unregistered, which never ends several
//     devices.
//   - sofia::error with Error-Reason "no recipient": Chat-Send-To (scenarios 03, 07).
//
// sofia::pre_register is ignored: it also fires when a MESSAGE is authenticated, with
// from-user set to the recipient (docs/decisions.md §22). +sip.instance is not
// visible over ESL, so devices are keyed by contact (docs/decisions.md §28).
func PresenceEvent(e *esl.Event) (ev presence.Event, ok bool, err error) {
	if e == nil {
		return ev, false, nil
	}
	switch {
	case e.Name == "CUSTOM" && e.Subclass == "sofia::register":
		ev, ok, err = parseRegister(e)
	case e.Name == "CUSTOM" && e.Subclass == "sofia::unregister":
		ev, ok, err = parseRemove(e, "from-user", "from-host")
	case e.Name == "CUSTOM" && e.Subclass == "sofia::expire":
		ev, ok, err = parseRemove(e, "user", "host")
	case e.Name == "CUSTOM" && e.Subclass == "sofia::sip_user_state":
		ev, ok, err = parseUserState(e)
	case e.Name == "CUSTOM" && e.Subclass == "sofia::error":
		ev, ok, err = parseNoRecipient(e)
	case e.Name == "PRESENCE_IN":
		ev, ok, err = parseUnregistered(e)
	}
	if err != nil {
		return presence.Event{}, false, fmt.Errorf("freeswitch: %s %s seq %d: %w", e.Name, e.Subclass, e.Sequence, err)
	}
	if !ok {
		return presence.Event{}, false, nil
	}
	if e.CoreUUID == "" || e.Sequence == 0 {
		// FreeSWITCH always sends both; an event that cannot be ordered cannot be
		// applied safely.
		return presence.Event{}, false, fmt.Errorf("freeswitch: %s %s for %q without Core-UUID or Event-Sequence",
			e.Name, e.Subclass, ev.AOR)
	}
	ev.Stream, ev.Seq = e.CoreUUID, e.Sequence
	ev.At = eventTime(e)
	return ev, true, nil
}

// eventTime is FreeSWITCH's Event-Date-Timestamp (microseconds since the epoch),
// zero when missing (presence then takes its own clock).
func eventTime(e *esl.Event) time.Time {
	us, err := strconv.ParseInt(e.Get("Event-Date-Timestamp"), 10, 64)
	if err != nil || us <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

func joinAOR(user, host string) (string, error) {
	if user == "" || host == "" {
		return "", fmt.Errorf("no AOR (user %q, host %q)", user, host)
	}
	return user + "@" + host, nil
}

// parseRegister reads sofia::register; its expires is a delta in seconds from the
// event (sofia::expire's is an absolute epoch).
func parseRegister(e *esl.Event) (presence.Event, bool, error) {
	aor, err := joinAOR(e.Get("from-user"), e.Get("from-host"))
	if err != nil {
		return presence.Event{}, false, err
	}
	callID := e.Get("call-id")
	if callID == "" {
		return presence.Event{}, false, errors.New("no call-id")
	}
	exp, err := strconv.ParseInt(e.Get("expires"), 10, 64)
	if err != nil || exp < 0 || exp > maxExpiresSecs {
		return presence.Event{}, false, fmt.Errorf("expires %q", e.Get("expires"))
	}
	port, _ := strconv.Atoi(e.Get("network-port"))
	return presence.Event{
		Kind: presence.Registered, AOR: aor, CallID: callID, Source: "sofia::register",
		ExpiresIn: time.Duration(exp) * time.Second,
		Contact:   e.Get("contact"), NetworkIP: e.Get("network-ip"), NetworkPort: port,
		Profile: e.Get("profile-name"), UserAgent: e.Get("user-agent"),
	}, true, nil
}

// parseRemove reads sofia::unregister (from-user/from-host) and sofia::expire
// (user/host). The expire's expires (an absolute epoch: the forced or the original
// expiry) does not matter: the row is gone from FreeSWITCH either way.
func parseRemove(e *esl.Event, userHdr, hostHdr string) (presence.Event, bool, error) {
	aor, err := joinAOR(e.Get(userHdr), e.Get(hostHdr))
	if err != nil {
		return presence.Event{}, false, err
	}
	ev := presence.Event{Kind: presence.Removed, AOR: aor, CallID: e.Get("call-id"),
		Contact: e.Get("contact"), Source: e.Subclass}
	if ev.CallID == "" {
		// Cannot tell which registration went: treat them all as gone; a resync or
		// the next REGISTER restores the others.
		ev.Kind = presence.Gone
	}
	return ev, true, nil
}

// parseUserState reads FreeSWITCH's ping verdict. UNREACHABLE is death only when the
// OPTIONS got no final answer from the device: 408 (Timer F) or 503 (ICMP port
// unreachable, synthesised by sofia-sip). Any other final status (404, 405, 501 …)
// means the device answered, which FreeSWITCH counts as failure (it accepts only 200
// and 486) but sipsilo counts as life (docs/decisions.md §6).
func parseUserState(e *esl.Event) (presence.Event, bool, error) {
	aor, err := joinAOR(e.Get("from-user"), e.Get("from-host"))
	if err != nil {
		if aor = e.Get("sip_user"); aor == "" {
			return presence.Event{}, false, err
		}
	}
	ping := e.Get("Ping-Status")
	ev := presence.Event{Kind: presence.ReachChanged, AOR: aor, CallID: e.Get("call-id"),
		Contact: e.Get("contact"), Source: "sofia::sip_user_state",
		Status: strings.TrimSpace(ping + " " + e.Get("Status"))}
	switch strings.ToUpper(ping) {
	case "REACHABLE":
		ev.Reach = presence.Reachable
	case "UNREACHABLE":
		code, _ := strconv.Atoi(e.Get("Status"))
		if code < 200 || code == 408 || code == 503 {
			ev.Reach = presence.Unreachable
		} else {
			ev.Reach = presence.Reachable
		}
	default:
		return presence.Event{}, false, nil
	}
	if ev.CallID == "" {
		return presence.Event{}, false, errors.New("no call-id")
	}
	return ev, true, nil
}

// parseUnregistered reads PRESENCE_IN with status Unregistered, which FreeSWITCH
// fires with each unregister and expire.
func parseUnregistered(e *esl.Event) (presence.Event, bool, error) {
	if !strings.EqualFold(e.Get("status"), "Unregistered") {
		return presence.Event{}, false, nil
	}
	if p := e.Get("proto"); p != "" && p != "sip" {
		return presence.Event{}, false, nil
	}
	aor := e.Get("from")
	if aor == "" {
		return presence.Event{}, false, errors.New("no AOR")
	}
	return presence.Event{Kind: presence.Unregistered, AOR: aor, Source: "PRESENCE_IN Unregistered"}, true, nil
}

// parseNoRecipient reads sofia::error "no recipient": FreeSWITCH found no
// registration for Chat-Send-To. It only clears an AOR the map holds: the AOR comes
// from whoever sent the message, and an unknown one has nothing to clear.
func parseNoRecipient(e *esl.Event) (presence.Event, bool, error) {
	if e.Get("Error-Reason") != "no recipient" {
		return presence.Event{}, false, nil
	}
	aor := e.Get("Chat-Send-To")
	if aor == "" {
		return presence.Event{}, false, errors.New("no AOR")
	}
	return presence.Event{Kind: presence.Gone, AOR: aor, Source: "sofia::error no recipient", KnownOnly: true}, true, nil
}
