package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// testConfig is serve's defaults on free local addresses, pinger off.
func testConfig(t *testing.T, eslAddr, eslPassword string) Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return Config{
		HTTPAddr: addr, DBPath: filepath.Join(t.TempDir(), "sipsilo.db"),
		ESLAddr: eslAddr, ESLPassword: eslPassword,
		LogLevel: slog.LevelInfo, LogFormat: "text", ShutdownTimeout: 5 * time.Second,
		Chatplan: handlers.ChatplanConfig{MaxBody: handlers.DefaultMaxBody, AnswerTimeout: handlers.DefaultAnswerTimeout,
			SkipTypes: handlers.DefaultSkipTypes},
		Profiles: []string{"internal"}, BodyGrace: 2 * time.Second,
		Relay: relay.Config{Window: 4, MaxInFlight: 16, DeadAfter: 5, RetryMin: time.Second, RetryMax: time.Minute,
			NoAnswerAfter: 15 * time.Second, TimerF: 32 * time.Second, SweepEvery: time.Minute},
		Ping: PingConfig{Mode: "off"},
	}
}

// syncBuffer is a log destination shared with the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A password FreeSWITCH can never accept (a line break cannot be sent in its
// one-line auth command) stops serve before it listens, saying why.
func TestNewRefusesAnESLPasswordFreeSWITCHCanNeverAccept(t *testing.T) {
	for _, pw := range []string{"ClueCon\n", "Clue\r\nCon"} {
		_, err := New(testConfig(t, "127.0.0.1:8021", pw), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--esl-password") || !strings.Contains(err.Error(), "CR or LF") {
			t.Fatalf("New with ESL password %q: %v, want an error naming --esl-password and the line break", pw, err)
		}
	}
	if _, err := New(testConfig(t, "127.0.0.1:8021", "ClueCon"), io.Discard); err != nil {
		t.Fatalf("New with a good config: %v", err)
	}
}

// A password FreeSWITCH refuses at runtime keeps sipsilo running (the operator
// may fix either side) but not ready: /readyz names the refusal, and the log has
// one ERROR line for it, not a WARN per retry.
func TestReadyzNamesARefusedESLPassword(t *testing.T) {
	srv, err := fsemu.NewESLServer(fsemu.ESLOptions{Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg := testConfig(t, srv.Addr(), "wrong")
	logs := &syncBuffer{}
	d, err := New(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	client := &http.Client{Timeout: time.Second}
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(last, "ESL authentication refused") {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never named the refusal; last answer %q\n%s", last, logs)
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v\n%s", err, logs)
		case <-time.After(20 * time.Millisecond):
		}
		res, err := client.Get("http://" + cfg.HTTPAddr + "/readyz")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/readyz %d with a refused password: %s", res.StatusCode, b)
		}
		last = string(b)
	}
	var errorLines, warnRefusals int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") && strings.Contains(line, "refused the event socket password") {
			errorLines++
		}
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "authentication refused") {
			warnRefusals++
		}
	}
	if errorLines != 1 || warnRefusals != 0 {
		t.Fatalf("%d ERROR lines and %d WARN lines for the refusal, want 1 and 0:\n%s", errorLines, warnRefusals, logs)
	}
}

// A component that ends before it is stopped is reported, with its name, once;
// one that ends because it was stopped is not.
func TestGroupReportsTheFirstComponentThatStops(t *testing.T) {
	failed := make(chan error, 1)
	g := newGroup(failed, slog.New(slog.DiscardHandler))
	boom := errors.New("boom")
	g.run("broken", func(context.Context) error { return boom })
	err := <-failed
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("reported %v", err)
	}
	g.run("quitter", func(context.Context) error { return nil })
	if err := <-failed; !strings.Contains(err.Error(), "quitter: stopped on its own") {
		t.Fatalf("reported %v", err)
	}
	g.run("well-behaved", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	g.stop()
	select {
	case err := <-failed:
		t.Fatalf("a stopped component was reported: %v", err)
	default:
	}
}

// Run returns a component's own error and shuts the rest down: here esl.Client.Run
// refusing its config (New would have refused it first; built by hand to reach Run).
func TestRunReturnsTheErrorOfAComponentThatStops(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:8021", "ClueCon\n")
	logs := &syncBuffer{}
	d := &Daemon{cfg: cfg, log: newLogger(cfg, logs), mode: presence.PingOff}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := d.Run(ctx)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "esl: ") || !strings.Contains(err.Error(), "CR or LF") {
		t.Fatalf("Run = %v (ctx %v), want the ESL client's error\n%s", err, ctx.Err(), logs)
	}
	if !strings.Contains(logs.String(), "a component stopped; shutting down") || !strings.Contains(logs.String(), "msg=stopped") {
		t.Fatalf("no orderly shutdown logged:\n%s", logs)
	}
}
