package fsemu

import (
	"strings"
	"testing"
)

func TestURLEncode(t *testing.T) {
	cases := []struct{ in, want string }{
		// Values as captured in the xml_curl form.
		{"Thu, 26 Nov 2026 03:46:51 GMT", "Thu,%2026%20Nov%202026%2003%3A46%3A51%20GMT"},
		{"text/plain", "text/plain"},
		{"fd00::2", "fd00%3A%3A2"},
		{"sip:mod_sofia@127.0.0.1:5060", "sip%3Amod_sofia%40127.0.0.1%3A5060"},
		{"<sip:1000@127.0.0.1>;tag=2gbkld69", "%3Csip%3A1000%40127.0.0.1%3E%3Btag%3D2gbkld69"},
		{"SIMPLE MESSAGE", "SIMPLE%20MESSAGE"},
		// The dynamic-URL capture: ' and $ stay, UTF-8 and LF are escaped
		// in uppercase, %41 passes through, a lone % becomes %25.
		{dynamicBody, "hello%20%26%20world%20%3D%20100%25%20%3Cok%3E%20%22q%22%20'a'%20%7C%20x%C3%BCmlaut%0Aline2%20%41%20$%7Bdanger%7D"},
		// The rest of SWITCH_URL_UNSAFE, and what is not in it.
		{"\r\n #%&+:;<=>?@[\\]^`{|}\"", "%0D%0A%20%23%25%26%2B%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D%22"},
		{"a/b,c$d!e'f(g)h*i~j-k_l.m", "a/b,c$d!e'f(g)h*i~j-k_l.m"},
		{"\t\x7f\x01é", "%09%7F%01%C3%A9"},
		// Existing escapes: two UPPERCASE hex digits must follow.
		{"50%20off", "50%20off"},
		{"%2a", "%252a"},
		{"abc%2", "abc%252"},
		{"%4G", "%254G"},
		{"%", "%25"},
		{"%AF%", "%AF%25"},
		{"", ""},
		{"cut\x00here", "cut"},
	}
	for _, c := range cases {
		if got := URLEncode(c.in); got != c.want {
			t.Errorf("URLEncode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestURLEncodeAgainstCapturedForms checks every captured field: the raw
// value on the wire is URLEncode of its decoded value.
func TestURLEncodeAgainstCapturedForms(t *testing.T) {
	n := 0
	for _, fx := range loadFixtures(t) {
		for i, kv := range strings.Split(fx.body, "&") {
			if i < 5 {
				continue // mod_xml_curl's own prefix, written raw
			}
			_, raw, _ := strings.Cut(kv, "=")
			dec := decodeForm(t, kv)[0].Value
			if got := URLEncode(dec); got != raw {
				t.Errorf("%s: URLEncode(%q) = %q, captured %q", fx.name, dec, got, raw)
			}
			n++
		}
	}
	if n < 300 {
		t.Errorf("only %d captured values checked", n)
	}
}

// TestParamString covers switch_event_build_param_string beyond the
// recordings (from the C source): prefix, order, duplicates, the trailing '&'
// and the 1023-byte cut of long values.
func TestParamString(t *testing.T) {
	ev := &Event{Headers: []Header{{"a", "1 2"}, {"a", ""}, {"b/c", "x&y"}}, Body: "never sent"}
	if got, want := ParamString(ev, "hostname=vm&section=chatplan"), "hostname=vm&section=chatplan&a=1%202&a=&b/c=x%26y"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if got := ParamString(&Event{}, "p=1"); got != "p=1" {
		t.Errorf("no headers: %q", got)
	}
	long := &Event{Headers: []Header{{"v", strings.Repeat("a", 2000)}, {"w", strings.Repeat("<", 400)}, {"z", "ok"}}}
	fields := strings.Split(ParamString(long, "p"), "&")
	if len(fields[1]) != len("v=")+1023 || len(fields[2]) != len("w=")+1023 || fields[3] != "z=ok" {
		t.Errorf("long values: %d %d %q", len(fields[1]), len(fields[2]), fields[3])
	}
	// A long header NAME grows the buffer for itself and every later value.
	name := strings.Repeat("n", 400)
	grown := &Event{Headers: []Header{{name, "x"}, {"v", strings.Repeat("a", 1100)}}}
	if f := strings.Split(ParamString(grown, "p"), "&"); len(f[2]) != 2+1100 {
		t.Errorf("after a long name the value should fit: %d", len(f[2]))
	}
}

func TestStripWhitespace(t *testing.T) {
	if got := stripWhitespace(" \t\r\n\v x y \n"); got != "x y" {
		t.Errorf("%q", got)
	}
}
