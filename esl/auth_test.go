package esl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log destination the client's goroutines may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines(level string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, "level="+level) {
			out = append(out, line)
		}
	}
	return out
}

// A password with a line break can never be sent in FreeSWITCH's one-line auth
// command: Run says so at once instead of retrying forever, and nothing is sent.
func TestRunRefusesAPasswordFreeSWITCHCanNeverAccept(t *testing.T) {
	s := newFakeServer(t)
	for _, pw := range []string{"ClueCon\n", "Clue\rCon"} {
		cfg := Config{Addr: s.addr(), Password: pw}
		if err := cfg.Check(); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "password") {
			t.Fatalf("Check(%q) = %v, want a password ErrBadInput", pw, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := New(cfg).Run(ctx)
		cancel()
		if !errors.Is(err, ErrBadInput) {
			t.Fatalf("Run with password %q = %v, want ErrBadInput", pw, err)
		}
	}
	if n := len(s.connections()); n != 0 {
		t.Fatalf("%d connections made with an impossible password", n)
	}
	if err := (Config{Addr: s.addr(), Password: "ClueCon"}).Check(); err != nil {
		t.Fatalf("Check of a good config: %v", err)
	}
}

// A refused password (FreeSWITCH answers -ERR invalid) is retried, since the
// operator may fix FreeSWITCH's side, but logged at ERROR once per authLogEvery
// instead of a WARN per attempt, and Err names it until a login succeeds.
func TestRefusedPasswordIsNamedAndLoggedOnce(t *testing.T) {
	s := newFakeServer(t)
	refuse := func(fc *fakeConn) {
		if fc.send(fc.s.w.authRequest) != nil {
			return
		}
		if _, err := fc.readCommand(); err != nil {
			return
		}
		_ = fc.send([]byte("Content-Type: command/reply\nReply-Text: -ERR invalid\n\n"))
		_ = fc.send(fc.s.w.disconnect)
	}
	s.set(func(s *fakeServer) { s.serve = refuse })
	logs := &lockedBuffer{}
	c, _ := startClient(t, Config{Addr: s.addr(), Password: "wrong",
		Logger: slog.New(slog.NewTextHandler(logs, nil))})

	waitFor(t, "several refused attempts", func() bool { return len(s.connections()) >= 6 })
	if err := c.Err(); !errors.Is(err, ErrAuthRefused) || !strings.Contains(err.Error(), "-ERR invalid") {
		t.Fatalf("Err() = %v, want ErrAuthRefused quoting FreeSWITCH's answer", err)
	}
	if c.Up() {
		t.Fatal("Up with a refused password")
	}
	if errs := logs.lines("ERROR"); len(errs) != 1 || !strings.Contains(errs[0], "refused the event socket password") {
		t.Fatalf("want one ERROR line for the refusal, got %d:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	if warns := logs.lines("WARN"); len(warns) != 0 {
		t.Fatalf("refusals logged at WARN too:\n%s", strings.Join(warns, "\n"))
	}

	// FreeSWITCH's password changed to what the client sends: it logs in and
	// the reason is gone.
	s.set(func(s *fakeServer) { s.serve = nil })
	waitFor(t, "login once FreeSWITCH accepts", c.Up)
	if err := c.Err(); err != nil {
		t.Fatalf("Err() = %v while up", err)
	}
}
