package fsemu

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// eventNames is EVENT_NAMES of switch_event.c (1.10.x), the names `event`
// and `nixevent` accept. ALL must stay last, as in the C.
var eventNames = []string{
	"CUSTOM", "CLONE", "CHANNEL_CREATE", "CHANNEL_DESTROY", "CHANNEL_STATE",
	"CHANNEL_CALLSTATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP",
	"CHANNEL_HANGUP_COMPLETE", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE",
	"CHANNEL_HOLD", "CHANNEL_UNHOLD", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE",
	"CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_OUTGOING",
	"CHANNEL_PARK", "CHANNEL_UNPARK", "CHANNEL_APPLICATION",
	"CHANNEL_ORIGINATE", "CHANNEL_UUID", "API", "LOG", "INBOUND_CHAN",
	"OUTBOUND_CHAN", "STARTUP", "SHUTDOWN", "PUBLISH", "UNPUBLISH", "TALK",
	"NOTALK", "SESSION_CRASH", "MODULE_LOAD", "MODULE_UNLOAD", "DTMF",
	"MESSAGE", "PRESENCE_IN", "NOTIFY_IN", "PRESENCE_OUT", "PRESENCE_PROBE",
	"MESSAGE_WAITING", "MESSAGE_QUERY", "ROSTER", "CODEC", "BACKGROUND_JOB",
	"DETECTED_SPEECH", "DETECTED_TONE", "PRIVATE_COMMAND", "HEARTBEAT",
	"TRAP", "ADD_SCHEDULE", "DEL_SCHEDULE", "EXE_SCHEDULE", "RE_SCHEDULE",
	"RELOADXML", "NOTIFY", "PHONE_FEATURE", "PHONE_FEATURE_SUBSCRIBE",
	"SEND_MESSAGE", "RECV_MESSAGE", "REQUEST_PARAMS", "CHANNEL_DATA",
	"GENERAL", "COMMAND", "SESSION_HEARTBEAT", "CLIENT_DISCONNECTED",
	"SERVER_DISCONNECTED", "SEND_INFO", "RECV_INFO", "RECV_RTCP_MESSAGE",
	"SEND_RTCP_MESSAGE", "CALL_SECURE", "NAT", "RECORD_START", "RECORD_STOP",
	"PLAYBACK_START", "PLAYBACK_STOP", "CALL_UPDATE", "FAILURE",
	"SOCKET_DATA", "MEDIA_BUG_START", "MEDIA_BUG_STOP",
	"CONFERENCE_DATA_QUERY", "CONFERENCE_DATA", "CALL_SETUP_REQ",
	"CALL_SETUP_RESULT", "CALL_DETAIL", "DEVICE_STATE", "TEXT",
	"SHUTDOWN_REQUESTED", "ALL",
}

// nameEvent is switch_name_event: a case-insensitive match against
// EVENT_NAMES, where a name longer than 13 bytes also matches on its tail
// after byte 13. That is meant for "SWITCH_EVENT_" but takes any 13-byte
// prefix, a quirk kept here.
func nameEvent(name string) (string, bool) {
	for _, n := range eventNames {
		if (len(name) > 13 && strings.EqualFold(name[13:], n)) || strings.EqualFold(name, n) {
			return n, true
		}
	}
	return "", false
}

// callingInfo is Event-Calling-File/Function/Line-Number as the recordings
// show them for each kind of event, keyed by Event-Name or by
// "CUSTOM "+Event-Subclass.
var callingInfo = map[string][3]string{
	"BACKGROUND_JOB":               {"mod_event_socket.c", "api_exec", "1572"},
	"HEARTBEAT":                    {"switch_core.c", "send_heartbeat", "95"},
	"MESSAGE":                      {"sofia_presence.c", "sofia_presence_handle_sip_i_message", "4889"},
	"PRESENCE_IN":                  {"sofia_reg.c", "sofia_reg_handle_register_token", "2103"},
	"SEND_MESSAGE":                 {"mod_event_socket.c", "parse_command", "2275"},
	"CUSTOM sofia::pre_register":   {"sofia_reg.c", "sofia_reg_handle_register_token", "1810"},
	"CUSTOM sofia::register":       {"sofia_reg.c", "sofia_reg_handle_register_token", "2059"},
	"CUSTOM sofia::unregister":     {"sofia_reg.c", "sofia_reg_handle_register_token", "2213"},
	"CUSTOM sofia::expire":         {"sofia_reg.c", "sofia_reg_del_callback", "726"},
	"CUSTOM sofia::sip_user_state": {"sofia_reg.c", "sofia_reg_fire_custom_sip_user_state_event", "179"},
	"CUSTOM sofia::error":          {"sofia_presence.c", "sofia_presence_chat_send", "276"},
	"CUSTOM SMS::DELIVERY_REPORT":  {"mod_sms.c", "send_report", "48"},
	"CUSTOM SMS::SEND_MESSAGE":     {"mod_event_socket.c", "parse_command", "2275"},
	// Anything else: an obviously made-up origin.
	"": {"fsemu.c", "fsemu_fire", "1"},
}

// stdHeaders are the headers switch_event_prep_for_delivery_detailed adds,
// in its order, when an event is created (after Event-Subclass, which
// switch_event_create_subclass adds first).
var stdHeaders = []string{
	"Event-Name", "Core-UUID", "FreeSWITCH-Hostname", "FreeSWITCH-Switchname",
	"FreeSWITCH-IPv4", "FreeSWITCH-IPv6", "Event-Date-Local", "Event-Date-GMT",
	"Event-Date-Timestamp", "Event-Calling-File", "Event-Calling-Function",
	"Event-Calling-Line-Number", "Event-Sequence",
}

// identity is what the standard headers say about the switch.
type identity struct {
	coreUUID, hostname, switchname, ipv4, ipv6 string
}

// prepare returns ev as FreeSWITCH would have created it: an event that
// already has Event-Sequence counts as created (built by NewMessageEvent or
// replayed from a capture) and is returned unchanged; otherwise the result is
// Event-Subclass (if any), the standard headers in order (values the event
// already has win, the rest are generated; seq is called only when
// Event-Sequence has to be generated), then the event's other headers.
func prepare(ev *Event, id identity, now time.Time, seq func() uint64) (*Event, error) {
	if _, ok := ev.Value("Event-Sequence"); ok {
		return ev.Clone(), nil
	}
	name, ok := ev.Value("Event-Name")
	if !ok || name == "" {
		return nil, fmt.Errorf("fsemu: event without Event-Name")
	}
	sub, hasSub := ev.Value("Event-Subclass")
	key := name
	if hasSub {
		key = "CUSTOM " + sub
	}
	ci, ok := callingInfo[key]
	if !ok {
		ci = callingInfo[""]
	}
	gen := stdValues(name, id, now, ci)
	out := &Event{Body: ev.Body}
	if hasSub {
		out.Headers = append(out.Headers, Header{"Event-Subclass", sub})
	}
	for _, n := range stdHeaders {
		v, have := ev.Value(n)
		if !have {
			if n == "Event-Sequence" {
				v = strconv.FormatUint(seq(), 10)
			} else {
				v = gen[n]
			}
		}
		out.Headers = append(out.Headers, Header{n, v})
	}
	taken := func(n string) bool {
		if strings.EqualFold(n, "Event-Subclass") {
			return true
		}
		for _, s := range stdHeaders {
			if strings.EqualFold(n, s) {
				return true
			}
		}
		return false
	}
	for _, h := range ev.Headers {
		if !taken(h.Name) {
			out.Headers = append(out.Headers, h)
		}
	}
	return out, nil
}

// stdValues are the generated standard header values except
// Event-Sequence.
func stdValues(name string, id identity, now time.Time, ci [3]string) map[string]string {
	return map[string]string{
		"Event-Name":                name,
		"Core-UUID":                 id.coreUUID,
		"FreeSWITCH-Hostname":       id.hostname,
		"FreeSWITCH-Switchname":     id.switchname,
		"FreeSWITCH-IPv4":           id.ipv4,
		"FreeSWITCH-IPv6":           id.ipv6,
		"Event-Date-Local":          now.Format("2006-01-02 15:04:05"),
		"Event-Date-GMT":            now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT"),
		"Event-Date-Timestamp":      strconv.FormatInt(now.UnixMicro(), 10),
		"Event-Calling-File":        ci[0],
		"Event-Calling-Function":    ci[1],
		"Event-Calling-Line-Number": ci[2],
	}
}

// appendStd appends the standard headers at the bottom, as
// switch_event_prep_for_delivery does for `sendevent`.
func appendStd(ev *Event, name string, id identity, now time.Time, seq uint64, ci [3]string) {
	gen := stdValues(name, id, now, ci)
	gen["Event-Sequence"] = strconv.FormatUint(seq, 10)
	for _, n := range stdHeaders {
		ev.Headers = append(ev.Headers, Header{n, gen[n]})
	}
}

// plural is the "%u year%s" idiom of send_heartbeat.
func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.FormatInt(n, 10) + " " + unit + "s"
}

// heartbeatEvent builds the HEARTBEAT body headers of switch_core.c
// send_heartbeat for an uptime; the session figures are those of an idle
// switch (as captured) and Idle-CPU is the captured value, since nothing
// here measures CPU.
func heartbeatEvent(up time.Duration) *Event {
	us := up.Microseconds()
	days := us / (86400 * 1e6)
	upTime := strings.Join([]string{
		plural(days/365, "year"), plural(days%365, "day"),
		plural(us/(3600*1e6)%24, "hour"), plural(us/(60*1e6)%60, "minute"),
		plural(us/1e6%60, "second"), plural(us/1000%1000, "millisecond"),
		plural(us%1000, "microsecond"),
	}, ", ")
	return &Event{Headers: []Header{
		{"Event-Name", "HEARTBEAT"},
		{"Event-Info", "System Ready"},
		{"Up-Time", upTime},
		{"FreeSWITCH-Version", "1.10.12-release~64bit"},
		{"Uptime-msec", strconv.FormatInt(up.Milliseconds(), 10)},
		{"Session-Count", "0"},
		{"Max-Sessions", "100"},
		{"Session-Per-Sec", "30"},
		{"Session-Per-Sec-Last", "0"},
		{"Session-Per-Sec-Max", "0"},
		{"Session-Per-Sec-FiveMin", "0"},
		{"Session-Since-Startup", "0"},
		{"Session-Peak-Max", "0"},
		{"Session-Peak-FiveMin", "0"},
		{"Idle-CPU", "99.066667"},
	}}
}
