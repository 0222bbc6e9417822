package e2e

// Hostile and broken environments against the real binary: damaged and empty
// database files.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sipsilo/sipsilo/kv"
)

// runBinary runs the binary to its end (bounded) and returns its exit code and
// combined output.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	// The operator's secrets, if set here, are not the test's.
	cmd.Env = append(os.Environ(), "SIPSILO_ESL_PASSWORD=", "SIPSILO_CHATPLAN_PASSWORD=")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("sipsilo %v did not end within 60 s:\n%s", args, out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedStoreIsRefusedInOneLine: serve and inspect meet each damaged file
// (truncations, flipped pages, a page that points to itself) with one line and exit
// 1; before, bbolt panicked in a goroutine (a goroutine dump) or inspect looped
// until memory ran out.
func TestDamagedStoreIsRefusedInOneLine(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "kv", "testdata", "damaged-*.db"))
	if len(files) == 0 {
		t.Fatal("no damaged seed files in kv/testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".db"), func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "sipsilo.db")
			for _, args := range [][]string{
				{"serve", "--http", "127.0.0.1:0", "--db", db},
				{"inspect", "--db", db, "stats"},
				{"inspect", "--db", db, "dead"},
			} {
				copyFile(t, f, db)
				code, out := runBinary(t, args...)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if code != 1 || len(lines) != 1 || !strings.Contains(out, "corrupt") || strings.Contains(out, "goroutine") {
					t.Fatalf("%v: exit %d, want 1 and one line saying corrupt:\n%s", args[0], code, out)
				}
			}
		})
	}
}

// TestServeRefusesAnEmptyFileUnlessNewStore: an existing empty file is refused
// (it used to become a new store silently); --new-store makes it one, and a path
// that does not exist becomes one without asking.
func TestServeRefusesAnEmptyFileUnlessNewStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "sipsilo.db")
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runBinary(t, "serve", "--http", "127.0.0.1:0", "--db", db)
	if code != 1 || !strings.Contains(out, "empty") || !strings.Contains(out, "--new-store") {
		t.Fatalf("empty file: exit %d, want 1 naming --new-store:\n%s", code, out)
	}
	if fi, err := os.Stat(db); err != nil || fi.Size() != 0 {
		t.Fatalf("refused empty file changed: %v", err)
	}
	for _, args := range [][]string{{"--db", db, "--new-store"}, {"--db", filepath.Join(dir, "fresh.db")}} {
		c := startChild(t, nil, args...)
		c.cmd.Process.Signal(syscall.SIGTERM)
		if code := c.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("%v: exit %d:\n%s", args, code, c.log())
		}
	}
	if fi, err := os.Stat(db); err != nil || fi.Size() == 0 {
		t.Fatalf("--new-store did not make a store: %v", err)
	}
}

// TestServeRefusesAnOpenChatplanOffLoopback: a non-loopback --http with an admin
// token but no chatplan credentials started without a word, and anyone reaching
// the port could store messages from any sender.
func TestServeRefusesAnOpenChatplanOffLoopback(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sipsilo.db")
	code, out := runBinary(t, "serve", "--http", "0.0.0.0:0", "--admin-token", "t", "--db", db)
	if code != 1 || !strings.Contains(out, "--chatplan-password") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("exit %d, want 1 and one line naming --chatplan-password:\n%s", code, out)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused serve created its store: %v", err)
	}
}

// TestReadyzReportsTheStoreOnAFullDisk: /readyz said the store was fine while the
// disk was full and every message was left to FreeSWITCH.
// With the journal (docs/decisions.md §34) the check appends a record too,
// which fails once the segment is full and no next one can be made.
func TestReadyzReportsTheStoreOnAFullDisk(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { readyzOnFullDisk(t, "2m", "--journal=false") })
	t.Run("journal", func(t *testing.T) { readyzOnFullDisk(t, "8m", "--journal-segment", "1048576") })
}

func readyzOnFullDisk(t *testing.T, size string, flags ...string) {
	dir := smallDisk(t, size)
	c := startChild(t, nil, append([]string{"--db", filepath.Join(dir, "sipsilo.db")}, flags...)...)
	storeReady := func() string {
		res, err := newClient().Get("http://" + c.addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var checks map[string]string
		if err := json.NewDecoder(res.Body).Decode(&checks); err != nil {
			t.Fatal(err)
		}
		return checks["store"]
	}
	if got := storeReady(); got != "ok" {
		t.Fatalf("store check with space: %q", got)
	}
	filler := fillDisk(t, dir)
	for i := 0; ; i++ {
		id, err := postMessage(newClient(), c.addr, fmt.Sprintf("filling %d %s", i, strings.Repeat("x", 900)), 1+i)
		if err != nil {
			t.Fatal(err)
		}
		if id == "" {
			break // left to FreeSWITCH: the disk is full
		}
		if i == 5000 {
			t.Fatal("5000 messages taken on a full filesystem")
		}
	}
	if got := storeReady(); !strings.Contains(got, "no space left") {
		t.Fatalf("store check while intake fails for lack of space: %q", got)
	}
	os.Remove(filler)
	if got := storeReady(); got != "ok" {
		t.Fatalf("store check after space came back: %q", got)
	}
}

// TestInspectEscapesDamagedIDs: inspect printed the raw bytes of a damaged id (a
// terminal escape, a NUL) in its error; it quotes them now.
func TestInspectEscapesDamagedIDs(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sipsilo.db")
	s, err := kv.Open(db, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	b, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("messages")).Put([]byte("01BAD\x1b[2J\x00\x07"), []byte(`{"id":"x","state":"dead"`))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"inspect", "--db", db, "dead"}, {"inspect", "--db", db, "--json", "dead"}} {
		code, out := runBinary(t, args...)
		if code != 1 || strings.ContainsAny(out, "\x1b\x00\x07") || !strings.Contains(out, `\x1b[2J`) {
			t.Errorf("%v: exit %d, want 1 with the id escaped:\n%q", args[1:], code, out)
		}
	}
}

// TestServeLeavesABodylessMessageWhileTheEventSocketIsDown: a chatplan lookup
// without the body parameter was answered final with FreeSWITCH's event socket
// down, and the message, whose body could then never arrive, was never delivered.
// serve now answers not found (stock delivery) and counts it.
func TestServeLeavesABodylessMessageWhileTheEventSocketIsDown(t *testing.T) {
	c := startChild(t, nil, "--db", filepath.Join(t.TempDir(), "sipsilo.db"), "--esl", freePort(t))
	client := newClient()
	res, err := client.Post("http://"+c.addr+"/fs/chatplan", "application/x-www-form-urlencoded", strings.NewReader(chatplanForm(1)))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(answer), `status="not found"`) {
		t.Fatalf("no body, no event socket: %d\n%s", res.StatusCode, answer)
	}
	// A body in the query needs no event socket.
	if id, err := postMessage(client, c.addr, "with a body", 2); err != nil || id == "" {
		t.Fatalf("message with a query body: id %q err %v", id, err)
	}
	res, err = client.Get("http://" + c.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(metrics), `sipsilo_intake_seconds_count{answer="not_found",why="no_body_source"} 1`) {
		t.Fatalf("not counted as no_body_source:\n%s", metrics)
	}
}
