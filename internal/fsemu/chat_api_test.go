package fsemu

import (
	"strings"
	"testing"
	"time"
)

// escapeChat is docs/decisions.md §18's escaping for the chat API's body.
func escapeChat(s string) string {
	s = strings.NewReplacer(`\`, `\\`, "|", `\|`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "'", `\'`, `"`, `\"`).Replace(s)
	if strings.HasPrefix(s, " ") {
		s = `\s` + s[1:]
	}
	if strings.HasSuffix(s, " ") {
		s = s[:len(s)-1] + `\s`
	}
	return s
}

// apiCall runs `api cmd` on a connection with no subscription.
func apiCall(t *testing.T, c *rawClient, cmd string) string {
	t.Helper()
	c.send("api " + cmd + "\n\n")
	f := string(c.mustFrame())
	_, body, _ := strings.Cut(f, "\n\n")
	return body
}

// capturedWhere picks captured events by Event-Name and calling function.
func capturedWhere(t *testing.T, file, name, fn string) []*Event {
	t.Helper()
	var out []*Event
	for _, ev := range capturedKeys(t, file) {
		if ev.Get("Event-Name") == name && (fn == "" || ev.Get("Event-Calling-Function") == fn) {
			out = append(out, ev)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no %s/%s", file, name, fn)
	}
	return out
}

const chatFn = "switch_core_chat_send_args"

// TestSwitchBgapiChatGolden is scenarios 12 and 14: bgapi chat with a
// Job-UUID, an escaped body with every hazard arriving byte-identical, the
// MESSAGE event with Delivery-Result-Code 200 before BACKGROUND_JOB "Sent".
func TestSwitchBgapiChatGolden(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	u1 := newUA(t, s, "1001")
	register(t, u1)
	c := login(t, s.ESL(), "event json HEARTBEAT BACKGROUND_JOB MESSAGE CUSTOM sofia::error")
	body := " lead | pipe 'sq' \"dq\" back\\slash\nnewline\ttab %41 ${x} ümlaut trail "
	cmd := "chat sip|1000@127.0.0.1|1001@127.0.0.1|" + escapeChat(body) + "|text/plain"
	c.send("bgapi " + cmd + "\nJob-UUID: job-1\n\n")
	c.expect("Content-Type: command/reply\nReply-Text: +OK Job-UUID: job-1\nJob-UUID: job-1\n\n")
	msg := mustEvent(t, c)
	sameShape(t, "MESSAGE", msg, capturedWhere(t, "esl_14_json_heartbeat_bgapi.txt", "MESSAGE", chatFn)[0],
		"Event-Calling-File", "Event-Calling-Function", "Event-Calling-Line-Number", "proto", "from", "to",
		"type", "skip_global_process", "blocking", "dest_proto", "Delivery-Result-Code", "Delivery-Failure")
	job := mustEvent(t, c)
	sameShape(t, "BACKGROUND_JOB", job, capturedWhere(t, "esl_14_json_heartbeat_bgapi.txt", "BACKGROUND_JOB", "")[0],
		"Event-Calling-Function", "Job-Command")
	if job.Get("Job-UUID") != "job-1" || job.Body != "Sent" || job.Get("Job-Command-Arg") != strings.TrimPrefix(cmd, "chat ") {
		t.Fatalf("BACKGROUND_JOB %+v", job)
	}
	if msg.Body != body {
		t.Errorf("event body %q", msg.Body)
	}
	r := mustReceive(t, u1)
	if string(r.Body) != body || r.ContentType != "text/plain" {
		t.Fatalf("UA got %q (%s), want %q", r.Body, r.ContentType, body)
	}
	if r.From[:len(`"1000" <sip:1000@127.0.0.1>;tag=`)] != `"1000" <sip:1000@127.0.0.1>;tag=` {
		t.Errorf("From %q", r.From)
	}
	// scenario 12's BACKGROUND_JOB, plain: same names
	want12 := capturedKeys(t, "esl_12_bgapi_chat_job.txt")[0]
	sameShape(t, "BACKGROUND_JOB (12)", job, want12, "Job-Command")
}

// TestSwitchChatFloorAnd486 is esl_06: a 2xx gives Sent, a 486 the error
// with code 486; neither result comes before the poll floor.
func TestSwitchChatFloorAnd486(t *testing.T) {
	const floor = 250 * time.Millisecond
	s := newSwitch(t, SwitchOptions{ChatResultFloor: floor})
	u1 := newUA(t, s, "1001")
	register(t, u1)
	ev := login(t, s.ESL(), eslSub)
	api := login(t, s.ESL(), "")
	want := capturedWhere(t, "esl_06_api_registered_json.txt", "MESSAGE", chatFn)
	for i, tc := range []struct {
		answer int
		result string
	}{{200, "Sent"}, {486, "Error! Message Not Sent"}} {
		u1.SetAnswer(tc.answer)
		start := time.Now()
		if got := apiCall(t, api, "chat sip|1000@127.0.0.1|1001@127.0.0.1|hello"); got != tc.result {
			t.Fatalf("chat = %q, want %q", got, tc.result)
		}
		if d := time.Since(start); d < floor {
			t.Errorf("result after %v, before the %v floor", d, floor)
		}
		sameShape(t, "MESSAGE", mustEvent(t, ev), want[i], "Delivery-Result-Code", "Delivery-Failure", "dest_proto")
	}
	if r := mustReceive(t, u1); r.ContentType != "text/html" {
		t.Errorf("default Content-Type %q, want text/html", r.ContentType)
	}
}

// TestSwitchChatOffline is esl_07's chat to an unregistered user: the
// error at once, sofia::error with the quirky From/Profile, no result code.
func TestSwitchChatOffline(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	ev := login(t, s.ESL(), eslSub)
	api := login(t, s.ESL(), "")
	if got := apiCall(t, api, "chat sip|1000@127.0.0.1|1001@127.0.0.1|hello, are you there?"); got != "Error! Message Not Sent" {
		t.Fatalf("chat = %q", got)
	}
	want := capturedKeys(t, "esl_07_unregister_json.txt")[3:5]
	for _, w := range want {
		sameShape(t, eventKey(w), mustEvent(t, ev), w, "Chat-Send-From", "Chat-Send-Profile", "Chat-Send-To", "Delivery-Failure")
	}
}

// TestSwitchChatSilent is esl_09 api_chat with a short give-up: the error
// with Delivery-Result-Code 0, and the SIP transaction keeps retransmitting
// so the UA still gets the message once it answers again.
func TestSwitchChatSilent(t *testing.T) {
	const giveUp = 300 * time.Millisecond
	s := newSwitch(t, SwitchOptions{ChatGiveUp: giveUp})
	u3 := newUA(t, s, "1003")
	register(t, u3)
	ev := login(t, s.ESL(), eslSub)
	api := login(t, s.ESL(), "")
	u3.SetSilent(true)
	start := time.Now()
	if got := apiCall(t, api, "chat sip|1000@127.0.0.1|1003@127.0.0.1|are you still there?"); got != "Error! Message Not Sent" {
		t.Fatalf("chat = %q", got)
	}
	if d := time.Since(start); d < giveUp {
		t.Errorf("gave up after %v", d)
	}
	w := capturedWhere(t, "esl_09_unreachable_silent_json.txt", "MESSAGE", chatFn)[0]
	sameShape(t, "MESSAGE", mustEvent(t, ev), w, "Delivery-Result-Code", "Delivery-Failure")
	u3.SetSilent(false)
	if r := mustReceive(t, u3); string(r.Body) != "are you still there?" {
		t.Fatalf("late delivery %q", r.Body)
	}
}
