package fsemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const dynamicTemplate = "http://127.0.0.1:18080/fsxml?body=${url_encode(${_body})}"

// urlFor is the gateway-url the capture was made with.
func urlFor(fx fixture) string {
	if strings.Contains(fx.reqLine, "?body=") {
		return dynamicTemplate
	}
	return "http://127.0.0.1:18080/fsxml"
}

// firstDiff says where two byte strings part, for readable failures.
func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return fmt.Sprintf("differ at byte %d: got %q, want %q", i, a[i:min(len(a), i+40)], b[i:min(len(b), i+40)])
}

// TestBuildRequestMatchesCaptures is the drift check: the event rebuilt
// with NewMessageEvent from each captured form's decoded fields must give
// the captured request byte for byte, dynamic URL included.
func TestBuildRequestMatchesCaptures(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		fields := decodeForm(t, fx.body)
		want := []string{"hostname", "section", "tag_name", "key_name", "key_value"}
		for i, n := range want {
			if fields[i].Name != n {
				t.Fatalf("%s: field %d is %s, want %s", fx.name, i, fields[i].Name, n)
			}
		}
		ev := eventFor(t, fx)
		if !reflect.DeepEqual(ev.Headers, fields[5:]) {
			t.Errorf("%s: NewMessageEvent headers differ from the capture:\n got %v\nwant %v", fx.name, ev.Headers, fields[5:])
		}
		before := ev.Clone()
		x := &XMLCurl{URL: urlFor(fx)}
		got, err := x.BuildRequest(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, fx.raw) {
			t.Errorf("%s: %s", fx.name, firstDiff(got, fx.raw))
		}
		if !reflect.DeepEqual(ev, before) {
			t.Errorf("%s: BuildRequest changed the event", fx.name)
		}
		// The same bytes from the captured header list itself.
		got2, _ := x.BuildRequest(&Event{Headers: fields[5:], Body: ev.Body})
		if !bytes.Equal(got2, fx.raw) {
			t.Errorf("%s (raw headers): %s", fx.name, firstDiff(got2, fx.raw))
		}
	}
}

// backend is a raw HTTP listener on 127.0.0.1 that records each request
// exactly and whether the client closed the connection afterwards.
type backend struct {
	ln      net.Listener
	answer  func(req []byte) []byte // nil: never answer
	mu      sync.Mutex
	reqs    [][]byte
	closed  int
	wg      sync.WaitGroup
	release chan struct{}
}

func newBackend(t *testing.T, answer func([]byte) []byte) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, answer: answer, release: make(chan struct{})}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(func() { close(b.release); ln.Close(); b.wg.Wait() })
	return b
}

func (b *backend) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() { defer b.wg.Done(); defer c.Close(); b.handle(c) }()
	}
}

func (b *backend) handle(c net.Conn) {
	br := bufio.NewReader(c)
	var req bytes.Buffer
	cl := 0
	for {
		line, err := br.ReadString('\n')
		req.WriteString(line)
		if err != nil {
			return
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			cl, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	if _, err := io.CopyN(&req, br, int64(cl)); err != nil {
		return
	}
	b.mu.Lock()
	b.reqs = append(b.reqs, req.Bytes())
	b.mu.Unlock()
	if b.answer == nil {
		<-b.release
		return
	}
	c.Write(b.answer(req.Bytes()))
	// A keep-alive client would leave the socket open; FreeSWITCH closes.
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); errors.Is(err, io.EOF) {
		b.mu.Lock()
		b.closed++
		b.mu.Unlock()
	}
}

func httpAnswer(status string, body []byte) func([]byte) []byte {
	return func([]byte) []byte {
		return append([]byte(fmt.Sprintf("HTTP/1.1 %s\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n", status, len(body))), body...)
	}
}

// TestLookupSendsCapturedBytes sends every captured request through a real
// socket: the backend must receive the captured bytes (Host carrying the
// test port), once per lookup on its own connection, closed afterwards.
func TestLookupSendsCapturedBytes(t *testing.T) {
	fxs := loadFixtures(t)
	var mu sync.Mutex
	var cur []byte
	b := newBackend(t, func([]byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		return httpAnswer("200 OK", cur)(nil)
	})
	addr := b.ln.Addr().String()
	for i, fx := range fxs {
		mu.Lock()
		cur = fx.answer
		mu.Unlock()
		ev := eventFor(t, fx)
		x := &XMLCurl{URL: strings.Replace(urlFor(fx), "127.0.0.1:18080", addr, 1), Timeout: 5 * time.Second}
		res, err := x.Lookup(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Replace(fx.raw, []byte("Host: 127.0.0.1:18080\r\n"), []byte("Host: "+addr+"\r\n"), 1)
		b.mu.Lock()
		got := b.reqs[i]
		b.mu.Unlock()
		if !bytes.Equal(got, want) || !bytes.Equal(res.Request, want) {
			t.Errorf("%s: %s", fx.name, firstDiff(got, want))
		}
		notFound := bytes.Contains(fx.answer, []byte(`status="not found"`))
		if res.StatusCode != 200 || !bytes.Equal(res.Body, fx.answer) || res.NotFound != notFound || res.Fallback != notFound {
			t.Errorf("%s: result %+v", fx.name, res)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		b.mu.Lock()
		n, closed := len(b.reqs), b.closed
		b.mu.Unlock()
		if closed == len(fxs) || time.Now().After(deadline) {
			if n != len(fxs) || closed != len(fxs) {
				t.Errorf("%d lookups: %d requests, %d closed connections", len(fxs), n, closed)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLookupFallbacks(t *testing.T) {
	chatplan := []byte(`<document type="freeswitch/xml"><section name="chatplan"><context name="public"/></section></document>`)
	cases := []struct {
		name   string
		answer func([]byte) []byte
		status int
		fall   bool
	}{
		{"ok", httpAnswer("200 OK", chatplan), 200, false},
		{"http 500", httpAnswer("500 Internal Server Error", chatplan), 500, true},
		{"http 302", httpAnswer("302 Found", chatplan), 302, true},
		{"unparsable", httpAnswer("200 OK", []byte(`<document><section name="chatplan">`)), 200, true},
		{"no chatplan section", httpAnswer("200 OK", []byte(`<document><section name="dialplan"/></document>`)), 200, true},
		{"empty body", httpAnswer("200 OK", nil), 200, true},
		{"oversized", httpAnswer("200 OK", append(bytes.Repeat([]byte(" "), maxResponseBytes), chatplan...)), 200, true},
		{"timeout", nil, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t, c.answer)
			x := &XMLCurl{URL: "http://" + b.ln.Addr().String() + "/fs/chatplan", Timeout: 300 * time.Millisecond}
			start := time.Now()
			res, err := x.Lookup(context.Background(), NewMessageEvent(MessageParams{Body: "hi"}))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != c.status || res.Fallback != c.fall {
				t.Errorf("status %d fallback %v (%s), want %d %v", res.StatusCode, res.Fallback, res.Reason, c.status, c.fall)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		x := &XMLCurl{URL: "http://" + addr + "/fs/chatplan", Timeout: time.Second}
		res, err := x.Lookup(context.Background(), NewMessageEvent(MessageParams{}))
		if err != nil || !res.Fallback || res.Err == nil || res.StatusCode != 0 {
			t.Errorf("res %+v err %v", res, err)
		}
	})
}

func TestLookupBasicAuthAndSideEffect(t *testing.T) {
	b := newBackend(t, httpAnswer("200 OK", []byte(`<document><section name="result"><result status="not found"/></section></document>`)))
	x := &XMLCurl{URL: "http://" + b.ln.Addr().String() + "/fs/chatplan?b=${url_encode(${_body})}&s=${section}", Credentials: "sipsilo:change-me"}
	ev := NewMessageEvent(MessageParams{Body: "  two  \n"})
	res, err := x.Lookup(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	// libcurl puts Authorization between Host and User-Agent; the API
	// argument is whitespace-stripped; ${section} sees the pushed header.
	wantHead := "POST /fs/chatplan?b=two&s=chatplan HTTP/1.1\r\nHost: " + b.ln.Addr().String() +
		"\r\nAuthorization: Basic c2lwc2lsbzpjaGFuZ2UtbWU=\r\nUser-Agent: freeswitch-xml/1.0\r\n"
	if !bytes.HasPrefix(res.Request, []byte(wantHead)) {
		t.Errorf("request head:\n%q\nwant prefix\n%q", res.Request[:min(len(res.Request), 200)], wantHead)
	}
	if !res.NotFound || !res.Fallback {
		t.Errorf("not found answer: %+v", res)
	}
	if got := ev.Headers[:3]; !reflect.DeepEqual(got, []Header{{"section", "chatplan"}, {"hostname", "vm"}, {"Event-Name", "MESSAGE"}}) {
		t.Errorf("dynamic URL side effect: %v", got)
	}
	if bytes.Contains(res.Request, []byte("&hostname=")) {
		t.Error("pushed headers leaked into the form")
	}
	static := NewMessageEvent(MessageParams{})
	x = &XMLCurl{URL: "http://" + b.ln.Addr().String() + "/x", StaticURL: true}
	if _, err := x.Lookup(context.Background(), static); err != nil || static.Headers[0].Name != "Event-Name" {
		t.Errorf("StaticURL changed the event: %v %v", err, static.Headers[0])
	}
}

func TestProcess(t *testing.T) {
	final := mustRead(t, fixtureDir+"/07_s05c_chatplan_final_only.answer.xml")
	b := newBackend(t, httpAnswer("200 OK", final))
	x := &XMLCurl{URL: "http://" + b.ln.Addr().String() + "/fs/chatplan", Timeout: time.Second}
	out, res, err := x.Process(context.Background(), NewMessageEvent(MessageParams{Body: "x"}))
	if err != nil || res.Fallback || !out.Final || out.DirectDeliveries != 0 {
		t.Errorf("final answer: %+v %+v %v", out, res, err)
	}
	b.ln.Close()
	out, res, err = x.Process(context.Background(), NewMessageEvent(MessageParams{Body: "x"}))
	if err != nil || !res.Fallback || !out.Fallback || out.DirectDeliveries != 1 || out.Final {
		t.Errorf("backend down: %+v %+v %v", out, res, err)
	}
}
