package esl

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The first api answer of esl_06 (show registrations as json), replayed byte for byte.
func TestAPICapturedResponse(t *testing.T) {
	s := newFakeServer(t)
	resp := findFrame(t, "esl_06_api_registered_api.raw", "api/response", `"row_count":2`)
	s.set(func(s *fakeServer) {
		s.api = func(cmd string) []byte {
			if cmd == "show registrations as json" {
				return resp
			}
			return apiResponse("-ERR " + cmd + " Command not found!\n")
		}
	})
	c, _ := startClient(t, Config{Addr: s.addr()})
	ctx := context.Background()
	out, err := c.API(ctx, "show registrations as json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, `{"row_count":2,"rows":[{"reg_user":"1000"`) || !strings.HasSuffix(out, "}]}") {
		t.Errorf("API=%q", out)
	}
	out, err = c.API(ctx, "nosuch")
	if !errors.Is(err, ErrCommand) || out != "-ERR nosuch Command not found!\n" {
		t.Errorf("API(nosuch)=%q, %v; want the -ERR text and ErrCommand", out, err)
	}
	if _, err := c.API(ctx, "status\nevent plain ALL"); !errors.Is(err, ErrBadInput) {
		t.Errorf("API with LF: %v, want ErrBadInput", err)
	}
}

// A command that times out poisons its connection: its late reply must not
// become the answer to the next command (eslgo defect 2).
func TestAPITimeoutReplacesConnection(t *testing.T) {
	s := newFakeServer(t)
	release := make(chan struct{})
	s.set(func(s *fakeServer) {
		s.api = func(cmd string) []byte {
			if cmd == "slow" {
				<-release
				return apiResponse("late-reply")
			}
			return apiResponse(cmd)
		}
	})
	c, _ := startClient(t, Config{Addr: s.addr(), CommandTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	start := time.Now()
	if _, err := c.API(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("API(slow)=%v, want a deadline error", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("timeout took %v", took)
	}
	close(release) // the late reply goes out now, on the old connection
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := c.API(ctx2, "echo fresh")
	if err != nil || out != "echo fresh" {
		t.Fatalf("API(echo fresh)=%q, %v; want its own answer", out, err)
	}
	// Two command connections: the poisoned one and its replacement.
	n := 0
	for _, fc := range s.connections() {
		if !fc.subscribed() {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d command connections, want 2", n)
	}
}

func TestAPIConcurrentCallersGetTheirOwnAnswers(t *testing.T) {
	s := newFakeServer(t)
	c, _ := startClient(t, Config{Addr: s.addr()})
	errs := make(chan error, 50)
	for i := range 50 {
		go func() {
			want := "echo " + strings.Repeat("x", i)
			got, err := c.API(context.Background(), want)
			if err == nil && got != want {
				err = errors.New("got " + got + ", want " + want)
			}
			errs <- err
		}()
	}
	for range 50 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BgAPI sends our Job-UUID as a header line and returns the body of the
// BACKGROUND_JOB that carries it (frames from capture 14, where the id was
// cap14-job-1); other events keep flowing to Events.
func TestBgAPIResultByJobUUID(t *testing.T) {
	s := newFakeServer(t)
	msg := findFrame(t, "esl_14_json_heartbeat_bgapi.raw", `"Event-Name":"MESSAGE"`, "Delivery-Result-Code")
	s.set(func(s *fakeServer) { s.onEvent = func(fc *fakeConn) { _ = fc.send(msg) } })
	c, _ := startClient(t, Config{Addr: s.addr()})
	nextConnected(t, c)
	if e := nextEvent(t, c); e.Get("Delivery-Result-Code") != "200" {
		t.Fatalf("first event %s, want the captured MESSAGE", e.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, job := range []string{"cap14-job-1", "01JOBULID0000000000000002"} {
		got, err := c.BgAPI(ctx, "chat", "sip|1000@127.0.0.1|1001@127.0.0.1|json job test|text/plain", job)
		if err != nil || got != "Sent" {
			t.Fatalf("BgAPI(%s)=%q, %v; want Sent", job, got, err)
		}
	}
	var sent []string
	for _, fc := range s.connections() {
		for _, cmd := range fc.commands() {
			if strings.HasPrefix(cmd, "bgapi ") {
				sent = append(sent, cmd)
			}
		}
	}
	want := "bgapi chat sip|1000@127.0.0.1|1001@127.0.0.1|json job test|text/plain\nJob-UUID: cap14-job-1"
	if len(sent) != 2 || sent[0] != want {
		t.Errorf("sent %q, want first %q", sent, want)
	}
	for _, bad := range [][3]string{{"chat", "a\r\nJob-UUID: x", "j"}, {"chat", "a", "j\nx"}, {"chat", "a", ""}} {
		if _, err := c.BgAPI(ctx, bad[0], bad[1], bad[2]); !errors.Is(err, ErrBadInput) {
			t.Errorf("BgAPI%q: %v, want ErrBadInput", bad, err)
		}
	}
	select {
	case e := <-c.Events():
		t.Errorf("claimed result also on Events: %s %s", e.Name, e.JobUUID)
	default:
	}
}

// A result that arrives after BgAPI gave up is not lost: it goes to Events.
func TestBgAPILateResultGoesToEvents(t *testing.T) {
	s := newFakeServer(t)
	s.set(func(s *fakeServer) { s.jobDelay = 300 * time.Millisecond })
	c, _ := startClient(t, Config{Addr: s.addr()})
	nextConnected(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.BgAPI(ctx, "chat", "x", "late-job"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("BgAPI=%v, want a deadline error", err)
	}
	if e := nextEvent(t, c); e.Name != "BACKGROUND_JOB" || e.JobUUID != "late-job" || e.Body != "Sent" {
		t.Errorf("got %s %s %q, want the late BACKGROUND_JOB", e.Name, e.JobUUID, e.Body)
	}
}

// When the event connection drops while a job is pending, BgAPI says so at once
// instead of waiting for a result that can no longer arrive.
func TestBgAPIFailsWhenEventConnectionDrops(t *testing.T) {
	s := newFakeServer(t)
	s.set(func(s *fakeServer) { s.jobDelay = time.Hour })
	c, _ := startClient(t, Config{Addr: s.addr()})
	nextConnected(t, c)
	errc := make(chan error, 1)
	go func() {
		_, err := c.BgAPI(context.Background(), "chat", "x", "doomed-job")
		errc <- err
	}()
	waitFor(t, "the bgapi", func() bool {
		for _, fc := range s.connections() {
			for _, cmd := range fc.commands() {
				if strings.HasPrefix(cmd, "bgapi ") {
					return true
				}
			}
		}
		return false
	})
	s.subscribers()[0].nc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNotConnected) {
			t.Errorf("BgAPI=%v, want ErrNotConnected", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("BgAPI still waiting after the event connection dropped")
	}
}
