// Package relay delivers stored messages through FreeSWITCH's chat API.
package relay

import "strings"

// ChatArgs builds the argument of FreeSWITCH's chat API, `sip|from|to|body|type`, with
// each field escaped so that FreeSWITCH's argument splitter (switch_separate_string
// on '|') gives it back byte for byte. Without the content type FreeSWITCH sends
// text/html.
func ChatArgs(from, to string, body []byte, contentType string) string {
	var b strings.Builder
	b.Grow(len(from) + len(to) + len(body) + len(contentType) + 16)
	b.WriteString("sip|")
	writeEscaped(&b, from)
	b.WriteByte('|')
	writeEscaped(&b, to)
	b.WriteByte('|')
	writeEscaped(&b, string(body))
	b.WriteByte('|')
	writeEscaped(&b, contentType)
	return b.String()
}

// EscapeChatArg escapes one field of the chat API's argument (docs/decisions.md
// §18, verified byte-exact up to 40 KB): backslash first, then the
// delimiter, quotes, the line breaks and tab the ESL command line cannot carry, and
// the leading and trailing spaces the splitter would strip.
func EscapeChatArg(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	writeEscaped(&b, s)
	return b.String()
}

func writeEscaped(b *strings.Builder, s string) {
	lead := len(s) - len(strings.TrimLeft(s, " "))
	trail := len(s) - len(strings.TrimRight(s, " "))
	if lead == len(s) {
		trail = 0 // all spaces: count them once
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '|':
			b.WriteString(`\|`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\'':
			b.WriteString(`\'`)
		case c == '"':
			b.WriteString(`\"`)
		case c == ' ' && (i < lead || i >= len(s)-trail):
			b.WriteString(`\s`)
		default:
			b.WriteByte(c)
		}
	}
}
