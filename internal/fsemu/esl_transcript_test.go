package fsemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// eslFixtureDir holds the recorded ESL transcripts (testdata/esl/README.md).
const eslFixtureDir = "../../testdata/esl"

// frame is one block of a captured ESL transcript (testdata/esl/README.md,
// "Format"): dir is RECV (server to client) or SEND.
type frame struct {
	dir  string
	data []byte
}

// loadTranscript parses an annotated esl_*.txt: '#' header lines, then
// "### <time> RECV|SEND <n> bytes\n" + n bytes + "\n", or MARK/CLOSED lines.
func loadTranscript(t *testing.T, name string) []frame {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(eslFixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []frame
	for len(raw) > 0 {
		nl := bytes.IndexByte(raw, '\n')
		if nl < 0 {
			t.Fatalf("%s: unterminated line %q", name, raw)
		}
		line := string(raw[:nl])
		raw = raw[nl+1:]
		if strings.HasPrefix(line, "# ") || line == "#" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "###" {
			t.Fatalf("%s: unexpected line %q", name, line)
		}
		if f[2] != "RECV" && f[2] != "SEND" {
			continue // MARK, CLOSED
		}
		n, err := strconv.Atoi(f[3])
		if err != nil || len(f) != 5 || n+1 > len(raw) || raw[n] != '\n' {
			t.Fatalf("%s: bad block header %q", name, line)
		}
		out = append(out, frame{f[2], raw[:n]})
		raw = raw[n+1:]
	}
	return out
}

// recvStream is the concatenation of the RECV blocks: the .raw file.
func recvStream(frames []frame) []byte {
	var b []byte
	for _, f := range frames {
		if f.dir == "RECV" {
			b = append(b, f.data...)
		}
	}
	return b
}

// splitEventFrame checks the outer event framing and returns the
// Content-Type and the serialized event. ok is false for other frames.
func splitEventFrame(t *testing.T, data []byte) (ctype string, payload []byte, ok bool) {
	t.Helper()
	head, rest, found := bytes.Cut(data, []byte("\n\n"))
	if !found || !bytes.HasPrefix(head, []byte("Content-Length: ")) {
		return "", nil, false
	}
	lines := strings.Split(string(head), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "Content-Type: text/event-") {
		return "", nil, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(lines[0], "Content-Length: "))
	if err != nil || n != len(rest) {
		t.Fatalf("outer Content-Length %q does not size the frame (%d bytes)", lines[0], len(rest))
	}
	return strings.TrimPrefix(lines[1], "Content-Type: "), rest, true
}

// parseJSONEvent rebuilds an event from its JSON serialization, keeping key
// order and duplicates; a trailing Content-Length + _body pair is the body.
func parseJSONEvent(payload []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object: %v", err)
	}
	ev := &Event{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		v, err := dec.Token()
		if err != nil {
			return nil, err
		}
		vs, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("key %v: value %v is not a string", k, v)
		}
		ev.Headers = append(ev.Headers, Header{k.(string), vs})
	}
	if n := len(ev.Headers); n >= 2 && ev.Headers[n-1].Name == "_body" && ev.Headers[n-2].Name == "Content-Length" {
		ev.Body = ev.Headers[n-1].Value
		ev.Headers = ev.Headers[:n-2]
	}
	return ev, nil
}

// urlDecode undoes %XX; values in the captured plain frames never contain a
// literal %XX, so this is the inverse of URLEncode for them.
func urlDecode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("short escape in %q", s)
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// parsePlainEvent rebuilds an event from its plain serialization. A
// "Content-Length: M" line directly followed by an empty line and exactly M
// more bytes is the body; any other Content-Length line is a header (the
// recordings have both).
func parsePlainEvent(payload []byte) (*Event, error) {
	ev := &Event{}
	s := string(payload)
	for {
		nl := strings.IndexByte(s, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("unterminated header block")
		}
		line := s[:nl]
		s = s[nl+1:]
		if line == "" {
			if s != "" {
				return nil, fmt.Errorf("%d bytes after the header block", len(s))
			}
			return ev, nil
		}
		name, val, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", line)
		}
		if name == "Content-Length" && strings.HasPrefix(s, "\n") {
			if n, err := strconv.Atoi(val); err == nil && n > 0 && n == len(s)-1 {
				ev.Body = s[1:]
				return ev, nil
			}
		}
		if val == "_undef_" {
			val = ""
		}
		dv, err := urlDecode(val)
		if err != nil {
			return nil, err
		}
		ev.Headers = append(ev.Headers, Header{name, dv})
	}
}

// capturedEvent is one event frame of a transcript with its decoded event.
type capturedEvent struct {
	frame []byte
	ctype string
	ev    *Event
}

func capturedEvents(t *testing.T, name string) []capturedEvent {
	t.Helper()
	var out []capturedEvent
	for _, f := range loadTranscript(t, name) {
		if f.dir != "RECV" {
			continue
		}
		ctype, payload, ok := splitEventFrame(t, f.data)
		if !ok {
			continue
		}
		var ev *Event
		var err error
		switch ctype {
		case "text/event-json":
			ev, err = parseJSONEvent(payload)
		case "text/event-plain":
			ev, err = parsePlainEvent(payload)
		default:
			t.Fatalf("%s: unexpected %s", name, ctype)
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, payload)
		}
		out = append(out, capturedEvent{f.data, ctype, ev})
	}
	if len(out) == 0 {
		t.Fatalf("%s: no event frames", name)
	}
	return out
}
