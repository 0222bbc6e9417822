package dialplan

import (
	"errors"
	"strings"
	"testing"
)

// capturedForm is the form body of the dynamic-URL request captured from FreeSWITCH
// 1.10.12 (testdata/xmlcurl/10_dynamic_url_body_final.http).
const capturedForm = "hostname=vm&section=chatplan&tag_name=&key_name=&key_value=&Event-Name=MESSAGE&Core-UUID=bdcc48b6-f5fb-4c75-ab1b-a0d810059303&FreeSWITCH-Hostname=vm&FreeSWITCH-Switchname=vm&FreeSWITCH-IPv4=192.0.2.2&FreeSWITCH-IPv6=fd00%3A%3A2&Event-Date-Local=2026-11-26%2003%3A54%3A57&Event-Date-GMT=Thu,%2026%20Nov%202026%2003%3A54%3A57%20GMT&Event-Date-Timestamp=1795665297759755&Event-Calling-File=sofia_presence.c&Event-Calling-Function=sofia_presence_handle_sip_i_message&Event-Calling-Line-Number=4889&Event-Sequence=378&login=sip%3Amod_sofia%40127.0.0.1%3A5060&proto=sip&to_proto=sip&from=1000%40127.0.0.1&from_user=1000&from_host=127.0.0.1&to_user=1001&to_host=127.0.0.1&from_sip_ip=127.0.0.1&from_sip_port=25080&to=1001%40127.0.0.1&subject=SIMPLE%20MESSAGE&context=public&type=text/plain&from_full=%3Csip%3A1000%40127.0.0.1%3E%3Btag%3Di0xnc8q3&sip_profile=internal&dest_proto=sip&max_forwards=70"

const capturedQuery = "body=hello%20%26%20world%20%3D%20100%25%20%3Cok%3E%20%22q%22%20'a'%20%7C%20x%C3%BCmlaut%0Aline2%20%41%20$%7Bdanger%7D"

func TestParseCapturedRequest(t *testing.T) {
	l, err := Parse(capturedQuery, []byte(capturedForm))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"section", l.Section, "chatplan"},
		{"Core-UUID", l.CoreUUID, "bdcc48b6-f5fb-4c75-ab1b-a0d810059303"},
		{"Event-Date-GMT", l.EventDateGMT, "Thu, 26 Nov 2026 03:54:57 GMT"},
		{"from", l.From, "1000@127.0.0.1"},
		{"from_full", l.FromFull, "<sip:1000@127.0.0.1>;tag=i0xnc8q3"},
		{"recipient", l.Recipient(), "1001@127.0.0.1"},
		{"sender", l.Sender(), "1000@127.0.0.1"},
		{"context", l.Context, "public"},
		{"type", l.Type, "text/plain"},
		{"sip_profile", l.SIPProfile, "internal"},
		{"dest_proto", l.DestProto, "sip"},
		{"subject", l.Subject, "SIMPLE MESSAGE"},
		{"hostname", l.Hostname, "vm"},
		// FreeSWITCH's url_encode leaves the literal text %41 alone, so it arrives as
		// "A": the documented loss that the ESL copy repairs (docs/decisions.md §4).
		{"body", string(l.Body), "hello & world = 100% <ok> \"q\" 'a' | xümlaut\nline2 A ${danger}"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if l.EventSequence != 378 || l.EventTimestamp != 1795665297759755 || l.MaxForwards != 70 {
		t.Errorf("numbers: seq %d ts %d mf %d", l.EventSequence, l.EventTimestamp, l.MaxForwards)
	}
	if !l.HasBody {
		t.Error("HasBody false")
	}
	if len(l.Fields) != 36 || l.Fields[0].Name != "hostname" || l.Fields[35].Name != "max_forwards" {
		t.Errorf("fields: %d, order lost", len(l.Fields))
	}
	if err := l.CheckMessage(); err != nil {
		t.Errorf("CheckMessage: %v", err)
	}
}

func TestParseBodyParameter(t *testing.T) {
	form := []byte("section=chatplan")
	cases := []struct {
		query   string
		has     bool
		body    string
		comment string
	}{
		{"", false, "", "no parameter: wait for the ESL copy"},
		{"body=", true, "", "present but empty: an empty message"},
		{"body=a%2Bb+c", true, "a+b+c", "'+' is literal: FreeSWITCH encodes + as %2B"},
		{"body=100%%20%zz%4", true, "100% %zz%4", "stray % kept, not an error"},
		{"x=1&body=%E2%82%AC&body=second", true, "€", "first body wins"},
		{"body=%FF%FE", true, "\xff\xfe", "invalid UTF-8 kept byte for byte"},
	}
	for _, c := range cases {
		l, err := Parse(c.query, form)
		if err != nil {
			t.Fatalf("%s: %v", c.comment, err)
		}
		if l.HasBody != c.has || string(l.Body) != c.body {
			t.Errorf("%s: got (%v, %q), want (%v, %q)", c.comment, l.HasBody, l.Body, c.has, c.body)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	cases := map[string]string{
		"empty":           "",
		"only ampersands": "&&&",
		"no section":      "hostname=vm&to_user=1001",
		"nameless field":  "section=chatplan&=x",
		"bad sequence":    "section=chatplan&Event-Sequence=12x",
		"bad timestamp":   "section=chatplan&Event-Date-Timestamp=-",
	}
	for name, form := range cases {
		if _, err := Parse("", []byte(form)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestCheckMessage(t *testing.T) {
	drop := func(field string) string {
		var kept []string
		for _, p := range strings.Split(capturedForm, "&") {
			if !strings.HasPrefix(p, field+"=") {
				kept = append(kept, p)
			}
		}
		return strings.Join(kept, "&")
	}
	for _, field := range []string{"Core-UUID", "Event-Sequence", "from_user", "from_host", "to_user", "to_host", "context"} {
		l, err := Parse("", []byte(drop(field)))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CheckMessage(); !errors.Is(err, ErrMalformed) {
			t.Errorf("without %s: err = %v", field, err)
		}
	}
	l, err := Parse("", []byte(capturedForm+"&sip_h_X-Evil=%FF"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CheckMessage(); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid UTF-8 header: err = %v", err)
	}
	if len(l.SIPHeaders) != 1 || l.SIPHeaders[0].Name != "X-Evil" {
		t.Errorf("sip_h_ headers = %v", l.SIPHeaders)
	}
}

func TestCheckMessageRefusesUnstorableFields(t *testing.T) {
	base := "section=chatplan&Core-UUID=c&Event-Sequence=1&from_user=1000&from_host=h&to_user=1001&to_host=h&context=public&type=text%2Fplain&from_full=%3Csip%3A1000%40h%3E"
	for _, extra := range []string{
		"to_user=" + strings.Repeat("u", MaxAddrPart+1), "Core-UUID=" + strings.Repeat("c", MaxCoreUUID+1),
		"from_full=" + strings.Repeat("f", MaxFromFull+1), "to_user=a%0Db", "to_user=a%0Ab", "to_user=a%00b",
		"from_full=a%0Ab", "type=text%2Fplain%0D%0AX%3A1", "from_host=h%7F",
	} {
		name, _, _ := strings.Cut(extra, "=")
		form := strings.Replace(base, name+"=", extra+"&_old_"+name+"=", 1)
		l, err := Parse("", []byte(form))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CheckMessage(); !errors.Is(err, ErrBadField) || !errors.Is(err, ErrMalformed) || strings.Contains(err.Error(), "uuu") {
			t.Errorf("%.40s: err = %v, want ErrBadField naming the field only", extra, err)
		}
	}
	l, err := Parse("", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CheckMessage(); err != nil {
		t.Fatalf("valid lookup: %v", err)
	}
}
