package fsemu

import "testing"

func TestExpand(t *testing.T) {
	ev := &Event{
		Headers: []Header{{"to_user", "1001"}, {"Evil", "${to_user}"}, {"X-Fixture", "via"}},
		Body:    "  hi ${to_user} %41\n",
	}
	cases := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"${to_user}", "1001"},
		{"${TO_USER}", "1001"}, // header names are case-insensitive
		{"[${_body}]", "[  hi ${to_user} %41\n]"},
		{"${evil}", "${to_user}"}, // values are not expanded again
		{"${nope}|", "|"},
		{"${url_encode(${_body})}", "hi%20$%7Bto_user%7D%20%41"}, // API args are stripped
		{"${url_encode ${X-Fixture}}", "via"},
		{"${url_encode(a b)}x", "a%20bx"},
		{"${no_such_api(x)}", ""},
		{"${to_user}${to_user}", "10011001"},
		{"${to_user}\\${to_user}", "1001\\1001"}, // the byte after a variable is copied raw
		{"\\${to_user}", "${to_user}"},
		{"$to_user ${to_user}", "$to_user 1001"},
		{"a\\'b${to_user}", "ab1001"},
		{"a\\\\b${to_user}", "a\\b1001"},
		{"a\\\\b", "a\\b"}, // an escape alone is enough to process
		{"a\\qb", "a\\qb"}, // nothing to expand: returned as is
		{"${to_user:1}", "001"},
		{"${to_user:1:2}", "00"},
		{"${to_user:-2}", "01"},
		{"${to_user[0]}", ""},
		{"${_body[0]}", "  hi ${to_user} %41\n"},
		{"$${hostname}", ""},
		{"${to_user", "1001"},
		{"${${X-Fixture}}", ""},
	}
	for _, c := range cases {
		if got := Expand(ev, c.in); got != c.want {
			t.Errorf("Expand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestExpandDynamicCaptureURL(t *testing.T) {
	ev := &Event{Body: dynamicBody}
	got := Expand(ev, "/fsxml?body=${url_encode(${_body})}")
	want := "/fsxml?body=hello%20%26%20world%20%3D%20100%25%20%3Cok%3E%20%22q%22%20'a'%20%7C%20x%C3%BCmlaut%0Aline2%20%41%20$%7Bdanger%7D"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
