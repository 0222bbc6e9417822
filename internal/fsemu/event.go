package fsemu

import (
	"strconv"
	"strings"
	"time"
)

// Header is one event header. Order matters (it is the order on the wire)
// and Event allows duplicates.
type Header struct {
	Name, Value string
}

// Event is a FreeSWITCH event: ordered headers plus a body. For a SIP
// MESSAGE the body is the message text and no header carries it.
type Event struct {
	Headers []Header
	Body    string
}

// Value returns the first header named name, compared case-insensitively as
// switch_event_get_header does.
func (e *Event) Value(name string) (string, bool) {
	for _, h := range e.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// Get is Value without the presence flag.
func (e *Event) Get(name string) string {
	v, _ := e.Value(name)
	return v
}

// Set adds a header the way FreeSWITCH does on a MESSAGE event, whose
// headers are unique (EF_UNIQ_HEADERS): every header of that name is removed
// and the new one goes to the bottom, so `set` moves a header to the end (the
// recordings show dest_proto moving this way). An empty value only deletes.
// The name "_body" also replaces the body, as switch_event_base_add_header.
func (e *Event) Set(name, value string) {
	e.add(name, value, false)
}

// SetTop is Set with SWITCH_STACK_TOP: the header goes first.
func (e *Event) SetTop(name, value string) {
	e.add(name, value, true)
}

func (e *Event) add(name, value string, top bool) {
	if name == "_body" {
		e.Body = value
	}
	e.Del(name)
	if value == "" {
		return
	}
	if top {
		e.Headers = append([]Header{{name, value}}, e.Headers...)
		return
	}
	e.Headers = append(e.Headers, Header{name, value})
}

// Del removes every header named name (case-insensitive).
func (e *Event) Del(name string) {
	e.DelValue(name, "")
}

// DelValue is switch_event_del_header_val: it removes headers named name
// whose value is val, or all of them when val is empty.
func (e *Event) DelValue(name, val string) {
	kept := e.Headers[:0:0]
	for _, h := range e.Headers {
		if strings.EqualFold(h.Name, name) && (val == "" || h.Value == val) {
			continue
		}
		kept = append(kept, h)
	}
	e.Headers = kept
}

// Clone returns a deep copy (switch_event_dup).
func (e *Event) Clone() *Event {
	return &Event{Headers: append([]Header(nil), e.Headers...), Body: e.Body}
}

// MessageParams are the inputs of NewMessageEvent. Zero values take the
// values seen in the recordings (FreeSWITCH "vm" on 127.0.0.1, profile
// internal, UA 1000 sending to 1001 from port 25070).
type MessageParams struct {
	CoreUUID  string    // default 0e2f3ccc-1fbd-4726-9b43-d899a68a0b89
	Sequence  uint64    // Event-Sequence; 0 is sent as 0
	Timestamp time.Time // default time.Now(); Event-Date-Local uses its Location

	FromUser, FromHost string // default 1000, 127.0.0.1
	ToUser, ToHost     string // default 1001, 127.0.0.1
	FromSIPIP          string // packet source; default 127.0.0.1
	FromSIPPort        int    // default 25070
	FromTag            string // From tag; empty gives no ";tag="
	FromFull           string // whole From header; default <sip:user@host>;tag=FromTag

	Context     string // sofia profile context; default public
	Profile     string // default internal
	ContentType string // default text/plain
	Login       string // profile URL; default sip:mod_sofia@127.0.0.1:5060
	Hostname    string // FreeSWITCH-Hostname; default vm
	Switchname  string // default Hostname
	IPv4, IPv6  string // default 192.0.2.2, fd00::2

	// Extra headers (sip_h_X-*, sip_history_info, ...) go after sip_profile,
	// where sofia puts them.
	Extra []Header
	Body  string
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// NewMessageEvent builds the MESSAGE event of an inbound SIP MESSAGE as
// mod_sms hands it to the chatplan (and so as mod_xml_curl posts it): the
// headers sofia_presence_handle_sip_i_message adds, in its order, then
// dest_proto (switch_core_chat_send) and max_forwards=70 (mod_sms
// chat_send). The form's leading hostname/section/tag_name/key_name/key_value
// are not event headers; XMLCurl.BuildRequest adds them.
func NewMessageEvent(m MessageParams) *Event {
	host := or(m.Hostname, "vm")
	ts := m.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	fromUser, fromHost := or(m.FromUser, "1000"), or(m.FromHost, "127.0.0.1")
	toUser, toHost := or(m.ToUser, "1001"), or(m.ToHost, "127.0.0.1")
	port := m.FromSIPPort
	if port == 0 {
		port = 25070
	}
	full := m.FromFull
	if full == "" {
		full = "<sip:" + fromUser + "@" + fromHost + ">"
		if m.FromTag != "" {
			full += ";tag=" + m.FromTag
		}
	}
	h := []Header{
		{"Event-Name", "MESSAGE"},
		{"Core-UUID", or(m.CoreUUID, "0e2f3ccc-1fbd-4726-9b43-d899a68a0b89")},
		{"FreeSWITCH-Hostname", host},
		{"FreeSWITCH-Switchname", or(m.Switchname, host)},
		{"FreeSWITCH-IPv4", or(m.IPv4, "192.0.2.2")},
		{"FreeSWITCH-IPv6", or(m.IPv6, "fd00::2")},
		{"Event-Date-Local", ts.Format("2006-01-02 15:04:05")},
		{"Event-Date-GMT", ts.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")},
		{"Event-Date-Timestamp", strconv.FormatInt(ts.UnixMicro(), 10)},
		{"Event-Calling-File", "sofia_presence.c"},
		{"Event-Calling-Function", "sofia_presence_handle_sip_i_message"},
		{"Event-Calling-Line-Number", "4889"},
		{"Event-Sequence", strconv.FormatUint(m.Sequence, 10)},
		{"login", or(m.Login, "sip:mod_sofia@127.0.0.1:5060")},
		{"proto", "sip"},
		{"to_proto", "sip"},
		{"from", fromUser + "@" + fromHost},
		{"from_user", fromUser},
		{"from_host", fromHost},
		{"to_user", toUser},
		{"to_host", toHost},
		{"from_sip_ip", or(m.FromSIPIP, "127.0.0.1")},
		{"from_sip_port", strconv.Itoa(port)},
		{"to", toUser + "@" + toHost},
		{"subject", "SIMPLE MESSAGE"},
		{"context", or(m.Context, "public")},
		{"type", or(m.ContentType, "text/plain")},
		{"from_full", full},
		{"sip_profile", or(m.Profile, "internal")},
	}
	h = append(h, m.Extra...)
	h = append(h, Header{"dest_proto", "sip"}, Header{"max_forwards", "70"})
	return &Event{Headers: h, Body: m.Body}
}

// switchTrue is switch_true: yes/on/true/t/enabled/active/allow in any case,
// or a non-zero number.
func switchTrue(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "on", "true", "t", "enabled", "active", "allow":
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && n != 0
}
