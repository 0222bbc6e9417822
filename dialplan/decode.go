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
// failing the whole request over one odd byte. All names and values share one
// allocation: this runs for every message FreeSWITCH routes.
func splitForm(s string) []Field {
	out := make([]Field, 0, strings.Count(s, "&")+1)
	buf := make([]byte, 0, len(s))
	type span struct{ n0, n1, v1 int }
	spans := make([]span, 0, cap(out))
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		n0 := len(buf)
		buf = appendUnescaped(buf, name)
		n1 := len(buf)
		buf = appendUnescaped(buf, value)
		spans = append(spans, span{n0, n1, len(buf)})
	}
	all := string(buf)
	for _, sp := range spans {
		out = append(out, Field{Name: all[sp.n0:sp.n1], Value: all[sp.n1:sp.v1]})
	}
	return out
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
