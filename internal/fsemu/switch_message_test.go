package fsemu

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func mustReceive(t *testing.T, u *UA) Received {
	t.Helper()
	select {
	case r := <-u.Received():
		return r
	case <-time.After(3 * time.Second):
		t.Fatal("UA received nothing")
	}
	return Received{}
}

// TestSwitchUnregisterGolden is scenario 07: pre_register (expires 0),
// PRESENCE_IN Unregistered, sofia::unregister; then sofia_contact says
// error/user_not_registered.
func TestSwitchUnregisterGolden(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	u := newUA(t, s, "1001")
	register(t, u)
	c := login(t, s.ESL(), eslSub)
	if err := u.Unregister(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	want := capturedKeys(t, "esl_07_unregister_json.txt")[:3]
	for _, w := range want {
		got := mustEvent(t, c)
		sameShape(t, eventKey(w), got, w, "Event-Name", "Event-Subclass", "Event-Calling-Function",
			"Event-Calling-Line-Number", "expires", "status", "rpid", "presence-source", "event_type", "from")
	}
	if got := s.esl.runAPI("sofia_contact", "1001@127.0.0.1"); got != "error/user_not_registered" {
		t.Fatalf("sofia_contact = %q", got)
	}
	if n := len(s.Registrations()); n != 0 {
		t.Fatalf("%d registrations left", n)
	}
}

// TestSwitchMessageOnlineGolden is scenario 02: 202, pre_register with the
// MESSAGE-auth quirk, delivery to 1001 with the sender's From and tag, and
// the MESSAGE event with Nonblocking-Delivery.
func TestSwitchMessageOnlineGolden(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	u0, u1 := newUA(t, s, "1000"), newUA(t, s, "1001")
	register(t, u1)
	c := login(t, s.ESL(), eslSub)
	code, err := u0.SendMessage(testCtx(t), "1001", "text/plain", []byte("hello 1001, you are online"))
	if err != nil || code != 202 {
		t.Fatalf("SendMessage = %d, %v", code, err)
	}
	want := capturedKeys(t, "esl_02_message_online_json.txt")
	pre := mustEvent(t, c)
	sameShape(t, "pre_register", pre, want[0], "from-user", "to-user", "status", "rpid")
	msg := mustEvent(t, c)
	sameShape(t, "MESSAGE", msg, want[1], "Event-Calling-Function", "proto", "from", "to", "context",
		"type", "sip_profile", "dest_proto", "max_forwards", "Nonblocking-Delivery", "subject")
	if msg.Body != "hello 1001, you are online" {
		t.Fatalf("body %q", msg.Body)
	}
	r := mustReceive(t, u1)
	if string(r.Body) != "hello 1001, you are online" || r.ContentType != "text/plain" {
		t.Fatalf("received %q (%s)", r.Body, r.ContentType)
	}
	if r.From != msg.Get("from_full") {
		t.Errorf("From %q, want the sender's %q", r.From, msg.Get("from_full"))
	}
	if got := r.Header("X-FS-Sending-Message"); got != s.ESL().CoreUUID() {
		t.Errorf("X-FS-Sending-Message %q", got)
	}
}

// TestSwitchMessageOfflineGolden is scenario 03: sofia::error "no
// recipient" (fired first, sequence later) and the MESSAGE event.
func TestSwitchMessageOfflineGolden(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	u0 := newUA(t, s, "1000")
	c := login(t, s.ESL(), eslSub)
	code, err := u0.SendMessage(testCtx(t), "1002", "text/plain", []byte("hello 1002, you are offline"))
	if err != nil || code != 202 {
		t.Fatalf("SendMessage = %d, %v", code, err)
	}
	want := capturedKeys(t, "esl_03_message_offline_json.txt")
	var got []*Event
	for range want {
		got = append(got, mustEvent(t, c))
	}
	for i, w := range want {
		sameShape(t, eventKey(w), got[i], w, "Error-Type", "Error-Reason", "Chat-Send-To", "Chat-Send-Profile", "Nonblocking-Delivery")
	}
	if got[1].Get("Chat-Send-From") != got[2].Get("from_full") || got[1].Body != "hello 1002, you are offline" {
		t.Errorf("sofia::error %v", got[1])
	}
	if got[1].Get("Event-Sequence") <= got[2].Get("Event-Sequence") {
		t.Errorf("sofia::error should carry a later sequence than the MESSAGE event (captured 406 > 405)")
	}
}

// TestSwitchChatplanFinalGolden is scenarios 05c/13: the chatplan answers
// set + final: nothing is delivered, the MESSAGE event has the variable,
// final_delivery and the exact body.
func TestSwitchChatplanFinalGolden(t *testing.T) {
	doc := `<document type="freeswitch/xml"><section name="chatplan"><context name="public"><extension name="x">` +
		`<condition field="to_user" expression="^(100[0-3])$"><action application="final"/></condition>` +
		`</extension></context></section></document>`
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(doc)) }))
	defer hs.Close()
	s := newSwitch(t, SwitchOptions{XMLCurl: &XMLCurl{URL: hs.URL + "/fsxml", Timeout: 2 * time.Second}})
	u0, u1 := newUA(t, s, "1000"), newUA(t, s, "1001")
	register(t, u1)
	c := login(t, s.ESL(), eslSub)
	if code, err := u0.SendMessage(testCtx(t), "1001", "text/plain", []byte("final only, do not deliver")); err != nil || code != 202 {
		t.Fatalf("SendMessage = %d, %v", code, err)
	}
	want := capturedKeys(t, "esl_05c_chatplan_final_only_json.txt")
	mustEvent(t, c) // pre_register
	msg := mustEvent(t, c)
	// With use-dynamic-url (sipsilo's binding) xml_curl pushes hostname and
	// section to the top of the event; the captured binding had it off.
	msg.Del("hostname")
	msg.Del("section")
	sameShape(t, "MESSAGE", msg, want[1], "final_delivery", "DP_MATCH", "Nonblocking-Delivery")
	select {
	case r := <-u1.Received():
		t.Fatalf("delivered despite final: %q", r.Body)
	case <-time.After(200 * time.Millisecond):
	}
}
