package dialplan

import (
	"bytes"
	"strings"
)

// Field is one name=value pair of an xml_curl form, in the order FreeSWITCH sent it.
type Field struct {
	Name, Value string
}

// splitForm splits an application/x-www-form-urlencoded body into decoded fields,
// keeping their order and duplicates. FreeSWITCH encodes with switch_url_encode, whose
// unsafe set includes '+', '&' and '=', so a literal '+' never stands for a space:
// the decoding keeps it, and keeps any '%' not followed by two hex digits, rather
// than failing the whole request over one odd byte. All names and values share one
// allocation, written once (decoding never lengthens): this runs for every message
// FreeSWITCH routes.
func splitForm(form []byte) []Field {
	var b strings.Builder
	b.Grow(len(form))
	type span struct{ n0, n1, v1 int }
	var stack [64]span // FreeSWITCH sends about 50 fields
	spans := stack[:0]
	for len(form) > 0 {
		var pair []byte
		pair, form, _ = bytes.Cut(form, []byte{'&'})
		if len(pair) == 0 {
			continue
		}
		name, value, _ := bytes.Cut(pair, []byte{'='})
		n0 := b.Len()
		writeUnescaped(&b, name)
		n1 := b.Len()
		writeUnescaped(&b, value)
		spans = append(spans, span{n0, n1, b.Len()})
	}
	all := b.String()
	out := make([]Field, len(spans))
	for i, sp := range spans {
		out[i] = Field{Name: all[sp.n0:sp.n1], Value: all[sp.n1:sp.v1]}
	}
	return out
}

// writeUnescaped writes s to b with %XX sequences decoded, a run at a time.
func writeUnescaped(b *strings.Builder, s []byte) {
	for {
		i := bytes.IndexByte(s, '%')
		if i < 0 {
			b.Write(s)
			return
		}
		b.Write(s[:i])
		if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			s = s[i+3:]
			continue
		}
		b.WriteByte('%')
		s = s[i+1:]
	}
}

// unescape decodes %XX sequences and leaves everything else as it is.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	return string(appendUnescaped(make([]byte, 0, len(s)), s))
}

func appendUnescaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, c)
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
