package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// TestKill9KeepsEveryAcknowledgedMessage: 64 clients post continuously, the daemon is
// killed with SIGKILL mid-load, and every message that got a final answer must be in
// the file afterwards, body intact.
func TestKill9KeepsEveryAcknowledgedMessage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sipsilo.db")
	// No quota: thousands are queued for one recipient, nobody delivers them.
	c := startChild(t, nil, "--db", db, "--quota", "0")

	var mu sync.Mutex
	acked := map[string]string{} // id → body
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			client := newClient()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("client %d message %d ümlaut\n<&>'\"", w, i)
				id, err := postMessage(client, c.addr, body, w*1_000_000+i)
				if err != nil {
					continue // the kill cuts requests short; they were never acknowledged
				}
				if id != "" {
					mu.Lock()
					acked[id] = body
					mu.Unlock()
				}
			}
		})
	}
	// Kill once the load is well under way.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 2000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 10*time.Second)
	close(stop)
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged before the kill:\n%s", len(acked), c.log())
	}

	// sipsilo restarts on the killed file and takes messages again.
	again := startChild(t, nil, "--db", db, "--quota", "0")
	if id, err := postMessage(newClient(), again.addr, "after restart", 0); err != nil || id == "" {
		t.Fatalf("after restart: id %q err %v\n%s", id, err, again.log())
	}
	again.cmd.Process.Signal(syscall.SIGTERM)
	if code := again.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("restarted sipsilo exited %d:\n%s", code, again.log())
	}

	s, err := kv.Open(db, kv.Options{})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close(context.Background())
	for id, body := range acked {
		m, err := s.Get(id)
		if err != nil {
			t.Fatalf("acknowledged message %s lost: %v", id, err)
		}
		if string(m.Body) != body || m.State != kv.StateQueued {
			t.Fatalf("message %s: body %q state %s, want %q queued", id, m.Body, m.State, body)
		}
	}
	q, err := s.Queue("1001@127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) < len(acked)+1 {
		t.Fatalf("queue holds %d, acknowledged %d", len(q), len(acked)+1)
	}
	t.Logf("%d acknowledged, %d in the file after kill -9", len(acked), len(q))
}

// TestEveryAcknowledgedCommitIsSynced counts the fdatasync calls the daemon makes:
// kill -9 keeps the page cache, so only this catches a missing fsync (docs/decisions.md §12).
func TestEveryAcknowledgedCommitIsSynced(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		requireIntegration(t, "strace not installed")
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	c := startChild(t, []string{strace, "-f", "-qq", "-e", "trace=fsync,fdatasync,sync_file_range", "-o", trace},
		"--db", filepath.Join(dir, "sipsilo.db"))
	syncs := func() int {
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "fdatasync(") + strings.Count(string(b), "fsync(")
	}
	before := syncs()
	const n = 40
	client := newClient()
	for i := range n {
		id, err := postMessage(client, c.addr, "sync me "+strconv.Itoa(i), i)
		if err != nil || id == "" {
			t.Fatalf("post %d: id %q err %v", i, id, err)
		}
	}
	// Sequential requests cannot share a commit, and bbolt syncs twice per commit
	// (data pages, then the meta page).
	got := syncs() - before
	if got < 2*n {
		t.Fatalf("%d syncs for %d acknowledged sequential messages, want at least %d", got, n, 2*n)
	}
	if unsynced := regexp.MustCompile(`sync_file_range`).FindString(readFile(t, trace)); unsynced != "" {
		t.Fatalf("sync_file_range is not a durable sync")
	}
	t.Logf("%d syncs for %d messages", got, n)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
