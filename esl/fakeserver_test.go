package esl

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a scripted mod_event_socket on 127.0.0.1. Each connection is
// served by serve (default: fc.serveStd) in its own goroutine, all ended by close.
type fakeServer struct {
	t    testing.TB
	ln   net.Listener
	w    wire
	wg   sync.WaitGroup
	quit chan struct{}

	mu      sync.Mutex
	core    string                  // answered to "api global_getvar core_uuid"
	conns   []*fakeConn             // every accepted connection, in order
	serve   func(fc *fakeConn)      // per connection script
	api     func(cmd string) []byte // frame answering "api <cmd>"; nil: echo
	onEvent func(fc *fakeConn)      // called once a connection subscribed
	// jobDelay delays each BACKGROUND_JOB after its bgapi reply.
	jobDelay time.Duration
}

type fakeConn struct {
	s   *fakeServer
	nc  net.Conn
	br  *bufio.Reader
	wmu sync.Mutex

	mu   sync.Mutex
	cmds []string // every command received, header lines included
}

func newFakeServer(t testing.TB) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, w: loadWire(t), quit: make(chan struct{}), core: "core-1"}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		fc := &fakeConn{s: s, nc: nc, br: bufio.NewReader(nc)}
		s.mu.Lock()
		s.conns = append(s.conns, fc)
		serve := s.serve
		s.mu.Unlock()
		if serve == nil {
			serve = (*fakeConn).serveStd
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer nc.Close()
			serve(fc)
		}()
	}
}

func (s *fakeServer) close() {
	select {
	case <-s.quit:
		return
	default:
	}
	close(s.quit)
	s.ln.Close()
	s.mu.Lock()
	for _, fc := range s.conns {
		fc.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) set(f func(s *fakeServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *fakeServer) connections() []*fakeConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*fakeConn(nil), s.conns...)
}

// subscribers are the connections that sent an "event" command.
func (s *fakeServer) subscribers() []*fakeConn {
	var out []*fakeConn
	for _, fc := range s.connections() {
		if fc.subscribed() {
			out = append(out, fc)
		}
	}
	return out
}

func (fc *fakeConn) send(b []byte) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_, err := fc.nc.Write(b)
	return err
}

// readCommand reads one command: lines up to an empty line, as FreeSWITCH does.
func (fc *fakeConn) readCommand() (string, error) {
	var lines []string
	for {
		line, err := fc.br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(lines) == 0 {
				continue
			}
			cmd := strings.Join(lines, "\n")
			fc.mu.Lock()
			fc.cmds = append(fc.cmds, cmd)
			fc.mu.Unlock()
			return cmd, nil
		}
		lines = append(lines, line)
	}
}

func (fc *fakeConn) commands() []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]string(nil), fc.cmds...)
}

func (fc *fakeConn) subscribed() bool {
	for _, c := range fc.commands() {
		if strings.HasPrefix(c, "event ") {
			return true
		}
	}
	return false
}

// serveStd plays FreeSWITCH: auth, event, api, bgapi (reply, then the
// BACKGROUND_JOB on every subscribed connection), exit.
func (fc *fakeConn) serveStd() {
	s := fc.s
	if fc.send(s.w.authRequest) != nil {
		return
	}
	for {
		cmd, err := fc.readCommand()
		if err != nil {
			return
		}
		line, headers, _ := strings.Cut(cmd, "\n")
		switch {
		case strings.HasPrefix(line, "auth "):
			err = fc.send(s.w.accepted)
		case strings.HasPrefix(line, "event json "):
			err = fc.send(s.w.subscribed)
			s.mu.Lock()
			on := s.onEvent
			s.mu.Unlock()
			if on != nil && err == nil {
				s.wg.Add(1)
				go func() { defer s.wg.Done(); on(fc) }()
			}
		case strings.HasPrefix(line, "filter "):
			// As FreeSWITCH answers (mod_event_socket.c, parse_command).
			name, val, _ := strings.Cut(strings.TrimPrefix(line, "filter "), " ")
			err = fc.send([]byte("Content-Type: command/reply\nReply-Text: +OK filter added. [" + name + "]=[" + val + "]\n\n"))
		case line == "api global_getvar core_uuid":
			s.mu.Lock()
			core := s.core
			s.mu.Unlock()
			err = fc.send(apiResponse(core))
		case strings.HasPrefix(line, "api "):
			s.mu.Lock()
			api := s.api
			s.mu.Unlock()
			arg := strings.TrimPrefix(line, "api ")
			if api == nil {
				err = fc.send(apiResponse(arg))
			} else {
				err = fc.send(api(arg))
			}
		case strings.HasPrefix(line, "bgapi "):
			job := strings.TrimPrefix(headers, "Job-UUID: ")
			err = fc.send(bytes.ReplaceAll(s.w.bgapiReply, []byte("cap14-job-1"), []byte(job)))
			if err == nil {
				ev := findFrame(s.t, "esl_14_json_heartbeat_bgapi.raw", `"Event-Name":"BACKGROUND_JOB"`)
				if job != "cap14-job-1" {
					ev = reframe(s.t, ev, "cap14-job-1", job)
				}
				// The job runs in its own thread in FreeSWITCH: the result
				// comes after the reply, on the subscribed connections.
				s.mu.Lock()
				delay := s.jobDelay
				s.mu.Unlock()
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					select {
					case <-time.After(delay):
					case <-s.quit:
						return
					}
					for _, sub := range s.subscribers() {
						_ = sub.send(ev)
					}
				}()
			}
		case line == "exit":
			_ = fc.send(s.w.bye)
			_ = fc.send(s.w.disconnect)
			return
		default:
			err = fc.send([]byte("Content-Type: command/reply\nReply-Text: -ERR command not found\n\n"))
		}
		if err != nil {
			return
		}
	}
}

// waitFor polls cond until it holds or 5 s passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
