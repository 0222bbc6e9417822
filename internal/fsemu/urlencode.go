package fsemu

import "strings"

// urlUnsafe is SWITCH_URL_UNSAFE (src/include/switch_utils.h). Note what is
// missing: ' $ , / ! ( ) * ~ stay literal, which is why the recorded forms show
// Event-Date-GMT=Thu,%2026… and type=text/plain.
const urlUnsafe = "\r\n #%&+:;<=>?@[\\]^`{|}\""

// paramEncodeLen is the encode buffer switch_event_build_param_string starts
// with. It only grows with a header NAME's length (a bug in the C), so a
// value whose encoding needs more than 1023 bytes is cut short on the wire.
const paramEncodeLen = 1024

// URLEncode reproduces switch_url_encode (switch_url_encode_opt with
// double_encode=false) as the url_encode API (mod_commands) uses it: every
// byte below 0x20 or above 0x7E and every byte of SWITCH_URL_UNSAFE becomes
// %XX with uppercase hex, except that a '%' already followed by two
// UPPERCASE hex digits is copied as is. So "%41" survives (and later decodes
// to "A") while "%2a" becomes "%252a". Like the C string it works on, the
// input ends at the first NUL byte.
func URLEncode(s string) string {
	return urlEncodeBuf(s, 0)
}

// urlEncodeBuf is switch_url_encode(s, buf, bufLen): at most bufLen-1 bytes
// are written and an escape that does not fit whole ends the output. bufLen
// <= 0 means the buffer always fits (url_encode allocates strlen*3+1).
func urlEncodeBuf(s string, bufLen int) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	limit := len(s)*3 + 1
	if bufLen > 0 {
		limit = bufLen - 1
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if b.Len() >= limit {
			break
		}
		c := s[i]
		// The C tests e-p > 1 with e at the last byte: two bytes must follow.
		keep := c == '%' && i+2 < len(s) && isUpperHex(s[i+1]) && isUpperHex(s[i+2])
		if !keep && (c < ' ' || c > '~' || strings.IndexByte(urlUnsafe, c) >= 0) {
			if b.Len()+3 > limit {
				break
			}
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isUpperHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')
}

// ParamString reproduces switch_event_build_param_string(ev, prefix, NULL),
// the form mod_xml_curl posts: prefix, then "&Name=value" for every header
// in event order (names raw, values URL-encoded with the 1023-byte cut
// described at paramEncodeLen), with the trailing '&' removed. The body is
// never included.
func ParamString(ev *Event, prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('&')
	encLen := paramEncodeLen
	if ev != nil {
		for _, h := range ev.Headers {
			if n := len(h.Name)*3 + 1; n > encLen {
				encLen = n // grows with the name, never with the value
			}
			b.WriteString(h.Name)
			b.WriteByte('=')
			b.WriteString(urlEncodeBuf(h.Value, encLen))
			b.WriteByte('&')
		}
	}
	return strings.TrimSuffix(b.String(), "&")
}

// stripWhitespace is switch_strip_whitespace: CR, LF, TAB, space and VT are
// cut from both ends. switch_api_execute applies it to every API argument,
// which is why ${url_encode(${_body})} loses leading and trailing blanks.
func stripWhitespace(s string) string {
	return strings.Trim(s, "\r\n\t \v")
}
