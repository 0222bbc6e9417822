package dialplan

import (
	"crypto/md5"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sipsilo/sipsilo/internal/fsemu"
)

// fsText is what FreeSWITCH puts in the shipped binding's URL for body: the
// text and md5 parameters (mod_commands url_encode and md5 of the wrapped body).
func fsText(body string) (text, sum string) {
	w := TextSentinel + body + TextSentinel
	h := md5.Sum([]byte(w))
	return fsemu.URLEncode(w), hex.EncodeToString(h[:])
}

// Bodies the old body parameter could not carry, and a few it could.
var hostileTexts = []string{
	"",
	"plain",
	"pct %41 %2F %4a 100% %%",
	"%41",
	"%20lead",
	"trail%0A",
	"  lead and trail  ",
	"\r\nCRLF edges\r\n",
	"\tTab\vVT\v",
	"   ",
	"ends with %4",
	"ends with %",
	"pipes a|b||c| tilde ~/p~ slash /",
	"dollar ${x} $${y} ${url_encode(z)}",
	"quotes it's 'sq' \"dq\" back\\slash \\n \\\\",
	"commas a,b,,c,",
	"utf8 ümlaut 日本語 🎉",
	"_sentinel_ inside_",
	"__",
}

func TestDecodeTextExact(t *testing.T) {
	for _, body := range hostileTexts {
		text, sum := fsText(body)
		got, exact := DecodeText(text, sum)
		if !exact || string(got) != body {
			t.Errorf("body %q (text %s): got %q exact=%v", body, text, got, exact)
		}
	}
}

// TestDecodeTextCapturedOnFreeSWITCH: parameters a real FreeSWITCH 1.10.12 sent
// for the binding text=${url_encode(_${_body}_)}&md5=${md5(_${_body}_)}.
func TestDecodeTextCapturedOnFreeSWITCH(t *testing.T) {
	for _, c := range []struct{ text, sum, body string }{
		{"_%20%20lead%20and%20trail%20%20_", "b43fa7cd793b7e11d35237524fb283f9", "  lead and trail  "},
		{"_%0D%0ACRLF%20edges%0D%0A_", "3514f9cc78089e35b2d31a2eb086ee00", "\r\nCRLF edges\r\n"},
		{"_%20lead_", "a6e1c01b145ad185de7d8b94487dabde", "%20lead"},
		{"_%41_", "80a27af7bd364934f47d0f9b6a735164", "%41"},
		{"_%20%20%20_", "eb4ebdb6ce99678e6b20f40c125d52dd", "   "},
	} {
		got, exact := DecodeText(c.text, c.sum)
		if !exact || string(got) != c.body {
			t.Errorf("%s: got %q exact=%v, want %q", c.text, got, exact, c.body)
		}
	}
	// Four literal escapes among fourteen ambiguous ones: more than the search
	// tries, so not called exact (the ESL copy decides), and never wrong.
	body := "pct %41 %20 %25 %2F %4a %C3%BC 100% %%"
	got, exact := DecodeText("_pct%20%41%20%20%20%25%20%2F%20%254a%20%C3%BC%20100%25%20%25%25_", "7603b33f94d6e89b9346c31f9ae19581")
	if exact && string(got) != body {
		t.Errorf("decoded %q and called it exact", got)
	}
}

// TestDecodeTextRandom: random bodies built from the characters that make
// url_encode ambiguous; each decodes exactly, or is reported not exact (never a
// wrong body reported exact).
func TestDecodeTextRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	atoms := []string{"%20", "%25", "%41", "%0A", "%C3", "%", " ", "\n", "ü", "a", "_", "%4", "\t", "|"}
	notExact := 0
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(atoms[rng.IntN(len(atoms))])
		}
		body := b.String()
		text, sum := fsText(body)
		got, exact := DecodeText(text, sum)
		if exact && string(got) != body {
			t.Fatalf("body %q: decoded %q and called it exact", body, got)
		}
		if !exact {
			notExact++
		}
	}
	// Most bodies settle; only those with more literal escapes than the search
	// tries, among many ambiguous ones, wait for the ESL copy.
	if notExact > 200 {
		t.Errorf("%d of 2000 random bodies not settled", notExact)
	}
	t.Logf("%d of 2000 random bodies not settled", notExact)
}

func TestDecodeTextNotExact(t *testing.T) {
	text, sum := fsText("x")
	for _, c := range []struct{ name, text, sum string }{
		{"no sentinels", "x", sum},
		{"wrong md5", text, strings.Repeat("0", 32)},
		{"md5 not hex", text, "!err!"},
		{"lower-case escape", "_%4a_", "00000000000000000000000000000000"},
		{"raw space", "_a b_", "00000000000000000000000000000000"},
	} {
		if _, exact := DecodeText(c.text, c.sum); exact {
			t.Errorf("%s: called exact", c.name)
		}
	}
}

func TestParseTextParameters(t *testing.T) {
	body := " %41 lead | trail\n"
	text, sum := fsText(body)
	l, err := Parse("text="+text+"&md5="+sum+"&body=ignored", []byte(capturedForm))
	if err != nil {
		t.Fatal(err)
	}
	if !l.HasBody || !l.BodyExact || string(l.Body) != body {
		t.Errorf("text/md5: body %q has=%v exact=%v", l.Body, l.HasBody, l.BodyExact)
	}
	// An older binding's body parameter: a lossy copy.
	l, err = Parse(capturedQuery, []byte(capturedForm))
	if err != nil {
		t.Fatal(err)
	}
	if !l.HasBody || l.BodyExact {
		t.Errorf("body=: has=%v exact=%v", l.HasBody, l.BodyExact)
	}
	// text without md5 is not trusted; body stands in.
	l, err = Parse("text="+text+"&body=x", []byte(capturedForm))
	if err != nil {
		t.Fatal(err)
	}
	if string(l.Body) != "x" || l.BodyExact {
		t.Errorf("text without md5: body %q exact=%v", l.Body, l.BodyExact)
	}
}

func BenchmarkDecodeText(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"plain-100B", strings.Repeat("hello üa ", 10)},
		{"literal-escapes-100B", strings.Repeat("100%20 ü ", 10)},
	} {
		text, sum := fsText(c.body)
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				DecodeText(text, sum)
			}
		})
	}
}
