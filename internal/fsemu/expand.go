package fsemu

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
)

// apis are the FreeSWITCH APIs the emulator can run inside ${name(arg)}.
// Any other name fails, which FreeSWITCH expands to nothing.
var apis = map[string]func(arg string) string{
	"url_encode": URLEncode, // mod_commands url_encode_function
	"md5":        md5API,    // mod_commands md5_function
}

// md5API is mod_commands' md5: lower-case hex of the argument's MD5, "!err!"
// for an empty one.
func md5API(arg string) string {
	if arg == "" {
		return "!err!"
	}
	sum := md5.Sum([]byte(arg))
	return hex.EncodeToString(sum[:])
}

// Expand reproduces switch_event_expand_headers(ev, in) with no global
// variables: ${name} is the event header (case-insensitive; "_body" is the
// body), ${name(arg)} or ${name arg} runs an API from apis on the expanded,
// whitespace-stripped arg. A substituted value is never expanded again, so
// a body holding "${danger}" stays literal. \$ gives a literal '$', \' is
// dropped and \\ gives one backslash; anything else is copied.
func Expand(ev *Event, in string) string {
	return expand(ev, in, 0)
}

// expand follows switch_event_expand_headers_check byte for byte, including
// its pointer juggling: after a variable the next byte is copied without
// escape handling unless it is '$'.
func expand(ev *Event, in string, recur int) string {
	if recur > 100 || in == "" || (!varCheck(in) && !hasEscapedData(in)) {
		return in
	}
	b := []byte(in) // the C's indup, NULs written into it end names
	at := func(i int) byte {
		if i < len(b) {
			return b[i]
		}
		return 0
	}
	var out strings.Builder
	nv := false
	for p := 0; p < len(b) && b[p] != 0; p++ {
		global, vtype := false, 0
		if b[p] == '\\' {
			switch at(p + 1) {
			case '$':
				nv = true
				p++
				if at(p+1) == '$' {
					p++
				}
			case '\'':
				p++
				continue
			case '\\':
				out.WriteByte('\\')
				p++
				continue
			}
		}
		if b[p] == '$' && !nv {
			if at(p+1) == '$' {
				p++
				global = true
			}
			if at(p+1) == '{' {
				vtype = 1
				if global {
					vtype = 3
				}
			} else {
				nv = true
			}
		}
		if nv {
			out.WriteByte(b[p])
			nv = false
			continue
		}
		if vtype == 0 {
			out.WriteByte(b[p])
			continue
		}
		s := p + 2 // past "${"
		br := 1
		e := s
		for ; e < len(b) && b[e] != 0; e++ {
			if br == 1 && b[e] == '}' {
				br = 0
				b[e] = 0
				e++
				break
			}
			if br > 0 {
				if e != s && b[e] == '{' {
					br++
				} else if br > 1 && b[e] == '}' {
					br--
				}
			}
		}
		p = e
		name, arg, isAPI := splitVar(b, s, br)
		if isAPI {
			out.WriteString(runAPI(expand(ev, name, recur+1), expand(ev, arg, recur+1)))
		} else if vtype == 1 {
			out.WriteString(lookupVar(ev, expand(ev, name, recur+1)))
		} // vtype 3 ($${global}): the emulator has no globals.
		if at(p) == '$' {
			p-- // let the loop see the next variable
		} else if at(p) != 0 {
			out.WriteByte(b[p])
		}
	}
	return out.String()
}

// splitVar cuts the name at the first ' ' or '(' into an API name and its
// argument, as the C does (trailing spaces of the name dropped, the argument
// ended at the ')' that closes the first '(').
func splitVar(b []byte, s, br int) (name, arg string, isAPI bool) {
	end := s
	for end < len(b) && b[end] != 0 {
		end++
	}
	v := b[s:end]
	i := 0
	for ; i < len(v) && v[i] != ' ' && v[i] != '('; i++ {
	}
	if i == len(v) {
		return string(v), "", false
	}
	if v[i] == '(' {
		br = 1
	}
	name = strings.TrimRight(string(v[:i]), " ")
	rest := v[i+1:]
	for j := 0; j < len(rest); j++ {
		switch {
		case rest[j] == '(':
			br++
		case br > 1 && rest[j] == ')':
			br--
		case br == 1 && rest[j] == ')':
			return name, string(rest[:j]), true
		}
	}
	return name, string(rest), true
}

// runAPI is switch_api_execute: both strings are whitespace-stripped, and a
// failing (here: unknown) API expands to nothing.
func runAPI(name, arg string) string {
	if f, ok := apis[stripWhitespace(name)]; ok {
		return f(stripWhitespace(arg))
	}
	return ""
}

// lookupVar resolves ${name[:offset[:length]]} or ${name[idx]} against the
// event (switch_event_get_header_idx); unknown names give "".
func lookupVar(ev *Event, name string) string {
	offset, length := 0, 0
	if i := strings.IndexByte(name, ':'); i >= 0 {
		rest := name[i+1:]
		name = name[:i]
		offset = atoi(rest)
		if j := strings.IndexByte(rest, ':'); j >= 0 {
			length = atoi(rest[j+1:])
		}
	}
	idx := -1
	if i := strings.IndexByte(name, '['); i >= 0 && strings.IndexByte(name[i:], ']') >= 0 {
		idx = atoi(name[i+1:])
		name = name[:i]
	}
	val, ok := ev.Value(name)
	if ok && idx > -1 {
		return "" // an index into a plain (non-array) header finds nothing
	}
	if !ok {
		if name != "_body" {
			return ""
		}
		val = ev.Body
	}
	if offset >= 0 {
		val = val[min(offset, len(val)):]
	} else if -offset <= len(val) {
		val = val[len(val)+offset:]
	}
	if length > 0 && length < len(val) {
		val = val[:length]
	}
	return val
}

// varCheck is switch_string_var_check_const: a '$' followed, after any
// backslashes, by '{'.
func varCheck(s string) bool {
	dol := false
	for i := 0; i < len(s) && s[i] != 0; i++ {
		switch {
		case s[i] == '$':
			dol = true
		case dol && s[i] == '{':
			return true
		case s[i] != '\\':
			dol = false
		}
	}
	return false
}

// hasEscapedData is switch_string_has_escaped_data.
func hasEscapedData(s string) bool {
	for i := strings.IndexByte(s, '\\'); i >= 0 && i+1 < len(s); {
		if strings.IndexByte(`\nst'`, s[i+1]) >= 0 {
			return true
		}
		j := strings.IndexByte(s[i+1:], '\\')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// atoi is C's atoi: optional blanks and sign, then digits; junk gives 0.
func atoi(s string) int {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9' && n < 1<<30; i++ {
		n = n*10 + int(s[i]-'0')
	}
	if neg {
		return -n
	}
	return n
}
