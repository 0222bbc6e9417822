package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
// request target changed from the capture's /fsxml) to a running `sipsilo serve`;
// the message must be in the file once the answer is out.
func TestServeTakesOverCapturedMessage(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/xmlcurl/10_dynamic_url_body_final.http")
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Replace(raw, []byte("POST /fsxml?"), []byte("POST /fs/chatplan?"), 1)
	db := filepath.Join(t.TempDir(), "sipsilo.db")
	c := startChild(t, nil, "--db", db)
	status, answer := replay(t, c.addr, raw)
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
	got, err := s.Get(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	// Exact but for the literal %41 the query copy decodes (docs/decisions.md §4).
	want := "hello & world = 100% <ok> \"q\" 'a' | xümlaut\nline2 A ${danger}"
	if string(got.Body) != want || got.From != "1000@127.0.0.1" || got.To != "1001@127.0.0.1" || got.EventSeq != 378 {
		t.Fatalf("stored %+v", got)
	}
}

// TestServeOnFullDisk runs sipsilo on a real, size-limited filesystem: while it is
// full every message is left to FreeSWITCH (not found) with an error logged, and
// nothing acknowledged before is lost; once space is back, messages are taken again.
func TestServeOnFullDisk(t *testing.T) {
	dir := smallDisk(t, "1m")
	db := filepath.Join(dir, "sipsilo.db")
	c := startChild(t, nil, "--db", db)
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
