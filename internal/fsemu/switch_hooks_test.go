package fsemu

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// optionsTo sends OPTIONS from the switch's socket to addr.
func optionsTo(t *testing.T, s *Switch, addr string) *sip.Response {
	t.Helper()
	host, port := splitSource(addr)
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "1001", Host: host, Port: port})
	req.SetTransport("UDP")
	req.SetDestination(addr)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "mod_sofia", Host: "127.0.0.1"}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "1001", Host: "127.0.0.1"}})
	res, err := s.cl.Do(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestUASetOptionsAnswer(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	u := newUA(t, s, "1001")
	if res := optionsTo(t, s, u.Addr()); res.StatusCode != 200 {
		t.Fatalf("default OPTIONS answer %d", res.StatusCode)
	}
	for _, code := range []int{404, 405, 501, 200} {
		u.SetOptionsAnswer(code)
		res := optionsTo(t, s, u.Addr())
		if res.StatusCode != code {
			t.Fatalf("SetOptionsAnswer(%d): answered %d", code, res.StatusCode)
		}
		if code == 405 && res.GetHeader("Allow") == nil {
			t.Errorf("405 without Allow")
		}
	}
	// MESSAGEs are unaffected.
	u.SetOptionsAnswer(404)
	register(t, u)
	if got := s.esl.runAPI("chat", "sip|1000@127.0.0.1|1001@127.0.0.1|hi|text/plain"); got != chatSent {
		t.Fatalf("chat = %q", got)
	}
}

func TestSwitchFlushes(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	if f := s.Flushes(); len(f) != 0 {
		t.Fatalf("Flushes = %q", f)
	}
	u := newUA(t, s, "1002")
	register(t, u)
	api := login(t, s.ESL(), "")
	for _, cmd := range []string{
		"sofia profile internal flush_inbound_reg 1002@127.0.0.1",
		"sofia profile external flush_inbound_reg 1003@127.0.0.1", // another profile: not recorded
		"sofia profile internal flush_inbound_reg abc@pyua reboot",
		"sofia profile internal flush_inbound_reg",
	} {
		apiCall(t, api, cmd)
	}
	if got := s.esl.runAPI("sofia", "profile internal flush_inbound_reg 1001@127.0.0.1"); got != "+OK flushing all registrations matching specified call_id\n" {
		t.Fatalf("flush = %q", got)
	}
	want := []string{"1002@127.0.0.1", "abc@pyua reboot", "", "1001@127.0.0.1"}
	if got := s.Flushes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Flushes = %q, want %q", got, want)
	}
	if n := len(s.Registrations()); n != 0 {
		t.Fatalf("%d registrations after flush", n)
	}
	// A copy: changing it changes nothing.
	s.Flushes()[0] = "x"
	if s.Flushes()[0] != "1002@127.0.0.1" {
		t.Fatal("Flushes shares its slice")
	}
}

func TestSwitchChats(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	if n := s.Chats(); n != 0 {
		t.Fatalf("Chats = %d before any", n)
	}
	u := newUA(t, s, "1001")
	register(t, u)
	api := login(t, s.ESL(), "")
	if got := apiCall(t, api, "chat sip|1000@127.0.0.1|1001@127.0.0.1|one|text/plain"); got != chatSent {
		t.Fatalf("api chat = %q", got)
	}
	if got := s.esl.runAPI("chat", "sip|1000"); got != "Invalid" { // invalid: counted too
		t.Fatalf("chat = %q", got)
	}
	// Other APIs and inbound MESSAGEs are not chats.
	s.esl.runAPI("sofia_contact", "1001@127.0.0.1")
	u0 := newUA(t, s, "1000")
	if code, err := u0.SendMessage(testCtx(t), "1001", "text/plain", []byte("inbound")); err != nil || code != 202 {
		t.Fatalf("SendMessage = %d %v", code, err)
	}
	mustReceive(t, u)
	mustReceive(t, u)
	if n := s.Chats(); n != 2 {
		t.Fatalf("Chats = %d, want 2", n)
	}
	c := login(t, s.ESL(), "event plain BACKGROUND_JOB")
	for i := 0; i < 3; i++ {
		c.send("bgapi chat sip|1000@127.0.0.1|1001@127.0.0.1|bg " + strconv.Itoa(i) + "|text/plain\n\n")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Chats() != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("Chats = %d, want 5 after 3 bgapi", s.Chats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
