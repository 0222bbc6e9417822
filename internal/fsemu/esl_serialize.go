package fsemu

import (
	"strconv"
	"strings"
)

// ESL event formats, as named in `event plain|json` and in the reply
// "+OK event listener enabled <format>".
const (
	FormatPlain = "plain"
	FormatJSON  = "json"
)

// cString cuts s at the first NUL: FreeSWITCH keeps header values and
// bodies as C strings, so nothing after a NUL ever reaches the wire.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// SerializePlain reproduces switch_event_serialize(ev, &buf, SWITCH_TRUE):
// "Name: value\n" per header in order, names raw and values through
// switch_url_encode (the same SWITCH_URL_UNSAFE set and %XX-keeping rule as
// URLEncode, with a buffer of 3*len+1 so nothing is cut), an empty encoded
// value written as "_undef_". Then either "\n" alone, or, with a body,
// "Content-Length: <len>\n\n<body>" with no newline after the body.
func SerializePlain(ev *Event) string {
	var b strings.Builder
	for _, h := range ev.Headers {
		v := URLEncode(h.Value)
		if v == "" {
			v = "_undef_"
		}
		b.WriteString(h.Name)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	if body := cString(ev.Body); body != "" {
		b.WriteString("Content-Length: ")
		b.WriteString(strconv.Itoa(len(body)))
		b.WriteString("\n\n")
		b.WriteString(body)
	} else {
		b.WriteByte('\n')
	}
	return b.String()
}

// SerializeJSON reproduces switch_event_serialize_json: one unformatted
// cJSON object with every header as a string member in event order (cJSON
// objects are lists, so duplicate names stay duplicate keys), then, when the
// event has a body, "Content-Length" (its length as a string) and "_body".
// A header named Content-Length is not merged with the added one: both
// appear, as in the captured SMS::DELIVERY_REPORT events.
func SerializeJSON(ev *Event) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	member := func(k, v string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		jsonString(&b, k)
		b.WriteByte(':')
		jsonString(&b, v)
	}
	for _, h := range ev.Headers {
		member(h.Name, h.Value)
	}
	// The C tests event->body for NULL, not for "": an empty body set with
	// switch_event_add_body is impossible here because Event has no "unset"
	// state, so "" means no body.
	if ev.Body != "" {
		body := cString(ev.Body)
		member("Content-Length", strconv.Itoa(len(body)))
		member("_body", body)
	}
	b.WriteByte('}')
	return b.String()
}

// jsonString is cJSON's print_string_ptr (cJSON 1.7, bundled in FreeSWITCH
// 1.10): only `"` and `\` and the control characters are escaped; \b \f \n
// \r \t get their short form and other bytes below 0x20 become \u00xx with
// lowercase hex. '/' and every byte >= 0x80 are copied raw, so UTF-8 (and
// invalid UTF-8) passes through unchanged, unlike encoding/json.
func jsonString(b *strings.Builder, s string) {
	s = cString(s)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				const hex = "0123456789abcdef"
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0x0f])
				continue
			}
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// EventFrame is the whole ESL frame mod_event_socket writes for one event
// (read_packet): "Content-Length: N\nContent-Type: text/event-<format>\n\n"
// followed by the N serialized bytes. Any format other than json is plain.
func EventFrame(format string, ev *Event) []byte {
	var body string
	if format == FormatJSON {
		body = SerializeJSON(ev)
	} else {
		format = FormatPlain
		body = SerializePlain(ev)
	}
	return []byte("Content-Length: " + strconv.Itoa(len(body)) + "\nContent-Type: text/event-" + format + "\n\n" + body)
}
