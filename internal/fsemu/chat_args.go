package fsemu

import "strings"

// SeparateString is switch_separate_string(buf, delim, argv, max) as the
// chat API calls it (switch_utils.c separate_string_char_delim, then
// cleanup_separated_string on each field): a backslash protects the next
// byte, single quotes group when a closing quote follows, fields lose
// leading blanks and unquoted trailing blanks, and \n \r \t \s \' \" \\ and
// \<delim> are unescaped. relay's tests check sipsilo's escaping against it.
func SeparateString(buf string, delim byte, max int) []string {
	var fields []string
	start, inQuotes := 0, false
	for i := 0; i < len(buf) && len(fields) < max-1; i++ {
		switch c := buf[i]; {
		case c == '\\':
			i++ // escaped characters are copied verbatim
		case c == '\'' && (inQuotes || strings.IndexByte(buf[i+1:], '\'') >= 0):
			inQuotes = !inQuotes
		case c == delim && !inQuotes:
			fields = append(fields, buf[start:i])
			start = i + 1
		}
	}
	fields = append(fields, buf[start:])
	for i, f := range fields {
		fields[i] = cleanupField(f, delim)
	}
	return fields
}

// cleanupField is cleanup_separated_string.
func cleanupField(s string, delim byte) string {
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	var dest []byte
	end, inQuotes := 0, false
	for ; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			e := s[i+1]
			u := map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', 's': ' '}[e]
			if e == '\'' || e == '"' || e == delim || e == '\\' || u != 0 {
				if u != 0 {
					e = u
				}
				i++
				dest = append(dest, e)
				end = len(dest)
				continue
			}
		}
		if s[i] == '\'' && (inQuotes || strings.IndexByte(s[i+1:], '\'') >= 0) {
			if inQuotes = !inQuotes; inQuotes {
				end = len(dest)
			}
			continue
		}
		dest = append(dest, s[i])
		if s[i] != ' ' || inQuotes {
			end = len(dest)
		}
	}
	return string(dest[:end])
}
