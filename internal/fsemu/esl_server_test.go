package fsemu

import (
	"net"
	"strings"
	"testing"
	"time"
)

const (
	authRequest = "Content-Type: auth/request\n\n"
	accepted    = "Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
	disconnect  = "Content-Type: text/disconnect-notice\nContent-Length: 67\n\n" +
		"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
)

func reply(text string) string { return "Content-Type: command/reply\nReply-Text: " + text + "\n\n" }

func newTestServer(t *testing.T, opts ESLOptions) *ESLServer {
	t.Helper()
	s, err := NewESLServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// login dials and authenticates, optionally subscribing.
func login(t *testing.T, s *ESLServer, sub string) *rawClient {
	t.Helper()
	c := dialESL(t, s.Addr())
	c.expect(authRequest)
	c.send("auth ClueCon\n\n")
	c.expect(accepted)
	if sub != "" {
		c.send(sub + "\n\n")
		format := strings.Fields(sub)[1]
		c.expect(reply("+OK event listener enabled " + format))
	}
	return c
}

func TestESLAuth(t *testing.T) {
	s := newTestServer(t, ESLOptions{Password: "secret"})
	c := dialESL(t, s.Addr())
	c.expect(authRequest)
	c.send("api status\n\n") // before auth: refused, connection stays
	c.expect(reply("-ERR command not found"))
	c.send("auth ClueCon\n\n")
	c.expect(reply("-ERR invalid"))
	c.expect(disconnect)
	c.expectEOF()

	c = dialESL(t, s.Addr())
	c.expect(authRequest)
	c.send("\r\n\nauth secret\r\n\r\n") // CRs and leading blank lines are tolerated
	c.expect(accepted)
	c.send("exit\n\n")
	c.expect(reply("+OK bye"))
	c.expect(disconnect)
	c.expectEOF()
}

func TestESLAuthTimeout(t *testing.T) {
	s := newTestServer(t, ESLOptions{AuthTimeout: 50 * time.Millisecond})
	c := dialESL(t, s.Addr())
	c.expect(authRequest)
	c.expect(disconnect)
	c.expectEOF()
}

func TestESLAPI(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	var gotArg string
	s.HandleAPI("Echo", func(a string) string { gotArg = a; return "got " + a + "\n" })
	s.HandleAPI("silent", func(string) string { return "" })
	c := login(t, s, "")
	c.send("api echo  hello world \n\n")
	c.expect("Content-Type: api/response\nContent-Length: 16\n\ngot hello world\n")
	if gotArg != "hello world" {
		t.Errorf("handler got %q (switch_api_execute strips whitespace)", gotArg)
	}
	c.send("api nosuch thing\n\n")
	c.expect("Content-Type: api/response\nContent-Length: 31\n\n-ERR nosuch Command not found!\n")
	c.send("api silent\n\n")
	c.expect("Content-Type: api/response\nContent-Length: 14\n\n-ERR no reply\n")
	c.send("bogus\n\n")
	c.expect(reply("-ERR command not found"))
}

func TestESLBgapi(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	s.HandleAPI("chat", func(a string) string { return "Sent" })
	c := login(t, s, "event plain BACKGROUND_JOB")
	long := strings.Repeat("j", 40)
	c.send("bgapi chat a|b\nJob-UUID: " + long + "\n\n")
	c.expect("Content-Type: command/reply\nReply-Text: +OK Job-UUID: " + long[:36] + "\nJob-UUID: " + long[:36] + "\n\n")
	ev := mustEvent(t, c)
	if ev.Get("Job-UUID") != long[:36] || ev.Get("Job-Command") != "chat" || ev.Get("Job-Command-Arg") != "a|b" || ev.Body != "Sent" {
		t.Errorf("BACKGROUND_JOB: %+v", ev)
	}
	names := []string{}
	for _, h := range ev.Headers {
		names = append(names, h.Name)
	}
	want := strings.Join(append(append([]string{}, stdHeaders...), "Job-UUID", "Job-Command", "Job-Command-Arg"), ",")
	if got := strings.Join(names, ","); got != want {
		t.Errorf("header order\n got %s\nwant %s", got, want)
	}

	// No Job-UUID header: a fresh UUID; no argument: no Job-Command-Arg.
	c.send("bgapi nosuch\n\n")
	f := string(c.mustFrame())
	uuid := strings.TrimSuffix(strings.TrimPrefix(f, "Content-Type: command/reply\nReply-Text: +OK Job-UUID: "), "\n\n")
	uuid, _, _ = strings.Cut(uuid, "\n")
	if len(uuid) != 36 || strings.Count(uuid, "-") != 4 {
		t.Fatalf("generated Job-UUID %q in %q", uuid, f)
	}
	ev = mustEvent(t, c)
	if _, has := ev.Value("Job-Command-Arg"); has || ev.Get("Job-UUID") != uuid || ev.Body != "-ERR nosuch Command not found!\n" {
		t.Errorf("BACKGROUND_JOB: %+v", ev)
	}
}

func mustEvent(t *testing.T, c *rawClient) *Event {
	t.Helper()
	ev, ok := decodeFrame(t, c.mustFrame())
	if !ok {
		t.Fatal("not an event frame")
	}
	return ev
}

// TestESLSubscriptionOrder is docs/decisions.md §3's subscription quirk on a live socket.
func TestESLSubscriptionOrder(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	good := login(t, s, "event json MESSAGE CUSTOM sofia::register")
	bad := login(t, s, "event json CUSTOM sofia::register MESSAGE")
	all := login(t, s, "event plain ALL")
	msg := s.Fire(NewMessageEvent(MessageParams{Sequence: s.NextSequence(), Body: "hi"}))
	reg := s.Fire(&Event{Headers: []Header{{"Event-Name", "CUSTOM"}, {"Event-Subclass", "sofia::register"}, {"from-user", "1000"}}})
	for _, c := range []*rawClient{good, all} {
		if ev := mustEvent(t, c); ev.Get("Event-Name") != "MESSAGE" || ev.Body != "hi" {
			t.Errorf("want MESSAGE first, got %v", ev.Headers[:1])
		}
	}
	for _, c := range []*rawClient{good, bad, all} {
		ev := mustEvent(t, c)
		if ev.Get("Event-Subclass") != "sofia::register" || ev.Get("Event-Sequence") != reg.Get("Event-Sequence") {
			t.Errorf("want sofia::register, got %v", ev.Headers[:2])
		}
	}
	if msg.Get("Event-Sequence") != "1" || reg.Get("Event-Sequence") != "2" || reg.Headers[0].Name != "Event-Subclass" {
		t.Errorf("sequence/order: %v / %v", msg.Get("Event-Sequence"), reg.Headers[:3])
	}
}

func TestESLEventCommands(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	c := login(t, s, "")
	for _, tc := range [][2]string{
		{"event", "-ERR no keywords supplied"},
		{"event json", "-ERR no keywords supplied"},
		{"event NOPE", "-ERR no keywords supplied"},
		{"event HEARTBEAT", "+OK event listener enabled json"}, // format stuck from above
		{"noevents", "+OK no longer listening for events"},
		{"noevents", "-ERR not listening for events"},
		{"event plain ALL", "+OK event listener enabled plain"},
		{"nixevent HEARTBEAT", "+OK events nixed"},
		{"filter Event-Name", "-ERR invalid syntax"},
		{"filter Event-Name MESSAGE", "+OK filter added. [Event-Name]=[MESSAGE]"},
		{"filter delete all", "+OK filter deleted. [all][]"},
		{"filter add Event-Name /^(MESSAGE|CUSTOM)$/", "+OK filter added. [Event-Name]=[/^(MESSAGE|CUSTOM)$/]"},
		{"log", "+OK log level  [7]"},
		{"nolog", "+OK no longer logging"},
		{"nolog", "-ERR not loging"},
		{"linger", "-ERR not controlling a session"},
		{"sendmsg", "-ERR invalid session id []"},
	} {
		c.send(tc[0] + "\n\n")
		c.expect(reply(tc[1]))
	}
	s.FireHeartbeat()                                         // nixed
	s.Fire(&Event{Headers: []Header{{"Event-Name", "TRAP"}}}) // filtered out
	s.Fire(&Event{Headers: []Header{{"Event-Name", "MESSAGE"}}, Body: "x"})
	if ev := mustEvent(t, c); ev.Get("Event-Name") != "MESSAGE" {
		t.Errorf("got %v", ev.Headers)
	}
}

func TestESLSendEvent(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	var hooked *Event
	s.HandleSendEvent(func(ev *Event) { hooked = ev })
	c := login(t, s, "event json CUSTOM SMS::SEND_MESSAGE")
	c.send("sendevent CUSTOM\nEvent-Subclass: SMS::SEND_MESSAGE\nto: 1001@127.0.0.1\nContent-Length: 5\n\nhello")
	r := string(c.mustFrame())
	uuid, ok := strings.CutPrefix(r, "Content-Type: command/reply\nReply-Text: +OK ")
	uuid = strings.TrimSuffix(uuid, "\n\n")
	if !ok || len(uuid) != 36 {
		t.Fatalf("reply %q", r)
	}
	ev := mustEvent(t, c)
	want := []string{"Command", "Event-Subclass", "to", "Content-Length", "Event-UUID", "Event-Name"}
	for i, n := range want {
		if ev.Headers[i].Name != n {
			t.Fatalf("header %d = %s, want %s (%v)", i, ev.Headers[i].Name, n, ev.Headers)
		}
	}
	if ev.Get("Event-UUID") != uuid || ev.Get("Event-Name") != "CUSTOM" || ev.Body != "hello" || hooked == nil || hooked.Body != "hello" {
		t.Errorf("event %+v hook %+v", ev, hooked)
	}
}

// TestESLHalfClose: a client that shuts down its writing side still gets
// the disconnect notice, as listener_run sends it after any read failure.
func TestESLHalfClose(t *testing.T) {
	s := newTestServer(t, ESLOptions{})
	c := login(t, s, "")
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.expect(disconnect)
	c.expectEOF()
}
