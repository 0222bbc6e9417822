package fsemu

import (
	"regexp"
	"strings"
)

// reMatch is a successful switch_regex_perform: count is PCRE2's return
// value (one more than the highest group that took part), groups/set the
// capture groups.
type reMatch struct {
	count  int
	groups []string
	set    []bool
}

// group is pcre2_substring_get_bynumber: only groups below count that took
// part in the match exist.
func (m *reMatch) group(n int) (string, bool) {
	if m == nil || n < 0 || n >= m.count || !m.set[n] {
		return "", false
	}
	return m.groups[n], true
}

// regexPerform reproduces switch_regex_perform (PCRE2 build): a leading '_'
// is a dialplan pattern (switch_ast2regex), "/re/flags" takes flags i and s.
// Go's RE2 stands in for PCRE2, so backreferences and lookaround fail to
// compile, which FreeSWITCH would have matched; a compile error is "no
// match" in both. RE2 matches UTF-8 runes where PCRE2 (no UTF flag) matches
// bytes, which only matters for '.' against non-ASCII text.
func regexPerform(field, expression string) *reMatch {
	if strings.HasPrefix(expression, "_") {
		if r, changed := ast2regex(expression[1:]); changed {
			expression = r
		}
	}
	if strings.HasPrefix(expression, "/") {
		body := expression[1:]
		i := strings.LastIndexByte(body, '/')
		if i < 0 {
			return nil // "missing ending '/' delimeter"
		}
		flags := ""
		if strings.Contains(body[i+1:], "i") {
			flags += "i"
		}
		if strings.Contains(body[i+1:], "s") {
			flags += "s"
		}
		expression = body[:i]
		if flags != "" {
			expression = "(?" + flags + ")" + expression
		}
	}
	re, err := regexp.Compile(expression)
	if err != nil {
		return nil
	}
	loc := re.FindStringSubmatchIndex(field)
	if loc == nil {
		return nil
	}
	m := &reMatch{groups: make([]string, len(loc)/2), set: make([]bool, len(loc)/2)}
	for g := range m.groups {
		if loc[2*g] >= 0 {
			m.groups[g], m.set[g], m.count = field[loc[2*g]:loc[2*g+1]], true, g+1
		}
	}
	return m
}

// ast2regex is switch_ast2regex: N, X, Z and '.' become classes, the rest
// is copied, and the result is anchored.
func ast2regex(pat string) (string, bool) {
	var b strings.Builder
	b.WriteByte('^')
	for i := 0; i < len(pat); i++ {
		switch pat[i] {
		case 'N':
			b.WriteString("[2-9]")
		case 'X':
			b.WriteString("[0-9]")
		case 'Z':
			b.WriteString("[1-9]")
		case '.':
			b.WriteString(".*")
		default:
			b.WriteByte(pat[i])
		}
	}
	b.WriteByte('$')
	return b.String(), b.String() != pat
}

// substitute reproduces switch_perform_substitution: $N and ${N} become
// capture N. It runs before ${...} expansion, so captured text (from a
// header or ${_body}) IS expanded afterwards, unlike a header value. Quirks
// kept: "$x" and "${x" copy the '$'; "${12x" drops "${"; the digit buffer
// is not reset on that path; output stops at limit-1 bytes.
func substitute(data string, m *reMatch, limit int) string {
	var out []byte
	var index []byte // the C's index[]/z, shared across substitutions
	x := 0
	for len(out) < limit-1 && x < len(data) {
		if data[x] != '$' {
			out = append(out, data[x])
			x++
			continue
		}
		x++
		brace := 0
		if x < len(data) && data[x] == '{' {
			brace = 1
			x++
		}
		if x >= len(data) || !isDigit(data[x]) {
			x -= brace
			out = append(out, data[x-1])
			continue
		}
		for x < len(data) && isDigit(data[x]) && len(index) < 9 {
			index = append(index, data[x])
			x++
		}
		if brace == 1 {
			if x >= len(data) || data[x] != '}' {
				x -= len(index) - 1
				if x < 1 {
					break // the C would read before the string
				}
				out = append(out, data[x-1])
				continue
			}
			x++
		}
		num := atoi(string(index))
		index = index[:0]
		if v, ok := m.group(num); ok {
			for i := 0; i < len(v) && len(out) < limit-1; i++ {
				out = append(out, v[i])
			}
		}
	}
	return string(out)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
