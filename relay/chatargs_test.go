package relay

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// splitChatArgs is FreeSWITCH's switch_separate_string(buf, '|', argv, 5) as the chat
// API calls it (src/switch_utils.c: separate_string_char_delim, then
// cleanup_separated_string on each field), ported to check the escaping against the
// parser it has to survive.
func splitChatArgs(buf string, max int) []string {
	var fields []string
	start, inQuotes := 0, false
	for i := 0; i < len(buf) && len(fields) < max-1; i++ {
		switch c := buf[i]; {
		case c == '\\':
			i++ // escaped characters are copied verbatim
		case c == '\'' && (inQuotes || strings.IndexByte(buf[i+1:], '\'') >= 0):
			inQuotes = !inQuotes
		case c == '|' && !inQuotes:
			fields = append(fields, buf[start:i])
			start = i + 1
		}
	}
	fields = append(fields, buf[start:])
	for i, f := range fields {
		fields[i] = cleanupField(f, '|')
	}
	return fields
}

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

func TestEscapeChatArgCapturedExample(t *testing.T) {
	// The body verified byte-exact on FreeSWITCH 1.10.12 (captures README).
	body := " lead | pipe 'sq' \"dq\" back\\slash\nnewline\ttab %41 ${x} ümlaut trail "
	want := `\slead \| pipe \'sq\' \"dq\" back\\slash\nnewline\ttab %41 ${x} ümlaut trail\s`
	if got := EscapeChatArg(body); got != want {
		t.Fatalf("escaped\n got %s\nwant %s", got, want)
	}
	got := splitChatArgs(ChatArgs("1000@127.0.0.1", "1001@127.0.0.1", []byte(body), "text/plain"), 5)
	if len(got) != 5 || got[0] != "sip" || got[1] != "1000@127.0.0.1" || got[2] != "1001@127.0.0.1" ||
		got[3] != body || got[4] != "text/plain" {
		t.Fatalf("split back: %q", got)
	}
}

// Any body survives FreeSWITCH's splitter unchanged (NUL aside: the command line is a
// C string).
func TestEscapeChatArgRoundTrip(t *testing.T) {
	alphabet := []byte(" \\|'\"\n\r\tabc$%{}^ü")
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", " ", "  ", "'", "''", "\\", "a\\", "^^x", "| |", " ' ", "x'y'z", "\\s", "\\'"}
	for range 20000 {
		n := rng.IntN(12)
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, body := range cases {
		got := splitChatArgs(ChatArgs("a@b", "c@d", []byte(body), "text/plain"), 5)
		if len(got) != 5 || got[3] != body || got[4] != "text/plain" {
			t.Fatalf("body %q came back as %q", body, got)
		}
	}
}
