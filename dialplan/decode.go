package dialplan

import "strings"

// Field is one name=value pair of an xml_curl form, in the order FreeSWITCH sent it.
type Field struct {
	Name, Value string
}

// splitForm splits an application/x-www-form-urlencoded string into decoded fields,
// keeping their order and duplicates. FreeSWITCH encodes with switch_url_encode, whose
// unsafe set includes '+', '&' and '=', so a literal '+' never stands for a space:
// unescape keeps it, and keeps any '%' not followed by two hex digits, rather than
// failing the whole request over one odd byte.
func splitForm(s string) []Field {
	var out []Field
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		out = append(out, Field{Name: unescape(name), Value: unescape(value)})
	}
	return out
}

// unescape decodes %XX sequences and leaves everything else as it is.
func unescape(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
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
