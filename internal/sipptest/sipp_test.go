package sipptest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"
)

func init() {
	// sipgo refuses to send UDP requests over 1300 bytes; sofia sends
	// 40,000-byte MESSAGEs over loopback (as fsemu sets it). Before any
	// sipgo goroutine exists.
	sip.UDPMTUSize = 65507 + 200
}

// TestMain: every sipp is killed and waited for, every sipgo goroutine ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testClient(t *testing.T) *client {
	t.Helper()
	c, err := newClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// options sends OPTIONS and returns the status, 0 on no answer.
func options(t *testing.T, c *client, p *Phone, wait time.Duration) int {
	t.Helper()
	res, err := c.Request(ctxFor(t, wait), sip.OPTIONS, p.Addr(), "1001", nil, nil)
	if err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("OPTIONS: %v", err)
		}
		return 0
	}
	return res.StatusCode
}

// message sends a MESSAGE with a Date header and returns the final response.
func message(t *testing.T, c *client, p *Phone, body []byte, date string, wait time.Duration) (*sip.Response, error) {
	t.Helper()
	hs := []sip.Header{sip.NewHeader("Content-Type", "text/plain;charset=UTF-8")}
	if date != "" {
		hs = append(hs, sip.NewHeader("Date", date))
	}
	return c.Request(ctxFor(t, wait), sip.MESSAGE, p.Addr(), "1001", hs, body)
}

func TestPhoneAnswers(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{})
	c := testClient(t)
	if got := options(t, c, p, 2*time.Second); got != 200 {
		t.Fatalf("OPTIONS answered %d", got)
	}
	res, err := message(t, c, p, []byte("hello"), "", 2*time.Second)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("MESSAGE: %v %v", res, err)
	}
	// The answer echoes the request's transaction and dialog headers.
	if res.CallID() == nil || res.CSeq() == nil || res.CSeq().MethodName != sip.MESSAGE ||
		res.From() == nil || res.From().Address.User != "sipptest" || res.To() == nil || res.To().Address.User != "1001" {
		t.Fatalf("answer headers: %s", res)
	}
	ms := p.Messages()
	if len(ms) != 1 || string(ms[0].Body) != "hello" || ms[0].Status != 200 {
		t.Fatalf("Messages = %+v", ms)
	}
	if ms[0].CallID != res.CallID().Value() || !strings.Contains(ms[0].From, "sip:sipptest@127.0.0.1") {
		t.Fatalf("message %+v, answer %s", ms[0], res)
	}
	if got := p.Contact("1001"); got != "<sip:1001@"+p.Addr()+">" {
		t.Fatalf("Contact = %q", got)
	}
	// The probe and our OPTIONS are in Requests, not in Messages.
	if n := len(p.Requests("OPTIONS")); n < 2 {
		t.Fatalf("%d OPTIONS seen", n)
	}
}

func TestPhoneOptionsAnswer(t *testing.T) {
	t.Parallel()
	for _, code := range []int{405, 404, 501} {
		t.Run(itoa(code), func(t *testing.T) {
			t.Parallel()
			p := Start(t, Options{OptionsAnswer: code})
			c := testClient(t)
			res, err := c.Request(ctxFor(t, 2*time.Second), sip.OPTIONS, p.Addr(), "1001", nil, nil)
			if err != nil || res.StatusCode != code {
				t.Fatalf("OPTIONS: %v %v", res, err)
			}
			if code == 405 && (res.GetHeader("Allow") == nil || res.GetHeader("Allow").Value() != "MESSAGE") {
				t.Errorf("405 without Allow: MESSAGE: %s", res)
			}
			// MESSAGE is still answered 200.
			if r, err := message(t, c, p, []byte("x"), "", 2*time.Second); err != nil || r.StatusCode != 200 {
				t.Fatalf("MESSAGE: %v %v", r, err)
			}
		})
	}
}

// TestPhoneAnswerNon2xx: a MESSAGE answered 486 is not in Messages, but in
// Requests with its status.
func TestPhoneAnswerNon2xx(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{Answer: 486})
	c := testClient(t)
	res, err := message(t, c, p, []byte("busy?"), "", 2*time.Second)
	if err != nil || res.StatusCode != 486 {
		t.Fatalf("MESSAGE: %v %v", res, err)
	}
	if ms := p.Messages(); len(ms) != 0 {
		t.Fatalf("Messages = %+v", ms)
	}
	rs := p.Requests("MESSAGE")
	if len(rs) != 1 || rs[0].Status != 486 || string(rs[0].Body) != "busy?" {
		t.Fatalf("Requests = %+v", rs)
	}
}

func TestPhoneSilenceResume(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{})
	c := testClient(t)
	p.Silence()
	start := time.Now()
	if got := options(t, c, p, time.Second); got != 0 {
		t.Fatalf("silenced phone answered OPTIONS %d", got)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("OPTIONS failed after %v, not by timeout", d)
	}
	// A MESSAGE sent while silent (and retransmitted) is answered once the
	// phone resumes, and counted once.
	type result struct {
		res *sip.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.Request(ctxFor(t, 10*time.Second), sip.MESSAGE, p.Addr(), "1001",
			[]sip.Header{sip.NewHeader("Content-Type", "text/plain")}, []byte("while away"))
		done <- result{res, err}
	}()
	time.Sleep(1600 * time.Millisecond) // Timer A: retransmissions at 0.5 s and 1.5 s
	if n := len(p.Messages()); n != 0 {
		t.Fatalf("silenced phone logged %d messages", n)
	}
	p.Resume()
	r := <-done
	if r.err != nil || r.res.StatusCode != 200 {
		t.Fatalf("MESSAGE after Resume: %v %v", r.res, r.err)
	}
	if got := options(t, c, p, 2*time.Second); got != 200 {
		t.Fatalf("resumed phone answered OPTIONS %d", got)
	}
	ms := p.Messages()
	if len(ms) != 1 || string(ms[0].Body) != "while away" {
		t.Fatalf("Messages = %+v", ms)
	}
	if n := len(p.Requests("")); n < 4 { // probe, OPTIONS (+ its retransmissions: once), MESSAGE, OPTIONS
		t.Fatalf("Requests = %d", n)
	}
	// Silence twice, Resume twice: no-ops.
	p.Silence()
	p.Silence()
	p.Resume()
	p.Resume()
	if got := options(t, c, p, 2*time.Second); got != 200 {
		t.Fatalf("OPTIONS %d", got)
	}
}

func TestPhoneKill(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{})
	c := testClient(t)
	if _, err := message(t, c, p, []byte("before"), "", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Silence() // Kill ends a silenced phone too
	p.Kill()
	if !p.Exited() {
		t.Fatal("not exited")
	}
	// The port is closed: a datagram to it gets ICMP port unreachable,
	// which a connected UDP socket reports as ECONNREFUSED.
	conn, err := net.Dial("udp4", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Read(make([]byte, 100))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read from killed phone: %v, want connection refused", err)
	}
	if got := options(t, c, p, 500*time.Millisecond); got != 0 {
		t.Fatalf("killed phone answered %d", got)
	}
	// What it answered before is still there.
	if ms := p.Messages(); len(ms) != 1 || string(ms[0].Body) != "before" {
		t.Fatalf("Messages = %+v", ms)
	}
	p.Kill() // again: no-op
}

// TestPhoneMessagesByteExact: bodies come back from sipp's message trace
// byte for byte, with From and Date, in arrival order.
func TestPhoneMessagesByteExact(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{})
	c := testClient(t)
	bodies := [][]byte{
		[]byte("plain"),
		[]byte("Grüße, 你好, emoji 🎉, Ωmega"),
		[]byte(`"double" 'single' quotes`),
		[]byte("pipe|separated|fields||"),
		[]byte(`back\slash \\ \n \r \" \x00 (escapes, not bytes)`),
		[]byte("line1\nline2\n\nline4\n"),
		[]byte("crlf1\r\ncrlf2\r\n\r\nafter a blank line\r\n"),
		[]byte("lone\rCR, tab\there, trailing spaces   "),
		[]byte("\n\nleading newlines"),
		[]byte("sipp keywords [last_Via:] [call_id] [len] %s %d %n"),
		[]byte("looks like a trace entry:\n----------------------------------------------- 2026-01-01 00:00:00.000000\nUDP message received [5] bytes :\n\nhello\n"),
		[]byte("<xml attr=\"v\">&amp; &lt;</xml> ]]> <![CDATA["),
		[]byte(" "),
		bytes.Repeat([]byte("0123456789abcdef\n"), 2400), // 40,800 bytes
	}
	dates := []string{"Mon, 02 Jan 2006 15:04:05 GMT", ""}
	for i, b := range bodies {
		res, err := message(t, c, p, b, dates[i%2], 2*time.Second)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("MESSAGE %d: %v %v", i, res, err)
		}
	}
	ms := p.Messages()
	if len(ms) != len(bodies) {
		t.Fatalf("%d messages, sent %d", len(ms), len(bodies))
	}
	for i, m := range ms {
		if !bytes.Equal(m.Body, bodies[i]) {
			t.Errorf("message %d: body\n got %q\nwant %q", i, m.Body, bodies[i])
		}
		if m.Truncated {
			t.Errorf("message %d truncated", i)
		}
		if m.Date != dates[i%2] || m.Header("Date") != dates[i%2] {
			t.Errorf("message %d: Date %q / %q, want %q", i, m.Date, m.Header("Date"), dates[i%2])
		}
		if !strings.HasPrefix(m.From, `"sipptest" <sip:sipptest@127.0.0.1>;tag=`) {
			t.Errorf("message %d: From %q", i, m.From)
		}
		if m.ContentType != "text/plain;charset=UTF-8" || m.Method != "MESSAGE" || m.Status != 200 {
			t.Errorf("message %d: %q %q %d", i, m.ContentType, m.Method, m.Status)
		}
		if i > 0 && m.At.Before(ms[i-1].At) {
			t.Errorf("message %d logged before message %d", i, i-1)
		}
	}
}

// TestPhoneNULBody: sipp logs a message as a C string, so a body with a NUL
// byte comes back cut at the NUL and flagged Truncated; later messages are
// unaffected.
func TestPhoneNULBody(t *testing.T) {
	t.Parallel()
	p := Start(t, Options{})
	c := testClient(t)
	for _, b := range []string{"a\x00b", "next"} {
		if res, err := message(t, c, p, []byte(b), "", 2*time.Second); err != nil || res.StatusCode != 200 {
			t.Fatalf("MESSAGE %q: %v %v", b, res, err)
		}
	}
	ms := p.Messages()
	if len(ms) != 2 {
		t.Fatalf("Messages = %+v", ms)
	}
	if !ms[0].Truncated || string(ms[0].Body) != "a" {
		t.Errorf("NUL message: truncated %v, body %q", ms[0].Truncated, ms[0].Body)
	}
	if ms[1].Truncated || string(ms[1].Body) != "next" {
		t.Errorf("next message: truncated %v, body %q", ms[1].Truncated, ms[1].Body)
	}
}

// TestParseTrace covers the trace parser on a crafted file: an entry still
// being written is left for later.
func TestParseTrace(t *testing.T) {
	entry := func(dir string, msg string) string {
		n := itoa(len(msg))
		head := "UDP message received [" + n + "] bytes :"
		if dir == "sent" {
			head = "UDP message sent (" + n + " bytes):"
		}
		return traceSep + "2026-11-26 08:36:09.173369\n" + head + "\n\n" + msg + "\n"
	}
	req := "MESSAGE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 7 MESSAGE\r\nContent-Length: 4\r\n\r\nbody"
	res := "SIP/2.0 202 Accepted\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:1001@127.0.0.1>;tag=x\r\nCall-ID: c1\r\nCSeq: 7 MESSAGE\r\nContent-Length: 0\r\n\r\n"
	log := "some other line\n" + entry("recv", req) + entry("recv", req) + entry("sent", res)
	rs := requestsFrom(parseTrace([]byte(log)), "MESSAGE")
	if len(rs) != 1 || rs[0].Status != 202 || string(rs[0].Body) != "body" || rs[0].CSeq != "7 MESSAGE" {
		t.Fatalf("parsed %+v", rs)
	}
	partial := log + entry("recv", strings.Replace(req, "c1", "c2", 1))
	partial = partial[:len(partial)-10]
	if rs := requestsFrom(parseTrace([]byte(partial)), ""); len(rs) != 1 {
		t.Fatalf("partial entry parsed: %+v", rs)
	}
}
