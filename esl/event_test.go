package esl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// eventBody returns the JSON body of the first captured event frame containing subs.
func eventBody(t *testing.T, capture string, subs ...string) []byte {
	t.Helper()
	f, err := readFrame(bufio.NewReader(bytes.NewReader(findFrame(t, capture, subs...))))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.contentType(), typeEventJSON; got != want {
		t.Fatalf("Content-Type=%q, want %q", got, want)
	}
	return f.body
}

func TestParseJSONCaptured(t *testing.T) {
	for _, tc := range []struct {
		name, capture string
		match         []string
		want          Event // Headers not compared
		checks        map[string]string
		headers       int
	}{
		{
			name: "message online", capture: "esl_02_message_online_json.raw",
			match: []string{`"Event-Name":"MESSAGE"`},
			want: Event{Name: "MESSAGE", CoreUUID: "0e2f3ccc-1fbd-4726-9b43-d899a68a0b89", Sequence: 402,
				Body: "hello 1001, you are online"},
			checks: map[string]string{"from_user": "1000", "to_user": "1001", "Nonblocking-Delivery": "true",
				"content-length": "26"},
		},
		{
			name: "sofia pre_register", capture: "esl_02_message_online_json.raw",
			match: []string{`sofia::pre_register`},
			want: Event{Name: "CUSTOM", Subclass: "sofia::pre_register",
				CoreUUID: "0e2f3ccc-1fbd-4726-9b43-d899a68a0b89", Sequence: 400},
			checks: map[string]string{"call-id": "gnme2r5z4ms6u6yo@pyua"},
		},
		{
			// The exact body, spaces, %41 and all (testdata/esl, scenario 13).
			name: "chatplan set final", capture: "esl_13_chatplan_set_final_json.raw",
			match: []string{`"Event-Name":"MESSAGE"`},
			want: Event{Name: "MESSAGE", CoreUUID: "0d6d62c8-e07d-4f79-9059-363728111d48", Sequence: 376,
				Body: " two spaces  %41 | \"q\" ü\nend "},
			checks: map[string]string{"sipsilo_id": "01JFIXTURE0000000000000001", "final_delivery": "true"},
		},
		{
			name: "background job", capture: "esl_14_json_heartbeat_bgapi.raw",
			match: []string{`"Event-Name":"BACKGROUND_JOB"`},
			want: Event{Name: "BACKGROUND_JOB", CoreUUID: "2458526a-9d4c-4c2b-8b2b-0d0e78fe9ba4",
				JobUUID: "cap14-job-1", Body: "Sent"},
			checks: map[string]string{"Job-Command": "chat"},
		},
		{
			name: "heartbeat", capture: "esl_14_json_heartbeat_bgapi.raw",
			match: []string{`"Event-Name":"HEARTBEAT"`},
			want:  Event{Name: "HEARTBEAT", CoreUUID: "2458526a-9d4c-4c2b-8b2b-0d0e78fe9ba4"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseJSON(eventBody(t, tc.capture, tc.match...))
			if err != nil {
				t.Fatal(err)
			}
			got := *e
			got.Headers = nil
			want := tc.want
			if want.Sequence == 0 {
				want.Sequence = got.Sequence // not pinned for this frame
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			for k, v := range tc.checks {
				if got := e.Get(k); got != v {
					t.Errorf("Get(%q)=%q, want %q", k, got, v)
				}
			}
			if e.Get("_body") != "" {
				t.Error("_body kept as a header")
			}
		})
	}
}

// The DELIVERY_REPORT in esl_06 repeats keys with different values: its own
// first, then the request's. Get answers the first, as FreeSWITCH does;
// encoding/json would answer the last.
func TestParseJSONDuplicateKeys(t *testing.T) {
	raw := eventBody(t, "esl_06_api_registered_json.raw", "SMS::DELIVERY_REPORT", `"Status":"Success"`)
	e, err := ParseJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.GetAll("Event-Sequence"), []string{"435", "434"}; !reflect.DeepEqual(got, want) {
		t.Errorf("GetAll(Event-Sequence)=%q, want %q", got, want)
	}
	if got, want := e.Get("Event-Calling-Function"), "send_report"; got != want {
		t.Errorf("Get(Event-Calling-Function)=%q, want %q", got, want)
	}
	if got, want := e.Sequence, uint64(435); got != want {
		t.Errorf("Sequence=%d, want %d", got, want)
	}
	if got, want := len(e.GetAll("skip_global_process")), 2; got != want {
		t.Errorf("skip_global_process appears %d times, want %d", got, want)
	}
	// Every key kept, in order: count the keys with a token scan.
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m["Event-Sequence"] != "434" {
		t.Fatalf("encoding/json kept %q; the premise of this test changed", m["Event-Sequence"])
	}
	if len(e.Headers) <= len(m) {
		t.Errorf("%d headers, want more than the %d distinct keys", len(e.Headers), len(m))
	}
	if got, want := e.Headers[0], (Header{"Event-Subclass", "SMS::DELIVERY_REPORT"}); got != want {
		t.Errorf("first header %v, want %v", got, want)
	}
}

func TestParseJSONShapes(t *testing.T) {
	e, err := ParseJSON([]byte(`{"Event-Name":"X","a":["1","2"],"n":5,"b":true,"z":null,"_body":"hi\u0000"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Header{{"Event-Name", "X"}, {"a", "ARRAY::1|:2"}, {"n", "5"}, {"b", "true"}, {"z", ""}}
	if !reflect.DeepEqual(e.Headers, want) {
		t.Errorf("headers %v, want %v", e.Headers, want)
	}
	if e.Body != "hi\x00" {
		t.Errorf("body %q", e.Body)
	}
	for _, bad := range []string{``, `[]`, `{"a":{"b":"c"}}`, `{"a":"b"} {}`, `{"a":"b"`, `{"a":["x",["y"]]}`} {
		if _, err := ParseJSON([]byte(bad)); err == nil {
			t.Errorf("ParseJSON(%q) succeeded", bad)
		}
	}
}

func TestReadFrameCaptured(t *testing.T) {
	for _, name := range []string{"esl_02_message_online_json.raw", "esl_06_api_registered_json.raw",
		"esl_06_api_registered_api.raw", "esl_13_chatplan_set_final_json.raw", "esl_14_json_heartbeat_bgapi.raw"} {
		frames := captureFrames(t, name)
		var all []byte
		for _, f := range frames {
			all = append(all, f...)
		}
		br := bufio.NewReader(bytes.NewReader(all))
		for i, raw := range frames {
			f, err := readFrame(br)
			if err != nil {
				t.Fatalf("%s frame %d: %v", name, i, err)
			}
			if f.contentType() == typeEventJSON {
				if _, err := ParseJSON(f.body); err != nil {
					t.Errorf("%s frame %d: %v", name, i, err)
				}
			}
			if !bytes.HasSuffix(raw, f.body) {
				t.Errorf("%s frame %d: body is not the frame's tail", name, i)
			}
		}
		if _, err := readFrame(br); err == nil {
			t.Errorf("%s: frame after the last", name)
		}
	}
}
