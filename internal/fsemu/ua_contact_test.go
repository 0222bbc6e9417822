package fsemu

import (
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/sipptest"
)

// newContactUA is a UA that registers a third-party Contact.
func newContactUA(t *testing.T, s *Switch, user, contact string) *UA {
	t.Helper()
	u, err := NewUA(UAOptions{User: user, Password: "1234", Switch: s.SIPAddr(), Contact: contact})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// TestUAContactRoutesToSippPhone: UA 1001 registers a sipp phone's Contact;
// the switch stores that contact (with the UA's socket as network address)
// and delivers both `chat` API messages and inbound MESSAGEs from another
// UA to the phone, byte for byte, and nothing to the registering UA.
func TestUAContactRoutesToSippPhone(t *testing.T) {
	s := newSwitch(t, SwitchOptions{})
	phone := sipptest.Start(t, sipptest.Options{})
	u1 := newContactUA(t, s, "1001", phone.Contact("1001"))
	register(t, u1)

	regs := s.Registrations()
	if len(regs) != 1 {
		t.Fatalf("registrations %+v", regs)
	}
	_, uaPort := splitSource(u1.Addr())
	if want := `"" <sip:1001@` + phone.Addr() + `>`; regs[0].Contact != want || regs[0].NetworkPort != uaPort {
		t.Fatalf("registration contact %q port %d, want %q from port %d", regs[0].Contact, regs[0].NetworkPort, want, uaPort)
	}
	if got := s.esl.runAPI("sofia_contact", "1001@127.0.0.1"); got != "sofia/internal/sip:1001@"+phone.Addr() {
		t.Fatalf("sofia_contact = %q", got)
	}

	body := "to the phone | \"dq\" 'sq' back\\slash\nline 2 ümlaut 🎉"
	if got := s.esl.runAPI("chat", "sip|1000@127.0.0.1|1001@127.0.0.1|"+escapeChat(body)+"|text/plain"); got != chatSent {
		t.Fatalf("chat = %q", got)
	}
	ms := phone.WaitMessages(1, 3*time.Second)
	if len(ms) != 1 || string(ms[0].Body) != body || ms[0].ContentType != "text/plain" {
		t.Fatalf("phone got %+v", ms)
	}
	if !strings.Contains(ms[0].From, "<sip:1000@127.0.0.1>") || ms[0].Header("X-FS-Sending-Message") != s.ESL().CoreUUID() {
		t.Errorf("From %q, X-FS-Sending-Message %q", ms[0].From, ms[0].Header("X-FS-Sending-Message"))
	}

	u0 := newUA(t, s, "1000")
	body2 := "inbound\r\nvia the switch"
	if code, err := u0.SendMessage(testCtx(t), "1001", "text/plain", []byte(body2)); err != nil || code != 202 {
		t.Fatalf("SendMessage = %d, %v", code, err)
	}
	ms = phone.WaitMessages(2, 3*time.Second)
	if len(ms) != 2 || string(ms[1].Body) != body2 {
		t.Fatalf("phone got %+v", ms)
	}
	select {
	case r := <-u1.Received():
		t.Fatalf("registering UA received %q", r.Body)
	default:
	}
	if n := s.Chats(); n != 1 {
		t.Fatalf("Chats = %d", n)
	}
}

// TestUAContactPhoneAnswers: the phone's answer is the chat's result: a
// phone answering 486 fails the chat, a silenced one makes it give up.
func TestUAContactPhoneAnswers(t *testing.T) {
	s := newSwitch(t, SwitchOptions{ChatGiveUp: 600 * time.Millisecond, TimerF: time.Second})
	busy := sipptest.Start(t, sipptest.Options{Answer: 486})
	gone := sipptest.Start(t, sipptest.Options{})
	register(t, newContactUA(t, s, "1001", "sip:1001@"+busy.Addr()))
	register(t, newContactUA(t, s, "1002", gone.Contact("1002")))

	if got := s.esl.runAPI("chat", "sip|1000@127.0.0.1|1001@127.0.0.1|busy?|text/plain"); got != chatFailed {
		t.Fatalf("chat to busy phone = %q", got)
	}
	if rs := busy.Requests("MESSAGE"); len(rs) != 1 || rs[0].Status != 486 {
		t.Fatalf("busy phone: %+v", rs)
	}
	gone.Silence()
	start := time.Now()
	if got := s.esl.runAPI("chat", "sip|1000@127.0.0.1|1002@127.0.0.1|anyone?|text/plain"); got != chatFailed {
		t.Fatalf("chat to silent phone = %q", got)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("chat to silent phone failed after %v", d)
	}
	if n := len(gone.Messages()); n != 0 {
		t.Fatalf("silent phone logged %d messages", n)
	}
	if n := s.Chats(); n != 2 {
		t.Fatalf("Chats = %d", n)
	}
}

// TestUAContactInvalid: a Contact that is no SIP address is refused.
func TestUAContactInvalid(t *testing.T) {
	if _, err := NewUA(UAOptions{User: "1001", Switch: "127.0.0.1:5060", Contact: "<not a uri"}); err == nil {
		t.Fatal("NewUA accepted a bad Contact")
	}
}
