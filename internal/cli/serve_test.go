package cli

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"

	"github.com/sipsilo/sipsilo/internal/testport"
)

// freePort is a port for a server told it before it binds (internal/testport).
func freePort(t testing.TB) string {
	t.Helper()
	addr, err := testport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// served is a `sipsilo serve` running in-process.
type served struct {
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

func (s *served) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.Write(p)
}

func (s *served) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// serveInProcess runs `sipsilo serve args...` in this process until the test
// ends; --http must name a fixed address.
func serveInProcess(t *testing.T, env func(string) (string, bool), args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{done: make(chan error, 1)}
	go func() { s.done <- runServe(ctx, args, env, s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("serve: %v\n%s", err, s.log())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop:\n%s", s.log())
		}
	})
	return s
}

// waitReady waits until /readyz on addr answers 200.
func (s *served) waitReady(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		res, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("serve ended before ready: %v\n%s", err, s.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after %v (last: %v)\n%s", within, err, s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve runs the daemon in-process until its context ends, then returns nil.
func TestServeRunsUntilCancelled(t *testing.T) {
	sw, err := fsemu.NewSwitch(fsemu.SwitchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Close() })
	addr := freePort(t)
	s := serveInProcess(t, noEnv, "--http", addr, "--db", filepath.Join(t.TempDir(), "s.db"), "--esl", sw.ESL().Addr())
	s.waitReady(t, addr, 10*time.Second)
	if !strings.Contains(s.log(), "msg=listening") || !strings.Contains(s.log(), "version="+Version) {
		t.Fatalf("no listening line with the version:\n%s", s.log())
	}
}

// A password FreeSWITCH can never accept stops serve before it listens.
func TestServeRefusesAnESLPasswordWithALineBreak(t *testing.T) {
	var logs bytes.Buffer
	err := runServe(context.Background(), []string{"--http", freePort(t), "--db", filepath.Join(t.TempDir(), "s.db")},
		envOf(map[string]string{"SIPSILO_ESL_PASSWORD": "ClueCon\n"}), &logs)
	if err == nil || !strings.Contains(err.Error(), "serve: --esl/--esl-password (SIPSILO_ESL_PASSWORD)") {
		t.Fatalf("serve with a newline in the ESL password: %v", err)
	}
	if strings.Contains(logs.String(), "listening") {
		t.Fatalf("serve listened:\n%s", logs.String())
	}
}
