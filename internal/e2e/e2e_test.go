package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// replay sends raw request bytes on a new connection, as FreeSWITCH does.
func replay(t *testing.T, addr string, raw []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, err := fsemu.Exchange(ctx, addr, raw)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

// TestServeTakesOverCapturedMessage posts the captured dynamic-URL request (the
// request target changed from the capture's /fsxml) to a running `sipsilo serve`
// with no event socket. With the capture's older, lossy body= copy sipsilo
// leaves it to FreeSWITCH (docs/decisions.md §25); with the exact text/md5
// query the current binding gives the same body, it owns it, and the message
// must be in the file, exact, once the answer is out.
func TestServeTakesOverCapturedMessage(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/xmlcurl/10_dynamic_url_body_final.http")
	if err != nil {
		t.Fatal(err)
	}
	line, rest, ok := bytes.Cut(raw, []byte(" HTTP/1.1\r\n"))
	if !ok || !bytes.HasPrefix(line, []byte("POST /fsxml?")) {
		t.Fatalf("capture's request line: %q", line)
	}
	target := func(query string) []byte {
		return slices.Concat([]byte("POST /fs/chatplan?"+query+" HTTP/1.1\r\n"), rest)
	}
	db := filepath.Join(t.TempDir(), "sipsilo.db")
	c := startChild(t, nil, "--db", db)
	lossy := string(bytes.TrimPrefix(line, []byte("POST /fsxml?")))
	if status, answer := replay(t, c.addr, target(lossy)); status != http.StatusOK || !bytes.Contains(answer, []byte(`status="not found"`)) {
		t.Fatalf("the lossy copy without an event socket: status %d, answer:\n%s", status, answer)
	}
	// What FreeSWITCH sent (the capture's body= copy decodes its literal %41).
	want := "hello & world = 100% <ok> \"q\" 'a' | xümlaut\nline2 %41 ${danger}"
	status, answer := replay(t, c.addr, target(exactBodyQuery(want)))
	m := sipsiloID.FindSubmatch(answer)
	if status != http.StatusOK || m == nil {
		t.Fatalf("status %d, answer:\n%s", status, answer)
	}
	// The answer is out; kill -9 so that only what was on disk counts.
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.wait(t, 10*time.Second)
	s, err := kv.Open(db, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	all, err := s.All()
	if err != nil || len(all) != 1 {
		t.Fatalf("%d messages stored (%v), want the one owned", len(all), err)
	}
	got, err := s.Get(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != want || got.From != "1000@127.0.0.1" || got.To != "1001@127.0.0.1" || got.EventSeq != 378 {
		t.Fatalf("stored %+v", got)
	}
}

// TestServeOnFullDisk runs sipsilo on a real, size-limited filesystem: while it is
// full every message is left to FreeSWITCH (not found) with an error logged, and
// nothing acknowledged before is lost; once space is back, messages are taken again.
// With the journal (docs/decisions.md §34) the disk fills while a segment
// still has room: the messages that fit in it are taken, then refused.
func TestServeOnFullDisk(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { serveOnFullDisk(t, "1m", "--journal=false") })
	t.Run("journal", func(t *testing.T) { serveOnFullDisk(t, "8m", "--journal-segment", "1048576") })
}

func serveOnFullDisk(t *testing.T, size string, flags ...string) {
	dir := smallDisk(t, size)
	db := filepath.Join(dir, "sipsilo.db")
	c := startChild(t, nil, append([]string{"--db", db}, flags...)...)
	client := newClient()
	before, err := postMessage(client, c.addr, "before the disk filled", 1)
	if err != nil || before == "" {
		t.Fatalf("before: id %q err %v", before, err)
	}
	filler := fillDisk(t, dir)

	var acked []string
	refused := 0
	for i := range 2000 {
		id, err := postMessage(client, c.addr, fmt.Sprintf("while full %d %s", i, bytes.Repeat([]byte("x"), 900)), 2+i)
		if err != nil {
			t.Fatal(err)
		}
		if id == "" {
			refused++
			break
		}
		acked = append(acked, id)
	}
	if refused == 0 {
		t.Fatalf("2000 messages taken on a full filesystem")
	}
	c.waitLog(t, "no space left on device", 5*time.Second)
	os.Remove(filler)
	after, err := postMessage(client, c.addr, "space is back", 9999)
	if err != nil || after == "" {
		t.Fatalf("after freeing space: id %q err %v\n%s", after, err, c.log())
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, c.log())
	}
	s, err := kv.Open(db, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for _, id := range append(append([]string{before}, acked...), after) {
		if _, err := s.Get(id); err != nil {
			t.Fatalf("acknowledged message lost: %v", err)
		}
	}
	t.Logf("%d taken while filling up, then refused; space back: taken again", len(acked))
}
