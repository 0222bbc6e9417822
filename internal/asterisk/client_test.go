package asterisk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeAMI is a scripted AMI server on 127.0.0.1: serve runs once per
// connection with the connection's reader and writer.
type fakeAMI struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns int
}

func newFakeAMI(t *testing.T, serve func(n int, r *bufio.Reader, w net.Conn)) *fakeAMI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAMI{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			n := f.conns
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				serve(n, bufio.NewReader(c), c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeAMI) addr() string { return f.ln.Addr().String() }

// login answers the banner and the Login action with Success.
func login(r *bufio.Reader, w net.Conn) (Message, bool) {
	fmt.Fprint(w, "Asterisk Call Manager/11.0.0\r\n")
	m, err := readMessage(r)
	if err != nil {
		return m, false
	}
	fmt.Fprintf(w, "Response: Success\r\nActionID: %s\r\nMessage: Authentication accepted\r\n\r\n", m.Get("ActionID"))
	return m, true
}

func runClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	}
	c := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func waitUp(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("not connected: %v (%v)", err, c.Err())
	}
}

// TestClientActionsAndEventsInterleaved: responses find their actions by
// ActionID whatever comes between them: events, stray blank lines, lines
// without a colon, a list's events, another action's response.
func TestClientActionsAndEventsInterleaved(t *testing.T) {
	f := newFakeAMI(t, func(_ int, r *bufio.Reader, w net.Conn) {
		lm, ok := login(r, w)
		if !ok || lm.Get("Username") != "u" || lm.Get("Secret") != "s e c" || lm.Get("Events") != "on" {
			return
		}
		a1, _ := readMessage(r)
		a2, _ := readMessage(r)
		// Answer the second first, with an event and junk in between.
		fmt.Fprintf(w, "\r\n\r\nEvent: ContactStatus\r\nAOR: 1001\r\nURI: sip:x\r\nContactStatus: Removed\r\n\r\n")
		fmt.Fprintf(w, "Response: Success\r\nActionID: %s\r\nEventList: start\r\n\r\n", a2.Get("ActionID"))
		fmt.Fprintf(w, "Event: ContactList\r\nActionID: %s\r\nUri: sip:a\r\n\r\n", a2.Get("ActionID"))
		fmt.Fprintf(w, "Event: PeerStatus\r\nPeer: PJSIP/1001\r\n\r\n")
		fmt.Fprintf(w, "Event: ContactList\r\nActionID: %s\r\nUri: sip:b\r\n\r\n", a2.Get("ActionID"))
		fmt.Fprintf(w, "Event: ContactListComplete\r\nActionID: %s\r\nEventList: Complete\r\nListItems: 2\r\n\r\n", a2.Get("ActionID"))
		fmt.Fprintf(w, "Response: Error\r\nActionID: %s\r\nMessage: Module not loaded\r\nold style output line\r\n\r\n", a1.Get("ActionID"))
		io.Copy(io.Discard, r) // until the client hangs up
	})
	events := make(chan Message, 10)
	c := runClient(t, Config{Addr: f.addr(), User: "u", Secret: "s e c", Events: true,
		OnEvent: func(_ string, ev Message) { events <- ev }})
	waitUp(t, c)
	var wg sync.WaitGroup
	var err1 error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err1 = c.Action(context.Background(), "ModuleCheck", Field{"Module", "func_curl"})
	}()
	time.Sleep(50 * time.Millisecond) // the first action goes out first (the fake reads in order)
	res, err := c.Action(context.Background(), "PJSIPShowContacts")
	wg.Wait()
	if err != nil || len(res.Events) != 2 || res.Events[0].Get("Uri") != "sip:a" || res.Events[1].Get("Uri") != "sip:b" {
		t.Fatalf("list: %v %+v", err, res)
	}
	if !errors.Is(err1, ErrAction) || !strings.Contains(err1.Error(), "Module not loaded") {
		t.Fatalf("error response: %v", err1)
	}
	if ev := <-events; ev.Get("Event") != "ContactStatus" || ev.Get("ContactStatus") != "Removed" {
		t.Fatalf("first event %+v", ev)
	}
	if ev := <-events; ev.Get("Event") != "PeerStatus" {
		t.Fatalf("second event %+v", ev)
	}
}

// TestClientDropsOversizedFramesAndReconnects: a line over the limit ends
// the connection (the waiting action fails, it does not hang), the client
// dials again, and OnConnect runs for the new session.
func TestClientDropsOversizedFramesAndReconnects(t *testing.T) {
	f := newFakeAMI(t, func(n int, r *bufio.Reader, w net.Conn) {
		if _, ok := login(r, w); !ok {
			return
		}
		a, err := readMessage(r)
		if err != nil {
			return
		}
		if n == 1 {
			fmt.Fprintf(w, "Response: Success\r\nActionID: %s\r\nOutput: %s\r\n\r\n", a.Get("ActionID"), strings.Repeat("x", maxLine+1))
			io.Copy(io.Discard, r)
			return
		}
		fmt.Fprintf(w, "Response: Success\r\nActionID: %s\r\nPing: Pong\r\n\r\n", a.Get("ActionID"))
		io.Copy(io.Discard, r)
	})
	sessions := make(chan string, 4)
	c := runClient(t, Config{Addr: f.addr(), OnConnect: func(_ context.Context, s string) { sessions <- s },
		RetryMin: 400 * time.Millisecond, RetryMax: 400 * time.Millisecond})
	waitUp(t, c)
	if _, err := c.Action(context.Background(), "Ping"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("action on a connection dropped for a long line: %v", err)
	}
	waitErr(t, c, ErrFrame) // until the next dial, at least 200 ms away
	s1 := <-sessions
	s2 := <-sessions
	if s1 == s2 {
		t.Fatal("same session after reconnecting")
	}
	waitUp(t, c)
	res, err := c.Action(context.Background(), "Ping")
	if err != nil || res.Response.Get("Ping") != "Pong" {
		t.Fatalf("after reconnect: %v %+v", err, res)
	}
}

// TestClientLoginFailures: a server that is not AMI and a refused login are
// told apart and retried; an action without a connection fails at once, and
// one without an answer fails at its deadline.
func TestClientLoginFailures(t *testing.T) {
	notAMI := newFakeAMI(t, func(_ int, r *bufio.Reader, w net.Conn) {
		fmt.Fprint(w, "SSH-2.0-OpenSSH\r\n")
		io.Copy(io.Discard, r)
	})
	c := runClient(t, Config{Addr: notAMI.addr()})
	waitErr(t, c, ErrNotAMI)
	if _, err := c.Action(context.Background(), "Ping"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("action while not connected: %v", err)
	}
	refused := newFakeAMI(t, func(_ int, r *bufio.Reader, w net.Conn) {
		fmt.Fprint(w, "Asterisk Call Manager/11.0.0\r\n")
		m, _ := readMessage(r)
		fmt.Fprintf(w, "Response: Error\r\nActionID: %s\r\nMessage: Authentication failed\r\n\r\n", m.Get("ActionID"))
	})
	c2 := runClient(t, Config{Addr: refused.addr()})
	waitErr(t, c2, ErrAuth)
	if st := c2.Stats(); st.Up || st.Logins != 0 || st.Failures == 0 {
		t.Fatalf("after a refused login: %+v", st)
	}
	silent := newFakeAMI(t, func(_ int, r *bufio.Reader, w net.Conn) {
		if _, ok := login(r, w); ok {
			io.Copy(io.Discard, r)
		}
	})
	c3 := runClient(t, Config{Addr: silent.addr(), ActionTimeout: 200 * time.Millisecond})
	waitUp(t, c3)
	if st := c3.Stats(); !st.Up || st.Logins != 1 || st.Failures != 0 {
		t.Fatalf("logged in once: %+v", st)
	}
	if _, err := c3.Action(context.Background(), "Ping"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered action: %v", err)
	}
}

func waitErr(t *testing.T, c *Client, want error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !errors.Is(c.Err(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("Err %v, want %v", c.Err(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
