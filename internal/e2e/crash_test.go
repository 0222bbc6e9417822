package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// TestEveryAcknowledgedCommitIsSynced counts the fdatasync calls the daemon makes
// on the bbolt path (--journal=false; the journal's count is
// TestJournalSyncsOncePerLoneAnswerAndLessUnderLoad): kill -9 keeps the page
// cache, so only this catches a missing fsync (docs/decisions.md §12).
func TestEveryAcknowledgedCommitIsSynced(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		requireIntegration(t, "strace not installed")
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	c := startChild(t, []string{strace, "-f", "-qq", "-e", "trace=fsync,fdatasync,sync_file_range", "-o", trace},
		"--db", filepath.Join(dir, "sipsilo.db"), "--journal=false")
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

// kill9Journal posts from clients (a new connection per request) to a daemon
// with the journal, kills it with SIGKILL at a random point, rounds times on the
// same file, restarting it each time without any step in between; then every
// acknowledged message must be stored exactly once, queued, body intact, and
// nothing else.
func kill9Journal(t *testing.T, clients, rounds, pad int, flags ...string) {
	db := filepath.Join(t.TempDir(), "sipsilo.db")
	acked := map[string]string{} // id → body
	var mu sync.Mutex
	for round := range rounds {
		c := startChild(t, nil, append([]string{"--db", db, "--quota", "0", "--journal"}, flags...)...)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range clients {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					body := fmt.Sprintf("round %d client %d message %d ümlaut\n<&>'\"%s", round, w, i, strings.Repeat("x", pad))
					id, err := postMessage(newClient(), c.addr, body, round*100_000_000+w*1_000_000+i)
					if err != nil || id == "" {
						continue // cut short by the kill: never acknowledged
					}
					mu.Lock()
					acked[id] = body
					mu.Unlock()
				}
			})
		}
		mu.Lock()
		target := len(acked) + 50 + rand.IntN(1500)
		mu.Unlock()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= target || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.wait(t, 10*time.Second)
		close(stop)
		wg.Wait()
	}
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged", len(acked))
	}
	// The last restart recovers the journal into the file and stops cleanly.
	again := startChild(t, nil, append([]string{"--db", db, "--quota", "0", "--journal"}, flags...)...)
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
	bodies := map[string]int{}
	for _, m := range q {
		bodies[string(m.Body)]++
		if bodies[string(m.Body)] > 1 {
			t.Fatalf("message %q stored twice", m.Body)
		}
	}
	if len(q) < len(acked) {
		t.Fatalf("queue holds %d, acknowledged %d", len(q), len(acked))
	}
	t.Logf("%d acknowledged over %d kills, %d in the file", len(acked), rounds, len(q))
}

// TestKill9WithJournalUnderLoad: 64 clients, killed at random points.
func TestKill9WithJournalUnderLoad(t *testing.T) { kill9Journal(t, 64, 4, 0) }

// TestKill9WithJournalInFreeSWITCHsPattern: FreeSWITCH's two chat threads.
func TestKill9WithJournalInFreeSWITCHsPattern(t *testing.T) { kill9Journal(t, 2, 4, 0) }

// TestKill9WithJournalWhileSegmentsRoll: the smallest segments (1 MiB) and
// 4 KiB bodies, so that kills land while a segment is started, recycled or
// removed.
func TestKill9WithJournalWhileSegmentsRoll(t *testing.T) {
	kill9Journal(t, 64, 6, 4000, "--journal-segment", "1048576")
}

// TestJournalSyncsOncePerLoneAnswerAndLessUnderLoad counts, with strace, the
// fdatasync calls on the journal's segments: one per answer for a lone caller
// (each answer waits for its own), fewer than one per answer for 64 clients
// (they share them). bbolt's own syncs are counted apart.
func TestJournalSyncsOncePerLoneAnswerAndLessUnderLoad(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		requireIntegration(t, "strace not installed")
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	c := startChild(t, []string{strace, "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,sync_file_range", "-o", trace},
		"--db", filepath.Join(dir, "sipsilo.db"), "--quota", "0", "--journal")
	syncs := func() (journal, other int) {
		for _, line := range strings.Split(readFile(t, trace), "\n") {
			switch {
			case strings.Contains(line, "sync_file_range"):
				t.Fatalf("sync_file_range is not a durable sync: %s", line)
			case strings.Contains(line, "fdatasync(") && strings.Contains(line, ".wal>"):
				journal++
			case strings.Contains(line, "sync("):
				other++
			}
		}
		return journal, other
	}
	j0, _ := syncs()
	const n = 40
	for i := range n {
		if id, err := postMessage(newClient(), c.addr, "lone "+strconv.Itoa(i), i); err != nil || id == "" {
			t.Fatalf("post %d: id %q err %v", i, id, err)
		}
	}
	j1, o1 := syncs()
	if j1-j0 != n {
		t.Fatalf("%d journal fdatasyncs for %d sequential answers, want one each", j1-j0, n)
	}

	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := range 30 {
				if id, err := postMessage(newClient(), c.addr, "load", 1000+w*100+i); err == nil && id != "" {
					acked.Add(1)
				}
			}
		})
	}
	wg.Wait()
	j2, o2 := syncs()
	if acked.Load() != 64*30 {
		t.Fatalf("%d of %d acknowledged", acked.Load(), 64*30)
	}
	if j2-j1 >= int(acked.Load()) {
		t.Fatalf("%d journal fdatasyncs for %d concurrent answers: none shared", j2-j1, acked.Load())
	}
	t.Logf("lone: %d journal syncs for %d answers (bbolt %d); 64 clients: %d journal syncs for %d answers (bbolt and the rest %d)",
		j1-j0, n, o1, j2-j1, acked.Load(), o2-o1)
}
