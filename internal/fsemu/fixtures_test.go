package fsemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const fixtureDir = "../../testdata/xmlcurl"

// fixture is one captured xml_curl exchange from testdata/xmlcurl.
type fixture struct {
	name    string
	raw     []byte   // the request exactly as on the wire
	reqLine string   // without CRLF
	head    []string // header lines without CRLF
	body    string
	answer  []byte
	esl     []*Event // captured post-chatplan MESSAGE events, if any
}

// splitRequest takes a raw request apart and insists on CRLF line ends in
// the head, which is what libcurl sends.
func splitRequest(raw []byte) (reqLine string, head []string, body string, err error) {
	h, b, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return "", nil, "", fmt.Errorf("no CRLF CRLF")
	}
	lines := strings.Split(string(h), "\r\n")
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			return "", nil, "", fmt.Errorf("bare CR or LF in head line %q", l)
		}
	}
	return lines[0], lines[1:], string(b), nil
}

func headerValue(head []string, name string) string {
	for _, l := range head {
		if n, v, ok := strings.Cut(l, ": "); ok && n == name {
			return v
		}
	}
	return ""
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.http"))
	if err != nil || len(files) != 10 {
		t.Fatalf("want 10 request fixtures, got %d (%v)", len(files), err)
	}
	var out []fixture
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".http")
		fx := fixture{name: name, raw: mustRead(t, f)}
		fx.reqLine, fx.head, fx.body, err = splitRequest(fx.raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fx.answer = mustRead(t, filepath.Join(fixtureDir, name+".answer.xml"))
		fx.esl = loadESL(t, filepath.Join(fixtureDir, name+".esl.json"))
		out = append(out, fx)
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadESL reads captured JSON events keeping header order and duplicates;
// the serializer's own Content-Length key is dropped and _body is the body.
func loadESL(t *testing.T, path string) []*Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var out []*Event
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		d := json.NewDecoder(bytes.NewReader(line))
		ev := &Event{}
		if _, err := d.Token(); err != nil {
			t.Fatal(err)
		}
		for d.More() {
			k, _ := d.Token()
			v, err := d.Token()
			if err != nil {
				t.Fatal(err)
			}
			switch k.(string) {
			case "Content-Length":
			case "_body":
				ev.Body = v.(string)
			default:
				ev.Headers = append(ev.Headers, Header{k.(string), v.(string)})
			}
		}
		out = append(out, ev)
	}
	return out
}

// decodeForm splits a posted form into ordered fields. PathUnescape, not
// QueryUnescape: FreeSWITCH encodes '+' and never writes '+' for a space.
func decodeForm(t *testing.T, body string) []Header {
	t.Helper()
	var out []Header
	for _, kv := range strings.Split(body, "&") {
		k, v, _ := strings.Cut(kv, "=")
		dv, err := url.PathUnescape(v)
		if err != nil {
			t.Fatalf("field %s: %v", k, err)
		}
		out = append(out, Header{k, dv})
	}
	return out
}

// dynamicBody is the text UA 1000 sent in the dynamic-URL capture.
const dynamicBody = "hello & world = 100% <ok> \"q\" 'a' | xümlaut\nline2 %41 ${danger}"

// paramsFromForm rebuilds NewMessageEvent's inputs from a captured form, so
// that rebuilding the request exercises the constructor, not a copy.
func paramsFromForm(t *testing.T, fields []Header) MessageParams {
	t.Helper()
	ev := &Event{Headers: fields}
	us, err := strconv.ParseInt(ev.Get("Event-Date-Timestamp"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := strconv.ParseUint(ev.Get("Event-Sequence"), 10, 64)
	port, _ := strconv.Atoi(ev.Get("from_sip_port"))
	_, tag, _ := strings.Cut(ev.Get("from_full"), ";tag=")
	return MessageParams{
		CoreUUID: ev.Get("Core-UUID"), Sequence: seq, Timestamp: time.UnixMicro(us).UTC(),
		FromUser: ev.Get("from_user"), FromHost: ev.Get("from_host"),
		ToUser: ev.Get("to_user"), ToHost: ev.Get("to_host"),
		FromSIPIP: ev.Get("from_sip_ip"), FromSIPPort: port, FromTag: tag,
		Context: ev.Get("context"), Profile: ev.Get("sip_profile"), ContentType: ev.Get("type"),
		Hostname: ev.Get("FreeSWITCH-Hostname"), IPv4: ev.Get("FreeSWITCH-IPv4"), IPv6: ev.Get("FreeSWITCH-IPv6"),
		Login: ev.Get("login"),
	}
}

// eventFor is the MESSAGE event of a fixture as FreeSWITCH posted it, body
// included (taken from the ESL capture or, for the dynamic one, the text
// sent).
func eventFor(t *testing.T, fx fixture) *Event {
	t.Helper()
	fields := decodeForm(t, fx.body)
	ev := NewMessageEvent(paramsFromForm(t, fields[5:]))
	switch {
	case len(fx.esl) > 0:
		ev.Body = fx.esl[0].Body
	case strings.Contains(fx.reqLine, "?body="):
		ev.Body = dynamicBody
	}
	return ev
}

func TestFixtureFiles(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		cl, err := strconv.Atoi(headerValue(fx.head, "Content-Length"))
		if err != nil || cl != len(fx.body) {
			t.Errorf("%s: Content-Length %q, body %d bytes", fx.name, headerValue(fx.head, "Content-Length"), len(fx.body))
		}
		var names []string
		for _, l := range fx.head {
			n, _, _ := strings.Cut(l, ": ")
			names = append(names, n)
		}
		if got := strings.Join(names, ","); got != "Host,User-Agent,Accept,Content-Length,Content-Type" {
			t.Errorf("%s: header order %s", fx.name, got)
		}
		if strings.HasSuffix(fx.body, "\n") || !strings.HasPrefix(fx.reqLine, "POST /fsxml") {
			t.Errorf("%s: body ends in newline or odd request line %q", fx.name, fx.reqLine)
		}
		if v := judgeDoc(fx.answer); v.section == nil && !v.notFound {
			t.Errorf("%s: answer unusable: %s", fx.name, v.reason)
		}
	}
}

// captureDir is the folder of the original FreeSWITCH recordings the fixtures
// were cut from, named by FSEMU_CAPTURES; the repository holds only the fixtures.
func captureDir() string {
	d := os.Getenv("FSEMU_CAPTURES")
	if d == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(d, "xml_curl_chatplan_requests.txt")); err != nil {
		return ""
	}
	return d
}

// TestFixturesMatchCaptures guards the copies against the originals: every
// request line and body appears verbatim in the capture text, and fixture
// 01 equals the tshark follow dump of the same exchange byte for byte.
func TestFixturesMatchCaptures(t *testing.T) {
	dir := captureDir()
	if dir == "" {
		if os.Getenv("FSEMU_CAPTURES") != "" {
			t.Fatal("FSEMU_CAPTURES does not name a folder holding xml_curl_chatplan_requests.txt")
		}
		// Not a missing dependency: the fixtures are the repository's record.
		t.Skip("set FSEMU_CAPTURES to check the fixtures against the original recordings")
	}
	text := append(mustRead(t, filepath.Join(dir, "xml_curl_chatplan_requests.txt")),
		mustRead(t, filepath.Join(dir, "xml_curl_dynamic_url_body.txt"))...)
	for _, fx := range loadFixtures(t) {
		if !bytes.Contains(text, []byte("\n"+fx.reqLine+"\r\n")) ||
			!bytes.Contains(text, []byte("\n\n"+fx.body+"\n---- body decoded")) ||
			!bytes.Contains(text, append([]byte(" bytes\n"), fx.answer...)) {
			t.Errorf("%s: not found verbatim in the recordings", fx.name)
		}
	}
	wire := mustRead(t, filepath.Join(dir, "tshark_xml_curl_http_stream0.txt"))
	i, j := bytes.Index(wire, []byte("POST ")), bytes.Index(wire, []byte("\n\t137\n"))
	if first := mustRead(t, filepath.Join(fixtureDir, "01_s00_subscribe_order_notfound.http")); i < 0 || j < i || !bytes.Equal(wire[i:j], first) {
		t.Error("fixture 01 differs from the tshark wire bytes")
	}
}
