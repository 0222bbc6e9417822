package relay

import (
	"math/rand/v2"
	"testing"

	"github.com/sipsilo/sipsilo/internal/fsemu"
)

// splitChatArgs is FreeSWITCH's switch_separate_string(buf, '|', argv, max) as the
// chat API calls it, from the emulator: the parser the escaping has to survive.
func splitChatArgs(buf string, max int) []string { return fsemu.SeparateString(buf, '|', max) }

func TestEscapeChatArgCapturedExample(t *testing.T) {
	// The body verified byte-exact on FreeSWITCH 1.10.12 (docs/decisions.md §18).
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
