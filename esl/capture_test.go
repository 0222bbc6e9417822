package esl

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// captureFrames splits an esl_*.raw capture (the exact server-to-client bytes)
// into its frames, byte for byte, by the outer Content-Length.
func captureFrames(t testing.TB, name string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for len(raw) > 0 {
		end := bytes.Index(raw, []byte("\n\n"))
		if end < 0 {
			t.Fatalf("%s: unterminated header block", name)
		}
		n := end + 2
		for _, line := range strings.Split(string(raw[:end]), "\n") {
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				size, err := strconv.Atoi(v)
				if err != nil {
					t.Fatal(err)
				}
				n += size
			}
		}
		frames = append(frames, raw[:n])
		raw = raw[n:]
	}
	return frames
}

// findFrame returns the first captured frame containing all of subs.
func findFrame(t testing.TB, name string, subs ...string) []byte {
	t.Helper()
next:
	for _, f := range captureFrames(t, name) {
		for _, s := range subs {
			if !bytes.Contains(f, []byte(s)) {
				continue next
			}
		}
		return f
	}
	t.Fatalf("%s: no frame with %q", name, subs)
	return nil
}

// Frames every fake connection needs, from scenario 14 (FreeSWITCH 1.10.12).
type wire struct {
	authRequest, accepted, subscribed, bgapiReply, bye, disconnect []byte
}

func loadWire(t testing.TB) wire {
	const c14 = "esl_14_json_heartbeat_bgapi.raw"
	return wire{
		authRequest: findFrame(t, c14, "auth/request"),
		accepted:    findFrame(t, c14, "+OK accepted"),
		subscribed:  findFrame(t, c14, "+OK event listener enabled json"),
		bgapiReply:  findFrame(t, c14, "+OK Job-UUID: cap14-job-1"),
		bye:         findFrame(t, c14, "+OK bye"),
		disconnect:  findFrame(t, c14, "text/disconnect-notice"),
	}
}

// apiResponse builds an api/response frame in FreeSWITCH's header order
// (Content-Type first, as in esl_06_api_registered_api.raw).
func apiResponse(body string) []byte {
	return fmt.Appendf(nil, "Content-Type: api/response\nContent-Length: %d\n\n%s", len(body), body)
}

// jsonEvent frames a JSON event the way FreeSWITCH does (Content-Length first).
func jsonEvent(body string) []byte {
	return fmt.Appendf(nil, "Content-Length: %d\nContent-Type: text/event-json\n\n%s", len(body), body)
}

// reframe replaces old by new in a captured event's JSON body and frames it again
// with the new length.
func reframe(t testing.TB, f []byte, old, new string) []byte {
	t.Helper()
	_, body, ok := bytes.Cut(f, []byte("\n\n"))
	if !ok {
		t.Fatal("not a frame")
	}
	return jsonEvent(strings.ReplaceAll(string(body), old, new))
}
